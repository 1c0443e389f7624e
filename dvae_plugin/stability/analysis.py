"""Local stability of DynamicVAE's PI-controlled KL loop (paper §3.1, Theorem 3.1, app. C).

Plant (paper Eq. 13-14, docs/stability.md): ``y(t) = y(t-1)/(1+a) + a/(1+a)·g(β(t))`` with
``g' < 0``; controller: the incremental PI of docs/controllers.md (the positional PI of docs/controllers.md is
the same difference equation away from clamping, so the same analysis covers it).
Linearised at the equilibrium (β*, C, C) the state ``(β, y(t-1), y(t-2))`` evolves by

    A = [[1,          Ki + Kp/4, -Kp/4],
         [a·g'/(1+a), 1/(1+a),   0    ],
         [0,          1,         0    ]]

and the loop is locally stable iff the spectral radius of A is < 1 — the authority here.

Exact algebraic test (derived from A, checked against the eigenvalues in the tests).
With K2 = Ki + Kp/4, K3 = -Kp/4, K4 = a·g'/(1+a), K5 = 1/(1+a), A's characteristic
polynomial is ``p(λ) = λ³ + c2·λ² + c1·λ + c0`` with

    c2 = -(1 + K5),   c1 = K5 - K2·K4,   c0 = -K3·K4.

The bilinear map λ = (1+ξ)/(1-ξ) sends |λ| < 1 to Re ξ < 0; ``(1-ξ)³·p`` is
``b3ξ³ + b2ξ² + b1ξ + b0`` with (paper Eq. 25, same labels)

    b0 = 1 + c2 + c1 + c0 = p(1)   = -Ki·a·g'/(1+a)
    b1 = 3 + c2 - c1 - 3c0         = a·(2 + g'·(Ki - Kp/2))/(1+a)
    b2 = 3 - c2 - c1 + 3c0         = (4(1+a) + (Kp+Ki)·a·g')/(1+a)
    b3 = 1 - c2 + c1 - c0 = -p(-1) = (8 + 4a - (Kp+2Ki)·a·g')/(2(1+a))

Routh–Hurwitz for a cubic: all roots in Re ξ < 0 iff b0..b3 > 0 and b1·b2 > b0·b3, where

    b1·b2 - b0·b3 = a·[-0.5·Kp²·a·g'² - 2·(Kp - 4·Ki·(1+a))·g' + 8(1+a)] / (1+a)².

The paper's Eq. 19 has ``8·Ki`` where this has ``4·Ki``. As g' < 0 the paper's quadratic is
the exact one minus ``8·Ki·(1+a)·|g'|``, so its conditions imply stability but not
conversely: **sufficient, not necessary** (docs/stability.md). Example (dSprites plant of Table 5,
a = 1/2500, g' = -3.2): Kp = 0.01, Ki = 0.2 is stable (spectral radius ≈ 1 - 7.4e-5)
while the paper's quadratic is ≈ -2.18 < 0 (:data:`PAPER_COUNTEREXAMPLE`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from disbench.errors import DisbenchError

# A stable loop that the paper's Eq. 19 calls unstable (see the module docstring).
PAPER_COUNTEREXAMPLE = {"kp": 0.01, "ki": 0.2, "a": 1 / 2500, "g_prime": -3.2}

# Paper Table 5 (appendix C.1) plants, used with Kp = 0.01, Ki = 0.005.
TABLE5_PLANTS = {"mnist": {"a": 1 / 5000, "g_prime": -1.26},
                 "dsprites": {"a": 1 / 2500, "g_prime": -3.2}}


def validate_loop(kp: float, ki: float, a: float, g_prime: float) -> None:
    """Reject parameters outside the theorem's setting with a one-line DisbenchError."""
    for name, value in (("Kp", kp), ("Ki", ki), ("a", a), ("g'", g_prime)):
        if not math.isfinite(value):
            raise DisbenchError(f"{name} must be a finite number, got {value}")
    if ki <= 0:
        raise DisbenchError(f"Ki must be > 0 (this project's sign convention, docs/controllers.md: "
                            f"dI = -Ki·e), got Ki = {ki}")
    if kp < 0:
        raise DisbenchError(f"Kp must be >= 0, got Kp = {kp}")
    if a <= 0:
        raise DisbenchError(f"a (the plant's rate, paper Eq. 13) must be > 0, got a = {a}")
    if g_prime >= 0:
        raise DisbenchError(f"g' must be < 0 (KL must fall as β grows, paper Theorem 3.1), "
                            f"got g' = {g_prime}")


def jacobian(kp, ki, a, g_prime) -> np.ndarray:
    """A at the equilibrium (docs/stability.md); broadcasts, returning shape ``(..., 3, 3)``."""
    kp, ki, a, g = np.broadcast_arrays(*(np.asarray(v, dtype=float) for v in (kp, ki, a, g_prime)))
    out = np.zeros(kp.shape + (3, 3))
    out[..., 0, 0] = 1.0
    out[..., 0, 1] = ki + kp / 4  # σ'(0) = 1/4
    out[..., 0, 2] = -kp / 4
    out[..., 1, 0] = a * g / (1 + a)
    out[..., 1, 1] = 1 / (1 + a)
    out[..., 2, 1] = 1.0
    return out


def spectral_radius(kp, ki, a, g_prime) -> np.ndarray:
    """max |eigenvalue| of A; vectorised (one batched ``eigvals`` over stacked matrices)."""
    return np.abs(np.linalg.eigvals(jacobian(kp, ki, a, g_prime))).max(axis=-1)


def characteristic_coefficients(kp, ki, a, g_prime):
    """(c2, c1, c0) of ``det(λI - A) = λ³ + c2·λ² + c1·λ + c0``."""
    k2, k3 = ki + kp / 4, -kp / 4
    k4, k5 = a * g_prime / (1 + a), 1 / (1 + a)
    return -(1 + k5), k5 - k2 * k4, -k3 * k4


def bilinear_coefficients(c2, c1, c0):
    """(b0, b1, b2, b3) of ``(1-ξ)³·p((1+ξ)/(1-ξ))`` for a monic cubic p (paper Eq. 25).

    Generic but cancellation-prone near λ = 1; :func:`hurwitz_coefficients` gives the
    same numbers in closed form.
    """
    return (1 + c2 + c1 + c0, 3 + c2 - c1 - 3 * c0, 3 - c2 - c1 + 3 * c0, 1 - c2 + c1 - c0)


def hurwitz_coefficients(kp, ki, a, g_prime):
    """Closed-form (b0, b1, b2, b3, b1·b2 - b0·b3) for A (module docstring); vectorised."""
    kp, ki, a, g = (np.asarray(v, dtype=float) for v in (kp, ki, a, g_prime))
    b0 = -ki * a * g / (1 + a)
    b1 = a * (2 + g * (ki - kp / 2)) / (1 + a)
    b2 = (4 * (1 + a) + (kp + ki) * a * g) / (1 + a)
    b3 = (8 + 4 * a - (kp + 2 * ki) * a * g) / (2 * (1 + a))
    delta = a * exact_quadratic(kp, ki, a, g) / (1 + a) ** 2
    return b0, b1, b2, b3, delta


def exact_quadratic(kp, ki, a, g_prime):
    """``-0.5·Kp²·a·g'² - 2(Kp - 4Ki(1+a))·g' + 8(1+a)``: (1+a)²/a · (b1·b2 - b0·b3)."""
    return -0.5 * kp**2 * a * g_prime**2 - 2 * (kp - 4 * ki * (1 + a)) * g_prime + 8 * (1 + a)


def exact_stable(kp, ki, a, g_prime) -> np.ndarray:
    """Routh–Hurwitz on the bilinear-transformed cubic: exact, no eigenvalues; vectorised."""
    b0, b1, b2, b3, delta = hurwitz_coefficients(kp, ki, a, g_prime)
    return (b0 > 0) & (b1 > 0) & (b2 > 0) & (b3 > 0) & (delta > 0)


def paper_condition_values(kp, ki, a, g_prime) -> dict:
    """The slack of each of the paper's Eq. 19 inequalities (larger side minus smaller): it holds iff > 0."""
    kp, ki, a, g = (np.asarray(v, dtype=float) for v in (kp, ki, a, g_prime))
    return {
        "kp_plus_ki_bound": -4 * (1 + a) / (a * g) - (kp + ki),
        "quadratic": -0.5 * kp**2 * a * g**2 - 2 * (kp - 8 * ki * (1 + a)) * g + 8 * (1 + a),
        "ki_positive": ki,
        "kp_positive": kp,
    }


def paper_stable(kp, ki, a, g_prime) -> np.ndarray:
    """The paper's verdict: all of Eq. 19 holds; vectorised."""
    values = paper_condition_values(kp, ki, a, g_prime)
    return np.logical_and.reduce([v > 0 for v in values.values()])


PAPER_CONDITION_TEXT = {
    "kp_plus_ki_bound": "Kp + Ki < -4(1+a)/(a·g')",
    "quadratic": "-0.5·Kp²·a·g'² - 2[Kp - 8Ki(1+a)]·g' + 8(1+a) > 0",
    "ki_positive": "Ki > 0",
    "kp_positive": "Kp > 0",
}


@dataclass
class PaperCondition:
    name: str
    text: str
    value: float  # the slack of the inequality (how far it is from failing): it holds iff value > 0
    holds: bool


@dataclass
class StabilityResult:
    """Everything :func:`analyze` finds; ``stable`` (spectral radius < 1) is the authority."""

    kp: float
    ki: float
    a: float
    g_prime: float
    jacobian: np.ndarray
    eigenvalues: np.ndarray
    spectral_radius: float
    stable: bool
    margin: float  # 1 - spectral radius
    exact_stable: bool  # Routh–Hurwitz on b0..b3
    hurwitz: dict  # b0, b1, b2, b3 and b1·b2 - b0·b3
    paper_conditions: list[PaperCondition] = field(default_factory=list)
    paper_stable: bool = False
    disagreement: str | None = None

    def to_dict(self) -> dict:
        """Plain JSON types; eigenvalues as ``[real, imag]`` pairs."""
        return {
            "kp": self.kp, "ki": self.ki, "a": self.a, "g_prime": self.g_prime,
            "jacobian": self.jacobian.tolist(),
            "eigenvalues": [[float(e.real), float(e.imag)] for e in self.eigenvalues],
            "spectral_radius": self.spectral_radius,
            "stable": self.stable,
            "margin": self.margin,
            "exact_stable": self.exact_stable,
            "hurwitz": dict(self.hurwitz),
            "paper_conditions": {
                "conditions": [{"name": c.name, "text": c.text, "value": c.value, "holds": c.holds}
                               for c in self.paper_conditions],
                "all_hold": self.paper_stable,
            },
            "disagreement": self.disagreement,
        }


def analyze(kp: float, ki: float, a: float, g_prime: float) -> StabilityResult:
    """Stability of the linearised loop at gains (Kp, Ki) for the plant (a, g'(β*)).

    Raises DisbenchError for Ki <= 0, Kp < 0, a <= 0, g' >= 0 (outside Theorem 3.1).
    """
    kp, ki, a, g_prime = float(kp), float(ki), float(a), float(g_prime)
    validate_loop(kp, ki, a, g_prime)
    jac = jacobian(kp, ki, a, g_prime)
    eig = np.linalg.eigvals(jac)
    eig = eig[np.argsort(-np.abs(eig), kind="stable")]
    radius = float(np.abs(eig).max())
    stable = radius < 1
    b0, b1, b2, b3, delta = (float(v) for v in hurwitz_coefficients(kp, ki, a, g_prime))
    exact = bool(exact_stable(kp, ki, a, g_prime))
    conditions = [PaperCondition(name, PAPER_CONDITION_TEXT[name], float(value), bool(value > 0))
                  for name, value in paper_condition_values(kp, ki, a, g_prime).items()]
    paper = all(c.holds for c in conditions)
    return StabilityResult(
        kp=kp, ki=ki, a=a, g_prime=g_prime, jacobian=jac, eigenvalues=eig,
        spectral_radius=radius, stable=stable, margin=1 - radius, exact_stable=exact,
        hurwitz={"b0": b0, "b1": b1, "b2": b2, "b3": b3, "b1*b2-b0*b3": delta},
        paper_conditions=conditions, paper_stable=paper,
        disagreement=_disagreement(stable, exact, paper, conditions),
    )


def _disagreement(stable: bool, exact: bool, paper: bool, conditions) -> str | None:
    notes = []
    if paper != exact:
        failed = ", ".join(c.text for c in conditions if not c.holds)
        if exact:
            notes.append(f"the paper's Eq. 19 calls this loop unstable ({failed} fails), but it "
                         "is stable: Eq. 19 is sufficient, not necessary (docs/stability.md)")
        else:  # never seen on random draws; kept so a regression would be reported, not hidden
            notes.append("the paper's Eq. 19 holds, but the loop is unstable")
    if exact != stable:  # only within rounding of the boundary
        notes.append(f"the exact algebraic test says {'stable' if exact else 'unstable'} but "
                     f"the eigenvalues say {'stable' if stable else 'unstable'}: the loop is on "
                     "the boundary to rounding; the eigenvalues decide")
    return "; ".join(notes) or None
