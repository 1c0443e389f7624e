"""System identification of the KL plant from logged runs (paper appendix C.1, docs/stability.md).

* ``a`` from an open-loop (constant-β) run: the plant ``y(t) - y(t-1) + a·y(t) = a·C0``
  from ``y(0) = 0`` rises as ``C0·(1 - exp(-a·t))`` (paper Eq. 32-33), so ``a ≈ 1/t*`` where
  the KL first reaches 63.2 % of its converged value C0, and, using every logged point, a
  least-squares fit of ``C0·(1 - exp(-a·t))``.
* ``g(β) = A·exp(-b·β)`` fitted to (β, converged KL) pairs of constant-β runs, so
  ``g'(β) = -A·b·exp(-b·β)`` (paper Eq. 30-31, 34).

"Converged" = the mean over the last ``tail`` fraction (default 20 %) of a run's logged
steps, at least one point. The operating point β* of a closed-loop run is the mean β over
the same tail.
"""

from __future__ import annotations

import json
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from disbench.errors import DisbenchError
from disbench.runs import read_results

RISE_FRACTION = 1 - math.exp(-1)  # 63.2 %: y(1/a) = C0·(1 - e⁻¹)
DEFAULT_TAIL = 0.2


@dataclass
class RunLog:
    """What identification needs from one run directory."""

    path: Path
    results: dict
    steps: np.ndarray
    kl: np.ndarray
    beta: np.ndarray | None  # None when some logged step has no "beta"

    @property
    def scheduler(self) -> dict:
        return self.results.get("scheduler") or {}

    @property
    def is_open_loop(self) -> bool:
        return self.scheduler.get("name") == "constant"

    @property
    def is_closed_loop(self) -> bool:
        sched = self.scheduler
        return not self.is_open_loop and "kp" in sched and "ki" in sched

    @property
    def constant_beta(self) -> float:
        if "beta" not in self.scheduler:
            raise DisbenchError(f"{self.path}: open-loop run without scheduler.beta in results.json")
        return float(self.scheduler["beta"])


def load_run(path) -> RunLog:
    """Read RUN_DIR/results.json and the (step, kl, beta) columns of RUN_DIR/scalars.jsonl."""
    path = Path(path)
    if not path.is_dir():
        raise DisbenchError(f"run directory not found: {path}")
    results_path, scalars_path = path / "results.json", path / "scalars.jsonl"
    for needed in (results_path, scalars_path):
        if not needed.is_file():
            raise DisbenchError(f"{path}: no {needed.name} (not a disbench run directory?)")
    results = read_results(path)
    records = []
    with open(scalars_path) as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError:
                raise DisbenchError(f"{scalars_path}:{lineno}: not a JSON object") from None
            if "step" in row and "kl" in row:  # other rows (e.g. evaluation) are skipped
                records.append(row)
    if len(records) < 2:
        raise DisbenchError(f"{scalars_path}: needs logged 'step' and 'kl' scalars "
                            f"(found {len(records)} such rows)")
    records.sort(key=lambda r: r["step"])
    steps = np.array([float(r["step"]) for r in records])
    kl = np.array([float(r["kl"]) for r in records])
    beta = (np.array([float(r["beta"]) for r in records])
            if all("beta" in r for r in records) else None)
    if not (np.isfinite(kl).all() and np.isfinite(steps).all()):
        raise DisbenchError(f"{scalars_path}: 'kl' or 'step' has NaN/Inf values")
    return RunLog(path=path, results=results, steps=steps, kl=kl, beta=beta)


def tail_mean(values: np.ndarray, tail: float = DEFAULT_TAIL) -> float:
    """Mean over the last ``tail`` fraction of the values (at least one)."""
    if not 0 < tail <= 1:
        raise DisbenchError(f"the converged fraction must be in (0, 1], got {tail}")
    n = max(1, int(round(len(values) * tail)))
    return float(np.mean(values[-n:]))


# ---------------------------------------------------------------- a: open-loop response

@dataclass
class RiseFit:
    """``a`` of one open-loop run, both ways (paper appendix C.1)."""

    run: str
    beta: float
    c0_converged: float  # tail mean: the "final value" of the rise-time rule
    t_star: float  # first (interpolated) step where KL reaches 63.2 % of c0_converged
    a_rise_time: float  # 1 / t_star
    a_least_squares: float
    c0_least_squares: float


def rise_time(steps: np.ndarray, kl: np.ndarray, final: float) -> float:
    """First time the KL reaches 63.2 % of ``final``, linearly interpolated between logs.

    The model starts at y(0) = 0 (paper Eq. 33), so (0, 0) is prepended: a rise within
    the first logging interval still interpolates. Raises DisbenchError if the curve does
    not rise from below the 63.2 % level.
    """
    level = RISE_FRACTION * final
    if not final > 0 or kl[0] >= level:
        raise DisbenchError(
            f"the KL never rises: its first logged value ({kl[0]:.4g} at step {steps[0]:g}) "
            f"is not below 63.2 % of its converged value ({final:.4g}); a needs an open-loop "
            "run logged from early steps whose KL rises toward its final value")
    t = np.concatenate([[0.0], steps])
    y = np.concatenate([[0.0], kl])
    i = int(np.argmax(y >= level))  # exists: the tail mean is <= some tail value
    return float(t[i - 1] + (level - y[i - 1]) * (t[i] - t[i - 1]) / (y[i] - y[i - 1]))


def fit_rise(run: RunLog, tail: float = DEFAULT_TAIL) -> RiseFit:
    from scipy.optimize import curve_fit

    final = tail_mean(run.kl, tail)
    t_star = rise_time(run.steps, run.kl, final)

    def model(t, c0, log_a):  # log a keeps a > 0 and the problem well scaled
        return c0 * (1 - np.exp(-np.exp(log_a) * t))

    try:
        (c0, log_a), _ = curve_fit(model, run.steps, run.kl, p0=(final, -math.log(t_star)),
                                   maxfev=10_000)
    except (RuntimeError, ValueError) as exc:
        raise DisbenchError(f"{run.path}: least-squares fit of C0·(1 - exp(-a·t)) failed ({exc})") \
            from None
    return RiseFit(run=str(run.path), beta=run.constant_beta, c0_converged=final,
                   t_star=t_star, a_rise_time=1 / t_star, a_least_squares=float(math.exp(log_a)),
                   c0_least_squares=float(c0))


# ---------------------------------------------------------------- g(β) = A·exp(-b·β)

@dataclass
class KLMapFit:
    """``g(β) = A·exp(-b·β)`` through (β, converged KL) pairs (paper Eq. 30)."""

    betas: list[float]
    kls: list[float]
    A: float
    b: float

    def g(self, beta):
        return self.A * np.exp(-self.b * np.asarray(beta, dtype=float))

    def g_prime(self, beta) -> float:
        return float(-self.A * self.b * math.exp(-self.b * beta))


def fit_kl_map(betas, kls) -> KLMapFit:
    """Least squares in KL (as the paper's curve fit), started from a log-linear fit."""
    from scipy.optimize import OptimizeWarning, curve_fit

    betas, kls = np.asarray(betas, dtype=float), np.asarray(kls, dtype=float)
    if len(np.unique(betas)) < 2:
        raise DisbenchError(f"g(β) needs constant-β runs at 2 or more different β; got β = "
                            f"{sorted(set(betas.tolist())) or 'none'}")
    if not (kls > 0).all():
        raise DisbenchError(f"g(β) = A·exp(-b·β) needs positive converged KLs; got {kls.tolist()}")
    slope, intercept = np.polyfit(betas, np.log(kls), 1)
    try:
        with warnings.catch_warnings():  # two points fit exactly: no covariance, no matter
            warnings.simplefilter("ignore", OptimizeWarning)
            (A, b), _ = curve_fit(lambda x, A, b: A * np.exp(-b * x), betas, kls,
                                  p0=(math.exp(intercept), -slope), maxfev=10_000)
    except (RuntimeError, ValueError) as exc:
        raise DisbenchError(f"fit of g(β) = A·exp(-b·β) failed ({exc})") from None
    return KLMapFit(betas=betas.tolist(), kls=kls.tolist(), A=float(A), b=float(b))


# ---------------------------------------------------------------- the whole identification

@dataclass
class OperatingPoint:
    """Gains and β* to analyse at; ``source`` says where each came from."""

    kp: float
    ki: float
    beta_star: float
    source: str


@dataclass
class Identification:
    runs: list[RunLog]  # all, in the order given
    open_loop: list[RunLog]  # the constant-β runs, aligned with ``rises``
    rises: list[RiseFit]
    kl_map: KLMapFit
    a_rise_time: float  # median over open-loop runs
    a_least_squares: float  # median over open-loop runs: the a used for the analysis
    operating_points: list[OperatingPoint] = field(default_factory=list)


def identify(run_dirs, kp=None, ki=None, beta_star=None, tail=DEFAULT_TAIL) -> Identification:
    """Identify (a, g) from the constant-β runs, and the operating point(s).

    One operating point per closed-loop run (scheduler with kp and ki; β* = tail mean of β),
    each overridden by ``kp``/``ki``/``beta_star`` where given; with no closed-loop run all
    three must be given.
    """
    runs = [load_run(p) for p in run_dirs]
    open_loop = [r for r in runs if r.is_open_loop]
    if not open_loop:
        raise DisbenchError("no open-loop run (results.json scheduler.name = 'constant') among "
                            "the run directories: a and g(β) are fitted from constant-β runs")
    rises = [fit_rise(r, tail) for r in open_loop]
    kl_map = fit_kl_map([r.constant_beta for r in open_loop],
                        [tail_mean(r.kl, tail) for r in open_loop])
    points = []
    for run in (r for r in runs if r.is_closed_loop):
        if beta_star is None and run.beta is None:
            raise DisbenchError(f"{run.path}: closed-loop run without logged 'beta' scalars "
                                "(needed for β*; or pass --beta-star)")
        points.append(OperatingPoint(
            kp=float(run.scheduler["kp"]) if kp is None else kp,
            ki=float(run.scheduler["ki"]) if ki is None else ki,
            beta_star=tail_mean(run.beta, tail) if beta_star is None else beta_star,
            source=str(run.path)))
    if not points:
        missing = [opt for opt, v in (("--kp", kp), ("--ki", ki), ("--beta-star", beta_star))
                   if v is None]
        if missing:
            raise DisbenchError(f"no closed-loop run (scheduler with kp and ki) among the run "
                                f"directories: pass {', '.join(missing)}")
        points.append(OperatingPoint(kp=kp, ki=ki, beta_star=beta_star, source="options"))
    return Identification(
        runs=runs, open_loop=open_loop, rises=rises, kl_map=kl_map,
        a_rise_time=float(np.median([r.a_rise_time for r in rises])),
        a_least_squares=float(np.median([r.a_least_squares for r in rises])),
        operating_points=points)
