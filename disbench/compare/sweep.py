"""``disbench sweep``: a grid of gin bindings × models × seeds, one ordinary run per point.

``--grid 'PIBetaScheduler.ki=0.005,0.01,0.02' --grid 'HybridAnnealing.stop=14,20'``
gives 3 × 2 grid points; each (model, point, seed) is a run in
``DIR/runs/MODEL/ki=0.005,stop=14/seedS`` whose config.gin holds the point's
bindings. A point's folder name uses each binding's parameter name (``ki``),
or the whole binding when two axes share a parameter name.

Values are Python literals (``0.01``, ``(0.9, 0.99)``, ``'latch'``, ``True``);
a bare word (``latch``) is a string. Commas separate values, so a tuple value
cannot be swept from the command line.

A grid axis must be something a run may vary within one protocol. Refused
before anything starts, each with the reason:

* an unknown configurable or parameter (gin's own check);
* a ``Protocol.*`` binding, or any binding that changes the protocol fingerprint
  (a dataset's or a metric's settings): runs under different protocols are not
  comparable in one table;
* ``Run.seed`` / ``Run.model`` (that is ``--seeds`` / ``--models``) and ``Run.loggers``;
* a binding a model in ``--models`` never uses (``PIBetaScheduler.ki`` for
  ``vae``): its grid points would be copies of one run.
"""

from __future__ import annotations

import ast
import hashlib
import itertools
import re
from dataclasses import replace

import gin

from ..builders import check_run_config, run_fingerprint
from ..config import ConfigSources, parse_sources
from ..errors import DisbenchError
from .plan import GridPoint

BINDING = re.compile(r"(?:[A-Za-z_][\w.]*/)?[A-Za-z_][\w.]*\.[A-Za-z_]\w*")  # [scope/]Configurable.param
BARE_WORD = re.compile(r"[A-Za-z_][\w\-]*")
RUN_AXES = {"Run.seed": "--seeds", "Run.model": "--models", "Run.loggers": "--logger"}


def parse_grid(options: list[str]) -> dict[str, list]:
    """``['A.b=1,2', ...]`` -> ``{'A.b': [1, 2], ...}`` (axes and values in the order given)."""
    if not options:
        raise DisbenchError("sweep needs at least one --grid 'Configurable.parameter=v1,v2,...'")
    grid: dict[str, list] = {}
    for text in options:
        name, sep, listed = text.partition("=")
        name = name.strip()
        if not sep or not BINDING.fullmatch(name):
            raise DisbenchError(f"--grid {text!r}: expected 'Configurable.parameter=v1,v2,...', "
                                "e.g. 'PIBetaScheduler.ki=0.005,0.01'")
        if name in grid:
            raise DisbenchError(f"--grid {name} is given twice: list all its values in one --grid")
        values = [_value(v.strip(), text) for v in listed.split(",")]
        if any(a == b for i, a in enumerate(values) for b in values[i + 1:]):  # 1 and 1.0 too
            raise DisbenchError(f"--grid {text!r}: a value is listed twice")
        grid[name] = values
    return grid


def _value(text: str, option: str):
    if not text:
        raise DisbenchError(f"--grid {option!r}: an empty value")
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        if BARE_WORD.fullmatch(text):
            return text
        raise DisbenchError(f"--grid {option!r}: {text!r} is not a value (a number, a quoted string, True/False, "
                            "None, or a bare word)") from None


def format_value(value) -> str:
    return value if isinstance(value, str) else repr(value)


def grid_points(grid: dict[str, list]) -> list[GridPoint]:
    """Every combination of the axes' values, the last axis varying fastest."""
    shorts = [name.rsplit(".", 1)[1] for name in grid]
    names = [short if shorts.count(short) == 1 else name.replace("/", "_") for name, short in zip(grid, shorts)]
    points = []
    for values in itertools.product(*grid.values()):
        text = ", ".join(f"{n}={format_value(v)}" for n, v in zip(names, values))
        folder = folder_name(",".join(f"{n}={_short(format_value(v))}" for n, v in zip(names, values)))
        points.append(GridPoint(folder, tuple(zip(grid, values)), text if text != folder.replace(",", ", ") else ""))
    seen = {}
    for point in points:
        if point.name in seen:
            raise DisbenchError(f"--grid: the points {dict(seen[point.name].bindings)} and {dict(point.bindings)} "
                                f"would share the folder {point.name!r}; give values that differ in letters "
                                "or digits")
        seen[point.name] = point
    return points


MAX_VALUE_CHARS = 24    # a value longer than this is shortened in folder names
MAX_POINT_CHARS = 120   # and a whole point's folder name longer than this, too


def _safe(text: str) -> str:
    return re.sub(r"[^\w.+\-]", "_", text)


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:10]


def _short(value: str) -> str:
    """A value as it appears in a folder name: made safe, and a long one cut to a
    stable prefix + digest of the whole (the full value stays in config.gin and the tables)."""
    safe = _safe(value)
    return safe if len(safe) <= MAX_VALUE_CHARS else f"{safe[:12]}~{_digest(value)}"


def folder_name(name: str) -> str:
    """A grid point's folder: its name, or a stable shortened one when it is too long."""
    return name if len(name) <= MAX_POINT_CHARS else f"{name[:MAX_POINT_CHARS - 12]}~{_digest(name)}"


def check_grid(grid: dict[str, list], models: list[str], sources: ConfigSources) -> None:
    """Refuse an axis that is not a per-run binding (see the module docstring)."""
    for name in grid:
        if name in RUN_AXES:
            raise DisbenchError(f"--grid {name}: use {RUN_AXES[name]} for that, not a grid axis")
        if name.split("/")[-1].startswith("Protocol."):
            raise DisbenchError(f"--grid {name}: a protocol-level binding; it changes the protocol fingerprint, "
                                "and runs under different protocols do not belong in one table — run one sweep "
                                "per protocol (--protocol, --gin_param) instead")
    for model in models:
        parse_sources(sources, model=model)
        protocol, _, info = check_run_config()
        base = run_fingerprint(protocol, info.num_images)
        for name, values in grid.items():
            for value in values:
                try:
                    parse_sources(replace(sources, overrides={**sources.overrides, name: value}), model=model)
                    protocol, _, info = check_run_config()
                except (ValueError, TypeError, DisbenchError) as exc:
                    raise DisbenchError(f"--grid {name}={format_value(value)} (model {model}): {exc}") from None
                if run_fingerprint(protocol, info.num_images) != base:
                    raise DisbenchError(f"--grid {name}: changes the protocol fingerprint (a dataset or metric "
                                        "setting), so its runs would not be comparable in one table — run one "
                                        "sweep per value instead")
                if not _used(name):
                    raise DisbenchError(f"--grid {name}: model {model} does not use it (its runs would not "
                                        "differ); sweep it with the models that do")


def _used(name: str) -> bool:
    """Whether the last built run read the binding (gin's operative configuration)."""
    scope, _, binding = name.rpartition("/")
    configurable, parameter = binding.rsplit(".", 1)
    key = f"{scope}/{configurable}" if scope else configurable
    return any(line.startswith(f"{key}.{parameter} =") for line in gin.operative_config_str().splitlines())
