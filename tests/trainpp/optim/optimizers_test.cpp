// The optimizers `--optim` names beyond AdamW: Adagrad, RMSprop, Adafactor, Lion and SGD with optim_args,
// built by make_optimizer from TrainingArguments and checked against the real ones (torch.optim through
// transformers' Trainer.get_optimizer_cls_and_kwargs, transformers.Adafactor, lion-pytorch) stepped on
// the same parameters and gradients in optimizers_reference.py; the state goes through a real
// optimizer.safetensors half-way, as a resumed run's would. Also: the state each optimizer keeps.

#include <trainpp/io/optimizer_state.hpp>
#include <trainpp/optim/optimizer.hpp>

#include "skip.hpp"

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <sys/wait.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

// Everything in a namespace of its own: the test build may compile several test files as one unit.
namespace optimizers_test {

namespace fs = std::filesystem;

// Parameters named as the reference script names them: fc.weight and emb decay, fc.bias does not.
struct NetImpl : torch::nn::Module {
  NetImpl() {
    fc = register_module("fc", torch::nn::Linear(3, 4));
    emb = register_parameter("emb", torch::zeros({2, 3, 5}));
  }
  torch::nn::Linear fc{nullptr};
  torch::Tensor emb;
};
TORCH_MODULE(Net);

struct Config {
  std::string name, optim;
  std::optional<std::string> optim_args;
  double learning_rate, weight_decay, adam_beta1 = 0.9, adam_beta2 = 0.999;
};

const std::vector<Config>& configs() {
  static const std::vector<Config> all = {
      {"sgd_nesterov", "sgd", "momentum=0.9,nesterov=true", 0.05, 0.01},
      {"sgd_dampening", "sgd", "momentum=0.8, dampening=0.3", 0.05, 0.0},
      {"adagrad", "adagrad", "lr_decay=0.01,eps=1e-8", 0.1, 0.01},
      {"adagrad_defaults", "adagrad", std::nullopt, 0.1, 0.0},
      {"rmsprop_momentum", "rmsprop", "momentum=0.5,alpha=0.9,eps=1e-6", 0.01, 0.01},
      {"rmsprop_centered", "rmsprop", "centered=True", 0.01, 0.0},
      {"adafactor", "adafactor", std::nullopt, 0.01, 0.01},
      {"adafactor_relative_step", "adafactor", "scale_parameter=true,relative_step=true,warmup_init=true,beta1=0.9",
       0.01, 0.01},
      {"adafactor_scaled", "adafactor", "scale_parameter=true,beta1=0.5,clip_threshold=0.5,decay_rate=-0.6", 0.01, 0.0},
      {"lion", "lion_32bit", std::nullopt, 1e-3, 0.1, 0.9, 0.99},
  };
  return all;
}

trainpp::TrainingArguments arguments(const Config& c) {
  trainpp::TrainingArguments args;
  args.optim = *trainpp::parse_enum<trainpp::OptimizerName>(c.optim);
  args.optim_args = c.optim_args;
  args.learning_rate = c.learning_rate;
  args.weight_decay = c.weight_decay;
  args.adam_beta1 = c.adam_beta1;
  args.adam_beta2 = c.adam_beta2;
  return args;
}

// The reference file, produced once per build tree (again when the script changes); nullopt when this
// machine cannot run it (no interpreter or a package missing: exit 77).
std::optional<fs::path> reference_file() {
#ifndef TRAINPP_PYTHON
  return std::nullopt;
#else
  const fs::path script = fs::path(TRAINPP_SOURCE_DIR) / "tests/trainpp/optim/optimizers_reference.py";
  const fs::path dir = fs::path(TRAINPP_BINARY_DIR) / "optimizers_reference";
  const fs::path out = dir / "reference.safetensors";
  if (fs::exists(out) && fs::last_write_time(out) >= fs::last_write_time(script)) return out;
  fs::create_directories(dir);
  nlohmann::json list = nlohmann::json::array();
  for (const auto& c : configs())
    list.push_back({{"name", c.name}, {"optim", c.optim},
                    {"optim_args", c.optim_args ? nlohmann::json(*c.optim_args) : nlohmann::json(nullptr)},
                    {"learning_rate", c.learning_rate}, {"weight_decay", c.weight_decay},
                    {"adam_beta1", c.adam_beta1}, {"adam_beta2", c.adam_beta2}});
  std::ofstream(dir / "configs.json") << list.dump();
  fs::remove(out);
  const auto command = fmt::format("'{}' -c 'import lion_pytorch, transformers' 2>/dev/null || exit 77; '{}' '{}' '{}' '{}'",
                                   TRAINPP_PYTHON, TRAINPP_PYTHON, script.string(), out.string(),
                                   (dir / "configs.json").string());
  const int status = std::system(("sh -c \"" + command + "\"").c_str());
  if (WIFEXITED(status) && WEXITSTATUS(status) == 77) return std::nullopt;
  REQUIRE_MESSAGE((WIFEXITED(status) && WEXITSTATUS(status) == 0), command << " failed");
  return out;
#endif
}

void set_parameters(Net& net, const std::map<std::string, torch::Tensor>& tensors) {
  torch::NoGradGuard no_grad;
  for (auto& item : net->named_parameters()) item.value().copy_(tensors.at("init." + item.key()));
}

TEST_CASE("optimizers follow torch.optim, transformers' Adafactor and Lion through a saved state" *
          doctest::test_suite("integration")) {
  const auto path = reference_file();
  if (!path) TRAINPP_SKIP_TEST("needs Python with transformers and lion-pytorch");
  std::map<std::string, torch::Tensor> ref;
  for (auto& [name, tensor] : trainpp::load_safetensors(*path).tensors) ref.emplace(name, tensor);
  const fs::path scratch = fs::temp_directory_path() / "trainpp_optimizers_test";
  fs::create_directories(scratch);

  for (const auto& config : configs()) {
    CAPTURE(config.name);
    Net net;
    set_parameters(net, ref);
    const auto args = arguments(config);
    auto optimizer = trainpp::make_optimizer(*net, args);
    for (int step = 0; step < 6; ++step) {
      for (auto& item : net->named_parameters()) {
        const auto found = ref.find(fmt::format("grad.{}.{}", step, item.key()));
        item.value().mutable_grad() = found == ref.end() ? torch::Tensor() : found->second.clone();
      }
      optimizer.step();
      if (step == 2) {  // resume half-way from a real optimizer.safetensors, into a new optimizer
        const auto file = scratch / (config.name + ".safetensors");
        trainpp::save_optimizer_state(file, optimizer.state(), optimizer.param_groups());
        optimizer = trainpp::make_optimizer(*net, args);
        optimizer.load_state(trainpp::load_optimizer_state(file).state);
      }
    }
    for (auto& item : net->named_parameters()) {
      const std::string& name = item.key();
      CAPTURE(name);
      const auto& want = ref.at(fmt::format("final.{}.{}", config.name, name));
      const double err = ((item.value().detach() - want).abs() / (want.abs() + 1)).max().item<double>();
      CHECK(err <= 1e-6);
      // The parameter moved: a test of an optimizer that does nothing would pass the check above
      // only if the reference did nothing as well.
      CHECK_FALSE(torch::equal(item.value().detach(), ref.at("init." + name)));
    }
  }
  fs::remove_all(scratch);
}

TEST_CASE("each optimizer keeps its own state, and refuses another's") {
  Net net;
  for (auto& p : net->parameters()) p.mutable_grad() = torch::ones_like(p);
  trainpp::TrainingArguments args;
  args.optim = trainpp::OptimizerName::adafactor;
  args.optim_args = "beta1=0.9";
  auto adafactor = trainpp::make_optimizer(*net, args);
  adafactor.step();
  const auto state = adafactor.state();
  // Order: group 0 (emb [2,3,5], registered on the root, then fc.weight [4,3]), group 1 (fc.bias [4]).
  REQUIRE(state.size() == 3);
  CHECK(state[0].at("exp_avg_sq_row").sizes() == torch::IntArrayRef{2, 3});
  CHECK(state[0].at("exp_avg_sq_col").sizes() == torch::IntArrayRef{2, 5});
  CHECK(state[1].at("exp_avg_sq_row").sizes() == torch::IntArrayRef{4});
  CHECK(state[1].at("exp_avg_sq_col").sizes() == torch::IntArrayRef{3});
  CHECK(state[2].contains("exp_avg_sq"));
  CHECK_FALSE(state[2].contains("exp_avg_sq_row"));
  CHECK(state[2].contains("exp_avg"));
  CHECK(state[2].at("step").item<float>() == 1.0f);

  args.optim = trainpp::OptimizerName::lion_32bit;
  args.optim_args.reset();
  auto lion = trainpp::make_optimizer(*net, args);
  CHECK_THROWS_WITH(lion.load_state(state), doctest::Contains("Lion: unexpected state entry"));

  args.optim = trainpp::OptimizerName::adafactor;
  auto without_first_moment = trainpp::make_optimizer(*net, args);  // no beta1: exp_avg must not be there
  CHECK_THROWS_WITH(without_first_moment.load_state(state), doctest::Contains("unexpected state entry 'exp_avg'"));

  auto wrong_shape = state;
  wrong_shape[1]["exp_avg_sq_row"] = torch::zeros({3});
  args.optim_args = "beta1=0.9";
  auto again = trainpp::make_optimizer(*net, args);
  CHECK_THROWS_WITH(again.load_state(wrong_shape),
                    doctest::Contains("state entry 'exp_avg_sq_row' of parameter #1 has shape [3], expected [4]"));
  CHECK_NOTHROW(again.load_state(state));

  args.optim = trainpp::OptimizerName::rmsprop;
  args.optim_args = "momentum=0.9";
  auto rmsprop = trainpp::make_optimizer(*net, args);
  rmsprop.step();
  auto partial = rmsprop.state();
  partial[1].erase("momentum_buffer");
  auto fresh = trainpp::make_optimizer(*net, args);
  CHECK_THROWS_WITH(fresh.load_state(partial), doctest::Contains("state of parameter #1 lacks 'momentum_buffer'"));
}

}  // namespace optimizers_test
