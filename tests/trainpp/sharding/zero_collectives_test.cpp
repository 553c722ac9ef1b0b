// ZeroCollectives: freeing and gathering units' flat buffers, prefetching within limit_all_gathers,
// the forward order's neighbours and the gradient reduce-scatter, in one process (without a group, and
// with a Gloo group of one, which runs every collective).

#include <trainpp/sharding/zero_collectives.hpp>
#include <trainpp/trainpp.hpp>

#include <doctest/doctest.h>

#include <chrono>
#include <memory>
#include <optional>
#include <vector>

namespace zero_collectives_test {

using Collectives = trainpp::detail::ZeroCollectives;
using State = Collectives::State;

struct BlockImpl : torch::nn::Module {
  torch::nn::Linear fc{nullptr};
  bool* saw_gathered = nullptr;  ///< set when the forward ran with its weights present
  BlockImpl() { fc = register_module("fc", torch::nn::Linear(8, 8)); }
  torch::Tensor forward(const torch::Tensor& x) {
    if (saw_gathered) *saw_gathered = fc->weight.storage().nbytes() > 0;
    return x + torch::tanh(fc(x));
  }
};
TORCH_MODULE(Block);

struct NetImpl : torch::nn::Module {
  torch::nn::Linear in{nullptr}, out{nullptr};
  Block first, second;
  NetImpl() {
    in = register_module("in", torch::nn::Linear(4, 8));
    first = register_module("first", Block());
    second = register_module("second", Block());
    out = register_module("out", torch::nn::Linear(8, 3));
  }
  trainpp::ModelOutput forward(const trainpp::Batch& batch) {
    auto h = trainpp::call(second, trainpp::call(first, in(batch.at("x"))));
    trainpp::ModelOutput o{.logits = out(h)};
    if (batch.contains("labels")) o.loss = torch::nn::functional::cross_entropy(o.logits, batch.at("labels"));
    return o;
  }
};
TORCH_MODULE(Net);

/// Three blocks and a head: units 0, 1, 2 and the root (3).
struct StackImpl : torch::nn::Module {
  Block b0, b1, b2;
  torch::nn::Linear head{nullptr};
  StackImpl() {
    b0 = register_module("b0", Block());
    b1 = register_module("b1", Block());
    b2 = register_module("b2", Block());
    head = register_module("head", torch::nn::Linear(8, 2));
  }
};
TORCH_MODULE(Stack);

/// Rank 0 of a Gloo group of one, on a port the system picks.
std::shared_ptr<trainpp::ProcessGroup> group_of_one() {
  trainpp::LaunchEnvironment env;
  env.master_port = 0;
  return std::make_shared<trainpp::ProcessGroup>(
      trainpp::ProcessGroup::join(env, "gloo", std::chrono::seconds(20), torch::kCPU));
}

/// The stack laid out with a unit per block, for one process.
State stack_layout(Stack& model, trainpp::ShardingStrategy strategy, std::shared_ptr<trainpp::ProcessGroup> group = nullptr) {
  State s;
  s.strategy = strategy;
  s.options.transformer_layer_cls_to_wrap = {"Block"};
  s.group = std::move(group);
  Collectives::build_units(s, *model);
  Collectives::build_flats(s);
  return s;
}

bool held(const State& s, std::size_t u) { return s.flats[s.units[u].flats.front()].full.storage().nbytes() > 0; }

TEST_CASE("FullShard frees its units between calls and gathers them around trainpp::call") {
  Net net;
  bool saw_first = false, saw_second = false;
  net->first->saw_gathered = &saw_first;
  net->second->saw_gathered = &saw_second;
  trainpp::FsdpOptions options;
  options.transformer_layer_cls_to_wrap = {"Block"};
  trainpp::FullShard sharding(options);
  sharding.prepare(*net, torch::kCPU);
  CHECK(net->first->fc->weight.storage().nbytes() == 0);
  CHECK(net->in->weight.storage().nbytes() == 0);  // the root unit too, until a forward
  trainpp::Batch batch{{"x", torch::randn({2, 4})}};
  // The first forward runs with everything gathered (it checks that every unit is reached).
  sharding.before_forward(*net);
  (void)net->forward(batch);
  sharding.after_forward(*net);
  CHECK(net->first->fc->weight.storage().nbytes() == 0);
  CHECK(net->in->weight.storage().nbytes() == 0);
  torch::NoGradGuard no_grad;
  sharding.before_forward(*net);
  CHECK(net->in->weight.storage().nbytes() > 0);
  CHECK(net->first->fc->weight.storage().nbytes() == 0);
  (void)net->forward(batch);
  CHECK(saw_first);
  CHECK(saw_second);
  CHECK(net->first->fc->weight.storage().nbytes() == 0);  // freed again right after its call
  sharding.after_forward(*net);
  CHECK(net->in->weight.storage().nbytes() == 0);
}

TEST_CASE("zero collectives: a freed unit is gathered back from the shards, with or without a group") {
  for (const bool with_group : {false, true}) {
    CAPTURE(with_group);
    Stack model;
    const auto weight = model->b1->fc->weight.detach().clone();
    State s = stack_layout(model, trainpp::ShardingStrategy::full_shard, with_group ? group_of_one() : nullptr);
    auto& f = s.flats[s.units[1].flats.front()];
    Collectives::free_unit(s, 1);
    CHECK_FALSE(f.gathered);
    CHECK_FALSE(held(s, 1));
    CHECK(held(s, 0));  // only the unit asked for
    // The gather fills the buffer from this process's shard (FullShard's own copy), so what the
    // optimizer wrote there is what the parameters hold afterwards.
    f.shard.add_(1);
    Collectives::gather(s, 1, /*wait_for_it=*/true);
    CHECK(f.gathered);
    CHECK_FALSE(f.gathering.valid());  // waited for
    REQUIRE(f.full.storage().nbytes() == static_cast<std::size_t>(f.padded) * sizeof(float));
    CHECK(torch::allclose(model->b1->fc->weight, weight + 1));
    // Gathering a gathered unit again is a no-op unless asked: the buffer keeps what it holds.
    f.full.zero_();
    Collectives::start_gather(s, s.units[1].flats.front());
    CHECK(f.full.abs().sum().item<float>() == 0);
    Collectives::start_gather(s, s.units[1].flats.front(), /*again=*/true);
    Collectives::finish_gather(s, f);
    CHECK(torch::allclose(model->b1->fc->weight, weight + 1));
  }
}

TEST_CASE("zero collectives: ShardGradOp and the probing forward never free a unit") {
  Stack model;
  State sharded_grads = stack_layout(model, trainpp::ShardingStrategy::shard_grad_op);
  Collectives::free_unit(sharded_grads, 0);
  CHECK(held(sharded_grads, 0));
  CHECK(sharded_grads.flats[sharded_grads.units[0].flats.front()].gathered);

  Stack other;
  State probing = stack_layout(other, trainpp::ShardingStrategy::full_shard);
  probing.probing = true;
  Collectives::free_unit(probing, 0);
  CHECK(held(probing, 0));
  probing.probing = false;
  Collectives::free_unit(probing, 0);
  CHECK_FALSE(held(probing, 0));
}

TEST_CASE("zero collectives: prefetching stops at two gathered units under limit_all_gathers") {
  Stack model;
  State s = stack_layout(model, trainpp::ShardingStrategy::full_shard);
  REQUIRE(s.units.size() == 4);
  CHECK(s.root == 3);
  CHECK(Collectives::gathered_units(s) == 3);  // the root is not counted
  for (std::size_t u = 0; u < 3; ++u) Collectives::free_unit(s, u);
  CHECK(Collectives::gathered_units(s) == 0);
  Collectives::prefetch(s, 0);
  Collectives::prefetch(s, 1);
  CHECK(Collectives::gathered_units(s) == 2);
  Collectives::prefetch(s, 2);
  CHECK_FALSE(held(s, 2));
  s.options.limit_all_gathers = false;
  Collectives::prefetch(s, 2);
  CHECK(held(s, 2));
  CHECK(Collectives::gathered_units(s) == 3);
  // The probing forward gathers everything itself: no prefetch then.
  Collectives::free_unit(s, 2);
  s.probing = true;
  Collectives::prefetch(s, 2);
  CHECK_FALSE(s.flats[s.units[2].flats.front()].gathered);
}

TEST_CASE("zero collectives: neighbours follow the order the first forward called the units in") {
  Stack model;
  State s = stack_layout(model, trainpp::ShardingStrategy::full_shard);
  CHECK_FALSE(Collectives::neighbour(s, 0, 1).has_value());  // no forward seen yet
  s.forward_order = {2, 0, 1};
  CHECK(Collectives::neighbour(s, 0, 1) == std::optional<std::size_t>(1));
  CHECK(Collectives::neighbour(s, 0, -1) == std::optional<std::size_t>(2));
  CHECK_FALSE(Collectives::neighbour(s, 2, -1).has_value());
  CHECK_FALSE(Collectives::neighbour(s, 1, 1).has_value());
  CHECK_FALSE(Collectives::neighbour(s, s.root, 1).has_value());
}

TEST_CASE("zero collectives: launch_reduce moves a unit's gradients into the reduce-scatter once, then frees it") {
  for (const bool with_group : {false, true}) {
    CAPTURE(with_group);
    Stack model;
    State s = stack_layout(model, trainpp::ShardingStrategy::full_shard, with_group ? group_of_one() : nullptr);
    auto& weight = model->b2->fc->weight;
    auto& bias = model->b2->fc->bias;
    weight.mutable_grad() = torch::full_like(weight, 2.0);
    // The bias got no gradient in this backward: its part of the buffer is zeros.
    Collectives::launch_reduce(s, 2);
    CHECK(s.units[2].launched);
    CHECK_FALSE(weight.grad().defined());  // freed: the flat buffer holds it now
    auto& f = s.flats[s.units[2].flats.front()];
    Collectives::wait(s, f.reducing, "gradient reduce-scatter");
    REQUIRE(f.reducing_part.numel() == f.shard_numel);
    CHECK(torch::equal(f.reducing_part.narrow(0, 0, 64), torch::full({64}, 2.0)));
    CHECK(f.reducing_part.narrow(0, 64, 8).abs().sum().item<float>() == 0);
    CHECK_FALSE(held(s, 2));
    CHECK(held(s, 1));
    // Once per backward: a second call leaves new gradients where they are.
    bias.mutable_grad() = torch::ones_like(bias);
    Collectives::launch_reduce(s, 2);
    CHECK(bias.grad().defined());
    // The root unit stays gathered: the next forward starts with it.
    model->head->weight.mutable_grad() = torch::ones_like(model->head->weight);
    Collectives::launch_reduce(s, s.root);
    Collectives::wait(s, s.flats[s.units[s.root].flats.front()].reducing, "gradient reduce-scatter");
    CHECK(held(s, s.root));
  }
}

TEST_CASE("zero collectives: backward_post prefetches the unit that ran before the one just reduced") {
  Stack model;
  State s = stack_layout(model, trainpp::ShardingStrategy::full_shard);
  s.options.backward_prefetch = trainpp::BackwardPrefetch::backward_post;
  s.forward_order = {0, 1, 2};
  Collectives::free_unit(s, 0);
  Collectives::free_unit(s, 1);
  Collectives::launch_reduce(s, 2);
  CHECK(held(s, 1));  // backward reaches it next
  CHECK_FALSE(held(s, 0));
  CHECK_FALSE(held(s, 2));
}

}  // namespace zero_collectives_test
