#pragma once
// Learning-rate schedules of transformers.get_scheduler, as pure functions of the optimizer step.

#include <trainpp/detail/config.hpp>
#include <trainpp/args.hpp>
#include <trainpp/optim/param_groups.hpp>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#if TRAINPP_DEFINITIONS
#include <numbers>
#endif

namespace trainpp {

/// Every schedule of `transformers.get_scheduler` that TrainingArguments can name.
///
/// Step convention (torch's LambdaLR as HF Trainer steps it): `step` is the number of optimizer updates
/// already done (TrainerState.global_step). LambdaLR sets lr = initial_lr * λ(0) when it is built and
/// lr = initial_lr * λ(k) after its k-th step(), which HF calls right after the k-th optimizer step; so
/// update number k (counting from 1) runs with initial_lr * λ(k-1). The loop therefore calls
/// apply(groups, 0) before the first update and apply(groups, global_step) after every update that was
/// not skipped. reduce_lr_on_plateau is the exception: its lr changes only in step_on_metric (after an
/// evaluation) and apply() merely re-applies the last lrs it set.
///
/// The lr_scheduler_kwargs accepted per type (HF's names; JSON null means "not given"):
///   linear, constant, constant_with_warmup: none;
///   cosine, cosine_with_restarts: num_cycles (0.5 and 1 by default);
///   polynomial: lr_end (1e-7, must be below the base lr), power (1.0);
///   inverse_sqrt: timescale (default num_warmup_steps, or 10000 without warmup);
///   cosine_with_min_lr: num_cycles (0.5) and exactly one of min_lr, min_lr_rate;
///   warmup_stable_decay: num_decay_steps (required), num_stable_steps (default
///     num_training_steps - num_warmup_steps - num_decay_steps), warmup_type and decay_type
///     ("linear" | "cosine" | "1-sqrt"; "linear" and "cosine" by default), min_lr_ratio (0), num_cycles (0.5);
///   reduce_lr_on_plateau: torch's ReduceLROnPlateau arguments mode ("min" | "max"), factor (0.1, < 1),
///     patience (10), threshold (1e-4), threshold_mode ("rel" | "abs"), cooldown (0), min_lr (0, or one
///     value per param group), eps (1e-8).
/// Any other key, a value of the wrong type, or a missing required key throws trainpp::Error naming the
/// key. HF silently ignores kwargs for constant and constant_with_warmup; here they are rejected too, so
/// a typo never goes unnoticed.
class LRScheduler {
 public:
  /// Throws trainpp::Error for bad kwargs (see above) or negative step counts.
  LRScheduler(SchedulerType type, const nlohmann::json& kwargs, std::int64_t num_warmup_steps,
              std::int64_t num_training_steps, double base_lr);

  /// λ(step): the multiplier of initial_lr after `step` optimizer updates. 1 for reduce_lr_on_plateau,
  /// whose lr is not a function of the step.
  [[nodiscard]] double lr_factor(std::int64_t step) const;
  /// Sets every group's lr to initial_lr * λ(step); for reduce_lr_on_plateau, restores the lrs of its
  /// last step_on_metric (if any), which is what resuming from a checkpoint needs.
  void apply(std::vector<ParamGroup>& groups, std::int64_t step) const;
  /// True for reduce_lr_on_plateau: the loop calls step_on_metric after each evaluation instead.
  [[nodiscard]] bool steps_on_metric() const { return type_ == SchedulerType::reduce_lr_on_plateau; }
  /// torch's ReduceLROnPlateau.step(metric): counts bad evaluations and, past `patience`, multiplies
  /// each group's lr by `factor` (not below its min_lr; changes smaller than eps are dropped). Throws
  /// for the other types.
  void step_on_metric(double metric, std::vector<ParamGroup>& groups);

  /// What a checkpoint needs: the configuration (for a sanity check on load) and the plateau counters.
  [[nodiscard]] nlohmann::json state() const;
  /// Restores state(); throws trainpp::Error if it belongs to another schedule type or, for
  /// reduce_lr_on_plateau, lacks a counter or has one of the wrong type (naming it).
  void load_state(const nlohmann::json& state);

  [[nodiscard]] SchedulerType type() const { return type_; }
  [[nodiscard]] std::int64_t num_warmup_steps() const { return warmup_; }
  [[nodiscard]] std::int64_t num_training_steps() const { return total_; }

 private:
  enum class Shape { linear, cosine, one_minus_sqrt };

  struct Plateau {
    bool maximize = false;
    double factor = 0.1;
    std::int64_t patience = 10;
    double threshold = 1e-4;
    bool relative = true;
    std::int64_t cooldown = 0;
    std::vector<double> min_lrs;  // one per group; a single value applies to every group
    bool min_lr_per_group = false;
    double eps = 1e-8;
    // Counters, as torch keeps them.
    double best = std::numeric_limits<double>::infinity();
    std::int64_t num_bad_epochs = 0;
    std::int64_t cooldown_counter = 0;
    std::int64_t last_epoch = 0;
    std::vector<double> last_lrs;
  };

  [[nodiscard]] double warmup_factor(std::int64_t step) const {
    return static_cast<double>(step) / static_cast<double>(std::max<std::int64_t>(1, warmup_));
  }
  [[nodiscard]] bool plateau_is_better(double value) const;

  SchedulerType type_;
  nlohmann::json kwargs_;
  std::int64_t warmup_;
  std::int64_t total_;
  double base_lr_;
  // Resolved kwargs (only those of type_ are meaningful).
  double num_cycles_ = 0.5;
  double lr_end_ = 1e-7, power_ = 1.0;
  double timescale_ = 0.0;
  double min_lr_rate_ = 0.0;
  std::int64_t num_decay_steps_ = 0, num_stable_steps_ = 0;
  Shape warmup_shape_ = Shape::linear, decay_shape_ = Shape::cosine;
  double min_lr_ratio_ = 0.0;
  Plateau plateau_;
};

/// HF Trainer.create_scheduler: get_scheduler(lr_scheduler_type, num_warmup_steps =
/// args.get_warmup_steps(num_training_steps), num_training_steps, lr_scheduler_kwargs), with the base
/// lr (polynomial's lr_init, cosine_with_min_lr's min_lr divisor) = args.learning_rate.
[[nodiscard]] LRScheduler make_scheduler(const TrainingArguments& args, std::int64_t num_training_steps);

namespace detail {

/// Reads one schedule's lr_scheduler_kwargs, naming the offending key in every error.
class KwargsReader {
 public:
  KwargsReader(const nlohmann::json& kwargs, SchedulerType type, std::initializer_list<std::string_view> accepted);

  [[nodiscard]] const nlohmann::json* find(std::string_view key) const {
    if (!kwargs_.is_object()) return nullptr;
    auto it = kwargs_.find(std::string(key));
    return (it == kwargs_.end() || it->is_null()) ? nullptr : &*it;
  }
  [[nodiscard]] std::optional<double> number(std::string_view key) const;
  [[nodiscard]] std::optional<std::int64_t> integer(std::string_view key) const;
  [[nodiscard]] std::optional<std::string> choice(std::string_view key,
                                                  std::initializer_list<std::string_view> choices) const;

 private:
  const nlohmann::json& kwargs_;
  SchedulerType type_;
};

// JSON has no infinities; the plateau's initial `best` is one.
[[nodiscard]] inline nlohmann::json encode_double(double v) {
  if (std::isfinite(v)) return v;
  return std::isnan(v) ? "nan" : (v > 0 ? "inf" : "-inf");
}
[[nodiscard]] double decode_double(const nlohmann::json& j, std::string_view what);

}  // namespace detail

#if TRAINPP_DEFINITIONS

namespace detail {

TRAINPP_INLINE KwargsReader::KwargsReader(const nlohmann::json& kwargs, SchedulerType type,
                                          std::initializer_list<std::string_view> accepted)
    : kwargs_(kwargs), type_(type) {
  if (kwargs_.is_null()) return;
  if (!kwargs_.is_object())
    throw error("lr_scheduler_kwargs must be a JSON object, got {}", kwargs_.dump());
  for (const auto& [key, value] : kwargs_.items()) {
    if (std::ranges::find(accepted, std::string_view(key)) != accepted.end()) continue;
    std::string list;
    for (auto name : accepted) list += (list.empty() ? "" : ", ") + std::string(name);
    throw error("lr_scheduler_kwargs: unknown key '{}' for lr_scheduler_type {} (accepted: {})", key,
                to_string(type_), list.empty() ? "none" : list);
  }
}

TRAINPP_INLINE std::optional<double> KwargsReader::number(std::string_view key) const {
  const auto* v = find(key);
  if (!v) return std::nullopt;
  if (!v->is_number()) throw error("lr_scheduler_kwargs.{} must be a number, got {}", key, v->dump());
  return v->get<double>();
}

TRAINPP_INLINE std::optional<std::int64_t> KwargsReader::integer(std::string_view key) const {
  const auto* v = find(key);
  if (!v) return std::nullopt;
  if (v->is_number_integer()) return v->get<std::int64_t>();
  if (v->is_number_float()) {
    const double d = v->get<double>();
    if (std::isfinite(d) && d == std::floor(d)) return static_cast<std::int64_t>(d);
  }
  throw error("lr_scheduler_kwargs.{} must be an integer, got {}", key, v->dump());
}

TRAINPP_INLINE std::optional<std::string> KwargsReader::choice(std::string_view key,
                                                               std::initializer_list<std::string_view> choices) const {
  const auto* v = find(key);
  if (!v) return std::nullopt;
  std::string list;
  for (auto c : choices) list += (list.empty() ? "'" : ", '") + std::string(c) + "'";
  if (!v->is_string()) throw error("lr_scheduler_kwargs.{} must be one of {}, got {}", key, list, v->dump());
  auto s = v->get<std::string>();
  if (std::ranges::find(choices, std::string_view(s)) == choices.end())
    throw error("lr_scheduler_kwargs.{} must be one of {}, got '{}'", key, list, s);
  return s;
}

TRAINPP_INLINE double decode_double(const nlohmann::json& j, std::string_view what) {
  if (j.is_number()) return j.get<double>();
  if (j.is_string()) {
    const auto s = j.get<std::string>();
    if (s == "inf") return std::numeric_limits<double>::infinity();
    if (s == "-inf") return -std::numeric_limits<double>::infinity();
    if (s == "nan") return std::numeric_limits<double>::quiet_NaN();
  }
  throw error("scheduler state: {} must be a number, got {}", what, j.dump());
}

}  // namespace detail

// Long on purpose: one validation block per scheduler type, next to each other so the kwargs of all types compare at a glance.
TRAINPP_INLINE LRScheduler::LRScheduler(SchedulerType type, const nlohmann::json& kwargs,
                                        std::int64_t num_warmup_steps, std::int64_t num_training_steps,
                                        double base_lr)
    : type_(type),
      kwargs_(kwargs.is_null() ? nlohmann::json::object() : kwargs),
      warmup_(num_warmup_steps),
      total_(num_training_steps),
      base_lr_(base_lr) {
  if (warmup_ < 0) throw error("num_warmup_steps must be >= 0, got {}", warmup_);
  if (total_ < 0) throw error("num_training_steps must be >= 0, got {}", total_);
  using T = SchedulerType;
  auto shape = [](const std::string& s) {
    return s == "linear" ? Shape::linear : s == "cosine" ? Shape::cosine : Shape::one_minus_sqrt;
  };
  switch (type_) {
    case T::linear:
    case T::constant:
    case T::constant_with_warmup: {
      detail::KwargsReader r(kwargs_, type_, {});
      break;
    }
    case T::cosine:
    case T::cosine_with_restarts: {
      detail::KwargsReader r(kwargs_, type_, {"num_cycles"});
      num_cycles_ = r.number("num_cycles").value_or(type_ == T::cosine ? 0.5 : 1.0);
      break;
    }
    case T::polynomial: {
      detail::KwargsReader r(kwargs_, type_, {"lr_end", "power"});
      lr_end_ = r.number("lr_end").value_or(1e-7);
      power_ = r.number("power").value_or(1.0);
      if (!(base_lr_ > lr_end_))
        throw error("lr_scheduler_kwargs.lr_end ({}) must be smaller than the initial learning rate ({})", lr_end_,
                    base_lr_);
      // HF divides by (num_training_steps - num_warmup_steps) once the warmup is over; when the two are
      // equal that is a division by zero at the last step.
      if (total_ == warmup_)
        throw error("lr_scheduler_type polynomial needs num_training_steps ({}) != num_warmup_steps ({})", total_,
                    warmup_);
      break;
    }
    case T::inverse_sqrt: {
      detail::KwargsReader r(kwargs_, type_, {"timescale"});
      timescale_ = r.number("timescale").value_or(warmup_ > 0 ? static_cast<double>(warmup_) : 10000.0);
      if (!(timescale_ > 0)) throw error("lr_scheduler_kwargs.timescale must be positive, got {}", timescale_);
      break;
    }
    case T::cosine_with_min_lr: {
      detail::KwargsReader r(kwargs_, type_, {"num_cycles", "min_lr", "min_lr_rate"});
      num_cycles_ = r.number("num_cycles").value_or(0.5);
      const auto min_lr = r.number("min_lr");
      const auto min_lr_rate = r.number("min_lr_rate");
      if (min_lr && min_lr_rate)
        throw error("lr_scheduler_kwargs: only one of min_lr and min_lr_rate may be set for cosine_with_min_lr");
      if (!min_lr && !min_lr_rate)
        throw error("lr_scheduler_type cosine_with_min_lr requires lr_scheduler_kwargs.min_lr or "
                    "lr_scheduler_kwargs.min_lr_rate");
      if (min_lr) {
        if (base_lr_ == 0) throw error("lr_scheduler_kwargs.min_lr needs a non-zero learning rate to divide by");
        min_lr_rate_ = *min_lr / base_lr_;
      } else {
        min_lr_rate_ = *min_lr_rate;
      }
      break;
    }
    case T::warmup_stable_decay: {
      detail::KwargsReader r(kwargs_, type_, {"num_decay_steps", "num_stable_steps", "warmup_type", "decay_type",
                                              "min_lr_ratio", "num_cycles"});
      const auto decay = r.integer("num_decay_steps");
      if (!decay) throw error("lr_scheduler_type warmup_stable_decay requires lr_scheduler_kwargs.num_decay_steps");
      num_decay_steps_ = *decay;
      num_stable_steps_ = r.integer("num_stable_steps").value_or(total_ - warmup_ - num_decay_steps_);
      warmup_shape_ = shape(r.choice("warmup_type", {"linear", "cosine", "1-sqrt"}).value_or("linear"));
      decay_shape_ = shape(r.choice("decay_type", {"linear", "cosine", "1-sqrt"}).value_or("cosine"));
      min_lr_ratio_ = r.number("min_lr_ratio").value_or(0.0);
      num_cycles_ = r.number("num_cycles").value_or(0.5);
      break;
    }
    case T::reduce_lr_on_plateau: {
      detail::KwargsReader r(kwargs_, type_, {"mode", "factor", "patience", "threshold", "threshold_mode",
                                              "cooldown", "min_lr", "eps"});
      auto& p = plateau_;
      p.maximize = r.choice("mode", {"min", "max"}).value_or("min") == "max";
      p.factor = r.number("factor").value_or(0.1);
      if (!(p.factor < 1.0)) throw error("lr_scheduler_kwargs.factor must be < 1.0, got {}", p.factor);
      p.patience = r.integer("patience").value_or(10);
      p.threshold = r.number("threshold").value_or(1e-4);
      p.relative = r.choice("threshold_mode", {"rel", "abs"}).value_or("rel") == "rel";
      p.cooldown = r.integer("cooldown").value_or(0);
      p.eps = r.number("eps").value_or(1e-8);
      if (const auto* min_lr = r.find("min_lr"); min_lr && min_lr->is_array()) {
        p.min_lr_per_group = true;
        for (const auto& v : *min_lr) {
          if (!v.is_number()) throw error("lr_scheduler_kwargs.min_lr must be a number or a list of numbers, got {}", min_lr->dump());
          p.min_lrs.push_back(v.get<double>());
        }
      } else {
        p.min_lrs = {r.number("min_lr").value_or(0.0)};
      }
      p.best = p.maximize ? -std::numeric_limits<double>::infinity() : std::numeric_limits<double>::infinity();
      break;
    }
  }
}

TRAINPP_INLINE double LRScheduler::lr_factor(std::int64_t step) const {
  using T = SchedulerType;
  constexpr double pi = std::numbers::pi;
  const auto s = static_cast<double>(step);
  // The expressions below keep HF's operation order, so the doubles come out identical.
  switch (type_) {
    case T::constant:
    case T::reduce_lr_on_plateau:
      return 1.0;
    case T::constant_with_warmup:
      return step < warmup_ ? warmup_factor(step) : 1.0;
    case T::linear:
      if (step < warmup_) return warmup_factor(step);
      return std::max(0.0, static_cast<double>(total_ - step) /
                               static_cast<double>(std::max<std::int64_t>(1, total_ - warmup_)));
    case T::cosine:
    case T::cosine_with_restarts:
    case T::cosine_with_min_lr: {
      if (step < warmup_) return warmup_factor(step);
      const double progress =
          static_cast<double>(step - warmup_) / static_cast<double>(std::max<std::int64_t>(1, total_ - warmup_));
      if (type_ == T::cosine) return std::max(0.0, 0.5 * (1.0 + std::cos(pi * num_cycles_ * 2.0 * progress)));
      if (type_ == T::cosine_with_restarts) {
        if (progress >= 1.0) return 0.0;
        return std::max(0.0, 0.5 * (1.0 + std::cos(pi * std::fmod(num_cycles_ * progress, 1.0))));
      }
      double factor = 0.5 * (1.0 + std::cos(pi * num_cycles_ * 2.0 * progress));
      factor = factor * (1 - min_lr_rate_) + min_lr_rate_;
      return std::max(0.0, factor);
    }
    case T::polynomial: {
      if (step < warmup_) return warmup_factor(step);
      if (step > total_) return lr_end_ / base_lr_;
      const double lr_range = base_lr_ - lr_end_;
      const auto decay_steps = static_cast<double>(total_ - warmup_);
      const double pct_remaining = 1 - static_cast<double>(step - warmup_) / decay_steps;
      const double decay = lr_range * std::pow(pct_remaining, power_) + lr_end_;
      return decay / base_lr_;
    }
    case T::inverse_sqrt: {
      if (step < warmup_) return warmup_factor(step);
      const double shift = timescale_ - static_cast<double>(warmup_);
      return 1.0 / std::sqrt((s + shift) / timescale_);
    }
    case T::warmup_stable_decay: {
      auto ramp = [&](double factor) { return std::max(0.0, factor * (1.0 - min_lr_ratio_) + min_lr_ratio_); };
      if (step < warmup_) {
        const double progress = warmup_factor(step);
        switch (warmup_shape_) {
          case Shape::linear: return ramp(progress);
          case Shape::cosine: return ramp(0.5 * (1.0 - std::cos(pi * progress)));
          case Shape::one_minus_sqrt: return ramp(1.0 - std::sqrt(1.0 - progress));
        }
      }
      if (step < warmup_ + num_stable_steps_) return 1.0;
      if (step < warmup_ + num_stable_steps_ + num_decay_steps_) {
        const double progress = static_cast<double>(step - warmup_ - num_stable_steps_) /
                                static_cast<double>(std::max<std::int64_t>(1, num_decay_steps_));
        switch (decay_shape_) {
          case Shape::linear: return ramp(1.0 - progress);
          case Shape::cosine: return ramp(0.5 * (1.0 + std::cos(pi * num_cycles_ * 2.0 * progress)));
          case Shape::one_minus_sqrt: return ramp(1.0 - std::sqrt(progress));
        }
      }
      return min_lr_ratio_;
    }
  }
  return 1.0;
}

TRAINPP_INLINE void LRScheduler::apply(std::vector<ParamGroup>& groups, std::int64_t step) const {
  if (steps_on_metric()) {
    if (plateau_.last_lrs.size() == groups.size())
      for (std::size_t i = 0; i < groups.size(); ++i) groups[i].lr = plateau_.last_lrs[i];
    return;
  }
  const double factor = lr_factor(step);
  for (auto& group : groups) group.lr = group.initial_lr * factor;
}

TRAINPP_INLINE bool LRScheduler::plateau_is_better(double value) const {
  const auto& p = plateau_;
  if (!p.maximize) return p.relative ? value < p.best * (1.0 - p.threshold) : value < p.best - p.threshold;
  return p.relative ? value > p.best * (p.threshold + 1.0) : value > p.best + p.threshold;
}

TRAINPP_INLINE void LRScheduler::step_on_metric(double metric, std::vector<ParamGroup>& groups) {
  if (!steps_on_metric())
    throw error("step_on_metric: lr_scheduler_type {} is a function of the step, not of a metric", to_string(type_));
  auto& p = plateau_;
  p.last_epoch += 1;
  if (plateau_is_better(metric)) {
    p.best = metric;
    p.num_bad_epochs = 0;
  } else {
    p.num_bad_epochs += 1;
  }
  if (p.cooldown_counter > 0) {
    p.cooldown_counter -= 1;
    p.num_bad_epochs = 0;  // bad evaluations during a cooldown do not count
  }
  if (p.num_bad_epochs > p.patience) {
    if (p.min_lr_per_group && p.min_lrs.size() != groups.size())
      throw error("lr_scheduler_kwargs.min_lr has {} values but the optimizer has {} param groups", p.min_lrs.size(),
                  groups.size());
    for (std::size_t i = 0; i < groups.size(); ++i) {
      const double old_lr = groups[i].lr;
      const double new_lr = std::max(old_lr * p.factor, p.min_lr_per_group ? p.min_lrs[i] : p.min_lrs.front());
      if (old_lr - new_lr > p.eps) groups[i].lr = new_lr;
    }
    p.cooldown_counter = p.cooldown;
    p.num_bad_epochs = 0;
  }
  p.last_lrs.clear();
  for (const auto& group : groups) p.last_lrs.push_back(group.lr);
}

TRAINPP_INLINE nlohmann::json LRScheduler::state() const {
  nlohmann::json j = {{"lr_scheduler_type", std::string(to_string(type_))},
                      {"num_warmup_steps", warmup_},
                      {"num_training_steps", total_},
                      {"base_lr", base_lr_},
                      {"kwargs", kwargs_}};
  if (steps_on_metric()) {
    j["best"] = detail::encode_double(plateau_.best);
    j["num_bad_epochs"] = plateau_.num_bad_epochs;
    j["cooldown_counter"] = plateau_.cooldown_counter;
    j["last_epoch"] = plateau_.last_epoch;
    j["last_lrs"] = plateau_.last_lrs;
  }
  return j;
}

TRAINPP_INLINE void LRScheduler::load_state(const nlohmann::json& state) {
  auto shown = [](const nlohmann::json& j) {
    auto text = j.dump();
    return text.size() > 80 ? text.substr(0, 77) + "..." : text;
  };
  if (!state.is_object() || !state.contains("lr_scheduler_type"))
    throw error("scheduler state must be an object with lr_scheduler_type, got {}", shown(state));
  const auto& saved = state.at("lr_scheduler_type");
  if (!saved.is_string() || saved.get<std::string>() != to_string(type_))
    throw error("scheduler state is for lr_scheduler_type {}, this run uses {}", shown(saved), to_string(type_));
  if (!steps_on_metric()) return;  // the lambda schedules are pure functions of the step
  // Each field is checked before any is set (nlohmann's get<> would also take booleans, fractions and
  // negative counts), so a refused state leaves the schedule as it was.
  auto field = [&](const char* key) -> const nlohmann::json& {
    if (!state.contains(key)) throw error("scheduler state for reduce_lr_on_plateau lacks \"{}\"", key);
    return state.at(key);
  };
  auto counter = [&](const char* key) {
    const auto& v = field(key);
    constexpr auto max = static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max());
    if (v.is_number_unsigned() && v.get<std::uint64_t>() <= max) return static_cast<std::int64_t>(v.get<std::uint64_t>());
    if (v.is_number_integer() && !v.is_number_unsigned() && v.get<std::int64_t>() >= 0) return v.get<std::int64_t>();
    throw error("scheduler state: \"{}\" must be a non-negative integer, got {}", key, shown(v));
  };
  const double best = detail::decode_double(field("best"), "best");
  const auto num_bad_epochs = counter("num_bad_epochs");
  const auto cooldown_counter = counter("cooldown_counter");
  const auto last_epoch = counter("last_epoch");
  const auto& lrs = field("last_lrs");
  if (!lrs.is_array() || !std::ranges::all_of(lrs, [](const nlohmann::json& v) { return v.is_number(); }))
    throw error("scheduler state: \"last_lrs\" must be an array of numbers, got {}", shown(lrs));
  auto& p = plateau_;
  p.best = best;
  p.num_bad_epochs = num_bad_epochs;
  p.cooldown_counter = cooldown_counter;
  p.last_epoch = last_epoch;
  p.last_lrs.clear();
  for (const auto& v : lrs) p.last_lrs.push_back(v.get<double>());
}

TRAINPP_INLINE LRScheduler make_scheduler(const TrainingArguments& args, std::int64_t num_training_steps) {
  return LRScheduler(args.lr_scheduler_type, args.lr_scheduler_kwargs, args.get_warmup_steps(num_training_steps),
                     num_training_steps, args.learning_rate);
}

#endif  // TRAINPP_DEFINITIONS

}  // namespace trainpp
