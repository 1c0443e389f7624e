"""Start, resume and evaluate one run: what ``disbench train`` and
``disbench compare`` both do for each (model, seed)."""

from __future__ import annotations

import os
import secrets
from contextlib import ExitStack, contextmanager
from dataclasses import replace
from pathlib import Path

import gin

from .analysis import analyse_run
from .builders import build_configured_run, check_run_config
from .config import (CHANGEABLE_ON_RESUME, ConfigSources, build_run, config_notes, current_bindings, default_binding,
                     parse_saved_config, parse_sources)
from .errors import DisbenchError, TrainingDiverged
from .io import atomic_write_text
from .locks import RunLocked, run_lock
from .loggers.hub import LoggerHub, check_loggers
from .runs import CONFIG_NAME, RESULTS_NAME, load_results, read_results, update_results
from .trained import evaluate_built
from .training.checkpoint import CHECKPOINT_NAME, load_checkpoint
from .training.loop import train_group
from .training.parts import ordered_by_configuration


@contextmanager
def sole_writer(run_dir: Path):
    """Hold ``run_dir``'s lock (:mod:`disbench.locks`) while this process writes the run:
    a run another process trains or evaluates (a compare, a second shell) is refused in one line."""
    with ExitStack() as stack:
        try:
            stack.enter_context(run_lock(run_dir))
        except RunLocked as exc:
            raise DisbenchError(str(exc)) from None
        yield


def run_dir_has_run(run_dir: Path) -> bool:
    return (Path(run_dir) / RESULTS_NAME).exists() or (Path(run_dir) / CHECKPOINT_NAME).exists()


def prepare_new_run(run_dir: Path, sources: ConfigSources, model: str | None, *,
                    evaluate: bool = True) -> Path:
    """Parse and check the configuration, then create the run directory with its config.

    Everything that can be checked without loading images is checked before
    the folder is created (see :func:`disbench.builders.check_run_config`), so
    a refused configuration leaves nothing behind.
    """
    parse_sources(sources, model=model)
    run_dir = Path(run_dir)
    check_output_dir(run_dir)
    if run_dir_has_run(run_dir):
        raise DisbenchError(f"{run_dir} already holds a run: continue it with --resume, or choose another --out")
    check_run_config()
    check_configured_loggers()
    make_output_dir(run_dir)
    atomic_write_text(run_dir / CONFIG_NAME, gin.config_str())
    update_results(run_dir, status="created", evaluate_at_end=bool(evaluate), config_notes=config_notes())
    return run_dir


def check_output_dir(run_dir: Path, option: str = "--out") -> None:
    """A usable output folder: names the file system can hold, a folder (or nothing yet)
    under folders, writable."""
    run_dir = Path(run_dir)
    check_path_names(run_dir, option)
    if run_dir.exists() and not run_dir.is_dir():
        raise DisbenchError(f"--out {run_dir}: is a file, not a folder")
    ancestor = run_dir
    while not ancestor.exists():
        if ancestor.parent == ancestor:
            break
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise DisbenchError(f"--out {run_dir}: {ancestor} is a file, so no folder can be made under it")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise DisbenchError(f"--out {run_dir}: {ancestor} is not writable")


def check_output_file(path: Path, option: str = "--out") -> None:
    """A file that can be written: its folder usable (:func:`check_output_dir`), itself not a folder."""
    path = Path(path)
    check_output_dir(path.parent, option)
    if path.is_dir():
        raise DisbenchError(f"{option} {path}: is a folder, not a file")


MAX_NAME_BYTES, MAX_PATH_BYTES = 255, 4095  # Linux's NAME_MAX and PATH_MAX (less the final NUL)


def check_path_names(path: Path, option: str) -> None:
    """Refuse a path the file system cannot hold: a component over 255 bytes, or the whole over 4,095."""
    for part in Path(path).parts:
        if len(os.fsencode(part)) > MAX_NAME_BYTES:
            raise DisbenchError(f"{option}: the name {part[:24]}… is {len(os.fsencode(part))} bytes long; a file or "
                                f"folder name may have at most {MAX_NAME_BYTES}")
    if len(os.fsencode(os.path.abspath(path))) > MAX_PATH_BYTES:
        raise DisbenchError(f"{option}: the path is {len(os.fsencode(os.path.abspath(path)))} bytes long; at most "
                            f"{MAX_PATH_BYTES}")


def make_output_dir(run_dir: Path) -> None:
    """Make the folder and prove it writable with a probe of a new, random name
    (``O_EXCL``: a file planted in a shared folder is never opened, let alone written)."""
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        probe = run_dir / f".disbench-write-test-{secrets.token_hex(8)}"
        os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o600))
        probe.unlink()
    except OSError as exc:
        raise DisbenchError(f"--out {run_dir}: cannot write there ({exc.strerror or exc})") from None


def prepare_resume(run_dir: Path, sources: ConfigSources | None = None, model: str | None = None) -> int | None:
    """Load a run's own configuration to continue it.

    Returns the step of its checkpoint, or None when it has none yet (it then
    starts again from step 0). ``sources``/``model`` (the options of the
    command that resumes it) may repeat the run's configuration but not change
    it: a difference is refused, naming the bindings that differ.
    """
    run_dir = Path(run_dir)
    load_results(run_dir)  # refuses a directory that is not a run
    check_same_config(run_dir, sources, model)
    check_configured_loggers()
    checkpoint = run_dir / CHECKPOINT_NAME
    return int(load_checkpoint(checkpoint)["step"]) if checkpoint.is_file() else None


def check_configured_loggers() -> None:
    """The configured ``Run.loggers`` exist and can work here (before anything starts)."""
    check_loggers(build_run().loggers)


def check_same_config(run_dir: Path, sources: ConfigSources | None, model: str | None) -> None:
    """Parse the run's ``config.gin`` (leaving it in force); with ``sources``,
    refuse a command whose configuration differs from it.

    Without ``--protocol`` the options are applied on top of the saved config,
    so ``--steps 400`` is compared with the run's ``Protocol.steps``; with a
    protocol, the configuration the command would give a new run is compared.
    Only ``Protocol.data_root`` (where the data lies) may change.
    """
    config_path = Path(run_dir) / CONFIG_NAME
    parse_saved_config(config_path)
    saved = current_bindings()
    if sources is None and model is None:
        return
    sources = sources or ConfigSources()
    chosen = model or gin.query_parameter("Run.model")
    if not sources.protocol:
        sources = replace(sources, gin_files=[str(config_path), *sources.gin_files])
    parse_sources(sources, model=chosen)
    requested = current_bindings()
    run_level_first = lambda key: (key.split(".")[0] not in ("Run", "Protocol"), key)  # noqa: E731
    value = lambda bindings, k: bindings.get(k, default_binding(k))  # noqa: E731  (unset = the default)
    differ = [k for k in sorted(set(saved) | set(requested), key=run_level_first)
              if value(saved, k) != value(requested, k) and k not in CHANGEABLE_ON_RESUME]
    if differ:
        shown = "; ".join(f"{k}: {shown_value(saved, k)} -> {shown_value(requested, k)}" for k in differ[:4])
        more = f" (and {len(differ) - 4} more)" if len(differ) > 4 else ""
        raise DisbenchError(
            f"{run_dir} was configured differently from this command: {shown}{more}. A resumed run keeps "
            "its own configuration: drop these options, or start a new run in another folder"
        )
    if any(value(saved, k) != value(requested, k) for k in CHANGEABLE_ON_RESUME):  # the run continues with them
        atomic_write_text(config_path, gin.config_str())  # (a binding repeated at its value changes no file)


def shown_value(bindings: dict, key: str) -> str:
    """A binding's value in a refusal: as bound, or the default it takes unbound."""
    return str(bindings[key]) if key in bindings else f"{default_binding(key)} (default)"


def train_and_evaluate(run_dir: Path, *, device, resume: bool, evaluate: bool | None = None,
                       metrics=None, progress: bool | None = None, on_trained=None, execution=None) -> dict:
    """Train the configured run (resuming if asked), then evaluate its metrics
    on the model and data already in memory: a group of one (see
    :func:`train_and_evaluate_group`). A failed run raises TrainingDiverged."""
    results = train_and_evaluate_group([run_dir], device=device, resume=resume, evaluate=evaluate,
                                       metrics=metrics, progress=progress, on_trained=on_trained,
                                       parsed=True, execution=execution)[0]
    if results.get("status") == "failed":
        raise TrainingDiverged(results["error"])
    return results


def train_and_evaluate_group(run_dirs: list[Path], *, device, resume: bool, evaluate: bool | None = None,
                             metrics=None, progress: bool | None = None, on_trained=None,
                             parsed: bool = False, execution=None) -> list[dict]:
    """Train runs of one protocol as one fused group (each from its own
    ``config.gin``, or, with ``parsed`` and one run, the config in force), then
    evaluate each complete member on the model and data in memory.

    ``evaluate=None`` keeps what each run was started with (``--no-eval`` is
    remembered). ``on_trained(results)`` is called for each member between the
    two (the CLI reports training there). Each member's loggers (``Run.loggers``)
    watch the training and get the final metrics, then are closed. ``execution``
    (a :class:`disbench.execution.ExecutionRequest`) is recorded with each run;
    the caller sets the threads it names.
    """
    run_dirs = [Path(d) for d in run_dirs]
    builts, dataset = [], None
    for run_dir in run_dirs:
        if not parsed:
            parse_saved_config(run_dir / CONFIG_NAME)
        built = build_configured_run(device, dataset)
        dataset = built.dataset
        builts.append(built)
    order = ordered_by_configuration([b.model for b in builts])  # a group keeps each model's runs together
    out = _train_and_evaluate_built([run_dirs[k] for k in order], [builts[k] for k in order], resume=resume,
                                    evaluate=evaluate, metrics=metrics, progress=progress, on_trained=on_trained,
                                    execution=execution)
    return [out[order.index(k)] for k in range(len(order))]  # in the order given


def _train_and_evaluate_built(run_dirs, builts, *, resume, evaluate, metrics, progress, on_trained,
                              execution) -> list[dict]:
    for run_dir in run_dirs:
        if evaluate is not None:
            update_results(run_dir, evaluate_at_end=bool(evaluate))
    hub = LoggerHub.for_runs([b.run.loggers for b in builts])
    statuses = ["interrupted"] * len(run_dirs)
    try:
        results = train_group(run_dirs, builts, resume=resume, progress=progress, loggers=hub, execution=execution)
        statuses = [r.get("status", "failed") for r in results]
        out = _evaluate_members(run_dirs, builts, results, metrics, progress, on_trained, hub)
    except Exception:
        statuses = [(read_results(d) or {}).get("status") or "failed" for d in run_dirs]
        statuses = ["failed" if s in ("running", "created") else s for s in statuses]
        raise
    finally:
        if hub is not None:
            hub.finish(statuses)
            updated = hub.record_failures()
    if hub is not None:
        out = [updated.get(k, r) for k, r in enumerate(out)]
    return out


def _evaluate_members(run_dirs, builts, results, metrics, progress, on_trained, hub) -> list[dict]:
    """Evaluate each complete member (see :func:`train_and_evaluate_group`); its
    loggers get the metrics its results.json then holds."""
    out = []
    for k, (run_dir, built, result) in enumerate(zip(run_dirs, builts, results)):
        if result.get("status") != "complete":
            out.append(result)
            continue
        result = update_results(run_dir, **analyse_run(run_dir, result.get("scheduler")))
        if on_trained is not None:
            on_trained(result)
        names = built.protocol.metrics if metrics is None else metrics
        if result.get("evaluate_at_end", True) and names:
            if len(run_dirs) > 1:
                parse_saved_config(run_dir / CONFIG_NAME)  # the member's own metric settings
            built.model.eval()
            result = evaluate_built(run_dir, built, names, progress=progress, previous=result.get("metrics", {}))
        if hub is not None and result.get("metrics"):
            hub.metrics(k, int(result.get("steps") or built.protocol.steps), result["metrics"], final=True)
        out.append(result)
    return out
