#pragma once
// The model contract of HF's Trainer: with labels, the first output is the loss.

#include <trainpp/detail/config.hpp>

#include <tuple>
#include <type_traits>

namespace trainpp {

/// A ready-made forward result: the loss (defined when labels were given) and the logits.
/// A model may return this, a std::tuple whose first element is the loss, or a bare tensor (the loss).
struct ModelOutput {
  torch::Tensor loss;
  torch::Tensor logits;
};

namespace detail {
template <class T> struct is_tuple : std::false_type {};
template <class... T> struct is_tuple<std::tuple<T...>> : std::true_type {};
template <class A, class B> struct is_tuple<std::pair<A, B>> : std::true_type {};
}  // namespace detail

/// The model's loss: the output itself when it is a tensor, `.loss` when it has one, else the first
/// tuple element. Throws when it is undefined: the batch probably lacks its labels.
template <class Output>
[[nodiscard]] torch::Tensor loss_of(const Output& out) {
  torch::Tensor loss;
  if constexpr (std::is_convertible_v<const Output&, torch::Tensor>) loss = out;
  else if constexpr (requires { { out.loss } -> std::convertible_to<torch::Tensor>; }) loss = out.loss;
  else if constexpr (detail::is_tuple<Output>::value) loss = std::get<0>(out);
  else static_assert(detail::is_tuple<Output>::value,
                     "trainpp: the model's forward must return a torch::Tensor (the loss), a struct with a "
                     "`loss` member (e.g. trainpp::ModelOutput), or a tuple whose first element is the loss");
  if (!loss.defined())
    throw error("the model returned no loss: give the batch its labels (label_names), or set a loss policy");
  return loss;
}

/// The model's predictions, as HF's prediction_step takes them: `.logits` when the output has them;
/// otherwise, with labels given, what follows the loss (the second tuple element; nothing for a bare
/// loss tensor), and without labels the first element or the tensor itself.
template <class Output>
[[nodiscard]] torch::Tensor logits_of(const Output& out, bool has_labels) {
  if constexpr (requires { { out.logits } -> std::convertible_to<torch::Tensor>; }) {
    return out.logits;
  } else if constexpr (detail::is_tuple<Output>::value) {
    if (!has_labels) return std::get<0>(out);
    if constexpr (std::tuple_size_v<Output> >= 2) return std::get<1>(out);
    else return torch::Tensor();
  } else if constexpr (std::is_convertible_v<const Output&, torch::Tensor>) {
    return has_labels ? torch::Tensor() : torch::Tensor(out);
  } else {
    return torch::Tensor();
  }
}

/// `model->forward(batch)`, for a ModuleHolder or a std::shared_ptr to a module.
template <class Model, class B>
decltype(auto) forward(Model& model, const B& batch) {
  return model->forward(batch);
}

/// The underlying torch::nn::Module of a ModuleHolder or shared_ptr.
template <class Model>
[[nodiscard]] torch::nn::Module& module_of(Model& model) {
  return *model.operator->();
}

}  // namespace trainpp
