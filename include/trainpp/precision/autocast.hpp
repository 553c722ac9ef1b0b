#pragma once
// Autocast from C++, with the semantics of Python's `torch.autocast` context manager.

#include <trainpp/detail/config.hpp>

#include <ATen/autocast_mode.h>

namespace trainpp {

/// While alive, operations on `device`'s type run in `dtype` where autocast's op lists say so (matmuls
/// and convolutions in the low-precision type, reductions and losses in float32). Exactly what
/// torch.autocast's __enter__/__exit__ do: the previous enabled flag, dtype and cache setting are
/// restored on destruction, nesting is counted, and when the outermost guard of the thread closes the
/// cast cache is cleared, so low-precision copies of weights never outlive the forward that made them
/// (an optimizer step changes the weights in place; a surviving cache would feed the next forward the
/// old values). Not copyable or movable: it is a scope.
class AutocastGuard {
 public:
  AutocastGuard(c10::DeviceType device, c10::ScalarType dtype, bool enabled = true, bool cache_enabled = true);
  AutocastGuard(const AutocastGuard&) = delete;
  AutocastGuard& operator=(const AutocastGuard&) = delete;
  ~AutocastGuard();

 private:
  c10::DeviceType device_;
  bool previous_enabled_;
  c10::ScalarType previous_dtype_;
  bool previous_cache_enabled_;
};

/// True when autocast can run `dtype` on `device`'s type (torch supports bfloat16 and float16 on the
/// CPU and CUDA).
[[nodiscard]] inline bool autocast_supports(c10::DeviceType device, c10::ScalarType dtype) {
  const bool low_precision = dtype == c10::ScalarType::BFloat16 || dtype == c10::ScalarType::Half;
  return low_precision && (device == c10::DeviceType::CPU || device == c10::DeviceType::CUDA);
}

#if TRAINPP_DEFINITIONS

TRAINPP_INLINE AutocastGuard::AutocastGuard(c10::DeviceType device, c10::ScalarType dtype, bool enabled,
                                            bool cache_enabled)
    : device_(device),
      previous_enabled_(at::autocast::is_autocast_enabled(device)),
      previous_dtype_(at::autocast::get_autocast_dtype(device)),
      previous_cache_enabled_(at::autocast::is_autocast_cache_enabled()) {
  at::autocast::set_autocast_enabled(device_, enabled);
  at::autocast::set_autocast_dtype(device_, dtype);
  at::autocast::increment_nesting();
  at::autocast::set_autocast_cache_enabled(cache_enabled);
}

TRAINPP_INLINE AutocastGuard::~AutocastGuard() {
  if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
  at::autocast::set_autocast_enabled(device_, previous_enabled_);
  at::autocast::set_autocast_dtype(device_, previous_dtype_);
  at::autocast::set_autocast_cache_enabled(previous_cache_enabled_);
}

#endif  // TRAINPP_DEFINITIONS

}  // namespace trainpp
