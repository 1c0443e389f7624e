"""Options and output shared by several commands."""

from __future__ import annotations

from ..errors import DisbenchError
from ..paths import DATA_ENV

# What disbench.paths.data_root falls back to when no folder is given.
DATA_ROOT_DEFAULT = f"${DATA_ENV} if set, else ~/disbench_data"


def add_device_option(parser) -> None:
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default: auto)")


def add_threads_option(parser, default: str) -> None:
    parser.add_argument("--threads", type=int, metavar="N",
                        help=f"CPU threads torch uses for each run (recorded with it; default: {default})")


def add_same_execution_option(parser) -> None:
    parser.add_argument("--same-execution", action="store_true",
                        help="refuse to aggregate the runs of one table row when they were executed differently "
                             "(threads, fused group size, layout, device, CPU kernels, compile mode, backend, torch)")


def add_logger_option(parser) -> None:
    parser.add_argument("--logger", action="append", default=[], metavar="NAME",
                        help="watch each run with a registered logger, e.g. tensorboard (repeatable; sets "
                             "Run.loggers; `disbench plugins` lists the loggers)")


def add_progress_option(parser) -> None:
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def comma_list(text: str | None) -> list[str] | None:
    if text is None:
        return None
    return [t.strip() for t in text.split(",") if t.strip()]


def option_list(text: str | None, option: str, what: str = "names") -> list[str] | None:
    """A comma-separated option's items; None when the option was not given.

    Given but empty (``''``, ``' , '``) is a user error, not "use the default".
    """
    items = comma_list(text)
    if items is not None and not items:
        raise DisbenchError(f"{option} is empty: give comma-separated {what} or leave it out")
    return items


def format_metrics(metrics: dict) -> str:
    lines = []
    for name, result in sorted(metrics.items()):
        parts = ", ".join(f"{k} {v:.3f}" for k, v in (result.get("per_factor") or {}).items())
        lines.append(f"  {name}: {result['score']:.4f}" + (f"  ({parts})" if parts else ""))
    return "\n".join(lines)
