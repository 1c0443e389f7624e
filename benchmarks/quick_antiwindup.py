#!/usr/bin/env python
"""The controller, measured: DynamicVAE's anti-windup modes on `quick`, and DynamicVAE-P.

Three comparisons under the `quick` protocol (same data, steps, seeds):

* ``latch``       — ``dynamicvae`` as the paper's code has it (``anti_windup = 'latch'``);
* ``conditional`` — ``dynamicvae`` with ``PIBetaScheduler.anti_windup = 'conditional'``;
* ``positional``  — ``dynamicvae_p`` (the positional PI) with its Ki scaled as ``quick``
  scales DynamicVAE's (``PositionalPIBetaScheduler.ki = 0.02``).

Each is an ordinary ``disbench compare`` in OUT/NAME (re-running continues where it
stopped). Then it writes OUT/summary.md and OUT/summary.json — reconstruction, KL, final β,
RMIG, MIG, and the controller and emergence columns, mean ± std over the complete seeds —
and OUT/figures/antiwindup_beta_kl.png|pdf: β(t) and KL(t) against the set point C(t),
one line per configuration and seed.

    python benchmarks/quick_antiwindup.py --out DIR [--seeds 1,2] [--jobs 2] [--only NAME,...]
        [--report-only]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

CONFIGS = {
    "latch": ("dynamicvae", []),
    "conditional": ("dynamicvae", ["--gin_param", "PIBetaScheduler.anti_windup = 'conditional'"]),
    "positional": ("dynamicvae_p", ["--gin_param", "PositionalPIBetaScheduler.ki = 0.02"]),
}
FINAL = (("recon", "recon (nats)", ".2f"), ("kl", "KL (nats)", ".2f"), ("beta", "final β", ".3g"))
SCORES = (("rmig", "RMIG"), ("mig", "MIG"))
DYNAMICS = (("last_phase_error_rms", "RMS \\|KL − C\\|, last phase", ".2f"),
            ("fraction_at_beta_min", "steps at β_min", ".2f"),
            ("beta_crosses_1_at", "β < 1 from step", ",.0f"),
            ("latents_emerged", "latents emerged", ".1f"),
            ("smallest_emergence_gap", "smallest gap (steps)", ",.0f"))


def run(out: Path, seeds: str, jobs: int, names: list[str]) -> None:
    for name in names:
        model, extra = CONFIGS[name]
        cmd = [sys.executable, "-m", "disbench", "compare", "--models", model, "--seeds", seeds,
               "--protocol", "quick", "--out", str(out / name), "--jobs", str(jobs), *extra]
        print("+", " ".join(cmd), flush=True)
        subprocess.run(cmd, check=False)


def cell(stat, fmt: str) -> str:
    if stat is None or stat.mean is None:
        return "—"
    text = format(stat.mean, fmt)
    return text + (f" ± {format(stat.std, fmt)}" if stat.std is not None else "")


def summarize(out: Path, names: list[str]) -> tuple[str, dict]:
    from disbench.compare.report import load_comparison

    header = ["configuration", "n", *(h for _, h, _ in FINAL), *(h for _, h in SCORES), *(h for _, h, _ in DYNAMICS)]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join([":--"] + ["--:"] * (len(header) - 1)) + "|"]
    record = {}
    for name in names:
        if not (out / name / "compare.json").is_file():
            continue
        comparison, _ = load_comparison(out / name)
        summary = next(iter(comparison.summaries.values()))
        scores = {m: (summary.metrics.get(m) or {}).get("score") for m, _ in SCORES}
        lines.append("| " + " | ".join([f"`{name}`", str(len(summary.complete)),
                                        *(cell(summary.final[k], f) for k, _, f in FINAL),
                                        *(cell(scores[m], ".3f") for m, _ in SCORES),
                                        *(cell(summary.dynamics[k], f) for k, _, f in DYNAMICS)]) + " |")
        record[name] = {"model": summary.model, "seeds": [r.seed for r in summary.complete],
                        "final": {k: vars(summary.final[k]) for k, _, _ in FINAL},
                        "scores": {m: vars(s) if s else None for m, s in scores.items()},
                        "dynamics": {k: vars(summary.dynamics[k]) for k, _, _ in DYNAMICS},
                        "fingerprint": comparison.fingerprint}
    return "\n".join(lines) + "\n", record


def draw(out: Path, names: list[str]) -> list[Path]:
    """β(t) (log scale) and KL(t) with the set point C(t), per configuration and seed."""
    from disbench.compare.plan import RUNS_FOLDER
    from disbench.figures.curves import _plain_log_y as plain_log_y
    from disbench.figures.style import new_figure, save_figure, styled
    from disbench.training.scalars import SCALARS_NAME, read_scalars

    @styled
    def figure() -> list[Path]:
        fig = new_figure(11, 3.8)
        beta_ax, kl_ax = fig.subplots(1, 2)
        setpoint_drawn = False
        for n, name in enumerate(names):
            listed = json.loads((out / name / "compare.json").read_text()).get("seeds", [])
            for run_dir in sorted((out / name / RUNS_FOLDER).glob("*/seed*")):
                if int(run_dir.name[4:]) not in listed:  # a run of another command (an interrupted seed)
                    continue
                rows = read_scalars(run_dir / SCALARS_NAME)
                if not rows:
                    continue
                steps = [r["step"] for r in rows]
                style = dict(color=f"C{n}", linestyle="-" if run_dir.name == "seed1" else ":", linewidth=1.2)
                label = f"{name}, {run_dir.name.replace('seed', 'seed ')}"
                beta_ax.plot(steps, [r["beta"] for r in rows], label=label, **style)
                kl_ax.plot(steps, [r["kl"] for r in rows], label=label, **style)
                if not setpoint_drawn and all("setpoint" in r for r in rows):
                    kl_ax.plot(steps, [r["setpoint"] for r in rows], color="black", linestyle="--",
                               linewidth=1.0, label="set point C(t)")
                    setpoint_drawn = True
        beta_ax.set(yscale="log", xlabel="training step", ylabel="β(t)", title="KL weight β(t)")
        beta_ax.axhline(1.0, color="grey", linewidth=0.8)
        plain_log_y(beta_ax)
        kl_ax.set(xlabel="training step", ylabel="KL (nats)", title="KL and its set point")
        kl_ax.legend(fontsize=7)
        return save_figure(fig, out / "figures" / "antiwindup_beta_kl")

    return figure()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--seeds", default="1,2")
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--only", help="comma-separated configurations (default: all three)")
    ap.add_argument("--report-only", action="store_true", help="no training: summary and figure of what is there")
    args = ap.parse_args()
    out = Path(args.out)
    names = [n.strip() for n in args.only.split(",")] if args.only else list(CONFIGS)
    unknown = [n for n in names if n not in CONFIGS]
    if unknown:
        raise SystemExit(f"--only: unknown configuration(s) {', '.join(unknown)}; known: {', '.join(CONFIGS)}")
    if not args.report_only:
        run(out, args.seeds, args.jobs, names)
    table, record = summarize(out, names)
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.md").write_text(table)
    (out / "summary.json").write_text(json.dumps(record, indent=2) + "\n")
    figures = draw(out, names)
    print(table)
    print("\n".join(map(str, [out / "summary.md", out / "summary.json", *figures])))


if __name__ == "__main__":
    main()
