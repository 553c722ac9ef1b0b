#pragma once
// SingleDevice: a sharding slot for one process on one device, with nothing to synchronise.

#include <trainpp/detail/config.hpp>
#include <trainpp/args.hpp>
#include <trainpp/distributed/launch_environment.hpp>
#include <trainpp/optim/clip.hpp>

namespace trainpp {

/// The whole model, its gradients and optimizer state on one device, in one process. Named in the
/// slot on purpose; the default slot (AutoSharding) follows the launcher instead.
struct SingleDevice {
  /// A launcher that started several processes would have each train its own copy into the same
  /// output_dir: refused, with what to do instead.
  void configure(const TrainingArguments&, torch::Device) const;
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

#if TRAINPP_DEFINITIONS

TRAINPP_INLINE void SingleDevice::configure(const TrainingArguments&, torch::Device) const {
  const LaunchEnvironment env = detect_launch_environment();
  if (env.world_size > 1)
    throw error("the sharding slot holds trainpp::SingleDevice, but the launch environment ({}) makes this process "
                "rank {} of {}: every "
                "process would train its own copy of the model into the same output_dir. Leave the sharding slot "
                "out (the default, trainpp::AutoSharding, trains data-parallel under a launcher and follows --fsdp), "
                "or put trainpp::DataParallel, ShardGradOp or FullShard in it",
                to_string(env.launcher), env.rank, env.world_size);
}

#endif  // TRAINPP_DEFINITIONS

}  // namespace trainpp
