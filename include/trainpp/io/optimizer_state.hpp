#pragma once
// optimizer.safetensors (HF: optimizer.pt): an optimizer's per-parameter state as "state.<i>.<key>"
// tensors for parameter i of its flat parameter list, and its parameter groups as JSON in the
// metadata key "trainpp.optimizer". A sharded policy writes one per process in the same format.

#include <trainpp/detail/config.hpp>
#include <trainpp/io/json.hpp>
#include <trainpp/io/json_fields.hpp>
#include <trainpp/io/safetensors.hpp>
#include <trainpp/optim/param_groups.hpp>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstddef>
#include <filesystem>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

namespace trainpp {

/// What optimizer.safetensors holds: per-parameter state and the groups' hyperparameters.
struct SavedOptimizer {
  OptimizerState state;            ///< one map per parameter of the flat list, as the optimizer's state()
  std::vector<ParamGroup> groups;  ///< lr, initial_lr, weight_decay and names (params left empty)
  std::vector<std::size_t> group_sizes;
};

/// Writes an optimizer's state and its groups' hyperparameters (and parameter names, which the loader
/// checks) to `path`, atomically.
void save_optimizer_state(const std::filesystem::path& path, const OptimizerState& state,
                          const std::vector<ParamGroup>& groups);

/// Reads optimizer.safetensors back. Every tensor name must be "state.<i>.<key>" with i below the
/// recorded parameter count, and the groups must add up to that count; errors name the file.
[[nodiscard]] SavedOptimizer load_optimizer_state(const std::filesystem::path& path);

#if TRAINPP_DEFINITIONS

TRAINPP_INLINE void save_optimizer_state(const std::filesystem::path& path,
                                         const OptimizerState& state,
                                         const std::vector<ParamGroup>& groups) {
  std::vector<std::pair<std::string, torch::Tensor>> tensors;
  for (std::size_t i = 0; i < state.size(); ++i)
    for (const auto& [key, value] : state[i]) tensors.emplace_back(fmt::format("state.{}.{}", i, key), value);
  nlohmann::json meta = {{"version", 1}, {"num_parameters", state.size()}, {"param_groups", nlohmann::json::array()}};
  for (const auto& g : groups)
    meta["param_groups"].push_back({{"lr", g.lr},
                                    {"initial_lr", g.initial_lr},
                                    {"weight_decay", g.weight_decay},
                                    {"num_parameters", g.params.size()},
                                    {"names", g.names}});
  save_safetensors(path, tensors, {{"format", "pt"}, {"trainpp.optimizer", meta.dump()}});
}

TRAINPP_INLINE SavedOptimizer load_optimizer_state(const std::filesystem::path& path) {
  const auto source = path.string();
  auto file = load_safetensors(path);
  const auto meta_it = file.metadata.find("trainpp.optimizer");
  if (meta_it == file.metadata.end())
    throw error("{}: not a trainpp optimizer state: the metadata lacks \"trainpp.optimizer\"", source);
  const auto meta = detail::parse_json_strict(meta_it->second, source + " (metadata trainpp.optimizer)");
  const detail::JsonFields f(meta, source, "the optimizer metadata");
  if (f.integer("version") != 1) throw error("{}: unsupported optimizer state version {}", source, f.integer("version"));
  const auto count = static_cast<std::size_t>(f.integer("num_parameters"));
  // The state holds an entry per parameter, tensors or not: a count no model has would exhaust memory.
  if (constexpr std::size_t max_parameters = std::size_t{1} << 20; count > max_parameters)
    throw error("{}: num_parameters {} is more than any model has (at most {})", source, count, max_parameters);
  const auto& groups = f.at("param_groups");
  if (!groups.is_array()) throw f.fail("param_groups", "an array", groups);

  SavedOptimizer out;
  std::size_t total = 0;
  for (std::size_t i = 0; i < groups.size(); ++i) {
    const detail::JsonFields g(groups[i], source, fmt::format("param_groups[{}]", i));
    ParamGroup group;
    // The loop applies these rates as they are: a negative or non-finite one is corruption.
    auto rate = [&](const char* key) {
      const double v = g.number(key);
      if (!std::isfinite(v) || v < 0) throw g.fail(key, "a finite non-negative number", g.at(key));
      return v;
    };
    group.lr = rate("lr");
    group.initial_lr = rate("initial_lr");
    group.weight_decay = rate("weight_decay");
    const auto n = static_cast<std::size_t>(g.integer("num_parameters"));
    const auto& names = g.at("names");
    if (!names.is_array() || !std::ranges::all_of(names, [](const auto& v) { return v.is_string(); }))
      throw g.fail("names", "an array of strings", names);
    if (!names.empty() && names.size() != n)
      throw error("{}: param_groups[{}] has {} parameters but {} names", source, i, n, names.size());
    for (const auto& name : names) group.names.push_back(name.template get<std::string>());
    if (n > count || total > count - n)
      throw error("{}: the parameter groups hold more parameters than num_parameters ({})", source, count);
    total += n;
    out.group_sizes.push_back(n);
    out.groups.push_back(std::move(group));
  }
  if (total != count)
    throw error("{}: the parameter groups hold {} parameters, num_parameters says {}", source, total, count);

  out.state.resize(count);
  for (auto& [name, tensor] : file.tensors) {
    // "state.<index>.<key>", the index in plain decimal (no leading zero: "state.01.x" would alias "state.1.x")
    const std::string_view n = name;
    const auto dot = n.find('.', 6);
    std::size_t index = 0;
    const bool shaped = n.starts_with("state.") && dot != std::string_view::npos && dot > 6 && dot + 1 < n.size();
    const auto digits = shaped ? n.substr(6, dot - 6) : std::string_view{};
    const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), index);
    if (!shaped || ec != std::errc{} || end != digits.data() + digits.size() || (digits.size() > 1 && digits[0] == '0'))
      throw error("{}: unexpected tensor \"{}\" (optimizer state tensors are named state.<index>.<key>)", source, name);
    if (index >= count)
      throw error("{}: tensor \"{}\" is for parameter #{}, but the optimizer state has {} parameters", source, name,
                  index, count);
    out.state[index][std::string(n.substr(dot + 1))] = std::move(tensor);
  }
  return out;
}

#endif  // TRAINPP_DEFINITIONS

}  // namespace trainpp
