"""``disbench data``: prepare (build/validate) a dataset and preview it.

    disbench data prepare NAME [--data-root DIR]
    disbench data show NAME --out FILE.png [--data-root DIR] [--seed S]
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from ..data.preview import draw_preview
from ..errors import DisbenchError
from ..registry import get_registry
from ..runner import check_output_file
from .common import DATA_ROOT_DEFAULT


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("data", help="prepare and preview datasets")
    commands = p.add_subparsers(dest="data_command", metavar="ACTION")
    commands.required = True

    prepare = commands.add_parser("prepare", help="load a dataset once: build/validate its cache, print a summary")
    prepare.add_argument("name", help="dataset name (see `disbench plugins`)")
    _add_data_root(prepare)
    prepare.set_defaults(func=run_prepare)

    show = commands.add_parser("show", help="draw random samples and one traversal row per factor to a PNG")
    show.add_argument("name", help="dataset name (see `disbench plugins`)")
    show.add_argument("--out", required=True, help="the PNG file to write")
    show.add_argument("--seed", type=int, default=0, help="which samples and base combination (default 0)")
    _add_data_root(show)
    show.set_defaults(func=run_show)


def _add_data_root(parser) -> None:
    parser.add_argument("--data-root", default=None,
                        help=f"folder holding user-supplied dataset files (default: {DATA_ROOT_DEFAULT})")


def load_dataset(name: str, data_root: str | None):
    factory = get_registry("datasets").get(name)
    try:
        # data_root only when given: an explicit argument would override a gin binding.
        return factory(data_root=data_root) if data_root else factory()
    except DisbenchError as exc:
        raise _without_gin_note(exc) from None
    except (ValueError, TypeError) as exc:  # e.g. a gin-bound option the factory does not take
        raise DisbenchError(f"dataset {name!r}: {str(exc).splitlines()[0]}") from None


def _without_gin_note(exc: DisbenchError) -> DisbenchError:
    """The error a gin-configurable factory raised, without the "In call to
    configurable ..." line gin appends (its proxy keeps the original as context)."""
    original = exc.__context__
    if isinstance(original, DisbenchError) and str(exc).startswith(str(original)):
        return original
    return exc


def run_prepare(args) -> int:
    start = time.perf_counter()
    dataset = load_dataset(args.name, args.data_root)
    seconds = time.perf_counter() - start
    print(summary(dataset, seconds))
    return 0


def summary(dataset, seconds: float) -> str:
    shape = "x".join(str(s) for s in dataset.observation_shape)
    if dataset.has_factors:
        factors = ", ".join(f"{n} {s}" for n, s in zip(dataset.factor_names, dataset.factor_sizes))
    else:
        factors = "none"
    cache = dataset.info.get("cache") or "none"
    return (f"{dataset.name}: {len(dataset)} images {shape}; factors: {factors}; source: {dataset.source}; "
            f"{seconds:.1f} s; cache: {cache}")


def run_show(args) -> int:
    check_output_file(Path(args.out))
    dataset = load_dataset(args.name, args.data_root)
    path = draw_preview(dataset, args.out, np.random.default_rng(args.seed))
    print(f"{dataset.name}: preview written to {path}")
    return 0
