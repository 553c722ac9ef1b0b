// expect-error: the sharding slot declares 'save_model_files' but it cannot be called as void save_model_files\(torch::nn::Module&, const std::filesystem::path& dir, bool main_process\)
// A checkpoint member missing a parameter is an error: skipping it would save checkpoints the policy cannot load.
#include "common.hpp"

struct Shard : trainpp::SingleDevice {
#ifdef TRAINPP_COMPILE_FAIL
  void save_model_files(torch::nn::Module& m, const std::filesystem::path& dir) { trainpp::save_model(m, dir); }
#else
  void save_model_files(torch::nn::Module& m, const std::filesystem::path& dir, bool main_process) {
    if (main_process) trainpp::save_model(m, dir);
  }
#endif
  void load_model_files(torch::nn::Module& m, const std::filesystem::path& dir) {
    trainpp::load_model(m, dir / trainpp::model_weights_name, /*strict=*/true);
  }
};

void build() { trainpp::Trainer t(cf::Net{}, trainpp::TrainingArguments{}, trainpp::sharding = Shard{}); }
