#pragma once
// trainpp: a header-only C++20 training framework on LibTorch whose Trainer does what Hugging Face's
// Trainer does, composed at compile time from policies. Include this one header.
//
// Not included here, for what they add to every program's link: <trainpp/data/fashion_mnist.hpp>
// (the Fashion-MNIST idx files, gzipped: zlib; CMake target trainpp::datasets).

#include <trainpp/detail/config.hpp>

#include <trainpp/args.hpp>
#include <trainpp/logging.hpp>
#include <trainpp/cli.hpp>
#include <trainpp/device.hpp>
#include <trainpp/distributed/launch_environment.hpp>
#include <trainpp/distributed/process_group.hpp>
#include <trainpp/state.hpp>

#include <trainpp/data/batch.hpp>
#include <trainpp/data/collate.hpp>
#include <trainpp/data/collators.hpp>
#include <trainpp/data/data_loader.hpp>
#include <trainpp/data/dataset.hpp>
#include <trainpp/data/length_grouped_sampler.hpp>
#include <trainpp/data/sampler.hpp>
#include <trainpp/data/shard.hpp>
#include <trainpp/data/tensor_dataset.hpp>

#include <trainpp/io/atomic_write.hpp>
#include <trainpp/io/checkpoint.hpp>
#include <trainpp/io/eval_metrics.hpp>
#include <trainpp/io/metrics.hpp>
#include <trainpp/io/model_io.hpp>
#include <trainpp/io/safetensors.hpp>
#include <trainpp/io/sharded_model.hpp>
#include <trainpp/io/tfevents.hpp>
#include <trainpp/metrics/text.hpp>

#include <trainpp/loss/model_loss.hpp>
#include <trainpp/loss/model_output.hpp>
#include <trainpp/nn/gradient_checkpointing.hpp>
#include <trainpp/nn/module_call.hpp>
#include <trainpp/optim/adamw.hpp>
#include <trainpp/optim/clip.hpp>
#include <trainpp/optim/optimizer.hpp>
#include <trainpp/optim/param_groups.hpp>
#include <trainpp/optim/policy.hpp>
#include <trainpp/optim/sgd.hpp>
#include <trainpp/precision/autocast.hpp>
#include <trainpp/precision/bf16.hpp>
#include <trainpp/precision/fp16.hpp>
#include <trainpp/precision/fp32.hpp>
#include <trainpp/precision/grad_scaler.hpp>
#include <trainpp/precision/mixed.hpp>
#include <trainpp/schedule/policy.hpp>
#include <trainpp/schedule/schedulers.hpp>
#include <trainpp/sharding/auto_sharding.hpp>
#include <trainpp/sharding/data_parallel.hpp>
#include <trainpp/sharding/fsdp_options.hpp>
#include <trainpp/sharding/single_device.hpp>
#include <trainpp/sharding/zero.hpp>
#include <trainpp/step/default_step.hpp>

#include <trainpp/generation/config.hpp>
#include <trainpp/generation/generate.hpp>
#include <trainpp/generation/kv_cache.hpp>
#include <trainpp/generation/logits_processors.hpp>
#include <trainpp/models/activation.hpp>
#include <trainpp/models/bert.hpp>
#include <trainpp/models/config.hpp>
#include <trainpp/models/gpt2.hpp>
#include <trainpp/models/llama.hpp>
#include <trainpp/models/pretrained.hpp>

#include <trainpp/callbacks/callback_list.hpp>
#include <trainpp/callbacks/console.hpp>
#include <trainpp/callbacks/curves.hpp>
#include <trainpp/callbacks/default_flow.hpp>
#include <trainpp/callbacks/early_stopping.hpp>
#include <trainpp/callbacks/hooks.hpp>
#include <trainpp/callbacks/metrics_log.hpp>
#include <trainpp/callbacks/report_to.hpp>
#include <trainpp/callbacks/stateful.hpp>
#include <trainpp/callbacks/tensorboard.hpp>

#include <trainpp/concepts/data_loader.hpp>
#include <trainpp/concepts/loss.hpp>
#include <trainpp/concepts/optimizer.hpp>
#include <trainpp/concepts/precision.hpp>
#include <trainpp/concepts/scheduler.hpp>
#include <trainpp/concepts/sharding.hpp>
#include <trainpp/concepts/step.hpp>

#include <trainpp/slots.hpp>
#include <trainpp/trainer.hpp>
#include <trainpp/loop.hpp>
#include <trainpp/seq2seq.hpp>
