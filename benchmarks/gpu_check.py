#!/usr/bin/env python
"""The GPU check: what this CPU-only project can only verify where CUDA exists.

1. Throughput (``bench_throughput.py --device cuda``): the reference loop, a run,
   bf16 / channels_last, fused groups up to K = 64, and ``Protocol.compile =
   'cudagraph'`` for a run and a group of 16, each step also run under
   ``torch.cuda.set_sync_debug_mode("error")`` (a host sync in the step fails).
2. Resume on CUDA: a deterministic run is killed with SIGKILL after its first
   checkpoint, resumed with ``--resume``, and must end bit-identical to the same
   run trained without interruption (checkpoint RNG states are restored on the CPU
   whatever the device); ``disbench verify`` then replays its first checkpoint.
3. A fused compare (4 seeds of DynamicVAE as one group) killed with SIGKILL after
   its first checkpoint and run again: every member ends bit-identical to an
   uninterrupted fused compare.

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
STEPS = int(os.environ.get("GPU_CHECK_STEPS", 600))  # a shorter dry run on the CPU: GPU_CHECK_STEPS=60
CHECKPOINT_EVERY = STEPS // 3
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
            "execution": json.loads((straight / "results.json").read_text()).get("execution"),
            "verify": verify(straight)}


def verify(run_dir: Path) -> dict:
    """``disbench verify`` on a deterministic CUDA run: its first checkpoint replayed bit for bit?"""
    done = subprocess.run([sys.executable, "-m", "disbench", "verify", str(run_dir), "--steps",
                           str(CHECKPOINT_EVERY), "--no-progress"], capture_output=True, text=True)
    return {"returncode": done.returncode, "report": (done.stdout + done.stderr)[-2000:],
            "bit_for_bit": done.returncode == 0 and "bit for bit" in done.stdout and "differently" not in done.stdout}


def compare_command(out: Path) -> list[str]:
    return [sys.executable, "-m", "disbench", "compare", "--models", "dynamicvae", "--seeds", "1-4",
            "--protocol", "smoke", "--steps", str(STEPS), "--gin_param", SMALL_GRID,
            "--gin_param", f"Protocol.checkpoint_every = {CHECKPOINT_EVERY}", "--deterministic", "--fuse", "4",
            "--metrics", "mig", "--no-figures", "--device", DEVICE, "--out", str(out)]


def fused_compare_killed_and_resumed(root: Path) -> dict:
    straight, killed = root / "straight", root / "killed"
    started = time.perf_counter()
    subprocess.run(compare_command(straight), check=True, capture_output=True)
    seconds = time.perf_counter() - started
    process = subprocess.Popen(compare_command(killed), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    checkpoint = killed / "runs" / "dynamicvae" / "seed4" / "checkpoint.pt"
    while not checkpoint.exists() and process.poll() is None:
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    again = subprocess.run(compare_command(killed), capture_output=True, text=True)
    identical = again.returncode == 0
    for seed in range(1, 5):
        a = torch.load(straight / "runs" / "dynamicvae" / f"seed{seed}" / "checkpoint.pt", weights_only=True)
        b = torch.load(killed / "runs" / "dynamicvae" / f"seed{seed}" / "checkpoint.pt", weights_only=True)
        identical = identical and all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    return {"ok": identical, "rerun_returncode": again.returncode, "rerun_output": again.stdout[-1500:],
            "rerun_stderr": again.stderr[-1500:], "seconds_uninterrupted_compare": round(seconds, 1)}


def main() -> int:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else os.environ.get("OUT", "gpu_check_out"))
    out.mkdir(parents=True, exist_ok=True)
    if DEVICE == "cpu":
        result = {"resume": killed_and_resumed(out / "resume"),
                  "fused_compare": fused_compare_killed_and_resumed(out / "fused_compare")}
        print(json.dumps(result, indent=2))
        return 0 if all(r["ok"] for r in result.values()) else 1
    if not torch.cuda.is_available():
        print("gpu_check: no CUDA device here (GPU_CHECK_DEVICE=cpu runs the resume check on the CPU)",
              file=sys.stderr)
        return 2
    summary = {"gpu": torch.cuda.get_device_name(), "torch": torch.__version__, "cuda": torch.version.cuda}
    throughput = subprocess.run([sys.executable, str(Path(__file__).with_name("bench_throughput.py")),
                                 "--device", "cuda", "--ks", "2,4,8,16,32,64", "--steps", "20",
                                 "--cudagraph", "--cudagraph-ks", "16",
                                 "--json", str(out / "throughput.json")], capture_output=True, text=True)
    summary["throughput"] = {"ok": throughput.returncode == 0,
                             "output": throughput.stdout[-4000:] + throughput.stderr[-2000:]}
    for name, check in (("resume", killed_and_resumed), ("fused_compare", fused_compare_killed_and_resumed)):
        try:
            summary[name] = check(out / name)
        except Exception as exc:  # report, don't hide: the summary is the point
            summary[name] = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
    summary["ok"] = all(summary[k]["ok"] for k in ("throughput", "resume", "fused_compare"))
    (out / "gpu_check.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary, indent=2))
    return 0 if summary["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
