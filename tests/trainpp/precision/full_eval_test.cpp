// ModuleCastGuard (bf16_full_eval / fp16_full_eval): what a module looks like inside the guard (dtypes,
// the same tensor objects, a forward in the low precision) and that the original data comes back exactly.

#include <trainpp/precision/full_eval.hpp>

#include <doctest/doctest.h>

#include <cstdint>
#include <string>
#include <vector>

namespace full_eval_test {

/// doctest prints strings, not c10::ScalarType.
std::string dt(c10::ScalarType t) { return c10::toString(t); }

TEST_CASE("ModuleCastGuard casts parameters and buffers and gives back the very float32 data") {
  torch::nn::Sequential model(torch::nn::Linear(3, 4), torch::nn::BatchNorm1d(4));
  std::vector<torch::Tensor> before;
  for (const auto& p : model->parameters()) before.push_back(p.detach().clone());
  const auto first = model->parameters().front();
  const void* storage = first.data_ptr();
  {
    trainpp::ModuleCastGuard guard(*model, torch::kBFloat16);
    for (const auto& p : model->parameters()) CHECK(dt(p.scalar_type()) == dt(torch::kBFloat16));
    for (const auto& b : model->buffers())
      if (b.is_floating_point()) CHECK(dt(b.scalar_type()) == dt(torch::kBFloat16));
    CHECK(dt(first.scalar_type()) == dt(torch::kBFloat16));  // the same tensor object, cast
  }
  std::size_t i = 0;
  for (const auto& p : model->parameters()) {
    CHECK(dt(p.scalar_type()) == dt(torch::kFloat32));
    CHECK(torch::equal(p, before[i++]));  // exact: no bfloat16 round trip
  }
  CHECK(first.data_ptr() == storage);
}

TEST_CASE("full_eval: a Linear evaluates in the guard's dtype, and the optimizer's tensors are the cast ones") {
  torch::nn::Linear linear(2, 3);
  const auto held = linear->parameters();  // what an optimizer holds
  const auto x = torch::tensor({{1.0f, -2.0f}});
  torch::NoGradGuard no_grad;
  const auto before = linear->forward(x);
  {
    trainpp::ModuleCastGuard guard(*linear, torch::kHalf);
    for (const auto& p : held) CHECK(dt(p.scalar_type()) == dt(torch::kHalf));
    const auto out = linear->forward(x.to(torch::kHalf));
    CHECK(dt(out.scalar_type()) == dt(torch::kHalf));
    CHECK(torch::allclose(out.to(torch::kFloat32), before, /*rtol=*/1e-2, /*atol=*/1e-2));
  }
  for (const auto& p : held) CHECK(dt(p.scalar_type()) == dt(torch::kFloat32));
  const auto after = linear->forward(x);
  CHECK(dt(after.scalar_type()) == dt(torch::kFloat32));
  CHECK(torch::equal(after, before));
}

TEST_CASE("full_eval: integer buffers and tensors already in the target dtype are left alone") {
  torch::nn::BatchNorm1d norm(3);
  const auto tracked = norm->num_batches_tracked;
  {
    torch::NoGradGuard no_grad;
    tracked.fill_(5);
  }
  auto extra = norm->register_parameter("extra", torch::full({2}, 0.1, torch::kBFloat16));
  auto wide = norm->register_buffer("wide", torch::full({2}, 1.0 / 3.0, torch::kFloat64));
  const void* extra_storage = extra.data_ptr();
  const auto wide_before = wide.clone();
  {
    trainpp::ModuleCastGuard guard(*norm, torch::kBFloat16);
    CHECK(dt(tracked.scalar_type()) == dt(torch::kLong));
    CHECK(tracked.item<std::int64_t>() == 5);
    CHECK(extra.data_ptr() == extra_storage);  // already bfloat16: not copied
    CHECK(dt(wide.scalar_type()) == dt(torch::kBFloat16));
    CHECK(dt(norm->weight.scalar_type()) == dt(torch::kBFloat16));
  }
  CHECK(dt(extra.scalar_type()) == dt(torch::kBFloat16));
  CHECK(extra.data_ptr() == extra_storage);
  CHECK(dt(wide.scalar_type()) == dt(torch::kFloat64));  // each tensor gets its own dtype back
  CHECK(torch::equal(wide, wide_before));                // float64 precision intact
  CHECK(dt(norm->weight.scalar_type()) == dt(torch::kFloat32));
}

}  // namespace full_eval_test
