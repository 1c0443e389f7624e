"""``disbench train``: one run of one model under one protocol."""

from __future__ import annotations

import re
import sys
from pathlib import Path

from ..builders import resolve_device
from ..config import ConfigSources, build_protocol, build_run, config_notes, parse_sources
from ..errors import DisbenchError
from ..execution import ExecutionRequest, check_threads, default_threads, torch_threads
from ..registry import get_registry
from ..runner import prepare_new_run, prepare_resume, sole_writer, train_and_evaluate
from ..runs import RESULTS_NAME, load_results
from .common import (DATA_ROOT_DEFAULT, add_device_option, add_logger_option, add_progress_option, add_threads_option,
                     format_metrics)


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("train", help="train one model under a protocol",
                              description="Train one model under a protocol and evaluate it.")
    p.add_argument("--model", help="a registered model name (or bind Run.model in gin)")
    p.add_argument("--protocol", help="a protocol name (gin/protocols/NAME.gin) or a .gin file")
    add_config_options(p)
    p.add_argument("--seed", type=int, help="override Run.seed")
    p.add_argument("--out", help="run directory (default: runs/MODEL-PROTOCOL-sSEED)")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --out from its last checkpoint, with its own config.gin")
    p.add_argument("--no-eval", action="store_true",
                   help="skip evaluating the protocol's metrics at the end (remembered by --resume)")
    add_device_option(p)
    add_threads_option(p, "the cores this process may use")
    add_progress_option(p)
    p.set_defaults(func=run_train)


def add_config_options(p) -> None:
    """Options that change a run's configuration (shared with `compare`)."""
    p.add_argument("--dataset", help="override Protocol.dataset")
    p.add_argument("--data-root", help="folder holding user-supplied dataset files "
                   f"(default: Protocol.data_root if bound, else {DATA_ROOT_DEFAULT})")
    p.add_argument("--gin_file", "--gin-file", action="append", default=[], help="extra gin file (repeatable)")
    p.add_argument("--gin_param", "--gin-param", action="append", default=[],
                   help="gin binding, e.g. 'PIBetaScheduler.kp = 0.02' (repeatable)")
    p.add_argument("--steps", type=int, help="override Protocol.steps")
    p.add_argument("--deterministic", action="store_true",
                   help="deterministic kernels (Protocol.deterministic = True; slower on GPUs)")
    add_logger_option(p)


def sources_from_args(args, seed: int | None = None) -> ConfigSources:
    return ConfigSources(
        protocol=args.protocol, gin_files=args.gin_file, gin_params=args.gin_param,
        overrides={"Protocol.steps": args.steps, "Protocol.dataset": args.dataset,
                   "Protocol.data_root": args.data_root,
                   "Protocol.deterministic": True if getattr(args, "deterministic", False) else None,
                   "Run.seed": seed if seed is not None else getattr(args, "seed", None),
                   "Run.loggers": tuple(getattr(args, "logger", None) or ()) or None},
    )


def _changes_config(args) -> bool:
    return any([args.model, args.protocol, args.dataset, args.data_root, args.gin_file, args.gin_param,
                args.steps is not None, args.seed is not None, args.deterministic, args.logger])


def run_train(args) -> int:
    device = resolve_device(args.device)
    threads = default_threads() if args.threads is None else check_threads(args.threads)
    execution = ExecutionRequest(threads=threads, command=getattr(args, "command_line", None))
    progress = False if args.no_progress else None
    if args.resume:
        if not args.out:
            raise DisbenchError("--resume needs --out RUN_DIR (the run to continue)")
        run_dir = Path(args.out)
        load_results(run_dir)  # a folder that is not a run is refused before anything is made beside it
        args.run_dir = run_dir  # an interruption says how to continue it
        with sole_writer(run_dir):
            return _resume(args, run_dir, device, execution, progress)
    sources = sources_from_args(args)
    run_dir = Path(args.out) if args.out else default_run_dir(sources, args)
    run_dir = prepare_new_run(run_dir, sources, args.model, evaluate=not args.no_eval)
    args.run_dir = run_dir  # an interruption says how to continue it
    with sole_writer(run_dir):
        results = _train(run_dir, device, execution, progress, resume=False, evaluate=not args.no_eval)
    _report_results(run_dir, results)
    return 0


def _resume(args, run_dir: Path, device, execution, progress) -> int:
    sources = sources_from_args(args) if _changes_config(args) else None
    from_step = prepare_resume(run_dir, sources, args.model)  # refuses another configuration first
    results = load_results(run_dir)
    if results.get("status") == "complete":
        print(f"{run_dir} is already complete ({results.get('steps')} steps); nothing to resume")
        return 0
    planned = build_protocol().steps
    print(f"resuming {run_dir} from step {from_step:,} of {planned:,}" if from_step is not None
          else f"{run_dir} has no checkpoint yet; starting it again from step 0 of {planned:,}", flush=True)
    results = _train(run_dir, device, execution, progress, resume=from_step is not None,
                     evaluate=False if args.no_eval else None)
    _report_results(run_dir, results)
    return 0


def _train(run_dir: Path, device, execution, progress, *, resume: bool, evaluate: bool | None) -> dict:
    for note in config_notes():
        print(f"note: {note}", file=sys.stderr)
    with torch_threads(execution.threads):
        return train_and_evaluate(run_dir, device=device, resume=resume, evaluate=evaluate,
                                  progress=progress, on_trained=_report_training, execution=execution)


def _report_results(run_dir: Path, results: dict) -> None:
    if results.get("metrics"):
        print("metrics:\n" + format_metrics(results["metrics"]))
    print(f"results: {run_dir / RESULTS_NAME}")


def default_run_dir(sources: ConfigSources, args) -> Path:
    """``runs/MODEL-PROTOCOL-sSEED``, from names checked first: a model name must be
    registered (registered names are path-safe) and the protocol part is reduced
    to safe characters, so the path cannot leave ``runs/``."""
    model = parse_sources(sources, model=args.model)
    if not model:
        build_run()  # the one-line "no model chosen" error
    get_registry("models").get(model)
    protocol_name = re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(args.protocol).stem).strip("._") if args.protocol else ""
    return Path("runs") / f"{model}-{protocol_name or 'default'}-s{build_run().seed}"


def _report_training(results: dict) -> None:
    final = results.get("final", {})
    print(f"trained {results['model']} for {results['steps']} steps in {results['elapsed_seconds']:.1f} s: "
          f"recon {final.get('recon', float('nan')):.3f}, KL {final.get('kl', float('nan')):.3f}, "
          f"beta {final.get('beta', float('nan')):.4g}", flush=True)
