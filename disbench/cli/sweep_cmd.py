"""``disbench sweep``: ``compare`` over a grid of gin bindings (see :mod:`disbench.compare.sweep`).

Exit status as ``disbench compare``: 0 when every run is complete and
evaluated, 1 when some run failed or did not finish, 2 for bad input
(nothing is trained).
"""

from __future__ import annotations

from ..compare.sweep import parse_grid
from .compare_cmd import add_execution_options, add_grid_options, plan_and_execute


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "sweep", help="compare over a grid of gin bindings (models × grid points × seeds)",
        description="Run every (model, grid point, seed) not yet complete in OUT/runs/MODEL/POINT/seedS, each an "
                    "ordinary run whose config.gin holds the point's bindings; then OUT/table.md and table.csv "
                    "(one row per model and grid point, mean ± std over seeds) and OUT/figures, with a "
                    "metric-vs-binding figure per grid axis. Re-running the same command does no finished work. "
                    "A binding that changes the protocol (Protocol.*, a dataset or metric setting), that does "
                    "not exist, or that a model never reads is refused before anything starts.")
    add_grid_options(p, "the sweep directory")
    p.add_argument("--grid", action="append", default=[], metavar="BINDING=V1,V2,...", required=True,
                   help="one grid axis, e.g. 'PIBetaScheduler.ki=0.005,0.01,0.02' (repeatable: the grid is the "
                        "product of the axes); values are Python literals, a bare word is a string")
    add_execution_options(p)
    p.set_defaults(func=run_sweep)


def run_sweep(args) -> int:
    grid = parse_grid(args.grid)
    return plan_and_execute(args, "sweep", grid, args.grid)
