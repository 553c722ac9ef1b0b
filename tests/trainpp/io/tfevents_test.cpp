// TensorBoard event files without TensorFlow (io/tfevents.hpp): CRC-32C and TFRecord framing against
// known values, Event protobufs against encodings written out by hand from the .proto field numbers,
// and EventFileWriter's file name, first record, buffering and closing.

#include <trainpp/io/tfevents.hpp>

#include <doctest/doctest.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include <unistd.h>

namespace tfevents_test {

namespace fs = std::filesystem;
using namespace std::string_literals;

struct TempDir {
  fs::path path = fs::temp_directory_path() / fmt::format("trainpp-tfevents-test-{}-{}", ::getpid(), std::random_device{}());
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

std::string bytes(std::initializer_list<int> values) {
  std::string out;
  for (const int v : values) out.push_back(static_cast<char>(v));
  return out;
}

std::string file_bytes(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

/// The payloads of the TFRecords in `data`, each record's length and CRCs checked.
std::vector<std::string> records(std::string_view data) {
  std::vector<std::string> out;
  while (!data.empty()) {
    REQUIRE(data.size() >= 16);
    std::uint64_t length = 0;
    std::memcpy(&length, data.data(), 8);  // the test machines are little-endian, as the format
    std::uint32_t header_crc = 0;
    std::memcpy(&header_crc, data.data() + 8, 4);
    CHECK(header_crc == trainpp::tfevents::masked_crc32c(data.substr(0, 8)));
    REQUIRE(data.size() >= 16 + length);
    const auto payload = data.substr(12, length);
    std::uint32_t payload_crc = 0;
    std::memcpy(&payload_crc, data.data() + 12 + length, 4);
    CHECK(payload_crc == trainpp::tfevents::masked_crc32c(payload));
    out.emplace_back(payload);
    data.remove_prefix(16 + length);
  }
  return out;
}

TEST_CASE("tfevents: crc32c is CRC-32C (Castagnoli), continuable, and masked as TFRecord masks it") {
  static_assert(trainpp::tfevents::crc32c("123456789") == 0xE3069283u);  // the standard check value
  CHECK(trainpp::tfevents::crc32c("") == 0u);
  CHECK(trainpp::tfevents::crc32c("6789", trainpp::tfevents::crc32c("12345")) == 0xE3069283u);
  // Known answers for 32 zero bytes and 32 0xFF bytes (RFC 3720, B.4).
  CHECK(trainpp::tfevents::crc32c(std::string(32, '\0')) == 0x8A9136AAu);
  CHECK(trainpp::tfevents::crc32c(std::string(32, '\xFF')) == 0x62A8AB43u);
  // The mask is the CRC rotated right by 15 bits plus 0xA282EAD8 (TensorFlow's kMaskDelta).
  CHECK(trainpp::tfevents::masked_crc32c("") == 0xA282EAD8u);
  CHECK(trainpp::tfevents::masked_crc32c("123456789") == 0xC78AB0E5u);
}

TEST_CASE("tfevents: a record is the length, its masked CRC, the payload and the payload's masked CRC") {
  CHECK(trainpp::tfevents::frame_record("abc") ==
        bytes({0x03, 0, 0, 0, 0, 0, 0, 0, 0xb0, 0x99, 0x49, 0x0e}) + "abc" + bytes({0x6e, 0x57, 0xf1, 0x21}));
  CHECK(trainpp::tfevents::frame_record("") ==
        bytes({0, 0, 0, 0, 0, 0, 0, 0, 0x29, 0x03, 0x98, 0x07, 0xd8, 0xea, 0x82, 0xa2}));
  const std::string big(300, 'x');  // a length above one byte, little-endian
  const auto framed = trainpp::tfevents::frame_record(big);
  CHECK(framed.size() == 316);
  CHECK(framed.substr(0, 8) == bytes({0x2c, 0x01, 0, 0, 0, 0, 0, 0}));
  CHECK(records(framed) == std::vector<std::string>{big});
}

TEST_CASE("tfevents: a scalar Event is encoded field by field in protobuf wire format") {
  // Event{wall_time: 1.5, step: 3, summary: Summary{value: [Value{tag: "loss", simple_value: 0.5}]}}
  const auto value = bytes({0x0a, 0x04}) + "loss" + bytes({0x15, 0x00, 0x00, 0x00, 0x3f});
  const auto summary = bytes({0x0a, 0x0b}) + value;
  const auto event = bytes({0x09, 0, 0, 0, 0, 0, 0, 0xf8, 0x3f, 0x10, 0x03, 0x2a, 0x0d}) + summary;
  CHECK(trainpp::tfevents::scalar_event("loss", 0.5, 3, 1.5) == event);

  // proto3 leaves out a zero wall_time and step, but simple_value is a oneof member: always written.
  CHECK(trainpp::tfevents::scalar_event("x", 0.0, 0, 0.0) ==
        bytes({0x2a, 0x0a, 0x0a, 0x08, 0x0a, 0x01, 'x', 0x15, 0, 0, 0, 0}));
  // A negative step is a ten-byte varint of its two's complement.
  CHECK(trainpp::tfevents::scalar_event("x", 0.0, -1, 0.0).substr(0, 11) ==
        bytes({0x10, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}));
  // The value is stored as a float32: 0.1 becomes 0x3dcccccd.
  CHECK(trainpp::tfevents::scalar_event("x", 0.1, 0, 0.0).substr(7) == bytes({0x15, 0xcd, 0xcc, 0xcc, 0x3d}));
}

TEST_CASE("tfevents: the file version and text Events carry SummaryWriter's fields") {
  CHECK(trainpp::tfevents::file_version_event(2.0) ==
        bytes({0x09, 0, 0, 0, 0, 0, 0, 0, 0x40, 0x1a, 0x0d}) + "brain.Event:2" + bytes({0x52, 0x09, 0x0a, 0x07}) + "trainpp");
  CHECK(trainpp::tfevents::file_version_event(0.0, "") == bytes({0x1a, 0x0d}) + "brain.Event:2" + bytes({0x52, 0x00}));

  // Value{tag: "note/text_summary", tensor: TensorProto{dtype: DT_STRING, tensor_shape: {dim: [{size: 1}]},
  // string_val: ["hi"]}, metadata: {plugin_data: {plugin_name: "text"}}}
  const auto tensor = bytes({0x08, 0x07, 0x12, 0x04, 0x12, 0x02, 0x08, 0x01, 0x42, 0x02}) + "hi";
  const auto metadata = bytes({0x0a, 0x06, 0x0a, 0x04}) + "text";
  const auto value = bytes({0x0a, 0x11}) + "note/text_summary" + bytes({0x42, 0x0c}) + tensor + bytes({0x4a, 0x08}) + metadata;
  const auto summary = bytes({0x0a, 0x2b}) + value;
  CHECK(trainpp::tfevents::text_event("note", "hi", 0, 0.0) == bytes({0x2a, 0x2d}) + summary);
  CHECK(trainpp::tfevents::text_event("note", "hi", 5, 0.0) == bytes({0x10, 0x05, 0x2a, 0x2d}) + summary);
}

TEST_CASE("tfevents: event files are named as SummaryWriter names them, counting the files opened") {
  const auto first = trainpp::tfevents::event_file_name(1700000000.75, ".v2");
  const auto second = trainpp::tfevents::event_file_name(42.0);
  const auto prefix = fmt::format("events.out.tfevents.1700000000.{}.{}.", trainpp::tfevents::hostname(), ::getpid());
  REQUIRE(first.starts_with(prefix));
  REQUIRE(first.ends_with(".v2"));
  const auto n = std::stoull(first.substr(prefix.size(), first.size() - prefix.size() - 3));
  // Seconds are zero-padded to 10 digits; the counter moves on by one per name.
  CHECK(second == fmt::format("events.out.tfevents.0000000042.{}.{}.{}", trainpp::tfevents::hostname(), ::getpid(), n + 1));
  CHECK_FALSE(trainpp::tfevents::hostname().empty());
}

TEST_CASE("tfevents: EventFileWriter writes the version record at once and the rest on flush") {
  TempDir dir;
  const auto log_dir = dir.path / "runs" / "exp";  // parents are created
  trainpp::EventFileWriter writer(log_dir, ".suffix");
  CHECK(writer.is_open());
  CHECK(writer.log_dir() == log_dir);
  CHECK(writer.path().parent_path() == log_dir);
  CHECK(writer.path().filename().string().starts_with("events.out.tfevents."));
  CHECK(writer.path().filename().string().ends_with(".suffix"));

  auto written = records(file_bytes(writer.path()));
  REQUIRE(written.size() == 1);
  // wall_time (a double of the current time), then file_version and the writer's name.
  REQUIRE(written[0].size() > 9);
  CHECK(written[0][0] == '\x09');
  CHECK(written[0].substr(9) == bytes({0x1a, 0x0d}) + "brain.Event:2" + bytes({0x52, 0x09, 0x0a, 0x07}) + "trainpp");

  writer.add_scalar("train/loss", 0.25, 7, 100.0);
  writer.add_text("args", "lr = 1e-3", 0, 100.0);
  CHECK(records(file_bytes(writer.path())).size() == 1);  // kept in memory until flushed
  writer.flush();
  written = records(file_bytes(writer.path()));
  REQUIRE(written.size() == 3);
  CHECK(written[1] == trainpp::tfevents::scalar_event("train/loss", 0.25, 7, 100.0));
  CHECK(written[2] == trainpp::tfevents::text_event("args", "lr = 1e-3", 0, 100.0));

  writer.add_scalar("train/loss", 0.5, 8, 101.0);
  writer.close();  // flushes
  CHECK_FALSE(writer.is_open());
  CHECK(records(file_bytes(writer.path())).size() == 4);
  writer.close();  // a second close does nothing
  CHECK_THROWS_WITH_AS(writer.add_scalar("x", 1.0, 1), doctest::Contains("it is closed"), trainpp::Error);
}

TEST_CASE("tfevents: EventFileWriter moves its file along, and its destructor flushes") {
  TempDir dir;
  fs::path path;
  {
    trainpp::EventFileWriter first(dir.path);
    path = first.path();
    first.add_scalar("a", 1.0, 1, 10.0);
    trainpp::EventFileWriter moved(std::move(first));
    CHECK_FALSE(first.is_open());  // NOLINT(bugprone-use-after-move): the moved-from state is specified
    CHECK(moved.is_open());
    CHECK(moved.path() == path);
    CHECK_THROWS_WITH_AS(first.add_scalar("b", 2.0, 2, 10.0), doctest::Contains("it is closed"), trainpp::Error);
    moved.add_scalar("c", 3.0, 3, 10.0);
  }
  const auto written = records(file_bytes(path));
  REQUIRE(written.size() == 3);  // the queued event went along with the move
  CHECK(written[1] == trainpp::tfevents::scalar_event("a", 1.0, 1, 10.0));
  CHECK(written[2] == trainpp::tfevents::scalar_event("c", 3.0, 3, 10.0));
  // Two writers in one directory get two files.
  trainpp::EventFileWriter one(dir.path);
  trainpp::EventFileWriter two(dir.path);
  CHECK(one.path() != two.path());
}

TEST_CASE("tfevents: EventFileWriter names the directory it cannot create") {
  TempDir dir;
  fs::create_directories(dir.path);
  std::ofstream(dir.path / "plain_file") << "x";
  CHECK_THROWS_WITH_AS(trainpp::EventFileWriter(dir.path / "plain_file" / "logs"),
                       doctest::Contains("cannot create the TensorBoard log directory"), trainpp::Error);
}

}  // namespace tfevents_test
