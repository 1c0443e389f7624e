"""Speed and memory of the MIG-family metrics at dSprites scale (issue 5).

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
    parser.add_argument("--entropy-samples", type=int, default=1000,
                        help="S for mig_sampled_score (10000 is the metric default; ~10x the time)")
    parser.add_argument("--repeats", type=int, default=3, help="repeats of the fast mig_score timing")
    parser.add_argument("--skip-mig-sampled", action="store_true")
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("results") / "bench_metrics.json")
    args = parser.parse_args(argv)

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


if __name__ == "__main__":
    raise SystemExit(main())
