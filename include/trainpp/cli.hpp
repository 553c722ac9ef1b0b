#pragma once
// Command line and JSON parsing of argument structs with HF's flag names and value forms, as
// HfArgumentParser does: `--learning_rate 2e-5 --do_train --no_log_on_each_node --label_names a b`,
// or a JSON file (`prog args.json`), or both with the command line winning.

#include <trainpp/args.hpp>
#include <trainpp/args/unimplemented.hpp>
#include <trainpp/io/atomic_write.hpp>
#include <trainpp/io/json.hpp>
#include <trainpp/io/yaml.hpp>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <functional>
#include <limits>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <system_error>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#if TRAINPP_DEFINITIONS
#include <cctype>
#endif

namespace trainpp {

/// The largest JSON arguments file parse_args reads.
inline constexpr std::uintmax_t arguments_file_max_bytes = 16u << 20;

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

/// Whether `text` is well-formed UTF-8: no stray continuation bytes, overlong forms, surrogates or
/// code points beyond U+10FFFF. JSON output (training_args.json) cannot carry anything else.
[[nodiscard]] bool is_valid_utf8(std::string_view text);

/// Values shown in error messages are cut to this many bytes, so that a megabyte-long token still
/// gives a one-line message.
inline constexpr std::size_t shown_value_max = 80;

/// `text` as an error message shows it: on one line (control bytes, and every byte of text that is
/// not UTF-8, written as \xNN) and cut to about shown_value_max bytes, between two characters.
[[nodiscard]] std::string shown_text(std::string_view text);

/// A JSON value as an error message shows it.
[[nodiscard]] inline std::string shown_json(const nlohmann::json& value) {
  return shown_text(value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
}

/// Refuses text that no string setting can hold: NUL bytes (a path would be cut short at the first
/// one) and bytes that are not UTF-8 (training_args.json could not be written).
void check_text(std::string_view name, std::string_view text);

/// HF's string_to_bool.
std::optional<bool> parse_bool(std::string_view s);

/// Parses a whole token as a number of type T in decimal (as Python's int() and float() read flag
/// values, less their whitespace and digit separators): the locale plays no part, hex and trailing
/// text are refused, and so are values outside T's range and (for floats) inf and nan.
template <class T>
void parse_number(std::string_view name, std::string_view text, T& out) {
  constexpr std::string_view kind = std::is_floating_point_v<T> ? "float" : "int";
  std::string_view digits = text;
  // Python accepts a leading '+'; std::from_chars does not.
  if (digits.size() > 1 && digits.front() == '+' && digits[1] != '-' && digits[1] != '+') digits.remove_prefix(1);
  T value{};
  const char* const end = digits.data() + digits.size();
  std::from_chars_result result{};
  if constexpr (std::is_floating_point_v<T>) result = std::from_chars(digits.data(), end, value, std::chars_format::general);
  else result = std::from_chars(digits.data(), end, value, 10);
  if (result.ec == std::errc::result_out_of_range && result.ptr == end) {
    if constexpr (std::is_floating_point_v<T>)
      throw error("argument --{}: float value out of range: '{}' (its magnitude must be between {} and {})", name,
                  shown_text(text), std::numeric_limits<T>::min(), std::numeric_limits<T>::max());
    else
      throw error("argument --{}: int value out of range: '{}' (from {} to {})", name, shown_text(text),
                  std::numeric_limits<T>::min(), std::numeric_limits<T>::max());
  }
  if (result.ec != std::errc{} || result.ptr != end || digits.empty())
    throw error("argument --{}: invalid {} value: '{}'", name, kind, shown_text(text));
  if constexpr (std::is_floating_point_v<T>) {
    if (!std::isfinite(value)) throw error("argument --{}: invalid float value: '{}' (must be finite)", name, shown_text(text));
  }
  out = value;
}

/// Parses one scalar value for flag `name` into `out`; throws an Error naming flag, value and type.
template <class T>
void parse_value(std::string_view name, std::string_view text, T& out) {
  if constexpr (is_optional<T>::value) {
    if (text == "None" || text == "none" || text == "null") { out.reset(); return; }
    typename is_optional<T>::type v{};
    parse_value(name, text, v);
    out = std::move(v);
  } else if constexpr (std::is_same_v<T, bool>) {
    auto b = parse_bool(text);
    if (!b) throw error("argument --{}: invalid bool value: '{}' (true or false)", name, shown_text(text));
    out = *b;
  } else if constexpr (std::is_integral_v<T> || std::is_floating_point_v<T>) {
    parse_number(name, text, out);
  } else if constexpr (std::is_same_v<T, std::string>) {
    check_text(name, text);
    out = std::string(text);
  } else if constexpr (std::is_same_v<T, nlohmann::json>) {
    nlohmann::json parsed;
    // Strictly, as the arguments file: no duplicate keys, no nesting deep enough to exhaust the stack.
    try { parsed = parse_json_strict(text, "the value"); } catch (const Error& e) {
      throw error("argument --{}: invalid JSON value: '{}' ({})", name, shown_text(text), e.what());
    }
    if (!parsed.is_object()) throw error("argument --{}: expected a JSON object, got '{}'", name, shown_text(text));
    out = std::move(parsed);
  } else if constexpr (NamedEnum<T>) {
    auto e = parse_enum<T>(text);
    if (!e) throw error("argument --{}: invalid choice: '{}' (choose from {})", name, shown_text(text), enum_choices<T>());
    out = *e;
  } else {
    static_assert(always_false<T>, "trainpp: an argument struct field has a type the parser does not know");
  }
}

/// Assigns a JSON value (from an args file) to a field, checking its type and range.
template <class T>
void assign_json(std::string_view name, const nlohmann::json& j, T& out) {
  auto bad = [&](std::string_view expected) {
    return error("argument '{}': expected {}, got {}", name, expected, shown_json(j));
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
    // nlohmann converts between integer types without a range check: 18446744073709551615 would
    // become -1.
    auto out_of_range = [&] {
      return bad(fmt::format("an integer from {} to {}", std::numeric_limits<T>::min(), std::numeric_limits<T>::max()));
    };
    if (j.is_number_unsigned()) {
      const auto value = j.get<std::uint64_t>();
      if (!std::in_range<T>(value)) throw out_of_range();
      out = static_cast<T>(value);
    } else if (j.is_number_integer()) {
      const auto value = j.get<std::int64_t>();
      if (!std::in_range<T>(value)) throw out_of_range();
      out = static_cast<T>(value);
    } else {
      throw bad("an integer");
    }
  } else if constexpr (std::is_floating_point_v<T>) {
    if (!j.is_number()) throw bad("a number");
    // The reader refuses literals beyond the double range, but a narrower field (a user's float)
    // must still hold the value, and a document built in code may hold inf or nan.
    const double value = j.get<double>();
    if (!std::isfinite(value) || std::fabs(value) > static_cast<double>(std::numeric_limits<T>::max()))
      throw bad(fmt::format("a finite number of magnitude at most {}", std::numeric_limits<T>::max()));
    out = static_cast<T>(value);
  } else if constexpr (std::is_same_v<T, std::string>) {
    if (!j.is_string()) throw bad("a string");
    check_text(name, j.get_ref<const std::string&>());
    out = j.get<std::string>();
  } else if constexpr (std::is_same_v<T, nlohmann::json>) {
    if (j.is_string()) parse_value(name, j.get<std::string>(), out);
    else if (j.is_object()) out = j;
    else throw bad("a JSON object");
  } else if constexpr (is_vector<T>::value) {
    std::vector<std::string> items;
    auto add = [&](const nlohmann::json& item) {
      if (!item.is_string()) throw bad("a list of strings");
      const auto& text = item.get_ref<const std::string&>();
      if (text.empty()) throw bad("a list of non-empty strings");  // the file's wording, not the flag's
      check_text(name, text);
      items.push_back(text);
    };
    if (j.is_array()) {
      for (const auto& item : j) add(item);
    } else {
      add(j);  // HF's argparse accepts a single value for nargs='+'
    }
    out.assign(items.begin(), items.end());
  } else if constexpr (NamedEnum<T>) {
    if (!j.is_string()) throw bad(fmt::format("one of {}", enum_choices<T>()));
    parse_value(name, j.get<std::string>(), out);
  } else {
    static_assert(always_false<T>, "trainpp: an argument struct field has a type the parser does not know");
  }
}

template <class T>
nlohmann::json to_json_value(const T& v) {
  if constexpr (is_optional<T>::value) return v ? to_json_value(*v) : nlohmann::json(nullptr);
  else if constexpr (NamedEnum<T>) return std::string(to_string(v));
  else return nlohmann::json(v);
}

std::size_t edit_distance(std::string_view a, std::string_view b);

/// One field of the argument structs, type-erased for the parser and --help.
struct CliField {
  std::string name, help, group, type, default_value;
  std::function<void(std::string_view)> set;
  std::function<void(const nlohmann::json&)> set_json;
  bool is_bool = false, is_list = false, defaults_true = false;
};

/// The values `a.accepted` lists.
[[nodiscard]] std::vector<nlohmann::json> accepted_values(const UnimplementedArgument& a);

/// A field that takes what an unimplemented argument accepts and refuses anything else with its reason.
/// Text from the command line or YAML is read as JSON where it is JSON (false, 0, null), else as a string.
[[nodiscard]] CliField unimplemented_field(const UnimplementedArgument& a);

/// The fields of every struct in `structs`, in declaration order, bound to the structs' members.
/// Two structs declaring the same name would leave one of them unreachable: refused.
template <class... Structs>
[[nodiscard]] std::vector<CliField> cli_fields(std::tuple<Structs...>& structs) {
  std::vector<CliField> fields;
  std::apply([&](auto&... s) {
    (visit_fields(s, [&](const FieldInfo& f, auto& value) {
       using T = std::remove_cvref_t<decltype(value)>;
       CliField field;
       field.name = std::string(f.name);
       field.help = std::string(f.help);
       field.group = std::string(f.group);
       field.type = type_name<T>();
       field.default_value = to_json_value(value).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
       field.is_bool = std::is_same_v<T, bool> || std::is_same_v<T, std::optional<bool>>;
       field.is_list = is_vector<T>::value;
       if constexpr (std::is_same_v<T, bool>) field.defaults_true = value;
       const std::string name = field.name;
       field.set = [&value, name](std::string_view text) {
         if constexpr (is_vector<T>::value) {
           if (text.empty()) throw error("argument --{}: invalid value: '' (list items must not be empty)", name);
           check_text(name, text);
           value.emplace_back(text);
         } else {
           parse_value(name, text, value);
         }
       };
       // null in a file is HF's None, "not given": a field that is not optional keeps its default
       // (HF's training_args.json holds null for fsdp, label_names, lr_scheduler_kwargs, ...).
       field.set_json = [&value, name](const nlohmann::json& j) {
         if (j.is_null() && !is_optional<T>::value) return;
         assign_json(name, j, value);
       };
       if constexpr (std::is_same_v<T, std::string>) {
         if (name == "fsdp") {
           // HF's fsdp is `list | str | None`; its training_args.json holds the options as a list
           // (["full_shard", "auto_wrap"]), trainpp's as one space-separated string.
           field.set_json = [&value, name](const nlohmann::json& j) {
             if (j.is_null()) return;
             if (!j.is_array()) return assign_json(name, j, value);
             std::string joined;
             for (const auto& option : j) {
               if (!option.is_string()) throw error("argument 'fsdp': expected a list of option names, got {}", shown_json(j));
               if (!joined.empty()) joined += ' ';
               joined += option.get<std::string>();
             }
             value = joined;
           };
         }
       }
       fields.push_back(std::move(field));
     }), ...);
  }, structs);
  for (std::size_t i = 0; i < fields.size(); ++i)
    for (std::size_t k = 0; k < i; ++k)
      if (fields[i].name == fields[k].name)
        throw error("argument --{} is declared twice by the argument structs; rename one", fields[i].name);
  // Beside TrainingArguments, transformers' fields trainpp does not implement: a value that says what
  // trainpp does is accepted, any other refused with the reason (args/unimplemented.hpp). A program's own
  // struct may declare one of them: then it is the program's.
  if constexpr ((std::is_same_v<Structs, TrainingArguments> || ...)) {
    for (const auto& a : unimplemented_arguments) {
      if (std::ranges::any_of(fields, [&](const CliField& f) { return f.name == a.name; })) continue;
      fields.push_back(unimplemented_field(a));
    }
  }
  return fields;
}

/// The field name nearest to `name` when it is close enough to be a typo of it.
[[nodiscard]] std::optional<std::string> nearest_field(const std::vector<CliField>& fields, std::string_view name);

/// Whether a leading argument names an arguments file: HfArgumentParser's parse_json_file and
/// parse_yaml_file inputs.
[[nodiscard]] inline bool is_arguments_file(std::string_view token) {
  return token.ends_with(".json") || token.ends_with(".yaml") || token.ends_with(".yml");
}

/// Gives a value from a YAML arguments file to its field. A plain scalar is read as the same text on
/// the command line would be (`eval_strategy: no` is the choice "no", `do_train: yes` true,
/// `learning_rate: 5e-5` a number); a quoted one is a string, as in a JSON file; a list or mapping
/// is its JSON.
void assign_yaml(CliField& field, const YamlNode& node);

}  // namespace detail

/// The fields of an argument struct as a JSON object (training_args.json).
template <class Args>
[[nodiscard]] nlohmann::json args_json(const Args& args) {
  nlohmann::json j = nlohmann::json::object();
  auto copy = args;
  visit_fields(copy, [&](const FieldInfo& f, auto& value) { j[std::string(f.name)] = detail::to_json_value(value); });
  return j;
}

/// The --help text of a program parsing `structs` (their values are the defaults shown): every
/// argument under its group's heading (groups in order of first appearance), each with its type,
/// default and help line.
template <class... Structs>
[[nodiscard]] std::string help_text(std::string_view program, std::tuple<Structs...> structs = {}) {
  const auto fields = detail::cli_fields(structs);
  std::vector<std::string> groups;
  for (const auto& f : fields)
    if (std::ranges::find(groups, f.group) == groups.end()) groups.push_back(f.group);
  std::string out = fmt::format(
      "usage: {} [args.json] [--name value ...]\n"
      "Arguments come from an optional JSON or YAML file (first) and the command line, which wins.\n"
      "Each --name_with_underscores may also be written --name-with-hyphens.\n",
      program);
  for (const auto& group : groups) {
    out += fmt::format("\n{}:\n", group.empty() ? "arguments" : group);
    for (const auto& f : fields) {
      if (f.group != group) continue;
      const std::string negation = f.defaults_true ? fmt::format(", --no_{} for false", f.name) : "";
      out += fmt::format("  --{:<32} {}{} (default: {})\n      {}\n", f.name, f.type, negation, f.default_value, f.help);
    }
  }
  return out;
}

/// docs/arguments.md: every TrainingArguments field, by group, with its type, default and meaning, then
/// transformers' fields that trainpp does not implement, with the values accepted and why. Generated
/// from the code; a test keeps the file in step with it.
[[nodiscard]] std::string arguments_reference_markdown();

/// Thrown by parse_args for --help after printing it; examples return 0 on it.
struct HelpRequested {};

/// Parses argument structs from the command line (and an optional leading JSON file), then calls
/// apply_launcher_environment(names given) (TrainingArguments: what `accelerate launch` exports, where
/// no flag says otherwise) and finalize() on each struct that has them. Flags are shared: each goes to the struct that declares it.
/// Errors (unknown flag — with the nearest valid one —, missing value, bad value, bad JSON file)
/// throw trainpp::Error; `--help` prints help_text() and throws HelpRequested.
// Long on purpose: one pass over argv with each flag form (--k v, --k=v, bare bool, JSON file) handled in place.
template <class... Structs>
[[nodiscard]] std::tuple<Structs...> parse_args_into(const std::vector<std::string>& argv, std::string_view program = "program",
                                                     std::tuple<Structs...> out = {}) {
  std::vector<detail::CliField> fields = detail::cli_fields(out);

  auto find = [&](std::string_view name) -> detail::CliField* {
    for (auto& f : fields)
      if (f.name == name) return &f;
    return nullptr;
  };
  auto unknown = [&](std::string_view flag) {
    std::string underscored(flag);
    std::ranges::replace(underscored, '-', '_');
    if (auto near = detail::nearest_field(fields, underscored))
      return error("unrecognized argument: --{} (did you mean --{}?)", detail::shown_text(flag), *near);
    return error("unrecognized argument: --{} (see --help)", detail::shown_text(flag));
  };
  auto is_flag = [](const std::string& token) { return token.starts_with("--") && token.size() > 2; };
  std::set<std::string> given;  // what the file and the command line set: the launcher's environment yields to them

  // --help wins over every error, as with argparse, wherever it stands.
  for (const auto& token : argv) {
    if (token != "--help" && token != "-h") continue;
    const auto text = help_text(program, out);
    std::fwrite(text.data(), 1, text.size(), stdout);
    std::fflush(stdout);
    throw HelpRequested{};
  }

  std::size_t i = 0;
  if (!argv.empty() && !argv[0].starts_with("-") && detail::is_arguments_file(argv[0])) {
    const std::string& file = argv[0];
    const auto source = fmt::format("the arguments file {}", detail::shown_text(file));
    // A FIFO or a device would block or never end: only a regular file of sensible size is read.
    std::error_code ec;
    const auto status = std::filesystem::status(file, ec);
    if (std::filesystem::exists(status) && !std::filesystem::is_regular_file(status))
      throw error("{} is not a regular file", source);
    if (const auto size = std::filesystem::file_size(file, ec); !ec && size > arguments_file_max_bytes)
      throw error("{} is {} bytes long, more than an arguments file may be ({})", source, size, arguments_file_max_bytes);
    // Unknown keys are refused, as HfArgumentParser.parse_dict does without allow_extra_keys.
    auto field_for = [&](const std::string& key) -> detail::CliField& {
      if (detail::CliField* f = find(key)) return *f;
      if (auto near = detail::nearest_field(fields, key))
        throw error("{}: unrecognized key \"{}\" (did you mean \"{}\"?)", source, detail::shown_text(key), *near);
      throw error("{}: unrecognized key \"{}\" (see --help)", source, detail::shown_text(key));
    };
    if (file.ends_with(".json")) {
      // Strictly: a duplicate key (which the JSON library would silently resolve) is refused.
      const nlohmann::json j = detail::parse_json_strict(read_file(file), source);
      if (!j.is_object()) throw error("{} must hold a JSON object, got {}", source, j.type_name());
      for (const auto& [key, value] : j.items()) {
        detail::CliField& f = field_for(key);
        given.insert(f.name);
        try {
          f.set_json(value);
        } catch (const Error& e) {
          throw error("{}: {}", source, e.what());
        }
      }
    } else {
      const detail::YamlNode root = detail::YamlArgumentsReader(read_file(file), source).document();
      for (std::size_t k = 0; k < root.keys.size(); ++k) {
        detail::CliField& f = field_for(root.keys[k]);
        given.insert(f.name);
        try {
          detail::assign_yaml(f, root.items[k]);
        } catch (const Error& e) {
          throw error("{}: line {}: {}", source, root.items[k].line, e.what());
        }
      }
    }
    i = 1;
  }
  for (; i < argv.size(); ++i) {
    const std::string& token = argv[i];
    if (!is_flag(token)) {
      if (detail::is_arguments_file(token))
        throw error("unexpected argument '{}': an arguments file must come first", detail::shown_text(token));
      throw error("unexpected argument '{}': arguments are given as --name value (see --help)", detail::shown_text(token));
    }
    std::string name = token.substr(2);
    std::optional<std::string> inline_value;
    if (auto eq = name.find('='); eq != std::string::npos) {
      inline_value = name.substr(eq + 1);
      name = name.substr(0, eq);
    }
    if (name.empty())
      throw error("unexpected argument '{}': arguments are given as --name value (see --help)", detail::shown_text(token));
    // HfArgumentParser's second spelling of each flag: --per-device-train-batch-size, --no-log-on-each-node.
    const std::string spelled = name;
    if (name.find('-') != std::string::npos && name.find('_') == std::string::npos) std::ranges::replace(name, '-', '_');
    detail::CliField* f = find(name);
    if (!f && name.starts_with("no_")) {
      detail::CliField* negated = find(std::string_view(name).substr(3));
      if (negated && negated->is_bool && negated->defaults_true) {
        if (inline_value)
          throw error("argument --{}: ignored explicit argument '{}'", name, detail::shown_text(*inline_value));
        negated->set("false");
        given.insert(negated->name);
        continue;
      }
    }
    if (!f) throw unknown(spelled);
    given.insert(f->name);
    const bool next_is_value = i + 1 < argv.size() && !is_flag(argv[i + 1]);
    if (f->is_bool && !inline_value && !(next_is_value && detail::parse_bool(argv[i + 1]))) {
      f->set("true");
      continue;
    }
    if (f->is_list) {
      // nargs='+': the flag's values run up to the next flag; a repeated flag starts over.
      f->set_json(nlohmann::json::array());
      if (inline_value) { f->set(*inline_value); continue; }
      if (!next_is_value) throw error("argument --{}: expected at least one value", name);
      while (i + 1 < argv.size() && !is_flag(argv[i + 1])) f->set(argv[++i]);
      continue;
    }
    if (inline_value) { f->set(*inline_value); continue; }
    if (!next_is_value) throw error("argument --{}: expected a value ({})", name, f->type);
    f->set(argv[++i]);
  }
  std::apply([&](auto&... s) {
    ([&] { if constexpr (requires { s.apply_launcher_environment(given); }) s.apply_launcher_environment(given); }(), ...);
    ([&] { if constexpr (requires { s.finalize(); }) s.finalize(); }(), ...);
  }, out);
  return out;
}

/// parse_args(argc, argv, TrainingArguments{...}, MyArgs{...}): the given structs are the values
/// before the command line applies (a program's own defaults). Returns the struct, or a tuple of them.
template <class... Structs>
  requires(sizeof...(Structs) > 0)
[[nodiscard]] auto parse_args(int argc, char** argv, Structs... defaults) {
  std::vector<std::string> tokens;
  if (argc > 1) tokens.assign(argv + 1, argv + argc);
  auto parsed = parse_args_into<Structs...>(tokens, argc > 0 && argv[0] ? argv[0] : "program",
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
/// Any other exception is a failure of the program rather than of its input: exit code 1, with its
/// message, instead of std::terminate.
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
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
}

// TrainingArguments alone is what most programs parse, and what every Trainer saves as
// training_args.json: these instantiations depend on no user type, so a program linking
// trainpp::compiled takes them from there instead of compiling them again.
#if !TRAINPP_DEFINITIONS
namespace detail {
extern template std::vector<CliField> cli_fields<TrainingArguments>(std::tuple<TrainingArguments>&);
}  // namespace detail
extern template nlohmann::json args_json<TrainingArguments>(const TrainingArguments&);
extern template std::string help_text<TrainingArguments>(std::string_view, std::tuple<TrainingArguments>);
extern template std::tuple<TrainingArguments> parse_args_into<TrainingArguments>(const std::vector<std::string>&,
                                                                                std::string_view,
                                                                                std::tuple<TrainingArguments>);
#endif

#if TRAINPP_DEFINITIONS

namespace detail {

TRAINPP_INLINE bool is_valid_utf8(std::string_view text) {
  std::size_t i = 0;
  while (i < text.size()) {
    const auto lead = static_cast<unsigned char>(text[i]);
    if (lead < 0x80) {
      ++i;
      continue;
    }
    std::size_t length = 0;
    char32_t code = 0;
    if ((lead & 0xE0) == 0xC0) length = 2, code = lead & 0x1Fu;
    else if ((lead & 0xF0) == 0xE0) length = 3, code = lead & 0x0Fu;
    else if ((lead & 0xF8) == 0xF0) length = 4, code = lead & 0x07u;
    else return false;
    if (text.size() - i < length) return false;
    for (std::size_t k = 1; k < length; ++k) {
      const auto next = static_cast<unsigned char>(text[i + k]);
      if ((next & 0xC0) != 0x80) return false;
      code = (code << 6) | (next & 0x3Fu);
    }
    const char32_t smallest[] = {0, 0, 0x80, 0x800, 0x10000};
    if (code < smallest[length] || code > 0x10FFFF || (code >= 0xD800 && code <= 0xDFFF)) return false;
    i += length;
  }
  return true;
}

TRAINPP_INLINE std::string shown_text(std::string_view text) {
  const bool utf8 = is_valid_utf8(text);
  std::string out;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const auto byte = static_cast<unsigned char>(text[i]);
    if (out.size() >= shown_value_max && (!utf8 || (byte & 0xC0) != 0x80))
      return fmt::format("{}... ({} bytes in all)", out, text.size());
    if (byte < 0x20 || byte == 0x7F || (byte >= 0x80 && !utf8)) out += fmt::format("\\x{:02x}", byte);
    else out += static_cast<char>(byte);
  }
  return out;
}

TRAINPP_INLINE void check_text(std::string_view name, std::string_view text) {
  if (const auto nul = text.find('\0'); nul != std::string_view::npos)
    throw error("argument --{}: invalid str value: '{}' holds a NUL byte", name, shown_text(text));
  if (!is_valid_utf8(text)) throw error("argument --{}: invalid str value: '{}' is not valid UTF-8", name, shown_text(text));
}

TRAINPP_INLINE std::optional<bool> parse_bool(std::string_view s) {
  std::string l(s);
  std::ranges::transform(l, l.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (l == "true" || l == "1" || l == "yes" || l == "y" || l == "t") return true;
  if (l == "false" || l == "0" || l == "no" || l == "n" || l == "f") return false;
  return std::nullopt;
}

TRAINPP_INLINE std::size_t edit_distance(std::string_view a, std::string_view b) {
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

TRAINPP_INLINE std::vector<nlohmann::json> accepted_values(const UnimplementedArgument& a) {
  std::vector<nlohmann::json> out;
  std::string_view rest = a.accepted;
  while (!rest.empty()) {
    const auto bar = rest.find(" | ");
    out.push_back(nlohmann::json::parse(rest.substr(0, bar)));
    rest = bar == std::string_view::npos ? std::string_view{} : rest.substr(bar + 3);
  }
  return out;
}

TRAINPP_INLINE CliField unimplemented_field(const UnimplementedArgument& a) {
  CliField field;
  field.name = std::string(a.name);
  field.help = fmt::format("Not implemented: {}. Accepted: {}.", a.reason, a.accepted);
  field.group = "transformers arguments trainpp does not implement";
  field.type = a.is_bool ? "bool" : a.is_list ? "list" : "value";
  field.default_value = accepted_values(a).front().dump();
  field.is_bool = a.is_bool;
  field.is_list = a.is_list;
  field.defaults_true = a.is_bool && field.default_value == "true";
  field.set_json = [a](const nlohmann::json& value) {
    for (const auto& accepted : accepted_values(a))
      if (value == accepted) return;
    throw error("argument --{}: {} is not supported: {} (accepted: {})", a.name,
                value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace), a.reason, a.accepted);
  };
  field.set = [a, set_json = field.set_json](std::string_view text) {
    if (a.is_list) {  // a list item given: only the empty list is accepted
      set_json(nlohmann::json::array({std::string(text)}));
      return;
    }
    if (a.is_bool) {
      if (const auto flag = parse_bool(text)) return set_json(*flag);
    }
    nlohmann::json value = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
    set_json(value.is_discarded() ? nlohmann::json(std::string(text)) : value);
  };
  return field;
}

TRAINPP_INLINE std::optional<std::string> nearest_field(const std::vector<CliField>& fields,
                                                        std::string_view name) {
  const std::size_t tolerance = std::max<std::size_t>(3, name.size() / 3);
  std::optional<std::string> best;
  std::size_t best_distance = SIZE_MAX;
  for (const auto& f : fields) {
    // The distance is at least the difference in length: a long token need not be compared at all.
    const std::size_t length_gap = name.size() > f.name.size() ? name.size() - f.name.size() : f.name.size() - name.size();
    if (length_gap > tolerance) continue;
    const auto distance = edit_distance(name, f.name);
    if (distance < best_distance) best_distance = distance, best = f.name;
  }
  if (best_distance <= tolerance) return best;
  return std::nullopt;
}

TRAINPP_INLINE void assign_yaml(CliField& field, const YamlNode& node) {
  if (node.kind != YamlNode::Kind::scalar || node.is_null()) {
    nlohmann::json value = yaml_to_json(node);
    if (field.is_list && value.is_array()) {  // list items are names whatever they look like: `[1, yes]`
      for (std::size_t k = 0; k < node.items.size(); ++k)
        if (node.items[k].kind == YamlNode::Kind::scalar && !node.items[k].is_null()) value[k] = node.items[k].text;
    }
    field.set_json(value);
  } else if (!node.plain) {
    field.set_json(node.text);
  } else if (field.is_list) {
    field.set_json(nlohmann::json::array({node.text}));
  } else {
    field.set(node.text);
  }
}

}  // namespace detail

TRAINPP_INLINE std::string arguments_reference_markdown() {
  std::tuple<TrainingArguments> structs;
  const auto fields = detail::cli_fields(structs);
  auto cell = [](std::string text) {
    std::string out;
    for (const char c : text) {
      if (c == '|') out += "\\|";
      else if (c == '\n') out += ' ';
      else out += c;
    }
    return out;
  };
  std::string out =
      "# TrainingArguments\n\n"
      "Generated from include/trainpp/args.hpp and include/trainpp/args/unimplemented.hpp (the test\n"
      "\"docs/arguments.md is generated from the code\" fails when this file is stale; run it with\n"
      "TRAINPP_WRITE_DOCS=1 to rewrite it). Every field of transformers 5's `TrainingArguments` is here:\n"
      "implemented with HF's name, default and meaning, or listed at the end as not implemented, with the\n"
      "values that say what trainpp does anyway (accepted, so HF's own `training_args.json` loads) and the\n"
      "reason any other value is refused. Flags are written `--name value`, `--name=value` or\n"
      "`--name-with-hyphens`; booleans also bare (`--name`) or negated (`--no_name`).\n";
  std::vector<std::string> groups;
  for (const auto& f : fields)
    if (std::ranges::find(groups, f.group) == groups.end()) groups.push_back(f.group);
  for (const auto& group : groups) {
    out += fmt::format("\n## {}\n\n| argument | type | default | meaning |\n|---|---|---|---|\n", group);
    for (const auto& f : fields)
      if (f.group == group)
        out += fmt::format("| `--{}` | {} | `{}` | {} |\n", f.name, cell(f.type), cell(f.default_value), cell(f.help));
  }
  return out;
}

#if defined(TRAINPP_COMPILED_LIB)
namespace detail {
template std::vector<CliField> cli_fields<TrainingArguments>(std::tuple<TrainingArguments>&);
}  // namespace detail
template nlohmann::json args_json<TrainingArguments>(const TrainingArguments&);
template std::string help_text<TrainingArguments>(std::string_view, std::tuple<TrainingArguments>);
template std::tuple<TrainingArguments> parse_args_into<TrainingArguments>(const std::vector<std::string>&,
                                                                         std::string_view,
                                                                         std::tuple<TrainingArguments>);
#endif

#endif  // TRAINPP_DEFINITIONS

}  // namespace trainpp
