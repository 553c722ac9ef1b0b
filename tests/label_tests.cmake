# Gives each test case of a doctest binary a ctest label: the name of its doctest test suite, or
# DEFAULT_LABEL when it is in none. Run after each build of the binary (tests/CMakeLists.txt,
# trainpp_label_doctest_tests); it writes OUTPUT, which ctest includes after doctest_discover_tests'
# own file, so these labels are the ones the tests carry.
#   cmake -D EXECUTABLE=<binary> -D PREFIX=<ctest name prefix> -D DEFAULT_LABEL=<label> -D OUTPUT=<file> -P label_tests.cmake

# The lines doctest prints around a listing.
function(doctest_list out)
  execute_process(COMMAND "${EXECUTABLE}" ${ARGN} OUTPUT_VARIABLE output RESULT_VARIABLE result)
  if(NOT result EQUAL 0)
    message(FATAL_ERROR "${EXECUTABLE} ${ARGN} failed (${result}):\n${output}")
  endif()
  string(REPLACE "\n" ";" lines "${output}")
  set(names "")
  foreach(line IN LISTS lines)
    if(line STREQUAL "" OR line MATCHES "^===+$" OR line MATCHES "^\\[doctest\\] ")
      continue()
    endif()
    list(APPEND names "${line}")
  endforeach()
  set(${out} "${names}" PARENT_SCOPE)
endfunction()

# set_tests_properties(<the cases, named as doctest_discover_tests names them> PROPERTIES LABELS <label>)
function(label_command out label)
  set(command "set_tests_properties(")
  foreach(name IN LISTS ARGN)
    string(APPEND command "\n  [==[${PREFIX}${name}]==]")
  endforeach()
  set(${out} "${command}\n  PROPERTIES LABELS ${label})\n" PARENT_SCOPE)
endfunction()

set(script "# Written by tests/label_tests.cmake after building ${EXECUTABLE}.\n")
doctest_list(unlabelled --list-test-cases)
doctest_list(suites --list-test-suites)
foreach(suite IN LISTS suites)
  doctest_list(cases --list-test-cases "--test-suite=${suite}")
  if(cases)
    list(REMOVE_ITEM unlabelled ${cases})
    label_command(command "${suite}" ${cases})
    string(APPEND script "${command}")
  endif()
endforeach()
if(unlabelled)
  label_command(command "${DEFAULT_LABEL}" ${unlabelled})
  string(APPEND script "${command}")
endif()
file(WRITE "${OUTPUT}" "${script}")
