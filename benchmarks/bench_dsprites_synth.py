"""Benchmark: generate the full dsprites_synth set, load it from its cache, and
(optionally) load a full-size official-layout dSprites npz.

Each phase runs in its own process so its peak RSS (``ru_maxrss``) is its own;
``baseline_rss_mb`` is a process's RSS after the imports, before any data.

    python benchmarks/bench_dsprites_synth.py [--official-layout] [--out FILE.json] [--workdir DIR]

The full set needs ~3.5 GB of memory and ~400 MB of disk for the cache
(``--official-layout`` another ~3.5 GB of memory and the npz's disk space).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


def phase_synth() -> dict:
    """Load (generating if the cache is cold) the full dsprites_synth."""
    from disbench.datasets.dsprites_synth import dsprites_synth

    baseline = _rss_mb()
    start = time.perf_counter()
    ds = dsprites_synth(progress=False)
    seconds = time.perf_counter() - start
    cache = Path(ds.info["cache"])
    sidecar = json.loads(cache.with_suffix(".json").read_text())
    return {"seconds": seconds, "peak_rss_mb": _peak_mb(), "baseline_rss_mb": baseline,
            "images": len(ds), "images_mb": ds.images.numel() / 2**20,
            "cache_path": str(cache), "cache_mb": cache.stat().st_size / 2**20,
            "packed_sha256": sidecar["sha256"], "source": ds.source}


def phase_write_official(path: str) -> dict:
    """Write a full-size npz in the official layout (from the cached synthetic set)."""
    import numpy as np

    from disbench.datasets.dsprites_synth import FULL_SIZES, build

    images, _ = build(FULL_SIZES, progress=False)
    np.floor_divide(images, 255, out=images)  # back to the official 0/1
    n = len(images)
    factors = np.stack(np.unravel_index(np.arange(n), FULL_SIZES), axis=1)
    classes = np.concatenate([np.zeros((n, 1), dtype=np.int64), factors], axis=1)
    start = time.perf_counter()
    np.savez_compressed(path, imgs=images, latents_classes=classes, latents_values=classes.astype(np.float64),
                        metadata=np.array([{"note": "benchmark stand-in"}], dtype=object))
    return {"seconds": time.perf_counter() - start, "npz_mb": Path(path).stat().st_size / 2**20}


def phase_official(path: str) -> dict:
    """Load the official-layout npz with the `dsprites` loader."""
    from disbench.datasets.dsprites import dsprites

    baseline = _rss_mb()
    start = time.perf_counter()
    ds = dsprites(path=path)
    return {"seconds": time.perf_counter() - start, "peak_rss_mb": _peak_mb(), "baseline_rss_mb": baseline,
            "images": len(ds), "images_mb": ds.images.numel() / 2**20}


PHASES = {"synth": phase_synth, "write_official": phase_write_official, "official": phase_official}


def run_phase(name: str, env: dict, *args: str) -> dict:
    proc = subprocess.run([sys.executable, __file__, "--phase", name, *args], env=env, cwd=REPO,
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"phase {name} failed:\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--official-layout", action="store_true", help="also time the official npz loader")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "bench_dsprites_synth.json"))
    parser.add_argument("--workdir", help="cache/npz folder (default: a fresh temporary one, removed after)")
    parser.add_argument("--phase", choices=sorted(PHASES), help=argparse.SUPPRESS)
    parser.add_argument("args", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:
        print(json.dumps(PHASES[args.phase](*args.args)))
        return

    with tempfile.TemporaryDirectory(dir=args.workdir) as work:
        env = dict(os.environ, DISBENCH_CACHE=work, DISBENCH_NO_PROGRESS="1",
                   PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
        results = {"cpu_count": os.cpu_count(), "generate": run_phase("synth", env),
                   "load_cache": run_phase("synth", env)}
        if args.official_layout:
            npz = str(Path(work) / "dsprites_official_layout.npz")
            results["write_official_npz"] = run_phase("write_official", env, npz)
            results["load_official"] = run_phase("official", env, npz)
    for name, r in results.items():
        if isinstance(r, dict):
            extra = f", peak RSS {r['peak_rss_mb']:.0f} MB (baseline {r['baseline_rss_mb']:.0f} MB)" \
                if "peak_rss_mb" in r else ""
            print(f"{name}: {r['seconds']:.1f} s{extra}")
    print(f"cache: {results['generate']['cache_mb']:.0f} MB; images: {results['generate']['images_mb']:.0f} MB")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
