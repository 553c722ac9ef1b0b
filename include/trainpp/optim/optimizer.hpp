#pragma once
// The optimizer that TrainingArguments.optim selects: a closed set, dispatched without virtual calls.

#include <trainpp/detail/config.hpp>
#include <trainpp/args.hpp>
#include <trainpp/optim/adafactor.hpp>
#include <trainpp/optim/adagrad.hpp>
#include <trainpp/optim/adamw.hpp>
#include <trainpp/optim/lion.hpp>
#include <trainpp/optim/param_groups.hpp>
#include <trainpp/optim/rmsprop.hpp>
#include <trainpp/optim/sgd.hpp>

#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

namespace trainpp {

/// One of the optimizers `optim` can name: AdamW, SGD, Adagrad, RMSprop, Adafactor, Lion. Each call
/// is a std::visit over the concrete type, so nothing on the step path goes through a virtual function.
class Optimizer {
 public:
  using Variant = std::variant<AdamW, SGD, Adagrad, RMSprop, Adafactor, Lion>;

  template <class O>
    requires std::is_constructible_v<Variant, O&&> && (!std::is_same_v<std::remove_cvref_t<O>, Optimizer>)
  explicit Optimizer(O&& optimizer) : impl_(std::forward<O>(optimizer)) {}

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
  /// Per-parameter state of the concrete optimizer (see AdamW::state, SGD::state, ...).
  [[nodiscard]] OptimizerState state() const {
    return std::visit([](const auto& o) { return o.state(); }, impl_);
  }
  void load_state(const OptimizerState& state) {
    std::visit([&](auto& o) { o.load_state(state); }, impl_);
  }

  /// Calls `f` with the concrete optimizer (AdamW&, SGD&, ...).
  template <class F>
  decltype(auto) visit(F&& f) {
    return std::visit(std::forward<F>(f), impl_);
  }
  template <class F>
  decltype(auto) visit(F&& f) const {
    return std::visit(std::forward<F>(f), impl_);
  }

 private:
  Variant impl_;
};

/// HF Trainer.create_optimizer: groups from decay_param_groups(model, learning_rate, weight_decay), then
/// the optimizer `optim` names with HF's settings:
/// - adamw_torch -> AdamW (foreach), adamw_torch_fused -> AdamW (fused): adam_beta1/2, adam_epsilon;
/// - sgd, adagrad, rmsprop -> torch's optimizers with torch's defaults, overridden by the optim_args keys
///   HF reads (sgd: momentum, dampening, nesterov; adagrad: lr_decay, eps; rmsprop: momentum, alpha,
///   eps, centered);
/// - adafactor -> Adafactor with scale_parameter and relative_step off and the schedule's rate, as HF;
///   optim_args may set transformers.Adafactor's options (HF reads none here);
/// - lion_32bit -> Lion with betas (adam_beta1, adam_beta2), as HF passes them to bitsandbytes.
/// Throws trainpp::Error for optim_args the optimizer does not read (see check_optim_args).
[[nodiscard]] Optimizer make_optimizer(const torch::nn::Module& model, const TrainingArguments& args);

#if TRAINPP_DEFINITIONS

TRAINPP_INLINE Optimizer make_optimizer(const torch::nn::Module& model, const TrainingArguments& args) {
  auto groups = decay_param_groups(model, args.learning_rate, args.weight_decay);
  const OptimArgs extra = args.optim_args ? OptimArgs::parse(*args.optim_args) : OptimArgs{};
  check_optim_args(args.optim, extra);
  switch (args.optim) {
    case OptimizerName::adamw_torch:
    case OptimizerName::adamw_torch_fused:
      return Optimizer(AdamW(std::move(groups), AdamWOptions{.beta1 = args.adam_beta1,
                                                             .beta2 = args.adam_beta2,
                                                             .eps = args.adam_epsilon,
                                                             .fused = args.optim == OptimizerName::adamw_torch_fused}));
    case OptimizerName::sgd: {
      SGDOptions options;
      options.momentum = extra.number("momentum").value_or(options.momentum);
      options.dampening = extra.number("dampening").value_or(options.dampening);
      options.nesterov = extra.flag("nesterov").value_or(options.nesterov);
      return Optimizer(SGD(std::move(groups), options));
    }
    case OptimizerName::adagrad: {
      AdagradOptions options;
      options.lr_decay = extra.number("lr_decay").value_or(options.lr_decay);
      options.eps = extra.number("eps").value_or(options.eps);
      return Optimizer(Adagrad(std::move(groups), options));
    }
    case OptimizerName::rmsprop: {
      RMSpropOptions options;
      options.momentum = extra.number("momentum").value_or(options.momentum);
      options.alpha = extra.number("alpha").value_or(options.alpha);
      options.eps = extra.number("eps").value_or(options.eps);
      options.centered = extra.flag("centered").value_or(options.centered);
      return Optimizer(RMSprop(std::move(groups), options));
    }
    case OptimizerName::adafactor: {
      AdafactorOptions options;
      options.scale_parameter = extra.flag("scale_parameter").value_or(false);
      options.relative_step = extra.flag("relative_step").value_or(false);
      options.warmup_init = extra.flag("warmup_init").value_or(false);
      if (const auto beta1 = extra.number("beta1")) options.beta1 = *beta1;
      options.clip_threshold = extra.number("clip_threshold").value_or(options.clip_threshold);
      options.decay_rate = extra.number("decay_rate").value_or(options.decay_rate);
      return Optimizer(Adafactor(std::move(groups), options));
    }
    case OptimizerName::lion_32bit:
      return Optimizer(Lion(std::move(groups), LionOptions{.beta1 = args.adam_beta1, .beta2 = args.adam_beta2}));
  }
  throw error("unsupported optim value {}", static_cast<int>(args.optim));
}

#endif  // TRAINPP_DEFINITIONS

}  // namespace trainpp
