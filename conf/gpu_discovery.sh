#!/usr/bin/env bash
# Spark GPU resource discovery script (spark.executor.resource.gpu.discoveryScript on YARN/Kubernetes,
# spark.worker.resource.gpu.discoveryScript on standalone workers). Prints the JSON Spark expects,
#   {"name": "gpu", "addresses": ["0", "1"]}
# one address per GPU that nvidia-smi lists (inside a container: the GPUs it was given). Exits non-zero
# with a message on stderr when nvidia-smi is missing, fails or prints something that is not an index.
set -euo pipefail

if ! command -v nvidia-smi >/dev/null 2>&1; then
  echo "gpu_discovery.sh: nvidia-smi not found on PATH ($PATH)" >&2
  exit 1
fi
if ! listing=$(nvidia-smi --query-gpu=index --format=csv,noheader); then
  echo "gpu_discovery.sh: nvidia-smi --query-gpu=index failed" >&2
  exit 1
fi

addresses=""
while IFS= read -r line; do
  index="${line//[[:space:]]/}"
  [[ -z "$index" ]] && continue
  if [[ ! "$index" =~ ^[0-9]+$ ]]; then
    echo "gpu_discovery.sh: unexpected line from nvidia-smi: '$line'" >&2
    exit 1
  fi
  addresses+="${addresses:+, }\"$index\""
done <<<"$listing"

printf '{"name": "gpu", "addresses": [%s]}\n' "$addresses"
