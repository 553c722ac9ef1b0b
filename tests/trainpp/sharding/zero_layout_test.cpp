// ZeroLayout: auto-wrap's choice of units, the flat buffers (one per unit and dtype, padded to a
// multiple of the processes) and each process's piece of every parameter, checked against hand counts.

#include <trainpp/sharding/zero_layout.hpp>
#include <trainpp/trainpp.hpp>

#include <doctest/doctest.h>

#include <cstdint>
#include <string>
#include <vector>

namespace zero_layout_test {

using Layout = trainpp::detail::ZeroLayout;

struct BlockImpl : torch::nn::Module {
  torch::nn::Linear fc{nullptr};
  BlockImpl() { fc = register_module("fc", torch::nn::Linear(8, 8)); }
  torch::Tensor forward(const torch::Tensor& x) { return x + torch::tanh(fc(x)); }
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

/// A float Linear (6 + 3 elements) and a double parameter (5 elements): two dtypes in one unit.
struct MixedImpl : torch::nn::Module {
  torch::Tensor scale;
  torch::nn::Linear fc{nullptr};
  MixedImpl() {
    scale = register_parameter("scale", torch::arange(1, 6, torch::kDouble));
    fc = register_module("fc", torch::nn::Linear(2, 3));
  }
};
TORCH_MODULE(Mixed);

/// The same Linear under two names, and a frozen one.
struct TiedImpl : torch::nn::Module {
  torch::nn::Linear shared{nullptr}, frozen{nullptr};
  TiedImpl() {
    shared = register_module("a", torch::nn::Linear(2, 2));
    register_module("b", shared);
    frozen = register_module("frozen", torch::nn::Linear(2, 2));
    for (auto& p : frozen->parameters()) p.requires_grad_(false);
  }
};
TORCH_MODULE(Tied);

/// The flat buffer of `dtype` (a unit holds one per dtype).
const Layout::Flat& flat_of(const Layout::State& s, c10::ScalarType dtype) {
  for (const auto& f : s.flats)
    if (f.full.scalar_type() == dtype) return f;
  FAIL("no flat buffer of that dtype");
  return s.flats.front();
}

/// The mixed model laid out for `world` processes as process `rank` sees it.
Layout::State mixed_layout(Mixed& model, int world, int rank, trainpp::ShardingStrategy strategy) {
  Layout::State s;
  s.strategy = strategy;
  s.world = world;
  s.rank = rank;
  Layout::build_units(s, *model);
  Layout::build_flats(s);
  return s;
}

std::size_t index_of(const Layout::State& s, const std::string& name) { return s.index_of_name.at(name); }

TEST_CASE("auto-wrap picks units by class name, or bottom-up by size as torch does") {
  Net net;
  trainpp::FsdpOptions by_class;
  by_class.transformer_layer_cls_to_wrap = {"Block"};
  trainpp::FullShard a(by_class);
  a.prepare(*net, torch::kCPU);
  CHECK(a.describe_units() == std::vector<std::string>{"first (Block): 72 parameters", "second (Block): 72 parameters",
                                                       "<root> (Net): 67 parameters"});
  Net other;
  trainpp::FsdpOptions by_size;
  by_size.min_num_params = 60;
  trainpp::FullShard b(by_size);
  b.prepare(*other, torch::kCPU);
  // The deepest modules with 60 parameters: each block's Linear, not the block around it.
  CHECK(b.describe_units() == std::vector<std::string>{"first.fc (Linear): 72 parameters",
                                                       "second.fc (Linear): 72 parameters",
                                                       "<root> (Net): 67 parameters"});
}

TEST_CASE("zero layout: short_type drops namespaces and TORCH_MODULE's Impl suffix") {
  CHECK(Layout::short_type("torch::nn::LinearImpl") == "Linear");
  CHECK(Layout::short_type("zero_layout_test::BlockImpl") == "Block");
  CHECK(Layout::short_type("Net") == "Net");
  CHECK(Layout::short_type("a::b::Decoder") == "Decoder");
  // A class called just "Impl" keeps its name: there would be nothing left.
  CHECK(Layout::short_type("ns::Impl") == "Impl");
  CHECK(Layout::short_type("Implement") == "Implement");
}

TEST_CASE("zero layout: classes to wrap match with or without namespaces, and a missing one lists the model's") {
  Net net;
  Layout::State qualified;
  qualified.options.transformer_layer_cls_to_wrap = {"zero_layout_test::BlockImpl"};
  Layout::build_units(qualified, *net);
  REQUIRE(qualified.units.size() == 3);
  CHECK(qualified.units[0].name == "first");
  CHECK(qualified.units[0].type == "Block");
  CHECK(qualified.units[1].name == "second");
  CHECK(qualified.root == 2);
  CHECK(qualified.units[2].module == nullptr);
  CHECK(qualified.units[2].type == "Net");
  // Every parameter in exactly one unit, and each unit's count pending for the first backward.
  for (std::size_t k = 0; k < qualified.params.size(); ++k) CHECK(qualified.unit_of[k] < qualified.units.size());
  CHECK(qualified.units[0].pending == 2);
  CHECK(qualified.units[2].pending == 4);

  Layout::State missing;
  missing.options.transformer_layer_cls_to_wrap = {"Decoder", "Attention"};
  CHECK_THROWS_WITH_AS(Layout::build_units(missing, *net),
                       doctest::Contains("fsdp_transformer_layer_cls_to_wrap: no module of class Decoder, Attention in "
                                         "the model (its module classes: Block, Linear)"),
                       trainpp::Error);
}

TEST_CASE("zero layout: without auto-wrap the root unit holds every trainable parameter once") {
  Tied tied;
  Layout::State s;
  Layout::build_units(s, *tied);
  // The shared Linear's weight and bias once, under their first name; the frozen Linear not at all.
  REQUIRE(s.params.size() == 2);
  CHECK(s.names == std::vector<std::string>{"a.weight", "a.bias"});
  CHECK_FALSE(s.index_of_name.contains("b.weight"));
  REQUIRE(s.units.size() == 1);
  CHECK(s.root == 0);
  CHECK(s.units[0].params == std::vector<std::size_t>{0, 1});
  CHECK(s.unit_of == std::vector<std::size_t>{0, 0});
}

TEST_CASE("zero layout: each unit's parameters of one dtype lie end to end in a buffer padded to the processes") {
  Mixed model;
  const auto weight = model->fc->weight.detach().clone();
  Layout::State s = mixed_layout(model, /*world=*/3, /*rank=*/1, trainpp::ShardingStrategy::shard_grad_op);
  REQUIRE(s.flats.size() == 2);
  CHECK(s.units[s.root].flats.size() == 2);
  const auto& floats = flat_of(s, torch::kFloat);
  CHECK(floats.numel == 9);
  CHECK(floats.padded == 9);
  CHECK(floats.shard_numel == 3);
  CHECK(floats.offsets == std::vector<std::int64_t>{0, 6});
  const auto& doubles = flat_of(s, torch::kDouble);
  CHECK(doubles.numel == 5);
  CHECK(doubles.padded == 6);  // 5 rounded up to a multiple of 3
  CHECK(doubles.shard_numel == 2);
  CHECK(doubles.full[5].item<double>() == 0);  // the padding
  // The parameters keep their values and become views of the buffer.
  CHECK(torch::equal(model->fc->weight, weight));
  CHECK(torch::equal(model->scale, torch::arange(1, 6, torch::kDouble)));
  doubles.full.narrow(0, 0, 5).mul_(2);
  CHECK(torch::equal(model->scale, torch::arange(1, 6, torch::kDouble) * 2));
  // ShardGradOp: process 1's shard is elements [2, 4) of the buffer itself.
  CHECK(doubles.shard_is_view);
  CHECK(doubles.shard.data_ptr<double>() == doubles.full.data_ptr<double>() + 2);
  CHECK(doubles.grad_shard.numel() == 2);
  CHECK(doubles.grad_shard.abs().sum().item<double>() == 0);
  CHECK(doubles.gathered);
}

TEST_CASE("zero layout: FullShard's shard is a copy of its part, not a view of the buffer") {
  Mixed model;
  Layout::State s = mixed_layout(model, /*world=*/2, /*rank=*/1, trainpp::ShardingStrategy::full_shard);
  const auto& floats = flat_of(s, torch::kFloat);
  CHECK(floats.padded == 10);
  CHECK(floats.shard_numel == 5);
  CHECK_FALSE(floats.shard_is_view);
  CHECK(torch::equal(floats.shard, floats.full.narrow(0, 5, 5)));
  floats.full.zero_();  // the buffer may be freed: the shard must not go with it
  CHECK(floats.shard.abs().sum().item<float>() > 0);
}

TEST_CASE("zero layout: every element of a parameter is in exactly one process's piece") {
  Mixed model;
  const int world = 3;
  for (int rank = 0; rank < world; ++rank) {
    Layout::State s = mixed_layout(model, world, rank, trainpp::ShardingStrategy::shard_grad_op);
    for (std::size_t k = 0; k < s.params.size(); ++k) {
      CAPTURE(s.names[k]);
      std::int64_t covered = 0;
      for (int r = 0; r < world; ++r) covered += Layout::piece_range(s, k, r).second;
      CHECK(covered == s.params[k].numel());
    }
    // fc.weight is elements [0, 6) of the float buffer (shards of 3): ranks 0 and 1 hold half each;
    // fc.bias, [6, 9), is wholly rank 2's.
    const auto weight = index_of(s, "fc.weight"), bias = index_of(s, "fc.bias");
    CHECK(Layout::piece_range(s, weight, 1) == std::pair<std::int64_t, std::int64_t>{0, 3});
    CHECK(Layout::piece_range(s, weight, 2) == std::pair<std::int64_t, std::int64_t>{0, 0});
    CHECK(Layout::piece_range(s, bias, 0) == std::pair<std::int64_t, std::int64_t>{0, 0});
    CHECK(Layout::piece_range(s, bias, 2) == std::pair<std::int64_t, std::int64_t>{0, 3});
    // scale, [0, 5) of the double buffer (shards of 2): rank 2 holds its last element only.
    CHECK(Layout::piece_range(s, index_of(s, "scale"), 2) == std::pair<std::int64_t, std::int64_t>{0, 1});
  }
}

TEST_CASE("zero layout: piece_of hands the optimizer a trainable view of this process's shard") {
  Mixed model;
  Layout::State s = mixed_layout(model, /*world=*/3, /*rank=*/1, trainpp::ShardingStrategy::shard_grad_op);
  const auto weight = index_of(s, "fc.weight");
  const auto piece = Layout::piece_of(s, weight);
  CHECK((s.flats[piece.flat].full.scalar_type() == torch::kFloat));
  CHECK(piece.begin == 0);
  CHECK(piece.data.requires_grad());
  REQUIRE(piece.data.numel() == 3);
  // Process 1 owns elements 3..5 of the weight, row-major.
  CHECK(torch::equal(piece.data.detach(), model->fc->weight.detach().reshape(-1).narrow(0, 3, 3)));
  CHECK(piece.data.data_ptr<float>() == s.flats[piece.flat].shard.data_ptr<float>());
  // A parameter wholly in other processes' parts: an empty piece.
  CHECK(Layout::piece_of(s, index_of(s, "fc.bias")).data.numel() == 0);
  const auto scale = Layout::piece_of(s, index_of(s, "scale"));
  CHECK(torch::equal(scale.data.detach(), torch::tensor({3.0, 4.0}, torch::kDouble)));
}

}  // namespace zero_layout_test
