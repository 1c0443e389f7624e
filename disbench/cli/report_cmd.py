"""``disbench report``: redraw tables and figures from saved results (no training)."""

from __future__ import annotations

import sys
from pathlib import Path

from ..builders import resolve_device
from ..compare.manifest import COMPARE_NAME
from ..compare.plan import RUNS_FOLDER
from ..compare.report import FIGURES_FOLDER, write_compare_report
from ..errors import DisbenchError
from ..figures import draw_figures
from ..runner import check_output_dir
from ..runs import RESULTS_NAME, load_results
from .common import add_device_option, add_progress_option, add_same_execution_option


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "report", help="redraw tables and figures of a compare or run directory",
        description="A compare directory gets table.md, table.csv and figures/; a run directory gets its own "
                    "figures (recon, β, per-latent KL, traversal, metric curves). Nothing is trained.")
    p.add_argument("path", help="a directory written by `disbench compare` or `disbench train`")
    p.add_argument("--out", help="where to write (default: PATH itself; figures go to OUT/figures)")
    p.add_argument("--image-index", type=int, help="dataset index of the traversal's input image "
                                                   "(default: a fixed seeded draw)")
    add_device_option(p)
    add_same_execution_option(p)
    add_progress_option(p)
    p.set_defaults(func=run_report)


def run_report(args) -> int:
    path = Path(args.path)
    out = Path(args.out) if args.out else path
    check_output_dir(out)
    device = resolve_device(args.device)
    progress = False if args.no_progress else None
    if (path / COMPARE_NAME).is_file() or (path / RUNS_FOLDER).is_dir():
        report = write_compare_report(path, out, device=device, image_index=args.image_index, progress=progress,
                                      same_execution=args.same_execution)
        written, notes = report.tables + report.figures, report.notes
    elif (path / RESULTS_NAME).is_file():
        results = load_results(path)
        drawn = draw_figures({results.get("model") or path.name: [path]}, out / FIGURES_FOLDER, device=device,
                             image_index=args.image_index, progress=progress)
        written, notes = drawn.written, drawn.notes
    else:
        raise DisbenchError(f"{path} is neither a compare directory ({COMPARE_NAME}, {RUNS_FOLDER}/) "
                            f"nor a run directory ({RESULTS_NAME})")
    for note in notes:
        print(f"report: not drawn: {note}", file=sys.stderr)
    print("\n".join(str(p) for p in written) or "nothing to draw")
    return 0
