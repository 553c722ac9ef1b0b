// Label smoothing (loss/label_smoothing.hpp) against transformers' LabelSmoother run beside the test,
// and how the Trainer applies --label_smoothing_factor: labels out of the forward, the default loss
// slot only. A causal LM's shifted, window-normalised case is checked against HF's Trainer in
// concepts/token_loss_test.cpp.

#include <trainpp/loss/label_smoothing.hpp>
#include <trainpp/trainpp.hpp>

#include <doctest/doctest.h>

#include "skip.hpp"
#include "trainpp/tiny_classifier.hpp"

#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace label_smoothing_test {

namespace fs = std::filesystem;

nlohmann::json nested(const torch::Tensor& t) {
  if (t.dim() == 0) return t.scalar_type() == torch::kLong ? nlohmann::json(t.item<int64_t>()) : nlohmann::json(t.item<double>());
  nlohmann::json out = nlohmann::json::array();
  for (int64_t i = 0; i < t.size(0); ++i) out.push_back(nested(t[i]));
  return out;
}

struct Case {
  torch::Tensor logits, labels;
  double epsilon;
  bool shift;
  std::optional<int64_t> label_tokens;
};

TEST_CASE("label smoothing: the loss of HF's LabelSmoother, with -100 labels, shifted labels and a window's count" *
          doctest::test_suite("integration")) {
#ifndef TRAINPP_PYTHON
  TRAINPP_SKIP_TEST("no Python interpreter to run transformers' LabelSmoother");
#else
  auto gen = at::make_generator<at::CPUGeneratorImpl>(11);
  auto classification_labels = torch::randint(0, 5, {6}, gen);
  classification_labels[2] = -100;
  auto token_labels = torch::randint(0, 7, {2, 6}, gen);
  token_labels.index_put_({0, torch::indexing::Slice(4)}, -100);
  const std::vector<Case> cases{
      {torch::randn({6, 5}, gen), classification_labels, 0.1, false, std::nullopt},
      {torch::randn({6, 5}, gen) * 4, classification_labels, 0.3, false, std::nullopt},
      {torch::randn({2, 6, 7}, gen), token_labels, 0.1, true, std::nullopt},
      {torch::randn({2, 6, 7}, gen), token_labels, 0.2, false, std::nullopt},
      {torch::randn({2, 6, 7}, gen), token_labels, 0.1, true, 23},  // normalised by a window of 23 label tokens
  };
  nlohmann::json inputs = nlohmann::json::array();
  for (const auto& c : cases) {
    nlohmann::json j{{"logits", nested(c.logits)}, {"labels", nested(c.labels)}, {"epsilon", c.epsilon},
                     {"shift_labels", c.shift}};
    if (c.label_tokens) j["num_items_in_batch"] = *c.label_tokens;
    inputs.push_back(j);
  }
  const fs::path dir = fs::temp_directory_path() / fmt::format("trainpp-label-smoothing-{}", ::getpid());
  fs::create_directories(dir);
  std::ofstream(dir / "inputs.json") << inputs.dump();
  const fs::path script = fs::path(TRAINPP_SOURCE_DIR) / "tests/trainpp/loss/label_smoothing_hf.py";
  const int status = std::system(fmt::format("'{}' '{}' '{}' '{}'", TRAINPP_PYTHON, script.string(),
                                             (dir / "inputs.json").string(), (dir / "outputs.json").string()).c_str());
  if (WIFEXITED(status) && WEXITSTATUS(status) == 77) {
    fs::remove_all(dir);
    TRAINPP_SKIP_TEST("transformers cannot be imported");
  }
  REQUIRE(WIFEXITED(status));
  REQUIRE(WEXITSTATUS(status) == 0);
  const auto expected = nlohmann::json::parse(std::ifstream(dir / "outputs.json"));
  fs::remove_all(dir);
  REQUIRE(expected.size() == cases.size());
  for (std::size_t i = 0; i < cases.size(); ++i) {
    const auto& c = cases[i];
    const auto tokens = c.label_tokens ? torch::tensor(*c.label_tokens) : torch::Tensor();
    const double ours = trainpp::label_smoothed_loss(c.logits, c.labels, c.epsilon, c.shift, tokens).item<double>();
    INFO("case " << i << ": trainpp " << ours << " HF " << expected[i].get<double>());
    CHECK(ours == doctest::Approx(expected[i].get<double>()).epsilon(1e-6));
  }
  // Epsilon 0 is the plain cross-entropy over the labels that are not -100.
  const auto plain = trainpp::label_smoothed_loss(cases[0].logits, cases[0].labels, 0.0);
  const auto cross_entropy = torch::nn::functional::cross_entropy(cases[0].logits, cases[0].labels);
  CHECK(plain.item<double>() == doctest::Approx(cross_entropy.item<double>()).epsilon(1e-6));
#endif
}

TEST_CASE("label smoothing: labels that do not match the logits are an error naming both shapes") {
  CHECK_THROWS_WITH_AS((void)trainpp::label_smoothed_loss(torch::zeros({4, 3}), torch::zeros({5}, torch::kLong), 0.1),
                       doctest::Contains("labels of shape [5] do not match logits of shape [4, 3]"), trainpp::Error);
}

TEST_CASE("label smoothing: the Trainer runs the model without labels and smooths its logits, in training and evaluation") {
  using namespace tiny_classifier;
  auto args = quiet_args("trainpp_label_smoothing_test");
  args.label_smoothing_factor = 0.2;
  auto eval = data(10);  // batches of 4, 4 and 2: the evaluation loss weights each batch by its size
  trainpp::Trainer trainer(Net{}, args, trainpp::eval_dataset = eval);
  const auto all = eval.gather({0, 1, 2, 3, 4, 5, 6, 7, 8, 9});

  torch::NoGradGuard no_grad;
  const auto logits = trainer.model()->fc(all.at("x"));
  const double smoothed = trainpp::label_smoothed_loss(logits, all.at("labels"), 0.2).item<double>();
  const double unsmoothed = torch::nn::functional::cross_entropy(logits, all.at("labels")).item<double>();
  REQUIRE(std::abs(smoothed - unsmoothed) > 1e-3);  // the check below can tell the two apart
  CHECK(trainer.compute_loss(all).item<double>() == doctest::Approx(smoothed).epsilon(1e-6));

  double weighted = 0;
  for (const auto& [begin, end] : {std::pair{0, 4}, std::pair{4, 8}, std::pair{8, 10}}) {
    const auto part = logits.slice(0, begin, end);
    weighted += trainpp::label_smoothed_loss(part, all.at("labels").slice(0, begin, end), 0.2).item<double>() * (end - begin);
  }
  CHECK(trainer.evaluate().at("eval_loss") == doctest::Approx(weighted / 10).epsilon(1e-6));
}

struct OwnLoss {
  template <class Output, class B>
  torch::Tensor operator()(const Output& outputs, const B&) const {
    return outputs.loss;
  }
};

TEST_CASE("label smoothing: a loss slot of the user's own with a smoothing factor is refused, as is a factor out of range") {
  using namespace tiny_classifier;
  auto args = quiet_args("trainpp_label_smoothing_test");
  args.label_smoothing_factor = 0.1;
  CHECK_THROWS_WITH_AS(trainpp::Trainer(Net{}, args, trainpp::loss = OwnLoss{}),
                       doctest::Contains("--label_smoothing_factor smooths the default loss"), trainpp::Error);
  for (const double bad : {-0.1, 1.0}) {
    args.label_smoothing_factor = bad;
    CHECK_THROWS_WITH_AS(args.finalize(), doctest::Contains("label_smoothing_factor must be in [0, 1)"), trainpp::Error);
  }
  static_assert(trainpp::detail::is_causal_lm<trainpp::GPT2LMHeadModel>());
  static_assert(trainpp::detail::is_causal_lm<trainpp::LlamaForCausalLM>());
  static_assert(!trainpp::detail::is_causal_lm<Net>());
}

}  // namespace label_smoothing_test
