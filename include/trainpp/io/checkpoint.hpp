#pragma once
// Checkpoint files: one header per file format of {output_dir}/checkpoint-{step}/, and the directory's
// layout, naming and rotation (io/checkpoint_dir.hpp). Include this header for all of them.
//   io/checkpoint_dir.hpp    the file names, checkpoint-N directories: finding, ordering, rotation
//   io/trainer_state.hpp     trainer_state.json
//   io/optimizer_state.hpp   optimizer.safetensors
//   io/component_state.hpp   scheduler.json, scaler.json
//   io/process_state.hpp     process_state[_<rank>].safetensors
//   io/sharded_model.hpp     model_shard_<rank>.safetensors and model_shards.json
//   io/manifest.hpp          checkpoint_manifest.json: every file's size and checksum, written last
// The model's own model.safetensors is io/model_io.hpp's.

#include <trainpp/io/checkpoint_dir.hpp>
#include <trainpp/io/component_state.hpp>
#include <trainpp/io/manifest.hpp>
#include <trainpp/io/optimizer_state.hpp>
#include <trainpp/io/process_state.hpp>
#include <trainpp/io/sharded_model.hpp>
#include <trainpp/io/trainer_state.hpp>
