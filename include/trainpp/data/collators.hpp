#pragma once
// Collators of tokenized examples of different lengths: transformers' DataCollatorWithPadding,
// DataCollatorForLanguageModeling, DataCollatorForSeq2Seq and default_data_collator, with the padding
// rules of a tokenizer's pad().

#include <trainpp/detail/config.hpp>
#include <trainpp/data/batch.hpp>
#include <trainpp/data/collate.hpp>
#include <trainpp/logging.hpp>

#include <algorithm>
#include <atomic>
#include <concepts>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#if TRAINPP_DEFINITIONS
#include <ATen/CPUGeneratorImpl.h>
#endif

namespace trainpp {

/// Where padding goes (a tokenizer's padding_side).
enum class PaddingSide { right, left };
/// How long a padded batch is: its longest sequence, or a fixed max_length (HF's PaddingStrategy; not
/// padding at all cannot make a batch tensor of unequal lengths, so it has no counterpart).
enum class PaddingStrategy { longest, max_length };

/// What a tokenizer's pad() needs to know: its pad ids and side, and the batch length rule.
struct PaddingOptions {
  /// The tokenizer's pad_token_id; padding without one is an error, as HF makes it.
  std::optional<std::int64_t> pad_token_id;
  std::int64_t pad_token_type_id = 0;
  PaddingSide padding_side = PaddingSide::right;
  PaddingStrategy padding = PaddingStrategy::longest;
  /// The length under PaddingStrategy::max_length (required there); ignored for longest, as in HF.
  std::optional<std::int64_t> max_length;
  /// Round the padded length up to a multiple of this (tensor-core friendly shapes).
  std::optional<std::int64_t> pad_to_multiple_of;
  /// The tokenizer's model_input_names[0]: the key whose length decides the padding.
  std::string model_input_name = "input_ids";
  /// Add an all-ones attention_mask when the examples have none ("attention_mask" in model_input_names).
  bool return_attention_mask = true;
};

namespace detail::collators {

/// A tensor as torch.tensor() would rebuild it from Python numbers: integers int64, floats float32.
[[nodiscard]] inline torch::Tensor as_python_numbers(const torch::Tensor& t) {
  if (t.scalar_type() == torch::kBool) return t;
  if (at::isFloatingType(t.scalar_type())) return t.to(torch::kFloat);
  return t.to(torch::kLong);
}

[[nodiscard]] inline std::int64_t round_up(std::int64_t length, std::optional<std::int64_t> multiple) {
  if (!multiple || length % *multiple == 0) return length;
  return (length / *multiple + 1) * *multiple;
}

void check_options(const PaddingOptions& o, std::string_view who);

/// The 1-D sequence `key` of example `e`; throws naming both when it is missing or not 1-D.
[[nodiscard]] const torch::Tensor& sequence(const Batch& example, std::size_t e, std::string_view key,
                                            std::string_view who);

/// `rows` padded with `value` to `length` on `side`, stacked into [N, length] (dtype as Python numbers).
[[nodiscard]] torch::Tensor pad_rows(const std::vector<torch::Tensor>& rows, std::int64_t length,
                                     std::int64_t value, PaddingSide side);

/// The examples' values of `key`, stacked (equal shapes only).
[[nodiscard]] torch::Tensor stack_key(const std::vector<Batch>& examples, std::string_view key,
                                      std::string_view who);

}  // namespace detail::collators

/// A tokenizer's pad() over a list of examples: the model input (input_ids) is padded with the pad
/// token, attention_mask with 0 (and created, all ones before padding, when absent), token_type_ids
/// with pad_token_type_id, special_tokens_mask with 1 (padding is special); every other key is
/// stacked, so it must have one shape in all examples. Integers come out int64, as HF's tensors made
/// from Python lists do. Throws trainpp::Error on a missing key, a sequence longer than max_length
/// (pad() does not truncate) or padding without a pad token.
[[nodiscard]] Batch pad_examples(const std::vector<Batch>& examples, const PaddingOptions& options,
                                 std::string_view who = "pad");

/// transformers' DataCollatorWithPadding: pad_examples(), then `label` and `label_ids` renamed `labels`
/// (placed last, as HF's rename does).
struct DataCollatorWithPadding {
  PaddingOptions padding;

  [[nodiscard]] Batch operator()(std::vector<Batch>&& examples) const;
};

/// transformers' DataCollatorForSeq2Seq: the inputs padded as pad_examples() does; `labels` (or
/// `label`) padded separately with label_pad_token_id, on the tokenizer's side, to the longest label
/// (max_length under PaddingStrategy::max_length), rounded up to pad_to_multiple_of, as int64
/// `labels`. Examples without labels give a batch without them. (HF's optional `model` argument,
/// which makes decoder_input_ids, is left to the model: trainpp's seq2seq models shift the labels.)
struct DataCollatorForSeq2Seq {
  PaddingOptions padding;
  std::int64_t label_pad_token_id = -100;

  [[nodiscard]] Batch operator()(std::vector<Batch>&& examples) const;
};

/// transformers' default_data_collator: every key stacked (equal shapes only). A scalar `label`
/// becomes `labels`, int64 when integral and float32 otherwise; `label_ids` becomes `labels` as it
/// is. `labels` comes first, as in HF. Undefined tensors are left out, as HF leaves out None.
struct DefaultDataCollator {
  [[nodiscard]] Batch operator()(std::vector<Batch>&& examples) const;
};

/// The tokens DataCollatorForLanguageModeling needs beyond padding.
struct LanguageModelingOptions {
  PaddingOptions padding;  ///< pad_token_id, side, pad_to_multiple_of (the batch is padded to its longest)
  bool mlm = true;         ///< false: causal LM, labels are the inputs with padding ignored
  double mlm_probability = 0.15;
  double mask_replace_prob = 0.8;    ///< of the chosen tokens, replaced by mask_token_id
  double random_replace_prob = 0.1;  ///< of the chosen tokens, replaced by a random id below vocab_size
  std::optional<std::int64_t> mask_token_id;
  std::int64_t vocab_size = 0;  ///< len(tokenizer): random replacements are drawn from [0, vocab_size)
  /// The tokenizer's all_special_ids: never masked when an example has no special_tokens_mask.
  std::vector<std::int64_t> special_token_ids;
  /// Seeds the masking. Batch k of the loader's run (see BatchOrdinal) draws from a generator seeded
  /// with seed + k, so the masks do not depend on which worker thread collates which batch; batch 0
  /// draws what HF's collator seeded with `seed` draws on its first call. Without a seed, torch's
  /// global generator is used, as HF does.
  std::optional<std::int64_t> seed;
};

/// transformers' DataCollatorForLanguageModeling (without whole-word masking). The examples are
/// padded as pad_examples() does (padding longest, pad_to_multiple_of); a special_tokens_mask key is
/// taken out of the batch and says which tokens must not be masked (else special_token_ids does).
/// Masked LM: each other token is chosen with mlm_probability; labels are -100 except at chosen
/// tokens; of those, mask_replace_prob become mask_token_id, random_replace_prob a random token, the
/// rest stay — drawn in HF's order from one generator, so the same seed gives HF's masks. Causal LM:
/// labels are input_ids with pad_token_id positions -100.
class DataCollatorForLanguageModeling {
 public:
  explicit DataCollatorForLanguageModeling(LanguageModelingOptions options);

  [[nodiscard]] const LanguageModelingOptions& options() const { return o_; }

  /// The batch as batch 0 of a run (see LanguageModelingOptions::seed).
  [[nodiscard]] Batch operator()(std::vector<Batch>&& examples) const { return (*this)(std::move(examples), BatchOrdinal{}); }

  [[nodiscard]] Batch operator()(std::vector<Batch>&& examples, BatchOrdinal ordinal) const;

  /// HF's torch_mask_tokens on a padded [N, L] batch of ids: the masked inputs and the labels.
  [[nodiscard]] std::pair<torch::Tensor, torch::Tensor> mask_tokens(torch::Tensor ids, torch::Tensor special_tokens_mask,
                                                                    const std::optional<at::Generator>& generator) const;

 private:
  LanguageModelingOptions o_;
};

/// A model that declares the inputs its forward accepts (HF reads them off forward's signature):
/// `m.input_names()`, e.g. {"input_ids", "attention_mask", "token_type_ids", "labels"}.
template <class M>
concept DeclaresInputNames = requires(const M& m) {
  { m.input_names() } -> std::convertible_to<std::vector<std::string>>;
};

/// The keys transformers' remove_unused_columns keeps: the model's inputs, plus `label` and
/// `label_ids` (which the collators rename to labels) and the label_names.
[[nodiscard]] std::vector<std::string> signature_columns(std::vector<std::string> model_inputs,
                                                         const std::vector<std::string>& label_names = {});

/// transformers' RemoveColumnsCollator (remove_unused_columns): drops from every example the keys
/// that are not in `kept` (see signature_columns) before `collate` sees them, and says once, at info
/// level and in HF's words, which keys it drops. Copies share the "said once".
template <class Collate>
class RemoveUnusedColumns {
 public:
  /// `description`: the data set's role as HF names it in the message ("training", "evaluation").
  RemoveUnusedColumns(Collate collate, std::vector<std::string> kept, std::string model_name,
                      std::string description = {})
      : collate_(std::move(collate)), kept_(std::move(kept)), model_name_(std::move(model_name)),
        description_(std::move(description)), logged_(std::make_shared<std::atomic<bool>>(false)) {}

  [[nodiscard]] Batch operator()(std::vector<Batch>&& examples) const
    requires CollateFor<Collate, Batch>
  {
    return collate_(strip(std::move(examples)));
  }
  [[nodiscard]] Batch operator()(std::vector<Batch>&& examples, BatchOrdinal ordinal) const
    requires OrdinalCollateFor<Collate, Batch>
  {
    return collate_(strip(std::move(examples)), ordinal);
  }

  [[nodiscard]] const std::vector<std::string>& kept() const { return kept_; }

 private:
  [[nodiscard]] std::vector<Batch> strip(std::vector<Batch>&& examples) const {
    for (Batch& example : examples) {
      std::vector<std::string> dropped;
      for (const auto& [key, t] : example)
        if (std::ranges::find(kept_, key) == kept_.end()) dropped.push_back(key);
      if (dropped.empty()) continue;
      if (!model_name_.empty() && !logged_->exchange(true)) {
        const std::string names = fmt::format("{}", fmt::join(dropped, ", "));
        logger().info("The following columns {}don't have a corresponding argument in `{}.forward` and have been "
                      "ignored: {}. If {} are not expected by `{}.forward`,  you can safely ignore this message.",
                      description_.empty() ? std::string() : fmt::format("in the {} set ", description_),
                      model_name_, names, names, model_name_);
      }
      example = example.without(dropped);
    }
    return std::move(examples);
  }

  Collate collate_;
  std::vector<std::string> kept_;
  std::string model_name_;
  std::string description_;
  std::shared_ptr<std::atomic<bool>> logged_;
};

#if TRAINPP_DEFINITIONS

namespace detail::collators {

TRAINPP_INLINE void check_options(const PaddingOptions& o, std::string_view who) {
  if (o.pad_to_multiple_of && *o.pad_to_multiple_of < 1)
    throw error("{}: pad_to_multiple_of must be at least 1, got {}", who, *o.pad_to_multiple_of);
  if (o.padding == PaddingStrategy::max_length && !o.max_length)
    throw error("{}: padding 'max_length' needs max_length (there is no tokenizer to take model_max_length from)",
                who);
  if (o.max_length && *o.max_length < 1) throw error("{}: max_length must be at least 1, got {}", who, *o.max_length);
}

TRAINPP_INLINE const torch::Tensor& sequence(const Batch& example, std::size_t e, std::string_view key,
                                             std::string_view who) {
  if (!example.contains(key))
    throw error("{}: example {} has no '{}' (its keys: {})", who, e, key, fmt::join(example.keys(), ", "));
  const torch::Tensor& t = example.at(key);
  if (!t.defined() || t.dim() != 1)
    throw error("{}: '{}' of example {} must be a 1-D tensor of token ids, got {}", who, key, e,
                t.defined() ? fmt::format("shape [{}]", fmt::join(t.sizes(), ", ")) : std::string("an undefined tensor"));
  return t;
}

TRAINPP_INLINE torch::Tensor pad_rows(const std::vector<torch::Tensor>& rows, std::int64_t length,
                                      std::int64_t value, PaddingSide side) {
  torch::Tensor out = torch::full({static_cast<std::int64_t>(rows.size()), length}, value, torch::kLong);
  for (std::size_t i = 0; i < rows.size(); ++i) {
    const std::int64_t n = rows[i].size(0);
    const std::int64_t begin = side == PaddingSide::right ? 0 : length - n;
    out[static_cast<std::int64_t>(i)].narrow(0, begin, n).copy_(rows[i]);
  }
  return out;
}

TRAINPP_INLINE torch::Tensor stack_key(const std::vector<Batch>& examples, std::string_view key,
                                       std::string_view who) {
  std::vector<torch::Tensor> parts;
  parts.reserve(examples.size());
  for (std::size_t e = 0; e < examples.size(); ++e) {
    if (!examples[e].contains(key))
      throw error("{}: example {} has no '{}' but example 0 has (its keys: {})", who, e, key,
                  fmt::join(examples[e].keys(), ", "));
    const torch::Tensor& t = examples[e].at(key);
    if (!t.defined()) throw error("{}: '{}' of example {} is an undefined tensor", who, key, e);
    if (!parts.empty() && t.sizes() != parts.front().sizes())
      throw error("{}: '{}' has shape [{}] in example 0 but [{}] in example {}; only the tokenizer's inputs are "
                  "padded",
                  who, key, fmt::join(parts.front().sizes(), ", "), fmt::join(t.sizes(), ", "), e);
    parts.push_back(t);
  }
  return torch::stack(parts);
}

}  // namespace detail::collators

TRAINPP_INLINE Batch pad_examples(const std::vector<Batch>& examples, const PaddingOptions& options,
                                  std::string_view who) {
  namespace c = detail::collators;
  c::check_options(options, who);
  Batch out;
  if (examples.empty()) return out;
  const std::string& input = options.model_input_name;
  std::int64_t longest = 0;
  for (std::size_t e = 0; e < examples.size(); ++e)
    longest = std::max(longest, c::sequence(examples[e], e, input, who).size(0));
  const std::int64_t length = c::round_up(
      options.padding == PaddingStrategy::longest ? longest : *options.max_length, options.pad_to_multiple_of);
  if (longest > length)
    throw error("{}: example of {} tokens exceeds max_length {} (padding does not truncate; truncate when "
                "tokenizing)", who, longest, length);
  if (!options.pad_token_id)
    throw error("{}: asked to pad but there is no pad_token_id (set PaddingOptions::pad_token_id)", who);

  auto padded = [&](std::string_view key, std::int64_t value) {
    std::vector<torch::Tensor> rows;
    rows.reserve(examples.size());
    for (std::size_t e = 0; e < examples.size(); ++e) {
      const torch::Tensor& row = c::sequence(examples[e], e, key, who);
      const torch::Tensor& ids = examples[e].at(input);
      if (row.size(0) != ids.size(0))
        throw error("{}: '{}' of example {} has {} entries but its '{}' has {}", who, key, e, row.size(0), input,
                    ids.size(0));
      rows.push_back(row);
    }
    return c::pad_rows(rows, length, value, options.padding_side);
  };
  for (const auto& [key, value] : examples.front()) {
    if (key == input) out[key] = padded(key, *options.pad_token_id);
    else if (key == "attention_mask") out[key] = padded(key, 0);
    else if (key == "token_type_ids") out[key] = padded(key, options.pad_token_type_id);
    else if (key == "special_tokens_mask") out[key] = padded(key, 1);
    else out[key] = c::as_python_numbers(c::stack_key(examples, key, who));
  }
  if (options.return_attention_mask && !out.contains("attention_mask")) {
    std::vector<torch::Tensor> ones;
    ones.reserve(examples.size());
    for (const Batch& example : examples) ones.push_back(torch::ones({example.at(input).size(0)}, torch::kLong));
    out["attention_mask"] = c::pad_rows(ones, length, 0, options.padding_side);
  }
  return out;
}

TRAINPP_INLINE Batch DataCollatorWithPadding::operator()(std::vector<Batch>&& examples) const {
  Batch padded = pad_examples(examples, padding, "DataCollatorWithPadding");
  Batch out;
  torch::Tensor labels;
  for (auto& [key, t] : padded) {
    if (key == "label" || key == "label_ids") {
      if (key == "label_ids" || !labels.defined()) labels = t;  // HF renames label, then label_ids over it
    } else {
      out[key] = std::move(t);
    }
  }
  if (labels.defined()) out["labels"] = labels;
  return out;
}

TRAINPP_INLINE Batch DataCollatorForSeq2Seq::operator()(std::vector<Batch>&& examples) const {
  constexpr std::string_view who = "DataCollatorForSeq2Seq";
  namespace c = detail::collators;
  if (examples.empty()) return {};
  const std::string label_name = examples.front().contains("label") ? "label" : "labels";
  const bool has_labels = examples.front().contains(label_name);
  std::vector<torch::Tensor> labels;
  std::vector<Batch> inputs;
  inputs.reserve(examples.size());
  for (std::size_t e = 0; e < examples.size(); ++e) {
    if (has_labels) labels.push_back(c::sequence(examples[e], e, label_name, who));
    inputs.push_back(examples[e].without({label_name}));
  }
  Batch out = pad_examples(inputs, padding, who);
  if (!has_labels) return out;
  std::int64_t length = 0;
  if (padding.padding == PaddingStrategy::max_length && padding.max_length) {
    length = *padding.max_length;
  } else {
    for (const auto& l : labels) length = std::max(length, l.size(0));
  }
  length = c::round_up(length, padding.pad_to_multiple_of);
  for (std::size_t e = 0; e < labels.size(); ++e)
    if (labels[e].size(0) > length)
      throw error("{}: the labels of example {} have {} tokens, more than max_length {}", who, e, labels[e].size(0),
                  length);
  out["labels"] = c::pad_rows(labels, length, label_pad_token_id, padding.padding_side);
  return out;
}

TRAINPP_INLINE Batch DefaultDataCollator::operator()(std::vector<Batch>&& examples) const {
  constexpr std::string_view who = "default_data_collator";
  namespace c = detail::collators;
  Batch out;
  if (examples.empty()) return out;
  const Batch& first = examples.front();
  const bool has_label = first.contains("label") && first.at("label").defined();
  if (has_label) {
    const torch::Tensor stacked = c::stack_key(examples, "label", who);
    if (stacked.dim() != 1)
      throw error("{}: 'label' must be one number per example, got shape [{}] in example 0", who,
                  fmt::join(first.at("label").sizes(), ", "));
    out["labels"] = at::isFloatingType(stacked.scalar_type()) ? stacked.to(torch::kFloat) : stacked.to(torch::kLong);
  } else if (first.contains("label_ids") && first.at("label_ids").defined()) {
    out["labels"] = c::stack_key(examples, "label_ids", who);
  }
  for (const auto& [key, value] : first) {
    if (key == "label" || key == "label_ids" || !value.defined()) continue;
    out[key] = c::stack_key(examples, key, who);
  }
  return out;
}

TRAINPP_INLINE DataCollatorForLanguageModeling::DataCollatorForLanguageModeling(LanguageModelingOptions options) : o_(std::move(options)) {
  constexpr std::string_view who = "DataCollatorForLanguageModeling";
  if (o_.mlm) {
    if (!o_.mask_token_id)
      throw error("{}: masked language modeling needs mask_token_id (use mlm = false for causal LM)", who);
    if (!(o_.mlm_probability >= 0 && o_.mlm_probability <= 1))
      throw error("{}: mlm_probability must be in [0, 1], got {}", who, o_.mlm_probability);
  }
  if (!(o_.mask_replace_prob >= 0 && o_.mask_replace_prob <= 1))
    throw error("{}: mask_replace_prob must be in [0, 1], got {}", who, o_.mask_replace_prob);
  if (!(o_.random_replace_prob >= 0 && o_.random_replace_prob <= 1))
    throw error("{}: random_replace_prob must be in [0, 1], got {}", who, o_.random_replace_prob);
  if (o_.mask_replace_prob + o_.random_replace_prob > 1)
    throw error("{}: mask_replace_prob + random_replace_prob must not exceed 1, got {} + {}", who,
                o_.mask_replace_prob, o_.random_replace_prob);
  if (o_.mlm && o_.random_replace_prob > 0 && o_.mask_replace_prob < 1 && o_.vocab_size < 1)
    throw error("{}: random replacements need vocab_size (len(tokenizer)), got {}", who, o_.vocab_size);
  if (o_.padding.padding != PaddingStrategy::longest)
    throw error("{}: pads to the longest example (HF's collator does); use pad_to_multiple_of for fixed shapes", who);
}

TRAINPP_INLINE Batch DataCollatorForLanguageModeling::operator()(std::vector<Batch>&& examples, BatchOrdinal ordinal) const {
  constexpr std::string_view who = "DataCollatorForLanguageModeling";
  Batch padded = pad_examples(examples, o_.padding, who);
  Batch out;
  torch::Tensor special;
  for (auto& [key, t] : padded) {
    if (key == "special_tokens_mask") special = t;
    else out[key] = std::move(t);
  }
  torch::Tensor& ids = out[o_.padding.model_input_name];
  if (!o_.mlm) {
    torch::Tensor labels = ids.clone();
    if (o_.padding.pad_token_id) labels.masked_fill_(labels == *o_.padding.pad_token_id, -100);
    out["labels"] = labels;
    return out;
  }
  std::optional<at::Generator> generator;
  if (o_.seed)
    generator = at::detail::createCPUGenerator(static_cast<std::uint64_t>(*o_.seed + ordinal.value));
  auto [inputs, labels] = mask_tokens(ids, special, generator);
  ids = inputs;
  out["labels"] = labels;
  return out;
}

TRAINPP_INLINE std::pair<torch::Tensor, torch::Tensor> DataCollatorForLanguageModeling::mask_tokens(torch::Tensor ids, torch::Tensor special_tokens_mask,
                                                                                                    const std::optional<at::Generator>& generator) const {
  ids = ids.clone();
  torch::Tensor labels = ids.clone();
  torch::Tensor protect;
  if (special_tokens_mask.defined()) {
    protect = special_tokens_mask.to(torch::kBool);
  } else {
    protect = torch::zeros_like(ids, torch::kBool);
    for (const std::int64_t id : o_.special_token_ids) protect.logical_or_(ids == id);
  }
  const auto shape = labels.sizes();
  torch::Tensor probability = torch::full(shape, o_.mlm_probability, torch::kFloat);
  probability.masked_fill_(protect, 0.0);
  const torch::Tensor chosen = torch::bernoulli(probability, generator).to(torch::kBool);
  labels.masked_fill_(chosen.logical_not(), -100);
  const torch::Tensor replaced =
      torch::bernoulli(torch::full(shape, o_.mask_replace_prob, torch::kFloat), generator).to(torch::kBool) & chosen;
  ids.masked_fill_(replaced, *o_.mask_token_id);
  if (o_.mask_replace_prob == 1 || o_.random_replace_prob == 0) return {ids, labels};
  // The random share is drawn among the chosen tokens that were not replaced by the mask token.
  const double scaled = o_.random_replace_prob / (1 - o_.mask_replace_prob);
  const torch::Tensor random_ones = torch::bernoulli(torch::full(shape, scaled, torch::kFloat), generator)
                                        .to(torch::kBool) &
                                    chosen & replaced.logical_not();
  const torch::Tensor random_words = torch::randint(o_.vocab_size, shape, generator, torch::kLong);
  ids = torch::where(random_ones, random_words, ids);
  return {ids, labels};
}

TRAINPP_INLINE std::vector<std::string> signature_columns(std::vector<std::string> model_inputs,
                                                          const std::vector<std::string>& label_names) {
  for (const std::string_view extra : {"label", "label_ids"})
    if (std::ranges::find(model_inputs, extra) == model_inputs.end()) model_inputs.emplace_back(extra);
  for (const auto& name : label_names)
    if (std::ranges::find(model_inputs, name) == model_inputs.end()) model_inputs.push_back(name);
  return model_inputs;
}

#endif  // TRAINPP_DEFINITIONS

}  // namespace trainpp
