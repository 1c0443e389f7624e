"""``disbench stability``: stability verdicts, system identification and the stable region.

    disbench stability --kp 0.01 --ki 0.005 --a 0.0004 --g-prime -3.2 [--json]
    disbench stability --fit RUN_DIR [RUN_DIR ...] [--kp K --ki K --beta-star B] [--out DIR] [--json]
    disbench stability --region --a 0.0004 --g-prime -3.2 [--kp 0.01 --ki 0.005] [--out FILE.png]

The plugin contributes it through ``register_commands`` (``add_parser``).
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from pathlib import Path

from disbench.errors import DisbenchError
from disbench.io import atomic_write_json

from .analysis import StabilityResult, analyze
from .figures import plot_kl_map_fit, plot_rise_fit
from .region import plot_region
from .sysid import DEFAULT_TAIL, identify

REPORT_NAME = "stability_report.json"
REGION_DEFAULT = "stability_region.png"


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "stability", help="stability of DynamicVAE's PI loop (paper Theorem 3.1)",
        description="Stability of DynamicVAE's PI-controlled KL loop (paper §3.1, appendix C): "
                    "the exact verdict (spectral radius of the Jacobian < 1) next to the paper's "
                    "Eq. 19 conditions, system identification of a and g(β) from runs, and the "
                    "stable region in the (Kp, Ki) plane. The linearisation holds away from "
                    "saturation (β > β_min); see PIBetaScheduler.anti_windup.")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--fit", nargs="+", metavar="RUN_DIR",
                      help="identify a and g(β) from constant-β runs, then analyse the "
                           "closed-loop run(s) among them (or --kp/--ki/--beta-star)")
    mode.add_argument("--region", action="store_true",
                      help="draw the stable region in the (Kp, Ki) plane to a PNG")
    p.add_argument("--kp", type=float, help="proportional gain Kp >= 0")
    p.add_argument("--ki", type=float, help="integral gain Ki > 0 (docs/controllers.md sign convention)")
    p.add_argument("--a", type=float, help="plant rate a > 0 (paper Eq. 13)")
    p.add_argument("--g-prime", type=float, dest="g_prime", help="g'(β*) < 0 (paper Eq. 13)")
    p.add_argument("--beta-star", type=float, dest="beta_star",
                   help="--fit: operating point β* (default: tail mean of the closed-loop run's β)")
    p.add_argument("--tail", type=float, default=DEFAULT_TAIL,
                   help="--fit: fraction of the last logged steps averaged as 'converged' "
                        f"(default {DEFAULT_TAIL})")
    p.add_argument("--out", help=f"--fit: report folder (default: FIRST_RUN_DIR/../stability); "
                                 f"--region: PNG file (default: ./{REGION_DEFAULT})")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)
    return p


def run(args) -> int:
    if args.fit:
        return _fit(args)
    if args.region:
        return _region(args)
    return _point(args)


def _require(args, names, mode):
    missing = [f"--{n.replace('_', '-')}" for n in names if getattr(args, n) is None]
    if missing:
        raise DisbenchError(f"{mode} needs {', '.join(missing)}")


def _reject(args, names, why):
    given = [f"--{n.replace('_', '-')}" for n in names if getattr(args, n) is not None]
    if given:
        raise DisbenchError(f"{', '.join(given)}: {why}")


def _point(args) -> int:
    _require(args, ("kp", "ki", "a", "g_prime"), "stability analysis (or use --fit / --region)")
    _reject(args, ("beta_star", "out"), "only used with --fit or --region")
    result = analyze(args.kp, args.ki, args.a, args.g_prime)
    print(json.dumps(result.to_dict(), indent=2) if args.json else format_analysis(result))
    return 0


def _region(args) -> int:
    _require(args, ("a", "g_prime"), "--region")
    _reject(args, ("beta_star",), "only used with --fit")
    if (args.kp is None) != (args.ki is None):
        raise DisbenchError("--region marks the operating gains only with both --kp and --ki")
    path, _ = plot_region(args.a, args.g_prime, args.out or REGION_DEFAULT, args.kp, args.ki)
    out = {"figure": str(path), "a": args.a, "g_prime": args.g_prime}
    if args.kp is not None:
        out["operating_point"] = analyze(args.kp, args.ki, args.a, args.g_prime).to_dict()
    print(json.dumps(out, indent=2) if args.json else f"stable region written to {path}")
    return 0


def _fit(args) -> int:
    _reject(args, ("a", "g_prime"), "--fit identifies a and g' from the runs; "
                                     "use them without --fit to analyse given values")
    ident = identify(args.fit, kp=args.kp, ki=args.ki, beta_star=args.beta_star, tail=args.tail)
    out_dir = Path(args.out) if args.out else Path(args.fit[0]).resolve().parent / "stability"
    a = ident.a_least_squares
    points = []
    for op in ident.operating_points:
        g_prime = ident.kl_map.g_prime(op.beta_star)
        try:
            result = analyze(op.kp, op.ki, a, g_prime)
        except DisbenchError as exc:
            raise DisbenchError(f"operating point from {op.source} (β* = {op.beta_star:.4g}, "
                                f"fitted g'(β*) = {g_prime:.4g}): {exc}") from None
        points.append((op, g_prime, result))

    figures = []
    for i, (run_log, fit) in enumerate(zip(ident.open_loop, ident.rises)):
        figures.append(plot_rise_fit(run_log, fit, out_dir / f"rise_{i}_{run_log.path.name}.png"))
    figures.append(plot_kl_map_fit(ident.kl_map, [op.beta_star for op, _, _ in points],
                                   out_dir / "g_fit.png"))

    report = {
        "runs": [{"path": str(r.path), "status": r.results.get("status"),
                  "scheduler": r.scheduler} for r in ident.runs],
        "converged_tail_fraction": args.tail,
        "a": {"least_squares": ident.a_least_squares, "rise_time": ident.a_rise_time,
              "used": "least_squares (median over open-loop runs)",
              "per_run": [asdict(f) for f in ident.rises]},
        "g": {"A": ident.kl_map.A, "b": ident.kl_map.b, "betas": ident.kl_map.betas,
              "converged_kl": ident.kl_map.kls, "model": "g(β) = A·exp(-b·β)"},
        "operating_points": [
            {"source": op.source, "kp": op.kp, "ki": op.ki, "beta_star": op.beta_star,
             "g_at_beta_star": float(ident.kl_map.g(op.beta_star)), "g_prime": g_prime,
             "analysis": result.to_dict()} for op, g_prime, result in points],
        "figures": [str(f) for f in figures],
    }
    report_path = out_dir / REPORT_NAME
    atomic_write_json(report_path, report)
    report["report"] = str(report_path)
    print(json.dumps(report, indent=2) if args.json else format_identification(report, points))
    return 0


# ---------------------------------------------------------------- text output

def _complex(z) -> str:
    if abs(z.imag) < 1e-15:
        return f"{z.real:.9g}"
    return f"{z.real:.9g} {'+' if z.imag >= 0 else '-'} {abs(z.imag):.6g}j"


ANTI_WINDUP_NOTE = (
    "anti-windup:     the linearisation holds away from saturation (β > β_min). 'latch' (the default, "
    "the paper's): once the stored β is below β_min the integral stays frozen and the loop is open — "
    "this verdict no longer applies; 'conditional': the integral resumes when KL > C, and with it "
    "the loop this verdict describes; 'none': the integral winds up below β_min, an overshoot the "
    "linearisation does not see.")


def format_analysis(r: StabilityResult, indent: str = "") -> str:
    verdict = "STABLE" if r.stable else "UNSTABLE"
    h = r.hurwitz
    lines = [
        f"PI loop at Kp = {r.kp:g}, Ki = {r.ki:g}; plant a = {r.a:.6g}, g' = {r.g_prime:.6g}",
        f"eigenvalues:     {', '.join(_complex(z) for z in r.eigenvalues)}",
        f"spectral radius: {r.spectral_radius:.12g}   margin (1 - radius): {r.margin:.4g}",
        f"verdict:         {verdict} (spectral radius {'<' if r.stable else '>='} 1)",
        f"exact test:      {'stable' if r.exact_stable else 'unstable'} (Routh-Hurwitz on the "
        f"bilinear-transformed cubic: b0 = {h['b0']:.4g}, b1 = {h['b1']:.4g}, b2 = {h['b2']:.4g}, "
        f"b3 = {h['b3']:.4g}, b1·b2 - b0·b3 = {h['b1*b2-b0*b3']:.4g})",
        f"paper Eq. 19:    {'all hold' if r.paper_stable else 'NOT all hold'}",
    ]
    lines += [f"  {'holds' if c.holds else 'FAILS'}  {c.text}   (slack {c.value:.6g})"
              for c in r.paper_conditions]
    if r.disagreement:
        lines.append(f"DISAGREEMENT: {r.disagreement}")
    lines.append(ANTI_WINDUP_NOTE)
    return "\n".join(indent + line for line in lines)


def format_identification(report: dict, points) -> str:
    a, g = report["a"], report["g"]
    lines = [f"System identification (paper appendix C.1) from {len(report['runs'])} runs; "
             f"converged = mean over the last {report['converged_tail_fraction']:.0%} of logged steps"]
    for f in a["per_run"]:
        lines.append(f"  open loop β = {f['beta']:g} ({f['run']}): t* = {f['t_star']:.5g} → "
                     f"a = {f['a_rise_time']:.4g} (63.2 % rise time); least squares "
                     f"a = {f['a_least_squares']:.4g}, C0 = {f['c0_least_squares']:.4g}")
    lines.append(f"a = {a['least_squares']:.4g} (least squares, median over runs; "
                 f"rise-time median {a['rise_time']:.4g})")
    lines.append(f"g(β) = {g['A']:.5g}·exp(-{g['b']:.5g}·β) from β = "
                 f"{', '.join(f'{b:g}' for b in g['betas'])}")
    for op, g_prime, result in points:
        lines.append(f"operating point ({op.source}): β* = {op.beta_star:.5g}, "
                     f"g'(β*) = {g_prime:.4g}")
        lines.append(format_analysis(result, indent="  "))
    lines.append(f"report: {report['report']}")
    lines += [f"figure: {f}" for f in report["figures"]]
    return "\n".join(lines)
