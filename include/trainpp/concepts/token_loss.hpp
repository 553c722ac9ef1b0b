#pragma once
// A model whose loss is a sum over label tokens (transformers' models that accept num_items_in_batch):
// under gradient accumulation its loss is normalised by the label tokens of the whole window, not
// averaged per micro-batch and divided by the number of micro-batches.

#include <trainpp/detail/config.hpp>
#include <trainpp/detail/declares.hpp>

#include <concepts>
#include <type_traits>

namespace trainpp {

/// Optional members of a model's module (the TORCH_MODULE's Impl, reached through model->):
/// - `torch::Tensor num_items_in_batch(const Batch& batch) const`: the number of label tokens this
///   batch's loss sums over, as an int64 scalar on the batch's device (no host sync) — for a causal LM
///   the labels after the first position (its loss scores position t against label t + 1), for a
///   masked LM every label that is not -100. transformers counts the same tokens in
///   Trainer._get_num_items_in_batch.
///
/// A model that declares it must return from forward, given labels, a struct with a `loss_sum` tensor
/// member: the token losses summed (float32 scalar). The Trainer then counts the tokens of every
/// micro-batch of an accumulation window before the first forward (summed over the processes under
/// --average_tokens_across_devices), takes loss_sum / that count as each micro-batch's loss, and does
/// not divide by the number of micro-batches again. Without the member, each micro-batch's loss is the
/// model's mean divided by the number of micro-batches (HF's rule for models that take no loss
/// kwargs). The loss slot must be the default (trainpp::ModelLoss) for the count to be used: another
/// loss policy returns a mean of its own.
/// Models: trainpp::GPT2LMHeadModel, trainpp::LlamaForCausalLM, trainpp::BertForMaskedLM.
template <class Impl, class B>
concept CountsLossTokens = requires(const Impl& m, const B& batch) {
  { m.num_items_in_batch(batch) } -> std::convertible_to<torch::Tensor>;
};

namespace detail {

// Whether Impl declares anything named num_items_in_batch is detail::declares_num_items_in_batch
// (detail/declares.hpp): a member of that name with the wrong signature is an error, not a model
// without token-level loss.

/// The module type behind a model handle (ModuleHolder or shared_ptr).
template <class Model>
using model_impl_t = std::remove_cvref_t<decltype(*std::declval<Model&>())>;

/// Whether the model's loss is token-level for this batch and output type; asserts that a declared
/// num_items_in_batch is callable as the loop calls it and that the output carries loss_sum.
template <class Model, class B, class Output>
constexpr bool check_token_loss() {
  using Impl = model_impl_t<Model>;
  if constexpr (!declares_num_items_in_batch<Impl>) {
    return false;
  } else {
    constexpr bool counts = CountsLossTokens<Impl, B>;
    static_assert(counts, "trainpp: the model declares 'num_items_in_batch' but it cannot be called as "
                          "torch::Tensor num_items_in_batch(const Batch& batch) const");
    constexpr bool sums = requires(const Output& out) { { out.loss_sum } -> std::convertible_to<torch::Tensor>; };
    static_assert(sums, "trainpp: the model declares 'num_items_in_batch' (its loss is token-level), so its "
                        "forward must return a struct with a torch::Tensor member loss_sum (the summed token losses)");
    return counts && sums;
  }
}

}  // namespace detail

}  // namespace trainpp
