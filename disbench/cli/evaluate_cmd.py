"""``disbench evaluate``: run metrics on a finished run."""

from __future__ import annotations

from pathlib import Path

from ..builders import resolve_device
from ..runs import RESULTS_NAME
from .common import add_device_option, add_progress_option, format_metrics, option_list


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("evaluate", help="evaluate metrics on a trained run",
                              description="Encode the run's dataset and merge metric results into results.json.")
    p.add_argument("run_dir", help="a run directory written by `disbench train`")
    p.add_argument("--metrics", help="comma-separated metric names (default: the protocol's)")
    add_device_option(p)
    add_progress_option(p)
    p.set_defaults(func=run_evaluate)


def run_evaluate(args) -> int:
    from ..evaluation import evaluate_run

    metrics = option_list(args.metrics, "--metrics", "metric names")
    results = evaluate_run(Path(args.run_dir), metrics, device=resolve_device(args.device),
                           progress=False if args.no_progress else None)
    print("metrics:\n" + format_metrics(results["metrics"]))
    print(f"results: {Path(args.run_dir) / RESULTS_NAME}")
    return 0
