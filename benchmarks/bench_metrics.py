"""Speed and memory of the metrics at dSprites scale: the MIG family (issue 5, the
default) and, with ``--suite standard``, disentanglement_lib's suite (issue 13).

N = 737,280 images, L = 10 latents, the dSprites factor grid (3, 6, 40, 32,
32) from the mixed-radix index, random codes; encoding is excluded. Times:

* ``mig_score`` (target <= 1 s on 2 cores) and disentanglement_lib's slow form
  (numpy.histogram + sklearn ``mutual_info_score`` per latent-factor pair) for
  comparison, with the largest difference between the two;
* ``rmig_score`` (target <= 30 s, peak extra memory <= 2 GB);
* ``mig_sampled_score`` with ``--entropy-samples`` S (default 1000); its cost
  is linear in S, so the S = 10,000 default is extrapolated unless run.

Peak extra memory is the process's resident set, sampled every 2 ms during
the call, minus its size just before. Prints a table and writes JSON.

    python benchmarks/bench_metrics.py [--entropy-samples 1000] [--out FILE]

``--suite standard`` times the registered ``dci`` (both backends), ``sap``,
``modularity``, ``factorvae_score``, ``betavae_score`` and ``unsupervised`` with
their default settings on the codes of all 737,280 images, encoding excluded
(the codes are computed first; each metric reads them as the evaluation's
shared encoding), and writes ``results/bench_metrics_standard.json``. Codes:
synthetic (five latents = the factors scaled to [0, 1] plus N(0, 0.2) noise,
five N(0, 1) latents) or, with ``--run RUN_DIR`` (repeatable), the encoder
means of trained runs on the generated dSprites (their encoding is timed
separately; ``--save-codes DIR`` keeps them for ``--codes DIR/RUN.npz``); for
each run the DCI default and ``hist`` backends are compared.
The CPU model (``lscpu``) and the load average before and after are recorded:
other work on the machine slows every row.

    python benchmarks/bench_metrics.py --suite standard [--run RUN_DIR]...

Leave OMP_NUM_THREADS unset so torch uses every core.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import threading
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dvae_plugin.metrics import mig_sampled_score, mig_score, rmig_score  # noqa: E402
from dvae_plugin.metrics.reference import disentanglement_lib_mig  # noqa: E402

DSPRITES_SIZES = (3, 6, 40, 32, 32)
NUM_LATENTS = 10


def dsprites_factors() -> np.ndarray:
    sizes = np.array(DSPRITES_SIZES)
    strides = np.concatenate([np.cumprod(sizes[::-1])[::-1][1:], [1]])
    index = np.arange(int(np.prod(sizes)))
    return (index[:, None] // strides) % sizes


def random_posteriors(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    mu = rng.normal(size=(n, NUM_LATENTS)).astype(np.float32)
    logvar = rng.uniform(-6.0, 0.0, size=(n, NUM_LATENTS)).astype(np.float32)
    return mu, logvar


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class PeakMemory:
    """Peak resident memory above the level at entry, sampled by a thread."""

    def __enter__(self):
        self.base = self.peak = _rss_bytes()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()
        return self

    def _watch(self):
        while not self._stop.wait(0.002):
            self.peak = max(self.peak, _rss_bytes())

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss_bytes())
        self.extra_mb = (self.peak - self.base) / 2**20


def measure(fn, repeats: int = 1) -> dict:
    """Best wall time over ``repeats``, the CPU time of that run, and peak extra memory."""
    best = None
    for _ in range(repeats):
        with PeakMemory() as memory:
            cpu0, wall0 = time.process_time(), time.perf_counter()
            result = fn()
            wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        if best is None or wall < best["wall_s"]:
            best = {"wall_s": wall, "cpu_s": cpu, "peak_extra_mb": memory.extra_mb, "result": result}
    return best


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--suite", choices=("mig", "standard"), default="mig",
                        help="mig: MIG, RMIG, sampled MIG (default); standard: disentanglement_lib's suite")
    parser.add_argument("--entropy-samples", type=int, default=1000,
                        help="S for mig_sampled_score (10000 is the metric default; ~10x the time)")
    parser.add_argument("--repeats", type=int, default=3, help="repeats of the fast mig_score timing")
    parser.add_argument("--skip-mig-sampled", action="store_true")
    parser.add_argument("--run", type=Path, action="append", default=[],
                        help="(standard) a trained run on dsprites_synth whose codes to use; repeatable")
    parser.add_argument("--codes", type=Path, action="append", default=[],
                        help="(standard) codes saved by --save-codes instead of encoding a run again; repeatable")
    parser.add_argument("--save-codes", type=Path, default=None,
                        help="(standard) save each run's codes as DIR/RUN.npz (+ .json) for --codes")
    parser.add_argument("--out", type=Path, default=None,
                        help="default: results/bench_metrics.json (mig), results/bench_metrics_standard.json")
    args = parser.parse_args(argv)
    if args.suite == "standard":
        return standard_suite(args.run, args.out or Path(__file__).with_name("results")
                              / "bench_metrics_standard.json", codes=args.codes, save_codes=args.save_codes)
    args.out = args.out or Path(__file__).with_name("results") / "bench_metrics.json"

    load_at_start = os.getloadavg()  # other work on the machine slows every row
    factors = dsprites_factors()
    mu, logvar = random_posteriors(len(factors))
    rows = {}

    rows["mig_score"] = measure(lambda: mig_score(mu, factors), repeats=args.repeats)
    rows["mig_sklearn_reference"] = measure(lambda: disentanglement_lib_mig(mu, factors))
    mig_vs_reference = float(np.abs(rows["mig_score"]["result"]["mi"]
                                    - rows["mig_sklearn_reference"]["result"]["mi"]).max())
    rows["rmig_score"] = measure(lambda: rmig_score(mu, logvar, factors))
    if not args.skip_mig_sampled:
        rows["mig_sampled_score"] = measure(lambda: mig_sampled_score(
            mu, logvar, factors, DSPRITES_SIZES, num_entropy_samples=args.entropy_samples, seed=0))

    report = {
        "setup": {
            "num_samples": len(factors), "num_latents": NUM_LATENTS, "factor_sizes": list(DSPRITES_SIZES),
            "codes": "float32 N(0, 1) means, logvar ~ U(-6, 0), seed 0",
            "mig_sampled_entropy_samples": args.entropy_samples,
            "torch_threads": torch.get_num_threads(), "cpu_count": os.cpu_count(),
            "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
            "python": platform.python_version(), "numpy": np.__version__, "torch": torch.__version__,
            "machine": platform.machine(), "load_average_at_start": [round(v, 2) for v in load_at_start],
        },
        "targets": {"mig_score_wall_s": 1.0, "rmig_score_wall_s": 30.0, "rmig_score_peak_extra_mb": 2048},
        "mig_vs_sklearn_max_abs_mi_difference": mig_vs_reference,
        "results": {name: {k: v for k, v in row.items() if k != "result"} | {"score": row["result"]["score"]}
                    for name, row in rows.items()},
    }
    if "mig_sampled_score" in rows:
        scale = 10000 / args.entropy_samples
        report["mig_sampled_score_at_10000_samples_estimated_wall_s"] = rows["mig_sampled_score"]["wall_s"] * scale

    print(f"N = {len(factors):,}, L = {NUM_LATENTS}, factors {DSPRITES_SIZES}, "
          f"torch threads {torch.get_num_threads()}, load average at start {load_at_start[0]:.2f}")
    print(f"{'metric':<24}{'wall s':>10}{'cpu s':>10}{'peak extra MB':>16}{'score':>12}")
    for name, row in report["results"].items():
        print(f"{name:<24}{row['wall_s']:>10.3f}{row['cpu_s']:>10.3f}{row['peak_extra_mb']:>16.1f}"
              f"{row['score']:>12.6f}")
    print(f"mig_score vs sklearn reference: max |ΔI| = {mig_vs_reference:.2e} nats")
    if "mig_sampled_score_at_10000_samples_estimated_wall_s" in report:
        print(f"mig_sampled_score at S = 10,000 (linear in S): "
              f"~{report['mig_sampled_score_at_10000_samples_estimated_wall_s']:.0f} s")

    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


# -- disentanglement_lib's suite ---------------------------------------------------------

class PrecomputedCodes:
    """The evaluation's shared encoding, already computed: what a registered metric reads."""

    kind = "mean"

    def __init__(self, mu: np.ndarray, logvar: np.ndarray):
        self.mu, self.logvar = mu, logvar
        self.device = torch.device("cpu")

    def __len__(self) -> int:
        return len(self.mu)

    def encode(self, indices=None):
        return (self.mu, self.logvar) if indices is None else (self.mu[indices], self.logvar[indices])


def cpu_model() -> str:
    import subprocess

    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return platform.processor() or "unknown"
    fields = dict(line.split(":", 1) for line in out.splitlines() if ":" in line)
    parts = [fields.get(k, "").strip() for k in ("Model name", "CPU family", "Model")]
    return f"{parts[0]} (family {parts[1]}, model {parts[2]})" if parts[0] else "unknown"


def synthetic_codes(factors: np.ndarray) -> np.ndarray:
    rng = np.random.default_rng(0)
    scaled = factors / (np.asarray(DSPRITES_SIZES) - 1)
    codes = np.concatenate([scaled + rng.normal(0, 0.2, size=scaled.shape),
                            rng.normal(size=(len(factors), NUM_LATENTS - scaled.shape[1]))], axis=1)
    return codes.astype(np.float32)


def run_codes(run_dir: Path) -> tuple[np.ndarray, np.ndarray, dict]:
    """The encoder means and log-variances of a trained run's whole dataset, and the encoding's cost."""
    from disbench.trained import load_trained
    from disbench.metrics import Representation

    trained = load_trained(run_dir, device="cpu")
    representation = Representation(trained.model.encode, trained.dataset.images, device="cpu")
    timing = measure(lambda: representation.encode())
    mu, logvar = timing.pop("result")
    return mu, logvar, {"run": str(run_dir), "model": trained.results.get("model"),
                        "steps": trained.results.get("steps"), "dataset": trained.dataset.name,
                        "encoding": {k: round(v, 3) for k, v in timing.items()}}


def saved_codes(path: Path) -> tuple[np.ndarray, np.ndarray, dict]:
    with np.load(path, allow_pickle=False) as archive:
        mu, logvar = archive["mu"], archive["logvar"]
    return mu, logvar, json.loads(path.with_suffix(".json").read_text())


def save_codes_to(folder: Path, mu: np.ndarray, logvar: np.ndarray, info: dict) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    stem = folder / Path(info["run"]).name
    np.savez(stem.with_suffix(".npz"), mu=mu, logvar=logvar)
    stem.with_suffix(".json").write_text(json.dumps(info, indent=2) + "\n")


def standard_suite(runs: list[Path], out: Path, codes: list[Path] = (), save_codes: Path | None = None) -> int:
    from disbench.data import FactorGridDataset
    from disbench.standard_metrics import DCI, SAP, BetaVAEScore, FactorVAEScore, Modularity, Unsupervised
    import sklearn

    load_at_start = os.getloadavg()
    factors = dsprites_factors()
    dataset = FactorGridDataset(name="dsprites_grid", images=torch.zeros((len(factors), 1, 1, 1), dtype=torch.uint8),
                                source="benchmark factor grid",
                                factor_names=("shape", "scale", "orientation", "pos_x", "pos_y"),
                                factor_sizes=DSPRITES_SIZES)
    encoded = [saved_codes(path) for path in codes] + [run_codes(run) for run in runs]
    if save_codes is not None:
        for mu_run, logvar_run, info in encoded[len(codes):]:
            save_codes_to(save_codes, mu_run, logvar_run, info)
    if encoded:
        mu, logvar, first = encoded[0]
        codes_from = f"encoder means of {first['run']} ({first['model']}, {first['steps']} steps)"
    else:
        mu = synthetic_codes(factors)
        logvar = np.zeros_like(mu)
        codes_from = "synthetic: 5 latents = factor / (size - 1) + N(0, 0.2), 5 latents N(0, 1); seed 0"
    representation = PrecomputedCodes(mu, logvar)
    metrics = {"dci": DCI(), "dci_hist": DCI(backend="hist"), "sap": SAP(), "modularity": Modularity(),
               "factorvae_score": FactorVAEScore(), "betavae_score": BetaVAEScore(), "unsupervised": Unsupervised()}
    rows = {}
    for name, metric in metrics.items():
        print(f"timing {name} ...", flush=True)
        rows[name] = measure(lambda m=metric: m(representation, dataset, seed=0))

    agreement = []
    for mu_run, _, info in encoded:
        run_rep = PrecomputedCodes(mu_run, np.zeros_like(mu_run))
        gbt = rows["dci"]["result"] if mu_run is mu else DCI()(run_rep, dataset, seed=0)
        hist = rows["dci_hist"]["result"] if mu_run is mu else DCI(backend="hist")(run_rep, dataset, seed=0)
        keys = ("disentanglement", "completeness", "informativeness_train", "informativeness_test")
        top_gbt = np.argmax(np.asarray(gbt["importance"]), axis=0)
        top_hist = np.argmax(np.asarray(hist["importance"]), axis=0)
        agreement.append({**info, "gbt": {k: gbt[k] for k in keys}, "hist": {k: hist[k] for k in keys},
                          "abs_difference": {k: abs(gbt[k] - hist[k]) for k in keys},
                          "same_most_important_latent": f"{int(np.sum(top_gbt == top_hist))}/{len(top_gbt)} factors",
                          "importance_correlation": float(np.corrcoef(np.ravel(gbt["importance"]),
                                                                      np.ravel(hist["importance"]))[0, 1])})
    load_at_end = os.getloadavg()
    report = {
        "setup": {
            "num_samples": len(factors), "num_latents": NUM_LATENTS, "factor_sizes": list(DSPRITES_SIZES),
            "codes": codes_from, "encoding_excluded": True, "cpu": cpu_model(), "cpu_count": os.cpu_count(),
            "usable_cores": len(os.sched_getaffinity(0)), "torch_threads": torch.get_num_threads(),
            "python": platform.python_version(), "numpy": np.__version__, "torch": torch.__version__,
            "scikit_learn": sklearn.__version__,
            "load_average_at_start": [round(v, 2) for v in load_at_start],
            "load_average_at_end": [round(v, 2) for v in load_at_end],
            "note": "a shared machine: other jobs ran during the measurement (see the load averages)",
        },
        "targets_wall_s": {"dci": 300.0, "every other metric": 30.0},
        "results": {name: {k: round(v, 3) for k, v in row.items() if k != "result"} | {"score": row["result"]["score"]}
                    for name, row in rows.items()},
        "dci_hist_vs_gbt": agreement,
    }
    print(f"N = {len(factors):,}, L = {NUM_LATENTS}, CPU {report['setup']['cpu']}, "
          f"load average {load_at_start[0]:.2f} at start, {load_at_end[0]:.2f} at end; codes: {codes_from}")
    print(f"{'metric':<18}{'wall s':>10}{'cpu s':>10}{'peak extra MB':>16}{'score':>12}")
    for name, row in report["results"].items():
        print(f"{name:<18}{row['wall_s']:>10.2f}{row['cpu_s']:>10.2f}{row['peak_extra_mb']:>16.1f}"
              f"{row['score']:>12.4f}")
    for item in agreement:
        print(f"DCI hist vs gbt on {item['run']}: " + ", ".join(
            f"{k} {item['gbt'][k]:.3f} / {item['hist'][k]:.3f}" for k in item["gbt"])
              + f"; most important latent agrees for {item['same_most_important_latent']}")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
