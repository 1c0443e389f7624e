"""``disbench verify``: replay a run's first steps and compare them with what it recorded.

The replay trains the run's own ``config.gin`` (its seed included; its loggers
left out, as they change nothing) in a temporary folder, with the execution
the run recorded for its first steps (``results.json["execution_history"]``:
its thread count and device type), and stops after N steps. Then every row of
``scalars.jsonl`` up to step N is compared value for value and, when the run's
checkpoint is at step N, every entry of the checkpoint (tensors with
``torch.equal``; its wall-clock time is left out).

Where this process cannot execute the run as it was executed — another CPU
or CPU kernel level, another device or torch, another thread count asked for
with ``--threads``, or a member of a fused group replayed alone (K = 1) — the
replay cannot be bit-identical by construction: verify names each setting that
differs and reports the largest relative difference (drift) instead of failing.
"""

from __future__ import annotations

import math
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import gin
import torch

from .builders import build_configured_run, resolve_device
from .config import build_protocol, parse_saved_config
from .errors import DisbenchError
from .execution import (NOT_NUMERIC, SETTING_TEXT, SETTINGS, ExecutionRequest, default_threads, settings_of,
                        torch_threads)
from .runs import CONFIG_NAME, load_results, read_results
from .training.checkpoint import CHECKPOINT_NAME, load_checkpoint
from .training.loop import train_group
from .training.scalars import SCALARS_NAME, read_scalars

DEFAULT_MAX_STEPS = 200
NOT_COMPARED = ("elapsed_seconds",)  # checkpoint entries that record time, not computation
GENERATOR_STATES = ("rng", "sampler", "noise")  # compared for equality only: no size to a difference


@dataclass
class Difference:
    """One compared value that differs: where, and both values."""

    where: str            # "step 20, recon" or "checkpoint, model/encoder.0.weight"
    recorded: object
    replayed: object
    relative: float | None = None  # |a - b| / scale, for numbers


@dataclass
class Verification:
    run_dir: Path
    steps: int
    rows: int                              # scalar rows compared
    checkpoint_compared: bool
    differing_settings: list[str]          # 'threads: 1 -> 2', ...: drift, not a failure
    first_difference: Difference | None = None
    largest: dict[str, Difference] = field(default_factory=dict)  # where -> its largest relative difference
    weights_drift: float | None = None     # ||w_replayed - w_recorded|| / ||w_recorded|| over the model's tensors
    other_differences: list[str] = field(default_factory=list)  # non-numeric entries that differ

    @property
    def reproduced(self) -> bool:
        return self.first_difference is None

    @property
    def passed(self) -> bool:
        return self.reproduced or bool(self.differing_settings)

    def report(self) -> str:
        what = f"{self.rows} row{'s' if self.rows != 1 else ''} of {SCALARS_NAME}" + (
            f" and every tensor of {CHECKPOINT_NAME} at step {self.steps}" if self.checkpoint_compared else "")
        if self.reproduced:
            executed = (f", although this replay is executed differently ({'; '.join(self.differing_settings)})"
                        if self.differing_settings else "")
            return f"reproduced {self.steps} steps bit for bit ({what}){executed}"
        if not self.differing_settings:
            d = self.first_difference
            return (f"not reproduced: first difference at {d.where}: recorded {d.recorded!r}, "
                    f"replayed {d.replayed!r} (compared {what}; same execution settings)")
        lines = [f"drift over {self.steps} steps, as expected: this replay is executed differently "
                 f"({'; '.join(self.differing_settings)})"]
        for part, d in self.largest.items():
            lines.append(f"largest relative difference in {part}: {d.relative:.3g} at {d.where} "
                         f"(recorded {d.recorded!r}, replayed {d.replayed!r})")
        if self.weights_drift is not None:
            lines.append(f"the model's weights differ by {self.weights_drift:.3g} of their norm "
                         f"(||w_replayed - w_recorded|| / ||w_recorded|| at step {self.steps})")
        lines.append(f"first difference at {self.first_difference.where}; compared {what}")
        if self.other_differences:
            lines.append(f"also differ: {', '.join(self.other_differences[:5])}")
        return "\n".join(lines)


def verify_run(run_dir: Path, *, steps: int | None = None, threads: int | None = None, device: str | None = None,
               progress: bool | None = None) -> Verification:
    """Replay ``run_dir``'s first ``steps`` steps and compare (see the module docstring)."""
    run_dir = Path(run_dir)
    results = load_results(run_dir)
    recorded_rows = read_scalars(run_dir / SCALARS_NAME)
    checkpoint = load_checkpoint(run_dir / CHECKPOINT_NAME) if (run_dir / CHECKPOINT_NAME).is_file() else None
    parse_saved_config(run_dir / CONFIG_NAME)
    protocol = build_protocol()
    n = replay_length(steps, recorded_rows, checkpoint, protocol.steps, protocol.checkpoint_every, run_dir)

    recorded = recorded_settings(results, n)
    chosen_threads = threads if threads is not None else _recorded_threads(recorded)
    chosen_device = resolve_device(device if device is not None else _recorded_device(recorded))
    request = ExecutionRequest(threads=chosen_threads, command=None)
    with tempfile.TemporaryDirectory(prefix="disbench-verify-") as tmp:
        replay_dir = Path(tmp) / run_dir.name
        replay_dir.mkdir()
        shutil.copyfile(run_dir / CONFIG_NAME, replay_dir / CONFIG_NAME)
        parse_saved_config(replay_dir / CONFIG_NAME)
        gin.bind_parameter("Run.loggers", ())  # loggers watch a run; they change nothing in it
        with torch_threads(chosen_threads):
            built = build_configured_run(chosen_device)
            train_group([replay_dir], [built], execution=request, stop_at=n, progress=progress)
        replayed = read_results(replay_dir) or {}
        replayed_rows = read_scalars(replay_dir / SCALARS_NAME)
        replayed_checkpoint = (load_checkpoint(replay_dir / CHECKPOINT_NAME)
                               if (replay_dir / CHECKPOINT_NAME).is_file() else None)

    current = settings_of(replayed.get("execution"))
    differing = [f"{SETTING_TEXT[k]}: {recorded.get(k)} -> {current.get(k)}" for k in SETTINGS
                 if k not in NOT_NUMERIC and recorded.get(k) != current.get(k)]
    if not recorded:
        differing = ["the run recorded no execution (trained by an older disbench)"]
    compare_checkpoint = checkpoint is not None and int(checkpoint["step"]) == n and replayed_checkpoint is not None
    parts = {SCALARS_NAME: list(compare_rows([r for r in recorded_rows if r["step"] <= n], replayed_rows)),
             CHECKPOINT_NAME: compare_nested(checkpoint, replayed_checkpoint, "checkpoint") if compare_checkpoint
             else []}
    differences = [d for found in parts.values() for d in found]
    largest = {part: max(numeric, key=lambda d: d.relative) for part, found in parts.items()
               if (numeric := [d for d in found if d.relative is not None])}
    return Verification(
        run_dir=run_dir, steps=n, rows=sum(r["step"] <= n for r in recorded_rows),
        checkpoint_compared=compare_checkpoint, differing_settings=differing,
        first_difference=differences[0] if differences else None, largest=largest,
        weights_drift=weights_drift(checkpoint["model"], replayed_checkpoint["model"]) if compare_checkpoint
        else None,
        other_differences=[d.where for d in differences if d.relative is None])


def replay_length(steps: int | None, rows: list[dict], checkpoint: dict | None, protocol_steps: int,
                  checkpoint_every: int, run_dir: Path) -> int:
    """``--steps``, or by default the run's checkpoint step when it is at most
    :data:`DEFAULT_MAX_STEPS` (every tensor is then compared), else its first
    checkpoint step, at most :data:`DEFAULT_MAX_STEPS`; never past what it recorded."""
    done = max([int(checkpoint["step"]) if checkpoint else 0] + [r["step"] for r in rows])
    if done == 0:
        raise DisbenchError(f"{run_dir} has not recorded any step yet: nothing to verify")
    if steps is not None:
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise DisbenchError(f"--steps must be a positive number of steps, got {steps!r}")
        if steps > done:
            raise DisbenchError(f"--steps {steps}: {run_dir} recorded only {done} steps")
        return steps
    if checkpoint is not None and int(checkpoint["step"]) <= DEFAULT_MAX_STEPS:
        return int(checkpoint["step"])
    return min(checkpoint_every, protocol_steps, DEFAULT_MAX_STEPS, done)


def recorded_settings(results: dict, steps: int) -> dict:
    """The execution settings in force over the first ``steps`` steps ({} if unrecorded);
    a run whose settings changed within them is refused (no one replay can match it)."""
    history = [e for e in results.get("execution_history") or [] if e.get("from_step", 0) < steps]
    if not history:
        return settings_of(results.get("execution"))
    first = {k: v for k, v in history[0].items() if k != "from_step"}
    for entry in history[1:]:
        changed = [k for k in SETTINGS if entry.get(k) != first.get(k) and k not in NOT_NUMERIC]
        if changed:
            raise DisbenchError(
                f"the run was executed differently within its first {steps} steps (from step {entry['from_step']}: "
                f"{', '.join(f'{SETTING_TEXT[k]} {first.get(k)} -> {entry.get(k)}' for k in changed)}); "
                f"verify at most {entry['from_step']} steps (--steps)")
    return first


def _recorded_threads(recorded: dict) -> int:
    try:
        return max(1, int(recorded.get("threads")))
    except (TypeError, ValueError):
        return default_threads()


def _recorded_device(recorded: dict) -> str:
    device = (recorded.get("device") or "cpu").split()[0]
    return device if device != "cuda" or torch.cuda.is_available() else "cpu"


# -- comparing -------------------------------------------------------------------------

def compare_rows(recorded: list[dict], replayed: list[dict]):
    """The differences between recorded and replayed scalar rows, in step order."""
    by_step = {r["step"]: r for r in replayed}
    for row in recorded:
        other = by_step.get(row["step"])
        if other is None:
            yield Difference(f"step {row['step']}", "a row", "no row")
            continue
        for key in list(row) + [k for k in other if k not in row]:
            yield from compare_values(row.get(key), other.get(key), f"step {row['step']}, {key}")


def compare_values(a, b, where: str):
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b)):
            yield from compare_values(x, y, f"{where}[{i}]")
    elif _is_number(a) and _is_number(b):
        if not (a == b or (math.isnan(a) and math.isnan(b))):
            scale = max(abs(a), abs(b))
            yield Difference(where, a, b, abs(a - b) / scale if scale else 0.0)
    elif a != b:
        yield Difference(where, a, b)


def weights_drift(recorded: dict, replayed: dict) -> float:
    """||replayed - recorded|| / ||recorded|| over every floating-point tensor of a model state."""
    names = [k for k, v in recorded.items() if v.is_floating_point() and k in replayed]
    difference = sum(float((replayed[k].double() - recorded[k].double()).square().sum()) for k in names)
    norm = sum(float(recorded[k].double().square().sum()) for k in names)
    return math.sqrt(difference / norm) if norm else 0.0


def compare_nested(a, b, where: str) -> list[Difference]:
    """Differences between two checkpoints' entries (dicts, lists, tensors, numbers);
    generator states are compared for equality only."""
    if where.rsplit("/", 1)[-1] in GENERATOR_STATES and where.count("/") == 1:
        return [] if _same(a, b) else [Difference(where, "a generator state", "another")]
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for key in list(a) + [k for k in b if k not in a]:
            if key in NOT_COMPARED:
                continue
            if key not in a or key not in b:
                out.append(Difference(f"{where}/{key}", "present" if key in a else "absent",
                                      "present" if key in b else "absent"))
            else:
                out += compare_nested(a[key], b[key], f"{where}/{key}")
        return out
    if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor):
        if a.shape != b.shape or a.dtype != b.dtype:
            return [Difference(where, f"{a.dtype} {tuple(a.shape)}", f"{b.dtype} {tuple(b.shape)}")]
        if torch.equal(a, b):
            return []
        if not a.is_floating_point():  # generator states, counters: no size to a difference
            return [Difference(where, "a tensor", "another tensor")]
        a64, b64 = a.double(), b.double()
        error = (a64 - b64).abs()
        at = int(error.argmax())
        scale = float(a64.abs().max().clamp_min(b64.abs().max()))
        return [Difference(f"{where}[{at}]", a64.flatten()[at].item(), b64.flatten()[at].item(),
                           float(error.max()) / scale if scale else 0.0)]
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)) and len(a) == len(b):
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in compare_nested(x, y, f"{where}[{i}]")]
    return list(compare_values(a, b, where))


def _same(a, b) -> bool:
    if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor):
        return a.shape == b.shape and a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b


def _is_number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


