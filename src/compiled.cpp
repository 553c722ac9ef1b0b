// trainpp::compiled: the one definition of trainpp's code that does not depend on user types, for
// programs that link it instead of compiling that code in every translation unit (detail/config.hpp,
// TRAINPP_DEFINITIONS). Every header with such definitions is reached from here.
#if !defined(TRAINPP_COMPILED_LIB) || !defined(TRAINPP_BUILDING_COMPILED_LIB)
#error "src/compiled.cpp is built by the trainpp::compiled target only (TRAINPP_COMPILED_LIB and TRAINPP_BUILDING_COMPILED_LIB)"
#endif

#include <trainpp/trainpp.hpp>
