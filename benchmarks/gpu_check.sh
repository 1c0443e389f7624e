#!/usr/bin/env bash
# The prepared GPU check (benchmarks/gpu_check.py), for the device machine: it has
# torch with CUDA but no gin-config, so a gin-config wheel travels in .whl/ (see the
# README, "GPU check"); the project is installed without its dependencies.
set -euo pipefail
cd "$(dirname "$0")/.."
if compgen -G ".whl/*.whl" > /dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
    export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
python3 -m pip install -q --no-deps --no-build-isolation -e . -e examples/third_party_scheduler
export DISBENCH_NO_PROGRESS=1
timeout 420 python3 benchmarks/gpu_check.py "${OUT:-gpu_check_out}"
