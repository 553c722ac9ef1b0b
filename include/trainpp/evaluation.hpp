#pragma once
// The Trainer's evaluation loop (HF's evaluation_loop), behind evaluate() and predict(): batches
// through the step policy's prediction_step, the loss summed on the device, predictions and labels
// gathered in the data set's order across processes, then compute_metrics.

#include <trainpp/trainer.hpp>

namespace trainpp {

/// One batch of evaluation: the sharding policy's forward-side calls around the step policy's
/// prediction_step, here and not in the step, so that a step of the user's own cannot leave them out
/// (FullShard gathers the root unit's parameters before the forward and frees them after it).
template <class Model, class P>
template <class B>
PredictionStep Trainer<Model, P>::prediction_step(const B& batch, bool prediction_loss_only) {
  sharding_.before_forward(module());
  PredictionStep out = step_.prediction_step(*this, batch, prediction_loss_only);
  if constexpr (requires { sharding_.after_forward(module()); }) sharding_.after_forward(module());
  return out;
}

// Long on purpose: HF's evaluation_loop, with every hook and collective of an evaluation visible in order.
template <class Model, class P>
template <class L>
PredictionOutput Trainer<Model, P>::evaluation_loop(L& loader, bool prediction_loss_only, std::string_view prefix) {
  auto& mod = module();
  const bool was_training = mod.is_training();
  mod.eval();
  // bf16_full_eval / fp16_full_eval: the whole model in the low precision while evaluating outside
  // training, as HF does. HF casts the model for good; here the float32 weights come back afterwards.
  std::optional<ModuleCastGuard> full_eval;
  if (!in_train_ && (args_.bf16_full_eval || args_.fp16_full_eval))
    full_eval.emplace(mod, args_.bf16_full_eval ? torch::kBFloat16 : torch::kHalf);
  // Autocast alongside, so that float inputs meet the cast weights in the same dtype.
  std::optional<AutocastGuard> full_eval_autocast;
  if (full_eval && autocast_supports(device_.type(), args_.bf16_full_eval ? torch::kBFloat16 : torch::kHalf))
    full_eval_autocast.emplace(device_.type(), args_.bf16_full_eval ? torch::kBFloat16 : torch::kHalf);
  current_eval_batches_ = loader.num_batches();
  loader.set_epoch(0);

  // Running sums stay on the device: one host sync at the end, not one per batch.
  auto loss_sum = torch::zeros({}, torch::TensorOptions().dtype(torch::kFloat64).device(device_));
  std::int64_t loss_count = 0;
  std::vector<torch::Tensor> preds, labels;
  std::vector<torch::Tensor> preds_host, labels_host;
  std::int64_t steps = 0;
  auto to_host = [&] {
    // eval_accumulation_steps: move what was gathered to the CPU every N steps, bounding device memory.
    if (!preds.empty()) preds_host.push_back(detail::concat_padded(preds).cpu()), preds.clear();
    if (!labels.empty()) labels_host.push_back(detail::concat_padded(labels).cpu()), labels.clear();
  };
  std::size_t batch_index = 0;
  // Under FullShard every forward gathers parameters with the other processes, so every process runs
  // as many forwards as the one with the most batches: the others repeat their last batch, unused.
  bool collective_forward = false;
  if constexpr (requires { sharding_.forward_is_collective(); }) collective_forward = sharding_.forward_is_collective();
  std::optional<std::remove_cvref_t<decltype(*loader.next())>> last_batch;
  while (auto batch = loader.next()) {
    if (collective_forward) last_batch = *batch;
    PredictionStep out = prediction_step(*batch, prediction_loss_only);
    std::int64_t n = batch->batch_size();
    // A shard's last batch may repeat examples from the start so that every process has as many
    // batches; only the examples it really holds count (as gather_for_metrics drops the repeats).
    if constexpr (requires { loader.real_samples(std::size_t{}); }) n = loader.real_samples(batch_index);
    ++batch_index;
    if (out.loss.defined() && n > 0) {
      loss_sum += out.loss.to(torch::kFloat64) * static_cast<double>(n);
      loss_count += n;
    }
    auto real = [&](const torch::Tensor& t) {
      return t.dim() > 0 && t.size(0) == batch->batch_size() && n < t.size(0) ? t.narrow(0, 0, n) : t;
    };
    if (!prediction_loss_only) {
      if (out.logits.defined()) preds.push_back(real(out.logits.detach()));
      if (out.labels.defined()) labels.push_back(real(out.labels.detach()));
    }
    fire(hooks::on_prediction_step);
    if (args_.eval_accumulation_steps && ++steps % *args_.eval_accumulation_steps == 0) to_host();
  }
  if (collective_forward) {
    const auto batch_size = static_cast<std::size_t>(args_.per_device_eval_batch_size);
    const auto world = static_cast<std::size_t>(sharding_.world_size());
    const std::size_t global = args_.dataloader_drop_last ? loader.num_samples() / batch_size
                                                          : (loader.num_samples() + batch_size - 1) / batch_size;
    for (std::size_t b = batch_index; b < (global + world - 1) / world; ++b) {
      if (!last_batch)
        throw error("evaluation under full_shard: process {} got no batch of the {} examples, and cannot take part in "
                    "the other processes' forwards; use fewer processes or a smaller per_device_eval_batch_size",
                    sharding_.rank(), loader.num_samples());
      (void)prediction_step(*last_batch, /*prediction_loss_only=*/true);
    }
  }
  to_host();
  if (was_training) mod.train();

  PredictionOutput result;
  result.predictions = detail::concat_padded(preds_host);
  result.label_ids = detail::concat_padded(labels_host);
  if (sharding_.world_size() > 1) {
    // Every process evaluated its shard: sum the losses, and gather predictions and labels back into
    // the data set's order, so that metrics see each example exactly once.
    if constexpr (requires(torch::Tensor& t) { sharding_.all_reduce_sum(t); sharding_.gather_in_order(t, 1, 1, 0.0); }) {
      auto totals = torch::stack({loss_sum, torch::full({}, static_cast<double>(loss_count), loss_sum.options())});
      sharding_.all_reduce_sum(totals);
      loss_sum = totals[0];
      loss_count = static_cast<std::int64_t>(totals[1].item<double>());
      const auto batch_size = args_.per_device_eval_batch_size;
      const auto total = static_cast<std::int64_t>(loader.num_samples());
      auto gather = [&](torch::Tensor& t) {
        // Every process takes part, including one that got no batch (evaluation hands out the last,
        // incomplete round of batches as it is: fewer examples than processes × batch size leave some
        // without one). The processes that have predictions agree on their kind — dtype, number of
        // dimensions, sizes past the second — and one without them takes part with no rows of that kind.
        constexpr std::int64_t max_dims = 8;
        const bool present = t.defined();
        auto kind = torch::zeros({3 + max_dims}, torch::TensorOptions().dtype(torch::kFloat64).device(device_));
        if (present) {
          if (t.dim() > max_dims) throw error("evaluation: predictions of {} dimensions (at most {})", t.dim(), max_dims);
          std::vector<double> host{1.0, static_cast<double>(t.dim()), static_cast<double>(static_cast<int>(t.scalar_type()))};
          for (std::int64_t d = 0; d < max_dims; ++d) host.push_back(d >= 2 && d < t.dim() ? static_cast<double>(t.size(d)) : 0.0);
          kind.copy_(torch::tensor(host, torch::kFloat64));
        }
        sharding_.all_reduce_sum(kind);
        const auto agreed = kind.cpu();
        const double with = agreed[0].item<double>();
        if (with == 0) return;
        if (!present) {
          // Sums of identical small integers over `with` processes: exact in float64.
          auto value = [&](std::int64_t i) { return static_cast<std::int64_t>(agreed[i].item<double>() / with); };
          std::vector<std::int64_t> sizes{0};
          for (std::int64_t d = 1; d < value(1); ++d) sizes.push_back(d >= 2 ? value(3 + d) : 0);
          t = torch::empty(sizes, torch::TensorOptions().dtype(static_cast<c10::ScalarType>(value(2))));
        }
        t = sharding_.gather_in_order(t.to(device_), batch_size, total, -100).cpu();
      };
      gather(result.predictions);
      gather(result.label_ids);
    } else {
      throw error("this sharding policy cannot gather evaluation results across processes: give it "
                  "all_reduce_sum(torch::Tensor&) and gather_in_order(...)");
    }
  }
  if constexpr (has_compute_metrics) {
    if (result.predictions.defined() && result.label_ids.defined()) {
      for (auto& [k, v] : compute_metrics_(EvalPrediction{result.predictions, result.label_ids})) {
        const std::string key = k.starts_with(fmt::format("{}_", prefix)) ? k : fmt::format("{}_{}", prefix, k);
        result.metrics[key] = v;
      }
    }
  }
  if (loss_count > 0) result.metrics[fmt::format("{}_loss", prefix)] = loss_sum.item<double>() / static_cast<double>(loss_count);
  current_eval_batches_ = 0;
  return result;
}

}  // namespace trainpp
