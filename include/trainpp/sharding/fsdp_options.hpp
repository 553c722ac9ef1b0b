#pragma once
// FsdpOptions and its readers live with the arguments that hold them (args/fsdp_options.hpp); this
// header stays for code that includes it from here.

#include <trainpp/args/fsdp_options.hpp>
