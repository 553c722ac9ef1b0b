# Runs one compile-fail case: compiles its failing variant and passes only when that compilation fails
# with output matching the case's `// expect-error: <regex>` line (CMake regex syntax: . * + ? [] () | ^ $,
# a backslash escapes). A case that compiles, or fails for another reason, fails the test and shows
# the compiler output.
#
#   cmake -D BUILD_DIR=<build tree> -D TARGET=<target> -D SOURCE=<case.cpp> [-D CONFIG=<config>]
#         [-D SYNTAX_ONLY=ON] -P run_compile_fail.cmake
#
# The variant's own compile command comes from the build tree's compile_commands.json (its target
# exports it) and runs here directly, without the build tool: cases then run side by side, where two
# build tools in one build tree would share its logs. SYNTAX_ONLY adds -fsyntax-only (GCC and Clang):
# a case is about the front end's verdict, never about code generation. Without compile_commands.json
# (generators that write none) the target is built through the build tool instead.

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

# The C locale makes the compiler quote with ASCII apostrophes ('name'), not typographic ones, so
# that the expected-error regexes mean the same on every machine.
set(ENV{LC_ALL} C)

# The failing variant's entry: the one for SOURCE that defines TRAINPP_COMPILE_FAIL (its twin, the
# same file without the define, has an entry of its own).
set(command "")
set(directory "")
set(database "${BUILD_DIR}/compile_commands.json")
if(EXISTS "${database}")
  file(READ "${database}" entries)
  string(JSON count LENGTH "${entries}")
  math(EXPR last "${count} - 1")
  foreach(i RANGE ${last})
    string(JSON file GET "${entries}" ${i} file)
    string(JSON entry_command ERROR_VARIABLE no_command GET "${entries}" ${i} command)
    if(file STREQUAL SOURCE AND NOT no_command AND entry_command MATCHES "TRAINPP_COMPILE_FAIL")
      set(command "${entry_command}")
      string(JSON directory GET "${entries}" ${i} directory)
      break()
    endif()
  endforeach()
endif()

if(command)
  separate_arguments(arguments UNIX_COMMAND "${command}")
  # Nothing is written: drop the object file and the dependency file the build would have produced.
  foreach(option -o -MT -MF)
    list(FIND arguments "${option}" at)
    if(at GREATER -1)
      math(EXPR value_at "${at} + 1")
      list(REMOVE_AT arguments ${at} ${value_at})
    endif()
  endforeach()
  list(REMOVE_ITEM arguments -MD -MMD)
  if(SYNTAX_ONLY)
    list(APPEND arguments -fsyntax-only)
  endif()
  execute_process(
    COMMAND ${arguments}
    WORKING_DIRECTORY "${directory}"
    RESULT_VARIABLE result
    OUTPUT_VARIABLE output
    ERROR_VARIABLE output)
else()
  set(config_args "")
  if(CONFIG)
    set(config_args --config "${CONFIG}")
  endif()
  execute_process(
    COMMAND "${CMAKE_COMMAND}" --build "${BUILD_DIR}" --target "${TARGET}" ${config_args}
    RESULT_VARIABLE result
    OUTPUT_VARIABLE output
    ERROR_VARIABLE output)
endif()

if(result EQUAL 0)
  message(FATAL_ERROR
    "${TARGET} compiled, but ${SOURCE} must fail to compile with an error matching:\n"
    "  ${expected}\n"
    "Compiler output:\n${output}")
endif()
if(NOT output MATCHES "${expected}")
  message(FATAL_ERROR
    "${TARGET} failed to compile, but not with the expected error.\n"
    "Expected (regex): ${expected}\n"
    "Compiler output:\n${output}")
endif()
message(STATUS "${TARGET} failed to compile, as expected: ${CMAKE_MATCH_0}")
