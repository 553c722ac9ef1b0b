// OptimArgs, HF's --optim_args: parsing of the key=value list, numbers and booleans, and the refusal of
// keys an optimizer does not read (where trainpp is stricter than HF on purpose).

#include <trainpp/args/optim_args.hpp>
#include <trainpp/optim/optimizer.hpp>

#include <doctest/doctest.h>

#include <array>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

namespace optim_args_test {

// Parameters named as a model's: fc.weight and emb decay, fc.bias does not.
struct NetImpl : torch::nn::Module {
  NetImpl() {
    fc = register_module("fc", torch::nn::Linear(3, 4));
    emb = register_parameter("emb", torch::zeros({2, 3, 5}));
  }
  torch::nn::Linear fc{nullptr};
  torch::Tensor emb;
};
TORCH_MODULE(Net);

TEST_CASE("optim_args: HF's key=value list, refused where the optimizer does not read it") {
  const auto parsed = trainpp::OptimArgs::parse(" momentum = 0.9 ,nesterov=True");
  CHECK(parsed.number("momentum") == 0.9);
  CHECK(parsed.flag("nesterov") == true);
  CHECK_FALSE(parsed.number("dampening").has_value());
  CHECK(trainpp::OptimArgs::parse("").empty());

  CHECK_THROWS_WITH(trainpp::OptimArgs::parse("momentum"), doctest::Contains("'momentum' is not key=value"));
  CHECK_THROWS_WITH(trainpp::OptimArgs::parse("a=1=2"), doctest::Contains("'a=1=2' is not key=value"));
  CHECK_THROWS_WITH(trainpp::OptimArgs::parse("a=1,a=2"), doctest::Contains("'a' is given twice"));
  CHECK_THROWS_WITH((void)trainpp::OptimArgs::parse("momentum=fast").number("momentum"),
                    doctest::Contains("momentum=fast is not a finite number"));
  CHECK_THROWS_WITH((void)trainpp::OptimArgs::parse("nesterov=maybe").flag("nesterov"),
                    doctest::Contains("nesterov=maybe is not a boolean"));

  trainpp::TrainingArguments args;
  args.optim = trainpp::OptimizerName::sgd;
  args.optim_args = "momentum=0.9,betas=0.1";
  CHECK_THROWS_WITH(trainpp::validate(args),
                    doctest::Contains("--optim sgd does not read 'betas' (it reads: momentum, dampening, nesterov)"));
  args.optim_args = "weight_decay=0.1";
  CHECK_THROWS_WITH(trainpp::validate(args), doctest::Contains("use --weight_decay"));
  args.optim = trainpp::OptimizerName::adamw_torch;
  args.optim_args = "eps=1e-6";
  CHECK_THROWS_WITH(trainpp::validate(args), doctest::Contains("--adam_epsilon"));
  args.optim = trainpp::OptimizerName::rmsprop;
  args.optim_args = "centered=true,alpha=0.9";
  CHECK_NOTHROW(trainpp::validate(args));
  {
    trainpp::TrainingArguments sharded;
    sharded.optim = trainpp::OptimizerName::adafactor;
    sharded.fsdp = "full_shard";
    CHECK_THROWS_WITH(trainpp::validate(sharded), doctest::Contains("--optim adafactor cannot run on sharded optimizer "
                                                                     "state (--fsdp full_shard)"));
    sharded.optim = trainpp::OptimizerName::lion_32bit;  // elementwise: the same update on flat pieces
    CHECK_NOTHROW(trainpp::validate(sharded));
  }

  // make_optimizer reads them into the optimizer's options.
  Net net;
  args.optim_args = "momentum=0.3,centered=yes,eps=1e-5";
  auto optimizer = trainpp::make_optimizer(*net, args);
  optimizer.visit([](auto& o) {
    if constexpr (std::is_same_v<std::decay_t<decltype(o)>, trainpp::RMSprop>) {
      CHECK(o.options().momentum == 0.3);
      CHECK(o.options().centered);
      CHECK(o.options().eps == 1e-5);
      CHECK(o.options().alpha == 0.99);
    } else {
      FAIL("expected RMSprop");
    }
  });
}

TEST_CASE("optim_args: spaces are dropped anywhere, order is kept, and malformed entries are refused") {
  const auto parsed = trainpp::OptimArgs::parse("lr _decay = 0.5 , eps=1e-8,centered=no");
  using Entries = std::vector<std::pair<std::string, std::string>>;
  CHECK(parsed.entries() == Entries{{"lr_decay", "0.5"}, {"eps", "1e-8"}, {"centered", "no"}});
  CHECK_FALSE(parsed.empty());
  CHECK(trainpp::OptimArgs::parse("   ").empty());
  CHECK(trainpp::OptimArgs().empty());

  CHECK_THROWS_WITH_AS(trainpp::OptimArgs::parse("=1"), doctest::Contains("'=1' is not key=value"), trainpp::Error);
  CHECK_THROWS_WITH_AS(trainpp::OptimArgs::parse("a=1,"), doctest::Contains("'' is not key=value"), trainpp::Error);
  CHECK_THROWS_WITH_AS(trainpp::OptimArgs::parse("a=1,,b=2"), doctest::Contains("'' is not key=value"),
                       trainpp::Error);
  CHECK_THROWS_WITH_AS(trainpp::OptimArgs::parse("a = 1, a=1"), doctest::Contains("'a' is given twice"),
                       trainpp::Error);
  // An empty value parses; reading it as a number or flag is what fails.
  const auto empty_value = trainpp::OptimArgs::parse("eps=");
  CHECK(empty_value.entries().front().second.empty());
  CHECK_THROWS_WITH_AS((void)empty_value.number("eps"), doctest::Contains("eps= is not a finite number"),
                       trainpp::Error);
}

TEST_CASE("optim_args: number accepts finite decimal and exponent forms only") {
  const auto args = trainpp::OptimArgs::parse("a=1e-3,b=-2,c=0.25,d=inf,e=nan,f=0.5x,g=1e999");
  CHECK(args.number("a") == 1e-3);
  CHECK(args.number("b") == -2.0);
  CHECK(args.number("c") == 0.25);
  CHECK_FALSE(args.number("z").has_value());
  CHECK_THROWS_WITH_AS((void)args.number("d"), doctest::Contains("d=inf is not a finite number"), trainpp::Error);
  CHECK_THROWS_WITH_AS((void)args.number("e"), doctest::Contains("e=nan is not a finite number"), trainpp::Error);
  CHECK_THROWS_WITH_AS((void)args.number("f"), doctest::Contains("f=0.5x is not a finite number"), trainpp::Error);
  CHECK_THROWS_WITH_AS((void)args.number("g"), doctest::Contains("g=1e999 is not a finite number"), trainpp::Error);
}

// HF reads these values with Python's float(), which takes one leading '+' ("momentum=+0.9").
TEST_CASE("optim_args: number accepts an explicit plus sign as Python's float does") {
  const auto args = trainpp::OptimArgs::parse("momentum=+0.9,a=+-1,b=++1,c=+");
  CHECK(args.number("momentum") == 0.9);
  CHECK_THROWS_WITH_AS((void)args.number("a"), doctest::Contains("a=+-1 is not a finite number"), trainpp::Error);
  CHECK_THROWS_WITH_AS((void)args.number("b"), doctest::Contains("b=++1 is not a finite number"), trainpp::Error);
  CHECK_THROWS_WITH_AS((void)args.number("c"), doctest::Contains("c=+ is not a finite number"), trainpp::Error);
}

TEST_CASE("optim_args: flag reads true/1/yes and false/0/no in any case, nothing else") {
  const auto args = trainpp::OptimArgs::parse("a=TRUE,b=Yes,c=1,d=False,e=NO,f=0,g=2,h=on");
  CHECK(args.flag("a") == true);
  CHECK(args.flag("b") == true);
  CHECK(args.flag("c") == true);
  CHECK(args.flag("d") == false);
  CHECK(args.flag("e") == false);
  CHECK(args.flag("f") == false);
  CHECK_FALSE(args.flag("missing").has_value());
  // HF would read these as false; here they are refused.
  CHECK_THROWS_WITH_AS((void)args.flag("g"), doctest::Contains("g=2 is not a boolean (true/false, 1/0, yes/no)"),
                       trainpp::Error);
  CHECK_THROWS_WITH_AS((void)args.flag("h"), doctest::Contains("h=on is not a boolean"), trainpp::Error);
}

TEST_CASE("optim_args: accept_only names the keys the optimizer reads and appends the note") {
  constexpr std::array<std::string_view, 2> keys{"momentum", "nesterov"};
  const auto args = trainpp::OptimArgs::parse("momentum=0.9,betas=0.1");
  CHECK_THROWS_WITH_AS(args.accept_only("myopt", keys, "its betas are elsewhere"),
                       doctest::Contains("--optim myopt does not read 'betas' (it reads: momentum, nesterov); its betas "
                                         "are elsewhere"),
                       trainpp::Error);
  CHECK_NOTHROW(trainpp::OptimArgs::parse("nesterov=1,momentum=0.5").accept_only("myopt", keys));
  CHECK_NOTHROW(trainpp::OptimArgs().accept_only("noargs", {}));

  // An optimizer that reads nothing: the message says so, with or without a note.
  CHECK_THROWS_WITH_AS(trainpp::OptimArgs::parse("eps=1").accept_only("noargs", {}),
                       doctest::Contains("--optim noargs reads no optim_args, got 'eps'"), trainpp::Error);
  try {
    trainpp::OptimArgs::parse("eps=1").accept_only("noargs", {});
    FAIL("expected a refusal");
  } catch (const trainpp::Error& e) {
    CHECK(std::string(e.what()).find("; ") == std::string::npos);  // no dangling separator without a note
  }
  // weight_decay gets its own explanation, even for an optimizer that reads other keys.
  CHECK_THROWS_WITH_AS(trainpp::OptimArgs::parse("weight_decay=0.1").accept_only("myopt", keys),
                       doctest::Contains("weight_decay has no effect in HF's Trainer"), trainpp::Error);
}

}  // namespace optim_args_test
