#!/bin/sh
# Compiler launcher of the compile-fail targets: runs the compile command with -fsyntax-only (the
# whole front end, template instantiation included, but no code generation, which is most of a
# LibTorch translation unit's time and is never what a compile-fail case is about), then leaves an
# empty object file where the command would have written one, so that the build tool sees the
# target up to date. Nothing links these objects.
out=""
previous=""
for arg in "$@"; do
  [ "$previous" = "-o" ] && out=$arg
  previous=$arg
done
"$@" -fsyntax-only || exit $?
if [ -n "$out" ]; then : > "$out"; fi
