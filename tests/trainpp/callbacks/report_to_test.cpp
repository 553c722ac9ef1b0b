// report_to: "tensorboard" and "all" add the TensorBoard writer to the built-in callbacks, "none" adds
// nothing, and a name trainpp has no integration for is refused.

#include <trainpp/callbacks/report_to.hpp>
#include <trainpp/trainpp.hpp>

#include <doctest/doctest.h>

#include <filesystem>
#include <random>

#include <unistd.h>

namespace report_to_test {

namespace fs = std::filesystem;

struct NetImpl : torch::nn::Module {
  torch::nn::Linear fc{2, 3};
  NetImpl() { register_module("fc", fc); }
  trainpp::ModelOutput forward(const trainpp::Batch& b) {
    trainpp::ModelOutput out{.logits = fc(b.at("x"))};
    out.loss = torch::nn::functional::cross_entropy(out.logits, b.at("labels"));
    return out;
  }
};
TORCH_MODULE(Net);

TEST_CASE("report_to tensorboard writes an event file under output_dir/runs, none writes nothing") {
  const fs::path out = fs::temp_directory_path() / fmt::format("trainpp-report-to-{}-{}", ::getpid(), std::random_device{}());
  const trainpp::TensorDataset data{{"x", torch::randn({16, 2})}, {"labels", torch::zeros({16}, torch::kLong)}};
  for (const char* integration : {"tensorboard", "all", "none"}) {
    CAPTURE(integration);
    fs::remove_all(out);
    trainpp::TrainingArguments args;
    args.output_dir = out.string();
    args.report_to = {integration};
    args.max_steps = 4;
    args.logging_steps = 2;
    args.save_strategy = trainpp::SaveStrategy::no;
    args.disable_tqdm = true;
    trainpp::Trainer trainer(Net{}, args, trainpp::train_dataset = data);
    trainer.train();
    const auto& tensorboard = trainer.callbacks().get<trainpp::ReportTo>().tensorboard();
    const bool wanted = std::string(integration) != "none";
    CHECK(tensorboard.has_value() == wanted);
    std::size_t event_files = 0;
    if (fs::exists(out / "runs"))
      for (const auto& e : fs::recursive_directory_iterator(out / "runs"))
        if (e.path().filename().string().starts_with("events.out.tfevents.")) ++event_files;
    CHECK(event_files == (wanted ? 1u : 0u));
    // The curves are an integration like the others: drawn for "all", not for "none" or "tensorboard".
    CHECK(fs::exists(out / "training_curves.svg") == (std::string(integration) == "all"));
  }
  fs::remove_all(out);
  trainpp::TrainingArguments args;
  args.report_to = {"wandb"};
  CHECK_THROWS_WITH_AS(args.finalize(), doctest::Contains("report_to 'wandb' is not an integration trainpp has"),
                       trainpp::Error);
}

}  // namespace report_to_test
