#pragma once
// transformers 5's TrainingArguments fields that trainpp does not implement. Each lists the values that
// describe what trainpp does anyway — accepted, so that HF's own training_args.json (which names every
// field) and command lines passing defaults run unchanged — and says why any other value is refused and
// what to use instead. No field is parsed and then ignored: a value trainpp would not honour is an error.
// The list is kept complete by a test against transformers' dataclass (tests/trainpp/args/).

#include <array>
#include <string_view>

namespace trainpp {

struct UnimplementedArgument {
  std::string_view name;
  /// JSON texts separated by " | ": the values that say what trainpp does (the first is shown as default).
  std::string_view accepted;
  bool is_bool = false;  ///< a bare --name means true, and --no_name false, as for trainpp's own booleans
  bool is_list = false;  ///< given as --name a b c
  std::string_view reason;
};

inline constexpr auto unimplemented_arguments = std::to_array<UnimplementedArgument>({
    {"optim_target_modules", "null", false, false,
     "only the GaLore and APOLLO optimizers read it, and trainpp has neither"},
    {"activation_checkpointing", "false | null", true, false,
     "use --gradient_checkpointing: the model's blocks are recomputed in backward (nn/gradient_checkpointing.hpp)"},
    {"activation_checkpointing_kwargs", "null | {}", false, false,
     "trainpp's gradient checkpointing has no variants to choose (no every_n_layers, no use_reentrant)"},
    {"gradient_checkpointing_kwargs", "null | {}", false, false,
     "trainpp's gradient checkpointing has no variants to choose (use_reentrant and the like are options of "
     "torch.utils.checkpoint in Python)"},
    {"torch_compile", "false", true, false,
     "LibTorch has no TorchDynamo or TorchInductor; trainpp's step is compiled C++ already, with fused optimizer "
     "kernels and no interpreter in the loop"},
    {"torch_compile_backend", "null", false, false, "LibTorch has no torch.compile (see --torch_compile)"},
    {"torch_compile_mode", "null", false, false, "LibTorch has no torch.compile (see --torch_compile)"},
    {"use_liger_kernel", "false", true, false,
     "Liger kernels are Triton kernels patched into Python models; trainpp's models are LibTorch modules"},
    {"liger_kernel_config", "null", false, false, "Liger kernels are not available (see --use_liger_kernel)"},
    {"use_cache", "false", true, false,
     "trainpp's models keep a key/value cache only inside generate(); training never uses one"},
    {"neftune_noise_alpha", "null", false, false, "NEFTune is not built in yet"},
    {"torch_empty_cache_steps", "null", false, false, "emptying the device cache every N steps is not built in yet"},
    {"auto_find_batch_size", "false", true, false,
     "finding a batch size that fits is not built in yet: set --per_device_train_batch_size"},
    {"project", "\"huggingface\"", false, false, "only Trackio reads it, and trainpp does not report to Trackio"},
    {"trackio_space_id", "null", false, false, "trainpp does not report to Trackio"},
    {"trackio_bucket_id", "null", false, false, "trainpp does not report to Trackio"},
    {"trackio_static_space_id", "null", false, false, "trainpp does not report to Trackio"},
    {"eval_do_concat_batches", "true", true, false,
     "evaluation always concatenates the batches' predictions and labels, as HF's default"},
    {"eval_use_gather_object", "false", true, false,
     "predictions are tensors and are gathered as tensors; there are no Python objects to gather"},
    {"include_for_metrics", "[]", false, true,
     "compute_metrics receives predictions and labels; passing inputs or losses is not built in yet"},
    {"batch_eval_metrics", "false", true, false,
     "metrics are computed once over the whole evaluation; per-batch metrics are not built in yet"},
    {"save_on_each_node", "false", true, false,
     "checkpoints are written by the main process, to a file system every node reads"},
    {"enable_jit_checkpoint", "false", true, false, "checkpointing on SIGTERM is not built in yet"},
    {"push_to_hub", "false", true, false,
     "trainpp does not talk to the Hugging Face Hub; upload output_dir with `hf upload` once it is written"},
    {"hub_token", "null | \"<HUB_TOKEN>\"", false, false, "trainpp does not talk to the Hub (see --push_to_hub)"},
    {"hub_private_repo", "null", false, false, "trainpp does not talk to the Hub (see --push_to_hub)"},
    {"hub_model_id", "null", false, false, "trainpp does not talk to the Hub (see --push_to_hub)"},
    {"hub_strategy", "\"every_save\"", false, false, "trainpp does not talk to the Hub (see --push_to_hub)"},
    {"hub_always_push", "false", true, false, "trainpp does not talk to the Hub (see --push_to_hub)"},
    {"hub_revision", "null", false, false, "trainpp does not talk to the Hub (see --push_to_hub)"},
    {"accelerator_config",
     "null | {} | {\"split_batches\": false, \"dispatch_batches\": null, \"even_batches\": true, "
     "\"use_seedable_sampler\": true, \"non_blocking\": false, \"gradient_accumulation_kwargs\": null}",
     false, false,
     "trainpp has no Accelerate layer; its defaults are accelerate's (each process its own batches, seeded "
     "sampling, uneven last batches evened)"},
    {"parallelism_config", "null", false, false,
     "tensor, context and sequence parallelism are not built in; data parallelism and sharding come from "
     "the launcher, --fsdp and --deepspeed"},
    {"dataloader_multiprocessing_context", "null", false, false,
     "trainpp's data loader runs its workers as threads, not processes: there is no start method to choose"},
    {"dataloader_in_order", "true", true, false,
     "trainpp's data loader always yields batches in order, which exact resume relies on"},
    {"remove_unused_columns", "true | false", true, false,
     "both values hold: a trainpp model reads the keys it needs from the Batch, so columns it does not use "
     "never reach it, whether or not they are in the batch"},
    {"ddp_find_unused_parameters", "null", false, false,
     "trainpp's data parallelism reduces gradients in buckets after backward, not from autograd hooks, so it "
     "never waits for a parameter that got no gradient"},
    {"ddp_static_graph", "null", false, false,
     "trainpp's data parallelism does not depend on the graph's shape, so there is nothing to declare static"},
    {"debug", "[] | \"\"", false, false,
     "underflow_overflow and tpu_metrics_debug are hooks into Python models and torch_xla"},
});

/// The entry named `name`, or nullptr.
[[nodiscard]] constexpr const UnimplementedArgument* find_unimplemented_argument(std::string_view name) {
  for (const auto& a : unimplemented_arguments)
    if (a.name == name) return &a;
  return nullptr;
}

}  // namespace trainpp
