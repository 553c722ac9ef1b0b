// Checkpoint files and directories: names, ordering, HF's rotation rules (checked against
// transformers' own rotate_checkpoints), the newest complete checkpoint, cleanup after interrupted
// saves, and the round trips of trainer_state.json, the optimizer state and the per-process state.

#include <trainpp/io/checkpoint.hpp>
#include <trainpp/optim/adamw.hpp>

#include <doctest/doctest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <set>
#include <string>
#include <vector>

#include <unistd.h>

namespace checkpoint_test {

namespace fs = std::filesystem;

struct TempDir {
  fs::path path = fs::temp_directory_path() /
                  fmt::format("trainpp-checkpoint-test-{}-{}", ::getpid(), std::random_device{}());
  TempDir() { fs::create_directories(path); }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

std::set<std::string> names_in(const fs::path& dir) {
  std::set<std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) out.insert(e.path().filename().string());
  return out;
}

/// A directory that passes is_complete_checkpoint.
void make_checkpoint(const fs::path& dir) {
  fs::create_directories(dir);
  std::ofstream(dir / "trainer_state.json") << "{}";
  std::ofstream(dir / "model.safetensors") << "x";
}

std::string message_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const trainpp::Error& e) {
    return e.what();
  }
  return "<no error>";
}

TEST_CASE("checkpoint_step accepts exactly checkpoint-<digits>") {
  CHECK(trainpp::checkpoint_step("checkpoint-12") == 12);
  CHECK(trainpp::checkpoint_step("checkpoint-0") == 0);
  CHECK(trainpp::checkpoint_dir_name(500) == "checkpoint-500");
  for (const char* bad : {"checkpoint-", "checkpoint-1a", "checkpoint-12.tmp", ".tmp-checkpoint-3-1-ab", "checkpoint--1",
                          "Checkpoint-3", "checkpoint-99999999999999999999999", "run-3", "checkpoint-+3"})
    CHECK_MESSAGE(!trainpp::checkpoint_step(bad), bad);
}

TEST_CASE("sorted_checkpoints orders by step number and moves the best before the newest") {
  TempDir dir;
  for (int step : {10, 9, 100, 2}) fs::create_directories(dir.path / fmt::format("checkpoint-{}", step));
  fs::create_directories(dir.path / ".tmp-checkpoint-200-1-ff");  // a staging directory: never listed
  std::ofstream(dir.path / "checkpoint-300") << "a file, not a checkpoint";
  auto names = [](const std::vector<fs::path>& paths) {
    std::vector<std::string> out;
    for (const auto& p : paths) out.push_back(p.filename().string());
    return out;
  };
  CHECK(names(trainpp::sorted_checkpoints(dir.path)) ==
        std::vector<std::string>{"checkpoint-2", "checkpoint-9", "checkpoint-10", "checkpoint-100"});
  CHECK(names(trainpp::sorted_checkpoints(dir.path, (dir.path / "checkpoint-2").string())) ==
        std::vector<std::string>{"checkpoint-9", "checkpoint-10", "checkpoint-2", "checkpoint-100"});
  CHECK(names(trainpp::sorted_checkpoints(dir.path, (dir.path / "checkpoint-100").string())) ==
        std::vector<std::string>{"checkpoint-2", "checkpoint-9", "checkpoint-10", "checkpoint-100"});
  CHECK(trainpp::sorted_checkpoints(dir.path / "missing").empty());
}

TEST_CASE("rotate_checkpoints keeps what transformers' rotate_checkpoints keeps") {
  const auto reference = nlohmann::json::parse(trainpp::read_file(TRAINPP_TEST_DATA_DIR "/io/rotation_reference.json"));
  REQUIRE(reference.at("cases").size() >= 10);
  for (const auto& c : reference.at("cases")) {
    TempDir dir;
    for (const auto& step : c.at("steps")) make_checkpoint(dir.path / fmt::format("checkpoint-{}", step.get<int>()));
    std::optional<std::int64_t> limit;
    if (!c.at("save_total_limit").is_null()) limit = c.at("save_total_limit").get<std::int64_t>();
    std::optional<std::string> best;
    if (!c.at("best").is_null()) best = (dir.path / fmt::format("checkpoint-{}", c.at("best").get<int>())).string();
    trainpp::rotate_checkpoints(dir.path, limit, best);
    std::vector<int> kept;
    for (const auto& p : trainpp::sorted_checkpoints(dir.path)) kept.push_back(static_cast<int>(*trainpp::checkpoint_step(p.filename().string())));
    CHECK_MESSAGE(kept == c.at("kept").get<std::vector<int>>(), c.dump());
    // Deletion goes through a ".tmp-" rename: nothing half-deleted stays under a checkpoint name.
    for (const auto& name : names_in(dir.path)) CHECK_MESSAGE(name.starts_with("checkpoint-"), name);
  }
}

TEST_CASE("last_checkpoint is the newest complete checkpoint, and interrupted saves are ignored and cleaned") {
  TempDir dir;
  CHECK(!trainpp::last_checkpoint(dir.path));
  make_checkpoint(dir.path / "checkpoint-4");
  make_checkpoint(dir.path / "checkpoint-8");
  fs::create_directories(dir.path / "checkpoint-12");  // incomplete: assembled by hand, no state file
  std::ofstream(dir.path / "checkpoint-12" / "model.safetensors") << "x";
  make_checkpoint(dir.path / ".tmp-checkpoint-16-99-abc");  // a save killed before it was published
  make_checkpoint(dir.path / ".tmp-checkpoint-4-deleted-99-abd");  // a deletion killed half-way
  CHECK(trainpp::last_checkpoint(dir.path) == dir.path / "checkpoint-8");

  CHECK(trainpp::remove_stale_staging(dir.path) == 2);
  CHECK(names_in(dir.path) == std::set<std::string>{"checkpoint-4", "checkpoint-8", "checkpoint-12"});
  trainpp::remove_dir_atomic(dir.path / "checkpoint-4");
  CHECK(names_in(dir.path) == std::set<std::string>{"checkpoint-8", "checkpoint-12"});
}

TEST_CASE("trainer_state.json round-trips and rejects wrong types, naming the file and the key") {
  trainpp::TrainerState s;
  s.epoch = 1.25;
  s.global_step = 40;
  s.max_steps = 100;
  s.logging_steps = 5;
  s.eval_steps = 10;
  s.save_steps = 20;
  s.train_batch_size = 16;
  s.num_train_epochs = 4;
  s.total_flos = 12345.5;
  s.log_history = nlohmann::json::array({{{"loss", 0.5}, {"grad_norm", 1.5}, {"learning_rate", 1e-3}, {"epoch", 0.5}, {"step", 5}},
                                         {{"eval_loss", 0.25}, {"eval_accuracy", 0.9}, {"epoch", 1.0}, {"step", 10}}});
  s.best_metric = 0.9;
  s.best_global_step = 20;
  s.best_model_checkpoint = "out/checkpoint-20";
  s.stateful_callbacks = {{"TrainerControl", {{"args", {{"should_save", true}, {"should_log", false}}}, {"attributes", nlohmann::json::object()}}}};
  const auto back = trainpp::trainer_state_from_json(s.to_json(), "state.json");
  CHECK(back.to_json() == s.to_json());
  const auto control = trainpp::control_from_state(back, "state.json");
  REQUIRE(control);
  CHECK(control->should_save);
  CHECK(!control->should_log);

  // A file from an older writer lacks keys: they keep their defaults, as HF's dataclass does.
  const auto minimal = trainpp::trainer_state_from_json({{"global_step", 3}, {"future_key", {1, 2}}}, "old.json");
  CHECK(minimal.global_step == 3);
  CHECK(!minimal.best_metric);

  struct Bad {
    nlohmann::json patch;
    const char* phrase;
  };
  const std::vector<Bad> cases{
      {{{"global_step", "40"}}, "\"global_step\" must be an integer"},
      {{{"global_step", -1}}, "\"global_step\" must be an integer of at least 0"},
      {{{"global_step", 1.5}}, "\"global_step\" must be an integer"},
      {{{"epoch", "one"}}, "\"epoch\" must be a number"},
      {{{"best_metric", true}}, "\"best_metric\" must be a number"},
      {{{"best_model_checkpoint", 7}}, "\"best_model_checkpoint\" must be a string"},
      {{{"log_history", {{"a", 1}}}}, "\"log_history\" must be an array of objects"},
      {{{"log_history", {1, 2}}}, "log_history[0] must be a JSON object"},
      {{{"log_history", {{{"loss", {{"nested", 1}}}}}}}, "log_history[0] \"loss\" must be a number, string"},
      {{{"log_history", {{{"step", "5"}}}}}, "log_history[0] \"step\" must be an integer"},
      {{{"stateful_callbacks", {1}}}, "\"stateful_callbacks\" must be an object"},
      {{{"is_world_process_zero", "yes"}}, "\"is_world_process_zero\" must be true or false"},
  };
  for (const auto& c : cases) {
    auto j = s.to_json();
    j.update(c.patch);
    const auto message = message_of([&] { (void)trainpp::trainer_state_from_json(j, "ckpt/trainer_state.json"); });
    CHECK_MESSAGE(message.starts_with("ckpt/trainer_state.json: "), message);
    CHECK_MESSAGE(message.find(c.phrase) != std::string::npos, message, " lacks ", c.phrase);
  }
  auto bad_control = s.to_json();
  bad_control["stateful_callbacks"]["TrainerControl"]["args"]["should_save"] = "true";
  const auto parsed = trainpp::trainer_state_from_json(bad_control, "c.json");
  CHECK(message_of([&] { (void)trainpp::control_from_state(parsed, "c.json"); }).find("\"should_save\" must be true or false") !=
        std::string::npos);
}

TEST_CASE("read_json_file refuses duplicate keys, NUL bytes and runaway nesting, naming the file") {
  TempDir dir;
  auto read = [&](const std::string& text) {
    trainpp::write_file_atomic(dir.path / "state.json", text);
    return message_of([&] { (void)trainpp::read_json_file(dir.path / "state.json"); });
  };
  CHECK(read(R"({"a": 1, "a": 2})").find("duplicate key \"a\"") != std::string::npos);
  CHECK(read(std::string("{\"a\": 1}\0", 9)).find("NUL byte") != std::string::npos);
  CHECK(read(std::string(100000, '[')).find("nested deeper than") != std::string::npos);
  CHECK(read("{\"a\": ").find("not valid JSON") != std::string::npos);
  CHECK(read("{\"a\": 1}").find((dir.path / "state.json").string()) == std::string::npos);  // valid: no error
  CHECK(read("").find((dir.path / "state.json").string()) != std::string::npos);
  CHECK(message_of([&] { (void)trainpp::read_json_file(dir.path / "missing.json"); }).find("missing.json") != std::string::npos);
}

TEST_CASE("the optimizer state file round-trips an AdamW mid-training, names and group rates included") {
  TempDir dir;
  auto w = torch::randn({3, 2}).requires_grad_();
  auto b = torch::zeros({3}).requires_grad_();
  std::vector<trainpp::ParamGroup> groups(2);
  groups[0].params = {w};
  groups[0].names = {"fc.weight"};
  groups[0].lr = groups[0].initial_lr = 1e-3;
  groups[0].weight_decay = 0.01;
  groups[1].params = {b};
  groups[1].names = {"fc.bias"};
  groups[1].lr = 7e-4;
  groups[1].initial_lr = 1e-3;
  trainpp::AdamW adam(groups, trainpp::AdamWOptions{});
  for (int i = 0; i < 3; ++i) {
    adam.zero_grad();
    (w.sum() * 2 + b.pow(2).sum() + 1).backward();
    adam.step();
  }
  const auto path = dir.path / trainpp::optimizer_state_name;
  trainpp::save_optimizer_state(path, adam.state(), adam.param_groups());
  const auto saved = trainpp::load_optimizer_state(path);
  REQUIRE(saved.groups.size() == 2);
  CHECK(saved.group_sizes == std::vector<std::size_t>{1, 1});
  CHECK(saved.groups[1].lr == 7e-4);
  CHECK(saved.groups[0].weight_decay == 0.01);
  CHECK(saved.groups[0].names == std::vector<std::string>{"fc.weight"});
  REQUIRE(saved.state.size() == 2);
  const auto live = adam.state();
  for (std::size_t i = 0; i < 2; ++i)
    for (const char* key : {"exp_avg", "exp_avg_sq", "step"}) CHECK(torch::equal(saved.state[i].at(key), live[i].at(key)));

  // Loaded into a fresh AdamW, the next step is the same as the original's.
  auto w2 = w.detach().clone().requires_grad_();
  auto b2 = b.detach().clone().requires_grad_();
  auto groups2 = groups;
  groups2[0].params = {w2};
  groups2[1].params = {b2};
  trainpp::AdamW resumed(groups2, trainpp::AdamWOptions{});
  resumed.load_state(saved.state);
  for (auto* o : {&adam, &resumed}) o->zero_grad();
  (w.sum() * 2 + b.pow(2).sum() + 1).backward();
  (w2.sum() * 2 + b2.pow(2).sum() + 1).backward();
  adam.step();
  resumed.step();
  CHECK(torch::equal(w, w2));
  CHECK(torch::equal(b, b2));

  // A file that is not an optimizer state says so.
  trainpp::save_safetensors(dir.path / "other.safetensors", {{"state.0.exp_avg", torch::zeros({1})}});
  CHECK(message_of([&] { (void)trainpp::load_optimizer_state(dir.path / "other.safetensors"); })
            .find("lacks \"trainpp.optimizer\"") != std::string::npos);
}

TEST_CASE("the process state round-trips the random generator and the loop's sums") {
  TempDir dir;
  torch::manual_seed(123);
  (void)torch::rand({10});
  auto captured = trainpp::capture_rng_state();
  const auto expected = torch::rand({5});  // what the generator yields after the capture
  captured.tr_loss = torch::tensor(3.25f);
  captured.total_loss_scalar = 0.1 + 0.2;  // not representable exactly in decimal: must survive bit for bit
  captured.globalstep_last_logged = 30;
  captured.scheduler_steps = 31;
  const auto path = dir.path / trainpp::process_state_name(0, 1);
  CHECK(path.filename() == "process_state.safetensors");
  CHECK(trainpp::process_state_name(3, 4) == "process_state_3.safetensors");
  trainpp::save_process_state(path, captured);

  torch::manual_seed(999);  // move the generator elsewhere
  const auto loaded = trainpp::load_process_state(path);
  trainpp::restore_rng_state(loaded, path.string());
  CHECK(torch::equal(torch::rand({5}), expected));
  CHECK(loaded.tr_loss.item<float>() == 3.25f);
  CHECK(loaded.total_loss_scalar == 0.1 + 0.2);
  CHECK(loaded.globalstep_last_logged == 30);
  CHECK(loaded.scheduler_steps == 31);
  CHECK(loaded.rank == 0);
  CHECK(loaded.world_size == 1);

  // A generator state of the wrong size is refused before it reaches the generator.
  auto broken = loaded;
  broken.cpu_rng = torch::zeros({7}, torch::kUInt8);
  CHECK(message_of([&] { trainpp::restore_rng_state(broken, "p.safetensors"); }).find("rng.cpu holds 7 bytes") !=
        std::string::npos);
}

}  // namespace checkpoint_test
