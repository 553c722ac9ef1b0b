// The callback events against transformers' own Trainer (tools/reference/gen_callback_reference.py
// recorded them): every event in HF's order, at HF's global step, with the control flags set when a
// user callback sees it and the keys of the logs and metrics it carries. Two runs: one where the
// arguments drive logging, evaluation and saving (with gradient accumulation and a shorter last
// window), and one where a callback steers the loop through TrainerControl alone.

#include <trainpp/trainpp.hpp>

// The macros that generate the hooks and the member-name probes stay inside their headers.
#if defined(TRAINPP_DETAIL_HOOK) || defined(TRAINPP_DETAIL_DECLARES) || defined(TRAINPP_DETAIL_PLAIN)
#error "trainpp's helper macros leak into user code"
#endif

#include <doctest/doctest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

namespace hook_order_test {

using nlohmann::json;
using Args = trainpp::TrainingArguments;
using State = trainpp::TrainerState;
using Control = trainpp::TrainerControl;

struct MlpImpl : torch::nn::Module {
  torch::nn::Linear hidden{4, 8};
  torch::nn::Linear head{8, 3};
  MlpImpl() {
    register_module("hidden", hidden);
    register_module("head", head);
  }
  trainpp::ModelOutput forward(const trainpp::Batch& batch) {
    trainpp::ModelOutput out{.logits = head(torch::tanh(hidden(batch.at("features"))))};
    if (batch.contains("labels")) out.loss = torch::nn::functional::cross_entropy(out.logits, batch.at("labels"));
    return out;
  }
};
TORCH_MODULE(Mlp);

/// The control flags that are set, by name in alphabetical order (as the reference lists them).
json flags_set(const Control& control) {
  json flags = json::array();
  if (control.should_epoch_stop) flags.push_back("should_epoch_stop");
  if (control.should_evaluate) flags.push_back("should_evaluate");
  if (control.should_log) flags.push_back("should_log");
  if (control.should_save) flags.push_back("should_save");
  if (control.should_training_stop) flags.push_back("should_training_stop");
  return flags;
}

json sorted_keys(const json& object) {
  std::vector<std::string> keys;
  for (const auto& [key, value] : object.items()) keys.push_back(key);
  std::ranges::sort(keys);
  return keys;
}
json sorted_keys(const trainpp::Metrics& metrics) {
  json keys = json::array();
  for (const auto& [key, value] : metrics) keys.push_back(key);  // a std::map: already sorted
  return keys;
}

/// Records every event as the reference's recorder does. The Trainer holds callbacks by value: the
/// records live behind a shared pointer that the test keeps.
struct Recorder {
  std::shared_ptr<json> events = std::make_shared<json>(json::array());

  void add(const char* event, const State& state, const Control& control, json keys = nullptr) const {
    json record{{"event", event}, {"step", state.global_step}, {"flags", flags_set(control)}};
    if (!keys.is_null()) record["keys"] = std::move(keys);
    events->push_back(std::move(record));
  }
  void on_init_end(const Args&, const State& s, Control& c) { add("on_init_end", s, c); }
  void on_train_begin(const Args&, const State& s, Control& c) { add("on_train_begin", s, c); }
  void on_epoch_begin(const Args&, const State& s, Control& c) { add("on_epoch_begin", s, c); }
  void on_step_begin(const Args&, const State& s, Control& c) { add("on_step_begin", s, c); }
  void on_substep_end(const Args&, const State& s, Control& c) { add("on_substep_end", s, c); }
  void on_pre_optimizer_step(const Args&, const State& s, Control& c) { add("on_pre_optimizer_step", s, c); }
  void on_optimizer_step(const Args&, const State& s, Control& c) { add("on_optimizer_step", s, c); }
  void on_step_end(const Args&, const State& s, Control& c) { add("on_step_end", s, c); }
  void on_log(const Args&, const State& s, Control& c, const json& logs) { add("on_log", s, c, sorted_keys(logs)); }
  void on_evaluate(const Args&, const State& s, Control& c, const trainpp::Metrics& m) {
    add("on_evaluate", s, c, sorted_keys(m));
  }
  void on_prediction_step(const Args&, const State& s, Control& c) { add("on_prediction_step", s, c); }
  void on_predict(const Args&, const State& s, Control& c, const trainpp::Metrics& m) {
    add("on_predict", s, c, sorted_keys(m));
  }
  void on_save(const Args&, const State& s, Control& c) { add("on_save", s, c); }
  void on_epoch_end(const Args&, const State& s, Control& c) { add("on_epoch_end", s, c); }
  void on_train_end(const Args&, const State& s, Control& c) { add("on_train_end", s, c); }
};

/// Sets control flags at chosen global steps, from on_step_end and on_epoch_end, after the default
/// flow has set its own.
struct Steering {
  std::int64_t log_and_save_at = -1;
  std::int64_t evaluate_at = -1;
  std::int64_t stop_epoch_at = -1;
  std::int64_t stop_training_at = -1;
  std::int64_t log_and_save_at_epoch_end = -1;

  void on_step_end(const Args&, const State& state, Control& control) const {
    if (state.global_step == log_and_save_at) control.should_log = control.should_save = true;
    if (state.global_step == evaluate_at) control.should_evaluate = true;
    if (state.global_step == stop_epoch_at) control.should_epoch_stop = true;
    if (state.global_step == stop_training_at) control.should_training_stop = true;
  }
  void on_epoch_end(const Args&, const State& state, Control& control) const {
    if (state.global_step == log_and_save_at_epoch_end) control.should_log = control.should_save = true;
  }
};

json load_reference() {
  std::ifstream in(TRAINPP_TEST_DATA_DIR "/callbacks/callback_reference.json");
  REQUIRE(in.good());
  return json::parse(in);
}

const json& reference_case(const json& reference, const std::string& name) {
  const json* found = nullptr;
  for (const auto& c : reference["cases"])
    if (c["name"] == name) found = &c;
  REQUIRE_MESSAGE(found != nullptr, "no case " << name << " in callback_reference.json");
  return *found;
}

/// The reference's arguments as command-line flags, through trainpp's parser as a user would give them.
Args args_of(const json& c, const std::filesystem::path& output_dir) {
  std::vector<std::string> flags{"--output_dir", output_dir.string()};
  for (const auto& [key, value] : c["args"].items()) {
    flags.push_back("--" + key);
    flags.push_back(value.is_string() ? value.get<std::string>() : value.dump());
  }
  return std::get<0>(trainpp::parse_args_into<Args>(flags));
}

trainpp::TensorDataset rows(std::int64_t n, at::Generator& generator) {
  return trainpp::TensorDataset{{"features", torch::randn({n, 4}, generator)},
                                {"labels", torch::randint(0, 3, {n}, generator)}};
}

/// A fresh output directory per case: the Trainer refuses to start on another run's checkpoints.
std::filesystem::path fresh_output_dir(const std::string& name) {
  const auto dir = std::filesystem::temp_directory_path() / "trainpp_hook_order_test" / name;
  std::filesystem::remove_all(dir);
  return dir;
}

json checkpoints_in(const std::filesystem::path& dir) {
  std::vector<std::string> names;
  if (std::filesystem::is_directory(dir))
    for (const auto& entry : std::filesystem::directory_iterator(dir))
      if (entry.is_directory() && entry.path().filename().string().starts_with("checkpoint-"))
        names.push_back(entry.path().filename().string());
  std::ranges::sort(names, {}, [](const std::string& name) { return std::stoll(name.substr(name.find('-') + 1)); });
  return names;
}

std::string describe(const json& record) {
  std::string text = record["event"].get<std::string>() + "@" + std::to_string(record["step"].get<std::int64_t>()) +
                     " flags " + record["flags"].dump();
  if (record.contains("keys")) text += " keys " + record["keys"].dump();
  return text;
}

/// Every event as HF fires it; on the first difference, both sequences around it.
void check_events(const json& ours, const json& hf) {
  std::size_t first_difference = std::min(ours.size(), hf.size());
  for (std::size_t i = 0; i < std::min(ours.size(), hf.size()); ++i)
    if (ours[i] != hf[i]) {
      first_difference = i;
      break;
    }
  std::string context;
  const std::size_t from = first_difference >= 3 ? first_difference - 3 : 0;
  for (std::size_t i = from; i < std::max(ours.size(), hf.size()) && i < first_difference + 4; ++i)
    context += "\n  [" + std::to_string(i) + "] trainpp " + (i < ours.size() ? describe(ours[i]) : "-") +
               "\n  " + std::string(std::to_string(i).size() + 2, ' ') + " HF      " +
               (i < hf.size() ? describe(hf[i]) : "-");
  INFO("events: trainpp " << ours.size() << ", HF " << hf.size() << "; first difference at " << first_difference
                          << context);
  const bool same_events = ours == hf;  // a named bool: doctest would print both whole sequences
  CHECK(same_events);
}

/// log_history as (step, sorted keys, epoch), as the reference holds it.
void check_log_history(const json& ours, const json& hf) {
  REQUIRE(ours.size() == hf.size());
  for (std::size_t i = 0; i < hf.size(); ++i) {
    const auto& entry = ours[i];
    std::vector<std::string> keys;
    for (const auto& [key, value] : entry.items())
      if (key != "step") keys.push_back(key);
    std::ranges::sort(keys);
    INFO("log_history[" << i << "] trainpp " << entry.dump() << " HF " << hf[i].dump());
    CHECK(entry["step"] == hf[i]["step"]);
    CHECK(json(keys) == hf[i]["keys"]);
    REQUIRE(entry.contains("epoch") == !hf[i]["epoch"].is_null());
    if (entry.contains("epoch"))
      CHECK(entry["epoch"].get<double>() == doctest::Approx(hf[i]["epoch"].get<double>()).epsilon(1e-12));
  }
}

struct Run {
  json events;
  json log_history;
  json checkpoints;
  std::int64_t global_step = 0;
};

/// Trains as the reference did, with `user_callbacks` (the recorder last), then predicts when asked.
template <class... UserCallbacks>
Run run(const json& c, bool predict_after, UserCallbacks... user_callbacks) {
  const auto output_dir = fresh_output_dir(c["name"].get<std::string>());
  auto generator = at::make_generator<at::CPUGeneratorImpl>(1234);
  const auto train = rows(c["n_train"].get<std::int64_t>(), generator);
  const auto evaluation = rows(c["n_eval"].get<std::int64_t>(), generator);
  Recorder recorder;
  trainpp::Trainer trainer(Mlp{}, args_of(c, output_dir), trainpp::train_dataset = train,
                           trainpp::eval_dataset = evaluation,
                           trainpp::callbacks = trainpp::callback_list(user_callbacks..., recorder));
  trainer.train();
  if (predict_after) trainer.predict(evaluation);
  Run result{*recorder.events, trainer.state().log_history, checkpoints_in(output_dir), trainer.state().global_step};
  std::filesystem::remove_all(output_dir);
  return result;
}

TEST_CASE("callback events fire in transformers' order with accumulation, logging, evaluation and saving") {
  const auto reference = load_reference();
  const auto& c = reference_case(reference, "hook_order");
  // The run reaches every hook, so that none can fire out of place unnoticed.
  for (const auto* hook : {"on_init_end", "on_train_begin", "on_epoch_begin", "on_step_begin", "on_substep_end",
                           "on_pre_optimizer_step", "on_optimizer_step", "on_step_end", "on_log", "on_evaluate",
                           "on_prediction_step", "on_predict", "on_save", "on_epoch_end", "on_train_end"})
    CHECK_MESSAGE(std::ranges::any_of(c["events"], [&](const json& record) { return record["event"] == hook; }),
                  "the reference never fires " << hook);
  const Run ours = run(c, /*predict_after=*/true);
  CHECK(ours.global_step == c["global_step"].get<std::int64_t>());
  check_events(ours.events, c["events"]);
  check_log_history(ours.log_history, c["log_history"]);
  CHECK(ours.checkpoints == c["checkpoints"]);
}

TEST_CASE("control flags set by a callback log, save, evaluate and stop as in transformers") {
  const auto reference = load_reference();
  const auto& c = reference_case(reference, "control_flags");
  const auto& steer = c["steering"];
  const Steering steering{.log_and_save_at = steer["log_and_save_at"].get<std::int64_t>(),
                          .evaluate_at = steer["evaluate_at"].get<std::int64_t>(),
                          .stop_epoch_at = steer["stop_epoch_at"].get<std::int64_t>(),
                          .stop_training_at = steer["stop_training_at"].get<std::int64_t>(),
                          .log_and_save_at_epoch_end = steer["log_and_save_at_epoch_end"].get<std::int64_t>()};
  const Run ours = run(c, /*predict_after=*/false, steering);
  CHECK(ours.global_step == c["global_step"].get<std::int64_t>());
  check_events(ours.events, c["events"]);
  check_log_history(ours.log_history, c["log_history"]);
  CHECK(ours.checkpoints == c["checkpoints"]);
}

}  // namespace hook_order_test
