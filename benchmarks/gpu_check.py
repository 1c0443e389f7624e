#!/usr/bin/env python
"""The GPU check: what this CPU-only project can only verify where CUDA exists,
written so that a wall-clock limit cannot lose what it found.

The phases (``PHASES``), essential ones first:

1. ``environment``: CUDA visible (device name and capability, torch, CUDA and cuDNN
   versions, a kernel run on it); on the CPU, the CPU and the kernel level torch uses.
2. ``train``: one short ``disbench train`` (default execution settings, MIG evaluated).
3. ``resume``: a deterministic run killed with SIGKILL after its first checkpoint and
   resumed with ``--resume`` must end bit-identical to the same run uninterrupted
   (checkpoint RNG states are restored on the CPU whatever the device); ``disbench
   verify`` then replays the uninterrupted run (its log and final checkpoint, bit for bit).
4. ``fused_compare``: a compare of 2 seeds of DynamicVAE and 2 of FactorVAE as one
   fused group of two models (FactorVAE's discriminator included), killed with SIGKILL
   after its first checkpoint and run again: every member ends bit-identical to an
   uninterrupted fused compare.
5. ``cudagraph``: ``bench_throughput.py --cudagraph`` (``Protocol.compile =
   'cudagraph'`` for a run, a group of 16 and the paper's Table 1 as one group of 30:
   six models x 5 runs; CUDA only, recorded as skipped on the CPU).
6. ``throughput``: ``bench_throughput.py`` up to K = 64 and Table 1's group of 30, each step also run under
   ``torch.cuda.set_sync_debug_mode("error")``; it is given what is left of the budget
   (``--max-seconds``) and rewrites its JSON after every configuration.

``OUT/gpu_check.json`` is rewritten atomically when the check starts (every phase
``pending``), when a phase starts (``running``) and when it ends (``ok``, ``failed`` or
``skipped``, with its seconds and details or error text). Every subprocess's output
goes, as it runs, to ``OUT/logs/PHASE-STEP.log`` (and to this process's stdout); the
sweeps write ``OUT/cudagraph.json`` and ``OUT/throughput.json``. The runs' folders go to
``--work`` (default: a temporary folder, removed at the end).
A phase whose estimate does not fit in what is left of the budget is skipped, with the
reason; a subprocess still running when the budget ends is killed. SIGTERM (the outer
``timeout``) records the running phase as interrupted before exiting.

Without gin-config the check stops before any subprocess, in one line.

    python benchmarks/gpu_check.py [OUT] [--budget SECONDS] [--work DIR]

OUT: the argument, else $OUT, else ``gpu_check_out``. The budget: ``--budget``, else
$GPU_CHECK_BUDGET, else 360 s (``gpu_check.sh`` runs this under ``timeout`` 60 s
longer). ``GPU_CHECK_DEVICE=cpu`` runs every phase on the CPU with tiny steps (the tests
do; ``GPU_CHECK_STEPS`` overrides the training steps). Exit status: 0 when no phase
failed, 1 when one did, 2 when it could not start, 143 on SIGTERM.
"""

from __future__ import annotations

import argparse
import collections
import importlib
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from disbench.io import atomic_write_json  # gin-free: the report is written even without gin-config

# torch is imported inside the phases that use it: without gin-config the check stops at once.


def setting(name: str, default: str, valid: Callable[[str], bool], meaning: str) -> str:
    value = os.environ.get(name, default)
    if not valid(value):
        print(f"gpu_check: {name} must be {meaning}, not {value!r}", file=sys.stderr)
        sys.exit(2)
    return value


DEVICE = setting("GPU_CHECK_DEVICE", "cuda", lambda v: re.fullmatch(r"cpu|cuda(:\d+)?", v) is not None,
                 "cpu, cuda or cuda:N")
ON_CPU = DEVICE == "cpu"
STEPS = int(setting("GPU_CHECK_STEPS", "12" if ON_CPU else "600", lambda v: v.isdigit() and int(v) >= 3,
                    "a whole number of steps, at least 3"))
CHECKPOINT_EVERY = max(STEPS // 3, 1)
DEFAULT_BUDGET = 360.0
SMALL_GRID = f"dsprites_synth.factor_sizes = {(3, 6, 2, 4, 4) if ON_CPU else (3, 6, 10, 16, 16)}"
# The CPU mode is a dry run of the logic: small batches, MIG on 500 images (not 10,000),
# and one thread per run so that it stays quick on a busy machine (OpenMP threads spin).
CPU_OPTIONS = [f"--gin_param={binding}" for binding in ("Protocol.batch_size = 16", "Protocol.log_every = 4",
                                                         "MIG.num_train = 500")] + ["--threads", "1"] if ON_CPU else []
BENCH_THROUGHPUT = Path(__file__).with_name("bench_throughput.py")
# The throughput sweep stops this many seconds before the budget ends: its sync checks
# and final JSON come after its timed rounds.
SWEEP_MARGIN = 5.0 if ON_CPU else 30.0


class Skip(Exception):
    """A phase that cannot run here; recorded as skipped with this reason."""


class OutOfBudget(Exception):
    """A subprocess still running when the budget ended (it was killed)."""


INTERRUPTED = "interrupted by SIGTERM (the outer time limit)"


class Terminated(BaseException):
    """SIGTERM: the outer time limit. A BaseException, so no phase swallows it."""


@dataclass
class Phase:
    name: str
    run: Callable[["Check", Path], dict]  # details, with "ok"; raises Skip, or fails with any exception
    estimate_s: float  # for planning only: a phase is not started when this does not fit in what is left


class Check:
    """The budget, the report (rewritten atomically after every change) and the logged subprocesses."""

    def __init__(self, out: Path, work: Path, budget: float, phases: list[Phase]):
        self.out, self.logs, self.work = out, out / "logs", work
        self.logs.mkdir(parents=True, exist_ok=True)
        self.deadline = time.monotonic() + budget
        self.running: subprocess.Popen | None = None
        self.starting = self.sigterm_deferred = False  # see Logged and run_check's SIGTERM handler
        self.report = {"device": DEVICE, "steps": STEPS, "budget_s": budget, "started": time.strftime("%FT%T%z"),
                       "work": str(work),
                       "finished": False, "ok": None,
                       "phases": [{"name": p.name, "status": "pending", "estimate_s": p.estimate_s} for p in phases]}

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def save(self) -> None:
        atomic_write_json(self.out / "gpu_check.json", self.report)

    def start(self, log_name: str, command: list[str]) -> "Logged":
        """Start ``command`` in its own process group, its output teed into ``logs/LOG_NAME.log``."""
        return Logged(self, self.logs / f"{log_name}.log", command)

    def run(self, log_name: str, command: list[str], check: bool = True) -> "Logged":
        """Run ``command`` to its end (or the budget's); raise if it failed and ``check``."""
        process = self.start(log_name, command)
        process.wait()
        if check and process.returncode != 0:
            raise RuntimeError(f"{log_name} exited with {process.returncode}: {process.tail()}")
        return process


class Logged:
    """A subprocess whose stdout and stderr are written to a log file line by line as it runs."""

    def __init__(self, check: Check, log: Path, command: list[str]):
        self.check, self.log = check, log
        self.lines: collections.deque[str] = collections.deque(maxlen=30)
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "DISBENCH_NO_PROGRESS": "1"}
        check.starting = True  # a SIGTERM now waits until the process is known, so that it can be killed
        try:
            self.process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                            env=env, start_new_session=True)
            check.running = self.process
        finally:
            check.starting = False
        if check.sigterm_deferred:
            raise Terminated()
        self.tee = threading.Thread(target=self._tee, args=(f"$ {shlex.join(command)}\n",), daemon=True)
        self.tee.start()

    def _tee(self, header: str) -> None:
        with open(self.log, "a") as f:
            f.write(header)
            for line in self.process.stdout:
                f.write(line)
                f.flush()
                self.lines.append(line)
                sys.stdout.write(f"[{self.log.stem}] {line}")
                sys.stdout.flush()

    @property
    def returncode(self) -> int | None:
        return self.process.poll()

    def tail(self) -> str:
        return "".join(self.lines)[-2000:]

    def wait(self) -> int:
        try:
            self.process.wait(timeout=max(self.check.left(), 0.0))
        except subprocess.TimeoutExpired:
            self.kill()
            raise OutOfBudget(f"{self.log.stem} was still running when the budget ended; killed "
                              f"(log: {self.log.relative_to(self.check.out)})") from None
        except BaseException:  # SIGTERM: no subprocess outlives the check
            self.kill()
            raise
        finally:
            self.tee.join(timeout=10)
        return self.process.returncode

    def kill(self) -> None:
        """SIGKILL the whole process group (a compare's workers too)."""
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait()
        self.tee.join(timeout=10)


# -- the phases ------------------------------------------------------------------------

def environment(check: Check, root: Path) -> dict:
    import torch
    from disbench.execution import cpu_facts, device_facts, library_versions

    facts = {"versions": library_versions(), "cpu": cpu_facts(), "threads": torch.get_num_threads()}
    if ON_CPU:
        return {"ok": True, **facts}
    if not torch.cuda.is_available():
        raise RuntimeError(f"no CUDA device visible (torch {torch.__version__}, built with CUDA "
                           f"{torch.version.cuda}); GPU_CHECK_DEVICE=cpu runs this check on the CPU")
    device = torch.device(DEVICE)
    properties = torch.cuda.get_device_properties(device)
    ran = torch.arange(4.0, device=device).sum().item() == 6.0  # a kernel actually runs there
    return {"ok": ran, "device": device_facts(device), "memory_gib": round(properties.total_memory / 2**30, 1),
            "device_count": torch.cuda.device_count(), **facts}


def disbench_command(command: str, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "disbench", command, "--protocol", "smoke", "--steps", str(STEPS),
            "--gin_param", SMALL_GRID, "--gin_param", f"Protocol.checkpoint_every = {CHECKPOINT_EVERY}",
            "--device", DEVICE, "--out", str(out), *CPU_OPTIONS, *extra]


def train_command(out: Path, *extra: str) -> list[str]:
    return disbench_command("train", out, "--model", "dynamicvae", "--no-progress", *extra)


def short_run(check: Check, root: Path) -> dict:
    started = time.perf_counter()
    check.run("train", train_command(root / "run", "--gin_param", "Protocol.metrics = ['mig']"))
    results = json.loads((root / "run" / "results.json").read_text())
    return {"ok": "mig" in results.get("metrics", {}), "seconds_run": round(time.perf_counter() - started, 1),
            "metrics": results.get("metrics"), "execution": results.get("execution")}


def kill_after_checkpoint(check: Check, log_name: str, command: list[str], checkpoint: Path) -> dict:
    """Start ``command``, SIGKILL it once ``checkpoint`` exists; say whether it was killed mid-run."""
    process = check.start(log_name, command)
    while not checkpoint.exists() and process.returncode is None:
        if check.left() <= 0:
            process.kill()
            raise OutOfBudget(f"{log_name}: no checkpoint before the budget ended")
        time.sleep(0.02)
    process.kill()
    step = load_checkpoint(checkpoint)["step"] if checkpoint.exists() else None
    # killed by us before its last step: otherwise the run had finished and nothing would be resumed
    return {"killed_mid_run": process.process.returncode == -signal.SIGKILL and step is not None and step < STEPS,
            "kill_returncode": process.process.returncode, "killed_at_checkpoint_step": step}


def load_checkpoint(path: Path) -> dict:
    import torch

    return torch.load(path, map_location="cpu", weights_only=True)


def same_weights(a: Path, b: Path) -> bool:
    import torch

    first, second = load_checkpoint(a)["model"], load_checkpoint(b)["model"]
    return first.keys() == second.keys() and all(torch.equal(first[k], second[k]) for k in first)


def killed_and_resumed(check: Check, root: Path) -> dict:
    straight, killed = root / "straight", root / "killed"
    deterministic = ("--deterministic", "--no-eval")
    started = time.perf_counter()
    check.run("resume-straight", train_command(straight, *deterministic))
    seconds_straight = time.perf_counter() - started
    kill = kill_after_checkpoint(check, "resume-killed", train_command(killed, *deterministic),
                                 killed / "checkpoint.pt")
    check.run("resume-resumed", train_command(killed, *deterministic, "--resume"))
    identical = same_weights(straight / "checkpoint.pt", killed / "checkpoint.pt")
    verified = verify(check, straight)
    return {"ok": kill["killed_mid_run"] and identical and verified["bit_for_bit"], **kill,
            "bit_identical_after_resume": identical,
            "seconds_uninterrupted_run": round(seconds_straight, 1), "verify": verified,
            "execution": json.loads((straight / "results.json").read_text()).get("execution")}


def verify(check: Check, run_dir: Path) -> dict:
    """``disbench verify`` on a deterministic run: the whole run replayed, its log and final checkpoint
    bit for bit?"""
    done = check.run("resume-verify", [sys.executable, "-m", "disbench", "verify", str(run_dir), "--steps",
                                       str(STEPS), "--no-progress"], check=False)
    report = done.tail()
    return {"returncode": done.returncode, "report": report,
            "bit_for_bit": done.returncode == 0 and "bit for bit" in report and "differently" not in report}


FUSED_MEMBERS = [(model, seed) for model in ("dynamicvae", "factorvae") for seed in (1, 2)]  # one group


def compare_command(out: Path) -> list[str]:
    return disbench_command("compare", out, "--models", "dynamicvae,factorvae", "--seeds", "1-2",
                            "--deterministic", "--fuse", str(len(FUSED_MEMBERS)), "--metrics", "mig",
                            "--no-figures")


def fused_compare_killed_and_rerun(check: Check, root: Path) -> dict:
    straight, killed = root / "straight", root / "killed"
    started = time.perf_counter()
    check.run("fused_compare-straight", compare_command(straight))
    seconds = time.perf_counter() - started
    member = "runs/{}/seed{}/checkpoint.pt".format
    kill = kill_after_checkpoint(check, "fused_compare-killed", compare_command(killed),
                                 killed / member(*FUSED_MEMBERS[-1]))  # the last member written
    check.run("fused_compare-rerun", compare_command(killed))
    identical = {f"{model}/seed{seed}": same_weights(straight / member(model, seed), killed / member(model, seed))
                 for model, seed in FUSED_MEMBERS}
    group = json.loads((straight / "runs/factorvae/seed2/results.json").read_text())["execution"]["fused_group"]
    return {"ok": kill["killed_mid_run"] and all(identical.values()) and group["size"] == len(FUSED_MEMBERS),
            **kill, "bit_identical_members": identical, "group_size": group["size"],
            "seconds_uninterrupted_compare": round(seconds, 1)}


def bench(check: Check, root: Path, name: str, arguments: list[str]) -> dict:
    """``bench_throughput.py`` with what is left of the budget. Its JSON (in OUT: it comes back) is
    rewritten after every configuration, so what it measured is kept even if it is stopped."""
    path = check.out / f"{name}.json"
    seconds = max(check.left() - SWEEP_MARGIN, 1.0)
    process = check.start(name, [sys.executable, str(BENCH_THROUGHPUT), "--device", DEVICE, *arguments,
                                 "--max-seconds", f"{seconds:.0f}", "--json", str(path)])
    try:
        process.wait()
        stopped = {}
    except OutOfBudget as exc:
        stopped = {"error": str(exc)}
    written = json.loads(path.read_text()) if path.exists() else {}
    results = written.get("results", {})
    return {"ok": process.returncode == 0 and bool(results), "returncode": process.returncode, "json": path.name,
            "hardware": written.get("setup", {}).get("hardware"),
            "default_vs_reference": written.get("default_vs_reference"),
            "vs_reference": {k: r.get("vs_reference") for k, r in results.items()},
            "run_steps_per_s": {k: r.get("run_steps_per_s") for k, r in results.items()},
            "host_syncs": {k: r["host_syncs_in_step"] for k, r in results.items() if "host_syncs_in_step" in r},
            "not_timed": written.get("not_timed", {}), **stopped,
            **({} if process.returncode == 0 else {"output": process.tail()})}


def cudagraph(check: Check, root: Path) -> dict:
    if ON_CPU:
        raise Skip("Protocol.compile = 'cudagraph' needs CUDA")
    return bench(check, root, "cudagraph", ["--ks", "", "--options", "", "--cudagraph", "--cudagraph-ks", "16",
                                            "--table1-ks", "30", "--steps", "20"])


def throughput(check: Check, root: Path) -> dict:
    sizes = (["--ks", "2", "--steps", "2", "--rounds", "1", "--warmup", "1", "--batch", "32", "--options", ""]
             if ON_CPU else ["--ks", "2,4,8,16,32,64", "--table1-ks", "30", "--steps", "20"])
    return bench(check, root, "throughput", sizes)


# Planning estimates (seconds) for skipping what cannot fit, not measurements. CPU mode: above
# what the phases took on 2 idle AMD EPYC cores (1, 5, 18, 19 and 5 s). CUDA: guesses allowing
# for CUDA start-up and cold compiles (no GPU has run this yet); gpu_check.json records the
# seconds each phase took, to replace them with.
PHASES = [
    Phase("environment", environment, 2 if ON_CPU else 15),
    Phase("train", short_run, 10 if ON_CPU else 45),
    Phase("resume", killed_and_resumed, 20 if ON_CPU else 90),
    Phase("fused_compare", fused_compare_killed_and_rerun, 20 if ON_CPU else 90),
    Phase("cudagraph", cudagraph, 0 if ON_CPU else 120),
    Phase("throughput", throughput, 10 if ON_CPU else 60),
]


def run_phases(check: Check, phases: list[Phase]) -> None:
    check.save()  # every phase listed as pending before the first starts
    for phase, entry in zip(phases, check.report["phases"]):
        if entry["status"] != "pending":
            continue
        if check.left() < phase.estimate_s:
            skip(entry, f"its estimate, {phase.estimate_s:.0f} s, does not fit in the {max(check.left(), 0):.0f} s "
                        f"left of the budget")
            check.save()
            continue
        entry.update(status="running")
        check.save()
        started = time.monotonic()
        try:
            details = phase.run(check, check.work / phase.name)
            entry.update(status="ok" if details.pop("ok") else "failed", details=details)
        except Skip as reason:
            entry.update(status="skipped", reason=str(reason))
        except Terminated:
            entry.update(status="failed", error=INTERRUPTED)
            raise
        except Exception as exc:  # recorded, not raised: the report is the point
            entry.update(status="failed", error=f"{type(exc).__name__}: {exc}")
        finally:
            entry.update(ok=entry["status"] == "ok", seconds=round(time.monotonic() - started, 1))
            check.save()
        if phase.name == "environment" and entry["status"] == "failed":
            for later in check.report["phases"][1:]:
                skip(later, f"the environment check failed: {entry['error']}")


def skip(entry: dict, reason: str) -> None:
    entry.update(status="skipped", reason=reason, ok=False, seconds=0.0)


def gin_missing() -> str | None:
    """Why gin-config cannot be imported, or None. Checked before any subprocess: without it every
    subprocess would fail at ``import gin``."""
    try:
        importlib.import_module("gin")
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out", nargs="?", default=os.environ.get("OUT") or "gpu_check_out")
    p.add_argument("--budget", type=float, default=None,
                   help=f"seconds for all phases (default: $GPU_CHECK_BUDGET, else {DEFAULT_BUDGET:.0f})")
    p.add_argument("--work", help="keep the runs' folders here (default: a temporary folder, removed at the end)")
    args = p.parse_args(argv)
    given = args.budget if args.budget is not None else os.environ.get("GPU_CHECK_BUDGET", DEFAULT_BUDGET)
    try:
        budget = float(given)
    except ValueError:
        budget = -1.0
    if not budget > 0:  # NaN too
        print(f"gpu_check: --budget / GPU_CHECK_BUDGET must be a positive number of seconds, not {given!r}",
              file=sys.stderr)
        return 2
    out = Path(args.out)
    # the runs' folders (checkpoints: ~100 MB) stay out of OUT, which comes back from the GPU machine
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="gpu_check_"))
    check = Check(out, work, budget, PHASES)
    try:
        return run_check(check, budget)
    finally:
        if check.running is not None and check.running.poll() is None:
            os.killpg(check.running.pid, signal.SIGKILL)
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)


def run_check(check: Check, budget: float) -> int:
    missing = gin_missing()
    if missing:
        line = (f"gpu_check: gin-config cannot be imported ({missing}); put a gin-config wheel in .whl/ "
                f"(gpu_check.sh installs it) or install gin-config")
        for entry in check.report["phases"]:
            skip(entry, "gin-config cannot be imported")
        check.report.update(ok=False, finished=True, stopped=line)
        check.save()
        print(line, file=sys.stderr)
        return 2

    def terminated(signum, frame):
        if check.starting:  # raised inside Popen, the new process would be lost and outlive the check
            check.sigterm_deferred = True
        else:
            raise Terminated()

    signal.signal(signal.SIGTERM, terminated)
    try:
        run_phases(check, PHASES)
    except Terminated:
        for entry in check.report["phases"]:  # also one SIGTERM caught between its start and its try block
            if entry["status"] == "running":
                entry.update(status="failed", ok=False, error=INTERRUPTED)
        check.report.update(ok=False, stopped="SIGTERM (the outer time limit)")
        check.save()
        return 143
    failed = [e["name"] for e in check.report["phases"] if e["status"] == "failed"]
    check.report.update(ok=not failed, finished=True, failed=failed, seconds=round(budget - check.left(), 1))
    check.save()
    summary = ", ".join(f"{e['name']} {e['status']}" for e in check.report["phases"])
    print(f"gpu_check: {summary} ({check.report['seconds']} s of {budget:.0f}); {check.out / 'gpu_check.json'}")
    return 1 if failed else 0

if __name__ == "__main__":
    sys.exit(main())
