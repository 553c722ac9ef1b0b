// GradScaler against torch.amp.GradScaler fed the same overflow pattern (tests/data/precision/
// grad_scaler_reference.json, from tools/reference/gen_grad_scaler_reference.py): the scale and growth
// tracker after every update, which steps ran, and the parameters, with SGD and with the fused AdamW
// (which skips inside its kernel).

#include <trainpp/io/atomic_write.hpp>
#include <trainpp/precision/grad_scaler.hpp>

#include <doctest/doctest.h>

#include <nlohmann/json.hpp>

namespace grad_scaler_test {

nlohmann::json reference() {
  return nlohmann::json::parse(trainpp::read_file(TRAINPP_TEST_DATA_DIR "/precision/grad_scaler_reference.json"));
}

torch::Tensor tensor_of(const nlohmann::json& values, std::vector<std::int64_t> shape) {
  return torch::tensor(values.get<std::vector<float>>()).reshape(shape);
}

void replay(const char* optimizer_name) {
  const auto ref = reference();
  const auto& run = ref.at(optimizer_name);
  const auto& opts = ref.at("options");
  auto w = tensor_of(run.at("initial").at("w"), {4, 3}).requires_grad_();
  auto b = tensor_of(run.at("initial").at("b"), {3}).requires_grad_();
  const auto x = tensor_of(run.at("initial").at("x"), {5, 4});
  std::vector<trainpp::ParamGroup> groups(1);
  groups[0].params = {w, b};
  groups[0].lr = groups[0].initial_lr = 0.01;
  const bool sgd = std::string(optimizer_name) == "sgd";
  if (!sgd) groups[0].weight_decay = 0.01;
  trainpp::Optimizer optimizer = sgd ? trainpp::Optimizer(trainpp::SGD(groups, trainpp::SGDOptions{}))
                                     : trainpp::Optimizer(trainpp::AdamW(groups, trainpp::AdamWOptions{.fused = true}));
  trainpp::GradScaler scaler(trainpp::GradScalerOptions{opts.at("init_scale"), opts.at("growth_factor"),
                                                        opts.at("backoff_factor"), opts.at("growth_interval")});
  std::size_t i = 0;
  for (const auto& expected : run.at("steps")) {
    CAPTURE(i);
    optimizer.zero_grad();
    const auto loss = (torch::matmul(x, w) + b).pow(2).mean();
    scaler.scale(loss).backward();
    {
      torch::NoGradGuard no_grad;
      if (expected.at("kind") == "inf") w.grad()[1][2] = INFINITY;
      if (expected.at("kind") == "nan") b.grad()[0] = NAN;
    }
    scaler.unscale_(optimizer.parameters());
    const bool stepped = scaler.step(optimizer);
    scaler.update();
    CHECK(stepped == expected.at("stepped").get<bool>());
    CHECK(scaler.get_scale() == expected.at("scale").get<double>());
    CHECK(scaler.growth_tracker() == expected.at("growth_tracker").get<std::int64_t>());
    CHECK(torch::allclose(w.detach().flatten(), torch::tensor(expected.at("w").get<std::vector<float>>()), 1e-6, 1e-7));
    CHECK(torch::allclose(b.detach(), torch::tensor(expected.at("b").get<std::vector<float>>()), 1e-6, 1e-7));
    ++i;
  }
  CHECK(i >= 20);
  CHECK(scaler.state() == run.at("state_dict"));
}

TEST_CASE("GradScaler with SGD follows torch's GradScaler step for step") { replay("sgd"); }
TEST_CASE("GradScaler with the fused AdamW follows torch's: the skip happens in the kernel") { replay("adamw_fused"); }

TEST_CASE("GradScaler state round-trips, and misuse is refused as torch refuses it") {
  trainpp::GradScaler scaler(trainpp::GradScalerOptions{.init_scale = 1024, .growth_interval = 5});
  auto w = torch::ones({2}).requires_grad_();
  scaler.scale((w * 2).sum()).backward();
  CHECK(w.grad().equal(torch::full({2}, 2048.0f)));
  scaler.unscale_({w});
  CHECK(w.grad().equal(torch::full({2}, 2.0f)));
  CHECK_THROWS_WITH_AS(scaler.unscale_({w}), doctest::Contains("already been called"), trainpp::Error);

  nlohmann::json state = {{"scale", 256.0}, {"growth_factor", 3.0}, {"backoff_factor", 0.25}, {"growth_interval", 7},
                          {"_growth_tracker", 4}};
  trainpp::GradScaler loaded;
  loaded.load_state(state);
  CHECK(loaded.get_scale() == 256.0);
  CHECK(loaded.growth_tracker() == 4);
  CHECK(loaded.state() == state);
  state["_growth_tracker"] = -1;
  CHECK_THROWS_WITH_AS(loaded.load_state(state), doctest::Contains("_growth_tracker"), trainpp::Error);
  state["_growth_tracker"] = 1;
  state["backoff_factor"] = 2.0;
  CHECK_THROWS_WITH_AS(loaded.load_state(state), doctest::Contains("backoff_factor"), trainpp::Error);
  CHECK_THROWS_AS(trainpp::GradScaler(trainpp::GradScalerOptions{.init_scale = 0}), trainpp::Error);
}

TEST_CASE("GradScaler::share_found_inf: an overflow another process found skips this process's step too") {
  // Two processes of a sharded run, modelled in one: this one's gradients are finite, the flag comes
  // back summed with the other's 1. The fused AdamW must then skip in its kernel and keep its step
  // count, and the scale must back off exactly as if the overflow had been local.
  auto w = torch::ones({3}).requires_grad_();
  std::vector<trainpp::ParamGroup> groups(1);
  groups[0].params = {w};
  groups[0].lr = groups[0].initial_lr = 0.1;
  trainpp::Optimizer optimizer(trainpp::AdamW(groups, trainpp::AdamWOptions{.fused = true}));
  trainpp::GradScaler scaler(trainpp::GradScalerOptions{.init_scale = 1024});
  const auto before = w.detach().clone();

  scaler.scale(w.sum()).backward();
  CHECK_THROWS_WITH_AS(scaler.share_found_inf([](torch::Tensor&) {}), doctest::Contains("unscale_() first"),
                       trainpp::Error);
  scaler.unscale_(optimizer.parameters());
  float seen = -1;
  scaler.share_found_inf([&](torch::Tensor& found_inf) {
    seen = found_inf.item<float>();
    found_inf += 1;  // the other process's overflow, as the sum across processes brings it
  });
  CHECK(seen == 0.0f);
  CHECK_FALSE(scaler.step(optimizer));
  scaler.update();
  CHECK(w.detach().equal(before));
  CHECK(scaler.get_scale() == 512.0);

  // The next step: every process clean, the flag agreed at 0: the step runs.
  optimizer.zero_grad();
  scaler.scale(w.sum()).backward();
  scaler.unscale_(optimizer.parameters());
  scaler.share_found_inf([](torch::Tensor& found_inf) { found_inf.mul_(2); });
  CHECK(scaler.step(optimizer));
  scaler.update();
  CHECK_FALSE(w.detach().equal(before));
  // The skipped step did not count: Adam's bias correction sees this as its first step, which moves
  // each weight by lr (up to eps) against the gradient.
  CHECK(torch::allclose(w.detach(), before - 0.1, 1e-5, 1e-6));
  CHECK(scaler.get_scale() == 512.0);
}

}  // namespace grad_scaler_test
