#!/usr/bin/env python
"""Speed of one training step, and (on CUDA) proof that it never waits for the GPU.

For each model it times the training step of a run (``RunGroup.step`` of a group
of one) — forward, β from the scheduler, loss, backward, Adam, auxiliary update —
on random binary 64x64 batches held on the device as uint8, exactly as a run does. On CUDA it then runs
steps under ``torch.cuda.set_sync_debug_mode("error")``: any host–device
synchronisation inside the step (an ``.item()``, a ``float(tensor)``, a Python
``if`` on a tensor) raises, and the benchmark reports it.

    python benchmarks/bench_train_step.py [--device auto] [--batch 128] [--steps 50]
        [--models dynamicvae,controlvae,vae,betavae_b,factorvae,betatcvae] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import torch

from disbench.builders import resolve_device
from disbench.config import Protocol
from disbench.plugins import get_registry
from disbench.training.group import RunGroup

from bench_throughput import finish, sync_check, synchronize  # noqa: E402  (this folder is on sys.path)


class Stepper:
    """A group's next steps, as bench_throughput's sync check calls them."""

    def __init__(self, group, step: int):
        self.group, self.t = group, step

    def step(self) -> None:
        self.t += 1
        self.group.step()


def bench_model(name: str, device: torch.device, batch: int, steps: int, warmup: int = 5) -> dict:
    torch.manual_seed(0)
    images = (torch.rand(4096, 1, 64, 64) > 0.9).to(torch.uint8) * 255
    model = get_registry("models").get(name)(latent_dim=10, num_channels=1, likelihood="bernoulli",
                                             dataset_size=737_280).to(device)
    group = RunGroup([model], images, [0], Protocol(batch_size=batch, lr=1e-4, adam_betas=(0.9, 0.99)), device)
    step = 0
    for _ in range(warmup):
        step += 1
        group.step()
    synchronize(device)
    started = time.perf_counter()
    for _ in range(steps):
        step += 1
        group.step()
    synchronize(device)
    seconds = (time.perf_counter() - started) / steps
    out = {"ms_per_step": round(seconds * 1e3, 3), "images_per_s": round(batch / seconds, 1)}
    if device.type == "cuda":
        out["host_syncs_in_step"] = sync_check(Stepper(group, step))
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="auto")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--models", default="dynamicvae,controlvae,vae,betavae_b,factorvae,betatcvae")
    p.add_argument("--json", help="also write the results here")
    args = p.parse_args(argv)
    device = resolve_device(args.device)
    setup = {"device": str(device), "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
             "batch": args.batch, "steps": args.steps, "torch": torch.__version__,
             "threads": torch.get_num_threads(), "machine": platform.machine()}
    print(json.dumps(setup))
    results = {}
    for name in args.models.split(","):
        results[name] = bench_model(name, device, args.batch, args.steps)
        print(f"{name:>12}: {results[name]}", flush=True)
    return finish({"setup": setup, "results": results}, args.json)


if __name__ == "__main__":
    raise SystemExit(main())
