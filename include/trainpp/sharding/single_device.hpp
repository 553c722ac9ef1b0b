#pragma once
// SingleDevice: the default sharding slot — one process, one device, nothing to synchronise.

#include <trainpp/optim/clip.hpp>

namespace trainpp {

/// The whole model, its gradients and optimizer state on one device.
struct SingleDevice {
  void prepare(torch::nn::Module& model, torch::Device device) const { model.to(device); }
  void before_forward(torch::nn::Module&) const {}
  void after_backward(torch::nn::Module&, bool /*sync*/) const {}
  void after_step(torch::nn::Module&) const {}
  [[nodiscard]] torch::Tensor clip_grad_norm(const std::vector<torch::Tensor>& params, double max_norm) const {
    return clip_grad_norm_(params, max_norm);
  }
  [[nodiscard]] int rank() const { return 0; }
  [[nodiscard]] int world_size() const { return 1; }
};

}  // namespace trainpp
