// Device choice and seeding: select_device's order (use_cpu first), HF's set_seed and
// enable_full_determinism, and --tf32's refusal off CUDA.

#include <trainpp/device.hpp>

#include <doctest/doctest.h>

#include <cstdlib>
#include <string>

namespace device_test {

TEST_CASE("device: use_cpu forces the CPU, and a machine without CUDA or MPS trains on the CPU") {
  trainpp::TrainingArguments args;
  args.use_cpu = true;
  CHECK(trainpp::select_device(args) == torch::Device(torch::kCPU));
  args.use_cpu = false;
  if (!torch::cuda::is_available() && !torch::mps::is_available())
    CHECK(trainpp::select_device(args) == torch::Device(torch::kCPU));
  else if (torch::cuda::is_available())
    CHECK(trainpp::select_device(args).is_cuda());
}

TEST_CASE("device: set_seed makes the generator's draws repeat, another seed changes them") {
  trainpp::set_seed(1234);
  const auto first = torch::randn({8});
  trainpp::set_seed(1234);
  const auto again = torch::randn({8});
  trainpp::set_seed(1235);
  const auto other = torch::randn({8});
  CHECK(torch::equal(first, again));
  CHECK_FALSE(torch::equal(first, other));
}

TEST_CASE("device: enable_full_determinism seeds and turns on deterministic algorithms") {
  const bool was_deterministic = at::globalContext().deterministicAlgorithms();
  trainpp::enable_full_determinism(77);
  const auto draw = torch::rand({4});
  CHECK(at::globalContext().deterministicAlgorithms());
  CHECK_FALSE(at::globalContext().benchmarkCuDNN());
  const char* workspace = std::getenv("CUBLAS_WORKSPACE_CONFIG");
  REQUIRE(workspace != nullptr);
  CHECK(std::string(workspace) == ":16:8");
  trainpp::set_seed(77);
  CHECK(torch::equal(draw, torch::rand({4})));  // the seed is the one given
  at::globalContext().setDeterministicAlgorithms(was_deterministic, /*warn_only=*/false);
}

TEST_CASE("device: --tf32 true is refused off CUDA, false and unset change nothing there") {
  trainpp::TrainingArguments args;
  args.tf32 = true;
  CHECK_THROWS_WITH_AS(trainpp::apply_tf32(args, torch::kCPU), doctest::Contains("--tf32 requires a CUDA GPU"),
                       trainpp::Error);
  args.tf32 = false;
  CHECK_NOTHROW(trainpp::apply_tf32(args, torch::kCPU));
  args.tf32.reset();
  CHECK_NOTHROW(trainpp::apply_tf32(args, torch::kCPU));
}

}  // namespace device_test
