#pragma once
// ModuleCastGuard: a module's floating-point parameters and buffers in another dtype for a scope
// (bf16_full_eval / fp16_full_eval), with the originals put back untouched afterwards.

#include <trainpp/detail/config.hpp>

#include <vector>

namespace trainpp {

/// Casts every floating-point parameter and buffer of `module` to `dtype` in place (the tensors keep
/// their identity: an optimizer holding them still holds them) and, on destruction, gives each back
/// its original data — the very storage it had, so no precision is lost in a round trip.
class ModuleCastGuard {
 public:
  ModuleCastGuard(torch::nn::Module& module, c10::ScalarType dtype);
  ModuleCastGuard(const ModuleCastGuard&) = delete;
  ModuleCastGuard& operator=(const ModuleCastGuard&) = delete;
  ~ModuleCastGuard() {
    for (auto& [tensor, original] : saved_) tensor.set_data(original);
  }

 private:
  struct Saved {
    torch::Tensor tensor, original;
  };
  std::vector<Saved> saved_;
};

#if TRAINPP_DEFINITIONS

TRAINPP_INLINE ModuleCastGuard::ModuleCastGuard(torch::nn::Module& module, c10::ScalarType dtype) {
  torch::NoGradGuard no_grad;
  auto cast = [&](torch::Tensor& t) {
    if (!t.defined() || !t.is_floating_point() || t.scalar_type() == dtype) return;
    saved_.push_back({t, t.data()});
    t.set_data(t.data().to(dtype));
  };
  for (auto& p : module.parameters(/*recurse=*/true)) cast(p);
  for (auto& b : module.buffers(/*recurse=*/true)) cast(b);
}

#endif  // TRAINPP_DEFINITIONS

}  // namespace trainpp
