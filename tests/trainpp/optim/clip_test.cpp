// clip_grad_norm_ and grad_norm against torch.nn.utils.clip_grad_norm_ (foreach path), with the inputs
// and outputs of tools/reference/gen_adamw_reference.py.

#include <trainpp/optim/clip.hpp>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <fstream>
#include <string>
#include <vector>

// Everything in a namespace of its own: the test build may compile several test files as one unit.
namespace clip_test {

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

// The parameters named in a clip case, with the gradients of the recorded step.
std::vector<torch::Tensor> make_params(const nlohmann::json& c, std::vector<std::string>& names) {
  const auto& ref = reference();
  std::vector<torch::Tensor> params;
  names = c.at("names").get<std::vector<std::string>>();
  for (const auto& name : names) {
    for (const auto& p : ref.at("params")) {
      if (p.at("name") != name) continue;
      const auto shape = p.at("shape").get<std::vector<int64_t>>();
      const auto dtype = p.at("dtype").get<std::string>() == "float64" ? torch::kFloat64 : torch::kFloat32;
      auto t = from_json(ref.at("init").at(name), shape, dtype).requires_grad_(true);
      const auto& g = ref.at("grads").at(c.at("grads_step").get<int>()).at(name);
      if (!g.is_null()) t.mutable_grad() = from_json(g, shape, dtype);
      params.push_back(t);
    }
  }
  return params;
}


TEST_CASE("clip_grad_norm_ matches torch.nn.utils.clip_grad_norm_") {
  for (const auto& c : reference().at("clip")) {
    std::vector<std::string> names;
    auto params = make_params(c, names);
    CAPTURE(c.at("max_norm").get<double>());

    const auto norm_only = trainpp::grad_norm(params);
    const auto total = trainpp::clip_grad_norm_(params, c.at("max_norm").get<double>());
    const double want = c.at("total_norm").get<double>();
    CHECK(total.dim() == 0);
    CHECK(std::string(c10::toString(total.scalar_type())) ==
          (c.at("total_norm_dtype") == "float64" ? "Double" : "Float"));
    CHECK(total.item<double>() == doctest::Approx(want).epsilon(1e-6));
    CHECK(norm_only.item<double>() == total.item<double>());

    for (std::size_t i = 0; i < params.size(); ++i) {
      const auto& expected = c.at("clipped").at(names[i]);
      if (expected.is_null()) {
        CHECK_FALSE(params[i].grad().defined());
        continue;
      }
      auto want_grad = torch::tensor(expected.get<std::vector<double>>(), torch::kFloat64);
      auto got = params[i].grad().to(torch::kFloat64).reshape(-1);
      const auto err = ((got - want_grad).abs() / (want_grad.abs() + 1.0)).max().item<double>();
      INFO(names[i] << ": max relative error " << err);
      CHECK(err <= 1e-6);
    }
  }
}

TEST_CASE("grad_norm of nothing is a zero tensor") {
  const auto none = trainpp::grad_norm({});
  CHECK(none.dim() == 0);
  CHECK(none.item<double>() == 0.0);
  auto p = torch::ones({3}, torch::requires_grad());
  CHECK(trainpp::clip_grad_norm_({p}, 1.0).item<double>() == 0.0);
}

}  // namespace clip_test
