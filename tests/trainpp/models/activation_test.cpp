// parse_activation and apply_activation: the names of transformers' ACT2FN that the model families
// use, and their values against the closed forms of GELU (erf and tanh), ReLU and SiLU.

#include <trainpp/models/activation.hpp>

#include <doctest/doctest.h>

#include <cmath>
#include <string>

namespace activation_test {

using trainpp::Activation;

TEST_CASE("activation: every name of the config maps to its function") {
  CHECK(trainpp::parse_activation("gelu", "BertConfig") == Activation::gelu);
  CHECK(trainpp::parse_activation("gelu_new", "GPT2Config") == Activation::gelu_tanh);
  CHECK(trainpp::parse_activation("gelu_pytorch_tanh", "x") == Activation::gelu_tanh);
  CHECK(trainpp::parse_activation("gelu_fast", "x") == Activation::gelu_tanh);
  CHECK(trainpp::parse_activation("relu", "x") == Activation::relu);
  CHECK(trainpp::parse_activation("silu", "LlamaConfig") == Activation::silu);
  CHECK(trainpp::parse_activation("swish", "x") == Activation::silu);
}

TEST_CASE("activation: an unknown name is an error naming the owner and the supported names") {
  CHECK_THROWS_WITH_AS((void)trainpp::parse_activation("tanh", "LlamaConfig"),
                       doctest::Contains("LlamaConfig: hidden_act \"tanh\" is not supported (supported: gelu, gelu_new"),
                       trainpp::Error);
  // Names are matched exactly.
  CHECK_THROWS_WITH_AS((void)trainpp::parse_activation("GELU", "BertConfig"), doctest::Contains("\"GELU\""), trainpp::Error);
  CHECK_THROWS_AS((void)trainpp::parse_activation("", "BertConfig"), trainpp::Error);
}

TEST_CASE("activation: apply_activation computes each function") {
  const auto x = torch::tensor({-2.0, -0.5, 0.0, 1.0, 3.0}, torch::kFloat64);
  const auto close = [](const torch::Tensor& a, const torch::Tensor& b) { return torch::allclose(a, b, 1e-12, 1e-12); };
  const auto exact_gelu = 0.5 * x * (1 + torch::erf(x / std::sqrt(2.0)));
  const auto tanh_gelu = 0.5 * x * (1 + torch::tanh(std::sqrt(2.0 / M_PI) * (x + 0.044715 * x.pow(3))));
  CHECK(close(trainpp::apply_activation(Activation::gelu, x), exact_gelu));
  CHECK(close(trainpp::apply_activation(Activation::gelu_tanh, x), tanh_gelu));
  // The two GELUs are different functions: about 1.5e-4 apart at 1.
  CHECK(std::abs((exact_gelu - tanh_gelu)[3].item<double>()) > 1e-4);
  CHECK(close(trainpp::apply_activation(Activation::relu, x), torch::tensor({0.0, 0.0, 0.0, 1.0, 3.0}, torch::kFloat64)));
  CHECK(close(trainpp::apply_activation(Activation::silu, x), x / (1 + torch::exp(-x))));
  CHECK(trainpp::apply_activation(Activation::silu, x).sizes() == x.sizes());
}

}  // namespace activation_test
