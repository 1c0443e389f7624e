"""``disbench train``: one run of one model under one protocol."""

from __future__ import annotations

from pathlib import Path

from ..builders import resolve_device
from ..config import ConfigSources, build_run
from ..errors import DisbenchError
from ..runner import prepare_new_run, prepare_resume, train_and_evaluate
from ..runs import RESULTS_NAME, load_results
from .common import add_device_option, add_progress_option, format_metrics


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("train", help="train one model under a protocol",
                              description="Train one model under a protocol and evaluate it.")
    p.add_argument("--model", help="a registered model name (or bind Run.model in gin)")
    p.add_argument("--protocol", help="a protocol name (gin/protocols/NAME.gin) or a .gin file")
    add_config_options(p)
    p.add_argument("--seed", type=int, help="override Run.seed")
    p.add_argument("--out", help="run directory (default: runs/MODEL-PROTOCOL-sSEED)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    p.add_argument("--no-eval", action="store_true", help="skip evaluating the protocol's metrics at the end")
    add_device_option(p)
    add_progress_option(p)
    p.set_defaults(func=run_train)


def add_config_options(p) -> None:
    """Options that change a run's configuration (shared with `compare`)."""
    p.add_argument("--dataset", help="override Protocol.dataset")
    p.add_argument("--data-root", help="folder holding dataset files (default: $DISBENCH_DATA)")
    p.add_argument("--gin_file", "--gin-file", action="append", default=[], help="extra gin file (repeatable)")
    p.add_argument("--gin_param", "--gin-param", action="append", default=[],
                   help="gin binding, e.g. 'PIBetaScheduler.kp = 0.02' (repeatable)")
    p.add_argument("--steps", type=int, help="override Protocol.steps")


def sources_from_args(args, seed: int | None = None) -> ConfigSources:
    return ConfigSources(
        protocol=args.protocol, gin_files=args.gin_file, gin_params=args.gin_param,
        overrides={"Protocol.steps": args.steps, "Protocol.dataset": args.dataset,
                   "Protocol.data_root": args.data_root,
                   "Run.seed": seed if seed is not None else getattr(args, "seed", None)},
    )


def _changes_config(args) -> bool:
    return any([args.model, args.protocol, args.dataset, args.gin_file, args.gin_param,
                args.steps is not None, args.seed is not None])


def run_train(args) -> int:
    device = resolve_device(args.device)
    progress = False if args.no_progress else None
    if args.resume:
        if not args.out:
            raise DisbenchError("--resume needs --out RUN_DIR (the run to continue)")
        run_dir = Path(args.out)
        results = load_results(run_dir)
        if results.get("status") == "complete":
            print(f"{run_dir} is already complete ({results.get('steps')} steps); nothing to resume")
            return 0
        sources = sources_from_args(args) if _changes_config(args) else None
        resume = prepare_resume(run_dir, sources, args.model)
        if not resume:
            print(f"{run_dir} has no checkpoint yet; starting it again from step 0")
    else:
        if args.out:
            run_dir = prepare_new_run(Path(args.out), sources_from_args(args), args.model)
        else:  # the default name needs the parsed model and seed
            from ..config import parse_sources

            model = parse_sources(sources_from_args(args), model=args.model)
            protocol_name = Path(args.protocol).stem if args.protocol else "default"
            default = Path("runs") / f"{model}-{protocol_name}-s{build_run().seed}"
            run_dir = prepare_new_run(default, sources_from_args(args), args.model)
        resume = False

    results = train_and_evaluate(run_dir, device=device, resume=resume, evaluate=not args.no_eval,
                                 progress=progress, on_trained=_report_training)
    if results.get("metrics"):
        print("metrics:\n" + format_metrics(results["metrics"]))
    print(f"results: {run_dir / RESULTS_NAME}")
    return 0


def _report_training(results: dict) -> None:
    final = results.get("final", {})
    print(f"trained {results['model']} for {results['steps']} steps in {results['elapsed_seconds']:.1f} s: "
          f"recon {final.get('recon', float('nan')):.3f}, KL {final.get('kl', float('nan')):.3f}, "
          f"beta {final.get('beta', float('nan')):.4g}", flush=True)
