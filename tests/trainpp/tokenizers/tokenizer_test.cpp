// trainpp::Tokenizer against the `tokenizers` library: four tokenizers trained by
// tokenizers_reference.py (GPT-2's byte-level BPE, BERT's WordPiece, Llama's byte-fallback BPE, a
// Unigram) encode ≥ 50,000 generated lines, pairs, truncated and padded batches exactly as the library
// does (ids, type ids, offsets, masks, overflowing windows, decodes); plus tokenizer_config.json and the
// errors for bad files.

#include <trainpp/tokenizers/tokenizer.hpp>
#include <trainpp/tokenizers.hpp>

#include <doctest/doctest.h>
#include <skip.hpp>

#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <random>
#include <string>
#include <vector>

namespace tokenizers_tokenizer_test {

namespace fs = std::filesystem;
using trainpp::tokenizers::Encoding;
using trainpp::tokenizers::Tokenizer;

/// The reference directory of one family (written once per build tree, again when the script
/// changes; one per family, so that ctest may run the families side by side), or nullopt when the
/// `tokenizers` module is missing.
std::optional<fs::path> reference_dir(const std::string& family) {
#ifndef TRAINPP_PYTHON
  (void)family;
  return std::nullopt;
#else
  const fs::path script = fs::path(TRAINPP_SOURCE_DIR) / "tests/trainpp/tokenizers/tokenizers_reference.py";
  const fs::path dir = fs::path(TRAINPP_BINARY_DIR) / ("tokenizers_reference_" + family);
  const fs::path complete = dir / "tokenizers_version";
  if (fs::exists(complete) && fs::last_write_time(complete) >= fs::last_write_time(script)) return dir;
  fs::remove_all(dir);
  const std::string command = fmt::format("'{}' '{}' '{}' --only {}", TRAINPP_PYTHON, script.string(), dir.string(), family);
  const int status = std::system(command.c_str());
  if (WIFEXITED(status) && WEXITSTATUS(status) == 77) return std::nullopt;
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) throw trainpp::error("{} failed (status {})", command, status);
  return dir;
#endif
}

struct Record {
  std::string text;
  std::optional<std::string> pair;
  bool add_special_tokens = true;
  Encoding expected;
  std::string decoded;
};

class Reader {
 public:
  explicit Reader(const fs::path& path) : in_(path, std::ios::binary) { REQUIRE_MESSAGE(in_.good(), path.string()); }
  bool next(Record& r) {
    std::uint32_t flags = 0;
    if (!in_.read(reinterpret_cast<char*>(&flags), 4)) return false;
    r.text = bytes();
    r.pair.reset();
    if (flags & 1u) r.pair = bytes();
    r.add_special_tokens = (flags & 2u) == 0;
    r.expected = encoding();
    r.decoded = bytes();
    return true;
  }

 private:
  std::ifstream in_;
  std::uint32_t u32() {
    std::uint32_t v = 0;
    in_.read(reinterpret_cast<char*>(&v), 4);
    return v;
  }
  std::vector<std::uint32_t> u32s(std::size_t n) {
    std::vector<std::uint32_t> v(n);
    in_.read(reinterpret_cast<char*>(v.data()), static_cast<std::streamsize>(4 * n));
    return v;
  }
  std::string bytes() {
    std::string s(u32(), '\0');
    in_.read(s.data(), static_cast<std::streamsize>(s.size()));
    return s;
  }
  Encoding encoding() {
    Encoding e;
    const std::size_t n = u32();
    e.ids = u32s(n);
    e.type_ids = u32s(n);
    const auto flat = u32s(2 * n);
    for (std::size_t i = 0; i < n; ++i) e.offsets.emplace_back(flat[2 * i], flat[2 * i + 1]);
    e.attention_mask = u32s(n);
    e.special_tokens_mask = u32s(n);
    const std::size_t k = u32();
    for (std::size_t i = 0; i < k; ++i) e.overflowing.push_back(encoding());
    return e;
  }
};

std::string show(const Encoding& e) {
  std::string out = "ids [";
  for (auto id : e.ids) out += fmt::format("{} ", id);
  out += "] type_ids [";
  for (auto t : e.type_ids) out += fmt::format("{} ", t);
  out += "] offsets [";
  for (auto [a, b] : e.offsets) out += fmt::format("({},{}) ", a, b);
  out += "] attention [";
  for (auto m : e.attention_mask) out += fmt::format("{}", m);
  out += "] special [";
  for (auto m : e.special_tokens_mask) out += fmt::format("{}", m);
  out += fmt::format("] overflowing {}", e.overflowing.size());
  for (const auto& o : e.overflowing) out += " {" + show(o) + "}";
  return out;
}

bool same(const Encoding& a, const Encoding& b) {
  if (a.ids != b.ids || a.type_ids != b.type_ids || a.offsets != b.offsets || a.attention_mask != b.attention_mask ||
      a.special_tokens_mask != b.special_tokens_mask || a.overflowing.size() != b.overflowing.size())
    return false;
  for (std::size_t i = 0; i < a.overflowing.size(); ++i)
    if (!same(a.overflowing[i], b.overflowing[i])) return false;
  return true;
}

/// Compares every record of a case; reports the first mismatch with both outputs. Returns the number
/// of records compared.
std::size_t compare_case(const Tokenizer& tok, const fs::path& path) {
  Reader reader(path);
  std::vector<Record> records;
  for (Record r; reader.next(r);) records.push_back(std::move(r));
  std::vector<std::string> singles;
  bool any_pair = false;
  for (const auto& r : records) {
    singles.push_back(r.text);
    any_pair = any_pair || r.pair.has_value();
  }
  std::vector<Encoding> got;
  if (any_pair) {
    for (const auto& r : records)
      got.push_back(tok.encode(r.text, r.pair ? std::optional<std::string_view>(*r.pair) : std::nullopt, r.add_special_tokens));
  } else {
    got = tok.encode_batch(singles, records.empty() || records[0].add_special_tokens, 2);
  }
  for (std::size_t i = 0; i < records.size(); ++i) {
    const auto& r = records[i];
    const std::string decoded = tok.decode(got[i].ids);
    if (!same(got[i], r.expected) || decoded != r.decoded) {
      FAIL_CHECK(fmt::format("{}: line {} {:?}{}\n  tokenizers: {}\n  trainpp:    {}\n  decode tokenizers: {:?}\n  decode trainpp:    {:?}",
                             path.string(), i, r.text, r.pair ? fmt::format(" + {:?}", *r.pair) : std::string(),
                             show(r.expected), show(got[i]), r.decoded, decoded));
      return i;
    }
  }
  return records.size();
}

void check_family(const std::string& name, std::size_t expected_lines) {
  const auto dir = reference_dir(name);
  if (!dir) TRAINPP_SKIP_TEST("the Python module tokenizers is not installed");
  const fs::path family = *dir / name;
  const auto tok = Tokenizer::from_file(family / "tokenizer.json");
  const auto start = std::chrono::steady_clock::now();
  const std::size_t n = compare_case(tok, family / "corpus.bin");
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  MESSAGE(fmt::format("{}: {} lines identical in {:.2f} s", name, n, seconds));
  CHECK(n >= expected_lines);
  for (const char* extra : {"truncated", "pairs", "pairs_plain", "pairs_truncated"}) {
    const fs::path bin = family / (std::string(extra) + ".bin");
    if (!fs::exists(bin)) continue;
    const fs::path json = fs::exists(family / extra / "tokenizer.json") ? family / extra / "tokenizer.json" : family / "tokenizer.json";
    const std::size_t m = compare_case(Tokenizer::from_file(json), bin);
    MESSAGE(fmt::format("{} {}: {} records identical", name, extra, m));
    CHECK(m >= 3000);
  }
}

TEST_CASE("Tokenizer matches tokenizers: GPT-2 byte-level BPE" * doctest::test_suite("integration")) { check_family("gpt2", 50000); }
TEST_CASE("Tokenizer matches tokenizers: BERT WordPiece" * doctest::test_suite("integration")) { check_family("bert", 50000); }
TEST_CASE("Tokenizer matches tokenizers: Llama byte-fallback BPE" * doctest::test_suite("integration")) { check_family("llama", 50000); }
TEST_CASE("Tokenizer matches tokenizers: Unigram" * doctest::test_suite("integration")) { check_family("unigram", 50000); }

}  // namespace tokenizers_tokenizer_test

namespace tokenizers_tokenizer_unit_test {

namespace fs = std::filesystem;
using namespace trainpp::tokenizers;

// The expectations are what the `tokenizers` library gives for the same JSON (Tokenizer.from_str).
nlohmann::json small_spec() {
  return nlohmann::json::parse(R"({"version": "1.0", "truncation": null, "padding": null,
    "added_tokens": [
      {"id": 9, "content": "<MASK>", "single_word": false, "lstrip": true, "rstrip": true, "normalized": false, "special": true},
      {"id": 10, "content": "cab", "single_word": true, "lstrip": false, "rstrip": false, "normalized": true, "special": false},
      {"id": 11, "content": "CC", "single_word": false, "lstrip": false, "rstrip": false, "normalized": true, "special": false}],
    "normalizer": {"type": "Lowercase"}, "pre_tokenizer": {"type": "WhitespaceSplit"}, "post_processor": null, "decoder": null,
    "model": {"type": "BPE", "dropout": null, "unk_token": "<unk>", "continuing_subword_prefix": null, "end_of_word_suffix": null,
      "fuse_unk": true, "byte_fallback": true, "ignore_merges": false,
      "vocab": {"<unk>": 0, "a": 1, "b": 2, "c": 3, "ab": 4, "bc": 5, "abc": 6, "<0xC3>": 7, "<0xA9>": 8},
      "merges": [["b", "c"], ["a", "b"], ["a", "bc"]]}})");
}

using Ids = std::vector<std::uint32_t>;
using OffsetList = std::vector<Offsets>;

TEST_CASE("Added tokens split first: lstrip and rstrip take spaces, single_word needs word boundaries") {
  const auto tok = Tokenizer::from_json(small_spec());
  auto e = tok.encode("ab  <MASK>  c");
  CHECK(e.ids == Ids{4, 9, 3});
  CHECK(e.offsets == OffsetList{{0, 2}, {2, 12}, {12, 13}});
  e = tok.encode("cab cabc");
  CHECK(e.ids == Ids{10, 3, 6});
  CHECK(e.offsets == OffsetList{{0, 3}, {4, 5}, {5, 8}});
  CHECK(tok.encode("xcab cab").ids == Ids{0, 3, 4, 10});
  CHECK(tok.encode("CCab").ids == Ids{11, 4});  // a normalized added token matches the lowercased text
  CHECK(tok.decode({4, 9, 3}) == "ab c");
  CHECK(tok.decode({4, 9, 3}, false) == "ab <MASK> c");
}

TEST_CASE("Truncation windows with a stride, padding on the left to a multiple") {
  auto tok = Tokenizer::from_json(small_spec());
  tok.truncation = TruncationParams{.max_length = 5, .stride = 1};
  tok.padding = PaddingParams{.pad_to_multiple_of = 8, .direction = Direction::left, .pad_token = "<unk>"};
  const auto e = tok.encode("abc ab a b c a b");
  CHECK(e.ids == Ids{0, 0, 0, 6, 4, 1, 2, 3});
  CHECK(e.attention_mask == Ids{0, 0, 0, 1, 1, 1, 1, 1});
  REQUIRE(e.overflowing.size() == 1);
  CHECK(e.overflowing[0].ids == Ids{0, 0, 0, 0, 0, 3, 1, 2});
  tok.truncation->strategy = TruncationStrategy::only_second;
  CHECK_THROWS_WITH_AS((void)tok.encode("abc ab a b c a b"), doctest::Contains("only_second needs a pair"), trainpp::Error);
}

TEST_CASE("encode_batch on worker threads gives what encode gives") {
  const auto tok = Tokenizer::from_json(small_spec());
  std::vector<std::string> texts;
  for (int i = 0; i < 200; ++i) texts.push_back(std::string(static_cast<std::size_t>(i % 7), 'a') + " cab bc" + std::string(static_cast<std::size_t>(i % 5), 'c'));
  const auto batch = tok.encode_batch(texts, true, 4);
  for (std::size_t i = 0; i < texts.size(); ++i) CHECK(batch[i].ids == tok.encode(texts[i]).ids);
}

TEST_CASE("Decoders: byte fallback, WordPiece cleanup, Strip") {
  // decoders.ByteFallback().decode(["<0x61>", "<0xC3>", "x", "<0xE2>", "<0x82>"]) == '��x��'
  const std::string fffd = "\xEF\xBF\xBD";
  CHECK(Decoder{{ByteFallbackDecoder{}}}({"<0x61>", "<0xC3>", "x", "<0xE2>", "<0x82>"}) == fffd + fffd + "x" + fffd + fffd);
  CHECK(Decoder{{ByteFallbackDecoder{}}}({"<0xC3>", "<0xA9>"}) == "\xC3\xA9");
  CHECK(Decoder{{WordPieceDecoder{}}}({"hel", "##lo", ",", "I", "'", "m", "don", "'", "t"}) == "hello, I ' m don ' t");
  CHECK(Decoder{{StripDecoder{U' ', 1, 1}}}({" a ", " b"}) == "ab");
}

struct TempDir {
  fs::path path = fs::temp_directory_path() / fmt::format("trainpp-tokenizer-test-{}-{}", ::getpid(), std::random_device{}());
  TempDir() { fs::create_directories(path); }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  void write(const std::string& name, const std::string& text) const { std::ofstream(path / name) << text; }
};

TEST_CASE("TokenizerConfig reads tokenizer_config.json, then special_tokens_map.json for what it lacks") {
  TempDir dir;
  dir.write("tokenizer_config.json", R"({"model_max_length": 1000000000000000019884624838656, "padding_side": "left",
    "eos_token": {"content": "</s>", "lstrip": false}, "chat_template": "{{ messages }}"})");
  dir.write("special_tokens_map.json", R"({"eos_token": "<ignored>", "pad_token": "<pad>", "bos_token": "<s>"})");
  auto c = TokenizerConfig::from_directory(dir.path);
  CHECK(c.eos_token == "</s>");
  CHECK(c.pad_token == "<pad>");
  CHECK(c.bos_token == "<s>");
  CHECK_FALSE(c.unk_token.has_value());
  CHECK_FALSE(c.model_max_length.has_value());  // transformers' "no limit" sentinel
  CHECK(c.padding_side == Direction::left);
  dir.write("tokenizer_config.json", R"({"model_max_length": 512, "truncation_side": "middle"})");
  CHECK_THROWS_WITH_AS(TokenizerConfig::from_directory(dir.path), doctest::Contains("\"truncation_side\" must be"), trainpp::Error);
}

TEST_CASE("A bad tokenizer.json is an error naming the file and the key") {
  TempDir dir;
  auto spec = small_spec();
  spec["model"]["type"] = "WordLevel";
  dir.write("tokenizer.json", spec.dump());
  const std::string expected = (dir.path / "tokenizer.json").string() + ": model type \"WordLevel\" is not supported";
  CHECK_THROWS_WITH_AS(Tokenizer::from_file(dir.path / "tokenizer.json"), doctest::Contains(expected.c_str()), trainpp::Error);
  spec = small_spec();
  spec["pre_tokenizer"] = {{"type", "Split"}, {"pattern", {{"Regex", "("}}}, {"behavior", "Isolated"}};
  dir.write("tokenizer.json", spec.dump());
  CHECK_THROWS_WITH_AS(Tokenizer::from_file(dir.path / "tokenizer.json"), doctest::Contains("does not compile"), trainpp::Error);
  spec = small_spec();
  spec["model"].erase("vocab");
  dir.write("tokenizer.json", spec.dump());
  CHECK_THROWS_WITH_AS(Tokenizer::from_file(dir.path / "tokenizer.json"), doctest::Contains("model (BPE) has no \"vocab\""), trainpp::Error);
  CHECK_THROWS_WITH_AS(Tokenizer::from_file(dir.path / "missing.json"), doctest::Contains("missing.json: cannot open"), trainpp::Error);
}

}  // namespace tokenizers_tokenizer_unit_test
