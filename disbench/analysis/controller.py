"""How well a closed-loop β scheduler tracked its KL set point, from a run's log.

Computed from the rows of ``scalars.jsonl`` (one per ``Protocol.log_every``
steps: the KL is the mean over the steps since the previous row, the set point
C and β are their values at the logged step), so every figure has the log's
resolution. A run whose rows carry no set point (open loop: a constant β, a
schedule) has no controller quality (None).

* ``error_rms`` / ``error_max``: RMS and max of |KL − C| over the whole run, and
  ``last_phase`` the same over the last set-point phase (the trailing rows at the
  final C: for DynamicVAE, the hold at C max where β should fall below 1);
* ``fraction_at_beta_min``: the share of rows with β at β_min (saturated);
* ``beta_crosses_1_at``: the first logged step with β < 1 (None if never);
* ``final_beta``;
* ``overshoots``: after each increase of C, the largest KL − C (0 if the KL never
  passed C) until the next increase; ``overshoot_max`` the largest of them.
"""

from __future__ import annotations

import math


def controller_quality(rows: list[dict], beta_min: float | None = None) -> dict | None:
    rows = [r for r in rows if _finite(r.get("setpoint")) and _finite(r.get("kl")) and _finite(r.get("beta"))]
    if not rows:
        return None
    errors = [r["kl"] - r["setpoint"] for r in rows]
    final_c = rows[-1]["setpoint"]
    last = len(rows)
    while last > 0 and rows[last - 1]["setpoint"] == final_c:
        last -= 1
    below_1 = next((r["step"] for r in rows if r["beta"] < 1.0), None)
    out = {
        "rows": len(rows),
        "error_rms": _rms(errors),
        "error_max": max(abs(e) for e in errors),
        "last_phase": {"from_step": rows[last]["step"], "to_step": rows[-1]["step"], "setpoint": final_c,
                       "error_rms": _rms(errors[last:]), "error_max": max(abs(e) for e in errors[last:])},
        "beta_crosses_1_at": below_1,
        "final_beta": rows[-1]["beta"],
        "overshoots": _overshoots(rows, errors),
    }
    out["overshoot_max"] = max((o["overshoot"] for o in out["overshoots"]), default=None)
    if beta_min is not None:
        # β is logged from float32: β_min = 0.1 arrives as 0.10000000149 (relative 1.5e-8)
        at_min = sum(r["beta"] <= beta_min * (1 + 1e-6) for r in rows)
        out["fraction_at_beta_min"] = at_min / len(rows)
    return out


def _overshoots(rows: list[dict], errors: list[float]) -> list[dict]:
    increases = [i for i in range(1, len(rows)) if rows[i]["setpoint"] > rows[i - 1]["setpoint"]]
    out = []
    for n, i in enumerate(increases):
        end = increases[n + 1] if n + 1 < len(increases) else len(rows)
        out.append({"step": rows[i]["step"], "setpoint": rows[i]["setpoint"],
                    "overshoot": max(0.0, max(errors[i:end]))})
    return out


def _rms(values: list[float]) -> float:
    return math.sqrt(sum(v * v for v in values) / len(values))


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)
