// The decoders of tokenizer.json, built by Decoder::from_json as Tokenizer builds them, against what
// the `tokenizers` library's decoders give (decoders.X().decode(tokens)) for the same tokens; plus
// the errors for bad "decoder" objects.

#include <trainpp/tokenizers/decoders.hpp>

#include <doctest/doctest.h>

#include <string>
#include <vector>

namespace decoders_test {

using namespace trainpp::tokenizers;
using Tokens = std::vector<std::string>;

Decoder parse(const char* spec) { return Decoder::from_json(nlohmann::json::parse(spec)); }

const std::string fffd = "\xEF\xBF\xBD";
const std::string G = "\xC4\xA0";      // Ġ
const std::string M = "\xE2\x96\x81";  // ▁

TEST_CASE("decoders: ByteLevel maps GPT-2's characters back to bytes and repairs what is not UTF-8") {
  const auto d = parse(R"({"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true})");
  CHECK(d({G + "Hello", G + "wor", "ld", "!"}) == " Hello world!");
  // é is two tokens ('Ã', '©'); a lone lead byte at the end becomes U+FFFD.
  CHECK(d({"\xC3\x83", "\xC2\xA9", G, "\xC3\x83"}) == "\xC3\xA9 " + fffd);
  // A token with a character outside the map (an added token) is kept as it is.
  CHECK(d({"a", "<unk>", G + "b"}) == "a<unk> b");
}

TEST_CASE("decoders: Metaspace turns the replacement into spaces and drops the first token's") {
  CHECK(parse(R"({"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "always", "split": true})")(
            {M + "Hey", M + "friend", "!"}) == "Hey friend!");
  CHECK(parse(R"({"type": "Metaspace", "prepend_scheme": "never"})")({M + "Hey", M + "friend"}) == " Hey friend");
  // As the library does, every replacement in the first token goes, not only the leading one:
  // Metaspace(replacement="_").decode(["_a_b", "_c"]) == 'ab c'
  CHECK(parse(R"({"type": "Metaspace", "replacement": "_", "prepend_scheme": "first"})")({"_a_b", "_c"}) == "ab c");
}

TEST_CASE("decoders: WordPiece joins continuation pieces and cleans up each token") {
  CHECK(parse(R"({"type": "WordPiece", "prefix": "##", "cleanup": false})")({"hel", "##lo", ",", "do", "not"}) == "hello , do not");
  CHECK(parse(R"({"type": "WordPiece"})")({"hel", "##lo", ","}) == "hello,");
  // Cleanup works token by token: " n't" becomes "n't", while " do not" never occurs within one token.
  CHECK(parse(R"({"type": "WordPiece"})")({"do", "n't"}) == "don't");
  CHECK(parse(R"({"type": "WordPiece", "cleanup": false})")({"do", "n't"}) == "do n't");
  CHECK(parse(R"({"type": "WordPiece"})")({"i", "do", "not", "know", ".", "it", "'", "s"}) == "i do not know. it ' s");
  // A custom prefix: '##' is then an ordinary start.
  CHECK(parse(R"({"type": "WordPiece", "prefix": "@@", "cleanup": false})")({"ab", "@@cd", "##e"}) == "abcd ##e");
  CHECK(WordPieceDecoder::clean("a , b ' c 're") == "a, b'c're");
}

TEST_CASE("decoders: ByteFallback, Fuse, Strip and Replace, alone and as Llama's Sequence") {
  // ByteFallback().decode(["<0x41>", "<0x4g>", "<0x42>"]) == 'A<0x4g>B': only two hex digits make a byte.
  CHECK(parse(R"({"type": "ByteFallback"})")({"<0x41>", "<0x4g>", "<0x42>"}) == "A<0x4g>B");
  // Fuse joins without spaces, where no decoder at all joins with them.
  CHECK(parse(R"({"type": "Fuse"})")({"a", " b", "c"}) == "a bc");
  // Strip(content="_", left=2, right=1).decode(["__a__", "_b", "___c"]) == 'a_b_c'
  CHECK(parse(R"({"type": "Strip", "content": "_", "start": 2, "stop": 1})")({"__a__", "_b", "___c"}) == "a_b_c");
  CHECK(parse(R"({"type": "Replace", "pattern": {"String": "\u2581"}, "content": " "})")({M + "a" + M + M + "b"}) == " a  b");
  const auto llama = parse(R"({"type": "Sequence", "decoders": [
      {"type": "Replace", "pattern": {"String": "\u2581"}, "content": " "}, {"type": "ByteFallback"}, {"type": "Fuse"},
      {"type": "Strip", "content": " ", "start": 1, "stop": 0}]})");
  CHECK(llama.steps.size() == 4);
  CHECK(llama({M + "Hi", "<0xC3>", "<0xA9>", M, "<0xFF>", "x"}) == "Hi\xC3\xA9 " + fffd + "x");
}

TEST_CASE("decoders: without a decoder the tokens are joined by spaces") {
  const auto none = Decoder::from_json(nullptr);
  CHECK(none.empty());
  CHECK(none({"a", "##b", M + "c"}) == "a ##b " + M + "c");
  CHECK(none({}).empty());
}

TEST_CASE("decoders: a bad decoder object is an error naming the key") {
  CHECK_THROWS_WITH_AS(parse(R"({"type": "CTC", "pad_token": "<pad>"})"), doctest::Contains("decoder type \"CTC\" is not supported"),
                       trainpp::Error);
  CHECK_THROWS_WITH_AS(parse(R"({"type": "Strip", "content": "ab", "start": 1, "stop": 0})"),
                       doctest::Contains("Strip's \"content\" must be one character"), trainpp::Error);
  CHECK_THROWS_WITH_AS(parse(R"({"type": "Strip", "start": 1})"), doctest::Contains("decoder has no \"content\""), trainpp::Error);
  CHECK_THROWS_WITH_AS(parse(R"({"type": "WordPiece", "cleanup": "no"})"), doctest::Contains("\"cleanup\" has the wrong type"),
                       trainpp::Error);
  CHECK_THROWS_WITH_AS(parse(R"({"type": "Replace", "pattern": " ", "content": ""})"), doctest::Contains("\"pattern\" must be"),
                       trainpp::Error);
}

}  // namespace decoders_test
