"""``disbench train``: one run of one model under one protocol."""

from __future__ import annotations

from pathlib import Path

import gin

from ..builders import resolve_device
from ..config import ConfigSources, build_protocol, build_run, parse_saved_config, parse_sources
from ..errors import DisbenchError
from ..io import atomic_write_text
from ..runs import CONFIG_NAME, RESULTS_NAME, load_results
from ..training.checkpoint import CHECKPOINT_NAME
from .common import add_device_option, add_progress_option, format_metrics


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("train", help="train one model under a protocol",
                              description="Train one model under a protocol and evaluate it.")
    p.add_argument("--model", help="a registered model name (or bind Run.model in gin)")
    p.add_argument("--protocol", help="a protocol name (gin/protocols/NAME.gin) or a .gin file")
    p.add_argument("--dataset", help="override Protocol.dataset")
    p.add_argument("--data-root", help="folder holding dataset files (default: $DISBENCH_DATA)")
    p.add_argument("--gin_file", "--gin-file", action="append", default=[], help="extra gin file (repeatable)")
    p.add_argument("--gin_param", "--gin-param", action="append", default=[],
                   help="gin binding, e.g. 'PIBetaScheduler.kp = 0.02' (repeatable)")
    p.add_argument("--steps", type=int, help="override Protocol.steps")
    p.add_argument("--seed", type=int, help="override Run.seed")
    p.add_argument("--out", help="run directory (default: runs/MODEL-PROTOCOL-sSEED)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    p.add_argument("--no-eval", action="store_true", help="skip evaluating the protocol's metrics at the end")
    add_device_option(p)
    add_progress_option(p)
    p.set_defaults(func=run_train)


def sources_from_args(args) -> ConfigSources:
    return ConfigSources(
        protocol=args.protocol, gin_files=args.gin_file, gin_params=args.gin_param,
        overrides={"Protocol.steps": args.steps, "Protocol.dataset": args.dataset,
                   "Protocol.data_root": args.data_root, "Run.seed": args.seed},
    )


def _changes_config(args) -> bool:
    return any([args.model, args.protocol, args.dataset, args.gin_file, args.gin_param,
                args.steps is not None, args.seed is not None])


def run_train(args) -> int:
    from ..evaluation import evaluate_run
    from ..training.loop import train

    device = resolve_device(args.device)
    progress = False if args.no_progress else None
    if args.resume:
        if not args.out:
            raise DisbenchError("--resume needs --out RUN_DIR (the run to continue)")
        run_dir = Path(args.out)
        results = load_results(run_dir)  # refuses a directory that is not a run
        if results.get("status") == "complete":
            print(f"{run_dir} is already complete ({results.get('steps')} steps); nothing to resume")
            return 0
        if _changes_config(args):  # the checkpoint check in train() refuses a different protocol
            parse_sources(sources_from_args(args), model=args.model)
        else:
            parse_saved_config(run_dir / CONFIG_NAME)
        resume = (run_dir / CHECKPOINT_NAME).is_file()
        if not resume:
            print(f"{run_dir} has no checkpoint yet; starting it again from step 0")
    else:
        model = parse_sources(sources_from_args(args), model=args.model)
        protocol, run = build_protocol(), build_run()
        protocol_name = Path(args.protocol).stem if args.protocol else "default"
        run_dir = Path(args.out or Path("runs") / f"{model}-{protocol_name}-s{run.seed}")
        if (run_dir / RESULTS_NAME).exists() or (run_dir / CHECKPOINT_NAME).exists():
            raise DisbenchError(f"{run_dir} already holds a run: continue it with --resume, or choose another --out")
        run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(run_dir / CONFIG_NAME, gin.config_str())
        resume = False

    results = train(run_dir, device=device, resume=resume, progress=progress)
    final = results.get("final", {})
    print(f"trained {results['model']} for {results['steps']} steps in {results['elapsed_seconds']:.1f} s: "
          f"recon {final.get('recon', float('nan')):.3f}, KL {final.get('kl', float('nan')):.3f}, "
          f"beta {final.get('beta', float('nan')):.4g}")
    if not args.no_eval and build_protocol().metrics:
        results = evaluate_run(run_dir, device=device, progress=progress)
        print("metrics:\n" + format_metrics(results["metrics"]))
    print(f"results: {run_dir / RESULTS_NAME}")
    return 0
