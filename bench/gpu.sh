#!/usr/bin/env bash
# The GPU measurement, for a session lent the GPU machine (../shared/device/README.md's recipe).
#
#   bash bench/gpu.sh prepare   here: Deno's binary (xz), the benchmarks bundled (deno bundle)
#                               and libvulkan1's .deb into .gpu/ and .gl/ (both git-ignored)
#   bash bench/gpu.sh run [ARGS] there, as the device's `run` command with carry [".gpu", ".gl"]:
#                               WebGPU through Vulkan on the GPU (bench/gpu.ts), the counting
#                               bench (bench/gpu_counts.ts: one training step's dispatches,
#                               submits, readbacks… and its wall time, small model), then the
#                               PyTorch + PEFT peer on the same GPU; logs and JSON into $OUT
#                               (ARGS go to the benchmark, e.g. --small for a dry run)
#
# The benchmark's first line is the adapter: "llvmpipe" there means Vulkan did not find the
# NVIDIA driver, and the numbers are void.
set -euo pipefail
cd "$(dirname "$0")/.."

case "${1:-}" in
prepare)
  mkdir -p .gpu .gl
  xz -T2 -6 -c "$(readlink -f "$(command -v deno)")" > .gpu/deno.xz
  deno bundle --platform deno -o .gpu/bench.js bench/gpu.ts
  deno bundle --platform deno -o .gpu/counts.js bench/gpu_counts.ts
  lists=$(mktemp -d); mkdir -p "$lists/partial"
  o=(-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 "-oDir::State::Lists=$lists")
  apt-get "${o[@]}" update >/dev/null
  (cd .gl && rm -f ./*.deb && apt-get "${o[@]}" download libvulkan1)
  du -sh .gpu .gl
  ;;
run)
  out=${OUT:-$(mktemp -d)}
  shift
  if ! ldconfig -p | grep -q libvulkan.so.1; then
    for f in .gl/*.deb; do dpkg -x "$f" /; done
    ldconfig
  fi
  bin=$(mktemp -d); xz -dc .gpu/deno.xz > "$bin/deno"; chmod +x "$bin/deno"
  icd=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
  [ -f "$icd" ] && export VK_DRIVER_FILES=$icd
  nvidia-smi --query-gpu=name,memory.total --format=csv 2>&1 | tee "$out/gpu.txt" || true
  for precision in fp32 fp16; do # the recipe's fp16=True, and exact fp32
    DENO_WEBGPU_BACKEND=${DENO_WEBGPU_BACKEND:-vulkan} timeout 300 "$bin/deno" run -A .gpu/bench.js \
      --precision $precision "$@" 2>&1 | tee "$out/gpu_bench_$precision.log" || true
  done
  if [ -f .gpu/counts.js ]; then # tfjs's default submit batch (15 kernels), then 64
    for batch in 15 64; do
      DENO_WEBGPU_BACKEND=${DENO_WEBGPU_BACKEND:-vulkan} timeout 90 "$bin/deno" run -A .gpu/counts.js \
        --steps 5 --submit-batch $batch --json "$out/gpu_counts_$batch.json" 2>&1 |
        tee "$out/gpu_counts_$batch.log" || true
    done
  fi
  for amp in "" --fp16; do # PyTorch + PEFT in fp32, then with autocast + GradScaler
    timeout 240 python3 bench/peers/pytorch_vit.py --device cuda --forward-batches 1,8,64 \
      --train-batch 64 $amp 2>&1 | tee "$out/peer${amp:+_fp16}.log" || true
  done
  ;;
*)
  echo "usage: bash bench/gpu.sh prepare|run" >&2
  exit 2
  ;;
esac
