#!/usr/bin/env bash
# Mixed precision on a CUDA GPU: trains YOLOv8n for a fixed number of steps at imgsz 640, batch 32, in fp32,
# fp16 and bf16 (the trainer's step: FP32 masters, loss scaling in fp16) and prints images/s and the GPU's
# peak memory for each. Record the output in docs/benchmarks.md.
#
# Build on a machine with cargo (the GPU host may have none), then copy the binary over:
#   CUDARC_CUDA_VERSION=13000 cargo build --release --features cuda
#   scripts/gpu_check.sh [path/to/yolo-burn] [steps]
# Needs nvidia-smi, and CUDA_PATH set to a toolkit with include/cuda_runtime.h (NVRTC compiles the kernels at
# run time; see docs/GPU.md in the shared reference folder); LD_LIBRARY_PATH must find libnvrtc.
set -euo pipefail

BIN=${1:-target/release/yolo-burn}
STEPS=${2:-20}
IMGSZ=${IMGSZ:-640}
BATCH=${BATCH:-32}
DEVICE=${DEVICE:-cuda:0}
GPU_INDEX=${DEVICE#cuda:}

if [ ! -x "$BIN" ]; then
  echo "no yolo-burn binary at $BIN (build it with --features cuda)" >&2
  exit 1
fi
command -v nvidia-smi >/dev/null || { echo "nvidia-smi not found: is this a CUDA machine?" >&2; exit 1; }
if [ -z "${CUDA_PATH:-}" ]; then
  for d in /usr/local/cuda /opt/cuda; do [ -f "$d/include/cuda_runtime.h" ] && export CUDA_PATH=$d && break; done
fi
echo "GPU: $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader -i "$GPU_INDEX")"
echo "binary: $BIN; yolov8n imgsz $IMGSZ batch $BATCH, $STEPS steps per precision (the first untimed)"
base=$(nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -i "$GPU_INDEX")
echo "memory in use before: $base MiB"
printf '%-6s %12s %16s %10s\n' precision "img/s" "peak GPU MiB" skipped
for precision in fp32 fp16 bf16; do
  log=$(mktemp)
  nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -i "$GPU_INDEX" -lms 100 > "$log" &
  poll=$!
  set +e
  out=$("$BIN" bench memory --backend "$DEVICE" --imgsz "$IMGSZ" --batch "$BATCH" --precision "$precision" \
    --steps "$STEPS" --json 2>&1)
  rc=$?
  set -e
  kill "$poll" 2>/dev/null || true
  wait "$poll" 2>/dev/null || true
  peak=$(sort -n "$log" | tail -1)
  rm -f "$log"
  if [ $rc -ne 0 ]; then
    echo "$precision: failed (exit $rc):"
    echo "$out" | tail -20
    continue
  fi
  json=$(echo "$out" | tail -1)
  ips=$(echo "$json" | sed -E 's/.*"train_img_per_s":([0-9.eE+-]+).*/\1/')
  skipped=$(echo "$json" | sed -E 's/.*"skipped_steps":([0-9]+).*/\1/')
  printf '%-6s %12.1f %16s %10s\n' "$precision" "$ips" "$((peak - base))" "$skipped"
done
