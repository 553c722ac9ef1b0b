// The YAML reader of arguments files (io/yaml.hpp): block and flow collections, scalars resolved as
// PyYAML's safe_load resolves them, quoting and escapes, and the refusal of what an arguments file has
// no use for, with the line it is on.

#include <trainpp/io/yaml.hpp>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <string>
#include <string_view>
#include <vector>

namespace yaml_test {

using trainpp::detail::YamlArgumentsReader;
using trainpp::detail::YamlNode;

nlohmann::json parse(std::string_view text) {
  return trainpp::detail::yaml_to_json(YamlArgumentsReader(text, "args.yaml").document());
}

std::string refusal(std::string_view text) {
  try {
    (void)YamlArgumentsReader(text, "args.yaml").document();
  } catch (const trainpp::Error& e) {
    return e.what();
  }
  return "<no error>";
}

TEST_CASE("yaml: plain scalars resolve as PyYAML's safe_load, with 1e-5 a number") {
  using trainpp::detail::resolve_plain_scalar;
  for (const char* t : {"true", "True", "TRUE", "yes", "Yes", "YES", "on", "On", "ON"}) CHECK_MESSAGE(resolve_plain_scalar(t) == true, t);
  for (const char* f : {"false", "False", "FALSE", "no", "No", "NO", "off", "Off", "OFF"}) CHECK_MESSAGE(resolve_plain_scalar(f) == false, f);
  for (const char* n : {"", "~", "null", "Null", "NULL"}) CHECK_MESSAGE(resolve_plain_scalar(n).is_null(), n);
  // Only those spellings: "y", "tRue" and "nil" are names.
  CHECK(resolve_plain_scalar("y") == "y");
  CHECK(resolve_plain_scalar("tRue") == "tRue");
  CHECK(resolve_plain_scalar("nil") == "nil");

  CHECK(resolve_plain_scalar("42").is_number_integer());
  CHECK(resolve_plain_scalar("42") == 42);
  CHECK(resolve_plain_scalar("-7") == -7);
  CHECK(resolve_plain_scalar("+5") == 5);
  CHECK(resolve_plain_scalar("1_000_000") == 1000000);  // YAML 1.1's digit separators
  CHECK(resolve_plain_scalar("1e-5").is_number_float());
  CHECK(resolve_plain_scalar("1e-5") == 1e-5);
  CHECK(resolve_plain_scalar("0.5") == 0.5);
  CHECK(resolve_plain_scalar(".5") == 0.5);
  // Beyond int64: a float, not a wrapped integer.
  CHECK(resolve_plain_scalar("9223372036854775808").is_number_float());
  // Not finite, or not wholly a number: the text itself.
  CHECK(resolve_plain_scalar("1e999") == "1e999");
  CHECK(resolve_plain_scalar("nan") == "nan");
  CHECK(resolve_plain_scalar("12abc") == "12abc");
  CHECK(resolve_plain_scalar("1.2.3") == "1.2.3");
  CHECK(resolve_plain_scalar("-") == "-");
  CHECK(resolve_plain_scalar("out/run-1") == "out/run-1");
}

TEST_CASE("yaml: plain scalars in YAML 1.1's octal, hex, binary and base-60 forms resolve as PyYAML's") {
  // Each expected value is PyYAML's safe_load of the same text.
  using trainpp::detail::resolve_plain_scalar;
  CHECK(resolve_plain_scalar("010") == 8);
  CHECK(resolve_plain_scalar("-010") == -8);
  CHECK(resolve_plain_scalar("0x1F") == 31);
  CHECK(resolve_plain_scalar("0b101") == 5);
  CHECK(resolve_plain_scalar("+0b1_01") == 5);
  CHECK(resolve_plain_scalar("1:30") == 90);
  CHECK(resolve_plain_scalar("-1:00:01") == -3601);
  CHECK(resolve_plain_scalar("0") == 0);
  CHECK(resolve_plain_scalar("1_000") == 1000);
  CHECK(resolve_plain_scalar("08") == "08");      // not octal, and no point: a string
  CHECK(resolve_plain_scalar("0x") == "0x");
  CHECK(resolve_plain_scalar("0b102") == "0b102");
  CHECK(resolve_plain_scalar("1:60") == "1:60");  // a base-60 digit stays below 60
  CHECK(resolve_plain_scalar("08.5") == 8.5);
  CHECK(resolve_plain_scalar(".5") == 0.5);
  // PyYAML makes a Python int of any size; beyond int64 it is a float here (see the case above).
  CHECK(resolve_plain_scalar("99999999999999999999") == 1e20);
}

TEST_CASE("yaml: a block mapping of scalars keeps quoted values as strings") {
  const auto j = parse(
      "learning_rate: 1e-5\n"
      "num_train_epochs: 3\n"
      "do_train: yes\n"
      "fp16: Off\n"
      "output_dir: out/run-1\n"
      "seed: ~\n"
      "empty:\n"
      "run_name: 'it''s'\n"
      "save_steps: \"500\"\n"
      "flag: 'true'\n"
      "url: http://host:8080/x\n"
      "\"quoted key\": 1\n"
      "'single key': 2\n");
  CHECK(j == nlohmann::json{{"learning_rate", 1e-5},
                            {"num_train_epochs", 3},
                            {"do_train", true},
                            {"fp16", false},
                            {"output_dir", "out/run-1"},
                            {"seed", nullptr},
                            {"empty", nullptr},
                            {"run_name", "it's"},
                            {"save_steps", "500"},
                            {"flag", "true"},
                            {"url", "http://host:8080/x"},
                            {"quoted key", 1},
                            {"single key", 2}});
}

TEST_CASE("yaml: block sequences and nested mappings parse as JSON arrays and objects") {
  const auto j = parse(
      "report_to:\n"
      "  - tensorboard\n"
      "  - 'wandb'\n"
      "same_indent:\n"
      "- a\n"
      "- 2\n"
      "objects:\n"
      "  - {name: a, size: 1}\n"
      "  - [x, y]\n"
      "  -\n"
      "fsdp_config:\n"
      "  min_num_params: 0\n"
      "  nested:\n"
      "    deep: true\n"
      "after: 1\n");
  CHECK(j == nlohmann::json{{"report_to", {"tensorboard", "wandb"}},
                            {"same_indent", {"a", 2}},
                            {"objects", {{{"name", "a"}, {"size", 1}}, {"x", "y"}, nullptr}},
                            {"fsdp_config", {{"min_num_params", 0}, {"nested", {{"deep", true}}}}},
                            {"after", 1}});
}

TEST_CASE("yaml: flow collections may hold quoted commas and run over several lines") {
  const auto j = parse(
      "a: [1, \"two, three\", 'x]', ~]\n"
      "b: {k: v, \"q k\": [1, 2], e: {}}\n"
      "c: [1,\n"
      "    2,\n"
      "    3]\n"
      "d: []\n");
  CHECK(j == nlohmann::json{{"a", {1, "two, three", "x]", nullptr}},
                            {"b", {{"k", "v"}, {"q k", {1, 2}}, {"e", nlohmann::json::object()}}},
                            {"c", {1, 2, 3}},
                            {"d", nlohmann::json::array()}});
  // A whole document written as one flow mapping.
  CHECK(parse("{a: 1, b: [x]}") == nlohmann::json{{"a", 1}, {"b", {"x"}}});
  CHECK(parse("{}") == nlohmann::json::object());
}

TEST_CASE("yaml: comments, document markers, a byte order mark and CRLF line ends are read past") {
  const auto j = parse(
      "\xEF\xBB\xBF--- # the only document\r\n"
      "# a comment line\r\n"
      "key: value # a comment\r\n"
      "anchor: page#section\r\n"
      "quoted: \"a # b\"\r\n"
      "single: 'it''s # kept'\r\n"
      "\r\n"
      "...\r\n"
      "ignored: after the end\r\n");
  CHECK(j == nlohmann::json{{"key", "value"}, {"anchor", "page#section"}, {"quoted", "a # b"}, {"single", "it's # kept"}});
  CHECK(parse("--- {a: 1}") == nlohmann::json{{"a", 1}});
}

TEST_CASE("yaml: double-quoted scalars resolve escapes to UTF-8, single-quoted ones keep backslashes") {
  const auto j = parse(
      "d: \"tab\\there\\n\\\"q\\\" \\\\ \\x41\\u00e9\\u20ac\\U0001F600\\/\"\n"
      "s: 'a\\nb'\n");
  CHECK(j.at("d") == "tab\there\n\"q\" \\ A\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80/");
  CHECK(j.at("s") == "a\\nb");
}

TEST_CASE("yaml: nodes record the line they start on") {
  const auto root = YamlArgumentsReader("# header\n\na: 1\nb:\n  - x\n  - y\nc: {k: v}\n", "args.yaml").document();
  REQUIRE(root.kind == YamlNode::Kind::mapping);
  CHECK(root.keys == std::vector<std::string>{"a", "b", "c"});  // in the file's order
  CHECK(root.line == 3);
  CHECK(root.items[0].line == 3);
  CHECK(root.items[1].kind == YamlNode::Kind::sequence);
  CHECK(root.items[1].line == 5);
  CHECK(root.items[1].items[1].line == 6);
  CHECK(root.items[2].line == 7);
  CHECK(root.items[0].plain);
  CHECK_FALSE(root.items[0].is_null());
}

TEST_CASE("yaml: what an arguments file has no use for is refused with its line") {
  struct Bad {
    std::string text;
    std::string phrase;
  };
  const std::vector<Bad> cases{
      {"", "args.yaml: holds no arguments"},
      {"# only a comment\n", "args.yaml: holds no arguments"},
      {"- a\n- b\n", "args.yaml: must hold a mapping of argument names to values, got a list"},
      {"[a, b]\n", "got a list"},
      {"just text\n", "must hold a mapping of argument names to values, got 'just text'"},
      {"a: 1\na: 2\n", "args.yaml: line 2: duplicate key \"a\""},
      {"a: {b: 1, b: 2}\n", "line 1: duplicate key \"b\""},
      {"a: &x 1\n", "line 1: anchors and aliases are not read"},
      {"a: *x\n", "line 1: anchors and aliases are not read"},
      {"a: !!str 1\n", "line 1: tags are not read"},
      {"a: [1, *x]\n", "anchors, aliases and tags are not read"},
      {"a: |\n  text\n", "line 1: block scalars (| and >) are not read"},
      {"a: >\n  text\n", "line 1: block scalars"},
      {"a: 1\n---\nb: 2\n", "line 2: a second document"},
      {"%YAML 1.2\n---\na: 1\n", "line 1: YAML directives are not read"},
      {"a: [1, 2\nb: 3\n", "line 1: a '[' that is not closed"},
      {"a: \"open\n", "line 1: a quoted value that does not close on its line"},
      {"a: \"\\q\"\n", "unknown escape '\\q'"},
      {"a: \"\\x4\"\n", "an escape needs 2 hex digits"},
      {"a: \"\\u12\"\n", "an escape needs 4 hex digits"},
      {"a: \"\\uD800\"\n", "the escape U+D800 is not a character"},
      {"a: \"\\U00110000\"\n", "the escape U+110000 is not a character"},
      {"a: b: c\n", "line 1: a value holding ': ' must be quoted"},
      {"a: [b: c]\n", "a value holding ': ' must be quoted"},
      {"a:\n  - x\n  - - y\n", "line 3: a list inside a list"},
      {"a:\n  - k: v\n", "line 2: a mapping inside a list"},
      {"a: 1\n  b: 2\n", "line 2: unexpected indentation"},
      {"a:\n\tb: 1\n", "line 2: a tab in the indentation"},
      {"x: 1\n? a\n", "line 2: complex keys are not read"},
      {"x: 1\n- a\n", "line 2: a list entry where a `name: value` line belongs"},
      {"a:\n  continued text\n", "line 2: a value continued on another line"},
      {"a: 1\nno colon here\n", "line 2: expected `name: value`, got 'no colon here'"},
      {"a: [1] x\n", "unexpected text after the closing ']'"},
      {"a: 'x' y\n", "unexpected text after a quoted value"},
      {"a: {b}\n", "expected `name: value` in a {} mapping"},
      {"a: [1 2, 3\n", "a '[' that is not closed"},
      {"a: [1, 2} \n", "expected ',' or ']'"},
      {"a: " + std::string(65, '[') + std::string(65, ']') + "\n", "nested deeper than 64 levels"},
      {std::string("a: 1\0b", 6), "args.yaml: a NUL byte at offset 4"},
  };
  for (const auto& c : cases) {
    const auto message = refusal(c.text);
    CAPTURE(c.text);
    CHECK_MESSAGE(message.starts_with("args.yaml: "), message);
    CHECK_MESSAGE(message.find(c.phrase) != std::string::npos, message, " lacks ", c.phrase);
  }
  // 64 levels are still read.
  CHECK(refusal("a: " + std::string(64, '[') + std::string(64, ']') + "\n") == "<no error>");
}

}  // namespace yaml_test
