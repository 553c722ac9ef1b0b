// Text metrics against sacrebleu: tools/reference/gen_bleu_reference.py ran sacrebleu.corpus_bleu with
// its defaults on fixed cases (punctuation, numbers, zero matches, brevity penalty, several and varying
// references, unicode and unicode whitespace, HTML entities, empty hypotheses, a random corpus) and its
// 13a tokenizer on single lines; the JSON is checked in, so sacrebleu is not needed here.
//
// Tolerance: lengths, counts and totals are integers and must be equal. The score, precisions and bp
// are computed operation for operation as sacrebleu does (the same IEEE double operations in the same
// order, with the C library's log and exp that Python's math module also calls), so they agree to the
// last digit here; the check allows a relative 1e-9 so that another C library's last-ulp rounding of
// log/exp would not fail it, which is still far below the 2 decimals BLEU is reported with.

#include <trainpp/data/tensor_dataset.hpp>
#include <trainpp/io/eval_metrics.hpp>
#include <trainpp/metrics/text.hpp>
#include <trainpp/trainer.hpp>

#include <doctest/doctest.h>

#include <nlohmann/json.hpp>

#include <cmath>
#include <fstream>
#include <string>
#include <vector>

namespace text_test {

using nlohmann::json;

json load_reference() {
  std::ifstream in(TRAINPP_TEST_DATA_DIR "/metrics/bleu_reference.json");
  REQUIRE(in.good());
  return json::parse(in);
}

void check_close(double ours, double expected, const char* what) {
  INFO(what << ": trainpp " << fmt::format("{:.17g}", ours) << " sacrebleu " << fmt::format("{:.17g}", expected));
  CHECK(std::abs(ours - expected) <= 1e-9 * std::max(1.0, std::abs(expected)));
}

/// Word-level vocabulary for the EvalPrediction tests; id 0 is padding.
const std::vector<std::string> words{"<pad>", "the", "cat", "sat", "on", "mat", ".", "a", "dog"};

std::string decode(const std::vector<std::int64_t>& ids) {
  std::string out;
  for (auto id : ids) {
    if (!out.empty()) out += ' ';
    out += words.at(static_cast<std::size_t>(id));
  }
  return out;
}

/// A model whose logits are a table lookup: evaluation gathers [examples, length, vocabulary] logits.
struct LookupImpl : torch::nn::Module {
  torch::nn::Embedding table{torch::nn::EmbeddingOptions(static_cast<int64_t>(words.size()), static_cast<int64_t>(words.size()))};
  LookupImpl() {
    register_module("table", table);
    torch::NoGradGuard no_grad;
    // Row i peaks at i: the prediction for each position is its input id, except id 7 ("a") -> 1 ("the").
    table->weight.copy_(torch::eye(static_cast<int64_t>(words.size())) * 5);
    table->weight[7][1] = 10;
  }
  trainpp::ModelOutput forward(const trainpp::Batch& batch) {
    trainpp::ModelOutput out{.logits = table(batch.at("input_ids"))};
    out.loss = torch::nn::functional::cross_entropy(
        out.logits.flatten(0, 1), batch.at("labels").flatten(),
        torch::nn::functional::CrossEntropyFuncOptions().ignore_index(-100));
    return out;
  }
};
TORCH_MODULE(Lookup);


TEST_CASE("tokenize_13a: sacrebleu's 13a tokenizer") {
  const auto ref = load_reference();
  for (const auto& c : ref["tokenize_cases"]) {
    const auto line = c["line"].get<std::string>();
    INFO("line '" << line << "'");
    CHECK(trainpp::tokenize_13a(line) == c["tokens"].get<std::vector<std::string>>());
  }
}

TEST_CASE("corpus_bleu: sacrebleu's score, precisions, bp and lengths") {
  const auto ref = load_reference();
  REQUIRE(ref["bleu_cases"].size() >= 10);
  for (const auto& c : ref["bleu_cases"]) {
    INFO("case " << c["name"].get<std::string>());
    const auto s = trainpp::corpus_bleu(c["hypotheses"].get<std::vector<std::string>>(),
                                        c["references"].get<std::vector<std::vector<std::string>>>());
    CHECK(s.sys_len == c["sys_len"].get<std::int64_t>());
    CHECK(s.ref_len == c["ref_len"].get<std::int64_t>());
    for (std::size_t n = 0; n < 4; ++n) {
      INFO("order " << n + 1);
      CHECK(s.counts[n] == c["counts"][n].get<std::int64_t>());
      CHECK(s.totals[n] == c["totals"][n].get<std::int64_t>());
      check_close(s.precisions[n], c["precisions"][n].get<double>(), "precision");
    }
    check_close(s.bp, c["bp"].get<double>(), "bp");
    check_close(s.score, c["score"].get<double>(), "score");
  }
}

TEST_CASE("corpus_bleu: one reference each, and the errors") {
  const std::vector<std::string> hyps{"the cat sat on the mat", "a dog"};
  const auto single = trainpp::corpus_bleu(hyps, std::vector<std::string>{"the cat sat on a mat", "the dog"});
  const auto lists = trainpp::corpus_bleu(hyps, std::vector<std::vector<std::string>>{{"the cat sat on a mat"}, {"the dog"}});
  CHECK(single.score == lists.score);
  CHECK(single.score > 0);
  CHECK_THROWS_WITH_AS((void)trainpp::corpus_bleu(hyps, std::vector<std::string>{"one"}),
                       "corpus_bleu: 2 hypotheses but 1 reference lists (one list per hypothesis)", trainpp::Error);
  CHECK_THROWS_WITH_AS((void)trainpp::corpus_bleu(hyps, std::vector<std::vector<std::string>>{{"x"}, {}}),
                       "corpus_bleu: hypothesis 1 has no reference", trainpp::Error);
  const auto empty = trainpp::corpus_bleu({}, std::vector<std::string>{});
  CHECK(empty.score == 0.0);
  CHECK(empty.bp == 1.0);
}

TEST_CASE("exact_match: the fraction of identical strings") {
  CHECK(trainpp::exact_match({"a b", "c", "D"}, {"a b", "c ", "d"}) == doctest::Approx(1.0 / 3));
  CHECK(trainpp::exact_match({"x"}, {"x"}) == 1.0);
  CHECK(trainpp::exact_match({}, {}) == 0.0);
  CHECK_THROWS_WITH_AS((void)trainpp::exact_match({"a"}, {}), "exact_match: 1 predictions but 0 references",
                       trainpp::Error);
}

TEST_CASE("text_metrics: decodes token ids without -100 and padding, then BLEU and exact match") {
  // Row 0 matches its label exactly; row 1 differs in one word; row 2 is padded with 0 and -100.
  const auto predictions = torch::tensor({1, 2, 3, 4, 1, 5, 1, 2, 3, 4, 1, 8, 1, 2, 0, 0, -100, -100}).view({3, 6});
  const auto labels = torch::tensor({1, 2, 3, 4, 1, 5, 1, 2, 3, 4, 1, 5, 1, 2, -100, -100, -100, -100}).view({3, 6});
  auto metrics = trainpp::text_metrics(decode, /*pad_token_id=*/0);
  const auto m = metrics(trainpp::EvalPrediction{predictions, labels});
  REQUIRE(m.size() == 2);
  const std::vector<std::string> hyps{"the cat sat on the mat", "the cat sat on the dog", "the cat"};
  const std::vector<std::string> refs{"the cat sat on the mat", "the cat sat on the mat", "the cat"};
  CHECK(m.at("bleu") == trainpp::corpus_bleu(hyps, refs).score);
  CHECK(m.at("exact_match") == doctest::Approx(2.0 / 3));

  // Without pad_token_id the padding reaches the decoder (HF's decode would skip it as a special token).
  const auto texts = trainpp::decode_eval_prediction(trainpp::EvalPrediction{predictions, labels}, decode);
  CHECK(texts.predictions[2] == "the cat <pad> <pad>");
  CHECK(texts.references[2] == "the cat");

  // Surrounding whitespace of the decoded text is stripped, as HF's translation example does.
  auto spaced = trainpp::text_metrics([](const std::vector<std::int64_t>& ids) {
    std::string text = "\t ";  // appended, not `" " + decode(ids)`: GCC 12 warns falsely on that form
    text += decode(ids);
    text += "\u3000\n";
    return text;
  });
  CHECK(spaced(trainpp::EvalPrediction{labels.masked_fill(labels.eq(-100), 1), labels.masked_fill(labels.eq(-100), 1)})
            .at("exact_match") == 1.0);

  CHECK_THROWS_AS((void)metrics(trainpp::EvalPrediction{predictions, {}}), trainpp::Error);
  CHECK_THROWS_AS((void)metrics(trainpp::EvalPrediction{predictions.view({18}), labels.view({18})}), trainpp::Error);
}

TEST_CASE("text_metrics as the compute_metrics slot of evaluate, on logits") {
  const auto input_ids = torch::tensor({1, 2, 3, 4, 1, 5, 7, 8, 3, 0, 0, 0, 1, 2, 6, 0, 0, 0}).view({3, 6});
  auto labels = input_ids.clone();
  labels.masked_fill_(labels.eq(0), -100);
  labels[1][0] = 7;  // "a dog sat": the model says "the dog sat", so row 1 is not an exact match
  trainpp::TrainingArguments args;
  args.output_dir = "unused";
  args.use_cpu = true;
  args.report_to = {"none"};
  args.disable_tqdm = true;
  args.per_device_eval_batch_size = 2;  // two batches: predictions are gathered across them
  trainpp::Trainer trainer(Lookup{}, args, trainpp::eval_dataset = trainpp::TensorDataset{{"input_ids", input_ids}, {"labels", labels}},
                           trainpp::compute_metrics = trainpp::text_metrics(decode, /*pad_token_id=*/0));
  const auto metrics = trainer.evaluate();
  const std::vector<std::string> hyps{"the cat sat on the mat", "the dog sat", "the cat ."};
  const std::vector<std::string> refs{"the cat sat on the mat", "a dog sat", "the cat ."};
  CHECK(metrics.at("eval_bleu") == trainpp::corpus_bleu(hyps, refs).score);
  CHECK(metrics.at("eval_exact_match") == doctest::Approx(2.0 / 3));
}

}  // namespace text_test
