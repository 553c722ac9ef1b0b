// nn/module_call.hpp: trainpp::call on unregistered blocks (a plain forward), on blocks a policy
// registered (before/after hooks around the forward, the output tensors handed to after), and with
// checkpoint set (the forward recomputed in backward, only when training with grad).

#include <trainpp/nn/module_call.hpp>

#include <doctest/doctest.h>

#include <memory>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

namespace module_call_test {

using trainpp::detail::module_call_registry;

/// A linear block that counts its forwards.
struct CountingImpl : torch::nn::Module {
  torch::nn::Linear fc{3, 3};
  int forwards = 0;
  CountingImpl() { register_module("fc", fc); }
  torch::Tensor forward(const torch::Tensor& x) {
    ++forwards;
    return fc(x);
  }
};
TORCH_MODULE(Counting);

/// Blocks whose forward returns each kind of result collect_tensors knows, and some it does not.
struct TupleImpl : torch::nn::Module {
  std::tuple<torch::Tensor, std::vector<torch::Tensor>> forward(const torch::Tensor& x) { return {x + 1, {x + 2, x + 3}}; }
};
struct PairImpl : torch::nn::Module {
  std::pair<torch::Tensor, torch::Tensor> forward(const torch::Tensor& x) { return {x * 2, x * 3}; }
};
struct VectorImpl : torch::nn::Module {
  std::vector<torch::Tensor> forward(const torch::Tensor& x) { return {x, x - 1}; }
};
struct CountImpl : torch::nn::Module {
  std::int64_t forward(const torch::Tensor& x) { return x.numel(); }
};
struct MixedImpl : torch::nn::Module {
  std::tuple<torch::Tensor, std::int64_t> forward(const torch::Tensor& x) { return {x, x.numel()}; }
};
/// Two inputs, one not a tensor: a call that gradient_checkpoint cannot take.
struct ScaleImpl : torch::nn::Module {
  torch::nn::Linear fc{3, 3};
  int forwards = 0;
  ScaleImpl() { register_module("fc", fc); }
  torch::Tensor forward(const torch::Tensor& x, double scale) {
    ++forwards;
    return fc(x) * scale;
  }
};

/// Registers hooks for one module and takes them out again at the end of the test, whatever happens:
/// the registry is global and every later call looks in it.
class Registration {
 public:
  Registration(const torch::nn::Module* module, trainpp::ModuleCallHooks hooks) : module_(module) {
    module_call_registry()[module] = std::move(hooks);
  }
  Registration(const Registration&) = delete;
  Registration& operator=(const Registration&) = delete;
  ~Registration() { module_call_registry().erase(module_); }

 private:
  const torch::nn::Module* module_;
};

/// Hooks that log "before" and "after <number of outputs> <known>" into `events`.
trainpp::ModuleCallHooks logging_hooks(std::vector<std::string>& events, std::vector<torch::Tensor>* outputs = nullptr) {
  trainpp::ModuleCallHooks hooks;
  hooks.before = [&events] { events.push_back("before"); };
  hooks.after = [&events, outputs](const std::vector<torch::Tensor>& out, bool known) {
    events.push_back("after " + std::to_string(out.size()) + (known ? " known" : " unknown"));
    if (outputs != nullptr) *outputs = out;
  };
  return hooks;
}

TEST_CASE("module_call: an unregistered block is its forward, through a holder, a shared_ptr or the module") {
  Counting block;
  const auto x = torch::randn({2, 3});
  const auto expected = block->fc(x);
  const auto registered = module_call_registry().size();
  CHECK(torch::equal(trainpp::call(block, x), expected));
  std::shared_ptr<CountingImpl> shared = block.ptr();
  CHECK(torch::equal(trainpp::call(shared, x), expected));
  CountingImpl& impl = *block;
  CHECK(torch::equal(trainpp::call(impl, x), expected));
  CHECK(block->forwards == 3);
  CHECK(module_call_registry().size() == registered);  // a lookup registers nothing
}

TEST_CASE("module_call: a registered block runs before, its forward, then after with the output") {
  Counting block, other;
  std::vector<std::string> events;
  std::vector<torch::Tensor> outputs;
  auto hooks = logging_hooks(events, &outputs);
  hooks.before = [&events, &block] { events.push_back("before, " + std::to_string(block->forwards) + " forwards"); };
  const Registration registration(block.ptr().get(), hooks);

  const auto x = torch::randn({2, 3});
  const auto y = trainpp::call(block, x);
  CHECK(events == std::vector<std::string>{"before, 0 forwards", "after 1 known"});
  REQUIRE(outputs.size() == 1);
  CHECK(outputs[0].is_same(y));

  // The registry is keyed by the module's address: the shared_ptr and the module itself find it too.
  events.clear();
  std::shared_ptr<CountingImpl> shared = block.ptr();
  (void)trainpp::call(shared, x);
  (void)trainpp::call(*block, x);
  CHECK(events == std::vector<std::string>{"before, 1 forwards", "after 1 known", "before, 2 forwards", "after 1 known"});

  // Another instance of the same type is not registered.
  events.clear();
  (void)trainpp::call(other, x);
  CHECK(events.empty());
  CHECK(other->forwards == 1);
}

TEST_CASE("module_call: a registration with only one of the hooks runs that one") {
  Counting block;
  std::vector<std::string> events;
  trainpp::ModuleCallHooks hooks;
  hooks.after = logging_hooks(events).after;
  {
    const Registration registration(block.ptr().get(), hooks);
    (void)trainpp::call(block, torch::randn({1, 3}));
  }
  CHECK(events == std::vector<std::string>{"after 1 known"});
  CHECK(block->forwards == 1);
  // Unregistered again: no hooks any more.
  (void)trainpp::call(block, torch::randn({1, 3}));
  CHECK(events.size() == 1);
}

TEST_CASE("module_call: after gets every tensor of a tuple, pair or vector result, and 'unknown' otherwise") {
  const auto x = torch::arange(3, torch::kFloat);
  std::vector<std::string> events;
  std::vector<torch::Tensor> outputs;
  SUBCASE("a tuple holding a tensor and a vector") {
    auto block = std::make_shared<TupleImpl>();
    const Registration registration(block.get(), logging_hooks(events, &outputs));
    const auto [first, rest] = trainpp::call(block, x);
    CHECK(events == std::vector<std::string>{"before", "after 3 known"});
    REQUIRE(outputs.size() == 3);
    CHECK(outputs[0].is_same(first));
    CHECK(outputs[1].is_same(rest[0]));
    CHECK(outputs[2].is_same(rest[1]));
  }
  SUBCASE("a pair") {
    auto block = std::make_shared<PairImpl>();
    const Registration registration(block.get(), logging_hooks(events, &outputs));
    const auto result = trainpp::call(block, x);
    CHECK(events == std::vector<std::string>{"before", "after 2 known"});
    REQUIRE(outputs.size() == 2);
    CHECK(outputs[1].is_same(result.second));
  }
  SUBCASE("a vector") {
    auto block = std::make_shared<VectorImpl>();
    const Registration registration(block.get(), logging_hooks(events, &outputs));
    const auto result = trainpp::call(block, x);
    CHECK(events == std::vector<std::string>{"before", "after 2 known"});
    REQUIRE(outputs.size() == 2);
    CHECK(outputs[0].is_same(result[0]));
    CHECK(torch::equal(outputs[1], x - 1));
  }
  SUBCASE("a result that is no tensor, or holds one that is not") {
    auto count = std::make_shared<CountImpl>();
    auto mixed = std::make_shared<MixedImpl>();
    const Registration first(count.get(), logging_hooks(events, &outputs));
    const Registration second(mixed.get(), logging_hooks(events));
    CHECK(trainpp::call(count, x) == 3);  // the result still comes back unchanged
    CHECK(outputs.empty());
    CHECK(std::get<1>(trainpp::call(mixed, x)) == 3);
    REQUIRE(events.size() == 4);
    CHECK(events[1] == "after 0 unknown");
    CHECK(events[3].ends_with(" unknown"));
  }
}

TEST_CASE("module_call: checkpoint recomputes the forward in backward, with the hooks, and the same gradients") {
  const auto x = torch::randn({4, 3});
  Counting plain, checkpointed;
  {
    torch::NoGradGuard no_grad;
    checkpointed->fc->weight.copy_(plain->fc->weight);
    checkpointed->fc->bias.copy_(plain->fc->bias);
  }
  std::vector<std::string> events;
  auto hooks = logging_hooks(events);
  hooks.checkpoint = true;
  const Registration registration(checkpointed.ptr().get(), hooks);

  const auto expected = trainpp::call(plain, x);
  const auto y = trainpp::call(checkpointed, x);
  CHECK(torch::equal(y, expected));
  CHECK(checkpointed->forwards == 1);
  CHECK(events == std::vector<std::string>{"before", "after 1 known"});
  (y * y).sum().backward();
  (expected * expected).sum().backward();
  // The recomputation goes through the hooks again (FullShard gathers the unit for it).
  CHECK(checkpointed->forwards == 2);
  CHECK(events == std::vector<std::string>{"before", "after 1 known", "before", "after 1 known"});
  CHECK(torch::allclose(checkpointed->fc->weight.grad(), plain->fc->weight.grad()));
  CHECK(torch::allclose(checkpointed->fc->bias.grad(), plain->fc->bias.grad()));
  CHECK(plain->forwards == 1);
}

TEST_CASE("module_call: checkpoint is ignored in eval mode, without grad, and for non-tensor arguments") {
  const auto x = torch::randn({2, 3});
  trainpp::ModuleCallHooks hooks;
  hooks.checkpoint = true;
  SUBCASE("eval mode") {
    Counting block;
    const Registration registration(block.ptr().get(), hooks);
    block->eval();
    trainpp::call(block, x).sum().backward();
    CHECK(block->forwards == 1);
    CHECK(block->fc->weight.grad().defined());
  }
  SUBCASE("no grad") {
    Counting block;
    const Registration registration(block.ptr().get(), hooks);
    torch::NoGradGuard no_grad;
    CHECK_FALSE(trainpp::call(block, x).requires_grad());
    CHECK(block->forwards == 1);
  }
  SUBCASE("an argument that is not a tensor") {
    auto block = std::make_shared<ScaleImpl>();
    const Registration registration(block.get(), hooks);
    const auto y = trainpp::call(block, x, 2.0);
    CHECK(torch::allclose(y, block->fc(x) * 2.0));
    y.sum().backward();
    CHECK(block->forwards == 1);
  }
}

}  // namespace module_call_test
