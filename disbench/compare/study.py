"""Studies as files: datasets × models, each with its own grid, × seeds.

A study file is TOML (``gin/studies/NAME.toml``, or any path)::

    description = "disentanglement_lib's unsupervised_study_v1"
    protocol = "dlib/{dataset}"       # each dataset's protocol: {dataset} is replaced
    datasets = ["dsprites_full", "shapes3d"]
    seeds = "0-49"                    # as --seeds

    [[model]]
    name = "betavae_h"
    grid = { "BetaVAEH.beta" = [1.0, 2.0, 4.0] }   # axes as --grid; their product
    [[model]]
    name = "betavae_b"
    grid = { "BetaVAEB.c_max" = [5.0, 10.0] }
    bindings = { "BetaVAEB.gamma" = 1000.0 }        # fixed for every point of this model

A study is a sweep per dataset, each in ``OUT/DATASET`` (one compare folder: its runs,
compare.json, tables and figures), whose grid points are each model's own: resumable,
idempotent, fusable and Ray-capable as any sweep. A model's grid and bindings are
checked as ``--grid`` axes are (a binding it never reads, or one that changes the
protocol, is refused before anything starts).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from ..config import gin_search_path, is_file
from ..errors import DisbenchError
from ..registry import check_name
from .plan import NO_POINT, GridPoint
from .sweep import BINDING, grid_points

STUDY_KEYS = {"description", "protocol", "datasets", "seeds", "model"}
MODEL_KEYS = {"name", "grid", "bindings"}


@dataclass(frozen=True)
class StudyModel:
    """One model of a study: its grid (may be empty: one point) and fixed bindings."""

    name: str
    grid: dict = field(default_factory=dict)
    bindings: dict = field(default_factory=dict)

    @property
    def points(self) -> list[GridPoint]:
        return grid_points(self.grid) if self.grid else [NO_POINT]


@dataclass(frozen=True)
class Study:
    name: str
    path: Path
    description: str
    protocol: str
    datasets: tuple[str, ...]
    seeds: str
    models: tuple[StudyModel, ...]

    def protocol_for(self, dataset: str) -> str:
        return self.protocol.replace("{dataset}", dataset)

    def configurations(self) -> list[tuple[str, GridPoint]]:
        """Every (model, grid point): the study's model configurations."""
        return [(m.name, point) for m in self.models for point in m.points]


def find_study(name_or_path: str) -> Path:
    """A study file: a path, or a name in the gin folders' ``studies/``."""
    path = Path(name_or_path)
    if path.suffix == ".toml":
        if not is_file(path):
            raise DisbenchError(f"study file {name_or_path} does not exist")
        return path
    if path.parts and not path.is_absolute() and ".." not in path.parts:
        for folder in gin_search_path():
            if is_file(candidate := folder / "studies" / f"{name_or_path}.toml"):
                return candidate
    known = sorted({p.stem for folder in gin_search_path() for p in (folder / "studies").glob("*.toml")})
    raise DisbenchError(f"unknown study {name_or_path!r}; known: {', '.join(known) or '(none)'} "
                        "(or give the path of a .toml file)")


def load_study(name_or_path: str) -> Study:
    path = find_study(name_or_path)
    try:
        data = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise DisbenchError(f"study file {path}: not valid TOML ({exc})") from None
    where = f"study file {path}"
    _only(data, STUDY_KEYS, where)
    protocol = _string(data, "protocol", where)
    datasets = data.get("datasets")
    if not isinstance(datasets, list) or not datasets or not all(isinstance(d, str) and d for d in datasets):
        raise DisbenchError(f"{where}: 'datasets' must be a non-empty list of names")
    if len(set(datasets)) != len(datasets):
        raise DisbenchError(f"{where}: a dataset is listed twice in 'datasets'")
    for dataset in datasets:
        try:
            check_name("dataset", dataset)  # each names a folder of the study's output
        except DisbenchError as exc:
            raise DisbenchError(f"{where}: {exc}") from None
    if len(datasets) > 1 and "{dataset}" not in protocol:
        raise DisbenchError(f"{where}: 'protocol' must contain {{dataset}} when several datasets are listed")
    seeds = data.get("seeds", "0")
    if not isinstance(seeds, str):
        raise DisbenchError(f"{where}: 'seeds' must be a string as --seeds takes it, e.g. \"0-49\"")
    entries = data.get("model")
    if not isinstance(entries, list) or not entries:
        raise DisbenchError(f"{where}: no [[model]] tables")
    models = tuple(_model(entry, f"{where}, [[model]] {i + 1}") for i, entry in enumerate(entries))
    names = [m.name for m in models]
    if len(set(names)) != len(names):
        raise DisbenchError(f"{where}: a model is listed twice; give one [[model]] per model, its grid the "
                            "product of its axes")
    return Study(path.stem, path, str(data.get("description", "")), protocol, tuple(datasets), seeds, models)


def _model(entry, where: str) -> StudyModel:
    if not isinstance(entry, dict):
        raise DisbenchError(f"{where}: expected a table")
    _only(entry, MODEL_KEYS, where)
    name = _string(entry, "name", where)
    grid, bindings = (entry.get(key, {}) for key in ("grid", "bindings"))
    for key, table in (("grid", grid), ("bindings", bindings)):
        if not isinstance(table, dict):
            raise DisbenchError(f"{where}: '{key}' must be a table of 'Configurable.parameter' keys")
        for binding in table:
            if not BINDING.fullmatch(binding):
                raise DisbenchError(f"{where}: {key} key {binding!r} is not 'Configurable.parameter'")
    for binding, values in grid.items():
        if not isinstance(values, list) or not values:
            raise DisbenchError(f"{where}: grid {binding!r} must be a non-empty list of values")
        if any(a == b for i, a in enumerate(values) for b in values[i + 1:]):
            raise DisbenchError(f"{where}: grid {binding!r} lists a value twice")
    if set(grid) & set(bindings):
        raise DisbenchError(f"{where}: {sorted(set(grid) & set(bindings))} is both swept and fixed")
    return StudyModel(name, dict(grid), dict(bindings))


def _only(table: dict, allowed: set, where: str) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise DisbenchError(f"{where}: unknown key(s) {', '.join(unknown)}; expected {', '.join(sorted(allowed))}")


def _string(table: dict, key: str, where: str) -> str:
    value = table.get(key)
    if not isinstance(value, str) or not value:
        raise DisbenchError(f"{where}: '{key}' must be a non-empty string")
    return value
