// TensorBoard event files: CRC-32C, the TFRecord framing, the encoded Events (against the bytes
// Python's protobuf writes for the same messages), EventFileWriter, the TensorBoard callback's log
// directory and hooks, and a real training run whose event file TensorBoard's own reader loads back
// with the trainer's log_history (tests/trainpp/callbacks/check_tensorboard.py).

#include <trainpp/callbacks/tensorboard.hpp>
#include <trainpp/trainpp.hpp>

#include <doctest/doctest.h>

#include "skip.hpp"

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <random>
#include <regex>
#include <string>
#include <vector>

#include <unistd.h>

namespace tensorboard_test {

namespace fs = std::filesystem;

struct TempDir {
  fs::path path = fs::temp_directory_path() /
                  fmt::format("trainpp-tensorboard-test-{}-{}", ::getpid(), std::random_device{}());
  TempDir() { fs::create_directories(path); }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

std::string hex(std::string_view bytes) {
  std::string out;
  for (const char c : bytes) out += fmt::format("{:02x}", static_cast<unsigned char>(c));
  return out;
}

std::uint64_t little_endian(std::string_view bytes, std::size_t at, int width) {
  std::uint64_t v = 0;
  for (int i = width - 1; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(bytes[at + static_cast<std::size_t>(i)]);
  return v;
}

// The payloads of a TFRecord file, every length and CRC checked.
std::vector<std::string> read_records(const fs::path& file) {
  const std::string bytes = trainpp::read_file(file);
  std::vector<std::string> out;
  std::size_t pos = 0;
  while (pos < bytes.size()) {
    REQUIRE(bytes.size() - pos >= 16);
    const auto length = little_endian(bytes, pos, 8);
    REQUIRE(little_endian(bytes, pos + 8, 4) == trainpp::tfevents::masked_crc32c(std::string_view(bytes).substr(pos, 8)));
    REQUIRE(bytes.size() - pos - 16 >= length);
    std::string payload = bytes.substr(pos + 12, length);
    REQUIRE(little_endian(bytes, pos + 12 + length, 4) == trainpp::tfevents::masked_crc32c(payload));
    out.push_back(std::move(payload));
    pos += 16 + length;
  }
  return out;
}

std::vector<fs::path> files_in(const fs::path& dir) {
  std::vector<fs::path> out;
  for (const auto& e : fs::directory_iterator(dir)) out.push_back(e.path());
  return out;
}

std::string shell_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

// The interpreter that runs check_tensorboard.py. It must be able to import tensorboard (the checker
// fails loudly when it cannot); without TRAINPP_PYTHON at all the interop check is skipped.
std::optional<std::string> python() {
#ifdef TRAINPP_PYTHON
  return std::string(TRAINPP_PYTHON);
#else
  TRAINPP_SKIPPED("TensorBoard interop: TRAINPP_PYTHON is not defined, so there is no interpreter to run "
          "tests/trainpp/callbacks/check_tensorboard.py (which needs the pip package tensorboard) with");
  return std::nullopt;
#endif
}

int run_checker(const std::string& interpreter, const fs::path& log_dir, const fs::path& expected, bool quiet = false) {
  const std::string script = TRAINPP_SOURCE_DIR "/tests/trainpp/callbacks/check_tensorboard.py";
  return std::system(fmt::format("{} {} {} {}{}", shell_quote(interpreter), shell_quote(script),
                                 shell_quote(log_dir.string()), shell_quote(expected.string()),
                                 quiet ? " >/dev/null 2>&1" : "")
                         .c_str());
}

void write_text(const fs::path& path, const std::string& text) {
  std::ofstream(path, std::ios::binary) << text;
}

struct NetImpl : torch::nn::Module {
  torch::nn::Linear fc1{4, 8}, fc2{8, 3};
  NetImpl() {
    register_module("fc1", fc1);
    register_module("fc2", fc2);
  }
  trainpp::ModelOutput forward(const trainpp::Batch& b) {
    trainpp::ModelOutput out{.logits = fc2(torch::relu(fc1(b.at("x"))))};
    if (b.contains("labels")) out.loss = torch::nn::functional::cross_entropy(out.logits, b.at("labels"));
    return out;
  }
};
TORCH_MODULE(Net);

trainpp::TensorDataset data(std::int64_t n, std::uint64_t seed) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  auto x = torch::randn({n, 4}, gen);
  auto labels = (x.select(1, 0) > 0).to(torch::kLong) + (x.select(1, 1) > 0.5).to(torch::kLong);
  return trainpp::TensorDataset{{"x", x}, {"labels", labels}};
}

// Unsets TENSORBOARD_LOGGING_DIR (HF's override of the log directory) for a scope.
struct WithoutLoggingDirEnv {
  std::optional<std::string> saved;
  WithoutLoggingDirEnv() {
    if (const char* v = std::getenv("TENSORBOARD_LOGGING_DIR")) saved = v;
    ::unsetenv("TENSORBOARD_LOGGING_DIR");
  }
  ~WithoutLoggingDirEnv() {
    if (saved) ::setenv("TENSORBOARD_LOGGING_DIR", saved->c_str(), 1);
    else ::unsetenv("TENSORBOARD_LOGGING_DIR");
  }
};

// "<Mon><dd>_<HH>-<MM>-<SS>_<hostname>", SummaryWriter's run directory name.
bool is_default_run_name(const std::string& name) {
  return std::regex_match(name.substr(0, 15), std::regex(R"([A-Z][a-z]{2}\d{2}_\d{2}-\d{2}-\d{2}_)")) &&
         name.size() > 15 && name.substr(15) == trainpp::tfevents::hostname();
}

TEST_CASE("tfevents crc32c gives the CRC-32C (Castagnoli) check values") {
  using trainpp::tfevents::crc32c;
  static_assert(crc32c("123456789") == 0xE3069283u);  // the standard check value, at compile time
  CHECK(crc32c("123456789") == 0xE3069283u);
  CHECK(crc32c("") == 0u);
  // RFC 3720 (iSCSI) B.4: 32 bytes of zeros, of 0xFF, and 0..31 ascending.
  CHECK(crc32c(std::string(32, '\0')) == 0x8A9136AAu);
  CHECK(crc32c(std::string(32, '\xff')) == 0x62A8AB43u);
  std::string ascending;
  for (int i = 0; i < 32; ++i) ascending.push_back(static_cast<char>(i));
  CHECK(crc32c(ascending) == 0x46DD794Eu);
  CHECK(crc32c("6789", crc32c("12345")) == 0xE3069283u);  // continued over pieces
  // The masked form TFRecord stores (values from tensorboard's masked_crc32c).
  CHECK(trainpp::tfevents::masked_crc32c("123456789") == 0xC78AB0E5u);
  CHECK(trainpp::tfevents::masked_crc32c("") == 0xA282EAD8u);
  CHECK(trainpp::tfevents::masked_crc32c("abc") == 0x21F1576Eu);
}

TEST_CASE("tfevents frame_record lays out a TFRecord: length, masked CRC of it, payload, masked CRC") {
  const auto record = trainpp::tfevents::frame_record("abc");
  // length 3 (uint64 LE), masked CRC of those 8 bytes 0x0E4999B0, "abc", masked CRC of "abc" 0x21F1576E.
  CHECK(hex(record) == "0300000000000000" "b099490e" "616263" "6e57f121");
  const auto empty = trainpp::tfevents::frame_record("");
  CHECK(empty.size() == 16);
  CHECK(little_endian(empty, 12, 4) == 0xA282EAD8u);
}

TEST_CASE("tfevents encodes each Event byte for byte as Python's protobuf serializes it") {
  // References: tensorboard.compat.proto.event_pb2.Event(...).SerializeToString(), with the
  // summaries of torch.utils.tensorboard.summary.scalar / text.
  CHECK(hex(trainpp::tfevents::file_version_event(1.5)) ==
        "09000000000000f83f1a0d627261696e2e4576656e743a3252090a07747261696e7070");
  CHECK(hex(trainpp::tfevents::scalar_event("train/loss", 0.25, 3, 1700000000.25)) ==
        "0900001040fc54d94110032a130a110a0a747261696e2f6c6f7373150000803e");
  // A zero value is still written (simple_value is a oneof member); a negative step is ten bytes.
  CHECK(hex(trainpp::tfevents::scalar_event("x", 0.0, -1, 2.0)) ==
        "09000000000000004010ffffffffffffffffff012a0a0a080a01781500000000");
  // Step 0 is proto3's default and left out; the tag gets "/text_summary" as SummaryWriter.add_text's.
  CHECK(hex(trainpp::tfevents::text_event("args", "h\xc3\xa9llo", 0, 2.0)) ==
        "0900000000000000402a310a2f0a11617267732f746578745f73756d6d61727942100807120412020801420668c3a96c6c6f4a08"
        "0a060a0474657874");
}

TEST_CASE("EventFileWriter names its file as SummaryWriter, writes the version at once and the rest on flush") {
  TempDir dir;
  const auto log_dir = dir.path / "a" / "b";  // created, parents included
  std::optional<trainpp::EventFileWriter> writer(std::in_place, log_dir);
  const auto file = writer->path();
  CHECK(file.parent_path() == log_dir);
  CHECK(files_in(log_dir) == std::vector<fs::path>{file});
  const std::regex name(fmt::format(R"(events\.out\.tfevents\.\d{{10}}\.{}\.{}\.\d+)",
                                    std::regex_replace(trainpp::tfevents::hostname(), std::regex(R"([.^$|()\[\]{}*+?\\])"), R"(\$&)"),
                                    ::getpid()));
  CHECK(std::regex_match(file.filename().string(), name));

  auto records = read_records(file);
  REQUIRE(records.size() == 1);
  CHECK(records[0].find("brain.Event:2") != std::string::npos);

  writer->add_scalar("train/loss", 0.5, 7, 100.0);
  writer->add_text("note", "hello", 7, 101.0);
  CHECK(read_records(file).size() == 1);  // buffered
  writer->flush();
  records = read_records(file);
  REQUIRE(records.size() == 3);
  CHECK(records[1] == trainpp::tfevents::scalar_event("train/loss", 0.5, 7, 100.0));
  CHECK(records[2] == trainpp::tfevents::text_event("note", "hello", 7, 101.0));

  // Moved, the writer keeps its file; destruction flushes what is pending.
  trainpp::EventFileWriter moved = std::move(*writer);
  writer.reset();
  moved.add_scalar("train/loss", 0.25, 8, 102.0);
  { trainpp::EventFileWriter last = std::move(moved); }
  records = read_records(file);
  REQUIRE(records.size() == 4);
  CHECK(records[3] == trainpp::tfevents::scalar_event("train/loss", 0.25, 8, 102.0));

  // A second writer in the same directory opens a file of its own (the counter in the name).
  trainpp::EventFileWriter second(log_dir);
  CHECK(second.path() != file);
  CHECK(files_in(log_dir).size() == 2);
}

TEST_CASE("EventFileWriter errors name the directory or the file") {
  TempDir dir;
  write_text(dir.path / "plain", "x");
  CHECK_THROWS_WITH_AS(trainpp::EventFileWriter(dir.path / "plain" / "logs"),
                       doctest::Contains((dir.path / "plain" / "logs").c_str()), trainpp::Error);
  trainpp::EventFileWriter writer(dir.path / "logs");
  writer.close();
  writer.close();  // again: nothing
  CHECK_FALSE(writer.is_open());
  CHECK_THROWS_WITH_AS(writer.add_scalar("x", 1, 1), doctest::Contains(writer.path().c_str()), trainpp::Error);
}

TEST_CASE("rewrite_logs renames log keys as HF's rewrite_logs") {
  const nlohmann::json logs{{"loss", 1.0},      {"eval_loss", 2.0}, {"test_accuracy", 3.0},
                            {"epoch", 1.5},     {"evaluation", 4},  {"train_runtime", 5.0}};
  const nlohmann::json want{{"train/loss", 1.0},  {"eval/loss", 2.0},      {"test/accuracy", 3.0},
                            {"train/epoch", 1.5}, {"train/evaluation", 4}, {"train/train_runtime", 5.0}};
  CHECK(trainpp::rewrite_logs(logs) == want);
}

TEST_CASE("TensorBoard picks HF's log directory unless logging_dir names another") {
  trainpp::TrainingArguments args;
  args.output_dir = "/tmp/some-output";
  args.finalize();  // sets logging_dir to output_dir/runs, which means "HF's default"
  const WithoutLoggingDirEnv without_env;

  const auto dir = trainpp::TensorBoard::resolve_log_dir(args);
  CHECK(dir.parent_path() == fs::path("/tmp/some-output/runs"));
  CHECK_MESSAGE(is_default_run_name(dir.filename().string()), dir);

  ::setenv("TENSORBOARD_LOGGING_DIR", "/tmp/from-env", 1);  // HF's variable
  CHECK(trainpp::TensorBoard::resolve_log_dir(args) == fs::path("/tmp/from-env"));
  args.logging_dir = "/tmp/mine";  // an explicit logging_dir wins
  CHECK(trainpp::TensorBoard::resolve_log_dir(args) == fs::path("/tmp/mine"));
}

TEST_CASE("TensorBoard writes on the main process only, and its copies share one writer") {
  TempDir dir;
  trainpp::TrainingArguments args;
  args.output_dir = (dir.path / "out").string();
  args.logging_dir = (dir.path / "tb").string();
  args.finalize();
  trainpp::TrainerState state;
  trainpp::TrainerControl control;

  trainpp::TensorBoard tb;
  state.is_world_process_zero = false;
  tb.on_train_begin(args, state, control);
  tb.on_log(args, state, control, nlohmann::json{{"loss", 1.0}});
  CHECK_FALSE(tb.log_dir());
  CHECK_FALSE(fs::exists(dir.path / "tb"));

  state.is_world_process_zero = true;
  state.global_step = 4;
  auto copy = tb;
  copy.on_train_begin(args, state, control);
  REQUIRE(tb.event_file());  // opened through the copy, seen through the original
  CHECK(tb.log_dir() == dir.path / "tb");
  copy.on_log(args, state, control,
              nlohmann::json{{"loss", 0.5}, {"eval_note", "hi"}, {"odd", nullptr}, {"flag", true}, {"step_count", 3}});
  const auto records = read_records(*tb.event_file());  // on_log flushed
  REQUIRE(records.size() == 6);  // version, args, and 4 of the 5 values (null is skipped)
  CHECK(records[1].find("args/text_summary") != std::string::npos);
  CHECK(records[1].find(args.output_dir) != std::string::npos);
  std::string all;
  for (const auto& r : records) all += r;
  for (const auto* tag : {"train/loss", "eval/note/text_summary", "train/flag", "train/step_count"})
    CHECK_MESSAGE(all.find(tag) != std::string::npos, tag);
  CHECK(all.find("train/odd") == std::string::npos);

  const auto file = *tb.event_file();
  tb.on_train_end(args, state, control);
  CHECK_FALSE(copy.event_file());
  // A log after training (an evaluate() call) opens a new file in the same directory.
  tb.on_log(args, state, control, nlohmann::json{{"eval_loss", 0.1}});
  REQUIRE(copy.event_file());
  CHECK(*copy.event_file() != file);
  CHECK(copy.event_file()->parent_path() == dir.path / "tb");
}

TEST_CASE("TensorBoard event files of a training run read back in TensorBoard with the log_history values" *
          doctest::test_suite("integration")) {
  const WithoutLoggingDirEnv without_env;
  TempDir dir;
  trainpp::TrainingArguments args;
  args.output_dir = (dir.path / "out").string();
  args.disable_tqdm = true;
  args.save_strategy = trainpp::SaveStrategy::no;
  args.eval_strategy = trainpp::IntervalStrategy::steps;
  args.logging_steps = 1;
  args.per_device_train_batch_size = 4;
  args.per_device_eval_batch_size = 8;
  args.num_train_epochs = 2;
  args.learning_rate = 0.05;
  args.warmup_steps = 2;

  trainpp::TensorBoard tb;  // a copy goes into the list; this one sees the same writer
  trainpp::Trainer trainer(Net{}, args, trainpp::train_dataset = data(16, 3), trainpp::eval_dataset = data(8, 4),
                           trainpp::compute_metrics = trainpp::accuracy,
                           trainpp::callbacks = trainpp::callback_list(tb));
  trainer.train();
  const auto& history = trainer.state().log_history;
  REQUIRE(history.size() == 17);  // 8 steps logged and evaluated, then the train metrics

  // HF's default directory: output_dir/runs/<time>_<host>, holding one file, closed at on_train_end.
  REQUIRE(tb.log_dir());
  const auto log_dir = *tb.log_dir();
  CHECK(log_dir.parent_path() == dir.path / "out" / "runs");
  CHECK_MESSAGE(is_default_run_name(log_dir.filename().string()), log_dir);
  CHECK_FALSE(tb.event_file());
  const auto files = files_in(log_dir);
  REQUIRE(files.size() == 1);

  // Read here: the version, the arguments, then one record per number in the log history.
  std::size_t numbers = 0;
  for (const auto& entry : history)
    for (const auto& [key, value] : entry.items()) numbers += key != "step" && value.is_number();
  CHECK(read_records(files[0]).size() == 2 + numbers);

  const auto interpreter = python();
  if (!interpreter) return;
  const auto expected = dir.path / "expected.json";
  write_text(expected, nlohmann::json{{"output_dir", args.output_dir}, {"log_history", history}}.dump());
  CHECK(run_checker(*interpreter, log_dir, expected) == 0);

  // The check can fail: a logged value that differs from the file ...
  auto changed = history;
  changed[0]["loss"] = changed[0]["loss"].get<double>() + 1e-3;
  write_text(dir.path / "changed.json", nlohmann::json{{"output_dir", args.output_dir}, {"log_history", changed}}.dump());
  CHECK(run_checker(*interpreter, log_dir, dir.path / "changed.json", /*quiet=*/true) != 0);
  // ... and a file with one bit flipped in a record, which TensorBoard's reader rejects by its CRC.
  const auto broken_dir = dir.path / "broken";
  fs::create_directories(broken_dir);
  std::string bytes = trainpp::read_file(files[0]);
  bytes[bytes.size() - 6] ^= 0x01;  // inside the last record's payload
  write_text(broken_dir / files[0].filename(), bytes);
  CHECK(run_checker(*interpreter, broken_dir, expected, /*quiet=*/true) != 0);
}

}  // namespace tensorboard_test
