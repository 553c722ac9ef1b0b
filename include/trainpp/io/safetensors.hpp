#pragma once
// safetensors: Hugging Face's file format for named tensors, read and written byte-compatibly with the
// reference implementation (the Rust crate behind Python's `safetensors` package).
//
// Layout: an 8-byte little-endian header size N, N bytes of UTF-8 JSON, then one byte buffer.
//   {"__metadata__": {"format": "pt"},
//    "<name>": {"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]}, ...}
// Offsets are relative to the buffer; tensors are row-major, little-endian and tile the buffer exactly.

#include <trainpp/detail/config.hpp>
#include <trainpp/io/atomic_write.hpp>
#include <trainpp/io/json.hpp>

#include <nlohmann/json.hpp>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <functional>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace trainpp {

static_assert(std::endian::native == std::endian::little,
              "trainpp's safetensors I/O copies tensor bytes as they are in memory, and the format is little-endian");

namespace detail {

/// One safetensors dtype. `rank` is its position in the reference implementation's dtype list: the
/// writer orders tensors by descending rank (which groups them by descending alignment), then by name.
/// `type` is Undefined for formats LibTorch has no tensor type for (sub-byte floats).
struct SafetensorsDtype {
  std::string_view name;
  int rank;
  c10::ScalarType type;
  std::size_t item_size;
};

inline constexpr std::array<SafetensorsDtype, 22> safetensors_dtypes{{
    {"BOOL", 0, c10::ScalarType::Bool, 1},
    {"F4", 1, c10::ScalarType::Undefined, 0},
    {"F6_E2M3", 2, c10::ScalarType::Undefined, 0},
    {"F6_E3M2", 3, c10::ScalarType::Undefined, 0},
    {"U8", 4, c10::ScalarType::Byte, 1},
    {"I8", 5, c10::ScalarType::Char, 1},
    {"F8_E5M2", 6, c10::ScalarType::Float8_e5m2, 1},
    {"F8_E4M3", 7, c10::ScalarType::Float8_e4m3fn, 1},
    {"F8_E8M0", 8, c10::ScalarType::Float8_e8m0fnu, 1},
    {"F8_E4M3FNUZ", 9, c10::ScalarType::Float8_e4m3fnuz, 1},
    {"F8_E5M2FNUZ", 10, c10::ScalarType::Float8_e5m2fnuz, 1},
    {"I16", 11, c10::ScalarType::Short, 2},
    {"U16", 12, c10::ScalarType::UInt16, 2},
    {"F16", 13, c10::ScalarType::Half, 2},
    {"BF16", 14, c10::ScalarType::BFloat16, 2},
    {"I32", 15, c10::ScalarType::Int, 4},
    {"U32", 16, c10::ScalarType::UInt32, 4},
    {"F32", 17, c10::ScalarType::Float, 4},
    {"C64", 18, c10::ScalarType::ComplexFloat, 8},
    {"F64", 19, c10::ScalarType::Double, 8},
    {"I64", 20, c10::ScalarType::Long, 8},
    {"U64", 21, c10::ScalarType::UInt64, 8},
}};

[[nodiscard]] inline const SafetensorsDtype* safetensors_dtype(std::string_view name) {
  for (const auto& d : safetensors_dtypes)
    if (d.name == name) return &d;
  return nullptr;
}

[[nodiscard]] inline const SafetensorsDtype* safetensors_dtype(c10::ScalarType type) {
  for (const auto& d : safetensors_dtypes)
    if (d.type == type && d.type != c10::ScalarType::Undefined) return &d;
  return nullptr;
}

/// The header-size limit of the reference implementation: a larger N is treated as corrupt rather than
/// allocated.
inline constexpr std::uint64_t safetensors_max_header_size = 100'000'000;

/// The header is {name: {key: value or [numbers]}}; anything nested deeper, or an array longer than any
/// real shape, is rejected while parsing, before it can grow a large document.
inline constexpr std::size_t safetensors_max_depth = 3;
inline constexpr std::size_t safetensors_max_array = 1024;

/// Parses the JSON header, rejecting duplicate keys (the JSON library would silently keep one of them)
/// and absurd nesting. Keeps the key order of the file.
[[nodiscard]] nlohmann::ordered_json parse_safetensors_header(std::string_view text, std::string_view source);

/// a * b, or nullopt when it does not fit in `limit`.
[[nodiscard]] inline std::optional<std::uint64_t> checked_mul(std::uint64_t a, std::uint64_t b, std::uint64_t limit) {
  std::uint64_t out = 0;
  if (__builtin_mul_overflow(a, b, &out) || out > limit) return std::nullopt;
  return out;
}

/// One tensor entry of a header, validated.
struct SafetensorsEntry {
  std::string name;
  const SafetensorsDtype* dtype;
  std::vector<std::int64_t> shape;
  std::uint64_t begin, end;
};

[[nodiscard]] SafetensorsEntry parse_safetensors_entry(const std::string& name, const nlohmann::ordered_json& entry,
                                                      std::string_view source);

/// A read-only memory map of a whole file, unmapped on scope exit.
class MappedFile {
 public:
  explicit MappedFile(const std::filesystem::path& path);
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  ~MappedFile() {
    if (data_ != nullptr) ::munmap(const_cast<char*>(data_), size_);
  }
  [[nodiscard]] std::string_view bytes() const { return {data_ == nullptr ? "" : data_, size_}; }

  /// Drops the pages wholly inside bytes [begin, end) from this process's memory: they were copied
  /// out, and the page cache still has them should anything read them again. Without this a large
  /// file counts twice in the resident size while it is read (mapped pages plus the tensors).
  void release(std::size_t begin, std::size_t end) const;

 private:
  const char* data_ = nullptr;
  std::size_t size_ = 0;
};

}  // namespace detail

/// The tensors and metadata of one safetensors file.
struct SafetensorsFile {
  std::map<std::string, std::string> metadata;                 ///< "__metadata__"; empty if absent
  std::vector<std::pair<std::string, torch::Tensor>> tensors;  ///< in header order; CPU, each owning its memory
};

/// Encodes `tensors` as a safetensors file, byte for byte as the reference writer does: tensors ordered
/// by descending dtype (grouping by alignment), then by name; offsets contiguous from 0; the header
/// padded with spaces to a multiple of 8; data row-major little-endian. Tensors may live on any device
/// and have any strides (they are copied to contiguous CPU memory). `metadata` is written as
/// "__metadata__" (omitted when empty). Throws trainpp::Error for duplicate names, the reserved name
/// "__metadata__", names that are not UTF-8, undefined or non-strided tensors, and dtypes the format
/// has no code for (e.g. complex128, quantized).
[[nodiscard]] std::string safetensors_serialize(
    const std::vector<std::pair<std::string, torch::Tensor>>& tensors,
    const std::map<std::string, std::string>& metadata = {{"format", "pt"}});

/// Writes `tensors` to `path` as safetensors (see safetensors_serialize), atomically (see
/// write_file_atomic). Throws trainpp::Error naming the path on failure.
inline void save_safetensors(const std::filesystem::path& path,
                             const std::vector<std::pair<std::string, torch::Tensor>>& tensors,
                             const std::map<std::string, std::string>& metadata = {{"format", "pt"}}) {
  write_file_atomic(path, safetensors_serialize(tensors, metadata));
}

/// The validated layout of a safetensors file held in memory: its metadata, its tensor entries (in
/// header order) and where its data buffer starts. Nothing is copied: `buffer` points into the bytes.
struct SafetensorsLayout {
  std::map<std::string, std::string> metadata;
  std::vector<detail::SafetensorsEntry> entries;
  const char* buffer = nullptr;
  std::size_t buffer_offset = 0;  ///< of `buffer` in the file: 8 + the header size
};

/// Validates a safetensors file held in `bytes` without reading any tensor data: sizes, the header's
/// JSON and structure, dtypes, shapes against offsets (with overflow checks), and that the tensors tile
/// the buffer exactly (no gaps, no overlaps, from 0 to its end). Beyond the format's own rules, headers
/// nesting deeper than {name: {key: [..]}} or holding arrays of more than 1024 elements are refused, so
/// that a hostile header cannot make the parser build a huge document. Throws trainpp::Error with a
/// message starting with `source_name` (the file, for the user) and saying what is wrong.
[[nodiscard]] SafetensorsLayout safetensors_layout(std::string_view bytes, std::string_view source_name);

/// Decodes a safetensors file held in `bytes`, validated first as safetensors_layout says. The
/// returned tensors are copies; `bytes` may be released afterwards (`copied` is told each byte range
/// once its tensor has been copied out).
[[nodiscard]] SafetensorsFile safetensors_deserialize(
    std::string_view bytes, std::string_view source_name,
    const std::function<void(std::size_t begin, std::size_t end)>& copied = {});

/// Reads the safetensors file at `path` (see safetensors_deserialize; errors name the path).
[[nodiscard]] SafetensorsFile load_safetensors(const std::filesystem::path& path);

#if TRAINPP_DEFINITIONS

namespace detail {

TRAINPP_INLINE nlohmann::ordered_json parse_safetensors_header(std::string_view text, std::string_view source) {
  return parse_json_strict<nlohmann::ordered_json>(
      text, source,
      {.max_depth = static_cast<int>(safetensors_max_depth), .max_array = safetensors_max_array,
       .invalid = "safetensors header is not valid UTF-8 JSON"});
}

TRAINPP_INLINE SafetensorsEntry parse_safetensors_entry(const std::string& name,
                                                        const nlohmann::ordered_json& entry,
                                                        std::string_view source) {
  auto fail = [&](std::string_view problem) {
    return error("{}: invalid safetensors header: tensor \"{}\": {}", source, name, problem);
  };
  if (!entry.is_object()) throw fail(fmt::format("expected an object, got {}", entry.type_name()));
  for (const char* key : {"dtype", "shape", "data_offsets"})
    if (!entry.contains(key)) throw fail(fmt::format("missing key \"{}\"", key));
  for (const auto& [key, value] : entry.items())
    if (key != "dtype" && key != "shape" && key != "data_offsets") throw fail(fmt::format("unexpected key \"{}\"", key));

  const auto& dtype_json = entry.at("dtype");
  if (!dtype_json.is_string()) throw fail(fmt::format("\"dtype\" must be a string, got {}", dtype_json.type_name()));
  const auto& dtype_name = dtype_json.get_ref<const std::string&>();
  const SafetensorsDtype* dtype = safetensors_dtype(dtype_name);
  if (dtype == nullptr) throw fail(fmt::format("unknown dtype \"{}\"", dtype_name));
  if (dtype->type == c10::ScalarType::Undefined)
    throw fail(fmt::format("unsupported dtype {} (LibTorch has no tensor type for it)", dtype_name));

  // Every non-negative JSON integer that fits in 64 bits parses as number_unsigned; negative ones,
  // fractions and larger ones do not.
  auto non_negative = [](const nlohmann::ordered_json& v) { return v.is_number_unsigned(); };
  const auto& shape_json = entry.at("shape");
  if (!shape_json.is_array() || !std::ranges::all_of(shape_json, non_negative))
    throw fail(fmt::format("\"shape\" must be an array of non-negative integers, got {}", shape_json.dump()));
  const auto& offsets_json = entry.at("data_offsets");
  if (!offsets_json.is_array() || offsets_json.size() != 2 || !std::ranges::all_of(offsets_json, non_negative))
    throw fail(fmt::format("\"data_offsets\" must be two non-negative integers, got {}", offsets_json.dump()));

  SafetensorsEntry out{name, dtype, {}, offsets_json[0].get<std::uint64_t>(), offsets_json[1].get<std::uint64_t>()};
  if (out.begin > out.end)
    throw fail(fmt::format("data_offsets [{}, {}] begin after end", out.begin, out.end));

  // Checked at every step: a hostile shape can overflow the product even when it ends at zero.
  constexpr auto max_int64 = static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max());
  std::uint64_t numel = 1;
  for (const auto& dim : shape_json) {
    const auto d = dim.get<std::uint64_t>();
    const auto product = checked_mul(numel, d, max_int64);
    if (!product) throw fail(fmt::format("shape {} has too many elements", shape_json.dump()));
    numel = *product;
    out.shape.push_back(static_cast<std::int64_t>(d));
  }
  const auto bytes = checked_mul(numel, dtype->item_size, max_int64);
  if (!bytes) throw fail(fmt::format("shape {} of {} is too large", shape_json.dump(), dtype_name));
  if (*bytes != out.end - out.begin)
    throw fail(fmt::format("shape {} of {} needs {} bytes but data_offsets [{}, {}] span {}", shape_json.dump(),
                           dtype_name, *bytes, out.begin, out.end, out.end - out.begin));
  return out;
}

TRAINPP_INLINE MappedFile::MappedFile(const std::filesystem::path& path) {
  FileDescriptor fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) throw error("cannot read {}: {}", path.string(), errno_message(errno));
  struct ::stat info {};
  if (::fstat(fd.get(), &info) != 0) throw error("cannot read {}: {}", path.string(), errno_message(errno));
  if (!S_ISREG(info.st_mode)) throw error("cannot read {}: not a regular file", path.string());
  size_ = static_cast<std::size_t>(info.st_size);
  if (size_ == 0) return;  // mmap rejects empty ranges; the reader reports the file as too short
  void* p = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd.get(), 0);
  if (p == MAP_FAILED) throw error("cannot read {}: mmap failed: {}", path.string(), errno_message(errno));
  data_ = static_cast<const char*>(p);
}

TRAINPP_INLINE void MappedFile::release(std::size_t begin, std::size_t end) const {
  static const auto page = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
  const std::size_t first = (begin + page - 1) / page * page, last = std::min(end, size_) / page * page;
  if (data_ != nullptr && first < last)
    ::madvise(const_cast<char*>(data_) + first, last - first, MADV_DONTNEED);
}

}  // namespace detail

TRAINPP_INLINE std::string safetensors_serialize(const std::vector<std::pair<std::string, torch::Tensor>>& tensors,
                                                 const std::map<std::string, std::string>& metadata) {
  struct Item {
    const std::string* name;
    torch::Tensor data;
    const detail::SafetensorsDtype* dtype;
  };
  std::vector<Item> items;
  items.reserve(tensors.size());
  std::set<std::string_view> names;
  for (const auto& [name, tensor] : tensors) {
    if (name == "__metadata__") throw error("cannot save a tensor named \"__metadata__\": the name is reserved");
    if (!names.insert(name).second) throw error("cannot save two tensors named \"{}\"", name);
    if (!tensor.defined()) throw error("cannot save tensor \"{}\": it is undefined", name);
    if (tensor.layout() != torch::kStrided)
      throw error("cannot save tensor \"{}\": layout {} is not dense", name, c10::str(tensor.layout()));
    const auto* dtype = detail::safetensors_dtype(tensor.scalar_type());
    if (dtype == nullptr)
      throw error("cannot save tensor \"{}\": dtype {} has no safetensors equivalent", name,
                  c10::toString(tensor.scalar_type()));
    // resolve_conj/resolve_neg: a lazily conjugated or negated view must be written with its visible
    // values, which contiguous() alone would not materialize.
    items.push_back({&name, tensor.detach().to(torch::kCPU).resolve_conj().resolve_neg().contiguous(), dtype});
  }
  std::ranges::stable_sort(items, [](const Item& a, const Item& b) {
    return a.dtype->rank != b.dtype->rank ? a.dtype->rank > b.dtype->rank : *a.name < *b.name;
  });

  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::uint64_t offset = 0;
  for (const auto& item : items) {
    const auto nbytes = static_cast<std::uint64_t>(item.data.nbytes());
    header[*item.name] = {{"dtype", item.dtype->name},
                          {"shape", item.data.sizes().vec()},
                          {"data_offsets", {offset, offset + nbytes}}};
    offset += nbytes;
  }
  std::string text;
  try {
    text = header.dump();
  } catch (const nlohmann::json::exception& e) {
    throw error("cannot save safetensors: a tensor name or metadata string is not valid UTF-8 ({})", e.what());
  }
  text.append((8 - text.size() % 8) % 8, ' ');  // so the buffer starts 8-byte aligned in the file

  std::string out;
  out.reserve(8 + text.size() + offset);
  const auto header_size = static_cast<std::uint64_t>(text.size());
  out.append(reinterpret_cast<const char*>(&header_size), 8);
  out += text;
  for (const auto& item : items)
    if (item.data.nbytes() > 0) out.append(static_cast<const char*>(item.data.const_data_ptr()), item.data.nbytes());
  return out;
}

TRAINPP_INLINE SafetensorsLayout safetensors_layout(std::string_view bytes, std::string_view source_name) {
  const std::string_view source = source_name;
  if (bytes.size() < 8)
    throw error("{}: not a safetensors file: {} bytes, fewer than the 8-byte header size", source, bytes.size());
  std::uint64_t header_size = 0;
  std::memcpy(&header_size, bytes.data(), 8);
  if (header_size > detail::safetensors_max_header_size)
    throw error("{}: safetensors header size {} exceeds the limit of {} bytes", source, header_size,
                detail::safetensors_max_header_size);
  if (header_size > bytes.size() - 8)
    throw error("{}: safetensors header size {} runs past the end of the file ({} bytes)", source, header_size,
                bytes.size());
  const auto header = detail::parse_safetensors_header(bytes.substr(8, header_size), source);
  if (!header.is_object())
    throw error("{}: invalid safetensors header: expected a JSON object, got {}", source, header.type_name());

  SafetensorsLayout out;
  auto& entries = out.entries;
  for (const auto& [name, value] : header.items()) {
    if (name != "__metadata__") {
      entries.push_back(detail::parse_safetensors_entry(name, value, source));
      continue;
    }
    if (!value.is_object())
      throw error("{}: invalid safetensors header: \"__metadata__\" must be an object of strings, got {}", source,
                  value.type_name());
    for (const auto& [key, text] : value.items()) {
      if (!text.is_string())
        throw error("{}: invalid safetensors header: \"__metadata__\" value of \"{}\" must be a string, got {}",
                    source, key, text.type_name());
      out.metadata.emplace(key, text.get<std::string>());
    }
  }

  // The tensors must tile the buffer: sorted by position, each starts where the previous one ended.
  const std::uint64_t buffer_size = bytes.size() - 8 - header_size;
  std::vector<const detail::SafetensorsEntry*> by_offset;
  for (const auto& e : entries) by_offset.push_back(&e);
  std::ranges::sort(by_offset, [](const auto* a, const auto* b) {
    return a->begin != b->begin ? a->begin < b->begin : a->end < b->end;
  });
  std::uint64_t expected = 0;
  const detail::SafetensorsEntry* previous = nullptr;
  for (const auto* e : by_offset) {
    if (e->begin < expected)
      throw error("{}: invalid safetensors header: tensor \"{}\" (bytes [{}, {})) overlaps tensor \"{}\"", source,
                  e->name, e->begin, e->end, previous->name);
    if (e->begin > expected)
      throw error("{}: invalid safetensors header: tensor \"{}\" starts at byte {}, leaving a gap after byte {}",
                  source, e->name, e->begin, expected);
    if (e->end > buffer_size)
      throw error("{}: invalid safetensors header: tensor \"{}\" ends at byte {}, past the data buffer ({} bytes)",
                  source, e->name, e->end, buffer_size);
    expected = e->end;
    previous = e;
  }
  if (expected != buffer_size)
    throw error("{}: invalid safetensors file: the tensors cover {} bytes but the data buffer holds {}", source,
                expected, buffer_size);
  out.buffer_offset = static_cast<std::size_t>(8 + header_size);
  out.buffer = bytes.data() + out.buffer_offset;
  return out;
}

TRAINPP_INLINE SafetensorsFile safetensors_deserialize(
    std::string_view bytes,
    std::string_view source_name,
    const std::function<void(std::size_t begin, std::size_t end)>& copied) {
  auto layout = safetensors_layout(bytes, source_name);
  SafetensorsFile out;
  out.metadata = std::move(layout.metadata);
  out.tensors.reserve(layout.entries.size());
  for (const auto& e : layout.entries) {
    auto tensor = torch::empty(e.shape, torch::TensorOptions().dtype(e.dtype->type));
    if (e.end > e.begin) std::memcpy(tensor.mutable_data_ptr(), layout.buffer + e.begin, e.end - e.begin);
    if (copied) copied(layout.buffer_offset + static_cast<std::size_t>(e.begin), layout.buffer_offset + static_cast<std::size_t>(e.end));
    out.tensors.emplace_back(e.name, std::move(tensor));
  }
  return out;
}

TRAINPP_INLINE SafetensorsFile load_safetensors(const std::filesystem::path& path) {
  const detail::MappedFile file(path);
  return safetensors_deserialize(file.bytes(), path.string(),
                                 [&](std::size_t begin, std::size_t end) { file.release(begin, end); });
}

#endif  // TRAINPP_DEFINITIONS

}  // namespace trainpp
