// optimizer.safetensors (io/optimizer_state.hpp): round trips of an optimizer's per-parameter state and
// its groups, and the reader's checks of tensor names and of the "trainpp.optimizer" metadata.

#include <trainpp/io/optimizer_state.hpp>
#include <trainpp/io/checkpoint_dir.hpp>
#include <trainpp/optim/adamw.hpp>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <functional>
#include <limits>
#include <map>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include <unistd.h>

namespace optimizer_state_test {

namespace fs = std::filesystem;

struct TempDir {
  fs::path path = fs::temp_directory_path() /
                  fmt::format("trainpp-optimizer-state-test-{}-{}", ::getpid(), std::random_device{}());
  TempDir() { fs::create_directories(path); }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

std::string message_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const trainpp::Error& e) {
    return e.what();
  }
  return "<no error>";
}

/// Metadata of a valid file for two parameters in one group; tests patch it to break one thing.
nlohmann::json valid_meta() {
  return {{"version", 1},
          {"num_parameters", 2},
          {"param_groups",
           {{{"lr", 1e-3}, {"initial_lr", 1e-3}, {"weight_decay", 0.0}, {"num_parameters", 2}, {"names", {"a", "b"}}}}}};
}

/// Writes `tensors` with `meta` as the optimizer metadata and returns load_optimizer_state's refusal.
std::string refusal(const fs::path& path, const nlohmann::json& meta,
                    const std::vector<std::pair<std::string, torch::Tensor>>& tensors = {}) {
  trainpp::save_safetensors(path, tensors, {{"format", "pt"}, {"trainpp.optimizer", meta.dump()}});
  return message_of([&] { (void)trainpp::load_optimizer_state(path); });
}

TEST_CASE("the optimizer state file round-trips an AdamW mid-training, names and group rates included") {
  TempDir dir;
  auto w = torch::randn({3, 2}).requires_grad_();
  auto b = torch::zeros({3}).requires_grad_();
  std::vector<trainpp::ParamGroup> groups(2);
  groups[0].params = {w};
  groups[0].names = {"fc.weight"};
  groups[0].lr = groups[0].initial_lr = 1e-3;
  groups[0].weight_decay = 0.01;
  groups[1].params = {b};
  groups[1].names = {"fc.bias"};
  groups[1].lr = 7e-4;
  groups[1].initial_lr = 1e-3;
  trainpp::AdamW adam(groups, trainpp::AdamWOptions{});
  for (int i = 0; i < 3; ++i) {
    adam.zero_grad();
    (w.sum() * 2 + b.pow(2).sum() + 1).backward();
    adam.step();
  }
  const auto path = dir.path / trainpp::optimizer_state_name;
  trainpp::save_optimizer_state(path, adam.state(), adam.param_groups());
  const auto saved = trainpp::load_optimizer_state(path);
  REQUIRE(saved.groups.size() == 2);
  CHECK(saved.group_sizes == std::vector<std::size_t>{1, 1});
  CHECK(saved.groups[1].lr == 7e-4);
  CHECK(saved.groups[0].weight_decay == 0.01);
  CHECK(saved.groups[0].names == std::vector<std::string>{"fc.weight"});
  REQUIRE(saved.state.size() == 2);
  const auto live = adam.state();
  for (std::size_t i = 0; i < 2; ++i)
    for (const char* key : {"exp_avg", "exp_avg_sq", "step"}) CHECK(torch::equal(saved.state[i].at(key), live[i].at(key)));

  // Loaded into a fresh AdamW, the next step is the same as the original's.
  auto w2 = w.detach().clone().requires_grad_();
  auto b2 = b.detach().clone().requires_grad_();
  auto groups2 = groups;
  groups2[0].params = {w2};
  groups2[1].params = {b2};
  trainpp::AdamW resumed(groups2, trainpp::AdamWOptions{});
  resumed.load_state(saved.state);
  for (auto* o : {&adam, &resumed}) o->zero_grad();
  (w.sum() * 2 + b.pow(2).sum() + 1).backward();
  (w2.sum() * 2 + b2.pow(2).sum() + 1).backward();
  adam.step();
  resumed.step();
  CHECK(torch::equal(w, w2));
  CHECK(torch::equal(b, b2));

  // A file that is not an optimizer state says so.
  trainpp::save_safetensors(dir.path / "other.safetensors", {{"state.0.exp_avg", torch::zeros({1})}});
  CHECK(message_of([&] { (void)trainpp::load_optimizer_state(dir.path / "other.safetensors"); })
            .find("lacks \"trainpp.optimizer\"") != std::string::npos);
}

TEST_CASE("optimizer_state: parameters without state, unnamed groups and dotted keys round-trip") {
  TempDir dir;
  trainpp::OptimizerState state(3);
  state[0]["momentum_buffer"] = torch::tensor({1.0f, -2.0f});
  // state[1] stays empty: a parameter the optimizer never updated.
  state[2]["sub.key"] = torch::tensor({7}, torch::kLong);  // everything after the index is the key
  std::vector<trainpp::ParamGroup> groups(2);
  groups[0].params = {torch::zeros({2}), torch::zeros({1})};
  groups[0].lr = 0.5;
  groups[0].initial_lr = 1.0;
  groups[1].params = {torch::zeros({1})};
  groups[1].names = {"head.bias"};
  groups[1].weight_decay = 0.1;
  const auto path = dir.path / "opt.safetensors";
  trainpp::save_optimizer_state(path, state, groups);

  const auto saved = trainpp::load_optimizer_state(path);
  REQUIRE(saved.state.size() == 3);
  CHECK(saved.state[0].size() == 1);
  CHECK(torch::equal(saved.state[0].at("momentum_buffer"), state[0].at("momentum_buffer")));
  CHECK(saved.state[1].empty());
  CHECK(torch::equal(saved.state[2].at("sub.key"), state[2].at("sub.key")));
  CHECK(saved.group_sizes == std::vector<std::size_t>{2, 1});
  REQUIRE(saved.groups.size() == 2);
  CHECK(saved.groups[0].names.empty());
  CHECK(saved.groups[0].lr == 0.5);
  CHECK(saved.groups[0].initial_lr == 1.0);
  CHECK(saved.groups[1].names == std::vector<std::string>{"head.bias"});
  CHECK(saved.groups[1].weight_decay == 0.1);
  CHECK(saved.groups[1].params.empty());  // the groups carry hyperparameters, never tensors
}

TEST_CASE("optimizer_state: every tensor must be named state.<index>.<key> with an index in range") {
  TempDir dir;
  const auto path = dir.path / "opt.safetensors";
  const auto one = torch::zeros({1});
  for (const char* name : {"state.01.exp_avg", "state.0.", "state..x", "state.x.exp_avg", "exp_avg", "state.-1.x",
                           "state.+1.x"}) {
    const auto message = refusal(path, valid_meta(), {{name, one}});
    CHECK_MESSAGE(message.find(fmt::format("unexpected tensor \"{}\"", name)) != std::string::npos, message);
    CHECK(message.starts_with(path.string() + ": "));
  }
  CHECK(refusal(path, valid_meta(), {{"state.2.exp_avg", one}})
            .find("tensor \"state.2.exp_avg\" is for parameter #2, but the optimizer state has 2 parameters") !=
        std::string::npos);
  CHECK(refusal(path, valid_meta(), {{"state.1.exp_avg", one}}) == "<no error>");
}

TEST_CASE("optimizer_state: the metadata's version, counts, rates and names are checked") {
  TempDir dir;
  const auto path = dir.path / "opt.safetensors";
  struct Bad {
    std::function<void(nlohmann::json&)> patch;
    std::string phrase;
  };
  const std::vector<Bad> cases{
      {[](auto& m) { m["version"] = 2; }, "unsupported optimizer state version 2"},
      {[](auto& m) { m.erase("num_parameters"); }, "the optimizer metadata lacks the key \"num_parameters\""},
      {[](auto& m) { m["num_parameters"] = -1; }, "\"num_parameters\" must be an integer of at least 0"},
      {[](auto& m) { m["num_parameters"] = 1 << 21; }, "is more than any model has"},
      {[](auto& m) { m["param_groups"] = nlohmann::json::array({1}); }, "param_groups[0] must be a JSON object, got number"},
      {[](auto& m) { m["param_groups"] = "none"; }, "\"param_groups\" must be an array"},
      {[](auto& m) { m["param_groups"][0]["lr"] = -1e-3; }, "param_groups[0] \"lr\" must be a finite non-negative number"},
      {[](auto& m) { m["param_groups"][0]["weight_decay"] = "0"; }, "param_groups[0] \"weight_decay\" must be a number"},
      {[](auto& m) { m["param_groups"][0]["names"] = {"a", 3}; }, "param_groups[0] \"names\" must be an array of strings"},
      {[](auto& m) { m["param_groups"][0]["names"] = {"a"}; }, "param_groups[0] has 2 parameters but 1 names"},
      {[](auto& m) { m["param_groups"][0]["num_parameters"] = 3; m["param_groups"][0]["names"] = nlohmann::json::array(); },
       "the parameter groups hold more parameters than num_parameters (2)"},
      {[](auto& m) { m["param_groups"][0]["num_parameters"] = 1; m["param_groups"][0]["names"] = {"a"}; },
       "the parameter groups hold 1 parameters, num_parameters says 2"},
  };
  for (const auto& c : cases) {
    auto meta = valid_meta();
    c.patch(meta);
    const auto message = refusal(path, meta);
    CHECK_MESSAGE(message.starts_with(path.string() + ": "), message);
    CHECK_MESSAGE(message.find(c.phrase) != std::string::npos, message, " lacks ", c.phrase);
  }
  trainpp::save_safetensors(path, {}, {{"trainpp.optimizer", R"({"version": 1, "version": 1})"}});
  CHECK_THROWS_WITH_AS((void)trainpp::load_optimizer_state(path),
                       doctest::Contains((path.string() + " (metadata trainpp.optimizer)").c_str()), trainpp::Error);
}

}  // namespace optimizer_state_test
