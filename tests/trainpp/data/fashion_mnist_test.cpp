// FashionMnist: the real Debian files against numbers read in Python, and the corrupt fixtures of
// tests/data/data/idx (written by tools/reference/gen_idx_fixtures.py).

#include <trainpp/data/data_loader.hpp>
#include <trainpp/data/fashion_mnist.hpp>

#include <doctest/doctest.h>

#include <filesystem>

using trainpp::FashionMnist;

static_assert(trainpp::GatherDataset<FashionMnist>);

namespace fashion_mnist_test {

const std::string fixtures = TRAINPP_TEST_DATA_DIR "/data/idx/";
const bool have_real_files = std::filesystem::exists(std::string(FashionMnist::default_dir) + "/train-labels-idx1-ubyte.gz");

std::vector<std::int64_t> as_vector(const torch::Tensor& t) {
  const auto c = t.contiguous();
  return {c.data_ptr<std::int64_t>(), c.data_ptr<std::int64_t>() + c.numel()};
}

/// The message of the Error that loading fixture `name` throws.
std::string load_error(const std::string& name, FashionMnist::Split split = FashionMnist::Split::train) {
  try {
    (void)FashionMnist::load(fixtures + name, split);
  } catch (const trainpp::Error& e) {
    return e.what();
  }
  return "<no error>";
}

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

/// Back from the normalized value to the byte: x = (b/255 - 0.2860)/0.3530.
torch::Tensor raw_bytes(const torch::Tensor& normalized) {
  return (normalized * FashionMnist::pixel_std + FashionMnist::pixel_mean).mul(255).round().to(torch::kLong);
}


// Reference numbers from Python, reading the same files:
//   lab = np.frombuffer(gzip.open(f).read(), np.uint8, offset=8)
//   img = np.frombuffer(gzip.open(f).read(), np.uint8, offset=16).reshape(-1, 28, 28)
TEST_CASE("Fashion-MNIST train split matches Python's reading of the Debian files" *
          doctest::skip(!have_real_files)) {
  const auto train = FashionMnist::load(FashionMnist::default_dir, FashionMnist::Split::train);
  REQUIRE(train.size() == 60000);
  CHECK(train.images().sizes() == torch::IntArrayRef{60000, 1, 28, 28});
  CHECK(train.images().dtype() == torch::kFloat);
  CHECK(train.labels().sizes() == torch::IntArrayRef{60000});
  CHECK(train.labels().dtype() == torch::kLong);
  CHECK(as_vector(train.labels().slice(0, 0, 12)) == std::vector<std::int64_t>{9, 0, 0, 3, 0, 2, 7, 2, 5, 5, 0, 9});
  CHECK(as_vector(train.labels().slice(0, 59997)) == std::vector<std::int64_t>{3, 0, 5});
  CHECK(as_vector(torch::bincount(train.labels())) == std::vector<std::int64_t>(10, 6000));

  const auto raw = raw_bytes(train.images());
  CHECK(raw[0].sum().item<std::int64_t>() == 76247);
  CHECK(raw[59999].sum().item<std::int64_t>() == 16684);
  CHECK(raw.sum().item<std::int64_t>() == 3431114169LL);
  CHECK(as_vector(raw[0][0][14].slice(0, 10, 16)) == std::vector<std::int64_t>{0, 0, 237, 226, 217, 223});
  // (np.float32(237)/255 - np.float32(0.2860))/np.float32(0.3530) in numpy: the same float ops.
  CHECK(train.images()[0][0][14][12].item<float>() == 1.8226962089538574f);

  const auto example = train.get(0);
  CHECK(example.at("pixel_values").sizes() == torch::IntArrayRef{1, 28, 28});
  CHECK(example.at("labels").dim() == 0);
  CHECK(example.at("labels").item<std::int64_t>() == 9);
  const auto batch = train.gather({3, 0});
  CHECK(batch.at("pixel_values").sizes() == torch::IntArrayRef{2, 1, 28, 28});
  CHECK(as_vector(batch.at("labels")) == std::vector<std::int64_t>{3, 9});
}

TEST_CASE("Fashion-MNIST test split matches Python's reading of the Debian files" *
          doctest::skip(!have_real_files)) {
  const auto test = FashionMnist::load(FashionMnist::default_dir, FashionMnist::Split::test);
  REQUIRE(test.size() == 10000);
  CHECK(as_vector(test.labels().slice(0, 0, 12)) == std::vector<std::int64_t>{9, 2, 1, 1, 6, 1, 4, 6, 5, 7, 4, 5});
  CHECK(as_vector(test.labels().slice(0, 9997)) == std::vector<std::int64_t>{8, 1, 5});
  const auto raw = raw_bytes(test.images());
  CHECK(raw[0].sum().item<std::int64_t>() == 33456);
  CHECK(raw.sum().item<std::int64_t>() == 573469082LL);
  CHECK(test.images()[0][0][14][12].item<float>() == 0.27850914001464844f);
  CHECK(std::string(FashionMnist::class_names[9]) == "Ankle boot");

  // A full evaluation pass in order, as the eval loader gives it.
  trainpp::DataLoaderOptions options;
  options.batch_size = 1000;
  options.num_workers = 2;
  trainpp::DataLoader loader(test, options);
  std::int64_t seen = 0;
  for (const auto& b : loader) {
    CHECK(torch::equal(b.at("labels"), test.labels().slice(0, seen, seen + b.batch_size())));
    seen += b.batch_size();
  }
  CHECK(seen == 10000);
}

TEST_CASE("a valid fixture loads, gzipped or not") {
  for (const char* dir : {"valid", "valid_uncompressed"}) {
    CAPTURE(dir);
    const auto ds = FashionMnist::load(fixtures + dir, FashionMnist::Split::train);
    REQUIRE(ds.size() == 3);
    CHECK(as_vector(ds.labels()) == std::vector<std::int64_t>{9, 0, 3});
    // The fixture's pixel (i, r, c) is (7i + 3r + c) % 256.
    const auto i = torch::arange(3).view({3, 1, 1, 1}), r = torch::arange(28).view({1, 1, 28, 1}),
               c = torch::arange(28).view({1, 1, 1, 28});
    CHECK(torch::equal(raw_bytes(ds.images()), (7 * i + 3 * r + c).remainder(256)));
  }
}

TEST_CASE("missing files name the path and the Debian package") {
  const auto message = load_error("missing_labels");
  CHECK(contains(message, "missing_labels/train-labels-idx1-ubyte.gz"));
  CHECK(contains(message, "dataset-fashion-mnist"));
  CHECK(contains(load_error("valid", FashionMnist::Split::test), "t10k-images-idx3-ubyte"));
  CHECK(contains(load_error("no_such_dir"), "dataset-fashion-mnist"));
}

TEST_CASE("corrupt files are rejected with the file and the problem named") {
  const std::string images = "/train-images-idx3-ubyte.gz", labels = "/train-labels-idx1-ubyte.gz";
  struct Case {
    const char* dir;
    std::string file;
    std::string problem;
  };
  const std::vector<Case> cases{
      {"truncated", images, "truncated"},
      {"truncated_gzip", images, "cut short"},
      {"overclaiming_header", images, "more than the file can hold"},
      {"trailing_bytes", images, "bytes after"},
      {"bad_magic", images, "magic number 2049"},
      {"count_mismatch", labels, "2 labels"},
      {"bad_label", labels, "label 12"},
      {"bad_crc", images, "not a valid gzip file"},
      {"corrupt_deflate", images, "not a valid gzip file"},
      {"not_gzip", images, "not gzip-compressed"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.dir);
    const auto message = load_error(c.dir);
    CAPTURE(message);
    CHECK(contains(message, std::string(c.dir) + c.file));
    CHECK(contains(message, c.problem));
  }
  CHECK(contains(load_error("count_mismatch"), "3 images"));
}

}  // namespace fashion_mnist_test
