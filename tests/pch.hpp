#pragma once
// The precompiled header of the tests, examples and compile-fail twins: the heavy third-party
// headers only. trainpp's own headers stay out, since they change often and every change would
// recompile this; so does doctest, whose header registers a test suite in every translation unit
// that includes it, which an example must not link. fmt comes first and through the fmt shim (the
// targets' include path), as in <trainpp/detail/config.hpp>.

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <torch/torch.h>

#include <boost/hana.hpp>
#include <nlohmann/json.hpp>
