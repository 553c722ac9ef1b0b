// The doctest runner linked into every test binary; the test cases live in tests/trainpp/ and
// tests/single_header/.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include "skip.hpp"

#include <iostream>

namespace {
// Prints the skip marker (tests/skip.hpp) at the end of a test case that asked to be skipped and
// failed nothing before it did.
struct SkipListener : doctest::IReporter {
  explicit SkipListener(const doctest::ContextOptions&) {}
  void test_case_start(const doctest::TestCaseData&) override { trainpp_test::skip_reason().clear(); }
  void test_case_end(const doctest::CurrentTestCaseStats& stats) override {
    auto& reason = trainpp_test::skip_reason();
    if (!reason.empty() && stats.testCaseSuccess) std::cout << TRAINPP_TEST_SKIP_MARKER << reason << std::endl;
    reason.clear();
  }
  void report_query(const doctest::QueryData&) override {}
  void test_run_start() override {}
  void test_run_end(const doctest::TestRunStats&) override {}
  void test_case_reenter(const doctest::TestCaseData&) override {}
  void test_case_exception(const doctest::TestCaseException&) override {}
  void subcase_start(const doctest::SubcaseSignature&) override {}
  void subcase_end() override {}
  void log_assert(const doctest::AssertData&) override {}
  void log_message(const doctest::MessageData&) override {}
  void test_case_skipped(const doctest::TestCaseData&) override {}
};
}  // namespace

REGISTER_LISTENER("trainpp-skip", 1, SkipListener);
