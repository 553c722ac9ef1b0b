// Every schedule against transformers.get_scheduler: the lr at every step, including past
// num_training_steps (tests/data/schedule/reference.json, from tools/reference/gen_scheduler_reference.py).

#include <trainpp/schedule/schedulers.hpp>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <fstream>
#include <string>
#include <vector>

// Everything in a namespace of its own: the test build may compile several test files as one unit.
namespace schedulers_test {

const nlohmann::json& reference() {
  static const nlohmann::json ref = [] {
    std::ifstream in(TRAINPP_TEST_DATA_DIR "/schedule/reference.json");
    REQUIRE(in.good());
    return nlohmann::json::parse(in);
  }();
  return ref;
}

trainpp::SchedulerType type_of(const nlohmann::json& c) {
  auto t = trainpp::parse_enum<trainpp::SchedulerType>(c.at("type").get<std::string>());
  REQUIRE(t.has_value());
  return *t;
}

// Two groups at the base lr, as HF's create_optimizer leaves them.
std::vector<trainpp::ParamGroup> groups_at(double lr) {
  std::vector<trainpp::ParamGroup> groups(2);
  for (auto& g : groups) g.lr = g.initial_lr = lr;
  return groups;
}

bool close(double a, double b) { return std::fabs(a - b) <= 1e-9 * std::fabs(b) + 1e-18; }

trainpp::LRScheduler make(const nlohmann::json& c) {
  return trainpp::LRScheduler(type_of(c), c.at("kwargs"), c.at("num_warmup_steps").get<std::int64_t>(),
                              c.at("num_training_steps").get<std::int64_t>(), c.at("base_lr").get<double>());
}


TEST_CASE("lambda schedules match transformers.get_scheduler at every step") {
  const auto& cases = reference().at("lambda_cases");
  CHECK(cases.size() >= 20);
  for (const auto& c : cases) {
    const auto label = c.at("label").get<std::string>();
    CAPTURE(label);
    const auto sched = make(c);
    CHECK_FALSE(sched.steps_on_metric());
    const double base = c.at("base_lr").get<double>();
    auto groups = groups_at(base);
    const auto lrs = c.at("lrs").get<std::vector<double>>();
    for (std::size_t step = 0; step < lrs.size(); ++step) {
      sched.apply(groups, static_cast<std::int64_t>(step));
      INFO("step " << step << ": got " << groups[0].lr << ", want " << lrs[step]);
      CHECK(close(groups[0].lr, lrs[step]));
      CHECK(groups[1].lr == groups[0].lr);
      CHECK(close(base * sched.lr_factor(static_cast<std::int64_t>(step)), lrs[step]));
    }
  }
}

TEST_CASE("reduce_lr_on_plateau matches torch's ReduceLROnPlateau") {
  for (const auto& c : reference().at("plateau_cases")) {
    const auto label = c.at("label").get<std::string>();
    CAPTURE(label);
    auto sched = make(c);
    CHECK(sched.steps_on_metric());
    auto groups = groups_at(c.at("base_lr").get<double>());
    sched.apply(groups, 0);  // nothing recorded yet: leaves the lrs alone
    CHECK(groups[0].lr == c.at("base_lr").get<double>());
    const auto metrics = c.at("metrics").get<std::vector<double>>();
    const auto& want = c.at("lrs_per_group");
    for (std::size_t i = 0; i < metrics.size(); ++i) {
      sched.step_on_metric(metrics[i], groups);
      sched.apply(groups, static_cast<std::int64_t>(i + 100));  // the step number plays no part
      for (std::size_t g = 0; g < groups.size(); ++g) {
        INFO("metric " << i << " group " << g << ": got " << groups[g].lr);
        CHECK(close(groups[g].lr, want.at(i).at(g).get<double>()));
      }
    }
  }
}

TEST_CASE("plateau state resumes mid-run") {
  const auto& c = reference().at("plateau_cases").at(2);  // max mode, abs threshold, cooldown, min_lr
  const auto metrics = c.at("metrics").get<std::vector<double>>();
  const auto& want = c.at("lrs_per_group");
  auto first = make(c);
  auto groups = groups_at(c.at("base_lr").get<double>());
  const std::size_t half = 5;
  for (std::size_t i = 0; i < half; ++i) first.step_on_metric(metrics[i], groups);
  const auto saved = nlohmann::json::parse(first.state().dump());  // through text, as a checkpoint would

  auto second = make(c);
  second.load_state(saved);
  auto fresh = groups_at(c.at("base_lr").get<double>());
  second.apply(fresh, 0);  // restores the reduced lrs
  CHECK(close(fresh[0].lr, want.at(half - 1).at(0).get<double>()));
  for (std::size_t i = half; i < metrics.size(); ++i) {
    second.step_on_metric(metrics[i], fresh);
    CHECK(close(fresh[1].lr, want.at(i).at(1).get<double>()));
  }
  CHECK_THROWS_AS(make(reference().at("lambda_cases").at(0)).load_state(saved), trainpp::Error);
}

TEST_CASE("make_scheduler uses TrainingArguments") {
  const auto& r = reference().at("warmup_from_ratio");
  trainpp::TrainingArguments args;
  args.warmup_steps = r.at("warmup_steps").get<double>();
  args.learning_rate = 1e-3;
  args.lr_scheduler_type = trainpp::SchedulerType::cosine;
  args.lr_scheduler_kwargs = {{"num_cycles", 0.5}};
  const auto n = r.at("num_training_steps").get<std::int64_t>();
  const auto sched = trainpp::make_scheduler(args, n);
  CHECK(sched.num_warmup_steps() == r.at("get_warmup_steps").get<std::int64_t>());
  CHECK(sched.num_training_steps() == n);
  CHECK(sched.type() == trainpp::SchedulerType::cosine);
}

TEST_CASE("bad lr_scheduler_kwargs name the key") {
  using trainpp::SchedulerType;
  auto build = [](SchedulerType t, const char* kwargs, double base_lr = 1e-3) {
    return trainpp::LRScheduler(t, nlohmann::json::parse(kwargs), 5, 20, base_lr);
  };
  auto throws_naming = [&](SchedulerType t, const char* kwargs, const char* key, double base_lr = 1e-3) {
    CAPTURE(kwargs);
    CHECK_THROWS_WITH_AS(build(t, kwargs, base_lr), doctest::Contains(key), trainpp::Error);
  };
  throws_naming(SchedulerType::linear, R"({"num_cycles": 1})", "num_cycles");
  throws_naming(SchedulerType::constant, R"({"warmup": 3})", "warmup");
  throws_naming(SchedulerType::constant_with_warmup, R"({"min_lr": 0.1})", "min_lr");
  throws_naming(SchedulerType::cosine, R"({"num_cycles": "two"})", "num_cycles");
  throws_naming(SchedulerType::cosine, R"({"num_cycle": 2})", "num_cycle");
  throws_naming(SchedulerType::cosine_with_restarts, R"({"power": 2})", "power");
  throws_naming(SchedulerType::polynomial, R"({"lr_end": 0.01})", "lr_end");
  throws_naming(SchedulerType::polynomial, R"({"power": true})", "power");
  throws_naming(SchedulerType::inverse_sqrt, R"({"timescale": 0})", "timescale");
  throws_naming(SchedulerType::cosine_with_min_lr, R"({})", "min_lr");
  throws_naming(SchedulerType::cosine_with_min_lr, R"({"min_lr": 1e-5, "min_lr_rate": 0.1})", "min_lr_rate");
  throws_naming(SchedulerType::warmup_stable_decay, R"({})", "num_decay_steps");
  throws_naming(SchedulerType::warmup_stable_decay, R"({"num_decay_steps": 2.5})", "num_decay_steps");
  throws_naming(SchedulerType::warmup_stable_decay, R"({"num_decay_steps": 5, "warmup_type": "exp"})", "warmup_type");
  throws_naming(SchedulerType::warmup_stable_decay, R"({"num_decay_steps": 5, "decay_type": 1})", "decay_type");
  throws_naming(SchedulerType::reduce_lr_on_plateau, R"({"mode": "avg"})", "mode");
  throws_naming(SchedulerType::reduce_lr_on_plateau, R"({"factor": 1.5})", "factor");
  throws_naming(SchedulerType::reduce_lr_on_plateau, R"({"patience": 1.5})", "patience");
  throws_naming(SchedulerType::reduce_lr_on_plateau, R"({"min_lr": ["x"]})", "min_lr");
  throws_naming(SchedulerType::reduce_lr_on_plateau, R"({"num_cycles": 1})", "num_cycles");
  throws_naming(SchedulerType::linear, R"([1, 2])", "lr_scheduler_kwargs");

  // null means "not given"; integral floats are accepted where HF takes an int.
  CHECK_NOTHROW(build(SchedulerType::cosine_with_min_lr, R"({"min_lr": null, "min_lr_rate": 0.1})"));
  CHECK_NOTHROW(build(SchedulerType::warmup_stable_decay, R"({"num_decay_steps": 5.0})"));

  // A per-group min_lr list must match the group count when it is used.
  auto plateau = build(SchedulerType::reduce_lr_on_plateau, R"({"patience": 0, "min_lr": [0.1, 0.2, 0.3]})");
  auto groups = groups_at(1e-3);
  plateau.step_on_metric(1.0, groups);
  CHECK_THROWS_WITH_AS(plateau.step_on_metric(2.0, groups), doctest::Contains("min_lr"), trainpp::Error);
  // The lambda schedules do not step on metrics.
  auto linear = build(SchedulerType::linear, "{}");
  CHECK_THROWS_AS(linear.step_on_metric(1.0, groups), trainpp::Error);
}

}  // namespace schedulers_test
