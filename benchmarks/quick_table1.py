#!/usr/bin/env python
"""Table 1 at small scale, for a CPU: the paper's comparison on the `quick` protocol, two seeds.

Runs the same ``disbench compare`` as ``paper_table1.py`` (six models, RMIG and
MIG) with ``gin/protocols/quick.gin`` and fewer seeds, then checks the paper's
claims on what it measured and prints them (and writes them to
OUT/quick_summary.json):

* DynamicVAE's final β (the paper: below 1);
* its reconstruction loss against β-VAE (H and B) and FactorVAE (the paper: lower);
* its RMIG against VAE and FactorVAE (the paper: far above VAE, comparable to FactorVAE).

    python benchmarks/quick_table1.py [--jobs 2] [--plan]

Re-running continues where it stopped. Options it does not know are passed on to compare.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from paper_table1 import build_parser, compare_argv, print_plan  # noqa: E402

SUMMARY_NAME = "quick_summary.json"
SUBJECT = "dynamicvae"
RECON_RIVALS = ("betavae_h", "betavae_b", "factorvae")
SCORE_RIVALS = ("vae", "factorvae")


def _stat(s) -> dict | None:
    return None if s is None or s.n == 0 else {"mean": s.mean, "std": s.std, "n": s.n}


def summarize(comparison, metric: str = "rmig") -> dict:
    """The claims of the paper checked on a :class:`disbench.compare.aggregate.Comparison`."""
    summaries = comparison.summaries

    def final(model, key):
        return _stat(summaries[model].final[key]) if model in summaries else None

    def score(model):
        stats = summaries[model].metrics.get(metric) if model in summaries else None
        return _stat(stats["score"]) if stats else None

    def lower(a, b):
        return None if a is None or b is None else a["mean"] < b["mean"]

    beta = final(SUBJECT, "beta")
    recon = {m: final(m, "recon") for m in (SUBJECT, *RECON_RIVALS)}
    scores = {m: score(m) for m in (SUBJECT, *SCORE_RIVALS)}
    return {
        "fingerprint": comparison.fingerprint, "seeds": comparison.seeds, "metric": metric,
        "final_beta": beta, "final_beta_below_1": None if beta is None else beta["mean"] < 1,
        "recon": recon, "recon_lower_than": {m: lower(recon[SUBJECT], recon[m]) for m in RECON_RIVALS},
        "score": scores,
        "score_minus": {m: None if scores[SUBJECT] is None or scores[m] is None
                        else scores[SUBJECT]["mean"] - scores[m]["mean"] for m in SCORE_RIVALS},
        "runs_not_complete": [f"{r.model} seed {r.seed}: {r.status}" for r in comparison.records
                              if r.status != "complete"],
    }


def _fmt(s, spec=".3g") -> str:
    if s is None:
        return "n/a"
    return f"{s['mean']:{spec}}" + (f" ± {s['std']:{spec}}" if s["std"] is not None else "") + f" (n={s['n']})"


def _yes(flag) -> str:
    return "n/a" if flag is None else "yes" if flag else "no"


def report_lines(summary: dict) -> list[str]:
    m = summary["metric"].upper()
    recon, scores = summary["recon"], summary["score"]
    return [
        f"DynamicVAE final β: {_fmt(summary['final_beta'])} — below 1 (paper): {_yes(summary['final_beta_below_1'])}",
        "reconstruction loss (nats): DynamicVAE " + _fmt(recon[SUBJECT], ".2f") + "; " + "; ".join(
            f"{r} {_fmt(recon[r], '.2f')} (DynamicVAE lower: {_yes(summary['recon_lower_than'][r])})"
            for r in RECON_RIVALS),
        f"{m}: DynamicVAE {_fmt(scores[SUBJECT])}; " + "; ".join(
            f"{r} {_fmt(scores[r])}" + (f" (difference {summary['score_minus'][r]:+.3f})"
                                        if summary["score_minus"][r] is not None else "") for r in SCORE_RIVALS),
    ] + [f"not complete: {', '.join(summary['runs_not_complete'])}"] * bool(summary["runs_not_complete"])


def main(argv=None) -> int:
    parser = build_parser(__doc__.split("\n\n")[0], protocol="quick", seeds="1-2",
                          out="results/quick_table1", device="cpu")
    args, extra = parser.parse_known_args(argv)
    from disbench.cli import main as disbench_main
    from disbench.compare.aggregate import aggregate
    from disbench.compare.plan import parse_seeds
    from disbench.errors import DisbenchError
    from disbench.io import atomic_write_json

    try:
        print_plan(args, extra)
        if args.plan:
            return 0
        rc = disbench_main(compare_argv(args, extra))
        if rc == 2:
            return rc
        models = [m for m in args.models.split(",") if m]
        comparison = aggregate(args.out, models, parse_seeds(args.seeds), metric_order=args.metrics.split(","))
    except DisbenchError as exc:
        print(f"quick_table1: error: {exc}", file=sys.stderr)
        return 2
    summary = summarize(comparison, args.metrics.split(",")[0])
    atomic_write_json(Path(args.out) / SUMMARY_NAME, summary)
    print("\n".join(["", "summary (quick protocol):", *report_lines(summary), f"written: {Path(args.out) / SUMMARY_NAME}"]))
    return rc


if __name__ == "__main__":
    sys.exit(main())
