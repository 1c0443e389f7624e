"""When each latent starts to carry information, from a run's log: the paper's
"factors emerge one at a time as C climbs", as numbers comparable between models.

A latent *emerges* at the first logged step at which its KL (``kl_per_dim`` of
``scalars.jsonl``: the mean over the steps since the previous row) exceeds
``threshold`` nats (``Emergence.threshold``, default 0.5). Reported:

* ``steps``: each latent's emergence step (None: it never emerged);
* ``order``: the emerged latents, first to last;
* ``smallest_gap``: the fewest steps between two consecutive emergences (None with
  fewer than two), the number that says "one at a time";
* ``factors`` (when metrics were evaluated during training, ``Protocol.eval_every``,
  by a metric that reports its (latent, factor) mutual information — mig, rmig,
  mig_sampled): for each emerged latent, the factor with the highest normalised
  mutual information I(z_i; v_k) / H(v_k) at the first evaluation at or after its
  emergence.
"""

from __future__ import annotations

import gin


@gin.configurable
class Emergence:
    def __init__(self, threshold: float = 0.5):
        if not threshold > 0:
            raise ValueError(f"Emergence.threshold must be > 0 nats, got {threshold!r}")
        self.threshold = float(threshold)

    def __call__(self, rows: list[dict], metric_rows: list[dict] | None = None) -> dict | None:
        rows = [r for r in rows if isinstance(r.get("kl_per_dim"), list)]
        if not rows:
            return None
        latents = len(rows[0]["kl_per_dim"])
        steps = [next((r["step"] for r in rows if r["kl_per_dim"][i] > self.threshold), None)
                 for i in range(latents)]
        emerged = sorted((s, i) for i, s in enumerate(steps) if s is not None)
        gaps = [b[0] - a[0] for a, b in zip(emerged, emerged[1:])]
        out = {"threshold": self.threshold, "steps": steps, "order": [i for _, i in emerged],
               "smallest_gap": min(gaps) if gaps else None}
        factors = carried_factors(steps, metric_rows or [])
        if factors is not None:
            out["factors"] = factors
        return out


def carried_factors(steps: list, metric_rows: list[dict]) -> dict | None:
    """{latent: factor name} from the first evaluation at or after each emergence."""
    evaluations = [(row["step"], _information(row.get("metrics") or {})) for row in metric_rows]
    evaluations = [(s, info) for s, info in evaluations if info is not None]
    if not evaluations:
        return None
    out = {}
    for latent, step in enumerate(steps):
        if step is None:
            continue
        later = [info for s, info in evaluations if s >= step]
        if not later:
            continue
        mi, entropy, names = later[0]
        normalised = [mi[latent][k] / entropy[name] if entropy[name] > 0 else 0.0 for k, name in enumerate(names)]
        out[str(latent)] = names[max(range(len(names)), key=normalised.__getitem__)]
    return out


def _information(metrics: dict):
    """(mi [L][K], entropy {factor: H}, factor names) from the first metric that has them."""
    for result in metrics.values():
        if isinstance(result, dict) and "mi" in result and "entropy" in result and "factor_names" in result:
            return result["mi"], result["entropy"], result["factor_names"]
    return None
