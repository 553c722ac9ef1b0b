# trainpp's dependencies, found the same way in trainpp's own build and by the installed package config.
#
#   trainpp_find_dependencies()
#       Finds LibTorch, fmt, Boost (Hana), nlohmann_json, Threads, Gloo's headers, xxHash's header, ZLIB (optional:
#       trainpp::datasets, the data sets that read gzip, needs it) and, when
#       LibTorch is a CUDA build, NCCL's header, in the calling directory scope. Sets
#       TRAINPP_TORCH_LIBRARIES, TRAINPP_FMT_INCLUDE_DIR, TRAINPP_FMT_VERSION,
#       TRAINPP_GLOO_INCLUDE_DIR, TRAINPP_XXHASH_INCLUDE_DIR and TRAINPP_NCCL_INCLUDE_DIR there. PCRE2
#       and utf8proc (optional: trainpp::tokenizers needs them) through pkg-config:
#       TRAINPP_TOKENIZER_LIBRARIES_FOUND and the imported targets PkgConfig::TRAINPP_PCRE2 and
#       PkgConfig::TRAINPP_UTF8PROC.
#   trainpp_attach_dependencies(<target> <shim-parent-dir>)
#       Gives an INTERFACE target (trainpp's own, or the imported trainpp::trainpp) the usage
#       requirements of those dependencies, and creates the fmt shim under <shim-parent-dir>.
#
# Variables read by trainpp_find_dependencies():
#   Torch_DIR, CMAKE_PREFIX_PATH         the usual ways to point at LibTorch; tried first
#   Python3_EXECUTABLE                   a Python whose torch package carries LibTorch
#   TRAINPP_PYTHON_CANDIDATES            further interpreters to ask (trainpp's own .venv when top level)
#   TRAINPP_TORCH_DIR_HINT               last resort: where LibTorch was when the package was installed

# Prints the cmake prefix of the torch package of the first interpreter that has one.
function(_trainpp_torch_prefix_from_python out_prefix out_tried)
  set(candidates "")
  if(Python3_EXECUTABLE)
    list(APPEND candidates "${Python3_EXECUTABLE}")
  endif()
  # An active virtual environment is what the user means by "my Python".
  if(DEFINED ENV{VIRTUAL_ENV} AND EXISTS "$ENV{VIRTUAL_ENV}/bin/python")
    list(APPEND candidates "$ENV{VIRTUAL_ENV}/bin/python")
  endif()
  list(APPEND candidates ${TRAINPP_PYTHON_CANDIDATES})
  find_program(_trainpp_python3 NAMES python3 python NO_CACHE)
  if(_trainpp_python3)
    list(APPEND candidates "${_trainpp_python3}")
  endif()
  list(REMOVE_DUPLICATES candidates)

  set(tried "")
  foreach(python IN LISTS candidates)
    if(NOT EXISTS "${python}")
      continue()
    endif()
    list(APPEND tried "${python}")
    execute_process(
      COMMAND "${python}" -c "import torch.utils; print(torch.utils.cmake_prefix_path)"
      RESULT_VARIABLE result
      OUTPUT_VARIABLE prefix
      ERROR_QUIET
      OUTPUT_STRIP_TRAILING_WHITESPACE)
    if(result EQUAL 0 AND IS_DIRECTORY "${prefix}")
      set(${out_prefix} "${prefix}" PARENT_SCOPE)
      set(${out_tried} "${tried}" PARENT_SCOPE)
      return()
    endif()
  endforeach()
  set(${out_prefix} "" PARENT_SCOPE)
  set(${out_tried} "${tried}" PARENT_SCOPE)
endfunction()

# A macro, so that find_package's imported targets and variables land in the caller's scope.
macro(_trainpp_find_torch)
  # LibTorch's config warns about optional pieces it lacks on some machines (kineto, CUDA on a CPU
  # build); those warnings are harmless for trainpp.
  find_package(Torch 2 QUIET)
  if(NOT Torch_FOUND)
    _trainpp_torch_prefix_from_python(_trainpp_torch_prefix _trainpp_pythons_tried)
    if(_trainpp_torch_prefix)
      find_package(Torch 2 QUIET HINTS "${_trainpp_torch_prefix}")
    endif()
  endif()
  if(NOT Torch_FOUND AND TRAINPP_TORCH_DIR_HINT AND EXISTS "${TRAINPP_TORCH_DIR_HINT}")
    find_package(Torch 2 QUIET HINTS "${TRAINPP_TORCH_DIR_HINT}")
  endif()
  if(NOT Torch_FOUND)
    if(NOT _trainpp_pythons_tried)
      set(_trainpp_pythons_tried "none found")
    endif()
    message(FATAL_ERROR
      "trainpp needs LibTorch 2.x and could not find it.\n"
      "Point CMake at it in one of these ways:\n"
      "  -DTorch_DIR=<libtorch>/share/cmake/Torch\n"
      "  -DCMAKE_PREFIX_PATH=<libtorch>   (the unpacked LibTorch archive, or a torch wheel's share/cmake)\n"
      "  a Python with the torch package: activate its virtual environment, or pass\n"
      "  -DPython3_EXECUTABLE=/path/to/python (asked: ${_trainpp_pythons_tried})\n"
      "The pip package works: `pip install torch` provides LibTorch inside site-packages/torch.")
  endif()
  # TORCH_LIBRARIES names the imported target `torch`, which already carries TORCH_CXX_FLAGS (the
  # C++ ABI define) as an interface compile option, so linking it is all that LibTorch documents
  # a consumer needs; nothing is added to CMAKE_CXX_FLAGS globally.
  set(TRAINPP_TORCH_LIBRARIES ${TORCH_LIBRARIES})
endmacro()

# PCRE2 (8-bit) and utf8proc through pkg-config, quietly: a program that does not tokenize needs neither.
macro(_trainpp_find_tokenizer_libraries)
  set(TRAINPP_TOKENIZER_LIBRARIES_FOUND FALSE)
  find_package(PkgConfig QUIET)
  if(PkgConfig_FOUND)
    pkg_check_modules(TRAINPP_PCRE2 QUIET IMPORTED_TARGET libpcre2-8)
    pkg_check_modules(TRAINPP_UTF8PROC QUIET IMPORTED_TARGET libutf8proc)
    if(TRAINPP_PCRE2_FOUND AND TRAINPP_UTF8PROC_FOUND)
      set(TRAINPP_TOKENIZER_LIBRARIES_FOUND TRUE)
    endif()
  endif()
endmacro()

macro(trainpp_find_dependencies)
  _trainpp_find_torch()

  find_package(fmt CONFIG REQUIRED)
  # The directory that holds fmt/format.h for the fmt CMake found (Debian: /usr/include).
  get_target_property(_trainpp_fmt_dirs fmt::fmt INTERFACE_INCLUDE_DIRECTORIES)
  set(TRAINPP_FMT_INCLUDE_DIR "")
  foreach(_trainpp_dir IN LISTS _trainpp_fmt_dirs)
    if(EXISTS "${_trainpp_dir}/fmt/format.h")
      set(TRAINPP_FMT_INCLUDE_DIR "${_trainpp_dir}")
      break()
    endif()
  endforeach()
  if(NOT TRAINPP_FMT_INCLUDE_DIR)
    message(FATAL_ERROR "trainpp: fmt ${fmt_VERSION} was found (${fmt_DIR}), but none of its include "
                        "directories (${_trainpp_fmt_dirs}) contains fmt/format.h")
  endif()
  # FMT_VERSION as the headers define it (fmt 11+ in base.h, older in core.h), so that config.hpp
  # can compare it with what a translation unit really included.
  set(TRAINPP_FMT_VERSION "")
  foreach(_trainpp_header base.h core.h)
    if(EXISTS "${TRAINPP_FMT_INCLUDE_DIR}/fmt/${_trainpp_header}")
      file(STRINGS "${TRAINPP_FMT_INCLUDE_DIR}/fmt/${_trainpp_header}" _trainpp_define
           REGEX "^#[ \t]*define[ \t]+FMT_VERSION[ \t]+[0-9]+")
      if(_trainpp_define MATCHES "FMT_VERSION[ \t]+([0-9]+)")
        set(TRAINPP_FMT_VERSION "${CMAKE_MATCH_1}")
        break()
      endif()
    endif()
  endforeach()
  if(NOT TRAINPP_FMT_VERSION)
    message(FATAL_ERROR "trainpp: could not read FMT_VERSION from ${TRAINPP_FMT_INCLUDE_DIR}/fmt")
  endif()

  find_package(Boost 1.70 REQUIRED CONFIG)  # header-only use: Hana
  find_package(nlohmann_json 3 REQUIRED)
  # gzip-compressed data sets (Fashion-MNIST): only the target trainpp::datasets links it.
  find_package(ZLIB QUIET)
  # PCRE2 and utf8proc, the Unicode libraries of the tokenizers: only trainpp::tokenizers links them.
  _trainpp_find_tokenizer_libraries()
  find_package(Threads REQUIRED)

  # c10d's Gloo backend (ProcessGroupGloo, trainpp's collectives on CPUs) is compiled into
  # libtorch_cpu, but its header includes Gloo's own headers, which the pip wheel does not ship.
  # Only the headers are needed: the code is LibTorch's.
  find_path(TRAINPP_GLOO_INCLUDE_DIR gloo/algorithm.h
            DOC "The directory holding gloo/algorithm.h (Debian: libgloo-dev)")
  if(NOT TRAINPP_GLOO_INCLUDE_DIR)
    message(FATAL_ERROR
      "trainpp needs Gloo's headers (gloo/algorithm.h) for c10d's Gloo backend, its collectives on CPUs, "
      "and could not find them; LibTorch's pip wheel does not ship them.\n"
      "On Debian or Ubuntu: apt-get install libgloo-dev (tools/run does).\n"
      "Elsewhere: -DTRAINPP_GLOO_INCLUDE_DIR=<the directory that holds gloo/algorithm.h>.")
  endif()

  # xxHash checksums every file of a checkpoint (io/manifest.hpp). Used header-only (XXH_INLINE_ALL):
  # nothing to link.
  find_path(TRAINPP_XXHASH_INCLUDE_DIR xxhash.h DOC "The directory holding xxhash.h (Debian: libxxhash-dev)")
  if(NOT TRAINPP_XXHASH_INCLUDE_DIR)
    message(FATAL_ERROR
      "trainpp needs xxHash's header (xxhash.h) for the checksums of its checkpoints, and could not find it.\n"
      "On Debian or Ubuntu: apt-get install libxxhash-dev (tools/run does); conda: xxhash.\n"
      "Elsewhere: -DTRAINPP_XXHASH_INCLUDE_DIR=<the directory that holds xxhash.h>.")
  endif()

  _trainpp_find_nccl()
endmacro()

# c10d's NCCL backend (ProcessGroupNCCL, collectives between CUDA devices) is compiled into a CUDA
# build's libtorch_cuda, but LibTorch's CMake config neither says whether it was built with NCCL nor
# ships nccl.h. A CUDA build of LibTorch is recognised by its libc10_cuda; nccl.h comes from the CUDA
# toolkit or from the nvidia-nccl wheel that a CUDA torch wheel depends on (site-packages/nvidia/...).
# Sets TRAINPP_NCCL_INCLUDE_DIR (empty on CPU builds of LibTorch).
macro(_trainpp_find_nccl)
  set(TRAINPP_TORCH_IS_CUDA OFF)
  if(TORCH_INSTALL_PREFIX AND (EXISTS "${TORCH_INSTALL_PREFIX}/lib/libc10_cuda.so"
                               OR EXISTS "${TORCH_INSTALL_PREFIX}/lib/c10_cuda.lib"))
    set(TRAINPP_TORCH_IS_CUDA ON)
  endif()
  if(TRAINPP_TORCH_IS_CUDA)
    set(_trainpp_nccl_hints "")
    if(CUDAToolkit_INCLUDE_DIRS)
      list(APPEND _trainpp_nccl_hints ${CUDAToolkit_INCLUDE_DIRS})
    endif()
    # The pip wheels: nvidia/nccl/include (CUDA 12) or nvidia/cu13/include (CUDA 13), beside torch.
    file(GLOB _trainpp_nccl_wheel_dirs LIST_DIRECTORIES true "${TORCH_INSTALL_PREFIX}/../nvidia/*/include")
    list(APPEND _trainpp_nccl_hints ${_trainpp_nccl_wheel_dirs})
    find_path(TRAINPP_NCCL_INCLUDE_DIR nccl.h HINTS ${_trainpp_nccl_hints}
              DOC "The directory holding nccl.h, for c10d's NCCL backend on CUDA builds of LibTorch")
    if(NOT TRAINPP_NCCL_INCLUDE_DIR)
      message(FATAL_ERROR
        "trainpp: LibTorch is a CUDA build (${TORCH_INSTALL_PREFIX}), so trainpp compiles c10d's NCCL "
        "backend for data parallelism between GPUs, and that needs nccl.h, which was not found "
        "(looked in: ${_trainpp_nccl_hints} and the system include directories).\n"
        "Install it with the CUDA toolkit's NCCL (libnccl-dev) or `pip install nvidia-nccl-cu12` "
        "(or -cu13, matching torch), or pass -DTRAINPP_NCCL_INCLUDE_DIR=<the directory that holds nccl.h>.")
    endif()
    message(STATUS "trainpp: CUDA LibTorch, c10d's NCCL backend with ${TRAINPP_NCCL_INCLUDE_DIR}/nccl.h")
  else()
    set(TRAINPP_NCCL_INCLUDE_DIR "")
  endif()
endmacro()

function(trainpp_attach_dependencies target shim_parent)
  # LibTorch's include directory carries its own copy of fmt (a newer major version) and reaches the
  # compiler as a system directory, ahead of /usr/include. LibTorch's headers include <fmt/...>
  # themselves, so a translation unit would mix two fmt versions. The shim holds nothing but a link
  # named `fmt` to the fmt CMake found; placed first, it makes every <fmt/...> in the translation
  # unit, LibTorch's own included, resolve to that one fmt, the one libfmt was built from.
  set(shim "${shim_parent}/trainpp-fmt-shim")
  file(MAKE_DIRECTORY "${shim}")
  file(CREATE_LINK "${TRAINPP_FMT_INCLUDE_DIR}/fmt" "${shim}/fmt" RESULT link_result SYMBOLIC)
  if(NOT link_result STREQUAL "0")
    # No symbolic links here: a copy of the headers serves the same purpose.
    file(REMOVE_RECURSE "${shim}/fmt")
    file(COPY "${TRAINPP_FMT_INCLUDE_DIR}/fmt" DESTINATION "${shim}")
  endif()

  set(libraries
      ${TRAINPP_TORCH_LIBRARIES} fmt::fmt Boost::headers nlohmann_json::nlohmann_json Threads::Threads)
  if(CMAKE_SYSTEM_NAME STREQUAL "Linux")
    # Some LibTorch builds export copies of libstdc++ functions (std::filesystem among them). With a
    # linker that drops unneeded libraries (Ubuntu's default --as-needed), the program then names no
    # libstdc++ of its own, its std::filesystem calls bind to LibTorch's copies, and on CUDA wheels
    # (seen with torch 2.11+cu130) those jump to a null address. Naming libstdc++ first, kept even
    # where it seems unneeded, binds the standard library's symbols to the standard library.
    list(PREPEND libraries "-Wl,--push-state,--no-as-needed" "-lstdc++" "-Wl,--pop-state")
  endif()
  # USE_C10D_GLOO (and USE_DISTRIBUTED, which c10d's headers assume with it) unlock
  # ProcessGroupGloo.hpp, as they do in LibTorch's own build.
  set(definitions "TRAINPP_FMT_VERSION=${TRAINPP_FMT_VERSION}" USE_DISTRIBUTED USE_C10D_GLOO)
  set(collective_includes "${TRAINPP_GLOO_INCLUDE_DIR}" "${TRAINPP_XXHASH_INCLUDE_DIR}")
  if(TRAINPP_NCCL_INCLUDE_DIR)
    # USE_C10D_NCCL unlocks ProcessGroupNCCL.hpp, as in LibTorch's own CUDA build.
    list(APPEND definitions USE_C10D_NCCL)
    list(APPEND collective_includes "${TRAINPP_NCCL_INCLUDE_DIR}")
  endif()
  get_target_property(imported ${target} IMPORTED)
  if(NOT imported)
    # trainpp's own target: the installed package re-finds the dependencies on the consumer's machine
    # (see trainppConfig.cmake), so none of these machine-specific paths enters the export.
    list(TRANSFORM libraries PREPEND "$<BUILD_INTERFACE:")
    list(TRANSFORM libraries APPEND ">")
    set(shim "$<BUILD_INTERFACE:${shim}>")
    list(TRANSFORM collective_includes PREPEND "$<BUILD_INTERFACE:")
    list(TRANSFORM collective_includes APPEND ">")
    list(TRANSFORM definitions PREPEND "$<BUILD_INTERFACE:")
    list(TRANSFORM definitions APPEND ">")
  endif()
  target_include_directories(${target} SYSTEM BEFORE INTERFACE "${shim}")
  # After LibTorch's directories: Gloo's, xxHash's and NCCL's headers are the only ones wanted from there
  # (usually /usr/include, which CMake leaves to the compiler's own search order).
  target_include_directories(${target} SYSTEM INTERFACE ${collective_includes})
  target_compile_definitions(${target} INTERFACE ${definitions})
  target_link_libraries(${target} INTERFACE ${libraries})
endfunction()
