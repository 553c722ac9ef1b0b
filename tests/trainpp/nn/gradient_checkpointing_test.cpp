// gradient_checkpoint against the same computation without it: the forward values and the gradients
// of every parameter and input must be identical — with dropout (the recomputation sees the same
// random numbers), under CPU bfloat16 autocast (it casts the same ops), for blocks in sequence, and when
// the input does not require grad (the parameters still get their gradients). Also: the activations are
// really dropped, and --gradient_checkpointing reaches the model through train().
//
// Why exact equality: the recomputation runs the same kernels on the same values in the same order,
// and the nested backward runs the same backward kernels, so every gradient is bitwise the same. A
// tolerance would hide a recomputation that differs slightly (a different dropout mask on a few
// elements, or fp32 instead of bf16 for one op), which is exactly what these tests are for.

#include <trainpp/cli.hpp>
#include <trainpp/data/tensor_dataset.hpp>
#include <trainpp/loop.hpp>
#include <trainpp/nn/gradient_checkpointing.hpp>
#include <trainpp/precision/autocast.hpp>
#include <trainpp/trainer.hpp>

#include <doctest/doctest.h>

#include <filesystem>
#include <map>
#include <optional>
#include <string>

#include <unistd.h>

namespace gradient_checkpointing_test {

/// A pre-norm transformer block: self-attention (scaled_dot_product_attention) and an MLP, each with
/// dropout and a residual connection.
struct BlockImpl : torch::nn::Module {
  static constexpr int64_t dim = 16, heads = 2;
  torch::nn::LayerNorm norm1{torch::nn::LayerNormOptions({dim})};
  torch::nn::Linear qkv{dim, 3 * dim};
  torch::nn::Linear proj{dim, dim};
  torch::nn::LayerNorm norm2{torch::nn::LayerNormOptions({dim})};
  torch::nn::Linear up{dim, 4 * dim};
  torch::nn::Linear down{4 * dim, dim};
  torch::nn::Dropout dropout{0.3};
  double attention_dropout = 0.2;

  BlockImpl() {
    register_module("norm1", norm1);
    register_module("qkv", qkv);
    register_module("proj", proj);
    register_module("norm2", norm2);
    register_module("up", up);
    register_module("down", down);
    register_module("dropout", dropout);
  }
  torch::Tensor forward(const torch::Tensor& x) {
    const auto b = x.size(0), t = x.size(1);
    auto parts = qkv(norm1(x)).view({b, t, 3, heads, dim / heads}).permute({2, 0, 3, 1, 4});
    auto attended = at::scaled_dot_product_attention(parts[0], parts[1], parts[2], {},
                                                     is_training() ? attention_dropout : 0.0, /*is_causal=*/true);
    auto h = x + dropout(proj(attended.transpose(1, 2).reshape({b, t, dim})));
    return h + dropout(down(torch::gelu(up(norm2(h)))));
  }
};
TORCH_MODULE(Block);

/// Blocks in sequence, each optionally checkpointed.
struct StackImpl : torch::nn::Module {
  torch::nn::ModuleList blocks;
  bool checkpointing = false;
  explicit StackImpl(int n) {
    for (int i = 0; i < n; ++i) blocks->push_back(Block());
    register_module("blocks", blocks);
  }
  torch::Tensor forward(torch::Tensor x) {
    for (const auto& m : *blocks) {
      auto block = std::dynamic_pointer_cast<BlockImpl>(m);
      x = checkpointing ? trainpp::gradient_checkpoint([block](const torch::Tensor& h) { return block->forward(h); }, x)
                        : block->forward(x);
    }
    return x;
  }
};
TORCH_MODULE(Stack);

/// The loss, the parameter gradients and the input gradient of one forward and backward.
struct Run {
  torch::Tensor output;
  std::map<std::string, torch::Tensor> grads;
  torch::Tensor input_grad;
  torch::Tensor rng_after;  ///< a draw from the CPU generator after backward
};

/// One step of `model` on a copy of `input` (requiring grad when asked), seeded so that both
/// variants draw from the same RNG state.
Run run(Stack& model, bool checkpointing, const torch::Tensor& input, bool input_requires_grad = true,
        std::optional<c10::ScalarType> autocast = std::nullopt) {
  model->checkpointing = checkpointing;
  model->zero_grad();
  torch::manual_seed(1234);
  auto x = input.clone().requires_grad_(input_requires_grad);
  Run r;
  {
    std::optional<trainpp::AutocastGuard> guard;
    if (autocast) guard.emplace(c10::DeviceType::CPU, *autocast);
    r.output = model->forward(x);
  }
  // The loss weights each output element differently, so a permuted gradient could not pass.
  (r.output.to(torch::kFloat32) * torch::linspace(-1, 1, r.output.numel()).view(r.output.sizes())).sum().backward();
  for (const auto& p : model->named_parameters()) r.grads[p.key()] = p.value().grad().clone();
  if (input_requires_grad) r.input_grad = x.grad().clone();
  r.rng_after = torch::rand({4});
  return r;
}

void check_same(const Run& plain, const Run& checkpointed) {
  CHECK(torch::equal(plain.output, checkpointed.output));
  REQUIRE(plain.grads.size() == checkpointed.grads.size());
  for (const auto& [name, g] : plain.grads) {
    INFO("parameter " << name);
    const auto& c = checkpointed.grads.at(name);
    REQUIRE(c.defined());
    INFO("max difference " << (g - c).abs().max().item<double>());
    CHECK(torch::equal(g, c));
  }
  CHECK(plain.input_grad.defined() == checkpointed.input_grad.defined());
  if (plain.input_grad.defined()) CHECK(torch::equal(plain.input_grad, checkpointed.input_grad));
  // The recomputation puts the caller's RNG state back: checkpointing draws nothing extra.
  CHECK(torch::equal(plain.rng_after, checkpointed.rng_after));
}

torch::Tensor sample_input() {
  torch::manual_seed(7);
  return torch::randn({3, 5, BlockImpl::dim});
}


TEST_CASE("gradient_checkpoint: same gradients as without it, for a block without dropout") {
  torch::manual_seed(0);
  Stack model(1);
  model->eval();  // no dropout; grad mode stays on
  const auto input = sample_input();
  check_same(run(model, false, input), run(model, true, input));
}

TEST_CASE("gradient_checkpoint: dropout draws the same masks in the recomputation") {
  torch::manual_seed(0);
  Stack model(1);
  model->train();
  const auto input = sample_input();
  const auto plain = run(model, false, input);
  const auto checkpointed = run(model, true, input);
  // Dropout really acted: the same input gives another output under another seed.
  torch::manual_seed(99);
  CHECK_FALSE(torch::equal(model->forward(input), plain.output));
  check_same(plain, checkpointed);
}

TEST_CASE("gradient_checkpoint: two checkpointed blocks in sequence") {
  torch::manual_seed(0);
  Stack model(2);
  model->train();
  const auto input = sample_input();
  check_same(run(model, false, input), run(model, true, input));
}

TEST_CASE("gradient_checkpoint: CPU bfloat16 autocast is restored for the recomputation") {
  torch::manual_seed(0);
  Stack model(2);
  model->train();
  const auto input = sample_input();
  const auto plain = run(model, false, input, true, c10::ScalarType::BFloat16);
  const auto checkpointed = run(model, true, input, true, c10::ScalarType::BFloat16);
  // Autocast was on: the float32 run gives other values (the blocks' matmuls ran in bfloat16).
  CHECK_FALSE(torch::equal(run(model, false, input).output, plain.output));
  check_same(plain, checkpointed);
  // Backward ran outside autocast, and the recomputation left it that way.
  CHECK_FALSE(at::autocast::is_autocast_enabled(c10::DeviceType::CPU));
}

TEST_CASE("gradient_checkpoint: a weight used inside and then outside the block under autocast") {
  // Autocast caches the bfloat16 copies of weights for the rest of its region, and the block's first
  // run is under no-grad: were a copy made there reused by the later use outside the block, that use
  // would send no gradient to the weight. (LibTorch 2.13 does not reuse it; this guards that.)
  torch::manual_seed(0);
  torch::nn::Linear shared(8, 8);
  const auto x0 = torch::randn({4, 8});
  auto weight_grad = [&](bool checkpointing) {
    shared->zero_grad();
    auto x = x0.clone().requires_grad_(true);
    torch::Tensor out;
    {
      trainpp::AutocastGuard autocast(c10::DeviceType::CPU, c10::ScalarType::BFloat16);
      auto block = [w = shared.ptr()](const torch::Tensor& h) { return torch::tanh(w->forward(h)); };
      auto h = checkpointing ? trainpp::gradient_checkpoint(block, x) : block(x);
      out = shared(h);  // the same weight again, outside the block
    }
    out.to(torch::kFloat32).pow(2).sum().backward();
    return std::pair{shared->weight.grad().clone(), x.grad().clone()};
  };
  const auto [plain_w, plain_x] = weight_grad(false);
  const auto [ckpt_w, ckpt_x] = weight_grad(true);
  CHECK(torch::equal(plain_w, ckpt_w));
  CHECK(torch::equal(plain_x, ckpt_x));
}

TEST_CASE("gradient_checkpoint: the parameters get gradients when no input requires grad") {
  torch::manual_seed(0);
  Stack model(2);
  model->train();
  const auto input = sample_input();
  const auto plain = run(model, false, input, false);
  const auto checkpointed = run(model, true, input, false);
  CHECK_FALSE(checkpointed.input_grad.defined());
  check_same(plain, checkpointed);
}

TEST_CASE("gradient_checkpoint: the activations inside the block are not kept") {
  torch::nn::Linear first(8, 8), second(8, 8);
  const auto x = torch::randn({4, 8}, torch::requires_grad());
  std::optional<c10::weak_intrusive_ptr<c10::TensorImpl>> hidden;
  auto block = [&](const torch::Tensor& in) {
    auto h = torch::tanh(first(in));  // kept by the graph (tanh and the second linear save it)...
    hidden.emplace(h.getIntrusivePtr());
    return second(h);
  };
  auto plain = block(x);
  CHECK_FALSE(hidden->expired());
  auto checkpointed = trainpp::gradient_checkpoint(block, x);
  CHECK(hidden->expired());  // ...but not under checkpointing
  CHECK(torch::equal(plain, checkpointed));
  REQUIRE(checkpointed.grad_fn() != nullptr);
  CHECK(checkpointed.grad_fn()->name().find("CheckpointFunction") != std::string::npos);
}

TEST_CASE("gradient_checkpoint: several inputs, an undefined one, and several outputs") {
  torch::manual_seed(0);
  torch::nn::Linear lin(6, 6);
  const auto a0 = torch::randn({2, 6}), b0 = torch::randn({2, 6});
  auto fn = [lin = lin.ptr()](const torch::Tensor& a, const torch::Tensor& b, const torch::Tensor& bias) {
    auto h = lin->forward(a) * torch::sigmoid(b);
    return std::vector<torch::Tensor>{bias.defined() ? h + bias : h, (h * a).sum(-1)};
  };
  auto grads = [&](bool checkpointing) {
    lin->zero_grad();
    auto a = a0.clone().requires_grad_(true), b = b0.clone().requires_grad_(true);
    auto out = checkpointing ? trainpp::gradient_checkpoint(fn, a, b, torch::Tensor()) : fn(a, b, torch::Tensor());
    REQUIRE(out.size() == 2);
    (out[0].pow(2).sum() + out[1].sum() * 3).backward();
    return std::vector<torch::Tensor>{a.grad(), b.grad(), lin->weight.grad().clone(), lin->bias.grad().clone()};
  };
  const auto plain = grads(false), checkpointed = grads(true);
  for (std::size_t i = 0; i < plain.size(); ++i) {
    INFO("gradient " << i);
    CHECK(torch::equal(plain[i], checkpointed[i]));
  }

  // The vector form, with an output that is not used by the loss (its gradient is zero).
  lin->zero_grad();
  auto a = a0.clone().requires_grad_(true);
  auto out = trainpp::gradient_checkpoint(
      [lin = lin.ptr()](const std::vector<torch::Tensor>& xs) { return std::vector<torch::Tensor>{lin->forward(xs[0]), xs[0] * 2}; },
      std::vector<torch::Tensor>{a});
  out[0].sum().backward();
  // d(sum(a W^T + b))/da = the column sums of W in every row (rounding may differ: a matmul there).
  CHECK(torch::allclose(a.grad(), lin->weight.sum(0).expand({2, 6}), 1e-6, 1e-6));
}

TEST_CASE("gradient_checkpoint: outside grad mode it is a plain call") {
  torch::nn::Linear lin(4, 4);
  const auto x = torch::randn({2, 4}, torch::requires_grad());
  torch::NoGradGuard no_grad;
  auto y = trainpp::gradient_checkpoint([lin = lin.ptr()](const torch::Tensor& h) { return lin->forward(h); }, x);
  CHECK_FALSE(y.requires_grad());
  CHECK(torch::equal(y, lin(x)));
}

/// A classifier whose blocks are checkpointed once gradient_checkpointing_enable() is called, as an
/// HF model's are.
struct CheckpointableImpl : torch::nn::Module {
  torch::nn::Linear embed{4, BlockImpl::dim};
  Stack stack{2};
  torch::nn::Linear head{BlockImpl::dim, 3};
  int enable_calls = 0;
  CheckpointableImpl() {
    register_module("embed", embed);
    register_module("stack", stack);
    register_module("head", head);
  }
  void gradient_checkpointing_enable() {
    ++enable_calls;
    stack->checkpointing = true;
  }
  trainpp::ModelOutput forward(const trainpp::Batch& batch) {
    auto h = stack(embed(batch.at("features")).unsqueeze(1));
    trainpp::ModelOutput out{.logits = head(h.squeeze(1))};
    out.loss = torch::nn::functional::cross_entropy(out.logits, batch.at("labels"));
    return out;
  }
};
TORCH_MODULE(Checkpointable);

struct PlainImpl : torch::nn::Module {
  torch::nn::Linear head{4, 3};
  PlainImpl() { register_module("head", head); }
  trainpp::ModelOutput forward(const trainpp::Batch& batch) {
    trainpp::ModelOutput out{.logits = head(batch.at("features"))};
    out.loss = torch::nn::functional::cross_entropy(out.logits, batch.at("labels"));
    return out;
  }
};
TORCH_MODULE(Plain);

struct ScratchDir {
  std::filesystem::path path =
      std::filesystem::temp_directory_path() / fmt::format("trainpp-ckpt-test-{}", ::getpid());
  ~ScratchDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
};

trainpp::TrainingArguments args_for(const ScratchDir& dir, std::vector<std::string> extra) {
  std::vector<std::string> flags{"--output_dir", dir.path.string(), "--report_to", "none", "--use_cpu",
                                 "--save_strategy", "no", "--max_steps", "2", "--disable_tqdm", "true",
                                 "--per_device_train_batch_size", "4"};
  flags.insert(flags.end(), extra.begin(), extra.end());
  return std::get<0>(trainpp::parse_args_into<trainpp::TrainingArguments>(flags));
}

trainpp::TensorDataset tiny_data() {
  torch::manual_seed(3);
  return trainpp::TensorDataset{{"features", torch::randn({8, 4})}, {"labels", torch::randint(0, 3, {8})}};
}

TEST_CASE("--gradient_checkpointing calls the model's gradient_checkpointing_enable in train") {
  ScratchDir dir;
  CHECK_FALSE(trainpp::TrainingArguments{}.gradient_checkpointing);  // HF's default

  Checkpointable off;
  trainpp::Trainer without(off, args_for(dir, {}), trainpp::train_dataset = tiny_data());
  without.train();
  CHECK(off->enable_calls == 0);
  CHECK_FALSE(off->stack->checkpointing);

  Checkpointable on;
  auto args = args_for(dir, {"--gradient_checkpointing"});
  CHECK(args.gradient_checkpointing);
  trainpp::Trainer with(on, args, trainpp::train_dataset = tiny_data());
  with.train();
  CHECK(on->enable_calls == 1);
  CHECK(on->stack->checkpointing);
  CHECK(with.state().global_step == 2);
}

TEST_CASE("--gradient_checkpointing on a model without gradient_checkpointing_enable is an error") {
  ScratchDir dir;
  Plain model;
  trainpp::Trainer trainer(model, args_for(dir, {"--gradient_checkpointing", "true"}),
                           trainpp::train_dataset = tiny_data());
  CHECK_THROWS_WITH_AS(trainer.train(),
                       "the model does not support --gradient_checkpointing (it has no gradient_checkpointing_enable())",
                       trainpp::Error);
  CHECK_FALSE(std::filesystem::exists(dir.path));  // nothing was written
}

}  // namespace gradient_checkpointing_test
