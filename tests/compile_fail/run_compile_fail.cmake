# Runs one compile-fail case: builds its failing variant and passes only when that build fails with
# output matching the case's `// expect-error: <regex>` line (CMake regex syntax: . * + ? [] () | ^ $,
# a backslash escapes). A case that compiles, or fails for another reason, fails the test and shows
# the compiler output.
#
#   cmake -D BUILD_DIR=<build tree> -D TARGET=<target> -D SOURCE=<case.cpp> [-D CONFIG=<config>]
#         -P run_compile_fail.cmake

foreach(required BUILD_DIR TARGET SOURCE)
  if(NOT DEFINED ${required})
    message(FATAL_ERROR "run_compile_fail.cmake: ${required} is not set")
  endif()
endforeach()

file(STRINGS "${SOURCE}" first_line LIMIT_COUNT 1)
if(NOT first_line MATCHES "^// expect-error: (.+)$")
  message(FATAL_ERROR "${SOURCE}: the first line must be `// expect-error: <regex>`")
endif()
set(expected "${CMAKE_MATCH_1}")

set(config_args "")
if(CONFIG)
  set(config_args --config "${CONFIG}")
endif()
# The C locale makes the compiler quote with ASCII apostrophes ('name'), not typographic ones, so
# that the expected-error regexes mean the same on every machine.
set(ENV{LC_ALL} C)
execute_process(
  COMMAND "${CMAKE_COMMAND}" --build "${BUILD_DIR}" --target "${TARGET}" ${config_args}
  RESULT_VARIABLE result
  OUTPUT_VARIABLE output
  ERROR_VARIABLE output)

if(result EQUAL 0)
  message(FATAL_ERROR
    "${TARGET} compiled, but ${SOURCE} must fail to compile with an error matching:\n"
    "  ${expected}\n"
    "Build output:\n${output}")
endif()
if(NOT output MATCHES "${expected}")
  message(FATAL_ERROR
    "${TARGET} failed to compile, but not with the expected error.\n"
    "Expected (regex): ${expected}\n"
    "Build output:\n${output}")
endif()
message(STATUS "${TARGET} failed to compile, as expected: ${CMAKE_MATCH_0}")
