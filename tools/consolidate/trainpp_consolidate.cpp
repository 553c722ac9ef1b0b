// trainpp-consolidate: joins the pieces of a sharded checkpoint (ShardGradOp / FullShard with
// SHARDED_STATE_DICT) into one model.safetensors, the file a single-process run writes.
//
//   trainpp-consolidate CHECKPOINT_DIR [OUTPUT]
//
// OUTPUT: a file, or a directory to hold model.safetensors; default CHECKPOINT_DIR/model.safetensors.
// The number of processes of the run that wrote the checkpoint does not matter.

#include <trainpp/io/sharded_model.hpp>

#include <cstdio>
#include <exception>
#include <filesystem>
#include <string_view>

int main(int argc, char** argv) {
  if (argc < 2 || argc > 3 || std::string_view(argv[1]) == "--help" || std::string_view(argv[1]) == "-h") {
    std::fprintf(argc < 2 || argc > 3 ? stderr : stdout,
                 "usage: trainpp-consolidate CHECKPOINT_DIR [OUTPUT]\n"
                 "Joins a sharded checkpoint's model_shard_<rank>.safetensors files (indexed by model_shards.json)\n"
                 "into one model.safetensors (default: inside CHECKPOINT_DIR).\n");
    return argc < 2 || argc > 3 ? 2 : 0;
  }
  try {
    const std::filesystem::path checkpoint = argv[1];
    const std::filesystem::path output = argc == 3 ? std::filesystem::path(argv[2]) : checkpoint;
    const auto written = trainpp::consolidate_sharded_model(checkpoint, output);
    std::printf("wrote %s\n", written.string().c_str());
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "trainpp-consolidate: %s\n", e.what());
    return 1;
  }
}
