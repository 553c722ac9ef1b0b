// The post-processors of tokenizer.json (PostProcessor::from_json) on hand-made encodings, against what
// the `tokenizers` library gives for the same template on a WordLevel tokenizer (ids, type ids, masks,
// offsets, windows); GPT-2's offset trimming; the errors for bad "post_processor" objects.

#include <trainpp/tokenizers/post_processors.hpp>

#include <doctest/doctest.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace post_processors_test {

using namespace trainpp::tokenizers;
using Ids = std::vector<std::uint32_t>;
using OffsetList = std::vector<Offsets>;

PostProcessor parse(const char* spec) { return PostProcessor::from_json(nlohmann::json::parse(spec)); }

/// The encoding of one sequence as a model gives it: word i is token i, at characters 2i..2i+1.
Encoding words(const std::vector<std::pair<std::uint32_t, std::string>>& tokens) {
  Encoding e;
  for (std::uint32_t i = 0; i < tokens.size(); ++i) e.push(tokens[i].first, tokens[i].second, {2 * i, 2 * i + 1}, i, 0, false);
  return e;
}

const char* bert_template = R"({"type": "TemplateProcessing",
    "single": [{"SpecialToken": {"id": "[CLS]", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
               {"SpecialToken": {"id": "[SEP]", "type_id": 0}}],
    "pair": [{"SpecialToken": {"id": "[CLS]", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
             {"SpecialToken": {"id": "[SEP]", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}},
             {"SpecialToken": {"id": "[SEP]", "type_id": 1}}],
    "special_tokens": {"[CLS]": {"id": "[CLS]", "ids": [5], "tokens": ["[CLS]"]},
                       "[SEP]": {"id": "[SEP]", "ids": [6], "tokens": ["[SEP]"]}}})";

TEST_CASE("post_processors: a template puts the special tokens around a pair with their type ids") {
  const auto p = parse(bert_template);
  // TemplateProcessing(single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1") on encode("a b", "c")
  const auto e = p({words({{0, "a"}, {1, "b"}}), words({{2, "c"}})}, true);
  CHECK(e.ids == Ids{5, 0, 1, 6, 2, 6});
  CHECK(e.type_ids == Ids{0, 0, 0, 0, 1, 1});
  CHECK(e.special_tokens_mask == Ids{1, 0, 0, 1, 0, 1});
  CHECK(e.offsets == OffsetList{{0, 0}, {0, 1}, {2, 3}, {0, 0}, {0, 1}, {0, 0}});
  CHECK((e.word_ids == std::vector<std::optional<std::uint32_t>>{std::nullopt, 0, 1, std::nullopt, 0, std::nullopt}));
  CHECK(e.tokens == std::vector<std::string>{"[CLS]", "a", "b", "[SEP]", "c", "[SEP]"});
  CHECK(e.attention_mask == Ids{1, 1, 1, 1, 1, 1});
  CHECK(p.added_tokens(false) == 2);
  CHECK(p.added_tokens(true) == 3);
  // Without special tokens the sequences still get the template's type ids: [0, 1, 2], [0, 0, 1].
  const auto bare = p({words({{0, "a"}, {1, "b"}}), words({{2, "c"}})}, false);
  CHECK(bare.ids == Ids{0, 1, 2});
  CHECK(bare.type_ids == Ids{0, 0, 1});
  CHECK(p({words({{3, "d"}})}, true).ids == Ids{5, 3, 6});
}

TEST_CASE("post_processors: a special token of several ids counts them all") {
  const auto p = parse(R"({"type": "TemplateProcessing",
      "single": [{"SpecialToken": {"id": "<bos>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
      "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 2}}],
      "special_tokens": {"<bos>": {"id": "<bos>", "ids": [7, 8], "tokens": ["<b", "os>"]}}})");
  CHECK(p.added_tokens(false) == 2);
  CHECK(p.added_tokens(true) == 0);
  const auto e = p({words({{0, "a"}})}, true);
  CHECK(e.ids == Ids{7, 8, 0});
  CHECK(e.tokens == std::vector<std::string>{"<b", "os>", "a"});
  CHECK(e.special_tokens_mask == Ids{1, 1, 0});
  CHECK(p({words({{0, "a"}}), words({{1, "b"}})}, true).type_ids == Ids{0, 2});
}

TEST_CASE("post_processors: BertProcessing and RobertaProcessing are their templates") {
  const auto bert = parse(R"({"type": "BertProcessing", "sep": ["[SEP]", 6], "cls": ["[CLS]", 5]})");
  auto e = bert({words({{0, "a"}, {1, "b"}}), words({{2, "c"}})}, true);
  CHECK(e.ids == Ids{5, 0, 1, 6, 2, 6});
  CHECK(e.type_ids == Ids{0, 0, 0, 0, 1, 1});
  // RobertaProcessing(("</s>", 6), ("<s>", 5)) on encode("a b", "c"): </s></s> between, type ids all 0;
  // num_special_tokens_to_add is 4 for a pair, 2 alone.
  const auto roberta = parse(R"({"type": "RobertaProcessing", "sep": ["</s>", 6], "cls": ["<s>", 5],
                                 "trim_offsets": true, "add_prefix_space": true})");
  CHECK(roberta.steps.size() == 2);  // GPT-2's offset trimming, then the template
  e = roberta({words({{0, "a"}, {1, "b"}}), words({{2, "c"}})}, true);
  CHECK(e.ids == Ids{5, 0, 1, 6, 6, 2, 6});
  CHECK(e.type_ids == Ids{0, 0, 0, 0, 0, 0, 0});
  CHECK(roberta.added_tokens(true) == 4);
  CHECK(roberta.added_tokens(false) == 2);
  CHECK(parse(R"({"type": "RobertaProcessing", "sep": ["</s>", 2], "cls": ["<s>", 0], "trim_offsets": false})").steps.size() == 1);
}

TEST_CASE("post_processors: ByteLevel trims spaces out of offsets, the added prefix space excepted") {
  const std::string G = "\xC4\xA0";  // Ġ
  const auto encoding = [&] {
    Encoding e;
    e.push(0, G + "Hello", {0, 5}, 0, 0, false);  // the space was added: its offsets already leave it out
    e.push(1, G + "world", {5, 11}, 1, 0, false);
    e.push(2, "a" + G + G, {11, 14}, 2, 0, false);
    e.push(3, G + G, {14, 16}, 3, 0, false);
    return e;
  };
  const auto p = parse(R"({"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true})");
  CHECK(p.added_tokens(true) == 0);
  CHECK(p({encoding()}, true).offsets == OffsetList{{0, 5}, {6, 11}, {11, 12}, {16, 16}});
  // Without the prefix space the first token's own space is trimmed too.
  CHECK(parse(R"({"type": "ByteLevel", "add_prefix_space": false})")({encoding()}, true).offsets.front() == Offsets{1, 5});
  CHECK(parse(R"({"type": "ByteLevel", "trim_offsets": false})")({encoding()}, true).offsets == encoding().offsets);
  // The overflowing windows are trimmed the same way.
  auto with_window = encoding().range(0, 1);
  with_window.overflowing.push_back(encoding().range(2, 3));
  const auto trimmed = p({with_window}, true);
  REQUIRE(trimmed.overflowing.size() == 1);
  CHECK(trimmed.overflowing[0].offsets == OffsetList{{11, 12}});
}

TEST_CASE("post_processors: overflowing windows get the special tokens too") {
  // encode("a b c d") truncated to 4 with TemplateProcessing: [5, 0, 1, 6], window [5, 2, 3, 6].
  auto a = words({{0, "a"}, {1, "b"}, {2, "c"}, {3, "d"}});
  truncate(a, 2, 0, Direction::right);
  const auto e = parse(bert_template)({a}, true);
  CHECK(e.ids == Ids{5, 0, 1, 6});
  REQUIRE(e.overflowing.size() == 1);
  CHECK(e.overflowing[0].ids == Ids{5, 2, 3, 6});
  CHECK(e.overflowing[0].special_tokens_mask == Ids{1, 0, 0, 1});
}

TEST_CASE("post_processors: windows of the second sequence keep the type id they were encoded with") {
  // TemplateProcessing(single="[CLS] $A", pair="[CLS]:3 $A:3 $B:2") with enable_truncation(3,
  // strategy="only_second") on encode("a", "b c d"): [5, 0, 1] with type ids [3, 3, 2]; the windows
  // [5, 0, 2] and [5, 0, 3] with [3, 3, 1], the second sequence's type id from encoding, not the template's.
  const auto p = parse(R"({"type": "TemplateProcessing",
      "single": [{"SpecialToken": {"id": "[CLS]", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
      "pair": [{"SpecialToken": {"id": "[CLS]", "type_id": 3}}, {"Sequence": {"id": "A", "type_id": 3}},
               {"Sequence": {"id": "B", "type_id": 2}}],
      "special_tokens": {"[CLS]": {"id": "[CLS]", "ids": [5], "tokens": ["[CLS]"]}}})");
  Encoding b;  // as Tokenizer encodes a pair's second text: type id 1
  for (std::uint32_t i = 0; i < 3; ++i) b.push(1 + i, std::string(1, static_cast<char>('b' + i)), {2 * i, 2 * i + 1}, i, 1, false);
  truncate(b, 1, 0, Direction::right);
  const auto e = p({words({{0, "a"}}), b}, true);
  CHECK(e.ids == Ids{5, 0, 1});
  CHECK(e.type_ids == Ids{3, 3, 2});
  REQUIRE(e.overflowing.size() == 2);
  CHECK(e.overflowing[0].ids == Ids{5, 0, 2});
  CHECK(e.overflowing[1].ids == Ids{5, 0, 3});
  CHECK(e.overflowing[0].type_ids == Ids{3, 3, 1});
  CHECK(e.overflowing[1].type_ids == Ids{3, 3, 1});
}

TEST_CASE("post_processors: without a post-processor a pair is just concatenated") {
  const auto none = PostProcessor::from_json(nullptr);
  CHECK(none.empty());
  CHECK(none.added_tokens(true) == 0);
  const auto e = none({words({{0, "a"}}), words({{1, "b"}})}, true);
  CHECK(e.ids == Ids{0, 1});
  CHECK(e.type_ids == Ids{0, 0});
}

TEST_CASE("post_processors: a bad post_processor object is an error naming the key") {
  auto spec = nlohmann::json::parse(bert_template);
  spec["pair"][4]["SpecialToken"]["id"] = "[END]";
  CHECK_THROWS_WITH_AS(PostProcessor::from_json(spec), doctest::Contains("names the special token \"[END]\", missing from"),
                       trainpp::Error);
  spec = nlohmann::json::parse(bert_template);
  spec["single"][1] = {{"Sequence_", {{"id", "A"}}}};
  CHECK_THROWS_WITH_AS(PostProcessor::from_json(spec), doctest::Contains("is neither Sequence nor SpecialToken"), trainpp::Error);
  spec = nlohmann::json::parse(bert_template);
  spec.erase("special_tokens");
  CHECK_THROWS_WITH_AS(PostProcessor::from_json(spec), doctest::Contains("post_processor has no \"special_tokens\""), trainpp::Error);
  CHECK_THROWS_WITH_AS(parse(R"({"type": "BertProcessing", "sep": "[SEP]", "cls": ["[CLS]", 5]})"),
                       doctest::Contains("\"sep\" must be [token, id]"), trainpp::Error);
  CHECK_THROWS_WITH_AS(parse(R"({"type": "Wrapper"})"), doctest::Contains("post_processor type \"Wrapper\" is not supported"),
                       trainpp::Error);
}

}  // namespace post_processors_test
