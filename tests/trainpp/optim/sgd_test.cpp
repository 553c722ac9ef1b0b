// SGD against torch.optim.SGD (momentum, dampening, Nesterov, L2 weight decay, missing gradients), with
// the inputs and outputs of tools/reference/gen_adamw_reference.py.

#include <trainpp/optim/sgd.hpp>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <fstream>
#include <map>
#include <string>
#include <vector>

// Everything in a namespace of its own: the test build may compile several test files as one unit.
namespace sgd_test {

const nlohmann::json& reference() {
  static const nlohmann::json ref = [] {
    std::ifstream in(TRAINPP_TEST_DATA_DIR "/optim/reference.json");
    REQUIRE(in.good());
    return nlohmann::json::parse(in);
  }();
  return ref;
}

torch::Tensor from_json(const nlohmann::json& values, const std::vector<int64_t>& shape, torch::ScalarType dtype) {
  return torch::tensor(values.get<std::vector<double>>(), torch::kFloat64).reshape(shape).to(dtype);
}

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
    const auto dtype = p.at("dtype").get<std::string>() == "float64" ? torch::kFloat64 : torch::kFloat32;
    auto t = from_json(ref.at("init").at(name), p.at("shape").get<std::vector<int64_t>>(), dtype).requires_grad_(true);
    s.params[name] = t;
    s.order.push_back(name);
    s.groups[p.at("group").get<int>()].params.push_back(t);
  }
  return s;
}

void check_close(const torch::Tensor& actual, const nlohmann::json& expected, const std::string& what) {
  auto want = torch::tensor(expected.get<std::vector<double>>(), torch::kFloat64);
  auto got = actual.detach().to(torch::kFloat64).reshape(-1);
  REQUIRE(got.numel() == want.numel());
  const auto err = ((got - want).abs() / (want.abs() + 1.0)).max().item<double>();
  INFO(what << ": max relative error " << err);
  CHECK(err <= 1e-6);
}


TEST_CASE("SGD matches torch.optim.SGD step by step") {
  const auto& ref = reference();
  for (const auto& c : ref.at("sgd")) {
    const auto& o = c.at("options");
    const trainpp::SGDOptions options{.momentum = o.at("momentum").get<double>(),
                                      .dampening = o.at("dampening").get<double>(),
                                      .nesterov = o.at("nesterov").get<bool>()};
    CAPTURE(o.dump());
    auto s = make_setup();
    trainpp::SGD opt(s.groups, options);
    for (int step = 0; step < 5; ++step) {
      for (auto& g : opt.param_groups()) g.lr = ref.at("lrs").at(step).get<double>();
      for (auto& [name, p] : s.params) {
        const auto& g = ref.at("grads").at(step).at(name);
        if (g.is_null()) p.mutable_grad().reset();
        else p.mutable_grad() = from_json(g, p.sizes().vec(), p.scalar_type());
      }
      const auto grads_before = s.params["w1"].grad().clone();
      opt.step();
      CHECK(torch::equal(s.params["w1"].grad(), grads_before));  // decay and momentum leave .grad alone
      for (const auto& name : s.order)
        check_close(s.params[name], c.at("history").at(step).at(name), fmt::format("step {} {}", step, name));
    }
    const auto state = opt.state();
    for (std::size_t i = 0; i < s.order.size(); ++i) {
      const auto& want = c.at("state").at(s.order[i]);
      if (want.contains("momentum_buffer") && !want.at("momentum_buffer").is_null()) {
        REQUIRE(state[i].contains("momentum_buffer"));
        check_close(state[i].at("momentum_buffer"), want.at("momentum_buffer"), s.order[i] + " momentum_buffer");
      } else {
        CHECK(state[i].empty());
      }
    }
  }
}

TEST_CASE("SGD argument checks") {
  auto s = make_setup();
  CHECK_THROWS_WITH_AS(trainpp::SGD(s.groups, {.momentum = 0.9, .dampening = 0.1, .nesterov = true}),
                       doctest::Contains("Nesterov"), trainpp::Error);
  CHECK_THROWS_AS(trainpp::SGD(s.groups, {.nesterov = true}), trainpp::Error);
  CHECK_THROWS_AS(trainpp::SGD(s.groups, {.momentum = -0.5}), trainpp::Error);
  auto bad = s.groups;
  bad[0].weight_decay = -1;
  CHECK_THROWS_WITH_AS(trainpp::SGD(bad, {}), doctest::Contains("weight_decay"), trainpp::Error);
}

}  // namespace sgd_test
