// Generated malformed command lines and JSON argument files: every one must end in a trainpp::Error
// whose message names the offending flag, key or problem — no other exception, no crash, no hang and
// no silent acceptance. Generated valid ones must still parse, so that a parser refusing everything
// cannot pass. The generator is seeded: a failure reproduces, and its input is printed.

#include <trainpp/trainpp.hpp>

#include <doctest/doctest.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <optional>
#include <random>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include <unistd.h>

namespace cli_fuzz_test {

using trainpp::TrainingArguments;

/// A program's own flags beside TrainingArguments, with integer and float types narrower than
/// TrainingArguments' own, so that range checks against the field's type are exercised.
struct ExtraArgs {
  std::string data_dir = "data";
  std::optional<std::int64_t> max_train_samples;
  std::int32_t width = 16;
  float scale = 1.0f;
};
template <class V>
void visit_fields(ExtraArgs& a, V&& v) {
  v(trainpp::FieldInfo{"data_dir", "Where the data is.", "data"}, a.data_dir);
  v(trainpp::FieldInfo{"max_train_samples", "Train on the first N examples only."}, a.max_train_samples);
  v(trainpp::FieldInfo{"width", "Hidden width."}, a.width);
  v(trainpp::FieldInfo{"scale", "A scale factor."}, a.scale);
}

enum class Kind { boolean, integer, int32, real, real32, text, choice, list, object };

/// What the generator knows of one flag.
struct Flag {
  std::string name;
  Kind kind;
  bool optional = false;
  bool defaults_true = false;
  std::vector<std::string> choices;  // for Kind::choice
};

template <class T> struct unwrap { using type = T; static constexpr bool optional = false; };
template <class T> struct unwrap<std::optional<T>> { using type = T; static constexpr bool optional = true; };

std::vector<Flag> all_flags() {
  std::vector<Flag> flags;
  std::tuple<ExtraArgs, TrainingArguments> structs;
  std::apply([&](auto&... s) {
    (visit_fields(s, [&](const trainpp::FieldInfo& info, auto& value) {
       using Field = std::remove_cvref_t<decltype(value)>;
       using T = typename unwrap<Field>::type;
       Flag f{std::string(info.name), Kind::text, unwrap<Field>::optional};
       if constexpr (std::is_same_v<T, bool>) {
         f.kind = Kind::boolean;
         if constexpr (std::is_same_v<Field, bool>) f.defaults_true = value;
       } else if constexpr (std::is_same_v<T, std::int32_t>) f.kind = Kind::int32;
       else if constexpr (std::is_integral_v<T>) f.kind = Kind::integer;
       else if constexpr (std::is_same_v<T, float>) f.kind = Kind::real32;
       else if constexpr (std::is_floating_point_v<T>) f.kind = Kind::real;
       else if constexpr (std::is_same_v<T, std::string>) f.kind = Kind::text;
       else if constexpr (std::is_same_v<T, nlohmann::json>) f.kind = Kind::object;
       else if constexpr (std::is_same_v<T, std::vector<std::string>>) f.kind = Kind::list;
       else if constexpr (trainpp::NamedEnum<T>) {
         f.kind = Kind::choice;
         for (const auto& [e, name] : trainpp::enum_names<T>::values) f.choices.emplace_back(name);
       }
       flags.push_back(std::move(f));
     }), ...);
  }, structs);
  return flags;
}

/// A deterministic source of choices: std::mt19937 with a fixed seed, and modulo rather than the
/// standard distributions, whose output differs between standard libraries.
class Generator {
 public:
  explicit Generator(std::uint32_t seed) : engine_(seed) {}
  std::size_t below(std::size_t n) { return static_cast<std::size_t>(engine_()) % n; }
  bool chance(std::size_t percent) { return below(100) < percent; }
  template <class C>
  typename C::value_type pick(const C& c) { return c[below(c.size())]; }

 private:
  std::mt19937 engine_;
};

using Group = std::vector<std::string>;  // a flag and its values
using Line = std::vector<Group>;

/// Valid command lines the mutations start from; each also parses as it stands.
const std::vector<Line>& base_lines() {
  static const std::vector<Line> lines{
      {},
      {{"--output_dir", "out"}, {"--learning_rate", "2e-5"}, {"--num_train_epochs", "3"}, {"--do_train"}},
      {{"--per_device_train_batch_size", "16"}, {"--eval_strategy", "steps"}, {"--eval_steps", "50"},
       {"--save_strategy", "steps"}, {"--save_steps", "100"}, {"--load_best_model_at_end"},
       {"--metric_for_best_model", "accuracy"}},
      {{"--lr_scheduler_type", "cosine"}, {"--lr_scheduler_kwargs", R"({"num_cycles": 2})"}, {"--warmup_steps", "0.1"},
       {"--label_names", "start", "end"}, {"--report_to", "none"}},
      {{"--optim", "sgd"}, {"--max_steps", "100"}, {"--logging_steps", "10"}, {"--seed", "7"}, {"--data_seed", "3"},
       {"--no_dataloader_pin_memory"}, {"--bf16"}},
      {{"--data_dir", "/tmp/data"}, {"--max_train_samples", "100"}, {"--width", "32"}, {"--scale", "0.5"},
       {"--dataloader_num_workers", "2"}, {"--dataloader_prefetch_factor", "4"}},
      {{"--eval_strategy", "epoch"}, {"--save_strategy", "epoch"}, {"--save_total_limit", "2"}, {"--log_level", "info"},
       {"--disable_tqdm", "true"}, {"--tf32", "false"}, {"--do_eval", "yes"}},
  };
  return lines;
}

std::vector<std::string> flatten(const Line& line) {
  std::vector<std::string> argv;
  for (const auto& group : line) argv.insert(argv.end(), group.begin(), group.end());
  return argv;
}

/// `text` printable on one line, for failure reports.
std::string printable(std::string_view text) {
  std::string out;
  for (const char c : text.substr(0, 120)) {
    const auto byte = static_cast<unsigned char>(c);
    out += byte < 0x20 || byte >= 0x7F ? fmt::format("\\x{:02x}", byte) : std::string(1, c);
  }
  return text.size() > 120 ? fmt::format("{}...({} bytes)", out, text.size()) : out;
}
std::string printable(const std::vector<std::string>& argv) {
  std::string out;
  for (const auto& token : argv) out += fmt::format("{}'{}'", out.empty() ? "" : " ", printable(token));
  return out;
}

/// One generated input and the text its error message must contain.
struct Case {
  std::vector<std::string> argv;
  std::string needle;
  std::string what;  // the mutation, for reports
};

enum class Outcome { accepted, refused, wrong_exception };
struct Result {
  Outcome outcome;
  std::string message;
};

Result parse(const std::vector<std::string>& argv) {
  try {
    (void)trainpp::parse_args_into<ExtraArgs, TrainingArguments>(argv, "fuzz");
    return {Outcome::accepted, ""};
  } catch (const trainpp::Error& e) {
    return {Outcome::refused, e.what()};
  } catch (const trainpp::HelpRequested&) {
    return {Outcome::wrong_exception, "HelpRequested"};
  } catch (const std::exception& e) {
    return {Outcome::wrong_exception, fmt::format("std::exception: {}", e.what())};
  } catch (...) {
    return {Outcome::wrong_exception, "an exception of unknown type"};
  }
}

/// Checks that every case is refused with a message naming its problem; returns the number of
/// cases that were, and adds a report line for each that was not.
std::size_t count_refusals(const std::vector<Case>& cases, std::vector<std::string>& failures) {
  std::size_t refused = 0;
  for (const auto& c : cases) {
    const auto result = parse(c.argv);
    std::string problem;
    if (result.outcome == Outcome::accepted) problem = "accepted";
    else if (result.outcome == Outcome::wrong_exception) problem = "threw " + result.message;
    else if (result.message.empty()) problem = "an empty message";
    else if (result.message.find(c.needle) == std::string::npos)
      problem = fmt::format("a message without '{}': {}", printable(c.needle), printable(result.message));
    else if (result.message.size() > 600) problem = fmt::format("a message of {} bytes", result.message.size());
    if (problem.empty()) ++refused;
    else failures.push_back(fmt::format("[{}] {} -> {}", c.what, printable(c.argv), problem));
  }
  return refused;
}

class CommandLineFuzzer {
 public:
  explicit CommandLineFuzzer(std::uint32_t seed) : gen_(seed), flags_(all_flags()) {}

  [[nodiscard]] bool is_known(std::string_view name) const {
    for (const auto& f : flags_)
      if (f.name == name || (f.defaults_true && "no_" + f.name == name)) return true;
    return false;
  }

  /// A flag name one to three edits away from a real one, and no real one itself.
  std::string typo() {
    static const std::string letters = "abcdefghijklmnopqrstuvwxyz_0123456789";
    for (;;) {
      std::string name = gen_.pick(flags_).name;
      const std::size_t edits = 1 + gen_.below(3);
      for (std::size_t e = 0; e < edits && !name.empty(); ++e) {
        const std::size_t at = gen_.below(name.size());
        switch (gen_.below(4)) {
          case 0: name.erase(at, 1); break;
          case 1: name[at] = gen_.pick(letters); break;
          case 2: name.insert(at, 1, gen_.pick(letters)); break;
          default:
            if (at + 1 < name.size()) std::swap(name[at], name[at + 1]);
            else name += gen_.pick(letters);
        }
      }
      if (!name.empty() && !is_known(name)) return name;
    }
  }

  const Flag& flag_of(std::initializer_list<Kind> kinds) {
    for (;;) {
      const Flag& f = flags_[gen_.below(flags_.size())];
      for (const Kind k : kinds)
        if (f.kind == k) return f;
    }
  }

  /// A value that does not parse as `f`'s type, and the text the error must contain.
  std::pair<std::string, std::string> bad_value(const Flag& f) {
    const std::string digits = std::to_string(gen_.below(100000));
    static const std::vector<std::string> not_numbers{
        "", " ", "abc", "one", "1..2", "1,5", "1_000", "0x1A", "0b101", "--", "-", "+", "1e", "e5", ".", "1.2.3", "12abc",
        "\t7", "7\n", " 7", "7 ", "1/2", "5%", "$5", "1e+", "(1)", "\xff", "\xc3\xa9", "NaN(1)", "٣"};
    static const std::vector<std::string> not_ints{"1.5", "2.0", "1e3", "7.", ".5", "-0.1", "3e-1"};
    static const std::vector<std::string> int64_overflow{"9223372036854775808", "-9223372036854775809",
                                                         "99999999999999999999999", "18446744073709551616"};
    static const std::vector<std::string> int32_overflow{"2147483648", "-2147483649", "4294967296", "9223372036854775807"};
    static const std::vector<std::string> non_finite{"inf", "-inf", "+inf", "nan", "-nan", "NaN", "INF", "Infinity",
                                                     "-infinity", "1e309", "-1e999", "1e400", "2e308"};
    static const std::vector<std::string> float32_overflow{"1e39", "-3.5e38", "1e300"};
    static const std::vector<std::string> not_bools{"maybe", "", "2", "-1", "truee", "yess", "on", "off", "nope", "tru",
                                                    "T R U E", "\xff"};
    static const std::vector<std::string> not_objects{"{", "}", "[1, 2]", "1", "\"text\"", "null", "true", "{num_cycles: 2}",
                                                      "{'a': 1}", R"({"a": 1, "a": 2})", R"({"a": 1} x)", R"({"a": 1,})", "",
                                                      "{\"a\": \"\xff\"}", std::string(200, '[') + std::string(200, ']'),
                                                      "{\"a\": " + std::string(100, '[') + std::string(100, ']') + "}"};
    static const std::vector<std::string> not_text{"\xff", "a\xfe" "b", "\xc0\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80",
                                                   "\xe2\x82", std::string("a\0b", 3)};
    const std::string flag = "--" + f.name;
    switch (f.kind) {
      case Kind::integer:
      case Kind::int32: {
        switch (gen_.below(4)) {
          case 0: return {gen_.pick(not_numbers), flag};
          case 1: return {gen_.pick(not_ints), flag};
          case 2: return {f.kind == Kind::int32 ? gen_.pick(int32_overflow) : gen_.pick(int64_overflow), flag};
          default: return {digits + gen_.pick(std::vector<std::string>{"x", ".0", "e2", "_1", " ", "abc", "-"}), flag};
        }
      }
      case Kind::real:
      case Kind::real32: {
        switch (gen_.below(3)) {
          case 0: return {gen_.pick(not_numbers), flag};
          case 1: return {f.kind == Kind::real32 && gen_.chance(50) ? gen_.pick(float32_overflow) : gen_.pick(non_finite), flag};
          default: return {digits + gen_.pick(std::vector<std::string>{"x", "e", "..1", "_1", " ", "abc", "e+x", "f"}), flag};
        }
      }
      case Kind::boolean: return {gen_.pick(not_bools), flag};
      case Kind::choice: {
        std::string word = gen_.pick(f.choices);
        switch (gen_.below(4)) {
          case 0: word[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(word[0]))); break;
          case 1: word += gen_.pick(std::vector<std::string>{"s", "_", " ", "\xff", "x"}); break;
          case 2: word = gen_.pick(std::vector<std::string>{"", "sometimes", "adam", "cosine_annealing", "none", "0", "True"}); break;
          default: word = " " + word;
        }
        return {word, flag};
      }
      case Kind::object: return {gen_.pick(not_objects), flag};
      case Kind::text:
      case Kind::list: return {gen_.pick(not_text), flag};
    }
    return {"", flag};
  }

  /// A setting (appended to a valid line, so it overrides) that finalize() must refuse, with the
  /// substance of HF's message.
  std::pair<Line, std::string> contradiction() {
    static const std::vector<std::pair<Line, std::string>> cases{
        {{{"--bf16"}, {"--fp16"}}, "fp16 and bf16"},
        {{{"--bf16", "true"}, {"--fp16", "yes"}}, "fp16 and bf16"},
        {{{"--bf16_full_eval"}, {"--fp16_full_eval"}}, "fp16_full_eval and bf16_full_eval"},
        {{{"--load_best_model_at_end"}, {"--save_strategy", "steps"}, {"--eval_strategy", "no"}},
         "--load_best_model_at_end requires an evaluation strategy"},
        {{{"--load_best_model_at_end"}, {"--eval_strategy", "steps"}, {"--save_strategy", "epoch"}},
         "requires the save and eval strategy to match"},
        {{{"--load_best_model_at_end"}, {"--eval_strategy", "steps"}, {"--save_strategy", "steps"}, {"--eval_steps", "30"},
          {"--save_steps", "100"}},
         "round multiple"},
        {{{"--per_device_train_batch_size", "-8"}}, "per_device_train_batch_size must be a positive number"},
        {{{"--per_device_train_batch_size", "0"}}, "per_device_train_batch_size must be a positive number"},
        {{{"--per_device_eval_batch_size", "-1"}}, "per_device_eval_batch_size must be a positive number"},
        {{{"--gradient_accumulation_steps", "0"}}, "gradient_accumulation_steps must be a positive number"},
        {{{"--eval_accumulation_steps", "-2"}}, "eval_accumulation_steps must be a positive number"},
        {{{"--max_steps", "0"}}, "max_steps must be a positive number"},
        {{{"--max_steps", "-5"}}, "max_steps must be a positive number"},
        {{{"--max_steps", "-1"}, {"--num_train_epochs", "0"}}, "num_train_epochs must be positive"},
        {{{"--max_steps", "-1"}, {"--num_train_epochs", "-2.5"}}, "num_train_epochs must be positive"},
        {{{"--learning_rate", "-1e-3"}}, "learning_rate must be >= 0"},
        {{{"--weight_decay", "-0.1"}}, "weight_decay must be >= 0"},
        {{{"--adam_beta1", "1"}}, "adam_beta1 must be in [0, 1)"},
        {{{"--adam_beta2", "-0.5"}}, "adam_beta2 must be in [0, 1)"},
        {{{"--adam_epsilon", "-1e-8"}}, "adam_epsilon must be >= 0"},
        {{{"--max_grad_norm", "-1"}}, "max_grad_norm must be >= 0"},
        {{{"--warmup_steps", "-1"}}, "warmup_steps must be >= 0"},
        {{{"--warmup_steps", "2.5"}}, "warmup_steps must be an integer"},
        {{{"--logging_strategy", "steps"}, {"--logging_steps", "0"}}, "logging_steps must be positive"},
        {{{"--logging_strategy", "steps"}, {"--logging_steps", "12.5"}}, "logging_steps must be an integer"},
        {{{"--eval_strategy", "steps"}, {"--eval_steps", "0"}}, "eval_steps must be positive"},
        {{{"--save_strategy", "steps"}, {"--save_steps", "1.5"}}, "save_steps must be an integer"},
        {{{"--save_strategy", "steps"}, {"--save_steps", "-3"}}, "save_steps must be positive"},
        {{{"--eval_delay", "-1"}}, "eval_delay must be >= 0"},
        {{{"--dataloader_num_workers", "-1"}, {"--dataloader_prefetch_factor", "none"}}, "dataloader_num_workers must be >= 0"},
        {{{"--dataloader_num_workers", "0"}, {"--dataloader_prefetch_factor", "2"}},
         "--dataloader_prefetch_factor can only be set when data is loaded in a different process"},
        {{{"--dataloader_num_workers", "2"}, {"--dataloader_prefetch_factor", "0"}}, "dataloader_prefetch_factor must be a positive"},
        {{{"--report_to", "none", "tensorboard"}}, "report_to 'none' cannot be combined"},
        {{{"--report_to", "wandb"}}, "report_to 'wandb'"},
        {{{"--lr_scheduler_type", "reduce_lr_on_plateau"}, {"--eval_strategy", "no"}, {"--load_best_model_at_end", "false"}},
         "reduce_lr_on_plateau requires an eval"},
        {{{"--output_dir", ""}}, "output_dir must not be empty"},
        {{{"--output_dir="}}, "output_dir must not be empty"},
    };
    return gen_.pick(cases);
  }

  /// A malformed command line: a valid one with one mutation.
  Case malformed(std::size_t index) {
    Line line = gen_.pick(base_lines());
    auto insert_group = [&](Group g) { line.insert(line.begin() + static_cast<std::ptrdiff_t>(gen_.below(line.size() + 1)), std::move(g)); };
    Case c;
    switch (index % 12) {
      case 0: {  // a misspelt flag, with or without a value
        const auto name = typo();
        Group g{"--" + name};
        if (gen_.chance(70)) g.push_back(std::to_string(gen_.below(1000)));
        if (gen_.chance(20)) g = {fmt::format("--{}={}", name, gen_.below(10))};
        insert_group(std::move(g));
        c = {{}, "unrecognized argument: --" + name, "typo"};
        break;
      }
      case 1: {  // a value that does not parse, in either form
        const auto& f = flag_of({Kind::integer, Kind::int32, Kind::real, Kind::real32, Kind::choice, Kind::object, Kind::text});
        auto [value, needle] = bad_value(f);
        insert_group(gen_.chance(30) ? Group{fmt::format("--{}={}", f.name, value)} : Group{"--" + f.name, value});
        // A value starting with "--" is no value: the flag then lacks one.
        c = {{}, value.starts_with("--") && value.size() > 2 ? "--" + f.name : needle, "bad value"};
        break;
      }
      case 2: {  // a bool given a non-bool explicitly
        const auto& f = flag_of({Kind::boolean});
        auto [value, needle] = bad_value(f);
        insert_group({fmt::format("--{}={}", f.name, value)});
        c = {{}, "argument --" + f.name + ": invalid bool value", "bad bool"};
        break;
      }
      case 3: {  // a flag without its value: last, or followed by another flag
        const auto& f = flag_of({Kind::integer, Kind::int32, Kind::real, Kind::real32, Kind::choice, Kind::object, Kind::text, Kind::list});
        const std::string needle = f.kind == Kind::list ? "argument --" + f.name + ": expected at least one value"
                                                        : "argument --" + f.name + ": expected a value";
        if (gen_.chance(50) || line.empty()) line.push_back({"--" + f.name});
        else line.insert(line.begin() + static_cast<std::ptrdiff_t>(gen_.below(line.size())), Group{"--" + f.name});
        c = {{}, needle, "missing value"};
        break;
      }
      case 4: {  // a bare positional word where a flag belongs
        static const std::vector<std::pair<std::string, std::string>> words{
            {"extra", "unexpected argument 'extra'"}, {"train", "unexpected argument 'train'"}, {"-x", "unexpected argument '-x'"},
            {"-", "unexpected argument '-'"}, {"--", "unexpected argument '--'"}, {"---", "unrecognized argument: ---"},
            {"-lr", "unexpected argument '-lr'"}, {"--=1", "unexpected argument '--=1'"}, {"--=", "unexpected argument '--='"},
            {"config.toml", "unexpected argument 'config.toml'"}, {"out/dir", "unexpected argument 'out/dir'"},
            {"later.yaml", "an arguments file must come first"},
            {"=", "unexpected argument '='"}, {"-help", "unexpected argument '-help'"},
            {"\xff\xfe", "unexpected argument '\\xff\\xfe'"}, {"2e-5", "unexpected argument '2e-5'"},
            {"args.json.bak", "unexpected argument 'args.json.bak'"}, {"later.json", "an arguments file must come first"}};
        const auto [word, needle] = gen_.pick(words);
        // At the front, or right after a flag and its one value, where nothing can take it as a value.
        std::size_t at = 0;
        std::vector<std::size_t> after_scalar{0};
        for (std::size_t k = 0; k < line.size(); ++k)
          if (line[k].size() == 2 && !line[k][0].starts_with("--label_names") && !line[k][0].starts_with("--report_to"))
            after_scalar.push_back(k + 1);
        at = gen_.pick(after_scalar);
        line.insert(line.begin() + static_cast<std::ptrdiff_t>(at), Group{word});
        // A leading *.json or *.yaml word is read as an arguments file, which does not exist.
        c = {{}, at == 0 && (word.ends_with(".json") || word.ends_with(".yaml")) ? "No such file" : needle, "positional"};
        break;
      }
      case 5: {  // a contradiction or an out-of-range setting
        auto [groups, needle] = contradiction();
        for (auto& g : groups) line.push_back(std::move(g));
        c = {{}, needle, "contradiction"};
        break;
      }
      case 6: {  // an enum given a choice it does not have
        const auto& f = flag_of({Kind::choice});
        auto [value, needle] = bad_value(f);
        insert_group({"--" + f.name, value});
        c = {{}, "argument --" + f.name + ": invalid choice", "bad choice"};
        break;
      }
      case 7: {  // numbers out of range or not finite
        const auto& f = flag_of({Kind::integer, Kind::int32, Kind::real, Kind::real32});
        static const std::vector<std::string> ints{"9223372036854775808", "-9223372036854775809", "1" + std::string(40, '0')};
        static const std::vector<std::string> reals{"inf", "-inf", "nan", "1e309", "-1e400", "1" + std::string(400, '0')};
        std::string value = f.kind == Kind::integer || f.kind == Kind::int32 ? gen_.pick(ints) : gen_.pick(reals);
        if (f.kind == Kind::int32) value = "2147483648";
        if (f.kind == Kind::real32) value = "3.5e38";
        insert_group({"--" + f.name, value});
        c = {{}, "argument --" + f.name, "range"};
        break;
      }
      case 8: {  // bytes that are not UTF-8, in a flag name or a string value
        if (gen_.chance(50)) {
          const std::string name = gen_.pick(flags_).name + "\xff";
          insert_group({"--" + name, "1"});
          c = {{}, "unrecognized argument: --", "non-UTF-8 flag"};
        } else {
          const auto& f = flag_of({Kind::text, Kind::list});
          insert_group({"--" + f.name, gen_.pick(std::vector<std::string>{"\xff", "ok\xc3", "\xe0\x80\x80", "x\xf8y"})});
          c = {{}, "argument --" + f.name + ": invalid str value", "non-UTF-8 value"};
        }
        break;
      }
      case 9: {  // very long tokens
        const std::string long_text(1000 + gen_.below(100000), static_cast<char>('a' + gen_.below(26)));
        switch (gen_.below(3)) {
          case 0: insert_group({"--" + long_text, "1"}); c = {{}, "unrecognized argument: --" + long_text.substr(0, 40), "long flag"}; break;
          case 1: {
            const auto& f = flag_of({Kind::integer, Kind::real, Kind::choice});
            insert_group({"--" + f.name, long_text});
            c = {{}, "argument --" + f.name, "long value"};
            break;
          }
          default: line.insert(line.begin(), Group{long_text}); c = {{}, "unexpected argument '" + long_text.substr(0, 40), "long word"};
        }
        break;
      }
      case 10: {  // a list flag's item that is empty
        const auto& f = flag_of({Kind::list});
        insert_group(gen_.chance(50) ? Group{"--" + f.name + "="} : Group{"--" + f.name, "a", ""});
        c = {{}, "argument --" + f.name, "empty list item"};
        break;
      }
      default: {  // a negated flag that takes no value, or does not exist
        const auto& f = flag_of({Kind::boolean});
        if (f.defaults_true) {
          insert_group({fmt::format("--no_{}={}", f.name, gen_.pick(std::vector<std::string>{"true", "false", "1", ""}))});
          c = {{}, "argument --no_" + f.name + ": ignored explicit argument", "negation with value"};
        } else {
          insert_group({"--no_" + f.name});
          c = {{}, "unrecognized argument: --no_" + f.name, "negation of a false default"};
        }
      }
    }
    c.argv = flatten(line);
    return c;
  }

  /// A valid line reshaped in ways that keep it valid: groups reordered, `=` forms, flags repeated
  /// (the last wins), explicit bool values, signs and None.
  std::vector<std::string> valid() {
    Line line = gen_.pick(base_lines());
    for (std::size_t k = line.size(); k > 1; --k) std::swap(line[k - 1], line[gen_.below(k)]);
    Line out;
    for (auto& g : line) {
      if (g.size() == 2 && gen_.chance(30)) {
        out.push_back({g[0] + "=" + g[1]});
        continue;
      }
      if (g.size() == 1 && gen_.chance(40) && !g[0].starts_with("--no_")) g.push_back(gen_.pick(std::vector<std::string>{"true", "True", "yes", "1", "t", "Y"}));
      if (g.size() == 2 && gen_.chance(20)) out.push_back(g);  // repeated: same value, last wins
      out.push_back(std::move(g));
    }
    static const std::vector<Group> extras{{"--seed", "+3"}, {"--seed", "-3"}, {"--data_seed", "None"}, {"--run_name", "r\xc3\xa9sum\xc3\xa9"},
                                           {"--learning_rate", ".5"}, {"--adam_epsilon", "1E-9"}, {"--do_predict", "false"},
                                           {"--logging_dir", "logs"}, {"--max_train_samples", "null"}, {"--width", "-2147483648"},
                                           {"--scale", "3.4e38"}, {"--save_total_limit", "none"}, {"--label_names", "a", "b", "c"},
                                           {"--greater_is_better", "F"}, {"--use_cpu"}, {"--no_log_on_each_node"}};
    for (std::size_t k = gen_.below(3); k > 0; --k) out.insert(out.begin() + static_cast<std::ptrdiff_t>(gen_.below(out.size() + 1)), gen_.pick(extras));
    return flatten(out);
  }

 private:
  Generator gen_;
  std::vector<Flag> flags_;
};

TEST_CASE("a thousand malformed command lines each end in an error naming the problem") {
  const auto start = std::chrono::steady_clock::now();
  CommandLineFuzzer fuzzer(20240601);
  std::vector<Case> cases;
  for (std::size_t i = 0; i < 1200; ++i) cases.push_back(fuzzer.malformed(i));
  std::vector<std::string> failures;
  const std::size_t refused = count_refusals(cases, failures);
  for (std::size_t k = 0; k < failures.size() && k < 20; ++k) MESSAGE(failures[k]);
  CHECK(failures.empty());
  CHECK(refused >= 1000);

  // The same generator's valid lines parse: the refusals above are the mutations' doing.
  std::size_t accepted = 0;
  for (std::size_t i = 0; i < 300; ++i) {
    const auto argv = fuzzer.valid();
    const auto result = parse(argv);
    if (result.outcome == Outcome::accepted) ++accepted;
    else MESSAGE(fmt::format("refused {}: {}", printable(argv), printable(result.message)));
  }
  CHECK(accepted == 300);
  MESSAGE(fmt::format("{} malformed command lines refused, {} valid ones accepted, in {} ms", refused, accepted,
                      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start).count()));
}

// ---- JSON arguments files --------------------------------------------------------------------------

/// The JSON a value of `f`'s kind must not be given as.
std::vector<nlohmann::json> wrong_json(const Flag& f) {
  using json = nlohmann::json;
  const json huge_unsigned = 18446744073709551615ULL;
  const json beyond_int64 = 9223372036854775808ULL;
  switch (f.kind) {
    case Kind::boolean: return {"true", 1, 0, json::array({true}), json::object()};
    case Kind::integer: return {"1", 1.5, 2.0, true, json::array({1}), huge_unsigned, beyond_int64, 1e30, json::object()};
    case Kind::int32: return {"1", 1.5, 2147483648LL, -2147483649LL, huge_unsigned, false};
    case Kind::real: return {"0.1", true, json::array({0.1}), json::object(), "inf"};
    case Kind::real32: return {"0.5", false, 1e39, -1e300};
    case Kind::text:
      // fsdp takes a list of option names too (HF's `list | str`): only a list of something else is wrong.
      return {1, true, f.name == "fsdp" ? json::array({1}) : json::array({"a"}), json::object(), 0.5, std::string("a\0b", 3)};
    case Kind::choice: return {1, true, "sometimes", json::array({f.choices[0]}), f.choices[0] + "x", ""};
    case Kind::list: return {1, json::array({1}), json::array({"a", nullptr}), json::array({""}), json::object({{"a", "b"}}), true, ""};
    case Kind::object: return {json::array({1}), 1, "not json", "[1]", true, R"({"a": 1, "a": 2})"};
  }
  return {};
}

class JsonFuzzer {
 public:
  JsonFuzzer(std::uint32_t seed, std::filesystem::path dir) : gen_(seed), flags_(all_flags()), dir_(std::move(dir)) {}

  /// A valid arguments object: a valid line (a base line, or some of its flags) parsed and written
  /// back with every key, as training_args.json is, or with the keys the line names only.
  nlohmann::json valid_object() {
    for (;;) {
      Line line = gen_.pick(base_lines());
      if (gen_.chance(50)) {
        Line kept;
        for (auto& group : line)
          if (gen_.chance(60)) kept.push_back(std::move(group));
        line = std::move(kept);
      }
      std::tuple<ExtraArgs, TrainingArguments> parsed;
      try {
        parsed = trainpp::parse_args_into<ExtraArgs, TrainingArguments>(flatten(line));
      } catch (const trainpp::Error&) {
        continue;  // some flags of a line only make sense together
      }
      nlohmann::json all = trainpp::args_json(std::get<1>(parsed));
      const nlohmann::json extra = trainpp::args_json(std::get<0>(parsed));
      for (const auto& [k, v] : extra.items()) all[k] = v;
      all.erase("logging_dir");  // derived by finalize() from output_dir
      if (gen_.chance(50)) return all;
      nlohmann::json named = nlohmann::json::object();
      for (const auto& group : line) {
        std::string key = group[0].substr(2);
        if (!all.contains(key)) key = key.substr(3);  // --no_<key>
        named[key] = all.at(key);
      }
      return named;
    }
  }

  std::string write(const std::string& text) {
    const auto path = dir_ / fmt::format("case_{}.json", files_++);
    std::ofstream(path, std::ios::binary) << text;
    return path.string();
  }

  Case malformed(std::size_t index) {
    nlohmann::json j = valid_object();
    const std::string text = j.dump(gen_.chance(50) ? 2 : -1);
    switch (index % 10) {
      case 0: {  // cut short
        const std::string cut = text.substr(0, gen_.below(text.size()));
        return {{write(cut)}, "not valid JSON", "truncated"};
      }
      case 1:
      case 2: {  // a value of the wrong type
        const auto& f = gen_.pick(flags_);
        auto wrongs = wrong_json(f);
        // (null is not among them: in a file it is HF's None, "not given", and keeps the default.)
        j[f.name] = gen_.pick(wrongs);
        const std::string needle = j[f.name].is_string() && (f.kind == Kind::choice || f.kind == Kind::object || f.kind == Kind::text)
                                       ? "argument --" + f.name
                                       : "argument '" + f.name + "'";
        return {{write(j.dump())}, needle, "wrong type"};
      }
      case 3: {  // a key twice
        const auto& f = gen_.pick(flags_);
        const std::string key = nlohmann::json(f.name).dump();
        std::string dup = text;
        dup.insert(1, fmt::format("{}: {}, ", key, j.contains(f.name) ? j[f.name].dump() : "null"));
        if (!j.contains(f.name)) dup.insert(1, fmt::format("{}: null, ", key));
        if (dup.ends_with(", }")) dup.replace(dup.size() - 3, 3, "}");
        // An object that was empty becomes `{a, }`; close it properly.
        const auto close = dup.find(", }");
        if (close != std::string::npos) dup.erase(close, 2);
        return {{write(dup)}, "duplicate key " + key, "duplicate key"};
      }
      case 4: {  // a key no struct has
        CommandLineFuzzer names(static_cast<std::uint32_t>(gen_.below(1u << 30)));
        const std::string key = gen_.chance(80) ? names.typo() : fmt::format("unknown_{}", gen_.below(1000));
        j[key] = gen_.chance(50) ? nlohmann::json(1) : nlohmann::json("x");
        return {{write(j.dump())}, "unrecognized key \"" + key + "\"", "unknown key"};
      }
      case 5: {  // not an object at the top
        static const std::vector<std::string> tops{"[]", "3", "\"args\"", "null", "true", "-1.5", "[{\"seed\": 1}]"};
        const std::string top = gen_.chance(30) ? "[" + text + "]" : gen_.pick(tops);
        return {{write(top)}, "must hold a JSON object", "not an object"};
      }
      case 6: {  // numbers beyond their field's range
        const auto& f = flag_of({Kind::integer, Kind::int32, Kind::real, Kind::real32});
        static const std::vector<std::string> ints{"18446744073709551615", "9223372036854775808", "-9223372036854775809",
                                                   "1" + std::string(30, '0')};
        // Beyond the double range, the JSON reader itself refuses the number.
        static const std::vector<std::string> reals{"1e999", "-1e400", "1" + std::string(400, '0') + ".0"};
        const bool integer = f.kind == Kind::integer || f.kind == Kind::int32;
        std::string value = integer ? gen_.pick(ints) : gen_.pick(reals);
        std::string needle = integer ? "argument '" + f.name + "'" : "number overflow";
        if (f.kind == Kind::int32 && gen_.chance(50)) value = "2147483648";
        if (f.kind == Kind::real32 && gen_.chance(50)) value = "1e39", needle = "argument '" + f.name + "'";
        j.erase(f.name);
        std::string out = j.dump();
        out.insert(1, fmt::format("\"{}\": {}{}", f.name, value, j.empty() ? "" : ", "));
        return {{write(out)}, needle, "out of range"};
      }
      case 7: {  // bytes JSON does not allow, or deep nesting
        switch (gen_.below(5)) {
          case 0: return {{write(text.substr(0, text.size() / 2) + std::string(1, '\0') + text.substr(text.size() / 2))}, "NUL byte", "NUL"};
          case 1: return {{write(R"({"run_name": "a\u0000b"})")}, "holds a NUL byte", "escaped NUL"};
          case 2: return {{write("{\"run_name\": \"\xff\"}")}, "not valid JSON", "non-UTF-8"};
          case 3: {
            const std::size_t depth = 65 + gen_.below(5000);
            return {{write(R"({"lr_scheduler_kwargs": {"a": )" + std::string(depth, '[') + std::string(depth, ']') + "}}")},
                    "nested deeper than", "deep"};
          }
          default: return {{write(text + gen_.pick(std::vector<std::string>{" x", "{}", ",", " // comment", "]"}))}, "not valid JSON", "trailing"};
        }
      }
      case 8: {  // a contradiction, as the command line's
        static const std::vector<std::pair<nlohmann::json, std::string>> cases{
            {{{"bf16", true}, {"fp16", true}}, "fp16 and bf16"},
            {{{"load_best_model_at_end", true}, {"eval_strategy", "no"}, {"save_strategy", "steps"}}, "requires an evaluation strategy"},
            {{{"max_steps", 0}}, "max_steps must be a positive number"},
            {{{"per_device_train_batch_size", -1}}, "per_device_train_batch_size must be a positive number"},
            {{{"report_to", nlohmann::json::array({"none", "jsonl"})}}, "report_to 'none' cannot be combined"},
            {{{"output_dir", ""}}, "output_dir must not be empty"},
            {{{"adam_beta2", 1.0}}, "adam_beta2 must be in [0, 1)"},
        };
        const auto& [settings, needle] = gen_.pick(cases);
        for (const auto& [k, v] : settings.items()) j[k] = v;
        return {{write(j.dump())}, needle, "contradiction"};
      }
      default: {  // a valid file with a malformed command line after it
        CommandLineFuzzer line(static_cast<std::uint32_t>(gen_.below(1u << 30)));
        auto bad = line.malformed(gen_.below(12));
        // A leading word would be taken for a second arguments file: only flags follow the file.
        if (!bad.argv.empty() && !bad.argv[0].starts_with("--")) bad = {{"--seed", "x"}, "argument --seed", "bad value"};
        bad.argv.insert(bad.argv.begin(), write(text));
        bad.what = "file + " + bad.what;
        return bad;
      }
    }
  }

 private:
  const Flag& flag_of(std::initializer_list<Kind> kinds) {
    for (;;) {
      const Flag& f = flags_[gen_.below(flags_.size())];
      for (const Kind k : kinds)
        if (f.kind == k) return f;
    }
  }

  Generator gen_;
  std::vector<Flag> flags_;
  std::filesystem::path dir_;
  std::size_t files_ = 0;
};

TEST_CASE("hundreds of malformed JSON arguments files each end in an error naming the problem") {
  const auto start = std::chrono::steady_clock::now();
  const auto dir = std::filesystem::temp_directory_path() / fmt::format("trainpp_cli_fuzz_{}", ::getpid());
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  JsonFuzzer fuzzer(7771, dir);
  std::vector<Case> cases;
  for (std::size_t i = 0; i < 400; ++i) cases.push_back(fuzzer.malformed(i));
  // Files that cannot be read at all.
  cases.push_back({{(dir / "missing.json").string()}, "missing.json: No such file", "missing"});
  std::filesystem::create_directories(dir / "folder.json");
  cases.push_back({{(dir / "folder.json").string()}, "folder.json", "a folder"});
  cases.push_back({{fuzzer.write("")}, "not valid JSON", "empty"});
  std::vector<std::string> failures;
  const std::size_t refused = count_refusals(cases, failures);
  for (std::size_t k = 0; k < failures.size() && k < 20; ++k) MESSAGE(failures[k]);
  CHECK(failures.empty());
  CHECK(refused >= 300);

  // Valid files (and valid files with valid command lines after them) parse.
  std::size_t accepted = 0;
  CommandLineFuzzer lines(99);
  for (std::size_t i = 0; i < 100; ++i) {
    std::vector<std::string> argv{fuzzer.write(fuzzer.valid_object().dump(i % 2 == 0 ? 2 : -1))};
    if (i % 3 == 0) {
      auto more = lines.valid();
      argv.insert(argv.end(), more.begin(), more.end());
    }
    const auto result = parse(argv);
    if (result.outcome == Outcome::accepted) ++accepted;
    else MESSAGE(fmt::format("refused {}: {}", printable(argv), printable(result.message)));
  }
  CHECK(accepted == 100);
  std::filesystem::remove_all(dir);
  MESSAGE(fmt::format("{} malformed JSON files refused, {} valid ones accepted, in {} ms", refused, accepted,
                      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start).count()));
}

}  // namespace cli_fuzz_test
