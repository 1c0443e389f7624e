#!/usr/bin/env python
"""The GPU check: what this CPU-only project can only verify where CUDA exists.

1. The training step never waits for the GPU (``bench_train_step.py --device cuda``
   runs it under ``torch.cuda.set_sync_debug_mode("error")``).
2. Resume on CUDA: a deterministic run is killed with SIGKILL after its first
   checkpoint, resumed with ``--resume``, and must end bit-identical to the same
   run trained without interruption (checkpoint RNG states are restored on the CPU
   whatever the device).

Writes ``OUT/gpu_check.json`` (OUT: argument or $OUT) and exits 1 if a check failed.

    python benchmarks/gpu_check.py [OUT]
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

SMALL_GRID = "dsprites_synth.factor_sizes = (3, 6, 10, 16, 16)"
STEPS, CHECKPOINT_EVERY = 600, 200
DEVICE = os.environ.get("GPU_CHECK_DEVICE", "cuda")  # 'cpu': a dry run of the resume check here


def train_command(out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "disbench", "train", "--model", "dynamicvae", "--protocol", "smoke",
            "--steps", str(STEPS), "--gin_param", SMALL_GRID,
            "--gin_param", f"Protocol.checkpoint_every = {CHECKPOINT_EVERY}", "--deterministic",
            "--device", DEVICE, "--no-eval", "--no-progress", "--out", str(out), *extra]


def killed_and_resumed(root: Path) -> dict:
    straight, killed = root / "straight", root / "killed"
    started = time.perf_counter()
    subprocess.run(train_command(straight), check=True)
    seconds_straight = time.perf_counter() - started
    process = subprocess.Popen(train_command(killed))
    while not (killed / "checkpoint.pt").exists() and process.poll() is None:
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    state = json.loads((killed / "results.json").read_text())
    resumed = subprocess.run(train_command(killed, "--resume"), capture_output=True, text=True)
    a = torch.load(straight / "checkpoint.pt", weights_only=True)["model"]
    b = torch.load(killed / "checkpoint.pt", weights_only=True)["model"] if resumed.returncode == 0 else {}
    identical = resumed.returncode == 0 and all(torch.equal(a[k], b[k]) for k in a)
    return {"ok": identical, "killed_at_checkpoint_step": state.get("checkpoint_step"),
            "resume_returncode": resumed.returncode, "resume_stderr": resumed.stderr[-2000:],
            "bit_identical_after_resume": identical, "seconds_uninterrupted_run": round(seconds_straight, 1),
            "hardware": json.loads((straight / "results.json").read_text()).get("hardware")}


def main() -> int:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else os.environ.get("OUT", "gpu_check_out"))
    out.mkdir(parents=True, exist_ok=True)
    if DEVICE == "cpu":
        result = killed_and_resumed(out / "runs")
        print(json.dumps(result, indent=2))
        return 0 if result["ok"] else 1
    if not torch.cuda.is_available():
        print("gpu_check: no CUDA device here (GPU_CHECK_DEVICE=cpu runs the resume check on the CPU)",
              file=sys.stderr)
        return 2
    summary = {"gpu": torch.cuda.get_device_name(), "torch": torch.__version__, "cuda": torch.version.cuda}
    step = subprocess.run([sys.executable, str(Path(__file__).with_name("bench_train_step.py")), "--device", "cuda",
                           "--json", str(out / "train_step.json")], capture_output=True, text=True)
    summary["train_step"] = {"ok": step.returncode == 0, "output": step.stdout[-3000:] + step.stderr[-2000:]}
    try:
        summary["resume"] = killed_and_resumed(out / "runs")
    except Exception as exc:  # report, don't hide: the summary is the point
        summary["resume"] = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
    summary["ok"] = summary["train_step"]["ok"] and summary["resume"]["ok"]
    (out / "gpu_check.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary, indent=2))
    return 0 if summary["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
