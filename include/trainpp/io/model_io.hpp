#pragma once
// Model weights as Hugging Face saves a plain nn.Module: every parameter and buffer under its dotted
// name, in <dir>/model.safetensors with metadata {"format": "pt"}. Python's
// `model.load_state_dict(safetensors.torch.load_file(...))` reads what save_model writes, and
// load_model reads what Python saves, as long as the module trees name their members alike.

#include <trainpp/detail/config.hpp>
#include <trainpp/io/atomic_write.hpp>
#include <trainpp/io/safetensors.hpp>

#include <filesystem>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace trainpp {

/// The file name save_model writes and load_model looks for in a directory (HF's SAFE_WEIGHTS_NAME).
inline constexpr std::string_view model_weights_name = "model.safetensors";

namespace detail {

/// Every defined parameter, then every defined buffer, of `model` and its submodules, under dotted names.
[[nodiscard]] std::vector<std::pair<std::string, torch::Tensor>> named_state(const torch::nn::Module& model);

[[nodiscard]] std::string describe_tensor(const torch::Tensor& t);

}  // namespace detail

/// Every parameter and buffer of `model` (recursively, under named_parameters()/named_buffers() names),
/// detached and on the CPU: what save_model writes. Tensors already on the CPU are shared, not copied.
[[nodiscard]] std::vector<std::pair<std::string, torch::Tensor>> state_dict(const torch::nn::Module& model);

/// Writes state_dict(model) to `dir`/model.safetensors with metadata {"format": "pt"}, creating `dir`
/// if needed; the file is replaced atomically. Throws trainpp::Error on failure.
void save_model(const torch::nn::Module& model, const std::filesystem::path& dir);

/// What load_model found besides the tensors it loaded.
struct LoadReport {
  std::vector<std::string> missing;     ///< in the model, not in the file (model order)
  std::vector<std::string> unexpected;  ///< in the file, not in the model (file order)
  std::vector<std::string> mismatched;  ///< "name: shape [..] (model) vs [..] (file)" or the same for dtype
  [[nodiscard]] bool clean() const { return missing.empty() && unexpected.empty() && mismatched.empty(); }
};

/// Copies the tensors of a safetensors file into `model`'s parameters and buffers of the same name, on
/// their current devices and without recording gradients. `file_or_dir` is the file or a directory
/// holding model.safetensors. strict: any missing, unexpected or mismatched (shape or dtype) tensor is
/// an Error that lists them all, with shapes and dtypes, and names the file; nothing is copied then.
/// Not strict: the tensors that match are copied and the report lists the rest.
LoadReport load_model(torch::nn::Module& model, const std::filesystem::path& file_or_dir, bool strict = true);

#if TRAINPP_DEFINITIONS

namespace detail {

TRAINPP_INLINE std::vector<std::pair<std::string, torch::Tensor>> named_state(const torch::nn::Module& model) {
  std::vector<std::pair<std::string, torch::Tensor>> out;
  for (const auto& item : model.named_parameters(/*recurse=*/true))
    if (item.value().defined()) out.emplace_back(item.key(), item.value());
  for (const auto& item : model.named_buffers(/*recurse=*/true))
    if (item.value().defined()) out.emplace_back(item.key(), item.value());
  return out;
}

TRAINPP_INLINE std::string describe_tensor(const torch::Tensor& t) {
  return fmt::format("[{}] {}", fmt::join(t.sizes(), ", "), c10::toString(t.scalar_type()));
}

}  // namespace detail

TRAINPP_INLINE std::vector<std::pair<std::string, torch::Tensor>> state_dict(const torch::nn::Module& model) {
  auto out = detail::named_state(model);
  for (auto& [name, tensor] : out) tensor = tensor.detach().to(torch::kCPU);
  return out;
}

TRAINPP_INLINE void save_model(const torch::nn::Module& model, const std::filesystem::path& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) throw error("cannot create directory {}: {}", dir.string(), ec.message());
  save_safetensors(dir / model_weights_name, state_dict(model));
}

TRAINPP_INLINE LoadReport load_model(torch::nn::Module& model, const std::filesystem::path& file_or_dir, bool strict) {
  const auto path = std::filesystem::is_directory(file_or_dir) ? file_or_dir / model_weights_name : file_or_dir;
  const SafetensorsFile file = load_safetensors(path);
  std::unordered_map<std::string_view, const torch::Tensor*> in_file;
  for (const auto& [name, tensor] : file.tensors) in_file.emplace(name, &tensor);

  const auto targets = detail::named_state(model);
  LoadReport report;
  std::vector<std::string> missing_detail, unexpected_detail;
  std::vector<std::pair<torch::Tensor, const torch::Tensor*>> copies;
  std::unordered_map<std::string_view, bool> in_model;
  for (const auto& [name, target] : targets) {
    in_model.emplace(name, true);
    const auto found = in_file.find(name);
    if (found == in_file.end()) {
      report.missing.push_back(name);
      missing_detail.push_back(fmt::format("{} {}", name, detail::describe_tensor(target)));
      continue;
    }
    const torch::Tensor& source = *found->second;
    if (target.sizes() != source.sizes()) {
      report.mismatched.push_back(
          fmt::format("{}: shape [{}] (model) vs [{}] (file)", name, fmt::join(target.sizes(), ", "),
                      fmt::join(source.sizes(), ", ")));
    } else if (target.scalar_type() != source.scalar_type()) {
      report.mismatched.push_back(fmt::format("{}: dtype {} (model) vs {} (file)", name,
                                              c10::toString(target.scalar_type()),
                                              c10::toString(source.scalar_type())));
    } else {
      copies.emplace_back(target, &source);
    }
  }
  for (const auto& [name, tensor] : file.tensors) {
    if (in_model.contains(name)) continue;
    report.unexpected.push_back(name);
    unexpected_detail.push_back(fmt::format("{} {}", name, detail::describe_tensor(tensor)));
  }

  if (strict && !report.clean()) {
    std::vector<std::string> parts;
    if (!report.missing.empty())
      parts.push_back(fmt::format("{} missing from the file: {}", report.missing.size(), fmt::join(missing_detail, ", ")));
    if (!report.unexpected.empty())
      parts.push_back(fmt::format("{} unexpected in the file: {}", report.unexpected.size(),
                                  fmt::join(unexpected_detail, ", ")));
    if (!report.mismatched.empty())
      parts.push_back(fmt::format("{} mismatched: {}", report.mismatched.size(), fmt::join(report.mismatched, "; ")));
    throw error("cannot load {} into the model (strict): {}", path.string(), fmt::join(parts, "; "));
  }

  torch::NoGradGuard no_grad;
  for (auto& [target, source] : copies) target.copy_(*source);
  return report;
}

#endif  // TRAINPP_DEFINITIONS

}  // namespace trainpp
