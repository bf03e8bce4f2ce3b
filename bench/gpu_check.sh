#!/usr/bin/env bash
# The GPU verification kit in one command (see bench/gpu_check.py): on the GPU machine, with bench/gpu-wheels
# carried, `bash bench/gpu_check.sh [options]`. Unbuffered; where $OUT is set (the device tool), the log and
# a JSON summary are written there too. PYTHON picks the interpreter (default python3).
set -o pipefail
cd "$(dirname "$0")/.." || exit 1
export PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}
if [ -n "${OUT:-}" ] && [ -d "$OUT" ]; then
  "$PY" bench/gpu_check.py --json "$OUT/gpu_check.json" "$@" 2>&1 | tee "$OUT/gpu_check.log"
else
  exec "$PY" bench/gpu_check.py "$@"
fi
