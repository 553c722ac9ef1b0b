#pragma once
// HF's TrainerMemoryTracker for the host: how the process's resident memory moved in a stage of the
// Trainer (init, train, eval, test) and how far above its end it peaked, as --skip_memory_metrics false
// reports it.

#include <trainpp/detail/config.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <thread>

namespace trainpp::detail {

/// The process's resident set size in bytes (/proc/self/status VmRSS), or -1 where there is none.
std::int64_t resident_set_bytes();

/// Tracks one stage at a time, as HF's tracker: a stage started while another runs (an evaluation
/// inside training) is not tracked and reports nothing. The peak comes from the kernel's high-water
/// mark (VmHWM, reset through /proc/self/clear_refs at the start of a stage), so no thread spins on
/// the host as HF's monitor does; where the mark cannot be reset, a thread samples every millisecond.
class MemoryTracker {
 public:
  explicit MemoryTracker(bool enabled = false) : enabled_(enabled) {}
  MemoryTracker(const MemoryTracker&) = delete;
  MemoryTracker& operator=(const MemoryTracker&) = delete;
  ~MemoryTracker() { stop_sampling(); }

  void set_enabled(bool enabled) { enabled_ = enabled; }
  [[nodiscard]] bool enabled() const { return enabled_; }

  /// Starts tracking `stage` unless another stage is tracked.
  void start(std::string_view stage);
  /// Stops tracking `stage` (nothing when another stage is tracked) and, with `metrics`, adds
  /// `<stage>_mem_cpu_alloc_delta` (end minus start) and `<stage>_mem_cpu_peaked_delta` (peak above the
  /// end, at least 0); the first stage reported also gets init's and `before_init_mem_cpu`.
  void stop_and_update(std::string_view stage, std::map<std::string, double>* metrics);

 private:
  struct Usage {
    std::int64_t begin = 0, end = 0, alloc = 0, peaked = 0;
  };
  void stop_sampling();

  bool enabled_ = false;
  std::string current_;
  std::int64_t begin_ = 0;
  bool kernel_peak_ = false;  ///< the stage's peak is VmHWM (reset at its start), not the sampler's
  std::atomic<bool> sampling_{false};
  std::atomic<std::int64_t> sampled_peak_{0};
  std::thread sampler_;
  std::map<std::string, Usage, std::less<>> usage_;
  bool init_reported_ = false;
};

#if TRAINPP_DEFINITIONS

namespace memory_tracker_detail {
/// A "Name:   123 kB" line of /proc/self/status, in bytes; -1 when absent.
TRAINPP_INLINE std::int64_t status_bytes(std::string_view name) {
  std::FILE* status = std::fopen("/proc/self/status", "r");
  if (status == nullptr) return -1;
  char line[256];
  std::int64_t bytes = -1;
  while (std::fgets(line, sizeof line, status) != nullptr) {
    const std::string_view text(line);
    if (text.starts_with(name) && text.size() > name.size() && text[name.size()] == ':') {
      long long kilobytes = 0;
      if (std::sscanf(line + name.size() + 1, "%lld", &kilobytes) == 1) bytes = kilobytes * 1024;
      break;
    }
  }
  std::fclose(status);
  return bytes;
}
/// Resets VmHWM to the current RSS (Linux 4.0 and later); false where that is not allowed.
TRAINPP_INLINE bool reset_peak() {
  std::FILE* refs = std::fopen("/proc/self/clear_refs", "w");
  if (refs == nullptr) return false;
  const bool written = std::fputs("5", refs) >= 0;
  return std::fclose(refs) == 0 && written;
}
}  // namespace memory_tracker_detail

TRAINPP_INLINE std::int64_t resident_set_bytes() { return memory_tracker_detail::status_bytes("VmRSS"); }

TRAINPP_INLINE void MemoryTracker::start(std::string_view stage) {
  if (!enabled_ || !current_.empty()) return;
  current_ = stage;
  begin_ = resident_set_bytes();
  kernel_peak_ = memory_tracker_detail::reset_peak() && memory_tracker_detail::status_bytes("VmHWM") >= 0;
  if (!kernel_peak_) {
    sampled_peak_ = begin_;
    sampling_ = true;
    sampler_ = std::thread([this] {
      while (sampling_) {
        const auto now = resident_set_bytes();
        if (now > sampled_peak_) sampled_peak_ = now;
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
      }
    });
  }
}

TRAINPP_INLINE void MemoryTracker::stop_sampling() {
  sampling_ = false;
  if (sampler_.joinable()) sampler_.join();
}

TRAINPP_INLINE void MemoryTracker::stop_and_update(std::string_view stage, std::map<std::string, double>* metrics) {
  if (!enabled_ || current_ != stage) return;
  stop_sampling();
  const std::int64_t end = resident_set_bytes();
  const std::int64_t peak = kernel_peak_ ? memory_tracker_detail::status_bytes("VmHWM") : sampled_peak_.load();
  usage_[current_] = {.begin = begin_, .end = end, .alloc = end - begin_, .peaked = std::max<std::int64_t>(0, peak - end)};
  current_.clear();
  if (metrics == nullptr) return;
  std::string stages[2] = {"", std::string(stage)};
  if (!init_reported_) {
    stages[0] = "init";
    init_reported_ = true;
  }
  for (const auto& name : stages) {
    const auto it = usage_.find(name);
    if (name.empty() || it == usage_.end()) continue;
    (*metrics)[name + "_mem_cpu_alloc_delta"] = static_cast<double>(it->second.alloc);
    (*metrics)[name + "_mem_cpu_peaked_delta"] = static_cast<double>(it->second.peaked);
  }
  if (!stages[0].empty()) {
    if (const auto it = usage_.find("init"); it != usage_.end())
      (*metrics)["before_init_mem_cpu"] = static_cast<double>(it->second.begin);
  }
}

#endif  // TRAINPP_DEFINITIONS

}  // namespace trainpp::detail
