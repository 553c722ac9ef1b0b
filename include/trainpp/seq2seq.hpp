#pragma once
// Seq2SeqTrainer: HF's Seq2SeqTrainer — a Trainer whose evaluation and prediction can generate
// sequences (predict_with_generate) for compute_metrics, with Seq2SeqTrainingArguments.

#include <trainpp/cli.hpp>
#include <trainpp/generation/config.hpp>
#include <trainpp/generation/generate.hpp>
#include <trainpp/logging.hpp>
#include <trainpp/step/default_step.hpp>
#include <trainpp/trainer.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

namespace trainpp {

// The fields Seq2SeqTrainingArguments adds to TrainingArguments', declared once as
// TRAINPP_TRAINING_ARGUMENTS_FIELDS declares those: FIELD(type, name, default, group, help).
#define TRAINPP_SEQ2SEQ_TRAINING_ARGUMENTS_FIELDS(FIELD)                                                                  \
  /* transformers 5.x ignores it too, with a warning. */                                                                 \
  FIELD(bool, sortish_sampler, false, "seq2seq", "Ignored, as in transformers 5.x (accepted for compatibility).")         \
  FIELD(bool, predict_with_generate, false, "seq2seq",                                                                    \
        "Evaluate and predict with generate(): compute_metrics gets generated token ids.")                                \
  /* Unless evaluate/predict are given max_length or max_new_tokens. */                                                  \
  FIELD(std::optional<std::int64_t>, generation_max_length, std::nullopt, "seq2seq",                                      \
        "max_length of generation during evaluation (default: the generation config's).")                                 \
  /* Unless evaluate/predict are given num_beams. */                                                                     \
  FIELD(std::optional<std::int64_t>, generation_num_beams, std::nullopt, "seq2seq",                                       \
        "num_beams of generation during evaluation (default: the generation config's).")                                  \
  FIELD(std::optional<std::string>, generation_config, std::nullopt, "seq2seq",                                           \
        "A generation_config.json (or its directory) replacing the model's generation config.")

/// HF's Seq2SeqTrainingArguments: TrainingArguments and the settings of generation during evaluation.
struct Seq2SeqTrainingArguments : TrainingArguments {
#define TRAINPP_DECLARE_ARGUMENT(type, name, default_value, group, help) type name = default_value;
  TRAINPP_SEQ2SEQ_TRAINING_ARGUMENTS_FIELDS(TRAINPP_DECLARE_ARGUMENT)
#undef TRAINPP_DECLARE_ARGUMENT

  /// validate(*this) (TrainingArguments' checks and the generation settings'), then
  /// TrainingArguments' derived defaults.
  void finalize();
};

/// The checks of the generation settings (TrainingArguments' own are validate(const TrainingArguments&)).
inline void validate(const Seq2SeqTrainingArguments& a) {
  validate(static_cast<const TrainingArguments&>(a));
  if (a.generation_max_length && *a.generation_max_length <= 1)
    throw error("generation_max_length must be at least 2 (the decoder start token and one generated token), got {}",
                *a.generation_max_length);
  if (a.generation_num_beams && *a.generation_num_beams < 1)
    throw error("generation_num_beams must be at least 1 (1 is greedy search), got {}", *a.generation_num_beams);
  if (a.generation_config && a.generation_config->empty()) throw error("generation_config must not be empty");
}

inline void Seq2SeqTrainingArguments::finalize() {
  validate(*this);
  apply_derived_defaults();
}

/// The fields of Seq2SeqTrainingArguments: TrainingArguments' and the generation ones.
template <class V>
void visit_fields(Seq2SeqTrainingArguments& a, V&& v) {
  visit_fields(static_cast<TrainingArguments&>(a), v);
#define TRAINPP_VISIT_ARGUMENT(type, name, default_value, group, help) v(FieldInfo{#name, help, group}, a.name);
  TRAINPP_SEQ2SEQ_TRAINING_ARGUMENTS_FIELDS(TRAINPP_VISIT_ARGUMENT)
#undef TRAINPP_VISIT_ARGUMENT
}

/// HF's **gen_kwargs of Seq2SeqTrainer.evaluate / predict: what one call overrides.
struct GenerationKwargs {
  std::optional<std::int64_t> max_length;
  std::optional<std::int64_t> max_new_tokens;
  std::optional<std::int64_t> num_beams;
};

/// HF's Seq2SeqTrainer.prediction_step. Without predict_with_generate, or when only the loss is
/// wanted, it is DefaultStep's. Otherwise: sequences generated from the batch's input_ids and
/// attention_mask with `generation_config`, the loss from one forward pass with the labels, and the
/// generated tokens (as "logits") and the labels, each padded to the generation length with the pad
/// token. Seq2SeqTrainer sets both members; a derived step may hide prediction_step again.
struct Seq2SeqStep : DefaultStep {
  bool predict_with_generate = false;
  /// The generation settings of the evaluation or prediction running now.
  GenerationConfig generation_config;

  template <class Trainer, class B>
  PredictionStep prediction_step(Trainer& trainer, const B& batch, bool prediction_loss_only) {
    if (!predict_with_generate || prediction_loss_only)
      return DefaultStep::prediction_step(trainer, batch, prediction_loss_only);
    torch::NoGradGuard no_grad;
    const bool has_labels = trainer.has_labels(batch);
    // As in HF, generate() runs outside the loss's autocast context, in the model's own dtype.
    const torch::Tensor attention_mask = batch.contains("attention_mask") ? batch.at("attention_mask") : torch::Tensor();
    const auto generated = pad_to_generation_length(
        generate(trainer.model(), batch.at("input_ids"), attention_mask, generation_config));
    PredictionStep out;
    if (has_labels) {
      [[maybe_unused]] auto autocast = trainer.precision().eval_context(trainer.device());
      out.loss = trainer.compute_loss(trainer.forward(batch), batch).detach();
    }
    if (trainer.args().prediction_loss_only) return out;
    out.logits = generated;
    if (has_labels) out.labels = pad_to_generation_length(trainer.labels_of(batch));
    return out;
  }

  /// HF's padding of generated tokens and labels: to max_length (20 when unset) when shorter, else to
  /// max_new_tokens + 1 when that is set and longer; filled with pad_token_id, else eos_token_id.
  /// (HF reads the model's generation config here, so an evaluate() override of max_length would not
  /// change the width; trainpp pads to the settings the sequences were generated with.)
  [[nodiscard]] torch::Tensor pad_to_generation_length(const torch::Tensor& t) const {
    const auto width = t.size(-1);
    const auto max_length = generation_config.max_length.value_or(GenerationConfig::default_max_new_tokens);
    std::int64_t target = width;
    if (width < max_length) target = max_length;
    else if (generation_config.max_new_tokens && width < *generation_config.max_new_tokens + 1)
      target = *generation_config.max_new_tokens + 1;
    if (target == width) return t;
    const auto pad = generation_config.effective_pad_token_id();
    if (!pad)
      throw error("pad_token_id (or eos_token_id) must be set in the generation config, in order to pad the "
                  "generated tokens and labels to the same length");
    auto padded = torch::full({t.size(0), target}, *pad, t.options());
    padded.narrow(1, 0, width).copy_(t);
    return padded;
  }
};

namespace detail {
/// The slots of a Seq2SeqTrainer: Seq2SeqStep in the step slot unless one is named.
template <class... Named>
using seq2seq_slots_t =
    std::conditional_t<slot_count<slot::step_t, Named...> == 0,
                       resolve_slots_t<Named..., boost::hana::pair<slot::step_t, Seq2SeqStep>>, resolve_slots_t<Named...>>;
}  // namespace detail

/// HF's Seq2SeqTrainer: a Trainer with Seq2SeqStep in the step slot (or a step derived from it) and
/// Seq2SeqTrainingArguments, whose evaluate and predict take generation overrides:
///
///     trainpp::Seq2SeqTrainer trainer(Model{...}, args, trainpp::train_dataset = train,
///                                     trainpp::eval_dataset = test, trainpp::compute_metrics = exact_match);
///     trainer.evaluate({.num_beams = 4});
///
/// The model needs encode and decode_step (trainpp::EncoderDecoderModel) when predict_with_generate
/// is on; it may provide `GenerationConfig generation_config()`, HF's model.generation_config.
template <class Model, class P>
class Seq2SeqTrainer : public Trainer<Model, P> {
  using Base = Trainer<Model, P>;

 public:
  using typename Base::step_type;
  static_assert(std::is_base_of_v<Seq2SeqStep, step_type>,
                "trainpp::Seq2SeqTrainer: the step slot must hold trainpp::Seq2SeqStep or a type derived from it");

  template <class... Named>
    requires(detail::slot_count<slot::step_t, Named...> == 0)
  Seq2SeqTrainer(Model model, Seq2SeqTrainingArguments args, Named... named)
      : Base(std::move(model), args, trainpp::step = Seq2SeqStep{}, std::move(named)...), args_(std::move(args)) {
    init();
  }
  template <class... Named>
    requires(detail::slot_count<slot::step_t, Named...> == 1)
  Seq2SeqTrainer(Model model, Seq2SeqTrainingArguments args, Named... named)
      : Base(std::move(model), args, std::move(named)...), args_(std::move(args)) {
    init();
  }

  [[nodiscard]] const Seq2SeqTrainingArguments& args() const { return args_; }

  /// The generation settings evaluate / predict use with `overrides`. Precedence, highest first (HF's
  /// Seq2SeqTrainer.evaluate and generate):
  ///  1. the overrides (max_length, max_new_tokens, num_beams);
  ///  2. generation_max_length, unless max_length or max_new_tokens is overridden, and
  ///     generation_num_beams, unless num_beams is;
  ///  3. the args.generation_config file, which replaces
  ///  4. the model's generation_config(), else GenerationConfig's defaults.
  /// Whichever level sets max_new_tokens, it takes precedence over max_length when generating.
  [[nodiscard]] GenerationConfig generation_config(const GenerationKwargs& overrides = {}) const {
    GenerationKwargs kw = overrides;
    if (!kw.max_length && !kw.max_new_tokens && args_.generation_max_length) kw.max_length = args_.generation_max_length;
    if (!kw.num_beams && args_.generation_num_beams) kw.num_beams = args_.generation_num_beams;
    GenerationConfig c = base_generation_config_;
    if (kw.max_length) c.max_length = kw.max_length;
    if (kw.max_new_tokens) c.max_new_tokens = kw.max_new_tokens;
    if (kw.num_beams) c.num_beams = *kw.num_beams;
    c.validate();
    return c;
  }

  /// Trainer::evaluate, generating with generation_config(overrides) when predict_with_generate is on.
  Metrics evaluate(std::string_view prefix = "eval") { return evaluate(GenerationKwargs{}, prefix); }
  Metrics evaluate(const GenerationKwargs& overrides, std::string_view prefix = "eval") {
    GenerationScope scope(*this, overrides);
    return Base::evaluate(prefix);
  }
  template <Dataset D>
  Metrics evaluate(const D& dataset, std::string_view prefix = "eval") {
    return evaluate(dataset, GenerationKwargs{}, prefix);
  }
  template <Dataset D>
  Metrics evaluate(const D& dataset, const GenerationKwargs& overrides, std::string_view prefix = "eval") {
    GenerationScope scope(*this, overrides);
    return Base::evaluate(dataset, prefix);
  }

  /// Trainer::predict, generating with generation_config(overrides) when predict_with_generate is on:
  /// the predictions are then the generated token ids.
  template <Dataset D>
  PredictionOutput predict(const D& dataset, std::string_view prefix = "test") {
    return predict(dataset, GenerationKwargs{}, prefix);
  }
  template <Dataset D>
  PredictionOutput predict(const D& dataset, const GenerationKwargs& overrides, std::string_view prefix = "test") {
    GenerationScope scope(*this, overrides);
    return Base::predict(dataset, prefix);
  }

 private:
  /// Puts one call's generation settings into the step, and the arguments' back afterwards: the
  /// evaluations train() runs use the arguments' settings, as HF's evaluate() without overrides.
  class GenerationScope {
   public:
    GenerationScope(Seq2SeqTrainer& trainer, const GenerationKwargs& overrides) : trainer_(trainer) {
      trainer_.step().generation_config = trainer_.generation_config(overrides);
    }
    ~GenerationScope() { trainer_.step().generation_config = trainer_.default_generation_config_; }
    GenerationScope(const GenerationScope&) = delete;
    GenerationScope& operator=(const GenerationScope&) = delete;

   private:
    Seq2SeqTrainer& trainer_;
  };

  void init() {
    args_.finalize();  // already applied by the parser or the Trainer to its copy; idempotent
    this->set_saved_arguments(args_json(args_));  // training_args.json with the Seq2Seq fields, as HF's
    if (args_.sortish_sampler) warn("sortish_sampler has no effect (transformers 5.x ignores it as well)");
    // Under FullShard each generated token is a forward with collectives, and the processes stop
    // generating at different steps (HF's synced_gpus keeps them in lockstep; trainpp does not yet).
    if constexpr (requires { this->sharding().forward_is_collective(); })
      if (args_.predict_with_generate && this->sharding().forward_is_collective())
        throw error("--predict_with_generate is not supported under full_shard with several processes: use "
                    "shard_grad_op, or evaluate the saved model in one process");
    if (args_.generation_config) {
      base_generation_config_ = GenerationConfig::from_file(*args_.generation_config);
    } else if constexpr (requires(Model& m) { { m->generation_config() } -> std::convertible_to<GenerationConfig>; }) {
      base_generation_config_ = this->model()->generation_config();
    }
    base_generation_config_.validate();
    this->step().predict_with_generate = args_.predict_with_generate;
    default_generation_config_ = generation_config();
    this->step().generation_config = default_generation_config_;
  }

  Seq2SeqTrainingArguments args_;
  GenerationConfig base_generation_config_;     ///< levels 3 and 4 of the precedence
  GenerationConfig default_generation_config_;  ///< generation_config() without overrides
};

template <class Model, class... Named>
Seq2SeqTrainer(Model, Seq2SeqTrainingArguments, Named...) -> Seq2SeqTrainer<Model, detail::seq2seq_slots_t<Named...>>;

}  // namespace trainpp
