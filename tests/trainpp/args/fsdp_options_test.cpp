// What `accelerate launch` exports from its config file (mixed precision, FSDP), read as HF's Trainer
// reads it, and --fsdp's hybrid strategies. The variable names and values are those accelerate 1.x
// exports (tests/distributed/check_launchers.py runs accelerate itself).

#include <trainpp/args/fsdp_options.hpp>
#include <trainpp/args.hpp>

#include <doctest/doctest.h>

#include <map>
#include <set>
#include <string>

namespace fsdp_options_test {

using Vars = std::map<std::string, std::string>;

trainpp::EnvironmentReader reader(const Vars& vars) {
  return [vars](const std::string& name) -> std::optional<std::string> {
    const auto it = vars.find(name);
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
}

/// The arguments after the command line set `given` (already applied to `args`) and the environment.
trainpp::TrainingArguments with_environment(trainpp::TrainingArguments args, const std::set<std::string>& given,
                                            const Vars& vars) {
  args.apply_launcher_environment(given, reader(vars));
  return args;
}

}  // namespace fsdp_options_test

using fsdp_options_test::reader;
using fsdp_options_test::with_environment;

TEST_CASE("--fsdp hybrid_shard and hybrid_shard_zero2 shard within a node") {
  const auto full = trainpp::parse_fsdp_options("hybrid_shard auto_wrap", R"({"transformer_layer_cls_to_wrap": "Block"})", false);
  CHECK(full.hybrid);
  CHECK(full.strategy == trainpp::ShardingStrategy::full_shard);
  const auto zero2 = trainpp::parse_fsdp_options("hybrid_shard_zero2", std::nullopt, false);
  CHECK(zero2.hybrid);
  CHECK(zero2.strategy == trainpp::ShardingStrategy::shard_grad_op);
  CHECK_FALSE(trainpp::parse_fsdp_options("full_shard", std::nullopt, false).hybrid);
  CHECK_THROWS_WITH_AS((void)trainpp::parse_fsdp_options("hybrid_shard shard_grad_op", std::nullopt, false),
                       doctest::Contains("names more than one sharding strategy"), trainpp::Error);
  CHECK_THROWS_WITH_AS((void)trainpp::parse_fsdp_options("hybrid_shard hybrid_shard_zero2", std::nullopt, false),
                       doctest::Contains("names more than one sharding strategy"), trainpp::Error);
}

TEST_CASE("accelerate's mixed_precision is the default precision, the command line wins") {
  const fsdp_options_test::Vars bf16{{"ACCELERATE_MIXED_PRECISION", "bf16"}};
  CHECK(with_environment({}, {}, bf16).bf16);
  CHECK(with_environment({}, {}, {{"ACCELERATE_MIXED_PRECISION", "fp16"}}).fp16);
  const auto none = with_environment({}, {}, {{"ACCELERATE_MIXED_PRECISION", "no"}});
  CHECK_FALSE(none.bf16);
  CHECK_FALSE(none.fp16);
  // --bf16 false and --fp16 given: the environment yields (HF: fp16=True wins over the variable).
  CHECK_FALSE(with_environment({}, {"bf16"}, bf16).bf16);
  trainpp::TrainingArguments fp16;
  fp16.fp16 = true;
  const auto chosen = with_environment(fp16, {"fp16"}, bf16);
  CHECK(chosen.fp16);
  CHECK_FALSE(chosen.bf16);
  // A program's own default of bf16 stands too (HF: bf16=True in the code).
  trainpp::TrainingArguments program;
  program.bf16 = true;
  CHECK_FALSE(with_environment(program, {}, {{"ACCELERATE_MIXED_PRECISION", "fp16"}}).fp16);
  CHECK_THROWS_WITH_AS((void)with_environment({}, {}, {{"ACCELERATE_MIXED_PRECISION", "fp8"}}),
                       doctest::Contains("ACCELERATE_MIXED_PRECISION (accelerate's mixed_precision) must be no, bf16 or fp16, got 'fp8'"),
                       trainpp::Error);
}

TEST_CASE("accelerate's FSDP config becomes --fsdp and --fsdp_config") {
  const fsdp_options_test::Vars exported{{"ACCELERATE_USE_FSDP", "true"},       {"FSDP_SHARDING_STRATEGY", "SHARD_GRAD_OP"},
                                         {"FSDP_STATE_DICT_TYPE", "SHARDED_STATE_DICT"}, {"FSDP_AUTO_WRAP_POLICY", "NO_WRAP"},
                                         {"FSDP_MIN_NUM_PARAMS", "100000000"},   {"FSDP_OFFLOAD_PARAMS", "false"},
                                         {"FSDP_SYNC_MODULE_STATES", "true"},    {"FSDP_USE_ORIG_PARAMS", "true"},
                                         {"FSDP_FORWARD_PREFETCH", "false"},     {"FSDP_VERSION", "1"}};
  auto args = with_environment({}, {}, exported);
  CHECK(args.fsdp == "shard_grad_op");
  auto options = args.fsdp_options();
  CHECK(options.strategy == trainpp::ShardingStrategy::shard_grad_op);
  CHECK(options.state_dict_type == trainpp::StateDictType::sharded_state_dict);
  CHECK(options.min_num_params == 0);  // NO_WRAP: accelerate's default threshold means nothing then
  CHECK_FALSE(options.auto_wrap);

  // The numbers accelerate's older configs write: 1 FULL_SHARD ... 4 HYBRID_SHARD, 5 HYBRID_SHARD_ZERO2.
  for (const auto& [number, strategy, hybrid] :
       {std::tuple{"1", trainpp::ShardingStrategy::full_shard, false}, std::tuple{"2", trainpp::ShardingStrategy::shard_grad_op, false},
        std::tuple{"3", trainpp::ShardingStrategy::no_shard, false}, std::tuple{"4", trainpp::ShardingStrategy::full_shard, true},
        std::tuple{"5", trainpp::ShardingStrategy::shard_grad_op, true}}) {
    CAPTURE(number);
    const auto o = with_environment({}, {}, {{"ACCELERATE_USE_FSDP", "true"}, {"FSDP_SHARDING_STRATEGY", number}}).fsdp_options();
    CHECK(o.strategy == strategy);
    CHECK(o.hybrid == hybrid);
  }
  const auto wrapped = with_environment({}, {}, {{"ACCELERATE_USE_FSDP", "true"}, {"FSDP_SHARDING_STRATEGY", "HYBRID_SHARD"},
                                                 {"FSDP_AUTO_WRAP_POLICY", "TRANSFORMER_BASED_WRAP"},
                                                 {"FSDP_TRANSFORMER_CLS_TO_WRAP", "Block, Decoder"},
                                                 {"FSDP_BACKWARD_PREFETCH", "BACKWARD_PRE"}, {"FSDP_OFFLOAD_PARAMS", "true"}})
                           .fsdp_options();
  CHECK(wrapped.hybrid);
  CHECK(wrapped.offload);
  CHECK(wrapped.transformer_layer_cls_to_wrap == std::vector<std::string>{"Block", "Decoder"});
  CHECK(wrapped.backward_prefetch == trainpp::BackwardPrefetch::backward_pre);
  const auto sized = with_environment({}, {}, {{"ACCELERATE_USE_FSDP", "1"}, {"FSDP_AUTO_WRAP_POLICY", "SIZE_BASED_WRAP"},
                                               {"FSDP_MIN_NUM_PARAMS", "2000"}})
                         .fsdp_options();
  CHECK(sized.strategy == trainpp::ShardingStrategy::full_shard);  // accelerate's default strategy
  CHECK(sized.min_num_params == 2000);
  // FSDP 2 configs say reshard_after_forward instead of a strategy.
  CHECK(with_environment({}, {}, {{"ACCELERATE_USE_FSDP", "true"}, {"FSDP_VERSION", "2"}, {"FSDP_RESHARD_AFTER_FORWARD", "false"}})
            .fsdp == "shard_grad_op");

  // Flags win: --fsdp or --fsdp_config on the command line, or --fsdp in the program's defaults.
  trainpp::TrainingArguments flagged;
  flagged.fsdp = "full_shard";
  CHECK(with_environment(flagged, {"fsdp"}, exported).fsdp_options().state_dict_type == trainpp::StateDictType::full_state_dict);
  CHECK(with_environment({}, {"fsdp"}, exported).fsdp.empty());  // an explicit --fsdp "": no sharding
  CHECK(with_environment(flagged, {}, exported).fsdp == "full_shard");
  // Without ACCELERATE_USE_FSDP the FSDP_* variables mean nothing (accelerate leaves them for FSDP only).
  CHECK(with_environment({}, {}, {{"FSDP_SHARDING_STRATEGY", "FULL_SHARD"}}).fsdp.empty());
}

TEST_CASE("a value of accelerate's that trainpp cannot honour names the variable") {
  auto refused = [](const fsdp_options_test::Vars& vars, const char* message) {
    CAPTURE(message);
    auto all = vars;
    all.emplace("ACCELERATE_USE_FSDP", "true");
    CHECK_THROWS_WITH_AS((void)trainpp::accelerate_fsdp_environment(reader(all)), doctest::Contains(message), trainpp::Error);
  };
  refused({{"FSDP_SHARDING_STRATEGY", "6"}}, "FSDP_SHARDING_STRATEGY (accelerate's fsdp_sharding_strategy) must be");
  refused({{"FSDP_STATE_DICT_TYPE", "LOCAL_STATE_DICT"}}, "FSDP_STATE_DICT_TYPE must be FULL_STATE_DICT or SHARDED_STATE_DICT");
  refused({{"FSDP_AUTO_WRAP_POLICY", "TRANSFORMER_BASED_WRAP"}}, "FSDP_TRANSFORMER_CLS_TO_WRAP names no class");
  refused({{"FSDP_AUTO_WRAP_POLICY", "SIZE_BASED_WRAP"}, {"FSDP_MIN_NUM_PARAMS", "many"}}, "FSDP_MIN_NUM_PARAMS must be a non-negative integer");
  refused({{"FSDP_AUTO_WRAP_POLICY", "CUSTOM"}}, "FSDP_AUTO_WRAP_POLICY must be");
  refused({{"FSDP_OFFLOAD_PARAMS", "maybe"}}, "FSDP_OFFLOAD_PARAMS must be true or false");
  CHECK_THROWS_WITH_AS((void)trainpp::accelerate_fsdp_environment(reader({{"ACCELERATE_USE_FSDP", "perhaps"}})),
                       doctest::Contains("ACCELERATE_USE_FSDP must be true or false"), trainpp::Error);
}
