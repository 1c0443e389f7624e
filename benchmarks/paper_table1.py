#!/usr/bin/env python
"""The paper's Table 1 on dSprites with the full protocol — a job for a GPU.

Six models × five seeds under ``gin/protocols/dsprites.gin``, evaluated with
RMIG and MIG. The script prints the ``disbench compare`` command it runs and
an estimate of how long that takes (from timing a few training steps on this
device), then runs it. Interrupted? Run it again: compare skips finished runs
and resumes the others from their checkpoints.

    python benchmarks/paper_table1.py --plan                 # print the command and the estimate only
    python benchmarks/paper_table1.py --jobs 4 --device cuda # one run per GPU on a 4-GPU machine

Options it does not know (``--data-root DIR``, ``--gin_param ...``) are passed on to compare.
Results: OUT/table.md, OUT/table.csv, OUT/figures, OUT/compare.json.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time

MODELS = "dynamicvae,controlvae,factorvae,betavae_b,betavae_h,vae"
METRICS = "rmig,mig"
TIMING_MODEL = "vae"  # the shared conv64 encoder/decoder step; the controllers add next to nothing


def build_parser(description: str, *, protocol: str, seeds: str, out: str, device: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default=out, help=f"the compare directory (default: {out})")
    p.add_argument("--protocol", default=protocol, help=f"protocol name or .gin file (default: {protocol})")
    p.add_argument("--models", default=MODELS, help=f"default: {MODELS}")
    p.add_argument("--seeds", default=seeds, help=f"default: {seeds}")
    p.add_argument("--metrics", default=METRICS, help=f"default: {METRICS}")
    p.add_argument("--jobs", type=int, default=1, help="runs at a time (compare --jobs; default 1)")
    p.add_argument("--device", default=device, help=f"compare --device (default: {device})")
    p.add_argument("--plan", action="store_true", help="only print the command and the time estimate")
    p.add_argument("--timing-steps", type=int, default=20, help="training steps timed for the estimate (default 20)")
    return p


def compare_argv(args, extra: list[str]) -> list[str]:
    return ["compare", "--models", args.models, "--seeds", args.seeds, "--protocol", args.protocol,
            "--metrics", args.metrics, "--out", args.out, "--jobs", str(args.jobs), "--device", args.device, *extra]


def seconds_per_step(protocol: str, device_name: str, steps: int) -> tuple[float, dict]:
    """Time ``steps`` optimizer steps of the protocol's VAE on a random batch (after a warm-up)."""
    import torch

    from disbench.builders import resolve_device
    from disbench.config import ConfigSources, build_protocol, parse_sources
    from disbench.plugins import get_registry

    device = resolve_device(device_name.split(",")[0])
    parse_sources(ConfigSources(protocol=protocol), model=TIMING_MODEL)
    proto = build_protocol()
    # one channel, 64×64, Bernoulli: dSprites' shape; building the real dataset just to time would take longer
    model = get_registry("models").get(TIMING_MODEL)(latent_dim=proto.latent_dim, num_channels=1).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=proto.lr, betas=proto.adam_betas)
    batch = (torch.rand(proto.batch_size, 1, 64, 64, device=device) > 0.9).float()

    def step():
        terms = model(batch)
        loss = terms.recon + terms.kl
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    for _ in range(3):
        step()
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    sync()
    started = time.perf_counter()
    for _ in range(steps):
        step()
    sync()
    return (time.perf_counter() - started) / steps, {"device": str(device), "batch_size": proto.batch_size,
                                                     "steps": proto.steps}


def remaining_steps(args, protocol_steps: int) -> tuple[int, int]:
    """(runs left, training steps left) in OUT, counting what earlier invocations finished."""
    from disbench.compare.plan import parse_seeds, read_status, run_dir_for

    runs = steps = 0
    for model in [m for m in args.models.split(",") if m]:
        for seed in parse_seeds(args.seeds):
            results = read_status(run_dir_for(args.out, model, seed)) or {}
            if results.get("status") != "complete":
                runs += 1
                steps += protocol_steps - int(results.get("steps") or 0)
    return runs, steps


def runs_at_once(jobs: int, device_spec: str, device: str) -> int:
    """How many runs really progress side by side: one per GPU in use. Runs sharing a
    device do not go faster together, and on the CPU the jobs split its threads."""
    import torch

    if not device.startswith("cuda"):
        return 1
    names = [n for n in device_spec.split(",") if n]
    gpus = len(set(names)) if len(names) > 1 else torch.cuda.device_count() if device_spec in ("cuda", "auto") else 1
    return max(1, min(jobs, gpus))


def duration(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 60:.1f} min" if seconds >= 60 else f"{seconds:.0f} s"


def print_plan(args, extra: list[str]) -> None:
    print("command: disbench " + shlex.join(compare_argv(args, extra)))
    per_step, facts = seconds_per_step(args.protocol, args.device, args.timing_steps)
    runs, steps = remaining_steps(args, facts["steps"])
    parallel = runs_at_once(args.jobs, args.device, facts["device"])
    seconds = steps * per_step / parallel
    print(f"timing: {per_step * 1e3:.1f} ms per training step (batch {facts['batch_size']}, {facts['device']}, "
          f"{args.timing_steps} steps timed)")
    print(f"estimate: {runs} runs left, {steps:,} training steps, {parallel} at a time -> about {duration(seconds)} "
          f"of training, plus evaluating {args.metrics} on the whole dataset per run and FactorVAE's "
          "discriminator steps, which this estimate leaves out")


def main(argv=None) -> int:
    parser = build_parser(__doc__.split("\n\n")[0], protocol="dsprites", seeds="1-5",
                          out="results/paper_table1", device="auto")
    args, extra = parser.parse_known_args(argv)
    from disbench.cli import main as disbench_main
    from disbench.errors import DisbenchError

    try:
        print_plan(args, extra)
    except DisbenchError as exc:
        print(f"paper_table1: error: {exc}", file=sys.stderr)
        return 2
    if args.plan:
        return 0
    return disbench_main(compare_argv(args, extra))


if __name__ == "__main__":
    sys.exit(main())
