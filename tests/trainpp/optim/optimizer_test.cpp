// make_optimizer: which optimizer each `optim` value builds, with which settings and groups.

#include <trainpp/optim/optimizer.hpp>

#include <doctest/doctest.h>

#include <string>
#include <type_traits>
#include <vector>

// Everything in a namespace of its own: the test build may compile several test files as one unit.
namespace optimizer_test {

struct NetImpl : torch::nn::Module {
  NetImpl() {
    fc = register_module("fc", torch::nn::Linear(3, 4));
    ln = register_module("ln", torch::nn::LayerNorm(torch::nn::LayerNormOptions({4})));
    out = register_module("out", torch::nn::Linear(4, 2));
  }
  torch::Tensor forward(torch::Tensor x) { return out(ln(fc(x))); }
  torch::nn::Linear fc{nullptr}, out{nullptr};
  torch::nn::LayerNorm ln{nullptr};
};
TORCH_MODULE(Net);


TEST_CASE("make_optimizer follows TrainingArguments.optim") {
  Net net;
  trainpp::TrainingArguments args;
  args.learning_rate = 2e-3;
  args.weight_decay = 0.01;
  args.adam_beta1 = 0.8;
  args.adam_beta2 = 0.95;
  args.adam_epsilon = 1e-6;

  for (auto name : {trainpp::OptimizerName::adamw_torch, trainpp::OptimizerName::adamw_torch_fused}) {
    args.optim = name;
    auto opt = trainpp::make_optimizer(*net, args);
    const bool fused = opt.visit([](auto& o) {
      using T = std::decay_t<decltype(o)>;
      if constexpr (std::is_same_v<T, trainpp::AdamW>) {
        CHECK(o.options().beta1 == 0.8);
        CHECK(o.options().beta2 == 0.95);
        CHECK(o.options().eps == 1e-6);
        return o.options().fused;
      } else {
        FAIL("expected AdamW");
        return false;
      }
    });
    CHECK(fused == (name == trainpp::OptimizerName::adamw_torch_fused));
    auto& groups = opt.param_groups();
    REQUIRE(groups.size() == 2);
    CHECK(groups[0].names == std::vector<std::string>{"fc.weight", "out.weight"});
    CHECK(groups[1].names == std::vector<std::string>{"fc.bias", "ln.weight", "ln.bias", "out.bias"});
    CHECK(groups[0].weight_decay == 0.01);
    CHECK(groups[0].lr == 2e-3);
    CHECK(opt.parameters().size() == 6);

    // One real update through the variant: every parameter moves, and state appears.
    net->forward(torch::ones({2, 3})).sum().backward();
    const auto before = net->fc->weight.detach().clone();
    opt.step();
    CHECK_FALSE(torch::equal(before, net->fc->weight.detach()));
    CHECK(opt.state().front().contains("exp_avg"));
    opt.zero_grad();
    CHECK_FALSE(net->fc->weight.grad().defined());
  }

  args.optim = trainpp::OptimizerName::sgd;
  auto sgd = trainpp::make_optimizer(*net, args);
  const bool is_sgd = sgd.visit([](auto& o) { return std::is_same_v<std::decay_t<decltype(o)>, trainpp::SGD>; });
  CHECK(is_sgd);
  sgd.visit([](auto& o) {
    if constexpr (std::is_same_v<std::decay_t<decltype(o)>, trainpp::SGD>) {
      CHECK(o.options().momentum == 0.0);  // HF passes only the learning rate to torch.optim.SGD
      CHECK_FALSE(o.options().nesterov);
    }
  });
  // Plain SGD with weight decay in group 0: p -= lr * (grad + wd * p).
  net->forward(torch::ones({2, 3})).sum().backward();
  const auto w = net->out->weight.detach().clone();
  const auto g = net->out->weight.grad().clone();
  sgd.step();
  CHECK(torch::allclose(net->out->weight.detach(), w - 2e-3 * (g + 0.01 * w)));
}

}  // namespace optimizer_test
