#!/usr/bin/env bash
# The prepared GPU check (benchmarks/gpu_check.py), for the device machine: it has
# torch with CUDA but no network and no gin-config, so a gin-config wheel travels in .whl/
# (see the README, "GPU check"); the project is installed without its dependencies.
#
# Everything it finds is under $OUT (default gpu_check_out): gpu_check.json, rewritten
# after every phase, and logs/, every command's output as it runs.
# GPU_CHECK_BUDGET (whole seconds, default 360) is the phases' budget; the timeout below
# allows 60 s more, so give the device call at least the budget + 60 s + the installs.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-gpu_check_out}
BUDGET=${GPU_CHECK_BUDGET:-360}
if ! [[ $BUDGET =~ ^[0-9]+$ ]] || (( BUDGET == 0 )); then
    echo "gpu_check.sh: GPU_CHECK_BUDGET must be a positive whole number of seconds, not '$BUDGET'" >&2
    exit 2
fi
mkdir -p "$OUT/logs"
if compgen -G ".whl/*.whl" > /dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
        .whl/*.whl 2>&1 | tee -a "$OUT/logs/install.log"
    export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
python3 -m pip install -q --no-deps --no-build-isolation -e . -e examples/third_party_scheduler 2>&1 \
    | tee -a "$OUT/logs/install.log"
export DISBENCH_NO_PROGRESS=1
# gpu_check.py stops in one line without gin-config, before any of its subprocesses
exec timeout -k 10 $((BUDGET + 60)) python3 benchmarks/gpu_check.py "$OUT" --budget "$BUDGET"
