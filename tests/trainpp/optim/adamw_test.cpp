// AdamW (fused and foreach) against torch.optim.AdamW: same parameters, gradients and per-step learning
// rates as tools/reference/gen_adamw_reference.py, parameters compared after every step.

#include <trainpp/optim/adamw.hpp>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <fstream>
#include <map>
#include <string>
#include <vector>

// Everything in a namespace of its own: the test build may compile several test files as one unit.
namespace adamw_test {

const nlohmann::json& reference() {
  static const nlohmann::json ref = [] {
    std::ifstream in(TRAINPP_TEST_DATA_DIR "/optim/reference.json");
    REQUIRE(in.good());
    return nlohmann::json::parse(in);
  }();
  return ref;
}

torch::ScalarType dtype_of(const std::string& name) { return name == "float64" ? torch::kFloat64 : torch::kFloat32; }

torch::Tensor from_json(const nlohmann::json& values, const std::vector<int64_t>& shape, torch::ScalarType dtype) {
  return torch::tensor(values.get<std::vector<double>>(), torch::kFloat64).reshape(shape).to(dtype);
}

// Fresh leaf parameters with the reference's initial values, by name, plus their groups.
struct Setup {
  std::map<std::string, torch::Tensor> params;
  std::vector<std::string> order;
  std::vector<trainpp::ParamGroup> groups;
};

Setup make_setup() {
  const auto& ref = reference();
  Setup s;
  s.groups.resize(2);
  s.groups[0].weight_decay = ref.at("weight_decay").get<double>();
  for (const auto& p : ref.at("params")) {
    const auto name = p.at("name").get<std::string>();
    auto t = from_json(ref.at("init").at(name), p.at("shape").get<std::vector<int64_t>>(),
                       dtype_of(p.at("dtype").get<std::string>()))
                 .requires_grad_(true);
    s.params[name] = t;
    s.order.push_back(name);
    auto& g = s.groups[p.at("group").get<int>()];
    g.params.push_back(t);
    g.names.push_back(name);
  }
  return s;
}

void set_grads(Setup& s, int step, double scale = 1.0) {
  const auto& grads = reference().at("grads").at(step);
  for (auto& [name, p] : s.params) {
    const auto& g = grads.at(name);
    if (g.is_null()) p.mutable_grad().reset();
    else p.mutable_grad() = from_json(g, p.sizes().vec(), p.scalar_type()) * scale;
  }
}

void set_lr(std::vector<trainpp::ParamGroup>& groups, int step) {
  for (auto& g : groups) g.lr = reference().at("lrs").at(step).get<double>();
}

void check_close(const torch::Tensor& actual, const nlohmann::json& expected, const std::string& what,
                 double tol = 1e-6) {
  auto want = torch::tensor(expected.get<std::vector<double>>(), torch::kFloat64);
  auto got = actual.detach().to(torch::kFloat64).reshape(-1);
  REQUIRE(got.numel() == want.numel());
  const auto err = ((got - want).abs() / (want.abs() + 1.0)).max().item<double>();
  INFO(what << ": max relative error " << err);
  CHECK(err <= tol);
}

trainpp::AdamWOptions options(bool fused) {
  const auto& a = reference().at("adamw");
  return {.beta1 = a.at("betas")[0].get<double>(), .beta2 = a.at("betas")[1].get<double>(),
          .eps = a.at("eps").get<double>(), .fused = fused};
}

constexpr int kSteps = 5;


TEST_CASE("AdamW matches torch.optim.AdamW step by step") {
  for (bool fused : {false, true}) {
    CAPTURE(fused);
    auto s = make_setup();
    trainpp::AdamW opt(s.groups, options(fused));
    const auto& history = reference().at("adamw").at(fused ? "fused" : "foreach");
    for (int step = 0; step < kSteps; ++step) {
      set_lr(opt.param_groups(), step);
      set_grads(s, step);
      opt.step();
      for (const auto& name : s.order)
        check_close(s.params[name], history.at(step).at(name), fmt::format("step {} {}", step, name));
    }
    // The state torch holds after the last step, including per-parameter step counts (b2 started late).
    const auto state = opt.state();
    const auto& want = reference().at("adamw").at("foreach_state");
    REQUIRE(state.size() == s.order.size());
    for (std::size_t i = 0; i < s.order.size(); ++i) {
      const auto& w = want.at(s.order[i]);
      check_close(state[i].at("exp_avg"), w.at("exp_avg"), s.order[i] + " exp_avg");
      check_close(state[i].at("exp_avg_sq"), w.at("exp_avg_sq"), s.order[i] + " exp_avg_sq");
      CHECK(state[i].at("step").dim() == 0);
      CHECK((state[i].at("step").scalar_type() == torch::kFloat32));
      CHECK(state[i].at("step").item<double>() == w.at("step").get<double>());
    }
  }
}

TEST_CASE("AdamW state survives a save/load into the other implementation") {
  for (bool fused_first : {false, true}) {
    CAPTURE(fused_first);
    auto a = make_setup();
    trainpp::AdamW first(a.groups, options(fused_first));
    for (int step = 0; step < 2; ++step) {
      set_lr(first.param_groups(), step);
      set_grads(a, step);
      first.step();
    }
    const auto saved = first.state();
    CHECK(saved[4].at("step").item<double>() == 1.0);  // b2 had no gradient at step 0

    // A fresh run resumes from copies of the parameters and the saved state.
    auto b = make_setup();
    for (auto& [name, p] : b.params) {
      torch::NoGradGuard no_grad;
      p.copy_(a.params[name]);
    }
    trainpp::AdamW second(b.groups, options(!fused_first));
    second.load_state(saved);
    for (int step = 2; step < kSteps; ++step) {
      set_lr(second.param_groups(), step);
      set_grads(b, step);
      second.step();
    }
    const auto& last = reference().at("adamw").at("foreach").at(kSteps - 1);
    for (const auto& name : b.order) check_close(b.params[name], last.at(name), "resumed " + name);
  }
}

TEST_CASE("fused AdamW takes grad_scale and found_inf like torch's GradScaler") {
  auto s = make_setup();
  trainpp::AdamW opt(s.groups, options(true));
  const auto& history = reference().at("adamw").at("fused");

  // Overflow: nothing moves and the step does not count.
  set_lr(opt.param_groups(), 0);
  set_grads(s, 0, 1024.0);
  std::map<std::string, torch::Tensor> before;
  for (auto& [name, p] : s.params) before[name] = p.detach().clone();
  opt.step(torch::full({}, 1024.0f), torch::ones({}, torch::kFloat32));
  for (auto& [name, p] : s.params) CHECK(torch::equal(p.detach(), before[name]));
  for (const auto& entry : opt.state())
    if (!entry.empty()) CHECK(entry.at("step").item<double>() == 0.0);

  // Scaled gradients with the scale handed over give the unscaled reference.
  for (int step = 0; step < kSteps; ++step) {
    set_lr(opt.param_groups(), step);
    set_grads(s, step, 1024.0);
    opt.step(torch::full({}, 1024.0f), torch::zeros({}, torch::kFloat32));
    for (const auto& name : s.order)
      check_close(s.params[name], history.at(step).at(name), fmt::format("scaled step {} {}", step, name), 1e-5);
  }
}

TEST_CASE("AdamW argument checks and zero_grad") {
  auto s = make_setup();
  CHECK_THROWS_AS(trainpp::AdamW(s.groups, {.beta1 = 1.0}), trainpp::Error);
  CHECK_THROWS_AS(trainpp::AdamW(s.groups, {.beta2 = -0.1}), trainpp::Error);
  CHECK_THROWS_AS(trainpp::AdamW(s.groups, {.eps = -1.0}), trainpp::Error);
  auto negative_lr = s.groups;
  negative_lr[0].lr = -1.0;
  CHECK_THROWS_WITH_AS(trainpp::AdamW(negative_lr, {}), doctest::Contains("learning rate"), trainpp::Error);
  auto twice = s.groups;
  twice[1].params.push_back(twice[0].params[0]);
  twice[1].names.push_back("w1 again");
  CHECK_THROWS_WITH_AS(trainpp::AdamW(twice, {}), doctest::Contains("more than once"), trainpp::Error);
  std::vector<trainpp::ParamGroup> ints(1);
  ints[0].params.push_back(torch::zeros({2}, torch::kLong));
  CHECK_THROWS_AS(trainpp::AdamW(ints, {}), trainpp::Error);

  trainpp::AdamW foreach_opt(s.groups, options(false));
  set_grads(s, 1);
  CHECK_THROWS_AS(foreach_opt.step(torch::ones({}), std::nullopt), trainpp::Error);
  foreach_opt.zero_grad(false);
  for (auto& [name, p] : s.params) {
    REQUIRE(p.grad().defined());
    CHECK(p.grad().abs().sum().item<double>() == 0.0);
  }
  foreach_opt.zero_grad();
  for (auto& [name, p] : s.params) CHECK_FALSE(p.grad().defined());
  CHECK(foreach_opt.parameters().size() == s.order.size());
}

}  // namespace adamw_test
