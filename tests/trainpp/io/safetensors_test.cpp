// The safetensors reader and writer against the reference implementation (Python's safetensors):
// byte-identical output, both directions of interoperability, every dtype, and a corpus of corrupt
// files (tests/data/io/corrupt/, written by tools/reference/gen_corrupt_safetensors.py).
//
// The tensor recipe below is the one tools/reference/check_safetensors.py uses; its output is committed
// as tests/data/io/python_reference.safetensors, so the byte-level checks run without Python too.

#include <trainpp/io/safetensors.hpp>

#include <doctest/doctest.h>

#include "skip.hpp"
#include <nlohmann/json.hpp>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include <unistd.h>

namespace safetensors_test {

namespace fs = std::filesystem;
using Tensors = std::vector<std::pair<std::string, torch::Tensor>>;

struct Case {
  std::string name, dtype;
  std::vector<std::int64_t> shape;
};

// Keep in step with CASES in tools/reference/check_safetensors.py.
const std::vector<Case>& cases() {
  static const std::vector<Case> all{
      {"bool", "BOOL", {3, 2}},       {"u8", "U8", {7}},
      {"u8_empty", "U8", {0}},        {"i8", "I8", {2, 3}},
      {"i16", "I16", {4}},            {"u16", "U16", {2, 2}},
      {"f16", "F16", {3}},            {"bf16", "BF16", {2, 3}},
      {"i32", "I32", {5}},            {"u32", "U32", {3}},
      {"a_f32", "F32", {2, 3, 4}},    {"f32_scalar", "F32", {}},
      {"f32_empty", "F32", {0, 3}},   {"z_f32", "F32", {1}},
      {"f64", "F64", {3}},            {"i64", "I64", {2, 2}},
      {"i64_scalar", "I64", {}},      {"u64", "U64", {3}},
      {"f8_e4m3", "F8_E4M3", {4}},    {"f8_e5m2", "F8_E5M2", {4}},
      {"f8_e4m3fnuz", "F8_E4M3FNUZ", {3}}, {"f8_e5m2fnuz", "F8_E5M2FNUZ", {3}},
      {"c64", "C64", {2}},
  };
  return all;
}

// The mapping the format and PyTorch agree on, written out independently of the library's table.
torch::ScalarType torch_type(const std::string& dtype) {
  static const std::map<std::string, torch::ScalarType> types{
      {"BOOL", torch::kBool},         {"U8", torch::kUInt8},     {"I8", torch::kInt8},
      {"I16", torch::kInt16},         {"U16", torch::kUInt16},   {"F16", torch::kFloat16},
      {"BF16", torch::kBFloat16},     {"I32", torch::kInt32},    {"U32", torch::kUInt32},
      {"F32", torch::kFloat32},       {"F64", torch::kFloat64},  {"I64", torch::kInt64},
      {"U64", torch::kUInt64},        {"C64", torch::kComplexFloat},
      {"F8_E4M3", torch::kFloat8_e4m3fn},       {"F8_E5M2", torch::kFloat8_e5m2},
      {"F8_E4M3FNUZ", torch::kFloat8_e4m3fnuz}, {"F8_E5M2FNUZ", torch::kFloat8_e5m2fnuz},
      {"F8_E8M0", torch::kFloat8_e8m0fnu},
  };
  return types.at(dtype);
}

// Flat element i: see the recipe in tools/reference/check_safetensors.py.
torch::Tensor recipe_tensor(const std::string& dtype, const std::vector<std::int64_t>& shape) {
  std::int64_t n = 1;
  for (auto d : shape) n *= d;
  const auto type = torch_type(dtype);
  torch::Tensor flat;
  if (dtype == "BOOL") {
    std::vector<std::uint8_t> bytes;
    for (std::int64_t i = 0; i < n; ++i) bytes.push_back(i % 3 == 0);
    flat = torch::from_blob(bytes.data(), {n}, torch::kBool).clone();
  } else if (dtype[0] == 'I' || dtype[0] == 'U') {
    const auto size = static_cast<std::size_t>(c10::elementSize(type));
    std::vector<std::uint8_t> bytes;
    for (std::int64_t i = 0; i < n; ++i) {
      const std::uint64_t v = static_cast<std::uint64_t>(i) * 0x9E3779B97F4A7C15ULL + 0x0123456789ABCDEFULL;
      for (std::size_t b = 0; b < size; ++b) bytes.push_back(static_cast<std::uint8_t>(v >> (8 * b)));
    }
    flat = torch::from_blob(bytes.data(), {n}, type).clone();
  } else {
    std::vector<float> real, imag;
    for (std::int64_t i = 0; i < n; ++i) {
      real.push_back(static_cast<float>(i % 17 - 8) / 4);
      imag.push_back(static_cast<float>(i % 5 - 2));
    }
    flat = torch::tensor(real, torch::kFloat32);
    flat = dtype == "C64" ? torch::complex(flat, torch::tensor(imag, torch::kFloat32)) : flat.to(type);
  }
  return flat.reshape(shape);
}

Tensors recipe() {
  Tensors out;
  for (const auto& c : cases()) out.emplace_back(c.name, recipe_tensor(c.dtype, c.shape));
  return out;
}

// The bytes of the values `t` shows (a lazily conjugated or negated view resolved), row-major.
std::string bytes_of(const torch::Tensor& t) {
  const auto c = t.resolve_conj().resolve_neg().contiguous();
  return std::string(static_cast<const char*>(c.const_data_ptr()), c.nbytes());
}

// Same names, and for each one the same dtype, shape and bytes.
void check_same(const Tensors& got, const Tensors& want) {
  std::map<std::string, torch::Tensor> by_name(got.begin(), got.end());
  REQUIRE(got.size() == want.size());
  for (const auto& [name, w] : want) {
    CAPTURE(name);
    REQUIRE(by_name.contains(name));
    const auto& g = by_name[name];
    CHECK(std::string(c10::toString(g.scalar_type())) == c10::toString(w.scalar_type()));
    CHECK(g.sizes().vec() == w.sizes().vec());
    CHECK(g.device() == torch::Device(torch::kCPU));
    CHECK(g.is_contiguous());
    CHECK(bytes_of(g) == bytes_of(w));
  }
}

std::string reference_path() { return TRAINPP_TEST_DATA_DIR "/io/python_reference.safetensors"; }

std::string shell_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

// The interpreter to run tools/reference/check_safetensors.py with, or nullopt (and a visible message)
// when there is none with safetensors installed.
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
  const auto command = fmt::format("{} {} {} {}{}", shell_quote(interpreter), shell_quote(script), mode,
                                   shell_quote(file.string()), quiet ? " >/dev/null 2>&1" : "");
  return std::system(command.c_str());
}

struct TempDir {
  fs::path path = fs::temp_directory_path() /
                  fmt::format("trainpp-safetensors-test-{}-{}", ::getpid(), std::random_device{}());
  TempDir() { fs::create_directories(path); }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};


TEST_CASE("safetensors: a small file is laid out byte for byte as the format specifies") {
  const Tensors tensors{{"b", torch::tensor({1, -1}, torch::kInt32)}, {"a", torch::tensor(1.5f)}};
  const std::string header =
      R"({"__metadata__":{"format":"pt"},"a":{"dtype":"F32","shape":[],"data_offsets":[0,4]},)"
      R"("b":{"dtype":"I32","shape":[2],"data_offsets":[4,12]}})"
      "      ";  // padded to 144 = 18 * 8 bytes
  const std::string expected = std::string("\x90\0\0\0\0\0\0\0", 8) + header +
                               std::string("\0\0\xc0\x3f\x01\0\0\0\xff\xff\xff\xff", 12);
  CHECK(trainpp::safetensors_serialize(tensors) == expected);

  // No metadata: no "__metadata__" key at all, as Python's save_file(metadata=None) writes.
  const std::string bare = trainpp::safetensors_serialize({{"x", torch::zeros({1}, torch::kUInt8)}}, {});
  CHECK(bare.substr(8, 56) == R"({"x":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}   )");
  CHECK(trainpp::safetensors_deserialize(bare, "bare").metadata.empty());
}

TEST_CASE("safetensors: the writer's output equals the Python writer's, byte for byte") {
  const std::string python_bytes = trainpp::read_file(reference_path());
  const std::string ours = trainpp::safetensors_serialize(recipe());
  CHECK(ours.size() == python_bytes.size());
  CHECK(ours == python_bytes);
}

TEST_CASE("safetensors: reads the file the Python writer wrote") {
  const auto file = trainpp::load_safetensors(reference_path());
  CHECK(file.metadata == std::map<std::string, std::string>{{"format", "pt"}});
  check_same(file.tensors, recipe());
  // Header order: descending dtype, then name.
  REQUIRE(file.tensors.size() == cases().size());
  CHECK(file.tensors.front().first == "u64");
  CHECK(file.tensors[4].first == "c64");
  CHECK(file.tensors[5].first == "a_f32");
  CHECK(file.tensors.back().first == "bool");
}

TEST_CASE("safetensors: every dtype, scalars, empty and non-contiguous tensors survive a round trip") {
  Tensors tensors = recipe();
  tensors.emplace_back("f8_e8m0", torch::tensor({0.25f, 1.0f, 4.0f, 1024.0f}).to(torch::kFloat8_e8m0fnu));
  const auto base = torch::arange(12, torch::kFloat32).reshape({3, 4});
  const auto transposed = base.t();                                  // strides (1, 4)
  const auto strided = torch::arange(20, torch::kInt64).slice(0, 1, 20, 3);  // every third element
  const auto expanded = torch::tensor({7, 8}, torch::kInt16).expand({3, 2});  // stride 0
  const auto conjugated = torch::complex(torch::ones({2}), torch::ones({2})).conj();  // lazy conj bit
  tensors.emplace_back("transposed", transposed);
  tensors.emplace_back("strided", strided);
  tensors.emplace_back("expanded", expanded);
  tensors.emplace_back("conjugated", conjugated);
  REQUIRE_FALSE(transposed.is_contiguous());
  REQUIRE_FALSE(strided.is_contiguous());
  REQUIRE(conjugated.is_conj());

  std::string bytes = trainpp::safetensors_serialize(tensors);
  const auto file = trainpp::safetensors_deserialize(bytes, "round trip");
  bytes.assign(bytes.size(), '\x55');  // the tensors must own their memory, not point into `bytes`
  check_same(file.tensors, tensors);

  std::map<std::string, torch::Tensor> got(file.tensors.begin(), file.tensors.end());
  CHECK(torch::equal(got["transposed"], transposed));
  CHECK(got["transposed"].sizes().vec() == std::vector<std::int64_t>{4, 3});
  CHECK(got["strided"].sizes().vec() == std::vector<std::int64_t>{7});
  CHECK(torch::equal(got["strided"], torch::tensor({1, 4, 7, 10, 13, 16, 19}, torch::kInt64)));
  CHECK(torch::equal(got["expanded"], torch::tensor({7, 8, 7, 8, 7, 8}, torch::kInt16).reshape({3, 2})));
  CHECK(torch::imag(got["conjugated"]).eq(-1).all().item<bool>());
  CHECK(got["f32_scalar"].dim() == 0);
  CHECK(got["f32_scalar"].item<float>() == -2.0f);
  CHECK(got["f32_empty"].numel() == 0);
  CHECK(got["f32_empty"].sizes().vec() == std::vector<std::int64_t>{0, 3});
  CHECK(got["f8_e8m0"].to(torch::kFloat32).equal(torch::tensor({0.25f, 1.0f, 4.0f, 1024.0f})));
}

TEST_CASE("safetensors: metadata round trips, and save_safetensors writes the file atomically") {
  TempDir dir;
  const auto path = dir.path / "m.safetensors";
  const std::map<std::string, std::string> metadata{{"format", "pt"}, {"step", "12"}, {"note", "π ≈ 3.14"}};
  trainpp::save_safetensors(path, {{"w", torch::ones({2, 2})}}, metadata);
  trainpp::save_safetensors(path, {{"w", torch::zeros({3})}}, metadata);  // replaces the first
  CHECK(std::distance(fs::directory_iterator(dir.path), fs::directory_iterator()) == 1);
  const auto file = trainpp::load_safetensors(path);
  CHECK(file.metadata == metadata);
  REQUIRE(file.tensors.size() == 1);
  CHECK(torch::equal(file.tensors[0].second, torch::zeros({3})));

  CHECK_THROWS_WITH_AS(trainpp::load_safetensors(dir.path / "absent.safetensors"),
                       doctest::Contains("absent.safetensors"), trainpp::Error);
}

TEST_CASE("safetensors: the writer rejects what the format cannot hold") {
  auto rejects = [](const Tensors& tensors, const char* phrase) {
    CAPTURE(phrase);
    CHECK_THROWS_WITH_AS((void)trainpp::safetensors_serialize(tensors), doctest::Contains(phrase), trainpp::Error);
  };
  rejects({{"a", torch::ones({1})}, {"a", torch::ones({1})}}, "two tensors named \"a\"");
  rejects({{"__metadata__", torch::ones({1})}}, "reserved");
  rejects({{"c", torch::ones({1}, torch::kComplexDouble)}}, "ComplexDouble");
  rejects({{"u", torch::Tensor()}}, "undefined");
  rejects({{"s", torch::eye(2).to_sparse()}}, "not dense");
  rejects({{std::string("bad\xff"), torch::ones({1})}}, "not valid UTF-8");
}

TEST_CASE("safetensors: every corrupt file is rejected with a message naming it and the problem") {
  const fs::path dir = TRAINPP_TEST_DATA_DIR "/io/corrupt";
  std::ifstream in(dir / "expected.json");
  REQUIRE(in.good());
  const auto expected = nlohmann::json::parse(in);
  REQUIRE(expected.size() >= 40);

  std::size_t checked = 0;
  for (const auto& entry : fs::directory_iterator(dir)) {
    if (entry.path().extension() != ".safetensors") continue;
    const auto name = entry.path().filename().string();
    CAPTURE(name);
    REQUIRE(expected.contains(name));
    const auto phrase = expected[name].get<std::string>();
    CAPTURE(phrase);
    std::string message;
    try {
      (void)trainpp::load_safetensors(entry.path());
    } catch (const trainpp::Error& e) {
      message = e.what();
    }
    CAPTURE(message);
    CHECK(message.find(entry.path().string()) != std::string::npos);
    CHECK(message.find(phrase) != std::string::npos);
    // Through the in-memory entry point too, with its own source name.
    CHECK_THROWS_WITH_AS((void)trainpp::safetensors_deserialize(trainpp::read_file(entry.path()), "<source " + name + ">"),
                         doctest::Contains(("<source " + name + ">").c_str()), trainpp::Error);
    ++checked;
  }
  CHECK(checked == expected.size());
}

TEST_CASE("safetensors: random corruptions of a valid file are rejected cleanly or read, never crash") {
  // Whatever the damage, the reader must answer with trainpp::Error (or a valid file): no other
  // exception, no out-of-bounds read (run under a sanitizer to see those), no hang.
  const std::string original = trainpp::read_file(reference_path());
  std::uint64_t header_size = 0;
  std::memcpy(&header_size, original.data(), 8);
  using namespace std::string_view_literals;
  const auto alphabet = "0123456789[]{},:\" -.eE\\u\xff\x00 "sv;  // NUL included
  std::mt19937_64 rng(20240531);
  int rejected = 0, accepted = 0;
  for (int i = 0; i < 3000; ++i) {
    std::string bytes = original;
    switch (i % 4) {
      case 0:  // one header byte replaced by a JSON-significant character
        bytes[8 + rng() % header_size] = alphabet[rng() % alphabet.size()];
        break;
      case 1:  // a random byte anywhere
        bytes[rng() % bytes.size()] = static_cast<char>(rng());
        break;
      case 2:  // truncated
        bytes.resize(rng() % bytes.size());
        break;
      case 3: {  // the header size changed
        const std::uint64_t n = header_size + (rng() % 64) - 32;
        std::memcpy(bytes.data(), &n, 8);
        break;
      }
    }
    try {
      (void)trainpp::safetensors_deserialize(bytes, "fuzzed");
      ++accepted;
    } catch (const trainpp::Error& e) {
      CHECK(std::string_view(e.what()).starts_with("fuzzed: "));
      ++rejected;
    }
  }
  MESSAGE(rejected << " rejected, " << accepted << " still valid");
  CHECK(rejected > 2000);
}

TEST_CASE("safetensors: Python's safetensors reads what we write and we read what it writes" *
          doctest::test_suite("integration")) {
  const auto interpreter = python();
  if (!interpreter) return;
  TempDir dir;

  // Python -> C++: a fresh file from the reference writer, read here and compared with the recipe.
  const auto from_python = dir.path / "from_python.safetensors";
  REQUIRE(run_checker(*interpreter, "write", from_python) == 0);
  const auto file = trainpp::load_safetensors(from_python);
  CHECK(file.metadata == std::map<std::string, std::string>{{"format", "pt"}});
  check_same(file.tensors, recipe());
  CHECK(trainpp::read_file(from_python) == trainpp::safetensors_serialize(recipe()));

  // C++ -> Python: our file, checked by safetensors.torch.load_file against the same recipe.
  const auto from_cpp = dir.path / "from_cpp.safetensors";
  trainpp::save_safetensors(from_cpp, recipe());
  CHECK(run_checker(*interpreter, "verify", from_cpp) == 0);

  // The checker can fail: one changed value and one missing tensor must each be reported.
  Tensors changed = recipe();
  changed[1].second = changed[1].second.clone();
  changed[1].second[0] += 1;
  trainpp::save_safetensors(from_cpp, changed);
  CHECK(run_checker(*interpreter, "verify", from_cpp, /*quiet=*/true) != 0);
  Tensors fewer = recipe();
  fewer.pop_back();
  trainpp::save_safetensors(from_cpp, fewer);
  CHECK(run_checker(*interpreter, "verify", from_cpp, /*quiet=*/true) != 0);
}

/// This process's resident memory in bytes (/proc/self/statm's second field).
std::int64_t resident_bytes() {
  std::ifstream statm("/proc/self/statm");
  std::int64_t size = 0, resident = 0;
  statm >> size >> resident;
  return resident * ::sysconf(_SC_PAGESIZE);
}

TEST_CASE("reading a large file does not keep its mapped pages resident beside the tensors") {
  TempDir dir;
  const auto path = dir.path / "large.safetensors";
  constexpr std::int64_t mib = 1024 * 1024;
  trainpp::save_safetensors(path, {{"big", torch::ones({48 * mib / 4})}});
  // Every tensor's source pages are dropped once copied: the callback sees each byte range once.
  std::vector<std::pair<std::size_t, std::size_t>> copied;
  const auto bytes = trainpp::read_file(path);
  (void)trainpp::safetensors_deserialize(bytes, "large",
                                         [&](std::size_t begin, std::size_t end) { copied.emplace_back(begin, end); });
  REQUIRE(copied.size() == 1);
  CHECK(copied[0].second - copied[0].first == 48 * mib);
  CHECK(copied[0].second == bytes.size());
  // The mechanism: a mapped, touched file counts in the resident size until released.
  const trainpp::detail::MappedFile file(path);
  std::int64_t sum = 0;
  for (std::size_t i = 0; i < file.bytes().size(); i += 4096) sum += file.bytes()[i];
  CHECK(sum != -1);  // keeps the reads
  const auto touched = resident_bytes();
  file.release(0, file.bytes().size());
  const auto released = resident_bytes();
  CHECK(touched - released > 40 * mib);
}

}  // namespace safetensors_test
