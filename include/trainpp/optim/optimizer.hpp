#pragma once
// The optimizer that TrainingArguments.optim selects: a closed set, dispatched without virtual calls.

#include <trainpp/detail/config.hpp>
#include <trainpp/args.hpp>
#include <trainpp/optim/adamw.hpp>
#include <trainpp/optim/param_groups.hpp>
#include <trainpp/optim/sgd.hpp>

#include <utility>
#include <variant>
#include <vector>

namespace trainpp {

/// One of the optimizers `optim` can name. Models: AdamW, SGD. Each call is a std::visit over the
/// concrete type, so nothing on the step path goes through a virtual function.
class Optimizer {
 public:
  explicit Optimizer(AdamW optimizer) : impl_(std::move(optimizer)) {}
  explicit Optimizer(SGD optimizer) : impl_(std::move(optimizer)) {}

  void step() {
    std::visit([](auto& o) { o.step(); }, impl_);
  }
  void zero_grad(bool set_to_none = true) {
    std::visit([&](auto& o) { o.zero_grad(set_to_none); }, impl_);
  }
  [[nodiscard]] std::vector<ParamGroup>& param_groups() {
    return std::visit([](auto& o) -> std::vector<ParamGroup>& { return o.param_groups(); }, impl_);
  }
  [[nodiscard]] const std::vector<ParamGroup>& param_groups() const {
    return std::visit([](const auto& o) -> const std::vector<ParamGroup>& { return o.param_groups(); }, impl_);
  }
  [[nodiscard]] std::vector<torch::Tensor> parameters() const {
    return std::visit([](const auto& o) { return o.parameters(); }, impl_);
  }
  /// Per-parameter state of the concrete optimizer (see AdamW::state, SGD::state).
  [[nodiscard]] OptimizerState state() const {
    return std::visit([](const auto& o) { return o.state(); }, impl_);
  }
  void load_state(const OptimizerState& state) {
    std::visit([&](auto& o) { o.load_state(state); }, impl_);
  }

  /// Calls `f` with the concrete optimizer (AdamW& or SGD&).
  template <class F>
  decltype(auto) visit(F&& f) {
    return std::visit(std::forward<F>(f), impl_);
  }
  template <class F>
  decltype(auto) visit(F&& f) const {
    return std::visit(std::forward<F>(f), impl_);
  }

 private:
  std::variant<AdamW, SGD> impl_;
};

/// HF Trainer.create_optimizer: groups from decay_param_groups(model, learning_rate, weight_decay), then
/// adamw_torch -> AdamW (foreach), adamw_torch_fused -> AdamW (fused), both with adam_beta1/2 and
/// adam_epsilon; sgd -> SGD with torch's defaults (HF passes only the learning rate; its optim_args
/// overrides are not part of TrainingArguments here).
[[nodiscard]] inline Optimizer make_optimizer(const torch::nn::Module& model, const TrainingArguments& args) {
  auto groups = decay_param_groups(model, args.learning_rate, args.weight_decay);
  switch (args.optim) {
    case OptimizerName::adamw_torch:
    case OptimizerName::adamw_torch_fused:
      return Optimizer(AdamW(std::move(groups), AdamWOptions{.beta1 = args.adam_beta1,
                                                             .beta2 = args.adam_beta2,
                                                             .eps = args.adam_epsilon,
                                                             .fused = args.optim == OptimizerName::adamw_torch_fused}));
    case OptimizerName::sgd:
      return Optimizer(SGD(std::move(groups), SGDOptions{}));
  }
  throw error("unsupported optim value {}", static_cast<int>(args.optim));
}

}  // namespace trainpp
