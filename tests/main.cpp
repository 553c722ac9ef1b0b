// The doctest runner linked into every test binary; the test cases live in tests/trainpp/ and
// tests/single_header/.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>
