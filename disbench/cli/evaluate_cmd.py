"""``disbench evaluate``: run metrics on a finished run."""

from __future__ import annotations

from pathlib import Path

from ..builders import resolve_device
from ..metrics import parse_representations
from ..runner import sole_writer
from ..runs import RESULTS_NAME, load_results
from ..trained import evaluate_run
from .common import add_device_option, add_progress_option, format_metrics, option_list


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("evaluate", help="evaluate metrics on a trained run",
                              description="Encode the run's dataset, merge metric results into results.json and "
                                          "send them to the run's loggers.")
    p.add_argument("run_dir", help="a run directory written by `disbench train`")
    p.add_argument("--metrics", help="comma-separated metric names (default: the protocol's); "
                                      "NAME@sampled scores NAME on the sampled representation")
    p.add_argument("--representation", default=None,
                   help="mean, sampled or mean,sampled: score every metric on the encoder mean and/or one "
                        "sample z ~ q(z|x) per image (default: mean); sampled results are stored as NAME@sampled")
    p.add_argument("--no-loggers", action="store_true",
                   help="do not send the metrics to the run's loggers (Run.loggers in its config.gin)")
    add_device_option(p)
    add_progress_option(p)
    p.set_defaults(func=run_evaluate)


def run_evaluate(args) -> int:
    metrics = option_list(args.metrics, "--metrics", "metric names")
    representations = parse_representations(args.representation) if args.representation is not None else None
    load_results(Path(args.run_dir))  # a folder that is not a run is refused before anything is made beside it
    with sole_writer(Path(args.run_dir)):
        results = evaluate_run(Path(args.run_dir), metrics, device=resolve_device(args.device),
                               progress=False if args.no_progress else None, representations=representations,
                               loggers=not args.no_loggers)
    print("metrics:\n" + format_metrics(results["metrics"]))
    print(f"results: {Path(args.run_dir) / RESULTS_NAME}")
    return 0
