// The collators against transformers' own on the same examples (collators_hf_reference.py), the
// masked-LM rates, and their determinism under worker threads.

#include <trainpp/data/collators.hpp>
#include <trainpp/data/data_loader.hpp>
#include <trainpp/logging.hpp>

#include "collators_reference.hpp"
#include "../../skip.hpp"

#include <doctest/doctest.h>

#include <cmath>
#include <string>
#include <vector>

namespace collators_test {

using trainpp::Batch;

std::vector<Batch> examples_of(const collators_reference::Reference& ref, const std::string& set, std::size_t size) {
  std::vector<Batch> out(size);
  for (std::size_t i = 0; i < size; ++i)
    for (const auto& key : ref.json["example_keys"][set])
      out[i][key.get<std::string>()] = ref.tensors.at(fmt::format("{}.{}.{}", set, i, key.get<std::string>()));
  return out;
}

trainpp::PaddingOptions padding_of(const nlohmann::json& o) {
  trainpp::PaddingOptions p;
  p.pad_token_id = 0;
  p.padding_side = o.value("side", "right") == "left" ? trainpp::PaddingSide::left : trainpp::PaddingSide::right;
  if (o.value("padding", "longest") == "max_length") p.padding = trainpp::PaddingStrategy::max_length;
  if (o.contains("max_length")) p.max_length = o["max_length"].get<std::int64_t>();
  if (o.contains("pad_to_multiple_of")) p.pad_to_multiple_of = o["pad_to_multiple_of"].get<std::int64_t>();
  return p;
}

trainpp::LanguageModelingOptions lm_options_of(const nlohmann::json& o, bool mlm) {
  trainpp::LanguageModelingOptions lm;
  lm.padding = padding_of(o);
  lm.mlm = mlm;
  lm.mask_token_id = 4;
  lm.vocab_size = 100;
  lm.special_token_ids = {0, 1, 2, 3, 4};
  lm.mlm_probability = o.value("mlm_probability", 0.15);
  lm.mask_replace_prob = o.value("mask_replace_prob", 0.8);
  lm.random_replace_prob = o.value("random_replace_prob", 0.1);
  if (o.contains("seed")) lm.seed = o["seed"].get<std::int64_t>();
  return lm;
}

Batch collate_case(const nlohmann::json& c, std::vector<Batch> examples) {
  const std::string name = c["name"];
  const auto& o = c["options"];
  if (name.starts_with("pad_")) return trainpp::DataCollatorWithPadding{padding_of(o)}(std::move(examples));
  if (name.starts_with("seq2seq_"))
    return trainpp::DataCollatorForSeq2Seq{padding_of(o), o.value("label_pad_token_id", std::int64_t{-100})}(
        std::move(examples));
  if (name.starts_with("default_")) return trainpp::DefaultDataCollator{}(std::move(examples));
  if (name.starts_with("clm")) return trainpp::DataCollatorForLanguageModeling(lm_options_of(o, false))(std::move(examples));
  if (name.starts_with("mlm")) return trainpp::DataCollatorForLanguageModeling(lm_options_of(o, true))(std::move(examples));
  FAIL("unknown case " << name);
  return {};
}

void check_cases(const collators_reference::Reference& ref, bool masked) {
  int compared = 0;
  for (const auto& c : ref.json["collators"]) {
    const std::string name = c["name"];
    if (name.starts_with("mlm") != masked) continue;
    CAPTURE(name);
    const Batch batch = collate_case(c, examples_of(ref, c["set"], c["size"].get<std::size_t>()));
    std::vector<std::string> expected_keys;
    for (const auto& k : c["keys"]) expected_keys.push_back(k);
    CHECK(batch.keys() == expected_keys);
    for (const auto& key : expected_keys) {
      CAPTURE(key);
      const torch::Tensor& expected = ref.tensors.at(name + "." + key);
      const torch::Tensor& got = batch.at(key);
      CHECK_MESSAGE((got.scalar_type() == expected.scalar_type()), got.scalar_type() << " vs " << expected.scalar_type());
      REQUIRE(got.sizes() == expected.sizes());
      CHECK(torch::equal(got, expected));
    }
    ++compared;
  }
  CHECK(compared >= (masked ? 3 : 12));
}

TEST_CASE("Padding, seq2seq, default and causal LM collators give transformers' batches" *
          doctest::test_suite("integration")) {
  const auto ref = collators_reference::load();
  if (!ref) TRAINPP_SKIP_TEST("transformers or accelerate cannot be imported");
  check_cases(*ref, /*masked=*/false);
}

TEST_CASE("A seeded masked LM collator draws transformers' masks for its first batch" *
          doctest::test_suite("integration")) {
  const auto ref = collators_reference::load();
  if (!ref) TRAINPP_SKIP_TEST("transformers or accelerate cannot be imported");
  check_cases(*ref, /*masked=*/true);
}

/// Examples of 10..60 tokens: [CLS] words [SEP], words drawn from 5..99 (ids 0..4 are special).
std::vector<Batch> word_examples(std::size_t count, std::int64_t seed) {
  at::Generator g = at::detail::createCPUGenerator(static_cast<std::uint64_t>(seed));
  std::vector<Batch> out;
  for (std::size_t i = 0; i < count; ++i) {
    const std::int64_t n = 10 + static_cast<std::int64_t>((i * 37) % 51);
    torch::Tensor ids = torch::randint(5, 100, {n}, g, torch::kLong);
    ids[0] = 2;
    ids[n - 1] = 3;
    out.push_back(Batch{{"input_ids", ids}});
  }
  return out;
}

struct Rates {
  double chosen = 0, masked = 0, random = 0, kept = 0;
  std::int64_t special_chosen = 0, special_changed = 0;
};

/// Masks `batches` batches of `word_examples` and measures HF's rates: the share of ordinary tokens
/// chosen, and of the chosen the shares replaced by [MASK], by another word, and left as they were.
/// With `mask_key`, the examples carry special_tokens_mask, as a tokenizer asked for it makes them.
Rates measure(const trainpp::DataCollatorForLanguageModeling& collator, int batches, bool mask_key = false) {
  std::int64_t ordinary = 0, chosen = 0, masked = 0, random = 0, kept = 0;
  Rates r;
  for (int b = 0; b < batches; ++b) {
    std::vector<Batch> examples = word_examples(32, 100 + b);
    const Batch plain = trainpp::pad_examples(examples, collator.options().padding);
    if (mask_key)
      for (Batch& e : examples) e["special_tokens_mask"] = (e.at("input_ids") < 5).to(torch::kLong);
    const Batch out = collator(std::vector<Batch>(examples), trainpp::BatchOrdinal{b});
    const torch::Tensor before = plain.at("input_ids"), after = out.at("input_ids"), labels = out.at("labels");
    const torch::Tensor special = before < 5;  // [CLS], [SEP] and the padding
    const torch::Tensor picked = labels != -100;
    r.special_chosen += (picked & special).sum().item<std::int64_t>();
    r.special_changed += ((after != before) & special).sum().item<std::int64_t>();
    CHECK(torch::equal(labels.masked_select(picked), before.masked_select(picked)));
    ordinary += special.logical_not().sum().item<std::int64_t>();
    chosen += picked.sum().item<std::int64_t>();
    masked += (picked & (after == 4)).sum().item<std::int64_t>();
    random += (picked & (after != 4) & (after != before)).sum().item<std::int64_t>();
    kept += (picked & (after == before)).sum().item<std::int64_t>();
    // Nothing changes outside the chosen tokens.
    CHECK(torch::equal(after.masked_select(picked.logical_not()), before.masked_select(picked.logical_not())));
  }
  r.chosen = static_cast<double>(chosen) / static_cast<double>(ordinary);
  r.masked = static_cast<double>(masked) / static_cast<double>(chosen);
  r.random = static_cast<double>(random) / static_cast<double>(chosen);
  r.kept = static_cast<double>(kept) / static_cast<double>(chosen);
  return r;
}

/// |value - expected| < tolerance, absolute (doctest's Approx adds a scale of 1 to its epsilon).
bool near(double value, double expected, double tolerance) { return std::abs(value - expected) < tolerance; }

trainpp::LanguageModelingOptions mlm_options() {
  trainpp::LanguageModelingOptions o;
  o.padding.pad_token_id = 0;
  o.mask_token_id = 4;
  o.vocab_size = 100;
  o.special_token_ids = {0, 1, 2, 3, 4};
  o.seed = 42;
  return o;
}

TEST_CASE("The masked LM collator chooses 15% of the tokens and replaces 80/10/10, never special ones") {
  // About 30 000 ordinary tokens, 4 500 chosen: one standard deviation is under 0.5% of the chosen.
  for (const bool with_mask_key : {false, true}) {
    CAPTURE(with_mask_key);
    auto options = mlm_options();
    if (with_mask_key) options.special_token_ids.clear();  // the special_tokens_mask alone must protect them
    const trainpp::DataCollatorForLanguageModeling collator(options);
    const Rates r = measure(collator, 20, with_mask_key);
    CHECK_MESSAGE(near(r.chosen, 0.15, 0.012), r.chosen);
    CHECK_MESSAGE(near(r.masked, 0.8, 0.03), r.masked);
    CHECK_MESSAGE(near(r.random, 0.1, 0.02), r.random);  // a random word may equal the old one (1% of them)
    CHECK_MESSAGE(near(r.kept, 0.1, 0.02), r.kept);
    CHECK(r.special_chosen == 0);
    CHECK(r.special_changed == 0);
  }
}

TEST_CASE("The masked LM collator protects what special_tokens_mask marks") {
  auto options = mlm_options();
  options.special_token_ids.clear();
  options.mlm_probability = 1.0;  // every token not protected is chosen
  const trainpp::DataCollatorForLanguageModeling collator(options);
  std::vector<Batch> examples = word_examples(4, 7);
  for (Batch& e : examples) {
    torch::Tensor mask = torch::zeros_like(e.at("input_ids"));
    mask[0] = 1;
    mask[1] = 1;  // an ordinary word marked special is protected too
    e["special_tokens_mask"] = mask;
  }
  const Batch out = collator(std::move(examples));
  CHECK_FALSE(out.contains("special_tokens_mask"));
  const torch::Tensor labels = out.at("labels");
  CHECK((labels.narrow(1, 0, 2) == -100).all().item<bool>());
  // Padding is protected (pad() pads special_tokens_mask with 1); the shortest example has 10 tokens.
  CHECK((labels.narrow(1, 2, 7) != -100).all().item<bool>());
  const torch::Tensor attention = out.at("attention_mask");
  CHECK((labels.masked_select(attention == 0) == -100).all().item<bool>());
}

TEST_CASE("The masked LM rates break when the collator's replacement split breaks") {
  // What the 80/10/10 test above would see with no random replacement: it must not pass for this.
  auto options = mlm_options();
  options.random_replace_prob = 0;
  const Rates r = measure(trainpp::DataCollatorForLanguageModeling(options), 5);
  CHECK(r.random < 0.02);
  CHECK_FALSE_MESSAGE(near(r.random, 0.1, 0.02), r.random);
  CHECK_FALSE_MESSAGE(near(r.kept, 0.1, 0.02), r.kept);
}

struct VariableLengthDataset {
  std::vector<Batch> examples;
  [[nodiscard]] std::size_t size() const { return examples.size(); }
  [[nodiscard]] Batch get(std::size_t i) const { return examples.at(i); }
};

TEST_CASE("The masked LM collator gives the same batches whichever worker thread makes them") {
  const VariableLengthDataset dataset{word_examples(64, 5)};
  const trainpp::DataCollatorForLanguageModeling collator(mlm_options());
  auto epoch_batches = [&](std::int64_t workers) {
    trainpp::DataLoaderOptions o;
    o.batch_size = 4;
    o.shuffle = true;
    o.num_workers = workers;
    trainpp::DataLoader loader(dataset, o, collator);
    std::vector<Batch> out;
    for (int epoch = 0; epoch < 2; ++epoch)
      while (auto b = loader.next()) out.push_back(*b);
    return out;
  };
  const auto serial = epoch_batches(0), threaded = epoch_batches(3);
  REQUIRE(serial.size() == 32);
  REQUIRE(threaded.size() == serial.size());
  for (std::size_t b = 0; b < serial.size(); ++b) {
    CAPTURE(b);
    CHECK(torch::equal(serial[b].at("input_ids"), threaded[b].at("input_ids")));
    CHECK(torch::equal(serial[b].at("labels"), threaded[b].at("labels")));
  }
  // Each batch draws from its own generator: the same examples are masked differently in batch 0 and 1.
  const std::vector<Batch> same = word_examples(8, 9);
  const Batch first = collator(std::vector<Batch>(same), trainpp::BatchOrdinal{0});
  const Batch second = collator(std::vector<Batch>(same), trainpp::BatchOrdinal{1});
  CHECK_FALSE(torch::equal(first.at("labels"), second.at("labels")));
  CHECK(torch::equal(first.at("labels"), collator(std::vector<Batch>(same)).at("labels")));
}

TEST_CASE("Collators reject bad input with errors that name the problem") {
  using Catch = trainpp::Error;
  trainpp::PaddingOptions no_pad;
  CHECK_THROWS_WITH_AS(trainpp::DataCollatorWithPadding{no_pad}(word_examples(2, 1)),
                       doctest::Contains("pad_token_id"), Catch);
  trainpp::PaddingOptions short_max;
  short_max.pad_token_id = 0;
  short_max.padding = trainpp::PaddingStrategy::max_length;
  short_max.max_length = 5;
  CHECK_THROWS_WITH_AS(trainpp::DataCollatorWithPadding{short_max}(word_examples(2, 1)),
                       doctest::Contains("max_length 5"), Catch);
  short_max.max_length.reset();
  CHECK_THROWS_WITH_AS(trainpp::DataCollatorWithPadding{short_max}(word_examples(2, 1)),
                       doctest::Contains("needs max_length"), Catch);
  trainpp::PaddingOptions ok;
  ok.pad_token_id = 0;
  CHECK_THROWS_WITH_AS(trainpp::DataCollatorWithPadding{ok}(std::vector<Batch>{Batch{{"tokens", torch::ones({3})}}}),
                       doctest::Contains("example 0 has no 'input_ids'"), Catch);
  std::vector<Batch> ragged = word_examples(2, 1);
  ragged[1]["attention_mask"] = torch::ones({2}, torch::kLong);
  ragged[0]["attention_mask"] = torch::ones({ragged[0].at("input_ids").size(0)}, torch::kLong);
  CHECK_THROWS_WITH_AS(trainpp::DataCollatorWithPadding{ok}(std::move(ragged)),
                       doctest::Contains("'attention_mask' of example 1 has 2 entries"), Catch);
  auto no_mask = mlm_options();
  no_mask.mask_token_id.reset();
  CHECK_THROWS_WITH_AS(trainpp::DataCollatorForLanguageModeling{no_mask}, doctest::Contains("mask_token_id"), Catch);
  auto too_much = mlm_options();
  too_much.mask_replace_prob = 0.95;
  CHECK_THROWS_WITH_AS(trainpp::DataCollatorForLanguageModeling{too_much}, doctest::Contains("must not exceed 1"),
                       Catch);
  CHECK_THROWS_WITH_AS(trainpp::DefaultDataCollator{}(word_examples(2, 1)), doctest::Contains("'input_ids' has shape"),
                       Catch);
}

}  // namespace collators_test

namespace collators_test {

struct ClassifierLike {
  [[nodiscard]] std::vector<std::string> input_names() const { return {"input_ids", "attention_mask", "labels"}; }
};

TEST_CASE("Removing unused columns keeps the model's inputs and labels and says once what it drops") {
  static_assert(trainpp::DeclaresInputNames<ClassifierLike>);
  const trainpp::ScopedLoggerState restore;
  std::vector<std::string> messages;
  trainpp::logger().set_level(trainpp::LogLevel::info);
  trainpp::logger().set_sink([&](trainpp::LogLevel, std::string_view text) { messages.emplace_back(text); });
  trainpp::PaddingOptions padding;
  padding.pad_token_id = 0;
  const trainpp::RemoveUnusedColumns remove(trainpp::DataCollatorWithPadding{padding},
                                            trainpp::signature_columns(ClassifierLike{}.input_names(), {"score"}),
                                            "ClassifierLike", "training");
  auto examples = [] {
    std::vector<Batch> out = word_examples(3, 1);
    for (std::size_t i = 0; i < out.size(); ++i) {
      out[i]["idx"] = torch::tensor(static_cast<std::int64_t>(i));
      out[i]["label"] = torch::tensor(static_cast<std::int64_t>(i % 2));
      out[i]["score"] = torch::tensor(0.5);
      out[i]["length"] = torch::tensor(out[i].at("input_ids").size(0));
    }
    return out;
  };
  const Batch batch = remove(examples());
  CHECK(batch.keys() == std::vector<std::string>{"input_ids", "score", "attention_mask", "labels"});
  const trainpp::RemoveUnusedColumns copy = remove;
  (void)copy(examples());
  REQUIRE(messages.size() == 1);
  CHECK(messages[0].find("The following columns in the training set don't have a corresponding argument in "
                         "`ClassifierLike.forward` and have been ignored: idx, length.") != std::string::npos);
  // Without a model name (HF: without a logger) nothing is said, and nothing to drop says nothing.
  const trainpp::RemoveUnusedColumns quiet(trainpp::DefaultDataCollator{}, {"input_ids"}, "");
  (void)quiet(word_examples(1, 1));
  CHECK(messages.size() == 1);
}

}  // namespace collators_test
