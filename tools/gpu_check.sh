#!/usr/bin/env bash
# Builds trainpp's tests and the Fashion-MNIST example against the GPU machine's own PyTorch (CUDA
# LibTorch) and runs them there, printing a summary table last. That machine has no network, so the
# header-only dependencies and the data travel in carry/ (ignored by git):
#
#   tools/gpu_check.sh --prepare     here: fill carry/ (fmt, nlohmann/json, doctest, Boost.Hana,
#                                    zlib headers, the Fashion-MNIST files)
#   tools/gpu_check.sh               on the GPU machine, from the repository root (carry: ["carry"])
#
# It compiles with g++ directly rather than CMake, since the CMake configs of Debian's packages do not
# travel; -DFMT_HEADER_ONLY replaces libfmt, and the carried fmt comes first on the include path (the
# fmt shim's job in the CMake build).
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
deps=carry/deps

if [ "${1:-}" = "--prepare" ]; then
  rm -rf "$deps" && mkdir -p "$deps/include/boost" "$deps/fashion-mnist"
  cp -r /usr/include/fmt /usr/include/nlohmann /usr/include/doctest /usr/include/zlib.h /usr/include/zconf.h "$deps/include/"
  cp -r /usr/include/boost/hana /usr/include/boost/hana.hpp "$deps/include/boost/"
  cp /usr/share/datasets/fashion-mnist/*.gz "$deps/fashion-mnist/"
  du -sh "$deps"
  exit 0
fi

start=$(date +%s)
torch_dir=$(python3 -c "import torch, os; print(os.path.dirname(torch.__file__))")
torch_version=$(python3 -c "import torch; print(torch.__version__)")
build=/tmp/trainpp_gpu_build
mkdir -p "$build"
nvidia-smi -L
# The CUDA runtime headers LibTorch's CUDA headers include: the toolkit's, else the pip CUDA package's.
cuda_include=$(dirname "$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)")/../include
[ -f "$cuda_include/cuda_runtime.h" ] || cuda_include=$(python3 -c "import nvidia, os; print(os.path.dirname(nvidia.__path__[0]))")/nvidia/cu13/include
fmt_version=$(grep -m1 '#define FMT_VERSION' "$deps/include/fmt/core.h" | awk '{print $3}')
# c10d's Gloo backend needs Gloo's headers (a CUDA wheel may carry them, else libgloo-dev); without
# them the build leaves USE_C10D_GLOO undefined and trains on NCCL only.
gloo=()
if [ -f "$torch_dir/include/gloo/algorithm.h" ] || [ -f /usr/include/gloo/algorithm.h ]; then gloo=(-DUSE_C10D_GLOO); fi
echo "gloo headers: ${gloo[*]:-absent (NCCL only)}"
flags=(-std=c++20 -O1 -isystem "$deps/include" -Iinclude -Itests -isystem "$torch_dir/include"
       -isystem "$torch_dir/include/torch/csrc/api/include" -isystem "$cuda_include" -DFMT_HEADER_ONLY "-DTRAINPP_FMT_VERSION=$fmt_version"
       "-DTRAINPP_TEST_DATA_DIR=\"$PWD/tests/data\"" -DTRAINPP_TEST_CUDA "${gloo[@]}" -DUSE_DISTRIBUTED)
libs=(-Wl,--no-as-needed -L"$torch_dir/lib" -ltorch -ltorch_cpu -ltorch_cuda -lc10 -lc10_cuda
      -Wl,-rpath,"$torch_dir/lib" -l:libz.so.1 -pthread)

# One object per test file, all at once (16 cores), then one binary.
printf '#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN\n#include <doctest/doctest.h>\n' > "$build/main.cpp"
pids=()
g++ "${flags[@]}" -c "$build/main.cpp" -o "$build/main.o" & pids+=($!)
objects=("$build/main.o")
while IFS= read -r test; do
  object="$build/$(echo "$test" | tr '/' '_').o"
  objects+=("$object")
  g++ "${flags[@]}" -c "$test" -o "$object" 2> "$object.log" & pids+=($!)
done < <(find tests/trainpp -name '*_test.cpp' | sort)
g++ "${flags[@]}" examples/fashion_mnist/main.cpp -o "$build/fashion_mnist" "${libs[@]}" 2> "$build/example.log" & pids+=($!)
# The sharding policies over NCCL (a single rank on the one GPU: NCCL allows one rank per device), with nccl.h
# from the pip package the CUDA wheel of torch depends on.
nccl_include=$(dirname "$(find "$(python3 -c 'import site; print(site.getsitepackages()[0])')" /usr/include /usr/local/cuda/include \
  -name nccl.h -path '*include*' 2>/dev/null | head -1)")
g++ "${flags[@]}" -DUSE_C10D_NCCL -DTRAINPP_BENCH_CUDA -isystem "$nccl_include" tests/distributed/ddp_worker.cpp \
  -o "$build/ddp_worker" "${libs[@]}" 2> "$build/ddp_worker.log" & pids+=($!)
build_failed=0
for pid in "${pids[@]}"; do wait "$pid" || build_failed=1; done
if [ $build_failed -ne 0 ]; then
  cat "$build"/*.log | grep -E "error" | head -40
  echo "BUILD FAILED"
  exit 1
fi
g++ "${objects[@]}" -o "$build/trainpp_tests" "${libs[@]}" || { echo "LINK FAILED"; exit 1; }
built=$(date +%s)

# A crash stops doctest; show where (gdb's backtrace when gdb is there) and go on without the test
# file that crashed (doctest filters split on commas, so a case's name is no safe filter), so one
# crash does not hide the rest of the results.
excluded=""
crashes=""
for attempt in 1 2 3 4; do
  "$build/trainpp_tests" ${excluded:+"--source-file-exclude=$excluded"} > "$build/tests.log" 2>&1
  tests_status=$?
  grep -E "ERROR|FATAL|FAILED|test cases:|assertions:" "$build/tests.log" | grep -v "^{" | tail -20
  crashed_file=$(grep -oE '^[^:]+_test\.cpp:[0-9]+: FATAL ERROR: test case CRASHED' "$build/tests.log" | tail -1 | cut -d: -f1)
  if [ $tests_status -lt 128 ] || [ -z "$crashed_file" ]; then break; fi
  echo "CRASHED in: $crashed_file"
  if command -v gdb >/dev/null; then
    gdb -batch -ex run -ex bt --args "$build/trainpp_tests" "--source-file=*$crashed_file" 2>&1 | grep -E "^#|signal" | head -25
  fi
  excluded="${excluded:+$excluded,}*$crashed_file"
  crashes="${crashes:+$crashes; }$crashed_file"
done
tested=$(date +%s)

"$build/fashion_mnist" --data_dir "$deps/fashion-mnist" --output_dir "$build/fm" --dataloader_num_workers 2 \
  > "$build/fm.log" 2>&1
fm_status=$?
tail -9 "$build/fm.log"
accuracy=$(sed -n '/eval metrics/,$p' "$build/fm.log" | grep -m1 -oE "eval_accuracy += +[0-9.]+" | awk '{print $3}')
runtime=$(grep -m1 -oE "train_runtime += +[0-9:.]+" "$build/fm.log" | awk '{print $3}')

# Mixed precision on the GPU: the same training in bf16 and in fp16 (dynamic loss scaling), and tf32.
declare -A mp_row
for mode in bf16 fp16 tf32; do
  "$build/fashion_mnist" --data_dir "$deps/fashion-mnist" --output_dir "$build/fm_$mode" --dataloader_num_workers 2 \
    --$mode true > "$build/fm_$mode.log" 2>&1
  status=$?
  acc=$(sed -n '/eval metrics/,$p' "$build/fm_$mode.log" | grep -m1 -oE "eval_accuracy += +[0-9.]+" | awk '{print $3}')
  rt=$(grep -m1 -oE "train_runtime += +[0-9:.]+" "$build/fm_$mode.log" | awk '{print $3}')
  mp_row[$mode]="exit $status, eval_accuracy $acc, train_runtime $rt"
  [ $status -eq 0 ] || { tail -5 "$build/fm_$mode.log"; fm_status=1; }
done
# One rank through NCCL under each sharding policy: buckets and hooks (DataParallel), reduce-scatters
# and all-gathers into flat buffers (ShardGradOp), storage released and gathered around trainpp::call
# (FullShard), the step on the CPU (offload). Step rate and peak GPU memory of each.
declare -A policy_flags=(
  [data_parallel]=""
  [shard_grad_op]="--fsdp shard_grad_op"
  [full_shard]="--fsdp full_shard auto_wrap"
  [full_shard_offload]="--fsdp full_shard auto_wrap offload"
)
declare -A policy_row
port=29531
for policy in data_parallel shard_grad_op full_shard full_shard_offload; do
  port=$((port + 1))
  config=()
  case $policy in full_shard*) config=(--fsdp_config '{"transformer_layer_cls_to_wrap": "Block", "backward_prefetch": "backward_pre"}');; esac
  # shellcheck disable=SC2086  # the flags are words
  RANK=0 WORLD_SIZE=1 LOCAL_RANK=0 LOCAL_WORLD_SIZE=1 MASTER_ADDR=127.0.0.1 MASTER_PORT=$port \
    "$build/ddp_worker" --output_dir "$build/$policy" --use_cpu false --ddp_backend nccl --max_steps 200 \
    --per_device_train_batch_size 64 --rows 20000 --logging_steps 50 ${policy_flags[$policy]} "${config[@]}" \
    > "$build/$policy.log" 2>&1
  status=$?
  policy_row[$policy]="exit $status, $(grep -m1 -oE "train_steps_per_second': [0-9.e+]+" "$build/$policy.log" | awk '{print $2}') steps/s, peak $(grep -m1 -oE '"peak_memory_bytes": [0-9-]+' "$build/$policy/worker_results.json" 2>/dev/null | awk '{print $2}') bytes"
  [ $status -eq 0 ] || { tail -5 "$build/$policy.log"; fm_status=1; }
done
done_at=$(date +%s)

echo
echo "| check | result |"
echo "| --- | --- |"
echo "| device | $(nvidia-smi --query-gpu=name --format=csv,noheader | head -1), torch $torch_version |"
echo "| build (tests + example, g++ -O1) | $((built - start)) s |"
echo "| trainpp_tests on CUDA | exit $tests_status, $(grep -m1 'test cases:' "$build/tests.log" | sed 's/\[doctest\] //'), $((tested - built)) s |"
echo "| test files that crashed (excluded from the line above) | ${crashes:-none} |"
echo "| fashion_mnist on CUDA (3 epochs) | exit $fm_status, eval_accuracy $accuracy, train_runtime $runtime |"
for mode in bf16 fp16 tf32; do echo "| fashion_mnist on CUDA, --$mode (3 epochs) | ${mp_row[$mode]} |"; done
for policy in data_parallel shard_grad_op full_shard full_shard_offload; do
  echo "| $policy, 1 rank over NCCL (200 steps) | ${policy_row[$policy]} |"
done
echo "| total | $((done_at - start)) s |"
[ $tests_status -eq 0 ] && [ $fm_status -eq 0 ]
