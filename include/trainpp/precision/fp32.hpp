#pragma once
// FP32: the default precision slot — full precision, no loss scaling.

#include <trainpp/detail/config.hpp>

namespace trainpp {

/// Full fp32 forward and backward. Everything is a no-op except backward and step, so it costs
/// nothing over a hand-written loop.
struct FP32 {
  struct NoContext {};
  static constexpr bool can_skip_steps = false;  ///< never skips: the loop needs no overflow check

  [[nodiscard]] NoContext forward_context(torch::Device) const { return {}; }
  [[nodiscard]] NoContext eval_context(torch::Device) const { return {}; }
  void backward(const torch::Tensor& loss) const { loss.backward(); }
  template <class Optimizer> void unscale_(Optimizer&) const {}
  template <class Optimizer> bool step(Optimizer& optimizer) const {
    optimizer.step();
    return true;
  }
};

}  // namespace trainpp
