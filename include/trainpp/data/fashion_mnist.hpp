#pragma once
// FashionMnist: the Fashion-MNIST idx files (Debian's dataset-fashion-mnist) as a Dataset.
// Needs zlib: link the CMake target trainpp::datasets (or -lz). Not part of <trainpp/trainpp.hpp>, so
// that programs without it do not link zlib.

#include <trainpp/detail/config.hpp>
#include <trainpp/data/batch.hpp>
#include <trainpp/data/tensor_dataset.hpp>

#include <zlib.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <limits>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace trainpp {

namespace detail {

/// One idx file (the MNIST family's format): a big-endian header — magic 0x00000800 | type << 8 | ndims,
/// then ndims uint32 sizes — followed by exactly prod(sizes) unsigned bytes. Gzipped or plain (zlib reads
/// a plain file unchanged).
struct IdxFile {
  std::vector<std::int64_t> dims;
  torch::Tensor data;  ///< uint8, shape `dims`
};

/// Reads and validates an unsigned-byte idx file with `ndims` dimensions. Throws trainpp::Error naming
/// `path` and the problem: unreadable, bad gzip data, wrong magic, truncated, or trailing bytes.
[[nodiscard]] inline IdxFile read_idx_ubyte(const std::filesystem::path& path, int ndims) {
  const std::string name = path.string();
  std::error_code ec;
  const auto file_size = std::filesystem::file_size(path, ec);
  if (ec) throw error("cannot read {}: {}", name, ec.message());

  const std::unique_ptr<gzFile_s, int (*)(gzFile)> file(gzopen(name.c_str(), "rb"), &gzclose);
  if (!file) throw error("cannot open {}", name);
  gzbuffer(file.get(), 1 << 17);

  // Reads up to `size` bytes; returns how many. Stops on gzip errors with a message saying so.
  auto read = [&](void* out, std::size_t size) -> std::size_t {
    std::size_t done = 0;
    while (done < size) {
      const auto chunk = static_cast<unsigned>(std::min<std::size_t>(size - done, 1u << 30));
      const int got = gzread(file.get(), static_cast<char*>(out) + done, chunk);
      int status = Z_OK;
      std::string_view message = gzerror(file.get(), &status);
      if (got < 0 || (status != Z_OK && status != Z_STREAM_END)) {
        // zlib prefixes its message with the path, which ours already names.
        if (message.starts_with(name + ": ")) message.remove_prefix(name.size() + 2);
        throw error("{} is not a valid gzip file: {}", name,
                    status == Z_BUF_ERROR ? "the compressed stream is cut short" : message);
      }
      if (got == 0) break;
      done += static_cast<std::size_t>(got);
    }
    return done;
  };

  std::array<unsigned char, 4> word{};
  auto be32 = [&] { return (std::uint32_t{word[0]} << 24) | (std::uint32_t{word[1]} << 16) |
                           (std::uint32_t{word[2]} << 8) | std::uint32_t{word[3]}; };
  const std::uint32_t expected_magic = 0x0800u | static_cast<std::uint32_t>(ndims);
  if (read(word.data(), 4) != 4) throw error("{} is too short to be an idx file", name);
  if (name.ends_with(".gz") && gzdirect(file.get()))
    throw error("{} is named .gz but is not gzip-compressed", name);
  if (be32() != expected_magic)
    throw error("{} has magic number {} but an idx file of unsigned bytes with {} dimension(s) has {}", name,
                be32(), ndims, expected_magic);

  IdxFile idx;
  // Deflate expands at most ~1032:1, so no valid file holds more than this: a header promising more is
  // corrupt, and is reported before anything that size is allocated.
  const auto capacity = static_cast<double>(file_size) * (gzdirect(file.get()) ? 1.0 : 1100.0);
  double payload = 1;
  for (int d = 0; d < ndims; ++d) {
    if (read(word.data(), 4) != 4) throw error("{} is truncated inside its header", name);
    if (be32() == 0 && d > 0) throw error("{}: dimension {} is 0", name, d);
    idx.dims.push_back(be32());
    payload *= be32();
  }
  if (payload > capacity)
    throw error("{}: its header declares sizes [{}] ({} bytes of data), more than the file can hold; it is "
                "truncated or corrupt", name, fmt::join(idx.dims, ", "), payload);

  idx.data = torch::empty(idx.dims, torch::kUInt8);
  const auto bytes = static_cast<std::size_t>(idx.data.numel());
  if (const auto got = read(idx.data.data_ptr<std::uint8_t>(), bytes); got != bytes)
    throw error("{} is truncated: its header declares sizes [{}] ({} bytes of data) but only {} bytes follow",
                name, fmt::join(idx.dims, ", "), bytes, got);
  // Reading past the end also makes zlib verify the gzip trailer (CRC and length).
  unsigned char extra = 0;
  if (read(&extra, 1) != 0)
    throw error("{} has bytes after the {} bytes of data its header [{}] declares", name, bytes,
                fmt::join(idx.dims, ", "));
  return idx;
}

}  // namespace detail

/// Fashion-MNIST (Zalando's 28x28 grey-scale clothing images, 10 classes) as a Dataset of Batch
/// examples: "pixel_values" float [1,28,28], normalized as torchvision's ToTensor + Normalize((0.2860,),
/// (0.3530,)) do, i.e. (x/255 - 0.2860)/0.3530; "labels" int64, 0-dim. The whole split is decoded once
/// at load, so `get`/`gather` are plain indexing.
class FashionMnist {
 public:
  enum class Split { train, test };

  /// Where Debian's dataset-fashion-mnist package installs the files.
  static constexpr const char* default_dir = "/usr/share/datasets/fashion-mnist";
  /// The label names, by class index.
  static constexpr std::array<const char*, 10> class_names{
      "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"};
  /// The normalization torchvision examples use for Fashion-MNIST.
  static constexpr float pixel_mean = 0.2860f;
  static constexpr float pixel_std = 0.3530f;

  /// Reads `{train,t10k}-images-idx3-ubyte[.gz]` and `{train,t10k}-labels-idx1-ubyte[.gz]` from `dir`.
  /// Throws trainpp::Error naming the file and the problem: missing, not gzip or corrupt, wrong magic,
  /// truncated or with trailing bytes, image and label counts that differ, a label outside 0..9.
  [[nodiscard]] static FashionMnist load(const std::string& dir, Split split) {
    const std::string prefix = split == Split::train ? "train" : "t10k";
    const auto images_path = find_file(dir, prefix + "-images-idx3-ubyte");
    const auto labels_path = find_file(dir, prefix + "-labels-idx1-ubyte");
    const detail::IdxFile images = detail::read_idx_ubyte(images_path, 3);
    const detail::IdxFile labels = detail::read_idx_ubyte(labels_path, 1);
    if (images.dims[0] != labels.dims[0])
      throw error("{} holds {} images but {} holds {} labels", images_path.string(), images.dims[0],
                  labels_path.string(), labels.dims[0]);
    const auto* label = labels.data.data_ptr<std::uint8_t>();
    for (std::int64_t i = 0; i < labels.dims[0]; ++i)
      if (label[i] >= class_names.size())
        throw error("{}: label {} of example {} is not a class index (0..9)", labels_path.string(),
                    int{label[i]}, i);
    torch::Tensor pixels = images.data.to(torch::kFloat).div_(255).sub_(pixel_mean).div_(pixel_std).unsqueeze(1);
    return FashionMnist(TensorDataset{{"pixel_values", pixels.contiguous()}, {"labels", labels.data.to(torch::kLong)}});
  }

  [[nodiscard]] std::size_t size() const { return data_.size(); }
  /// The first `count` examples (all of them when `count` is larger): HF scripts' max_*_samples.
  [[nodiscard]] FashionMnist head(std::size_t count) const {
    const auto n = static_cast<std::int64_t>(std::min(count, size()));
    return FashionMnist(TensorDataset{{"pixel_values", images().narrow(0, 0, n)}, {"labels", labels().narrow(0, 0, n)}});
  }
  /// Example i: {"pixel_values": float [1,28,28], "labels": int64 0-dim}.
  [[nodiscard]] Batch get(std::size_t i) const { return data_.get(i); }
  /// Examples `indices`, collated: {"pixel_values": [N,1,28,28], "labels": [N]}; in page-locked memory
  /// with `pin_memory` (see TensorDataset::gather).
  [[nodiscard]] Batch gather(const std::vector<std::int64_t>& indices, bool pin_memory = false) const {
    return data_.gather(indices, pin_memory);
  }
  /// All images, normalized: float [N,1,28,28].
  [[nodiscard]] const torch::Tensor& images() const { return data_.tensors().at("pixel_values"); }
  /// All labels: int64 [N].
  [[nodiscard]] const torch::Tensor& labels() const { return data_.tensors().at("labels"); }

 private:
  explicit FashionMnist(TensorDataset data) : data_(std::move(data)) {}

  static std::filesystem::path find_file(const std::string& dir, const std::string& base) {
    const std::filesystem::path gz = std::filesystem::path(dir) / (base + ".gz");
    const std::filesystem::path plain = std::filesystem::path(dir) / base;
    std::error_code ec;
    if (std::filesystem::is_regular_file(gz, ec)) return gz;
    if (std::filesystem::is_regular_file(plain, ec)) return plain;
    throw error("Fashion-MNIST file not found: {} (nor {}). The Debian package dataset-fashion-mnist provides it "
                "in {}; install it, or pass the directory that holds the idx files",
                gz.string(), plain.string(), default_dir);
  }

  TensorDataset data_;
};

}  // namespace trainpp
