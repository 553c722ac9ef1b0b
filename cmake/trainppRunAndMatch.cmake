# Runs a command, prints its output, and fails unless it exits with EXPECT_EXIT (default 0) and
# (when PASS_REGEX is set) its output matches PASS_REGEX. CTest's PASS_REGULAR_EXPRESSION alone
# would ignore the exit status.
#
#   cmake [-D PASS_REGEX=<regex>] [-D EXPECT_EXIT=<code>] -P trainppRunAndMatch.cmake -- <program> [args...]

set(command "")
set(after_separator FALSE)
math(EXPR last "${CMAKE_ARGC} - 1")
foreach(i RANGE ${last})
  if(after_separator)
    list(APPEND command "${CMAKE_ARGV${i}}")
  elseif(CMAKE_ARGV${i} STREQUAL "--")
    set(after_separator TRUE)
  endif()
endforeach()
if(NOT command)
  message(FATAL_ERROR "trainppRunAndMatch.cmake: no command after --")
endif()

execute_process(COMMAND ${command} RESULT_VARIABLE result OUTPUT_VARIABLE output ERROR_VARIABLE output)
message("${output}")
if(NOT DEFINED EXPECT_EXIT OR EXPECT_EXIT STREQUAL "")
  set(EXPECT_EXIT 0)
endif()
if(NOT result STREQUAL EXPECT_EXIT)
  message(FATAL_ERROR "exited with ${result} (expected ${EXPECT_EXIT}): ${command}")
endif()
if(DEFINED PASS_REGEX AND NOT PASS_REGEX STREQUAL "" AND NOT output MATCHES "${PASS_REGEX}")
  message(FATAL_ERROR "the output does not match: ${PASS_REGEX}")
endif()
