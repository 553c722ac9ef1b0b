#pragma once
// Command line and JSON parsing of argument structs with HF's flag names and value forms, as
// HfArgumentParser does: `--learning_rate 2e-5 --do_train --no_log_on_each_node --label_names a b`,
// or a JSON file (`prog args.json`), or both with the command line winning.

#include <trainpp/args.hpp>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <vector>

namespace trainpp {

/// Describes one field of an argument struct to a visitor: its flag name, help line and group.
struct FieldInfo {
  std::string_view name;
  std::string_view help;
  std::string_view group = "";
};

/// The fields of TrainingArguments, for the parser, --help and training_args.json. A user's own
/// argument struct takes part by providing the same function (found by ADL):
///   template <class V> void visit_fields(MyArgs& a, V&& v) { v(FieldInfo{"epochs", "..."}, a.epochs); }
template <class V>
void visit_fields(TrainingArguments& a, V&& v) {
  v(FieldInfo{"output_dir", "Where checkpoints, metrics and the final model are written.", "output"}, a.output_dir);
  v(FieldInfo{"overwrite_output_dir", "Start fresh in an output_dir that already holds checkpoints.", "output"}, a.overwrite_output_dir);
  v(FieldInfo{"do_train", "Run training (read by the examples).", "output"}, a.do_train);
  v(FieldInfo{"do_eval", "Run evaluation on the eval set (read by the examples).", "output"}, a.do_eval);
  v(FieldInfo{"do_predict", "Run prediction on the test set (read by the examples).", "output"}, a.do_predict);
  v(FieldInfo{"resume_from_checkpoint", "Checkpoint folder to resume from, or 'true' for the newest.", "output"}, a.resume_from_checkpoint);
  v(FieldInfo{"run_name", "A name for this run in logs.", "output"}, a.run_name);
  v(FieldInfo{"per_device_train_batch_size", "Batch size per device for training.", "batches"}, a.per_device_train_batch_size);
  v(FieldInfo{"per_device_eval_batch_size", "Batch size per device for evaluation.", "batches"}, a.per_device_eval_batch_size);
  v(FieldInfo{"gradient_accumulation_steps", "Micro-batches accumulated per optimizer step.", "batches"}, a.gradient_accumulation_steps);
  v(FieldInfo{"eval_accumulation_steps", "Move gathered predictions to the CPU every N eval steps.", "batches"}, a.eval_accumulation_steps);
  v(FieldInfo{"num_train_epochs", "Epochs to train (fractions allowed).", "batches"}, a.num_train_epochs);
  v(FieldInfo{"max_steps", "Optimizer steps to train; overrides num_train_epochs when > 0.", "batches"}, a.max_steps);
  v(FieldInfo{"optim", "The optimizer.", "optimizer"}, a.optim);
  v(FieldInfo{"learning_rate", "Initial learning rate.", "optimizer"}, a.learning_rate);
  v(FieldInfo{"weight_decay", "Weight decay for weights (not biases or norms).", "optimizer"}, a.weight_decay);
  v(FieldInfo{"adam_beta1", "AdamW beta1.", "optimizer"}, a.adam_beta1);
  v(FieldInfo{"adam_beta2", "AdamW beta2.", "optimizer"}, a.adam_beta2);
  v(FieldInfo{"adam_epsilon", "AdamW epsilon.", "optimizer"}, a.adam_epsilon);
  v(FieldInfo{"max_grad_norm", "Gradient clipping norm (0 disables).", "optimizer"}, a.max_grad_norm);
  v(FieldInfo{"lr_scheduler_type", "The learning-rate schedule.", "schedule"}, a.lr_scheduler_type);
  v(FieldInfo{"lr_scheduler_kwargs", "Extra schedule arguments as a JSON object, e.g. '{\"num_cycles\": 2}'.", "schedule"}, a.lr_scheduler_kwargs);
  v(FieldInfo{"warmup_steps", "Warm-up steps (an int), or a ratio of the training steps (below 1).", "schedule"}, a.warmup_steps);
  v(FieldInfo{"log_level", "Log level of the main process.", "logging"}, a.log_level);
  v(FieldInfo{"log_level_replica", "Log level of the other processes.", "logging"}, a.log_level_replica);
  v(FieldInfo{"log_on_each_node", "Log on the main process of each node, not only the first.", "logging"}, a.log_on_each_node);
  v(FieldInfo{"logging_dir", "TensorBoard log directory (default output_dir/runs).", "logging"}, a.logging_dir);
  v(FieldInfo{"logging_strategy", "When to log.", "logging"}, a.logging_strategy);
  v(FieldInfo{"logging_first_step", "Log the first optimizer step too.", "logging"}, a.logging_first_step);
  v(FieldInfo{"logging_steps", "Log every N steps (a ratio of max_steps below 1).", "logging"}, a.logging_steps);
  v(FieldInfo{"logging_nan_inf_filter", "Replace nan/inf step losses in the logged loss.", "logging"}, a.logging_nan_inf_filter);
  v(FieldInfo{"disable_tqdm", "Plain log lines instead of the live progress bar.", "logging"}, a.disable_tqdm);
  v(FieldInfo{"report_to", "Integrations to report to (none, all, tensorboard, jsonl).", "logging"}, a.report_to);
  v(FieldInfo{"eval_strategy", "When to evaluate.", "evaluation"}, a.eval_strategy);
  v(FieldInfo{"eval_steps", "Evaluate every N steps (default logging_steps; a ratio below 1).", "evaluation"}, a.eval_steps);
  v(FieldInfo{"eval_delay", "Steps or epochs to wait before the first evaluation.", "evaluation"}, a.eval_delay);
  v(FieldInfo{"eval_on_start", "Evaluate once before training.", "evaluation"}, a.eval_on_start);
  v(FieldInfo{"prediction_loss_only", "Return only the loss when evaluating and predicting.", "evaluation"}, a.prediction_loss_only);
  v(FieldInfo{"label_names", "Batch keys holding the labels (default: labels).", "evaluation"}, a.label_names);
  v(FieldInfo{"save_strategy", "When to save checkpoints.", "saving"}, a.save_strategy);
  v(FieldInfo{"save_steps", "Save every N steps (a ratio of max_steps below 1).", "saving"}, a.save_steps);
  v(FieldInfo{"save_total_limit", "Keep at most N checkpoints.", "saving"}, a.save_total_limit);
  v(FieldInfo{"save_only_model", "Checkpoints hold the model only.", "saving"}, a.save_only_model);
  v(FieldInfo{"load_best_model_at_end", "Load the best checkpoint when training ends.", "saving"}, a.load_best_model_at_end);
  v(FieldInfo{"metric_for_best_model", "Metric that defines the best model (default loss).", "saving"}, a.metric_for_best_model);
  v(FieldInfo{"greater_is_better", "Whether a larger metric_for_best_model is better.", "saving"}, a.greater_is_better);
  v(FieldInfo{"ignore_data_skip", "On resume, do not skip the batches already seen.", "saving"}, a.ignore_data_skip);
  v(FieldInfo{"restore_callback_states_from_checkpoint", "On resume, restore the control flags and stateful callbacks saved in the checkpoint.", "saving"}, a.restore_callback_states_from_checkpoint);
  v(FieldInfo{"seed", "Random seed set at the start.", "reproducibility"}, a.seed);
  v(FieldInfo{"data_seed", "Seed of the data order (default: seed).", "reproducibility"}, a.data_seed);
  v(FieldInfo{"full_determinism", "Deterministic algorithms everywhere (slower).", "reproducibility"}, a.full_determinism);
  v(FieldInfo{"use_cpu", "Train on the CPU even when a GPU is present.", "device"}, a.use_cpu);
  v(FieldInfo{"bf16", "bfloat16 mixed precision.", "device"}, a.bf16);
  v(FieldInfo{"fp16", "float16 mixed precision with loss scaling.", "device"}, a.fp16);
  v(FieldInfo{"bf16_full_eval", "Evaluate in bfloat16.", "device"}, a.bf16_full_eval);
  v(FieldInfo{"fp16_full_eval", "Evaluate in float16.", "device"}, a.fp16_full_eval);
  v(FieldInfo{"tf32", "TF32 matmuls on CUDA.", "device"}, a.tf32);
  v(FieldInfo{"dataloader_drop_last", "Drop the last incomplete batch.", "data"}, a.dataloader_drop_last);
  v(FieldInfo{"dataloader_num_workers", "Background threads preparing batches (0: on demand).", "data"}, a.dataloader_num_workers);
  v(FieldInfo{"dataloader_prefetch_factor", "Batches in flight per worker.", "data"}, a.dataloader_prefetch_factor);
  v(FieldInfo{"dataloader_pin_memory", "Pin host memory for faster copies to the GPU.", "data"}, a.dataloader_pin_memory);
  v(FieldInfo{"dataloader_persistent_workers", "Keep workers alive between epochs.", "data"}, a.dataloader_persistent_workers);
  v(FieldInfo{"train_sampling_strategy", "Order of training samples.", "data"}, a.train_sampling_strategy);
}

namespace detail {

template <class T> struct is_optional : std::false_type {};
template <class T> struct is_optional<std::optional<T>> : std::true_type { using type = T; };
template <class T> struct is_vector : std::false_type {};
template <class T> struct is_vector<std::vector<T>> : std::true_type {};

template <class T>
std::string type_name() {
  // fmt rather than string concatenation, on which GCC 12 warns falsely (-Warray-bounds, -Wstringop-overflow).
  if constexpr (is_optional<T>::value) return fmt::format("{} (optional)", type_name<typename is_optional<T>::type>());
  else if constexpr (std::is_same_v<T, bool>) return "bool";
  else if constexpr (std::is_integral_v<T>) return "int";
  else if constexpr (std::is_floating_point_v<T>) return "float";
  else if constexpr (std::is_same_v<T, std::string>) return "str";
  else if constexpr (std::is_same_v<T, nlohmann::json>) return "JSON object";
  else if constexpr (is_vector<T>::value) return "list of str";
  else if constexpr (NamedEnum<T>) return fmt::format("{{{}}}", enum_choices<T>());
  else return "value";
}

inline std::optional<bool> parse_bool(std::string_view s) {
  std::string l(s);
  std::ranges::transform(l, l.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (l == "true" || l == "1" || l == "yes" || l == "y" || l == "t") return true;
  if (l == "false" || l == "0" || l == "no" || l == "n" || l == "f") return false;
  return std::nullopt;
}

/// Parses one scalar value for flag `name` into `out`; throws an Error naming flag, value and type.
template <class T>
void parse_value(std::string_view name, std::string_view text, T& out) {
  auto bad = [&](std::string_view expected) {
    return error("argument --{}: invalid {} value: '{}'", name, expected, text);
  };
  if constexpr (is_optional<T>::value) {
    if (text == "None" || text == "none" || text == "null") { out.reset(); return; }
    typename is_optional<T>::type v{};
    parse_value(name, text, v);
    out = std::move(v);
  } else if constexpr (std::is_same_v<T, bool>) {
    auto b = parse_bool(text);
    if (!b) throw bad("bool (true/false)");
    out = *b;
  } else if constexpr (std::is_integral_v<T>) {
    std::string s(text);
    std::size_t used = 0;
    long long v = 0;
    try { v = std::stoll(s, &used, 10); } catch (const std::exception&) { throw bad("int"); }
    if (used != s.size()) throw bad("int");
    out = static_cast<T>(v);
  } else if constexpr (std::is_floating_point_v<T>) {
    std::string s(text);
    std::size_t used = 0;
    double v = 0;
    try { v = std::stod(s, &used); } catch (const std::exception&) { throw bad("float"); }
    if (used != s.size() || !std::isfinite(v)) throw bad("float");
    out = static_cast<T>(v);
  } else if constexpr (std::is_same_v<T, std::string>) {
    out = std::string(text);
  } else if constexpr (std::is_same_v<T, nlohmann::json>) {
    try { out = nlohmann::json::parse(text); } catch (const nlohmann::json::exception&) { throw bad("JSON"); }
    if (!out.is_object()) throw error("argument --{}: expected a JSON object, got '{}'", name, text);
  } else if constexpr (NamedEnum<T>) {
    auto e = parse_enum<T>(text);
    if (!e) throw error("argument --{}: invalid choice: '{}' (choose from {})", name, text, enum_choices<T>());
    out = *e;
  } else {
    static_assert(always_false<T>, "trainpp: an argument struct field has a type the parser does not know");
  }
}

/// Assigns a JSON value (from an args file) to a field, checking its type.
template <class T>
void assign_json(std::string_view name, const nlohmann::json& j, T& out) {
  auto bad = [&](std::string_view expected) {
    return error("argument '{}': expected {}, got {}", name, expected, j.dump());
  };
  if constexpr (is_optional<T>::value) {
    if (j.is_null()) { out.reset(); return; }
    typename is_optional<T>::type v{};
    assign_json(name, j, v);
    out = std::move(v);
  } else if constexpr (std::is_same_v<T, bool>) {
    if (!j.is_boolean()) throw bad("a boolean");
    out = j.get<bool>();
  } else if constexpr (std::is_integral_v<T>) {
    if (!j.is_number_integer()) throw bad("an integer");
    out = j.get<T>();
  } else if constexpr (std::is_floating_point_v<T>) {
    if (!j.is_number()) throw bad("a number");
    out = j.get<T>();
  } else if constexpr (std::is_same_v<T, std::string>) {
    if (!j.is_string()) throw bad("a string");
    out = j.get<std::string>();
  } else if constexpr (std::is_same_v<T, nlohmann::json>) {
    if (j.is_string()) parse_value(name, j.get<std::string>(), out);
    else if (j.is_object()) out = j;
    else throw bad("a JSON object");
  } else if constexpr (is_vector<T>::value) {
    out.clear();
    if (j.is_string()) { out.push_back(j.get<std::string>()); return; }
    if (!j.is_array()) throw bad("a list of strings");
    for (const auto& e : j) {
      if (!e.is_string()) throw bad("a list of strings");
      out.push_back(e.get<std::string>());
    }
  } else if constexpr (NamedEnum<T>) {
    if (!j.is_string()) throw bad(fmt::format("one of {}", enum_choices<T>()));
    parse_value(name, j.get<std::string>(), out);
  }
}

template <class T>
nlohmann::json to_json_value(const T& v) {
  if constexpr (is_optional<T>::value) return v ? to_json_value(*v) : nlohmann::json(nullptr);
  else if constexpr (NamedEnum<T>) return std::string(to_string(v));
  else return nlohmann::json(v);
}

inline std::size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::size_t> row(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t prev = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t cur = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, prev + (a[i - 1] == b[j - 1] ? 0 : 1)});
      prev = cur;
    }
  }
  return row[b.size()];
}

}  // namespace detail

/// The fields of an argument struct as a JSON object (training_args.json).
template <class Args>
[[nodiscard]] nlohmann::json args_json(const Args& args) {
  nlohmann::json j = nlohmann::json::object();
  auto copy = args;
  visit_fields(copy, [&](const FieldInfo& f, auto& value) { j[std::string(f.name)] = detail::to_json_value(value); });
  return j;
}

/// Thrown by parse_args for --help after printing it; examples return 0 on it.
struct HelpRequested {};

/// Parses argument structs from the command line (and an optional leading JSON file), then calls
/// finalize() on each struct that has it. Flags are shared: each goes to the struct that declares it.
/// Errors (unknown flag — with the nearest valid one —, missing value, bad value, bad JSON file)
/// throw trainpp::Error; `--help` prints every argument, grouped, and throws HelpRequested.
template <class... Structs>
[[nodiscard]] std::tuple<Structs...> parse_args_into(const std::vector<std::string>& argv, std::string_view program = "program",
                                                     std::tuple<Structs...> out = {}) {
  struct Field {
    std::string name, help, group, type, default_value;
    std::function<void(std::string_view)> set;
    std::function<void(const nlohmann::json&)> set_json;
    bool is_bool, is_list, defaults_true;
  };
  std::vector<Field> fields;
  std::apply([&](auto&... s) {
    (visit_fields(s, [&](const FieldInfo& f, auto& value) {
       using T = std::remove_cvref_t<decltype(value)>;
       Field field;
       field.name = std::string(f.name);
       field.help = std::string(f.help);
       field.group = std::string(f.group);
       field.type = detail::type_name<T>();
       field.default_value = detail::to_json_value(value).dump();
       field.is_bool = std::is_same_v<T, bool> || std::is_same_v<T, std::optional<bool>>;
       field.is_list = detail::is_vector<T>::value;
       if constexpr (std::is_same_v<T, bool>) field.defaults_true = value;
       else field.defaults_true = false;
       const std::string name = field.name;
       field.set = [&value, name](std::string_view text) {
         if constexpr (detail::is_vector<T>::value) value.emplace_back(text);
         else detail::parse_value(name, text, value);
       };
       field.set_json = [&value, name](const nlohmann::json& j) { detail::assign_json(name, j, value); };
       fields.push_back(std::move(field));
     }), ...);
  }, out);

  auto find = [&](std::string_view name) -> Field* {
    for (auto& f : fields)
      if (f.name == name) return &f;
    return nullptr;
  };
  auto unknown = [&](std::string_view flag) {
    std::string best;
    std::size_t best_d = SIZE_MAX;
    for (const auto& f : fields) {
      const auto d = detail::edit_distance(flag, f.name);
      if (d < best_d) best_d = d, best = f.name;
    }
    if (best_d <= std::max<std::size_t>(3, flag.size() / 3))
      return error("unrecognized argument: --{} (did you mean --{}?)", flag, best);
    return error("unrecognized argument: --{} (see --help)", flag);
  };

  std::size_t i = 0;
  if (!argv.empty() && argv[0].size() > 5 && argv[0].ends_with(".json")) {
    std::ifstream in(argv[0]);
    if (!in) throw error("cannot open the arguments file {}", argv[0]);
    nlohmann::json j;
    try { j = nlohmann::json::parse(in); } catch (const nlohmann::json::exception& e) {
      throw error("the arguments file {} is not valid JSON: {}", argv[0], e.what());
    }
    if (!j.is_object()) throw error("the arguments file {} must hold a JSON object", argv[0]);
    for (const auto& [k, v] : j.items()) {
      Field* f = find(k);
      if (!f) throw error("the arguments file {}: {}", argv[0], unknown(k).what());
      f->set_json(v);
    }
    i = 1;
  }
  std::vector<std::string> lists_started;
  for (; i < argv.size(); ++i) {
    const std::string& token = argv[i];
    if (token == "--help" || token == "-h") {
      std::string group;
      std::printf("usage: %.*s [args.json] [--flag value ...]\n", static_cast<int>(program.size()), program.data());
      for (const auto& f : fields) {
        if (f.group != group) std::printf("\n%s:\n", (group = f.group).empty() ? "arguments" : group.c_str());
        std::printf("  --%-32s %s (default: %s)\n      %s\n", f.name.c_str(), f.type.c_str(), f.default_value.c_str(), f.help.c_str());
      }
      throw HelpRequested{};
    }
    if (!token.starts_with("--") || token.size() == 2)
      throw error("unexpected argument '{}': arguments are given as --name value (see --help)", token);
    std::string name = token.substr(2);
    std::optional<std::string> inline_value;
    if (auto eq = name.find('='); eq != std::string::npos) {
      inline_value = name.substr(eq + 1);
      name = name.substr(0, eq);
    }
    Field* f = find(name);
    if (!f && name.starts_with("no_")) {
      Field* negated = find(name.substr(3));
      if (negated && negated->is_bool && negated->defaults_true && !inline_value) {
        negated->set("false");
        continue;
      }
    }
    if (!f) throw unknown(name);
    const bool next_is_value = i + 1 < argv.size() && !(argv[i + 1].starts_with("--") && argv[i + 1].size() > 2);
    if (f->is_bool && !inline_value && !(next_is_value && detail::parse_bool(argv[i + 1]))) {
      f->set("true");
      continue;
    }
    if (f->is_list) {
      // nargs='+': the flag's values run up to the next flag; a repeated flag starts over.
      f->set_json(nlohmann::json::array());
      if (inline_value) { f->set(*inline_value); continue; }
      if (!next_is_value) throw error("argument --{}: expected at least one value", name);
      while (i + 1 < argv.size() && !(argv[i + 1].starts_with("--") && argv[i + 1].size() > 2)) f->set(argv[++i]);
      continue;
    }
    if (inline_value) { f->set(*inline_value); continue; }
    if (!next_is_value) throw error("argument --{}: expected a value ({})", name, f->type);
    f->set(argv[++i]);
  }
  std::apply([](auto&... s) {
    ([&] { if constexpr (requires { s.finalize(); }) s.finalize(); }(), ...);
  }, out);
  return out;
}

/// parse_args(argc, argv, TrainingArguments{...}, MyArgs{...}): the given structs are the values
/// before the command line applies (a program's own defaults). Returns the struct, or a tuple of them.
template <class... Structs>
  requires(sizeof...(Structs) > 0)
[[nodiscard]] auto parse_args(int argc, char** argv, Structs... defaults) {
  std::vector<std::string> tokens(argv + 1, argv + argc);
  auto parsed = parse_args_into<Structs...>(tokens, argc > 0 ? argv[0] : "program",
                                            std::tuple<Structs...>{std::move(defaults)...});
  if constexpr (sizeof...(Structs) == 1) return std::get<0>(std::move(parsed));
  else return parsed;
}

/// parse_args<TrainingArguments>(argc, argv) -> TrainingArguments;
/// parse_args<MyArgs, TrainingArguments>(argc, argv) -> std::tuple<MyArgs, TrainingArguments>.
template <class... Structs>
  requires(sizeof...(Structs) > 0)
[[nodiscard]] auto parse_args(int argc, char** argv) {
  return parse_args(argc, argv, Structs{}...);
}

/// Runs a program body, turning trainpp::Error (bad flags, files, settings) into a one-line message
/// on stderr and exit code 2, and --help into exit code 0 — the examples' main() is `return run(...)`.
template <class F>
int run_main(F&& body) {
  try {
    return std::forward<F>(body)();
  } catch (const HelpRequested&) {
    return 0;
  } catch (const Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 2;
  } catch (const c10::Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what_without_backtrace());
    return 1;
  }
}

}  // namespace trainpp
