#pragma once
// process_state.safetensors (HF: rng_state.pth): one process's random generators ("rng.cpu",
// "rng.cuda:<i>") and the loop's running sums ("loop.*"), so that a resumed run continues exactly;
// capturing and restoring the generators.

#include <trainpp/detail/config.hpp>
#include <trainpp/io/safetensors.hpp>
#include <trainpp/logging.hpp>

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <filesystem>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

namespace trainpp {

/// The state of one process that a resumed run needs to continue exactly: its random generators and
/// the training loop's running sums.
struct ProcessState {
  torch::Tensor cpu_rng;                ///< the default CPU generator's state
  std::vector<torch::Tensor> cuda_rng;  ///< each CUDA device's default generator state, by index
  torch::Tensor tr_loss;                ///< the loss summed since the last log (float32 scalar, CPU)
  double total_loss_scalar = 0;         ///< the loss summed over the logged steps
  std::int64_t globalstep_last_logged = 0;
  std::int64_t scheduler_steps = 0;     ///< scheduler advances (fewer than global_step when steps were skipped)
  std::int64_t rank = 0;
  std::int64_t world_size = 1;
};

/// The generator states of this process (CPU and every visible CUDA device).
[[nodiscard]] ProcessState capture_rng_state();

/// Sets this process's generators from `s`. A generator state of the wrong size, or one the generator
/// refuses, is an Error; CUDA
/// states for devices this machine lacks (or a checkpoint without them) get a warning, since the run
/// then continues, but not bit for bit.
void restore_rng_state(const ProcessState& s, std::string_view source);

void save_process_state(const std::filesystem::path& path, const ProcessState& s);

/// Reads a process_state file; every expected tensor must be present with its dtype and shape, and
/// nothing else may be; errors name the file.
[[nodiscard]] ProcessState load_process_state(const std::filesystem::path& path);

#if TRAINPP_DEFINITIONS

TRAINPP_INLINE ProcessState capture_rng_state() {
  ProcessState s;
  {
    auto gen = at::detail::getDefaultCPUGenerator();
    std::lock_guard<std::mutex> lock(gen.mutex());
    s.cpu_rng = gen.get_state();
  }
  if (torch::cuda::is_available()) {
    for (std::size_t i = 0; i < static_cast<std::size_t>(torch::cuda::device_count()); ++i) {
      auto gen = at::globalContext().defaultGenerator(c10::Device(c10::kCUDA, static_cast<c10::DeviceIndex>(i)));
      std::lock_guard<std::mutex> lock(gen.mutex());
      s.cuda_rng.push_back(gen.get_state());
    }
  }
  return s;
}

TRAINPP_INLINE void restore_rng_state(const ProcessState& s, std::string_view source) {
  {
    auto gen = at::detail::getDefaultCPUGenerator();
    std::lock_guard<std::mutex> lock(gen.mutex());
    if (s.cpu_rng.numel() != gen.get_state().numel())
      throw error("{}: rng.cpu holds {} bytes, a CPU generator state has {}", source, s.cpu_rng.numel(),
                  gen.get_state().numel());
    try {
      gen.set_state(s.cpu_rng);
    } catch (const c10::Error& e) {  // the right size, but not a state the generator accepts
      throw error("{}: rng.cpu is not a valid CPU generator state: {}", source, e.what_without_backtrace());
    }
  }
  const std::size_t devices = torch::cuda::is_available() ? torch::cuda::device_count() : 0;
  if (s.cuda_rng.size() != devices)
    warn("{} holds the generator states of {} CUDA device(s), this machine has {}: the resumed run will not "
         "repeat the interrupted one's random numbers on the GPU", source, s.cuda_rng.size(), devices);
  for (std::size_t i = 0; i < std::min(devices, s.cuda_rng.size()); ++i) {
    auto gen = at::globalContext().defaultGenerator(c10::Device(c10::kCUDA, static_cast<c10::DeviceIndex>(i)));
    std::lock_guard<std::mutex> lock(gen.mutex());
    if (s.cuda_rng[i].numel() != gen.get_state().numel())
      throw error("{}: rng.cuda:{} holds {} bytes, a CUDA generator state has {}", source, i, s.cuda_rng[i].numel(),
                  gen.get_state().numel());
    try {
      gen.set_state(s.cuda_rng[i]);
    } catch (const c10::Error& e) {
      throw error("{}: rng.cuda:{} is not a valid CUDA generator state: {}", source, i, e.what_without_backtrace());
    }
  }
}

TRAINPP_INLINE void save_process_state(const std::filesystem::path& path, const ProcessState& s) {
  std::vector<std::pair<std::string, torch::Tensor>> tensors{
      {"rng.cpu", s.cpu_rng},
      {"loop.tr_loss", s.tr_loss.defined() ? s.tr_loss.detach().to(torch::kCPU, torch::kFloat32).reshape({})
                                           : torch::zeros({}, torch::kFloat32)},
      {"loop.total_loss_scalar", torch::tensor(s.total_loss_scalar, torch::kFloat64)},
      {"loop.globalstep_last_logged", torch::tensor(s.globalstep_last_logged, torch::kInt64)},
      {"loop.scheduler_steps", torch::tensor(s.scheduler_steps, torch::kInt64)},
  };
  for (std::size_t i = 0; i < s.cuda_rng.size(); ++i) tensors.emplace_back(fmt::format("rng.cuda:{}", i), s.cuda_rng[i]);
  save_safetensors(path, tensors,
                   {{"format", "pt"},
                    {"trainpp.process_state", "1"},
                    {"rank", std::to_string(s.rank)},
                    {"world_size", std::to_string(s.world_size)}});
}

TRAINPP_INLINE ProcessState load_process_state(const std::filesystem::path& path) {
  const auto source = path.string();
  auto file = load_safetensors(path);
  auto meta = [&](const char* key) -> std::int64_t {
    const auto it = file.metadata.find(key);
    std::int64_t value = 0;
    if (it == file.metadata.end()) throw error("{}: not a trainpp process state: the metadata lacks \"{}\"", source, key);
    const auto& text = it->second;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (ec != std::errc{} || end != text.data() + text.size() || value < 0)
      throw error("{}: metadata \"{}\" must be a non-negative integer, got \"{}\"", source, key, text);
    return value;
  };
  if (meta("trainpp.process_state") != 1) throw error("{}: unsupported process state version", source);
  ProcessState s;
  s.rank = meta("rank");
  s.world_size = meta("world_size");
  if (s.world_size < 1 || s.rank >= s.world_size)
    throw error("{}: rank {} is not below world_size {}", source, s.rank, s.world_size);

  std::map<std::string, torch::Tensor> by_name;
  for (auto& [name, tensor] : file.tensors) by_name.emplace(name, std::move(tensor));
  auto take = [&](const std::string& name, c10::ScalarType dtype, std::int64_t dim) {
    const auto it = by_name.find(name);
    if (it == by_name.end()) throw error("{}: the process state lacks the tensor \"{}\"", source, name);
    auto t = std::move(it->second);
    by_name.erase(it);
    if (t.scalar_type() != dtype || t.dim() != dim)
      throw error("{}: tensor \"{}\" must be a {}-dimensional {}, got {} {}", source, name, dim, c10::toString(dtype),
                  t.dim(), c10::toString(t.scalar_type()));
    return t;
  };
  s.cpu_rng = take("rng.cpu", torch::kUInt8, 1);
  s.tr_loss = take("loop.tr_loss", torch::kFloat32, 0);
  s.total_loss_scalar = take("loop.total_loss_scalar", torch::kFloat64, 0).item<double>();
  s.globalstep_last_logged = take("loop.globalstep_last_logged", torch::kInt64, 0).item<std::int64_t>();
  s.scheduler_steps = take("loop.scheduler_steps", torch::kInt64, 0).item<std::int64_t>();
  if (s.globalstep_last_logged < 0 || s.scheduler_steps < 0)
    throw error("{}: loop counters must not be negative", source);
  for (std::size_t i = 0; by_name.contains(fmt::format("rng.cuda:{}", i)); ++i)
    s.cuda_rng.push_back(take(fmt::format("rng.cuda:{}", i), torch::kUInt8, 1));
  if (!by_name.empty()) throw error("{}: unexpected tensor \"{}\" in a process state", source, by_name.begin()->first);
  return s;
}

#endif  // TRAINPP_DEFINITIONS

}  // namespace trainpp
