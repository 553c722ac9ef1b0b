#pragma once
// Gradient norm and clipping with torch.nn.utils.clip_grad_norm_'s semantics (the foreach path, L2).

#include <trainpp/detail/config.hpp>
#include <trainpp/optim/param_groups.hpp>

#include <vector>

namespace trainpp {

/// The L2 norm of all gradients of `params` taken together, as torch.nn.utils.get_total_norm computes
/// it: one _foreach_norm per (device, dtype), then the norm of those norms on the first gradient's
/// device. Parameters without a gradient are skipped; with none at all the result is a 0-dim float32
/// zero on the CPU. Returns a 0-dim tensor and never waits for the device.
[[nodiscard]] torch::Tensor grad_norm(const std::vector<torch::Tensor>& params);

/// torch.nn.utils.clip_grad_norm_(params, max_norm): scales every gradient in place by
/// min(1, max_norm / (total_norm + 1e-6)), always multiplying, since testing the coefficient on the
/// host would wait for the device. Returns the total norm before clipping (see grad_norm).
torch::Tensor clip_grad_norm_(const std::vector<torch::Tensor>& params, double max_norm);

namespace detail {
[[nodiscard]] std::vector<torch::Tensor> defined_grads(const std::vector<torch::Tensor>& params);

[[nodiscard]] torch::Tensor total_norm(const std::vector<torch::Tensor>& grads);
}  // namespace detail

#if TRAINPP_DEFINITIONS

namespace detail {

TRAINPP_INLINE std::vector<torch::Tensor> defined_grads(const std::vector<torch::Tensor>& params) {
  std::vector<torch::Tensor> grads;
  for (const auto& p : params)
    if (p.grad().defined()) grads.push_back(p.grad());
  return grads;
}

TRAINPP_INLINE torch::Tensor total_norm(const std::vector<torch::Tensor>& grads) {
  if (grads.empty()) return torch::zeros({}, torch::kFloat32);
  const auto first_device = grads.front().device();
  std::vector<torch::Tensor> norms;
  for (const auto& bucket : bucket_by_device_dtype(grads))
    for (auto& n : at::_foreach_norm(pick(grads, bucket.indices), 2)) norms.push_back(n.to(first_device));
  return at::linalg_vector_norm(at::stack(norms), 2);
}

}  // namespace detail

TRAINPP_INLINE torch::Tensor grad_norm(const std::vector<torch::Tensor>& params) {
  torch::NoGradGuard no_grad;
  return detail::total_norm(detail::defined_grads(params));
}

TRAINPP_INLINE torch::Tensor clip_grad_norm_(const std::vector<torch::Tensor>& params, double max_norm) {
  torch::NoGradGuard no_grad;
  const auto grads = detail::defined_grads(params);
  auto total = detail::total_norm(grads);
  if (grads.empty()) return total;
  // Python evaluates `max_norm / (total + 1e-6)` as reciprocal-then-multiply; the same ops keep the
  // coefficient bit-identical.
  const auto coef = at::clamp_max(at::reciprocal(total + 1e-6) * max_norm, 1.0);
  for (const auto& bucket : detail::bucket_by_device_dtype(grads))
    at::_foreach_mul_(detail::pick(grads, bucket.indices), coef.to(bucket.device));
  return total;
}

#endif  // TRAINPP_DEFINITIONS

}  // namespace trainpp
