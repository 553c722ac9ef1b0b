#!/usr/bin/env bash
# Builds trainpp's tests, the Fashion-MNIST example and the data-parallel worker with trainpp's own
# CMake build against the GPU machine's PyTorch (a CUDA LibTorch), runs them on the GPU, and prints a
# summary table last. CMake decides what a CUDA LibTorch needs: it finds nccl.h (CUDA toolkit, or the
# nvidia NCCL wheel beside torch) and defines USE_C10D_NCCL (cmake/trainppDependencies.cmake); the
# table says whether it did. That machine has no network and no Debian packages of ours, so the
# dependencies travel in carry/ (ignored by git) as Debian packages, unpacked there under /tmp:
#
#   tools/gpu_check.sh --prepare       here: fill carry/ (the .deb files of fmt, nlohmann/json, Boost,
#                                      doctest, zlib's headers and Gloo's headers; the header tree that
#                                      bench/gpu/run compiles with; the Fashion-MNIST files)
#   tools/gpu_check.sh [--with-bench]  on the GPU machine, from the repository root (carry: ["carry"]);
#                                      --with-bench builds bench/gpu/run's program meanwhile and runs
#                                      the GPT-2 benchmark last (bench/README.md, "GPU")
#
# Stages run while time is left (GPU_CHECK_BUDGET_S, default 540 s, so that one device call of at
# most 600 s holds all of it); a stage skipped for time says so in the table. GPU_CHECK_TESTS_S caps
# the unit tests (default 120 s), GPU_CHECK_FM_MODES picks the example's runs (fp32 bf16 fp16 tf32).
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
carry=carry
debs=(libfmt-dev libfmt9 nlohmann-json3-dev libboost1.74-dev doctest-dev zlib1g-dev libgloo-dev libxxhash-dev)

if [ "${1:-}" = "--prepare" ]; then
  rm -rf "$carry/debs" "$carry/deps" && mkdir -p "$carry/debs" "$carry/deps/include/boost" "$carry/deps/fashion-mnist"
  (cd "$carry/debs" && apt-get download "${debs[@]}") || { echo "apt-get download failed (apt-get update first?)" >&2; exit 1; }
  # bench/gpu/run compiles with g++ directly, against these headers.
  cp -r /usr/include/fmt /usr/include/nlohmann /usr/include/zlib.h /usr/include/zconf.h "$carry/deps/include/"
  cp -r /usr/include/boost/hana /usr/include/boost/hana.hpp "$carry/deps/include/boost/"
  cp /usr/share/datasets/fashion-mnist/*.gz "$carry/deps/fashion-mnist/"
  du -sh "$carry"
  exit 0
fi
with_bench=0
[ "${1:-}" = "--with-bench" ] && with_bench=1

start=$(date +%s)
budget=${GPU_CHECK_BUDGET_S:-540}
time_left() { echo $((budget - ($(date +%s) - start))); }
# Logs gather here; a device call's $OUT gets them as one archive (it returns a few files only).
out=/tmp/trainpp_gpu_logs
rm -rf "$out" && mkdir -p "$out"
build=/tmp/trainpp_gpu_build
deps_root=/tmp/trainpp_deps
nvidia-smi -L
torch_version=$(python3 -c "import torch; print(torch.__version__)")
torch_prefix=$(python3 -c "import torch.utils; print(torch.utils.cmake_prefix_path)")

if [ $with_bench -eq 1 ]; then
  bench/gpu/run --build > "$out/bench_build.log" 2>&1 &
  bench_build_pid=$!
fi

# The carried Debian packages, unpacked beside the system (never over /).
rm -rf "$deps_root" && mkdir -p "$deps_root"
for deb in "$carry"/debs/*.deb; do
  if command -v dpkg-deb > /dev/null; then
    dpkg-deb -x "$deb" "$deps_root"
  else  # a .deb is an ar archive whose data.tar.xz holds the files (Debian's packages: xz)
    ar p "$deb" data.tar.xz | tar -xJ -C "$deps_root"
  fi || { echo "cannot unpack $deb"; exit 1; }
done
# LibTorch's CUDA config enables CMake's CUDA language: nvcc must be on the PATH.
if ! command -v nvcc > /dev/null && [ -x /usr/local/cuda/bin/nvcc ]; then export PATH=/usr/local/cuda/bin:$PATH; fi
echo "cmake $(cmake --version | head -1 | awk '{print $3}'), nvcc $(nvcc --version 2>/dev/null | grep -oE 'release [0-9.]+' || echo missing)"
# zlib's development link points at Debian's libz; the machine's own libz.so.1 serves at run time.
system_zlib=$(ldconfig -p | awk '/libz\.so\.1 .*x86-64/ {print $NF; exit}')

configure_status=0
cmake -S . -B "$build" -G Ninja \
  -DCMAKE_PREFIX_PATH="$deps_root/usr;$torch_prefix" \
  -DCMAKE_BUILD_TYPE= -DCMAKE_CXX_FLAGS="-O1 -DTRAINPP_TEST_CUDA -DTRAINPP_BENCH_CUDA" \
  -DTRAINPP_TEST_UNITY_TUS=0 -DTRAINPP_BUILD_BENCH=OFF -DTRAINPP_INSTALL=OFF \
  -DTRAINPP_GLOO_INCLUDE_DIR="$deps_root/usr/include" \
  -DZLIB_INCLUDE_DIR="$deps_root/usr/include" -DZLIB_LIBRARY="$system_zlib" \
  -DPython3_EXECUTABLE="$(command -v python3)" > "$out/configure.log" 2>&1 || configure_status=$?
grep -E "trainpp:|CUDA detected|Torch|Error|error" "$out/configure.log" | head -20
nccl_dir=$(grep -m1 '^TRAINPP_NCCL_INCLUDE_DIR' "$build/CMakeCache.txt" 2>/dev/null | cut -d= -f2)
nccl_defined=no
grep -q 'USE_C10D_NCCL' "$build/build.ninja" 2>/dev/null && nccl_defined=yes

build_status=1
if [ $configure_status -eq 0 ]; then
  ninja -C "$build" -j "$(nproc)" trainpp_tests fashion_mnist ddp_worker > "$out/build.log" 2>&1
  build_status=$?
  [ $build_status -eq 0 ] || grep -E "error|FAILED" "$out/build.log" | head -40
else
  tail -30 "$out/configure.log"
fi
built=$(date +%s)
bin=$build/bin
tests_bin=$build/tests/trainpp_tests

tests_row="not run (build failed)"
crashes=none
if [ $build_status -eq 0 ]; then
  # The unit cases (the integration suite launches processes and Python on the CPU: CI runs it).
  # A crash stops doctest; go on without the test file that crashed so that one crash does not
  # hide the rest (doctest filters split on commas, so a case's name is no safe filter).
  excluded=""
  crashes=""
  for attempt in 1 2 3 4; do
    timeout "${GPU_CHECK_TESTS_S:-120}" "$tests_bin" --test-suite-exclude=integration \
      ${excluded:+"--source-file-exclude=$excluded"} > "$out/tests.log" 2>&1
    tests_status=$?
    grep -E "ERROR|FATAL|FAILED|test cases:|assertions:" "$out/tests.log" | grep -v "^{" | tail -30
    crashed_file=$(grep -oE '[^ :]+_test\.cpp:[0-9]+: FATAL ERROR: test case CRASHED' "$out/tests.log" | tail -1 | cut -d: -f1)
    if [ $tests_status -lt 128 ] || [ -z "$crashed_file" ]; then break; fi
    echo "CRASHED in: $crashed_file"
    excluded="${excluded:+$excluded,}*$(basename "$crashed_file")"
    crashes="${crashes:+$crashes; }$crashed_file"
  done
  tests_row="exit $tests_status, $(grep -m1 'test cases:' "$out/tests.log" | sed 's/\[doctest\] //')"
  # The CUDA-only case: no host sync between logging steps.
  timeout 120 "$tests_bin" --source-file="*no_host_sync_test.cpp" > "$out/no_host_sync.log" 2>&1
  no_sync_row="exit $?, $(grep -m1 'test cases:' "$out/no_host_sync.log" | sed 's/\[doctest\] //')"
fi
tested=$(date +%s)

fm_status=0
declare -A fm_row
fm_modes=${GPU_CHECK_FM_MODES:-fp32 bf16 fp16 tf32}
for mode in fp32 bf16 fp16 tf32; do
  if [[ " $fm_modes " != *" $mode "* ]]; then fm_row[$mode]="not asked for (GPU_CHECK_FM_MODES)"; continue; fi
  if [ $build_status -ne 0 ]; then fm_row[$mode]="not run (build failed)"; continue; fi
  if [ "$(time_left)" -lt 120 ]; then fm_row[$mode]="skipped for time"; continue; fi
  flags=()
  [ $mode = fp32 ] || flags=(--$mode true)
  epochs=3
  [ $mode = fp32 ] || epochs=1
  timeout 120 "$bin/fashion_mnist" --data_dir "$carry/deps/fashion-mnist" --output_dir "$build/fm_$mode" \
    --dataloader_num_workers 2 --num_train_epochs $epochs "${flags[@]}" > "$out/fm_$mode.log" 2>&1
  status=$?
  acc=$(sed -n '/eval metrics/,$p' "$out/fm_$mode.log" | grep -m1 -oE "eval_accuracy += +[0-9.]+" | awk '{print $3}')
  rt=$(grep -m1 -oE "train_runtime += +[0-9:.]+" "$out/fm_$mode.log" | awk '{print $3}')
  fm_row[$mode]="exit $status, $epochs epoch(s), eval_accuracy $acc, train_runtime $rt"
  [ $status -eq 0 ] || { tail -5 "$out/fm_$mode.log"; fm_status=1; }
done

# One rank through NCCL under each sharding policy: buckets and hooks (DataParallel), reduce-scatters
# and all-gathers into flat buffers (ShardGradOp), storage released and gathered around each unit
# (FullShard), the step on the CPU (offload). Step rate and peak GPU memory of each.
declare -A policy_row
port=29531
for policy in data_parallel shard_grad_op full_shard full_shard_offload; do
  if [ $build_status -ne 0 ]; then policy_row[$policy]="not run (build failed)"; continue; fi
  if [ "$(time_left)" -lt 90 ]; then policy_row[$policy]="skipped for time"; continue; fi
  port=$((port + 1))
  wrap=(--fsdp_config '{"transformer_layer_cls_to_wrap": "Block", "backward_prefetch": "backward_pre"}')
  case $policy in
    data_parallel) policy_flags=() ;;
    shard_grad_op) policy_flags=(--fsdp shard_grad_op) ;;
    full_shard) policy_flags=(--fsdp "full_shard auto_wrap" "${wrap[@]}") ;;
    full_shard_offload) policy_flags=(--fsdp "full_shard auto_wrap offload" "${wrap[@]}") ;;
  esac
  RANK=0 WORLD_SIZE=1 LOCAL_RANK=0 LOCAL_WORLD_SIZE=1 MASTER_ADDR=127.0.0.1 MASTER_PORT=$port \
    timeout 90 "$bin/ddp_worker" --output_dir "$build/$policy" --use_cpu false --ddp_backend nccl --max_steps 200 \
    --per_device_train_batch_size 64 --rows 20000 --logging_steps 50 "${policy_flags[@]}" \
    > "$out/$policy.log" 2>&1
  status=$?
  policy_row[$policy]="exit $status, $(grep -m1 -oE "train_steps_per_second': [0-9.e+]+" "$out/$policy.log" | awk '{print $2}') steps/s, peak $(grep -m1 -oE '"peak_memory_bytes": [0-9-]+' "$build/$policy/worker_results.json" 2>/dev/null | awk '{print $2}') bytes"
  [ $status -eq 0 ] || { tail -5 "$out/$policy.log"; fm_status=1; }
done
checked=$(date +%s)

bench_row="not asked for (--with-bench)"
if [ $with_bench -eq 1 ]; then
  if wait $bench_build_pid; then
    if [ "$(time_left)" -gt 100 ]; then
      BENCH_GPU_REUSE=1 BENCH_GPU_REPS=1 BENCH_GPU_RESULTS="$out/bench" timeout "$(( $(time_left) - 10 ))" \
        bench/gpu/run > "$out/bench.log" 2>&1
      bench_row="exit $? ($(( $(date +%s) - checked )) s): table in bench.log"
    else
      bench_row="skipped for time"
    fi
  else
    bench_row="build failed: $(tail -3 "$out/bench_build.log" | tr '\n' ' ')"
  fi
fi
done_at=$(date +%s)

{
echo
echo "| check | result |"
echo "| --- | --- |"
echo "| device | $(nvidia-smi --query-gpu=name --format=csv,noheader | head -1), torch $torch_version, $(g++ --version | head -1) |"
echo "| CMake configure | exit $configure_status; USE_C10D_NCCL defined by CMake: $nccl_defined; nccl.h in: ${nccl_dir:-not found} |"
echo "| build (trainpp_tests, fashion_mnist, ddp_worker; ninja -O1) | exit $build_status, $((built - start)) s |"
echo "| trainpp_tests on CUDA, unit cases | ${tests_row}, $((tested - built)) s |"
echo "| no host sync between logging steps (CUDA) | ${no_sync_row:-not run} |"
echo "| test files that crashed (excluded from the line above) | ${crashes:-none} |"
for mode in fp32 bf16 fp16 tf32; do echo "| fashion_mnist on CUDA, $mode | ${fm_row[$mode]} |"; done
for policy in data_parallel shard_grad_op full_shard full_shard_offload; do
  echo "| $policy, 1 rank over NCCL (200 steps) | ${policy_row[$policy]} |"
done
echo "| GPT-2 small benchmark | $bench_row |"
echo "| total | $((done_at - start)) s |"
} | tee "$out/summary.md"
[ $with_bench -eq 1 ] && tail -20 "$out/bench.log" 2>/dev/null
if [ -n "${OUT:-}" ]; then
  cp "$out/summary.md" "$OUT/"
  tar czf "$OUT/gpu_logs.tar.gz" -C "$out" .
fi
[ "${tests_status:-1}" -eq 0 ] && [ $fm_status -eq 0 ]
