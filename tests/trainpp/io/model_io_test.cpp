// save_model / load_model: HF's names and layout for a plain module, strict and lenient loading, and
// interoperability with PyTorch's load_state_dict (through tools/reference/check_safetensors.py).

#include <trainpp/io/model_io.hpp>

#include <doctest/doctest.h>

#include "skip.hpp"

#include <cstdlib>
#include <filesystem>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include <unistd.h>

namespace model_io_test {

namespace fs = std::filesystem;

struct TempDir {
  fs::path path = fs::temp_directory_path() /
                  fmt::format("trainpp-model-io-test-{}-{}", ::getpid(), std::random_device{}());
  TempDir() { fs::create_directories(path); }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

// The names PyTorch gives nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4)).state_dict(), in its order.
const std::vector<std::string> recipe_names{"0.weight",       "0.bias",         "1.weight",           "1.bias",
                                            "1.running_mean", "1.running_var", "1.num_batches_tracked"};

// The values check_safetensors.py's recipe_model() gives entry k of that list: a ramp minus k, or 7.
torch::Tensor recipe_value(const std::string& name, torch::IntArrayRef shape) {
  const auto k = std::find(recipe_names.begin(), recipe_names.end(), name) - recipe_names.begin();
  if (name == "1.num_batches_tracked") return torch::tensor(7, torch::kInt64);
  return torch::arange(c10::multiply_integers(shape), torch::kFloat32).reshape(shape) * 0.5 - static_cast<double>(k);
}

torch::nn::Sequential recipe_model() {
  torch::nn::Sequential model(torch::nn::Linear(3, 4), torch::nn::BatchNorm1d(4));
  torch::NoGradGuard no_grad;
  for (auto& [name, t] : trainpp::state_dict(*model)) t.copy_(recipe_value(name, t.sizes()));
  return model;
}

void check_recipe_values(const torch::nn::Module& model) {
  for (const auto& [name, t] : trainpp::state_dict(model)) {
    CAPTURE(name);
    CHECK(std::string(c10::toString(t.scalar_type())) == c10::toString(recipe_value(name, t.sizes()).scalar_type()));
    CHECK(torch::equal(t, recipe_value(name, t.sizes())));
  }
}

std::string shell_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

std::optional<std::string> python() {
#ifdef TRAINPP_PYTHON
  const std::string interpreter = TRAINPP_PYTHON;
  if (std::system((shell_quote(interpreter) + " -c 'import numpy, safetensors.torch' >/dev/null 2>&1").c_str()) == 0)
    return interpreter;
  TRAINPP_SKIPPED("Python interop: " << interpreter << " cannot import safetensors.torch and numpy");
#else
  TRAINPP_SKIPPED("Python interop: TRAINPP_PYTHON is not defined, so there is no interpreter to run "
          "tools/reference/check_safetensors.py with");
#endif
  return std::nullopt;
}

// Runs the checker; `quiet` hides the report of a run that is meant to fail.
int run_checker(const std::string& interpreter, const std::string& mode, const fs::path& file, bool quiet = false) {
  const std::string script = TRAINPP_TEST_DATA_DIR "/../../tools/reference/check_safetensors.py";
  return std::system(fmt::format("{} {} {} {}{}", shell_quote(interpreter), shell_quote(script), mode,
                                 shell_quote(file.string()), quiet ? " >/dev/null 2>&1" : "")
                         .c_str());
}

// A model that differs from the recipe in every way load_model reports.
torch::nn::Sequential different_model() {
  torch::nn::Sequential model(torch::nn::Linear(3, 4), torch::nn::Linear(4, 2), torch::nn::Linear(2, 2));
  auto params = model->named_parameters();
  params["0.bias"].set_data(torch::full({4}, 0.25, torch::kFloat64));  // dtype differs from the file
  return model;
}


TEST_CASE("state_dict: every parameter and buffer under PyTorch's names, on the CPU") {
  const auto model = recipe_model();
  const auto state = trainpp::state_dict(*model);
  std::vector<std::string> names;
  for (const auto& [name, t] : state) {
    names.push_back(name);
    CHECK(t.device() == torch::Device(torch::kCPU));
    CHECK_FALSE(t.requires_grad());
  }
  CHECK(names == recipe_names);
}

TEST_CASE("save_model writes dir/model.safetensors that load_model reads back") {
  TempDir dir;
  const auto out = dir.path / "nested" / "checkpoint-3";
  trainpp::save_model(*recipe_model(), out);
  CHECK(fs::exists(out / "model.safetensors"));
  const auto file = trainpp::load_safetensors(out / "model.safetensors");
  CHECK(file.metadata == std::map<std::string, std::string>{{"format", "pt"}});

  for (const auto& where : {out, out / "model.safetensors"}) {
    torch::nn::Sequential fresh(torch::nn::Linear(3, 4), torch::nn::BatchNorm1d(4));
    const auto report = trainpp::load_model(*fresh, where);
    CHECK(report.clean());
    check_recipe_values(*fresh);
  }
  // Saving again replaces the file in place.
  auto changed = recipe_model();
  {
    torch::NoGradGuard no_grad;
    changed->named_parameters()["0.bias"].fill_(9);
  }
  trainpp::save_model(*changed, out);
  torch::nn::Sequential fresh(torch::nn::Linear(3, 4), torch::nn::BatchNorm1d(4));
  (void)trainpp::load_model(*fresh, out);
  CHECK(torch::equal(fresh->named_parameters()["0.bias"], torch::full({4}, 9.0f)));
  CHECK(std::distance(fs::directory_iterator(out), fs::directory_iterator()) == 1);
}

TEST_CASE("load_model strict: one error lists every missing, unexpected and mismatched tensor") {
  TempDir dir;
  trainpp::save_model(*recipe_model(), dir.path);
  auto model = different_model();
  const auto weight_before = model->named_parameters()["0.weight"].clone();
  std::string message;
  try {
    (void)trainpp::load_model(*model, dir.path);
  } catch (const trainpp::Error& e) {
    message = e.what();
  }
  CAPTURE(message);
  for (const char* phrase : {"model.safetensors", "strict", "2 missing from the file: 2.weight [2, 2] Float, 2.bias [2] Float",
                             "3 unexpected in the file: 1.num_batches_tracked [] Long, 1.running_mean [4] Float, "
                             "1.running_var [4] Float",
                             "0.bias: dtype Double (model) vs Float (file)", "1.weight: shape [2, 4] (model) vs [4] (file)",
                             "1.bias: shape [2] (model) vs [4] (file)"})
    CHECK(message.find(phrase) != std::string::npos);
  // Strict and failing: nothing was copied, not even the tensor that matched.
  CHECK(torch::equal(model->named_parameters()["0.weight"], weight_before));
}

TEST_CASE("load_model lenient: loads what matches and reports the rest") {
  TempDir dir;
  trainpp::save_model(*recipe_model(), dir.path);
  auto model = different_model();
  const auto report = trainpp::load_model(*model, dir.path / "model.safetensors", /*strict=*/false);
  CHECK(report.missing == std::vector<std::string>{"2.weight", "2.bias"});
  // In file order: the writer put the int64 counter before the float32 tensors.
  CHECK(report.unexpected == std::vector<std::string>{"1.num_batches_tracked", "1.running_mean", "1.running_var"});
  CHECK(report.mismatched == std::vector<std::string>{"0.bias: dtype Double (model) vs Float (file)",
                                                      "1.weight: shape [2, 4] (model) vs [4] (file)",
                                                      "1.bias: shape [2] (model) vs [4] (file)"});
  auto params = model->named_parameters();
  CHECK(torch::equal(params["0.weight"], recipe_value("0.weight", {4, 3})));
  CHECK(torch::equal(params["0.bias"], torch::full({4}, 0.25, torch::kFloat64)));  // untouched
  CHECK(params["0.weight"].requires_grad());  // still a trainable parameter

  CHECK_THROWS_WITH_AS((void)trainpp::load_model(*model, dir.path / "absent"), doctest::Contains("absent"),
                       trainpp::Error);
}

TEST_CASE("load_model and save_model interoperate with PyTorch's load_state_dict / state_dict" *
          doctest::test_suite("integration")) {
  const auto interpreter = python();
  if (!interpreter) return;
  TempDir dir;

  // C++ -> Python: strict load_state_dict into nn.Sequential(Linear(3, 4), BatchNorm1d(4)), values checked.
  trainpp::save_model(*recipe_model(), dir.path / "cpp");
  CHECK(run_checker(*interpreter, "verify-model", dir.path / "cpp" / "model.safetensors") == 0);

  // Python -> C++: the state_dict PyTorch saved loads strictly here and carries the recipe's values.
  const auto from_python = dir.path / "python.safetensors";
  REQUIRE(run_checker(*interpreter, "write-model", from_python) == 0);
  torch::nn::Sequential fresh(torch::nn::Linear(3, 4), torch::nn::BatchNorm1d(4));
  CHECK(trainpp::load_model(*fresh, from_python).clean());
  check_recipe_values(*fresh);

  // The checker can fail: a model with one value changed is reported.
  auto changed = recipe_model();
  {
    torch::NoGradGuard no_grad;
    changed->named_buffers()["1.running_var"][2] += 1;
  }
  trainpp::save_model(*changed, dir.path / "changed");
  CHECK(run_checker(*interpreter, "verify-model", dir.path / "changed" / "model.safetensors", /*quiet=*/true) != 0);
}

}  // namespace model_io_test
