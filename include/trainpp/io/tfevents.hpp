#pragma once
// TensorBoard event files, written without TensorFlow or protobuf: the records TensorBoard reads
// (TFRecord framing with CRC-32C checksums) holding hand-encoded `Event` protocol buffers, named and
// laid out as torch.utils.tensorboard's SummaryWriter writes them. POSIX only.
//
// The messages and field numbers, from tensorboard/compat/proto (event.proto, summary.proto,
// tensor.proto, tensor_shape.proto, types.proto):
//   Event            { double wall_time = 1; int64 step = 2; string file_version = 3; Summary summary = 5;
//                      SourceMetadata source_metadata = 10; }
//   SourceMetadata   { string writer = 1; }
//   Summary          { repeated Value value = 1; }
//   Summary.Value    { string tag = 1; oneof { float simple_value = 2; TensorProto tensor = 8; }
//                      SummaryMetadata metadata = 9; }
//   SummaryMetadata  { PluginData plugin_data = 1; }   PluginData { string plugin_name = 1; bytes content = 2; }
//   TensorProto      { DataType dtype = 1; TensorShapeProto tensor_shape = 2; repeated bytes string_val = 8; }
//   TensorShapeProto { repeated Dim dim = 2; }          Dim { int64 size = 1; }
//   DataType DT_STRING = 7.
// Fields are written in field-number order and proto3 defaults are left out (a oneof member is
// always written), so every record is byte for byte what Python's protobuf serializes.

#include <trainpp/detail/config.hpp>
#include <trainpp/io/atomic_write.hpp>
#include <trainpp/logging.hpp>

#include <fcntl.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <bit>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>

namespace trainpp {
namespace tfevents {

namespace detail {

/// The 256-entry table of the reflected Castagnoli polynomial (0x1EDC6F41, reversed 0x82F63B78).
inline constexpr std::array<std::uint32_t, 256> crc32c_table = [] {
  std::array<std::uint32_t, 256> table{};
  for (std::uint32_t i = 0; i < 256; ++i) {
    std::uint32_t c = i;
    for (int bit = 0; bit < 8; ++bit) c = (c & 1u) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
    table[i] = c;
  }
  return table;
}();

}  // namespace detail

/// CRC-32C (Castagnoli) of `bytes`, continuing from `crc` (the CRC of what came before; 0 to start).
/// crc32c("123456789") == 0xE3069283.
[[nodiscard]] constexpr std::uint32_t crc32c(std::string_view bytes, std::uint32_t crc = 0) noexcept {
  crc = ~crc;
  for (const char ch : bytes)
    crc = detail::crc32c_table[(crc ^ static_cast<unsigned char>(ch)) & 0xFFu] ^ (crc >> 8);
  return ~crc;
}

/// The masked CRC that TFRecord stores: the CRC rotated right by 15 bits plus a constant, so that a
/// CRC computed over data which itself holds CRCs stays well distributed.
[[nodiscard]] constexpr std::uint32_t masked_crc32c(std::string_view bytes) noexcept {
  const std::uint32_t crc = crc32c(bytes);
  return ((crc >> 15) | (crc << 17)) + 0xA282EAD8u;
}

namespace detail {

inline void put_fixed32(std::string& out, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xFFu));
}
inline void put_fixed64(std::string& out, std::uint64_t v) {
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xFFu));
}
inline void put_varint(std::string& out, std::uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<char>((v & 0x7Fu) | 0x80u));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
}

// Protobuf wire types.
inline constexpr std::uint32_t wire_varint = 0, wire_fixed64 = 1, wire_bytes = 2, wire_fixed32 = 5;

inline void put_key(std::string& out, std::uint32_t field, std::uint32_t wire_type) {
  put_varint(out, (static_cast<std::uint64_t>(field) << 3) | wire_type);
}
/// A length-delimited field: a string, bytes or an embedded message.
inline void put_bytes(std::string& out, std::uint32_t field, std::string_view bytes) {
  put_key(out, field, wire_bytes);
  put_varint(out, bytes.size());
  out.append(bytes);
}
inline void put_double(std::string& out, std::uint32_t field, double v) {
  put_key(out, field, wire_fixed64);
  put_fixed64(out, std::bit_cast<std::uint64_t>(v));
}
inline void put_float(std::string& out, std::uint32_t field, float v) {
  put_key(out, field, wire_fixed32);
  put_fixed32(out, std::bit_cast<std::uint32_t>(v));
}
/// int64 and enums: a varint of the two's complement (ten bytes for a negative number).
inline void put_int64(std::string& out, std::uint32_t field, std::int64_t v) {
  put_key(out, field, wire_varint);
  put_varint(out, static_cast<std::uint64_t>(v));
}

/// An Event around `summary` (an encoded Summary; empty for none). proto3 leaves zero defaults out.
[[nodiscard]] std::string event(double wall_time, std::int64_t step, std::string_view summary);

/// A Summary holding one encoded Value.
[[nodiscard]] inline std::string summary_of(std::string_view value) {
  std::string out;
  put_bytes(out, 1, value);
  return out;
}

inline constexpr std::int64_t dt_string = 7;  // tensorflow.DataType DT_STRING

}  // namespace detail

/// One TFRecord: the payload's length (uint64, little-endian), the masked CRC-32C of those 8 bytes,
/// the payload, and the masked CRC-32C of the payload (both CRCs uint32, little-endian).
[[nodiscard]] std::string frame_record(std::string_view payload);

/// The first Event of every file: file_version "brain.Event:2", and the writer's name.
[[nodiscard]] std::string file_version_event(double wall_time, std::string_view writer = "trainpp");

/// An Event holding a scalar as SummaryWriter.add_scalar writes it: Value{tag, simple_value} (a float,
/// so the value is rounded to float32), no plugin metadata.
[[nodiscard]] std::string scalar_event(std::string_view tag, double value, std::int64_t step, double wall_time);

/// An Event holding text as SummaryWriter.add_text writes it: the tag `tag` + "/text_summary", a
/// TensorProto of dtype DT_STRING, shape [1] and string_val {text}, and plugin "text" (whose
/// content, TextPluginData{version: 0}, encodes to nothing).
[[nodiscard]] std::string text_event(std::string_view tag, std::string_view text, std::int64_t step,
                                     double wall_time);

/// Seconds since the Unix epoch, as Python's time.time().
[[nodiscard]] inline double now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

/// This machine's name, as Python's socket.gethostname() ("localhost" if it cannot be had).
[[nodiscard]] std::string hostname();

/// The name SummaryWriter gives a new event file: "events.out.tfevents.<unix seconds, 10 digits>.
/// <hostname>.<pid>.<n>", n counting the files this process opened (from 0), then `suffix`.
[[nodiscard]] std::string event_file_name(double wall_time, std::string_view suffix = {});

}  // namespace tfevents

/// One TensorBoard event file, as torch.utils.tensorboard.SummaryWriter writes it: opening creates
/// the log directory (and its parents) and a new file named as SummaryWriter names it, and writes its
/// first record (file_version "brain.Event:2") at once. Events are kept in memory and written on
/// flush(), close() or destruction (and whenever more than 1 MiB is waiting). Errors are thrown as
/// trainpp::Error naming the file; the events a failed write held are dropped. The destructor never
/// throws: it reports a failure as a warning. Move-only; not thread-safe.
class EventFileWriter {
 public:
  /// Opens a new event file in `log_dir`. `filename_suffix` is appended to the name, as SummaryWriter's.
  explicit EventFileWriter(std::filesystem::path log_dir, std::string_view filename_suffix = {});

  EventFileWriter(const EventFileWriter&) = delete;
  EventFileWriter& operator=(const EventFileWriter&) = delete;
  EventFileWriter(EventFileWriter&& other) noexcept
      : log_dir_(std::move(other.log_dir_)), path_(std::move(other.path_)),
        fd_(std::exchange(other.fd_, -1)), buffer_(std::exchange(other.buffer_, {})) {}
  EventFileWriter& operator=(EventFileWriter&& other) noexcept;
  ~EventFileWriter() { close_noexcept(); }

  /// A scalar at `step` (SummaryWriter.add_scalar): stored as a float32 simple_value. `wall_time`:
  /// seconds since the epoch, now by default.
  void add_scalar(std::string_view tag, double value, std::int64_t step,
                  std::optional<double> wall_time = std::nullopt) {
    add_event(tfevents::scalar_event(tag, value, step, wall_time.value_or(tfevents::now())));
  }

  /// Text at `step` (SummaryWriter.add_text): the text plugin shows it under `tag` + "/text_summary",
  /// rendered as Markdown.
  void add_text(std::string_view tag, std::string_view text, std::int64_t step = 0,
                std::optional<double> wall_time = std::nullopt) {
    add_event(tfevents::text_event(tag, text, step, wall_time.value_or(tfevents::now())));
  }

  /// An encoded Event, framed as a record and queued.
  void add_event(std::string_view event);

  /// Writes the queued events to the file (no fsync, as SummaryWriter.flush).
  void flush();

  /// Flushes and closes the file; adding events afterwards throws. Closing again does nothing.
  void close();

  [[nodiscard]] bool is_open() const { return fd_ >= 0; }
  /// The event file.
  [[nodiscard]] const std::filesystem::path& path() const { return path_; }
  /// The directory holding it.
  [[nodiscard]] const std::filesystem::path& log_dir() const { return log_dir_; }

 private:
  void close_noexcept() noexcept;

  std::filesystem::path log_dir_;
  std::filesystem::path path_;
  int fd_ = -1;
  std::string buffer_;
};

#if TRAINPP_DEFINITIONS

namespace tfevents {
namespace detail {

TRAINPP_INLINE std::string event(double wall_time, std::int64_t step, std::string_view summary) {
  std::string out;
  if (std::bit_cast<std::uint64_t>(wall_time) != 0) put_double(out, 1, wall_time);
  if (step != 0) put_int64(out, 2, step);
  if (!summary.empty()) put_bytes(out, 5, summary);
  return out;
}

}  // namespace detail

TRAINPP_INLINE std::string frame_record(std::string_view payload) {
  std::string out;
  out.reserve(payload.size() + 16);
  detail::put_fixed64(out, payload.size());
  detail::put_fixed32(out, masked_crc32c(std::string_view(out.data(), 8)));
  out.append(payload);
  detail::put_fixed32(out, masked_crc32c(payload));
  return out;
}

TRAINPP_INLINE std::string file_version_event(double wall_time, std::string_view writer) {
  std::string out;
  if (std::bit_cast<std::uint64_t>(wall_time) != 0) detail::put_double(out, 1, wall_time);
  detail::put_bytes(out, 3, "brain.Event:2");
  std::string source;
  if (!writer.empty()) detail::put_bytes(source, 1, writer);
  detail::put_bytes(out, 10, source);
  return out;
}

TRAINPP_INLINE std::string scalar_event(std::string_view tag, double value, std::int64_t step, double wall_time) {
  std::string v;
  if (!tag.empty()) detail::put_bytes(v, 1, tag);
  detail::put_float(v, 2, static_cast<float>(value));  // a oneof member: written even when 0
  return detail::event(wall_time, step, detail::summary_of(v));
}

TRAINPP_INLINE std::string text_event(std::string_view tag,
                                      std::string_view text,
                                      std::int64_t step,
                                      double wall_time) {
  std::string dim, shape, tensor, plugin, metadata, v;
  detail::put_int64(dim, 1, 1);  // Dim.size = 1
  detail::put_bytes(shape, 2, dim);
  detail::put_int64(tensor, 1, detail::dt_string);
  detail::put_bytes(tensor, 2, shape);
  detail::put_bytes(tensor, 8, text);
  detail::put_bytes(plugin, 1, "text");
  detail::put_bytes(metadata, 1, plugin);
  detail::put_bytes(v, 1, std::string(tag) + "/text_summary");
  detail::put_bytes(v, 8, tensor);
  detail::put_bytes(v, 9, metadata);
  return detail::event(wall_time, step, detail::summary_of(v));
}

TRAINPP_INLINE std::string hostname() {
  char name[256] = {};
  if (::gethostname(name, sizeof name - 1) != 0 || name[0] == '\0') return "localhost";
  return name;
}

TRAINPP_INLINE std::string event_file_name(double wall_time, std::string_view suffix) {
  static std::atomic<std::uint64_t> opened{0};
  return fmt::format("events.out.tfevents.{:010}.{}.{}.{}{}", static_cast<long long>(wall_time), hostname(),
                     static_cast<long long>(::getpid()), opened.fetch_add(1), suffix);
}

}  // namespace tfevents

TRAINPP_INLINE EventFileWriter::EventFileWriter(std::filesystem::path log_dir, std::string_view filename_suffix)
    : log_dir_(std::move(log_dir)) {
  std::error_code ec;
  std::filesystem::create_directories(log_dir_, ec);
  if (ec) throw error("cannot create the TensorBoard log directory {}: {}", log_dir_.string(), ec.message());
  const double t = tfevents::now();
  path_ = log_dir_ / tfevents::event_file_name(t, filename_suffix);
  fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
  if (fd_ < 0) throw error("cannot create TensorBoard event file {}: {}", path_.string(), trainpp::detail::errno_message(errno));
  try {
    add_event(tfevents::file_version_event(t));
    flush();
  } catch (...) {
    ::close(std::exchange(fd_, -1));  // no destructor runs for a constructor that throws
    throw;
  }
}

TRAINPP_INLINE EventFileWriter& EventFileWriter::operator=(EventFileWriter&& other) noexcept {
  if (this != &other) {
    close_noexcept();
    log_dir_ = std::move(other.log_dir_);
    path_ = std::move(other.path_);
    fd_ = std::exchange(other.fd_, -1);
    buffer_ = std::exchange(other.buffer_, {});
  }
  return *this;
}

TRAINPP_INLINE void EventFileWriter::add_event(std::string_view event) {
  if (fd_ < 0) throw error("cannot write TensorBoard event file {}: it is closed", path_.string());
  buffer_ += tfevents::frame_record(event);
  if (buffer_.size() > (std::size_t{1} << 20)) flush();
}

TRAINPP_INLINE void EventFileWriter::flush() {
  if (fd_ < 0) {
    if (buffer_.empty()) return;
    throw error("cannot write TensorBoard event file {}: it is closed", path_.string());
  }
  const std::string pending = std::exchange(buffer_, {});
  std::size_t done = 0;
  while (done < pending.size()) {
    const ::ssize_t n = ::write(fd_, pending.data() + done, pending.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw error("cannot write TensorBoard event file {}: {}", path_.string(), trainpp::detail::errno_message(errno));
    }
    done += static_cast<std::size_t>(n);
  }
}

TRAINPP_INLINE void EventFileWriter::close() {
  if (fd_ < 0) return;
  try {
    flush();
  } catch (...) {
    ::close(std::exchange(fd_, -1));
    throw;
  }
  if (::close(std::exchange(fd_, -1)) != 0)
    throw error("cannot write TensorBoard event file {}: close failed: {}", path_.string(),
                trainpp::detail::errno_message(errno));
}

TRAINPP_INLINE void EventFileWriter::close_noexcept() noexcept {
  try {
    close();
  } catch (const std::exception& e) {
    try {
      warn("{}", e.what());
    } catch (...) {
    }
  }
}

#endif  // TRAINPP_DEFINITIONS

}  // namespace trainpp
