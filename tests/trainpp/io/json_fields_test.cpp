// The typed view of a checkpoint file's JSON object (io/json_fields.hpp): each accessor's accepted
// types and ranges, and errors that name the file, the object and the key.

#include <trainpp/io/json_fields.hpp>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <cstdint>
#include <limits>
#include <optional>
#include <string>

namespace json_fields_test {

using trainpp::detail::JsonFields;

TEST_CASE("json_fields: only an object can be viewed, and a missing key names file, object and key") {
  CHECK_THROWS_WITH_AS(JsonFields(nlohmann::json::array(), "f.json", "the state"),
                       doctest::Contains("f.json: the state must be a JSON object, got array"), trainpp::Error);
  CHECK_THROWS_WITH_AS(JsonFields(nlohmann::json(nullptr), "f.json", "the state"),
                       doctest::Contains("must be a JSON object, got null"), trainpp::Error);
  const nlohmann::json j = {{"present", 1}, {"none", nullptr}};
  const JsonFields f(j, "f.json", "the state");
  CHECK(f.has("present"));
  CHECK(f.has("none"));
  CHECK_FALSE(f.has("absent"));
  CHECK_FALSE(f.is_null("present"));
  CHECK(f.is_null("none"));
  CHECK(f.is_null("absent"));  // a missing key reads as null
  CHECK(f.at("present") == 1);
  CHECK_THROWS_WITH_AS((void)f.at("absent"), doctest::Contains("f.json: the state lacks the key \"absent\""),
                       trainpp::Error);
}

TEST_CASE("json_fields: integer takes whole numbers within int64 and at least the minimum") {
  const nlohmann::json j = {{"zero", 0},
                            {"neg", -5},
                            {"big", std::numeric_limits<std::int64_t>::max()},
                            {"too_big", std::numeric_limits<std::uint64_t>::max()},
                            {"real", 2.0},
                            {"text", "3"}};
  const JsonFields f(j, "s.json", "state");
  CHECK(f.integer("zero") == 0);
  CHECK(f.integer("big") == std::numeric_limits<std::int64_t>::max());
  CHECK(f.integer("neg", -10) == -5);
  CHECK(f.integer("zero", -1) == 0);
  CHECK_THROWS_WITH_AS((void)f.integer("neg"), doctest::Contains("s.json: state \"neg\" must be an integer of at least 0, got -5"),
                       trainpp::Error);
  CHECK_THROWS_WITH_AS((void)f.integer("zero", 1), doctest::Contains("\"zero\" must be an integer of at least 1, got 0"),
                       trainpp::Error);
  // An unsigned value past int64's range must not wrap to a negative number.
  CHECK_THROWS_WITH_AS((void)f.integer("too_big", std::numeric_limits<std::int64_t>::min()),
                       doctest::Contains("\"too_big\" must be an integer"), trainpp::Error);
  // 2.0 is a float in JSON: an integer field is refused it, as Python's isinstance(x, int) would.
  CHECK_THROWS_WITH_AS((void)f.integer("real"), doctest::Contains("\"real\" must be an integer of at least 0, got 2.0"),
                       trainpp::Error);
  CHECK_THROWS_WITH_AS((void)f.integer("text"), doctest::Contains("\"text\" must be an integer of at least 0, got \"3\""),
                       trainpp::Error);
}

TEST_CASE("json_fields: number, boolean and string accept only their own JSON types") {
  const nlohmann::json j = {{"int", 3}, {"real", 0.25}, {"flag", false}, {"name", "x"}, {"zero", 0}};
  const JsonFields f(j, "s.json", "state");
  CHECK(f.number("int") == 3.0);  // an integer is a number
  CHECK(f.number("real") == 0.25);
  CHECK(f.boolean("flag") == false);
  CHECK(f.string("name") == "x");
  CHECK_THROWS_WITH_AS((void)f.number("flag"), doctest::Contains("\"flag\" must be a number, got false"), trainpp::Error);
  CHECK_THROWS_WITH_AS((void)f.number("name"), doctest::Contains("\"name\" must be a number, got \"x\""), trainpp::Error);
  // 0 is not false: a flag must be written as a JSON boolean.
  CHECK_THROWS_WITH_AS((void)f.boolean("zero"), doctest::Contains("\"zero\" must be true or false, got 0"), trainpp::Error);
  CHECK_THROWS_WITH_AS((void)f.string("int"), doctest::Contains("\"int\" must be a string, got 3"), trainpp::Error);
  CHECK_THROWS_WITH_AS((void)f.string("missing"), doctest::Contains("lacks the key \"missing\""), trainpp::Error);
}

TEST_CASE("json_fields: optional is empty for a missing or null key and checks the type otherwise") {
  const nlohmann::json j = {{"metric", 0.5}, {"none", nullptr}, {"bad", "high"}};
  const JsonFields f(j, "s.json", "state");
  CHECK(f.optional("metric", &JsonFields::number) == std::optional<double>(0.5));
  CHECK_FALSE(f.optional("none", &JsonFields::number));
  CHECK_FALSE(f.optional("absent", &JsonFields::string));
  CHECK_THROWS_WITH_AS((void)f.optional("bad", &JsonFields::number), doctest::Contains("\"bad\" must be a number"),
                       trainpp::Error);
}

TEST_CASE("json_fields: a long offending value is shortened to 80 characters in the message") {
  const nlohmann::json j = {{"name", std::string(200, 'a')}};
  const JsonFields f(j, "s.json", "state");
  const std::string message = f.fail("name", "a number", j.at("name")).what();
  const std::string shown = "\"" + std::string(76, 'a') + "...";  // 77 characters of the dump, then "..."
  CHECK(message == "s.json: state \"name\" must be a number, got " + shown);
  // A value short enough is shown whole.
  CHECK(std::string(f.fail("name", "a number", nlohmann::json({1, 2})).what()) ==
        "s.json: state \"name\" must be a number, got [1,2]");
}

}  // namespace json_fields_test
