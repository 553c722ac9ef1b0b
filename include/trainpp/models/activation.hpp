#pragma once
// The activation functions HF's configs name in `hidden_act` (transformers' ACT2FN), the ones the
// model families here use: parsed once when the model is built, so a forward does no string compare.

#include <trainpp/detail/config.hpp>

#include <string>
#include <string_view>

namespace trainpp {

/// One of ACT2FN's entries.
enum class Activation { gelu, gelu_tanh, relu, silu };

/// The activation `hidden_act` names; an Error naming `owner` and the supported names otherwise.
[[nodiscard]] inline Activation parse_activation(std::string_view name, std::string_view owner) {
  if (name == "gelu") return Activation::gelu;  // exact, erf-based
  // gelu_new, gelu_fast and gelu_pytorch_tanh differ only in how they evaluate the tanh form; within
  // float rounding they are one function, torch's gelu(approximate="tanh").
  if (name == "gelu_new" || name == "gelu_pytorch_tanh" || name == "gelu_fast") return Activation::gelu_tanh;
  if (name == "relu") return Activation::relu;
  if (name == "silu" || name == "swish") return Activation::silu;
  throw error("{}: hidden_act \"{}\" is not supported (supported: gelu, gelu_new, gelu_pytorch_tanh, gelu_fast, relu, "
              "silu, swish)",
              owner, name);
}

[[nodiscard]] inline torch::Tensor apply_activation(Activation activation, const torch::Tensor& x) {
  switch (activation) {
    case Activation::gelu: return torch::gelu(x);
    case Activation::gelu_tanh: return torch::gelu(x, "tanh");
    case Activation::relu: return torch::relu(x);
    case Activation::silu: return torch::silu(x);
  }
  return x;
}

}  // namespace trainpp
