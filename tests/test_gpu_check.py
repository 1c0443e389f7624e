"""benchmarks/gpu_check.py in its CPU mode (GPU_CHECK_DEVICE=cpu, tiny steps), in a subprocess
as gpu_check.sh runs it: every phase runs and its report is valid JSON whenever it is read,
a budget too small for later phases records them as skipped with the reason, SIGTERM keeps
what was found, and a missing gin-config stops it in one line before any subprocess."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.py"
PHASES = ["environment", "train", "resume", "fused_compare", "cudagraph", "throughput"]
ORDER = {"pending": 0, "running": 1, "ok": 2, "failed": 2, "skipped": 2}


def start(out: Path, *args: str, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(SCRIPT), str(out), *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True,
                            env={**os.environ, "GPU_CHECK_DEVICE": "cpu", **(env or {})})


def read(out: Path) -> dict | None:
    """The report as it is on disk now; json.loads raises if a write was ever seen half done."""
    path = out / "gpu_check.json"
    return json.loads(path.read_text()) if path.exists() else None


def statuses(report: dict) -> dict:
    return {p["name"]: p["status"] for p in report["phases"]}


def watch(process: subprocess.Popen, out: Path, until=lambda report: False, limit: float = 240) -> list[dict]:
    """Every distinct report read while ``process`` runs (or until ``until(report)``)."""
    seen, deadline = [], time.monotonic() + limit
    while process.poll() is None:
        report = read(out)
        if report is not None and (not seen or report != seen[-1]):
            seen.append(report)
            if until(report):
                break
        if time.monotonic() > deadline:
            os.killpg(process.pid, signal.SIGKILL)
            raise AssertionError(f"gpu_check ran past {limit} s; last report: {seen[-1:] }")
        time.sleep(0.02)
    return seen


def test_every_phase_runs_logs_as_it_goes_and_the_report_is_valid_whenever_read(tmp_path):
    out = tmp_path / "out"
    process = start(out, "--work", str(tmp_path / "work"))
    seen = watch(process, out)
    stdout, stderr = process.communicate()
    assert process.returncode == 0, stdout[-3000:] + stderr[-3000:]
    report = read(out)
    assert report["finished"] and report["ok"] and report["failed"] == []
    assert statuses(report) == {"environment": "ok", "train": "ok", "resume": "ok", "fused_compare": "ok",
                                "cudagraph": "skipped", "throughput": "ok"}
    phases = {p["name"]: p for p in report["phases"]}
    assert phases["cudagraph"]["reason"] == "Protocol.compile = 'cudagraph' needs CUDA"
    assert all(isinstance(p["seconds"], float) for p in report["phases"])

    # rewritten as each phase started and ended (seen mid-run), never a step back
    assert any(statuses(r)["resume"] == "running" and statuses(r)["train"] == "ok" for r in seen)
    for earlier, later in zip(seen, seen[1:]):
        assert all(ORDER[statuses(earlier)[n]] <= ORDER[statuses(later)[n]] for n in PHASES)

    resume, fused = phases["resume"]["details"], phases["fused_compare"]["details"]
    assert resume["killed_mid_run"] and 0 < resume["killed_at_checkpoint_step"] < report["steps"]
    assert resume["bit_identical_after_resume"] and resume["verify"]["bit_for_bit"]
    assert "every tensor of checkpoint.pt" in resume["verify"]["report"]
    assert fused["killed_mid_run"] and fused["group_size"] == 4  # two models in one group
    assert fused["bit_identical_members"] == {f"{m}/seed{s}": True for m in ("dynamicvae", "factorvae") for s in (1, 2)}

    sweep = phases["throughput"]["details"]
    assert sweep["hardware"]["cpu"]["capability"] == torch.backends.cpu.get_cpu_capability()
    assert isinstance(sweep["default_vs_reference"], float) and set(sweep["vs_reference"]) >= {"reference",
                                                                                              "disbench"}
    written = json.loads((out / sweep["json"]).read_text())
    assert written["complete"] and written["default_vs_reference"] == sweep["default_vs_reference"]

    logs = {p.stem: p.read_text() for p in (out / "logs").iterdir()}
    assert set(logs) == {"train", "resume-straight", "resume-killed", "resume-resumed", "resume-verify",
                         "fused_compare-straight", "fused_compare-killed", "fused_compare-rerun", "throughput"}
    assert "trained dynamicvae for 12 steps" in logs["train"] and "bit for bit" in logs["resume-verify"]
    assert "default / reference:" in logs["throughput"]


def test_sigterm_mid_phase_keeps_the_phases_done_and_records_the_interruption(tmp_path):
    out = tmp_path / "out"
    process = start(out)
    watch(process, out, until=lambda r: statuses(r)["resume"] == "running")
    os.kill(process.pid, signal.SIGTERM)
    process.communicate(timeout=60)
    assert process.returncode == 143
    report = read(out)
    assert statuses(report) == {"environment": "ok", "train": "ok", "resume": "failed", "fused_compare": "pending",
                                "cudagraph": "pending", "throughput": "pending"}
    assert report["phases"][2]["error"] == "interrupted by SIGTERM (the outer time limit)"
    assert report["ok"] is False and not report["finished"]
    assert not Path(report["work"]).exists()  # the runs' temporary folder is removed, even on SIGTERM
    survivors = subprocess.run(["pgrep", "-f", report["work"]], capture_output=True, text=True).stdout
    assert survivors == "", "a subprocess outlived the check"
    assert "trained dynamicvae" in (out / "logs" / "train.log").read_text()


def test_a_small_budget_skips_the_phases_that_do_not_fit_and_says_so(tmp_path):
    out = tmp_path / "out"
    process = start(out, "--budget", "3")
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 0, stderr
    report = read(out)
    assert report["finished"] and statuses(report) == {"environment": "ok", **{n: "skipped" for n in PHASES[1:]}}
    reasons = {p["name"]: p["reason"] for p in report["phases"][1:]}
    assert reasons.pop("cudagraph") == "Protocol.compile = 'cudagraph' needs CUDA"  # estimated 0 s on the CPU
    assert all(r.startswith("its estimate, ") and r.endswith("s left of the budget") for r in reasons.values())
    assert "train skipped" in stdout and not any((out / "logs").iterdir())


@pytest.mark.parametrize("variable, value, message", [
    ("GPU_CHECK_BUDGET", "soon", "--budget / GPU_CHECK_BUDGET must be a positive number of seconds, not 'soon'"),
    ("GPU_CHECK_STEPS", "2", "GPU_CHECK_STEPS must be a whole number of steps, at least 3, not '2'"),
    ("GPU_CHECK_DEVICE", "gpu", "GPU_CHECK_DEVICE must be cpu, cuda or cuda:N, not 'gpu'"),
])
def test_a_bad_setting_is_one_line_naming_it(tmp_path, variable, value, message):
    process = start(tmp_path / "out", env={variable: value})
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 2 and stderr.splitlines() == [f"gpu_check: {message}"]


def test_without_gin_config_it_stops_in_one_line_before_any_subprocess(tmp_path):
    no_gin = tmp_path / "no_gin"
    no_gin.mkdir()
    (no_gin / "gin.py").write_text("raise ImportError('No module named gin (simulated)')\n")
    path = os.pathsep.join(filter(None, [str(no_gin), os.environ.get("PYTHONPATH")]))
    out = tmp_path / "out"
    process = start(out, env={"PYTHONPATH": path})
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 2 and stdout == ""
    assert len(stderr.strip().splitlines()) == 1
    assert stderr.startswith("gpu_check: gin-config cannot be imported (ImportError: No module named gin "
                             "(simulated)); put a gin-config wheel in .whl/")
    report = read(out)
    assert report["ok"] is False and report["stopped"] == stderr.strip()
    assert all(p["status"] == "skipped" and p["reason"] == "gin-config cannot be imported" for p in report["phases"])
    assert not any((out / "logs").iterdir())


def test_a_sigterm_between_a_phases_start_and_its_work_is_recorded(tmp_path, monkeypatch):
    """The race a SIGTERM can hit: the phase is saved as running, then the signal arrives
    before the phase's own handler is in place. The check still records it as interrupted."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("gpu_check_under_test", SCRIPT)
    check_module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, check_module)  # its dataclasses look their module up
    spec.loader.exec_module(check_module)
    phases = [check_module.Phase("first", lambda check, root: {"ok": True}, 0)]
    monkeypatch.setattr(check_module, "PHASES", phases)
    check = check_module.Check(tmp_path / "out", tmp_path / "work", 60.0, phases)
    saved = check.save

    def save_then_signal():
        saved()
        if check.report["phases"][0]["status"] == "running":
            raise check_module.Terminated()

    monkeypatch.setattr(check, "save", save_then_signal)
    assert check_module.run_check(check, 60.0) == 143
    report = read(tmp_path / "out")
    assert statuses(report) == {"first": "failed"}
    assert report["phases"][0]["error"] == "interrupted by SIGTERM (the outer time limit)"
