"""``disbench study``: a study file's datasets × models (each with its grid) × seeds,
one sweep per dataset (see :mod:`disbench.compare.study`).

Every dataset's plan is made, and every model's grid checked, before anything is
trained. Exit status: 0 when every run of every dataset is complete and evaluated,
1 when some run failed or did not finish, 2 for bad input (nothing is trained).
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

from ..compare.plan import Plan, parse_seeds, plan_runs
from ..compare.study import Study, load_study
from ..compare.sweep import check_grid, format_value
from ..errors import DisbenchError
from ..io import atomic_write_json
from ..metrics import parse_representations
from ..runner import check_output_dir
from .common import option_list
from .compare_cmd import absolute, absolute_paths, add_execution_options, check_execution_options, execute_plan
from .train_cmd import add_config_options, sources_from_args

STUDY_NAME = "study.json"


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "study", help="a study file: datasets × models (each with its grid) × seeds, one sweep per dataset",
        description="Run every (dataset, model, grid point, seed) of a study file (gin/studies/NAME.toml, or a "
                    "path) not yet complete, in OUT/DATASET/runs/MODEL/POINT/seedS; each dataset's folder gets "
                    "its tables and figures as a sweep's, OUT/study.json says what was run. Re-running the "
                    "same command does no finished work. Every dataset's plan is checked before anything "
                    "trains.")
    p.add_argument("study", metavar="FILE_OR_NAME", help="a study name (gin/studies/NAME.toml) or a .toml file")
    p.add_argument("--out", required=True, help="the study directory")
    p.add_argument("--datasets", help="comma-separated subset of the study's datasets (default: all)")
    p.add_argument("--seeds", help="seeds, as for compare (default: the study's)")
    p.add_argument("--metrics", help="comma-separated metrics to evaluate (default: each protocol's)")
    p.add_argument("--representation", help="mean, sampled or mean,sampled: score each metric on each")
    add_execution_options(p)
    p.set_defaults(func=run_study)


def run_study(args) -> int:
    if args.dataset:
        raise DisbenchError("--dataset: a study's datasets are its own; choose among them with --datasets")
    study = load_study(args.study)
    datasets = chosen_datasets(study, args.datasets)
    args.seeds = args.seeds or study.seeds
    seeds = parse_seeds(args.seeds)
    check_execution_options(args)
    out = Path(args.out)
    check_output_dir(out)
    if args.backend == "ray":
        out = absolute(out)
    metrics = option_list(args.metrics, "--metrics", "metric names")
    representations = parse_representations(args.representation) if args.representation is not None else None
    plans = {dataset: plan_dataset(args, study, dataset, out / dataset, seeds, metrics, representations)
             for dataset in datasets}  # every dataset checked before any trains
    if not args.dry_run:
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_json(out / STUDY_NAME, {"study": study.name, "file": str(study.path),
                                             "description": study.description, "text": study.path.read_text(),
                                             "datasets": datasets, "seeds": seeds,
                                             "command": getattr(args, "command_line", None)})
    status = 0
    for dataset, (plan, header) in plans.items():
        print(f"study {study.name}: dataset {dataset} ({datasets.index(dataset) + 1} of {len(datasets)})")
        status = max(status, execute_plan(args, out / dataset, plan, header))
    return status


def chosen_datasets(study: Study, option: str | None) -> list[str]:
    if option is None:
        return list(study.datasets)
    chosen = option_list(option, "--datasets", "dataset names")
    unknown = [d for d in chosen if d not in study.datasets]
    if unknown:
        raise DisbenchError(f"--datasets {', '.join(unknown)}: not in study {study.name} "
                            f"(its datasets: {', '.join(study.datasets)})")
    return chosen


def plan_dataset(args, study: Study, dataset: str, out: Path, seeds: list[int], metrics, representations):
    """The plan of one dataset's sweep (every model with its grid and bindings) and its compare.json header."""
    check_output_dir(out)
    base = sources_from_args(argparse.Namespace(**{**vars(args), "protocol": study.protocol_for(dataset)}))
    if args.backend == "ray":
        base = absolute_paths(base)
    jobs, requested, model_points = [], None, {}
    for model in study.models:
        sources = replace(base, overrides={**base.overrides, **model.bindings})
        if model.bindings:
            check_grid({name: [value] for name, value in model.bindings.items()}, [model.name], sources)
        check_grid(model.grid, [model.name], sources)
        points = model.points
        plan = plan_runs(out, [model.name], seeds, sources, metrics, args.retry_failed, representations,
                         points if model.grid else None)
        jobs += plan.jobs
        requested = requested or plan.metrics
        model_points[model.name] = [{"name": p.name, "bindings": [list(b) for b in p.bindings],
                                     **({"label": p.text} if p.text else {})} for p in points]
    header = {"command": f"disbench study {study.name} --out {out.parent} --datasets {dataset} --seeds {args.seeds}",
              "kind": "study", "study": study.name, "dataset": dataset, "models": [m.name for m in study.models],
              "seeds": seeds, "protocol": study.protocol_for(dataset), "model_points": model_points,
              "bindings": {m.name: {k: format_value(v) for k, v in m.bindings.items()} for m in study.models}}
    return Plan(jobs, tuple(requested or ())), header
