// On CUDA: no step but a logging step waits for the GPU. CUDA's sync debug mode turns every
// synchronising call (an .item(), a device-to-host copy, a blocking allocation query) into an error
// while it is on; a callback turns it on at on_step_begin and off at on_step_end, before the loop's
// own logging reads the loss. Batches of a window are fetched before on_step_begin, so the data
// loader (which copies to the device) stays outside the guarded span. Built with TRAINPP_TEST_CUDA
// (tools/gpu_check.sh); a CPU build reports the case as not run.

#include <trainpp/trainpp.hpp>

#include <doctest/doctest.h>

#include "skip.hpp"

#ifdef TRAINPP_TEST_CUDA
#include <c10/cuda/CUDAFunctions.h>
#endif

namespace no_host_sync_test {

struct MlpImpl : torch::nn::Module {
  torch::nn::Linear a{64, 256}, b{256, 10};
  MlpImpl() {
    register_module("a", a);
    register_module("b", b);
  }
  trainpp::ModelOutput forward(const trainpp::Batch& batch) {
    trainpp::ModelOutput out{.logits = b(torch::relu(a(batch.at("x"))))};
    if (batch.contains("labels")) out.loss = torch::nn::functional::cross_entropy(out.logits, batch.at("labels"));
    return out;
  }
};
TORCH_MODULE(Mlp);

#ifdef TRAINPP_TEST_CUDA
struct ForbidSyncInsideSteps {
  std::shared_ptr<int> guarded_steps = std::make_shared<int>(0);
  void on_step_begin(const trainpp::TrainingArguments&, const trainpp::TrainerState&, trainpp::TrainerControl&) {
    c10::cuda::warning_state().set_sync_debug_mode(c10::cuda::SyncDebugMode::L_ERROR);
  }
  void on_step_end(const trainpp::TrainingArguments&, const trainpp::TrainerState&, trainpp::TrainerControl&) {
    c10::cuda::warning_state().set_sync_debug_mode(c10::cuda::SyncDebugMode::L_DISABLED);
    ++*guarded_steps;
  }
};
#endif

TEST_CASE("training steps between logging steps never synchronise with the host (CUDA)" *
          doctest::test_suite("integration")) {
#ifndef TRAINPP_TEST_CUDA
  TRAINPP_SKIPPED("needs a CUDA build (tools/gpu_check.sh runs it on a GPU machine)");
#else
  REQUIRE(torch::cuda::is_available());
  auto gen = at::make_generator<at::CPUGeneratorImpl>(1);
  trainpp::TensorDataset data{{"x", torch::randn({4096, 64}, gen)}, {"labels", torch::randint(0, 10, {4096}, gen)}};
  for (const char* optim : {"adamw_torch_fused", "adamw_torch", "sgd"}) {
    INFO("optim " << optim);
    auto args = std::get<0>(trainpp::parse_args_into<trainpp::TrainingArguments>(
        {"--optim", optim, "--per_device_train_batch_size", "64", "--gradient_accumulation_steps", "2",
         "--max_steps", "24", "--logging_steps", "10", "--save_strategy", "no", "--disable_tqdm", "true",
         "--lr_scheduler_type", "cosine", "--warmup_steps", "3"}));
    ForbidSyncInsideSteps guard;
    trainpp::Trainer trainer(Mlp{}, args, trainpp::train_dataset = std::ref(data),
                             trainpp::callbacks = trainpp::callback_list(guard));
    CHECK(trainer.device().is_cuda());
    const auto out = trainer.train();
    CHECK(out.global_step == 24);
    CHECK(*guard.guarded_steps == 24);
    CHECK(std::isfinite(out.training_loss));
  }
#endif
}

}  // namespace no_host_sync_test
