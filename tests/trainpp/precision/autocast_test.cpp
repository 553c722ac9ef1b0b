// AutocastGuard: autocast really on inside (a matmul's output dtype), the previous state back outside,
// nesting counted, and the cast cache cleared when the outermost guard closes.

#include <trainpp/precision/autocast.hpp>

#include <doctest/doctest.h>

namespace autocast_test {

/// doctest prints strings, not c10::ScalarType.
std::string dt(c10::ScalarType t) { return c10::toString(t); }

TEST_CASE("AutocastGuard turns autocast on for its scope and restores the previous state") {
  const auto a = torch::randn({4, 4}), b = torch::randn({4, 4});
  REQUIRE(!at::autocast::is_autocast_enabled(c10::DeviceType::CPU));
  const auto outer_dtype = at::autocast::get_autocast_dtype(c10::DeviceType::CPU);
  for (const auto dtype : {torch::kBFloat16, torch::kHalf}) {
    CAPTURE(dtype);
    {
      trainpp::AutocastGuard guard(c10::DeviceType::CPU, dtype);
      CHECK(at::autocast::is_autocast_enabled(c10::DeviceType::CPU));
      CHECK(dt(torch::matmul(a, b).scalar_type()) == dt(dtype));
      CHECK(dt(a.scalar_type()) == dt(torch::kFloat32));  // inputs are cast for the op, not in place
      {
        // Nested, disabled: float32 inside, and the outer state back afterwards.
        trainpp::AutocastGuard off(c10::DeviceType::CPU, dtype, /*enabled=*/false);
        CHECK(dt(torch::matmul(a, b).scalar_type()) == dt(torch::kFloat32));
      }
      CHECK(dt(torch::matmul(a, b).scalar_type()) == dt(dtype));
    }
    CHECK(!at::autocast::is_autocast_enabled(c10::DeviceType::CPU));
    CHECK(dt(at::autocast::get_autocast_dtype(c10::DeviceType::CPU)) == dt(outer_dtype));
    CHECK(dt(torch::matmul(a, b).scalar_type()) == dt(torch::kFloat32));
  }
}

TEST_CASE("the autocast cache does not outlive the outermost guard: an updated weight is seen") {
  // Autocast caches the low-precision copy of a leaf that requires grad (a weight) while a guard is
  // open. A weight changed in place between two guards (an optimizer step) must be cast anew.
  auto weight = torch::ones({2, 2}).requires_grad_();
  const auto x = torch::ones({1, 2});
  {
    trainpp::AutocastGuard guard(c10::DeviceType::CPU, torch::kBFloat16);
    CHECK(torch::matmul(x, weight).sum().item<float>() == 4.0f);
    CHECK(torch::matmul(x, weight).sum().item<float>() == 4.0f);  // served from the cache
  }
  {
    torch::NoGradGuard no_grad;
    weight.mul_(3);  // the "optimizer step"
  }
  {
    trainpp::AutocastGuard guard(c10::DeviceType::CPU, torch::kBFloat16);
    CHECK(torch::matmul(x, weight).sum().item<float>() == 12.0f);
  }
}

}  // namespace autocast_test
