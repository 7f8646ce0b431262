#!/usr/bin/env bash
# The GPU check (bench/gpu_check.py): one CUDA GPU, Python with CUDA torch, NumPy and pyarrow; no Spark,
# no Java, no network. Writes one JSON file that `bench/run.py --gpu-json FILE` folds into BENCHMARKS.md.
#   bash bench/gpu_check.sh OUT.json                     # the GPU box: under 8 minutes on one H200
#   bash bench/gpu_check.sh OUT.json --cpu-only --small  # every code path on CPU (tests/test_bench.py)
set -euo pipefail
if [ $# -lt 1 ]; then
    echo "usage: bash bench/gpu_check.sh OUT.json [--cpu-only] [--small] [--skip topn,ddp]" >&2
    exit 2
fi
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="$1"
shift
export PYTHONPATH="$root/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
exec "${PYTHON:-python3}" "$root/bench/gpu_check.py" --out "$out" "$@"
