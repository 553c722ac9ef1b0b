#pragma once
// from_pretrained / save_pretrained: Hugging Face model directories, read and written as transformers
// 5 does — config.json (+ generation_config.json for models that generate), and the weights either in
// model.safetensors or split into model-0000k-of-0000n.safetensors with model.safetensors.index.json.
// Generic over the model class, which says what it is (see the PretrainedModel concept below).

#include <trainpp/detail/config.hpp>
#include <trainpp/io/atomic_write.hpp>
#include <trainpp/io/json.hpp>
#include <trainpp/io/model_io.hpp>
#include <trainpp/io/safetensors.hpp>
#include <trainpp/logging.hpp>
#include <trainpp/models/config.hpp>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <concepts>
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <ranges>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

namespace trainpp {

/// The index of a sharded model directory (transformers' SAFE_WEIGHTS_INDEX_NAME).
inline constexpr std::string_view model_weights_index_name = "model.safetensors.index.json";

/// A model class from_pretrained and save_pretrained accept: the module (a TORCH_MODULE's Impl) has
///   required:
///     static constexpr std::string_view model_type;        config.json's "model_type" ("gpt2")
///     static constexpr std::string_view architecture;      the class name written to "architectures"
///     static constexpr std::array<std::string_view, N> required_config_keys;
///     explicit Impl(PretrainedConfig);                      builds the model a config describes
///     const PretrainedConfig& pretrained_config() const;    the config to save (unknown keys kept)
///     std::vector<std::pair<std::string, std::string>> tied_weights() const;
///                                                           {target, source} pairs tied now (the
///                                                           target is not saved, need not be in a file)
///   optional:
///     static constexpr bool can_generate;                   true: save generation_config.json too
///     static constexpr std::array<std::string_view, N> keys_to_ignore_on_load_unexpected;
///                                                           substrings of checkpoint names to drop silently
template <class Impl>
concept PretrainedModule = std::derived_from<Impl, torch::nn::Module> && requires(const Impl& m) {
  { Impl::model_type } -> std::convertible_to<std::string_view>;
  { Impl::architecture } -> std::convertible_to<std::string_view>;
  Impl::required_config_keys;
  { m.pretrained_config() } -> std::convertible_to<const PretrainedConfig&>;
  { m.tied_weights() } -> std::convertible_to<std::vector<std::pair<std::string, std::string>>>;
} && std::constructible_from<Impl, PretrainedConfig>;

namespace detail {

template <class Model>
struct pretrained_impl {
  using type = Model;
};
template <class Model>
  requires requires { typename Model::ContainedType; }
struct pretrained_impl<Model> {
  using type = typename Model::ContainedType;
};

template <class Impl>
consteval bool can_generate() {
  if constexpr (requires { Impl::can_generate; }) return Impl::can_generate;
  else return false;
}

template <class Impl>
bool ignored_on_load(std::string_view name) {
  if constexpr (requires { Impl::keys_to_ignore_on_load_unexpected; }) {
    for (std::string_view key : Impl::keys_to_ignore_on_load_unexpected)
      if (name.find(key) != std::string_view::npos) return true;
  }
  return false;
}

/// "float32", "bfloat16", ... (transformers' config "dtype" strings) and back.
[[nodiscard]] inline std::optional<c10::ScalarType> dtype_from_name(std::string_view name) {
  if (name.starts_with("torch.")) name.remove_prefix(6);
  if (name == "float32" || name == "float") return c10::ScalarType::Float;
  if (name == "bfloat16") return c10::ScalarType::BFloat16;
  if (name == "float16" || name == "half") return c10::ScalarType::Half;
  if (name == "float64" || name == "double") return c10::ScalarType::Double;
  return std::nullopt;
}
[[nodiscard]] inline std::string dtype_name(c10::ScalarType type) {
  switch (type) {
    case c10::ScalarType::Float: return "float32";
    case c10::ScalarType::BFloat16: return "bfloat16";
    case c10::ScalarType::Half: return "float16";
    case c10::ScalarType::Double: return "float64";
    default: throw error("a model of dtype {} cannot be described in config.json", c10::toString(type));
  }
}

/// The model's tensors in the order of PyTorch's state_dict(): module by module (pre-order), each
/// module's own parameters, then its buffers. HF's shard split walks this order.
[[nodiscard]] inline std::vector<std::pair<std::string, torch::Tensor>> state_dict_order(const torch::nn::Module& model) {
  std::vector<std::pair<std::string, torch::Tensor>> out;
  for (const auto& item : model.named_modules("", /*include_self=*/true)) {
    const std::string prefix = item.key().empty() ? "" : item.key() + ".";
    for (const auto& p : item.value()->named_parameters(/*recurse=*/false))
      if (p.value().defined()) out.emplace_back(prefix + p.key(), p.value());
    for (const auto& b : item.value()->named_buffers(/*recurse=*/false))
      if (b.value().defined()) out.emplace_back(prefix + b.key(), b.value());
  }
  return out;
}

[[nodiscard]] inline bool is_shard_file_name(std::string_view name) {
  // model-00001-of-00005.safetensors: transformers' "(.*?)-\d{5}-of-\d{5}" with our prefix.
  constexpr std::string_view prefix = "model-", suffix = ".safetensors";
  if (!name.starts_with(prefix) || !name.ends_with(suffix)) return false;
  name = name.substr(prefix.size(), name.size() - prefix.size() - suffix.size());
  if (name.size() != 14 || name.substr(5, 4) != "-of-") return false;
  return std::ranges::all_of(name.substr(0, 5), ::isdigit) && std::ranges::all_of(name.substr(9), ::isdigit);
}

[[nodiscard]] inline std::string shape_text(c10::IntArrayRef shape) { return fmt::format("[{}]", fmt::join(shape, ", ")); }

}  // namespace detail

/// save_pretrained's max_shard_size: bytes, or text as transformers takes it ("5GB", "500MB", "10KB";
/// units are powers of 1000, the number may have a fraction: int(value * unit)).
class ShardSize {
 public:
  template <std::integral T>
  ShardSize(T bytes) : bytes_(static_cast<std::int64_t>(bytes)) {  // NOLINT: implicit, as transformers' int | str
    if (bytes_ <= 0) throw error("max_shard_size must be positive, got {}", bytes_);
  }
  ShardSize(const char* text) : ShardSize(std::string_view(text)) {}  // NOLINT
  ShardSize(std::string_view text) : bytes_(parse(text)) {}          // NOLINT
  [[nodiscard]] std::int64_t bytes() const { return bytes_; }

 private:
  static std::int64_t parse(std::string_view text) {
    const auto original = text;
    while (!text.empty() && std::isspace(static_cast<unsigned char>(text.front()))) text.remove_prefix(1);
    while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) text.remove_suffix(1);
    if (text.size() < 2) throw error("max_shard_size \"{}\": expected a number and a unit (TB, GB, MB, KB), such as \"5GB\"", original);
    std::string unit(text.substr(text.size() - 2));
    for (auto& c : unit) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    double multiplier = 0;
    if (unit == "TB") multiplier = 1e12;
    else if (unit == "GB") multiplier = 1e9;
    else if (unit == "MB") multiplier = 1e6;
    else if (unit == "KB") multiplier = 1e3;
    else throw error("max_shard_size \"{}\": unit \"{}\" not supported; use TB, GB, MB or KB", original, unit);
    auto number = text.substr(0, text.size() - 2);
    while (!number.empty() && std::isspace(static_cast<unsigned char>(number.back()))) number.remove_suffix(1);
    double value = 0;
    const auto [end, ec] = std::from_chars(number.data(), number.data() + number.size(), value);
    if (ec != std::errc() || end != number.data() + number.size() || !(value > 0))
      throw error("max_shard_size \"{}\": \"{}\" is not a positive number", original, number);
    return static_cast<std::int64_t>(value * multiplier);
  }
  std::int64_t bytes_;
};

/// What from_pretrained found besides the tensors it loaded (transformers' loading info).
struct PretrainedLoadReport {
  std::vector<std::string> missing;     ///< in the model, in no file: left as initialised
  std::vector<std::string> unexpected;  ///< in a file, not in the model: ignored
  std::vector<std::string> mismatched;  ///< "name: [..] in the checkpoint, [..] in the model" (ignore_mismatched_sizes)
  [[nodiscard]] bool clean() const { return missing.empty() && unexpected.empty() && mismatched.empty(); }
};

/// How from_pretrained loads.
struct PretrainedOptions {
  /// The dtype of the model's floating-point tensors; each tensor of the files is cast to it. Unset:
  /// the config's "dtype" (or the older "torch_dtype") as transformers 5 does, float32 when absent.
  std::optional<c10::ScalarType> dtype;
  /// Missing or unexpected tensors are an error (naming them) instead of a warning.
  bool strict = false;
  /// A tensor whose shape differs from the model's is left as initialised, with a warning, instead
  /// of an error naming it, the file and both shapes (transformers' ignore_mismatched_sizes).
  bool ignore_mismatched_sizes = false;
  /// Where the report goes besides the log (may be null).
  PretrainedLoadReport* report = nullptr;
};

namespace detail {

/// The weight files of `dir` and, for a sharded one, the tensors the index places in each.
struct WeightFiles {
  std::vector<std::filesystem::path> files;
  std::unordered_map<std::string, std::string> weight_map;  ///< empty for a single file
  std::filesystem::path index;
};

[[nodiscard]] inline WeightFiles find_weight_files(const std::filesystem::path& dir) {
  WeightFiles out;
  const auto single = dir / model_weights_name;
  if (std::filesystem::is_regular_file(single)) {
    out.files.push_back(single);
    return out;
  }
  out.index = dir / model_weights_index_name;
  if (!std::filesystem::is_regular_file(out.index))
    throw error("{}: no model weights: neither {} nor {} is there", dir.string(), model_weights_name,
                model_weights_index_name);
  const auto index = read_json_file(out.index);
  if (!index.is_object() || !index.contains("weight_map") || !index["weight_map"].is_object())
    throw error("{}: a weights index must be a JSON object with an object \"weight_map\"", out.index.string());
  std::set<std::string> names;
  for (const auto& [tensor, file] : index["weight_map"].items()) {
    if (!file.is_string())
      throw error("{}: weight_map[\"{}\"] must be a file name, got {}", out.index.string(), tensor, file.dump());
    const auto& name = file.get_ref<const std::string&>();
    if (name.empty() || name.find('/') != std::string::npos || name == "." || name == "..")
      throw error("{}: weight_map[\"{}\"] = \"{}\" is not a file name in the directory", out.index.string(), tensor, name);
    out.weight_map.emplace(tensor, name);
    names.insert(name);
  }
  for (const auto& name : names) {
    const auto shard = dir / name;
    if (!std::filesystem::is_regular_file(shard))
      throw error("{}: shard {} named in the index is missing ({})", out.index.string(), name, shard.string());
    out.files.push_back(shard);
  }
  return out;
}

/// The model's generation_config.json as transformers derives it from a config that came without one
/// (GenerationConfig.from_model_config: the token ids, keys equal to the defaults left out).
[[nodiscard]] inline nlohmann::json generation_config_from(const PretrainedConfig& config) {
  nlohmann::json out = {{"_from_model_config", true}, {"output_attentions", false}, {"output_hidden_states", false},
                        {"use_cache", true}};
  for (const char* key : {"bos_token_id", "eos_token_id", "pad_token_id", "decoder_start_token_id"})
    if (config.has(key)) out[key] = config.json().at(key);
  if (config.has("transformers_version")) out["transformers_version"] = config.json().at("transformers_version");
  return out;
}

}  // namespace detail

/// Builds the model a Hugging Face model directory describes and loads its weights.
///
/// Reads `dir`/config.json (its "model_type" must be the class's, its required keys present), builds
/// the model with it, casts it to the dtype (PretrainedOptions::dtype), and copies in the tensors of
/// model.safetensors or, when there is none, of every shard model.safetensors.index.json names. Each
/// file is memory-mapped and its tensors copied (cast) straight into the model's, one file after the
/// other, its pages dropped once copied: the memory used stays near the model's own size. A tied
/// weight (tied_weights(): GPT-2's lm_head.weight with tie_word_embeddings) need not be in the files;
/// if it is, its source wins, as in transformers. Checkpoint tensors matching the class's
/// keys_to_ignore_on_load_unexpected are dropped silently.
///
/// Missing and unexpected tensors are logged as transformers reports them (errors with strict); a
/// shape mismatch is an error naming the tensor, the file and both shapes (a warning with
/// ignore_mismatched_sizes). A bad directory — no config.json or weights, JSON that is not strict
/// JSON, a shard the index names but that is missing, a truncated or corrupt safetensors file, a
/// tensor the index places in a shard that lacks it — is one trainpp::Error naming the file.
template <class Model>
[[nodiscard]] Model from_pretrained(const std::filesystem::path& dir, const PretrainedOptions& options = {}) {
  using Impl = typename detail::pretrained_impl<Model>::type;
  static_assert(PretrainedModule<Impl>,
                "trainpp::from_pretrained<Model>: Model's module must name static model_type, architecture and "
                "required_config_keys, be constructible from a PretrainedConfig, and have pretrained_config() and "
                "tied_weights() (see models/pretrained.hpp)");
  if (!std::filesystem::is_directory(dir)) throw error("{}: not a model directory (no such directory)", dir.string());
  PretrainedConfig config = PretrainedConfig::read(dir / config_name);
  config.expect_model_type(Impl::model_type, Impl::architecture);
  config.require(Impl::required_config_keys);
  if (const auto generation = dir / generation_config_name; std::filesystem::is_regular_file(generation))
    config.generation = read_json_file(generation);

  c10::ScalarType dtype = c10::ScalarType::Float;
  if (options.dtype) {
    dtype = *options.dtype;
  } else {
    for (const char* key : {"dtype", "torch_dtype"}) {
      if (!config.has(key)) continue;
      const auto name = config.get<std::string>(key);
      const auto parsed = detail::dtype_from_name(name);
      if (!parsed) throw error("{}: key \"{}\" is \"{}\", not one of float32, bfloat16, float16, float64", config.source(), key, name);
      dtype = *parsed;
      break;
    }
  }
  // The files are checked before the model is built: a directory without weights costs nothing.
  const auto weights = detail::find_weight_files(dir);

  Model model(std::move(config));
  Impl& impl = *model;
  impl.to(dtype);

  std::unordered_map<std::string, torch::Tensor> targets;
  std::vector<std::string> target_order;
  for (auto& [name, tensor] : detail::named_state(impl)) {
    targets.emplace(name, tensor);
    target_order.push_back(name);
  }
  std::unordered_set<std::string> tied_targets;
  for (const auto& [target, source] : impl.tied_weights()) tied_targets.insert(target);

  PretrainedLoadReport report;
  std::vector<std::string> mismatch_errors;
  std::unordered_set<std::string> loaded;
  std::unordered_set<std::string> found_where_indexed;
  {
    torch::NoGradGuard no_grad;
    for (const auto& path : weights.files) {
      const detail::MappedFile file(path);
      const auto layout = safetensors_layout(file.bytes(), path.string());
      const auto file_name = path.filename().string();
      for (const auto& entry : layout.entries) {
        if (!weights.weight_map.empty()) {
          const auto placed = weights.weight_map.find(entry.name);
          if (placed == weights.weight_map.end() || placed->second != file_name) continue;  // the index decides
          found_where_indexed.insert(entry.name);
        }
        if (tied_targets.contains(entry.name)) continue;
        const auto target = targets.find(entry.name);
        if (target == targets.end()) {
          if (!detail::ignored_on_load<Impl>(entry.name)) report.unexpected.push_back(entry.name);
          continue;
        }
        torch::Tensor& into = target->second;
        if (into.sizes() != c10::IntArrayRef(entry.shape)) {
          const auto line = fmt::format("{}: {} in the checkpoint, {} in the model", entry.name,
                                        detail::shape_text(entry.shape), detail::shape_text(into.sizes()));
          report.mismatched.push_back(line);
          mismatch_errors.push_back(fmt::format("{} ({})", line, path.string()));
          continue;
        }
        // The mapped bytes are read once, cast on the way into the model's own tensor.
        if (entry.end > entry.begin) {
          const auto source = torch::from_blob(const_cast<char*>(layout.buffer + entry.begin), entry.shape,
                                               torch::TensorOptions().dtype(entry.dtype->type));
          into.copy_(source);
        }
        file.release(layout.buffer_offset + entry.begin, layout.buffer_offset + entry.end);
        loaded.insert(entry.name);
      }
    }
  }
  for (const auto& [tensor, file] : weights.weight_map)
    if (!found_where_indexed.contains(tensor))
      throw error("{}: the index places tensor \"{}\" in {}, which does not hold it", weights.index.string(), tensor, file);
  for (const auto& name : target_order)
    if (!loaded.contains(name) && !tied_targets.contains(name)) report.missing.push_back(name);

  const std::string where = dir.string();
  if (!mismatch_errors.empty() && !options.ignore_mismatched_sizes)
    throw error("cannot load {} into {}: shapes differ: {}", where, Impl::architecture, fmt::join(mismatch_errors, "; "));
  if (options.strict && (!report.missing.empty() || !report.unexpected.empty())) {
    std::vector<std::string> parts;
    if (!report.missing.empty()) parts.push_back(fmt::format("missing from the checkpoint: {}", fmt::join(report.missing, ", ")));
    if (!report.unexpected.empty()) parts.push_back(fmt::format("unexpected in the checkpoint: {}", fmt::join(report.unexpected, ", ")));
    throw error("cannot load {} into {} (strict): {}", where, Impl::architecture, fmt::join(parts, "; "));
  }
  // transformers' wording, so that logs read alike.
  if (!report.unexpected.empty())
    warn("Some weights of the model checkpoint at {} were not used when initializing {}: [{}]", where,
         Impl::architecture, fmt::join(report.unexpected, ", "));
  if (!report.missing.empty())
    warn("Some weights of {} were not initialized from the model checkpoint at {} and are newly initialized: [{}]",
         Impl::architecture, where, fmt::join(report.missing, ", "));
  if (!report.mismatched.empty())
    warn("Some weights of {} were not initialized from the model checkpoint at {} and are newly initialized because "
         "the shapes did not match: {}", Impl::architecture, where, fmt::join(report.mismatched, "; "));
  if (options.report != nullptr) *options.report = report;
  return model;
}

/// Saves `model` as a Hugging Face model directory that transformers' from_pretrained (and ours)
/// reads: config.json (its "dtype" and "architectures" set from the model, every other key as the
/// model's config has it), generation_config.json for a model that generates (the one it was loaded
/// with, or derived from the config as transformers does), and the weights — tied targets left out —
/// split as transformers splits them: tensors in state_dict order fill a shard until the next would
/// pass max_shard_size (a tensor larger than that gets a shard of its own); one shard is
/// model.safetensors, several are model-0000k-of-0000n.safetensors with model.safetensors.index.json
/// ({"metadata": {"total_parameters", "total_size"}, "weight_map"}).
///
/// Atomic, as every checkpoint write: the directory is assembled beside `dir` and swapped in whole
/// (io/atomic_write.hpp), so a crash leaves the old directory or the new one. Files of an existing
/// `dir` that this does not write (a tokenizer, a README) are carried over; earlier weight files are not.
template <class Model>
void save_pretrained(const Model& model, const std::filesystem::path& dir, ShardSize max_shard_size = "50GB") {
  using Impl = typename detail::pretrained_impl<Model>::type;
  static_assert(PretrainedModule<Impl>,
                "trainpp::save_pretrained: the model's module must satisfy trainpp::PretrainedModule (see models/pretrained.hpp)");
  const Impl& impl = *model;

  // What to save: state_dict order, tied targets that share their source's storage left out.
  auto state = detail::state_dict_order(impl);
  {
    std::unordered_map<std::string, const torch::Tensor*> by_name;
    for (const auto& [name, tensor] : state) by_name.emplace(name, &tensor);
    std::unordered_set<std::string> drop;
    for (const auto& [target, source] : impl.tied_weights()) {
      const auto t = by_name.find(target), s = by_name.find(source);
      if (t != by_name.end() && s != by_name.end() && t->second->is_alias_of(*s->second)) drop.insert(target);
    }
    std::erase_if(state, [&](const auto& item) { return drop.contains(item.first); });
  }

  // huggingface_hub's split_torch_state_dict_into_shards, step for step.
  const std::int64_t limit = max_shard_size.bytes();
  std::vector<std::vector<std::size_t>> shards;
  std::vector<std::size_t> current;
  std::int64_t current_size = 0, total_size = 0;
  for (std::size_t i = 0; i < state.size(); ++i) {
    const auto size = static_cast<std::int64_t>(state[i].second.nbytes());
    if (size > limit) {
      total_size += size;
      shards.push_back({i});
      continue;
    }
    if (current_size + size > limit) {
      shards.push_back(std::move(current));
      current = {};
      current_size = 0;
    }
    current.push_back(i);
    current_size += size;
    total_size += size;
  }
  if (!current.empty()) shards.push_back(std::move(current));
  if (shards.empty()) shards.emplace_back();

  std::int64_t total_parameters = 0;
  {
    std::unordered_set<const void*> seen;
    for (const auto& p : impl.parameters(/*recurse=*/true))
      if (seen.insert(p.unsafeGetTensorImpl()).second) total_parameters += p.numel();
  }

  PretrainedConfig config = impl.pretrained_config();
  c10::ScalarType model_dtype = c10::ScalarType::Float;
  for (const auto& p : impl.parameters(true))
    if (p.is_floating_point()) {
      model_dtype = p.scalar_type();
      break;
    }
  config.set("dtype", detail::dtype_name(model_dtype));
  config.set("architectures", std::vector<std::string>{std::string(Impl::architecture)});

  const auto staging = make_staging_dir(dir);
  try {
    config.save(staging / config_name);
    if constexpr (detail::can_generate<Impl>()) {
      const auto generation = config.generation.is_object() ? config.generation : detail::generation_config_from(config);
      write_json_file(staging / generation_config_name, generation);
    }
    nlohmann::json weight_map = nlohmann::json::object();
    const auto count = shards.size();
    for (std::size_t k = 0; k < count; ++k) {
      const std::string name =
          count == 1 ? std::string(model_weights_name) : fmt::format("model-{:05d}-of-{:05d}.safetensors", k + 1, count);
      std::vector<std::pair<std::string, torch::Tensor>> tensors;
      for (const auto i : shards[k]) {
        tensors.emplace_back(state[i].first, state[i].second.detach());
        weight_map[state[i].first] = name;
      }
      save_safetensors(staging / name, tensors);
    }
    if (count > 1) {
      const nlohmann::json index = {
          {"metadata", {{"total_parameters", total_parameters}, {"total_size", total_size}}},
          {"weight_map", weight_map}};
      write_json_file(staging / model_weights_index_name, index);
    }

    // What else the directory held stays (hard links: nothing is copied); our own files do not.
    std::error_code ec;
    if (std::filesystem::is_directory(dir, ec)) {
      for (const auto& entry : std::filesystem::directory_iterator(dir)) {
        const auto name = entry.path().filename().string();
        const bool ours = name == config_name || name == generation_config_name || name == model_weights_name ||
                          name == model_weights_index_name || detail::is_shard_file_name(name);
        if (ours || std::filesystem::exists(staging / name)) continue;
        std::filesystem::create_hard_link(entry.path(), staging / name, ec);
        if (ec) {
          ec.clear();
          std::filesystem::copy(entry.path(), staging / name, std::filesystem::copy_options::recursive, ec);
          if (ec) throw error("cannot carry {} over into the saved model: {}", entry.path().string(), ec.message());
        }
      }
    }
    commit_dir(staging, dir);
  } catch (...) {
    std::error_code ignored;
    std::filesystem::remove_all(staging, ignored);
    throw;
  }
}

}  // namespace trainpp
