// decay_param_groups against the groups HF Trainer.create_optimizer builds for the same module
// (tests/data/optim/reference.json, written by tools/reference/gen_adamw_reference.py).

#include <trainpp/optim/param_groups.hpp>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <fstream>
#include <string>
#include <vector>

// Everything in a namespace of its own: the test build may compile several test files as one unit.
namespace param_groups_test {

nlohmann::json load_reference() {
  std::ifstream in(TRAINPP_TEST_DATA_DIR "/optim/reference.json");
  REQUIRE(in.good());
  return nlohmann::json::parse(in);
}

namespace nn = torch::nn;

// The Python DecayNet of the generator, module by module, in the same registration order.
struct FinalNormImpl : nn::Module {
  FinalNormImpl() { weight = register_parameter("weight", torch::ones({4})); }
  torch::Tensor weight;
};
TORCH_MODULE(FinalNorm);

struct BlockImpl : nn::Module {
  BlockImpl() {
    fc = register_module("fc", nn::Linear(4, 4));
    ln = register_module("ln", nn::LayerNorm(nn::LayerNormOptions({4})));
    norm = register_module("norm", nn::Linear(4, 4));
    mlp_norm = register_module("mlp_norm", FinalNorm());
    normalizer = register_module("normalizer", nn::Linear(nn::LinearOptions(4, 2).bias(false)));
    gain = register_parameter("gain", torch::ones({4}));
  }
  nn::Linear fc{nullptr}, norm{nullptr}, normalizer{nullptr};
  nn::LayerNorm ln{nullptr};
  FinalNorm mlp_norm{nullptr};
  torch::Tensor gain;
};
TORCH_MODULE(Block);

struct DecayNetImpl : nn::Module {
  DecayNetImpl() {
    pos_emb = register_parameter("pos_emb", torch::zeros({3, 4}));
    temperature_norm = register_parameter("temperature_norm", torch::ones({1}));
    embed = register_module("embed", nn::Embedding(10, 4));
    tied = register_parameter("tied", embed->weight);
    layer1 = register_module("layer1", Block());
    layer2 = register_module("layer2", Block());
    q_rmsnorm = register_module("q_rmsnorm", nn::Linear(4, 4));
    final_LayerNorm = register_module("final_LayerNorm", nn::Linear(4, 4));
    ln_f = register_module("ln_f", nn::LayerNorm(nn::LayerNormOptions({4})));
    head = register_module("head", nn::Linear(4, 3));
    frozen = register_module("frozen", nn::Linear(4, 4));
    for (auto& p : frozen->parameters()) p.requires_grad_(false);
  }
  torch::Tensor pos_emb, temperature_norm, tied;
  nn::Embedding embed{nullptr};
  Block layer1{nullptr}, layer2{nullptr};
  nn::Linear q_rmsnorm{nullptr}, final_LayerNorm{nullptr}, head{nullptr}, frozen{nullptr};
  nn::LayerNorm ln_f{nullptr};
};
TORCH_MODULE(DecayNet);


TEST_CASE("decay_param_groups reproduces HF's weight-decay split") {
  const auto ref = load_reference().at("decay_groups");
  DecayNet net;
  const auto groups = trainpp::decay_param_groups(*net, 3e-4, 0.05);
  REQUIRE(groups.size() == 2);
  CHECK(groups[0].names == ref.at("group0").get<std::vector<std::string>>());
  CHECK(groups[1].names == ref.at("group1").get<std::vector<std::string>>());
  CHECK(groups[0].weight_decay == 0.05);
  CHECK(groups[1].weight_decay == 0.0);
  for (const auto& g : groups) {
    CHECK(g.lr == 3e-4);
    CHECK(g.initial_lr == 3e-4);
    REQUIRE(g.params.size() == g.names.size());
  }
  // The tensors are the module's own parameters, not copies.
  auto params = net->named_parameters();
  for (const auto& g : groups)
    for (std::size_t i = 0; i < g.params.size(); ++i) CHECK(g.params[i].is_same(params[g.names[i]]));
  // The shared embedding weight appears once, under its first name.
  CHECK(groups[0].params[1].is_same(net->embed->weight));
}

TEST_CASE("decay_param_groups keeps an empty no-decay group, as HF does") {
  auto lin = nn::Linear(nn::LinearOptions(3, 2).bias(false));
  const auto groups = trainpp::decay_param_groups(*lin, 1e-3, 0.1);
  REQUIRE(groups.size() == 2);
  CHECK(groups[0].names == std::vector<std::string>{"weight"});
  CHECK(groups[1].params.empty());
}

TEST_CASE("HF's name patterns") {
  using trainpp::detail::hf_no_decay_name;
  CHECK(hf_no_decay_name("fc.bias"));
  CHECK(hf_no_decay_name("encoder.LayerNorm.weight"));
  CHECK(hf_no_decay_name("input_RMSNorm.weight"));
  CHECK(hf_no_decay_name("norm.weight"));
  CHECK(hf_no_decay_name("model.norm"));
  CHECK(hf_no_decay_name("attn_norm.weight"));
  CHECK_FALSE(hf_no_decay_name("normalizer.weight"));
  CHECK_FALSE(hf_no_decay_name("enorm.weight"));
  CHECK_FALSE(hf_no_decay_name("fc.weight"));
}

}  // namespace param_groups_test
