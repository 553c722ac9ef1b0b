// trainpp::Tokenizer against the `tokenizers` library: four tokenizers trained by
// tokenizers_reference.py (GPT-2's byte-level BPE, BERT's WordPiece, Llama's byte-fallback BPE, a
// Unigram) encode ≥ 50,000 generated lines, pairs, truncated and padded batches exactly as the library
// does (ids, type ids, offsets, masks, overflowing windows, decodes); plus tokenizer_config.json and the
// errors for bad files.

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

/// The reference directory (written once per build tree, again when the script changes), or nullopt
/// when the `tokenizers` module is missing.
std::optional<fs::path> reference_dir() {
#ifndef TRAINPP_PYTHON
  return std::nullopt;
#else
  const fs::path script = fs::path(TRAINPP_SOURCE_DIR) / "tests/trainpp/tokenizers/tokenizers_reference.py";
  const fs::path dir = fs::path(TRAINPP_BINARY_DIR) / "tokenizers_reference";
  const fs::path complete = dir / "tokenizers_version";
  if (fs::exists(complete) && fs::last_write_time(complete) >= fs::last_write_time(script)) return dir;
  fs::remove_all(dir);
  const std::string command = fmt::format("'{}' '{}' '{}'", TRAINPP_PYTHON, script.string(), dir.string());
  const int status = std::system(command.c_str());
  if (WIFEXITED(status) && WEXITSTATUS(status) == 77) return std::nullopt;
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) throw trainpp::error("{} failed (status {})", command, status);
  return dir;
#endif
}

struct Record {
  std::string text;
  std::optional<std::string> pair;
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
    for (const auto& r : records) got.push_back(tok.encode(r.text, r.pair ? std::optional<std::string_view>(*r.pair) : std::nullopt));
  } else {
    got = tok.encode_batch(singles, true, 2);
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
  const auto dir = reference_dir();
  if (!dir) TRAINPP_SKIP_TEST("the Python module tokenizers is not installed");
  const fs::path family = *dir / name;
  const auto tok = Tokenizer::from_file(family / "tokenizer.json");
  const auto start = std::chrono::steady_clock::now();
  const std::size_t n = compare_case(tok, family / "corpus.bin");
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  MESSAGE(fmt::format("{}: {} lines identical in {:.2f} s", name, n, seconds));
  CHECK(n >= expected_lines);
  for (const char* extra : {"truncated", "pairs", "pairs_truncated"}) {
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
