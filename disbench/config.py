"""Gin configuration of a run: the protocol, the run settings, and parsing.

A **protocol** (``gin/protocols/NAME.gin``) fixes everything models are
compared under: dataset, architecture, batch, steps, optimizer, evaluation.
Its settings (with the dataset's and metrics' gin bindings) hash to the
**protocol fingerprint**; runs are only compared under one fingerprint.
A **run** adds the model and the seed.

Parse order (later bindings win): the model's defaults ``gin/models/MODEL.gin``,
the protocol, ``--gin_file`` files, ``--gin_param`` bindings, then the CLI's
own options (``--steps``, ``--dataset``, ``--seed``, ``--model``).
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import inspect
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import gin
from gin import config_parser

from .errors import DisbenchError
from .registry import get_registry, plugin_host

# Protocol fields that change how a run is carried out (at most its rounding: its execution,
# recorded in results.json, see disbench.execution), not what is compared.
NOT_FINGERPRINTED = ("data_root", "log_every", "checkpoint_every", "eval_every", "deterministic", "compile",
                     "image_every", "channels_last")
# Settings added after fingerprints were first recorded enter the fingerprint only when
# set away from their default, so that earlier runs keep theirs.
ADDED_LATER = {"precision": "fp32", "architecture": "conv64", "likelihood": "dataset"}
PRECISIONS = ("fp32", "bf16")
LIKELIHOODS = ("dataset", "bernoulli", "gaussian")  # 'dataset': the dataset's own (DatasetInfo.likelihood)
COMPILE_MODES = ("none", "compile", "cudagraph")
MAX_SEED = 2**32 - 1  # numpy's limit: the narrowest of the generators a run seeds (torch takes 2^64 - 1)
MAX_STEPS = 2**31 - 1  # a guard against a mistyped number; the paper's longest protocol is 1.5 M steps
# Bindings a resumed run may change (where the data lies, who watches it); any other change is refused.
CHANGEABLE_ON_RESUME = ("Protocol.data_root", "Run.loggers")


@gin.configurable
@dataclass(frozen=True)
class Protocol:
    """The settings every model in a comparison shares."""

    dataset: str = "dsprites_synth"
    data_root: str | None = None
    architecture: str = "conv64"  # a registered encoder/decoder (disbench.models.architecture)
    likelihood: str = "dataset"   # 'bernoulli' | 'gaussian' | 'dataset': the dataset's own
    latent_dim: int = 10
    batch_size: int = 128
    steps: int = 1_500_000
    lr: float = 1e-4
    adam_betas: tuple = (0.9, 0.99)
    metrics: tuple = ()          # registered metric names, evaluated at the end of training
    eval_every: int = 0          # also evaluate metrics every N steps (paper Fig. 6); 0: only at the end
    log_every: int = 100
    image_every: int = 0         # reconstructions and a traversal to the run's loggers every N steps; 0: none
    checkpoint_every: int = 5_000
    deterministic: bool = False  # deterministic kernels (see disbench.determinism)
    precision: str = "fp32"      # 'bf16': the encoder and decoder compute in bf16 (losses stay fp32)
    channels_last: bool = False  # every convolution NHWC (execution: rounding only)
    compile: str = "none"        # 'compile': torch.compile the step; 'cudagraph': and replay it as CUDA graphs

    def __post_init__(self):
        for name in ("latent_dim", "batch_size", "steps", "log_every", "checkpoint_every"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise DisbenchError(f"Protocol.{name} must be a positive integer, got {value!r}")
        if self.steps > MAX_STEPS:
            raise DisbenchError(f"Protocol.steps must be at most {MAX_STEPS:,} (2^31 - 1), got {self.steps:,}")
        for name in ("eval_every", "image_every"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise DisbenchError(f"Protocol.{name} must be an integer >= 0, got {value!r}")
        for name in ("deterministic", "channels_last"):
            if not isinstance(getattr(self, name), bool):
                raise DisbenchError(f"Protocol.{name} must be True or False, got {getattr(self, name)!r}")
        if self.likelihood not in LIKELIHOODS:
            raise DisbenchError(f"Protocol.likelihood must be one of {', '.join(LIKELIHOODS)}, "
                                f"got {self.likelihood!r}")
        if not isinstance(self.architecture, str) or not self.architecture:
            raise DisbenchError(f"Protocol.architecture must be a registered architecture's name, "
                                f"got {self.architecture!r}")
        if self.precision not in PRECISIONS:
            raise DisbenchError(f"Protocol.precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if self.compile not in COMPILE_MODES:
            raise DisbenchError(f"Protocol.compile must be one of {', '.join(COMPILE_MODES)}, got {self.compile!r}")
        if not self.lr > 0:
            raise DisbenchError(f"Protocol.lr must be > 0, got {self.lr!r}")
        if len(self.adam_betas) != 2 or not all(0 <= b < 1 for b in self.adam_betas):
            raise DisbenchError(f"Protocol.adam_betas must be two numbers in [0, 1), got {self.adam_betas!r}")
        object.__setattr__(self, "adam_betas", tuple(float(b) for b in self.adam_betas))
        object.__setattr__(self, "metrics", tuple(self.metrics))

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


@gin.configurable
@dataclass(frozen=True)
class Run:
    """What varies between runs of one protocol: the model and the seed (and who
    watches the run: its loggers, which change nothing in it and are not part of
    the protocol fingerprint)."""

    model: str | None = None
    seed: int = 0
    scheduler: str | None = None  # a registered β scheduler overriding the model's default
    loggers: tuple = ()           # registered logger names (--logger NAME), e.g. ('tensorboard',)

    def __post_init__(self):
        if not self.model:
            raise DisbenchError("no model chosen: pass --model NAME or bind Run.model = 'NAME'")
        if not isinstance(self.seed, int) or isinstance(self.seed, bool) or not 0 <= self.seed <= MAX_SEED:
            raise DisbenchError(f"Run.seed must be an integer from 0 to {MAX_SEED:,} (2^32 - 1), got {self.seed!r}")
        loggers = (self.loggers,) if isinstance(self.loggers, str) else self.loggers
        if not isinstance(loggers, (tuple, list)) or not all(isinstance(n, str) and n for n in loggers):
            raise DisbenchError(f"Run.loggers must be a list of logger names, e.g. ['tensorboard'], "
                                f"got {self.loggers!r}")
        object.__setattr__(self, "loggers", tuple(dict.fromkeys(loggers)))  # in order, each once


# -- locating gin files -------------------------------------------------------

def gin_search_path() -> list[Path]:
    """Folders searched for ``protocols/NAME.gin`` and ``models/NAME.gin``."""
    path = [Path(p) for p in os.environ.get("DISBENCH_GIN_PATH", "").split(os.pathsep) if p]
    path.append(Path.cwd() / "gin")
    path.append(Path(__file__).resolve().parent.parent / "gin")  # a source checkout
    path.append(Path(sys.prefix) / "share" / "disbench" / "gin")  # an installed copy
    seen, out = set(), []
    for p in path:
        if p.resolve() not in seen:
            seen.add(p.resolve())
            out.append(p)
    return out


def available(kind: str) -> list[str]:
    """The names of ``kind``'s gin files: ``NAME`` for ``kind/NAME.gin``, ``dlib/NAME`` for one in a subfolder."""
    names = set()
    for folder in gin_search_path():
        names.update(p.relative_to(folder / kind).with_suffix("").as_posix() for p in (folder / kind).rglob("*.gin"))
    return sorted(names)


def _is_gin_name(name: str) -> bool:
    """A name of a gin file in the search path: relative, no '..' (it must not leave the folder)."""
    parts = Path(name).parts
    return bool(parts) and not Path(name).is_absolute() and ".." not in parts


def find_gin(kind: str, name: str) -> Path | None:
    for folder in gin_search_path():
        candidate = folder / kind / f"{name}.gin"
        if is_file(candidate):
            return candidate
    return None


def is_file(path: Path) -> bool:
    """Whether ``path`` is a file; False for a name the file system cannot hold (too long)."""
    try:
        return path.is_file()
    except OSError:
        return False


def resolve_protocol(name_or_file: str) -> Path:
    """A protocol name (``gin/protocols/NAME.gin``, ``dlib/NAME`` for one in a subfolder)
    or a path to a .gin file."""
    as_path = Path(name_or_file)
    if as_path.suffix == ".gin":
        if not is_file(as_path):
            raise DisbenchError(f"protocol file {name_or_file} does not exist")
        return as_path
    found = find_gin("protocols", name_or_file) if _is_gin_name(name_or_file) else None
    if found is None and is_file(as_path):
        return as_path
    if found is None:
        known = available("protocols")
        msg = f"unknown protocol {name_or_file!r}; known: {', '.join(known) or '(none)'}"
        close = difflib.get_close_matches(name_or_file, known, n=1)
        raise DisbenchError(msg + (f" (did you mean {close[0]!r}?)" if close else ""))
    return found


# -- parsing --------------------------------------------------------------------

@dataclass
class ConfigSources:
    """Everything a run's configuration is parsed from, in order."""

    protocol: str | None = None
    gin_files: Sequence[str] = ()
    gin_params: Sequence[str] = ()
    overrides: dict = dataclasses.field(default_factory=dict)  # 'Configurable.param' -> value


def parse_sources(sources: ConfigSources, *, model: str | None = None) -> str:
    """Parse a run's configuration into gin's global state; return the model name.

    The plugins are loaded first: their configurables must exist.
    """
    plugin_host()
    files: list[Path] = []
    if sources.protocol:
        files.append(resolve_protocol(sources.protocol))
    for f in sources.gin_files:
        if not Path(f).is_file():
            raise DisbenchError(f"gin file {f} does not exist")
        files.append(Path(f))

    def parse_all(model_defaults: Path | None) -> None:
        gin.clear_config()
        _NOTES.clear()
        if model_defaults is not None:
            _parse_file(model_defaults)
        for f in files:
            _parse_file(f)
        for binding in sources.gin_params:
            _parse_text(binding, f"--gin_param {binding!r}")
        for key, value in sources.overrides.items():
            if value is not None:
                gin.bind_parameter(key, value)

    parse_all(None)
    chosen = model or _query("Run.model")
    if chosen:
        gin.bind_parameter("Run.model", chosen)
        defaults = find_gin("models", chosen)
        if defaults is not None:
            parse_all(defaults)
            gin.bind_parameter("Run.model", chosen)
    return chosen


def parse_saved_config(path: Path) -> None:
    """Re-create a run's configuration from its saved ``config.gin``.

    A run folder is data, not code: a config that imports or includes
    anything is refused (gin would execute the import).
    """
    plugin_host()  # the plugins' configurables must exist
    gin.clear_config()
    _NOTES.clear()
    _parse_file(path)


def config_notes() -> list[str]:
    """What the last parse left out (bindings and metrics of absent plugins)."""
    return list(_NOTES)


_NOTES: list[str] = []


def current_bindings() -> dict[str, str]:
    """Every gin binding now in force, as ``{'Scope/Name.param': repr(value)}``."""
    out = {}
    for (scope, selector), params in gin.config._CONFIG.items():  # gin has no public listing
        name = selector.split(".")[-1]
        if name == "gin.macro" or selector.endswith("gin.macro"):
            continue
        for arg, value in params.items():
            out[f"{scope + '/' if scope else ''}{name}.{arg}"] = repr(value)
    return out


def default_binding(key: str) -> str | None:
    """repr of the default value of ``'Name.param'``'s parameter (None if unknown):
    binding a parameter to its default configures the same as not binding it."""
    selector, _, param = key.rpartition("/")[2].rpartition(".")
    configurable = gin.config._REGISTRY.get_match(selector)  # gin has no public lookup
    if configurable is None:
        return None
    fn = configurable.wrapped
    try:
        parameter = inspect.signature(fn.__init__ if inspect.isclass(fn) else fn).parameters.get(param)
    except (TypeError, ValueError):
        return None
    if parameter is None or parameter.default is inspect.Parameter.empty:
        return None
    return repr(parameter.default)


def _query(key: str):
    try:
        return gin.query_parameter(key)
    except ValueError:
        return None


def _parse_file(path: Path) -> None:
    try:
        text = Path(path).read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise DisbenchError(f"cannot read gin file {path}: {getattr(exc, 'strerror', None) or exc}") from None
    _parse_text(text, f"gin file {path}")


def _parse_text(text: str, where: str) -> None:
    """Parse gin ``text`` (from ``where``, for messages).

    Imports and includes are refused: every configuration ends up in a run's
    ``config.gin``, which evaluate, resume and report parse again, and a run
    folder must not be able to run code. Bindings of configurables nobody
    registered are an error, except while a plugin is disabled or failed to
    load: then they may be that plugin's, and they are skipped with a note
    (:func:`config_notes`) that the run records.
    """
    try:
        statements = list(config_parser.ConfigParser(text, gin.config.ParserDelegate(skip_unknown=True)))
    except Exception as exc:
        raise DisbenchError(f"{where}: {_explain(exc)}") from None
    for statement in statements:
        if isinstance(statement, (config_parser.ImportStatement, config_parser.IncludeStatement)):
            what = (f"imports module {statement.module!r}" if isinstance(statement, config_parser.ImportStatement)
                    else f"includes {statement.filename!r}")
            raise DisbenchError(
                f"{where} {what} (line {statement.location.line_num}): gin imports and includes are refused, "
                "since a run's config is re-read as data; configurables come from disbench plugins"
            )
    skip: dict[str, int] = {}
    absent = absent_plugins()
    if absent:
        for statement in statements:
            if isinstance(statement, config_parser.BindingStatement) and statement.arg_name \
                    and not gin.config._REGISTRY.matching_selectors(statement.selector):
                skip[statement.selector] = skip.get(statement.selector, 0) + 1
        if skip:
            _NOTES.append(f"{where}: skipped {sum(skip.values())} binding(s) of {', '.join(skip)} (no loaded "
                          f"plugin registers them; not loaded: {', '.join(absent)})")
    try:
        gin.parse_config(text, skip_unknown=sorted(skip) or False)
    except Exception as exc:
        raise DisbenchError(f"{where}: {_explain(exc)}") from None


def absent_plugins() -> list[str]:
    """Plugins that are installed but not loaded, e.g. ``['dvae (disabled)']``."""
    return [f"{p.name} ({'disabled' if p.disabled else 'failed to load'})"
            for p in plugin_host().plugins.values() if p.disabled or p.error]


def _explain(exc: Exception) -> str:
    """gin's message, first line, plus the closest known configurable if it names one."""
    text = str(exc).strip() or type(exc).__name__
    first = text.splitlines()[0]
    for line in text.splitlines()[1:]:
        if line.strip().startswith("In ") and "line" in line:
            first += f" ({line.strip()[3:]})"
            break
    if first.startswith("No configurable matching"):
        wanted = first.split("'")[1] if "'" in first else ""
        known = known_configurables()
        close = difflib.get_close_matches(wanted, known, n=1)
        first += f" Known configurables include: {', '.join(known[:40])}"
        if close:
            first += f" (did you mean {close[0]!r}?)"
        first += ". Is the plugin that provides it loaded? (see `disbench plugins`)"
    elif isinstance(exc, SyntaxError) or "EOF" in first:
        first = f"syntax error: {first}"
    return first


def known_configurables() -> list[str]:
    # gin has no public listing; its registry's keys are the complete selectors.
    registry = getattr(gin.config, "_REGISTRY", None)
    selectors = getattr(registry, "_selector_map", {}) or {}
    return sorted({s.split(".")[-1] for s in selectors})


# -- building ---------------------------------------------------------------------

def build_protocol() -> Protocol:
    """The configured protocol; metric names no loaded plugin registers are left
    out (with a note) while some plugin is absent, and are an error otherwise."""
    protocol = _call_configurable(Protocol)
    absent = absent_plugins()
    if absent:
        registry = get_registry("metrics")
        missing = [m for m in protocol.metrics if m not in registry]
        if missing:
            note = (f"Protocol.metrics: skipped {', '.join(map(repr, missing))} (not registered; "
                    f"not loaded: {', '.join(absent)})")
            if note not in _NOTES:
                _NOTES.append(note)
            protocol = dataclasses.replace(protocol, metrics=tuple(m for m in protocol.metrics if m not in missing))
    return protocol


def build_run() -> Run:
    return _call_configurable(Run)


def _call_configurable(cls):
    try:
        return cls()
    except DisbenchError:
        raise
    except (TypeError, ValueError) as exc:
        raise DisbenchError(f"{cls.__name__}: {exc}") from None


def fingerprint(protocol: Protocol, extra: dict | None = None) -> str:
    """Hash of the protocol-owned settings (and ``extra``: dataset/metric bindings)."""
    payload = {k: v for k, v in protocol.as_dict().items()
               if k not in NOT_FINGERPRINTED and not (k in ADDED_LATER and v == ADDED_LATER[k])}
    payload["extra"] = extra or {}
    blob = json.dumps(payload, sort_keys=True, default=repr)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def bindings_of(objs: Iterable) -> dict:
    """gin bindings currently set for each configurable in ``objs`` (by name)."""
    out = {}
    for obj in objs:
        try:
            bound = gin.get_bindings(obj)
        except (ValueError, TypeError, KeyError):
            continue
        if bound:
            name = getattr(obj, "__name__", repr(obj))
            out[name] = {k: repr(v) for k, v in sorted(bound.items())}
    return out
