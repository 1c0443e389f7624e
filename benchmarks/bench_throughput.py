#!/usr/bin/env python
"""Training throughput, side by side in one process: a reference loop in the style
of the authors' released code, disbench's run, its precision/layout/compile
options, and fused groups of K runs.

Every configuration trains DynamicVAE (conv64, the incremental PI controller) on
the same random binary 64x64 images at the same batch size, and is timed in
interleaved rounds (each round times every configuration once; the median round
counts), so that a machine whose load changes affects all alike.

* ``reference``: a ``DataLoader`` over a float32 ``TensorDataset`` with shuffling,
  the conv64 VAE, the KL fetched with ``.item()`` every step to feed the
  controller (its float path), FP32 — how the released code trains.
* ``disbench``: a run as ``disbench train`` trains it (a group of one): uint8
  images on the device sampled by index, the controller on the device.
* ``disbench bf16`` / ``channels_last`` / ``compile``: the Protocol options.
* ``disbench cudagraph`` / ``fused K=n cudagraph`` (CUDA only, ``--cudagraph``):
  ``Protocol.compile = 'cudagraph'``, the step's forward and backward replayed as
  CUDA graphs, for one run and for the groups of ``--cudagraph-ks``.
* ``fused K=n``: n runs trained as one group; images/s is the aggregate.

    python benchmarks/bench_throughput.py [--device auto] [--batch 128] [--steps 10]
        [--rounds 3] [--ks 2,4,8] [--options bf16,channels_last] [--compile]
        [--cudagraph] [--cudagraph-ks 16] [--json out.json]

On CUDA every disbench step also runs once under
``torch.cuda.set_sync_debug_mode("error")`` (a host synchronisation inside the
step fails loudly and is reported).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from dataclasses import replace

import torch
from torch.utils.data import DataLoader, TensorDataset

from disbench.builders import resolve_device
from disbench.config import Protocol
from disbench.determinism import cpu_name
from disbench.plugins import get_registry
from disbench.training.group import RunGroup

NUM_IMAGES = 4096


def images_uint8(n: int = NUM_IMAGES) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return (torch.rand(n, 1, 64, 64, generator=g) > 0.9).to(torch.uint8) * 255


def new_model(device, seed: int):
    torch.manual_seed(seed)
    return get_registry("models").get("dynamicvae")(latent_dim=10, num_channels=1, likelihood="bernoulli",
                                                    dataset_size=NUM_IMAGES).to(device)


class Reference:
    """The released code's loop: DataLoader, per-step .item(), FP32."""

    def __init__(self, device, batch: int):
        self.device, self.batch = device, batch
        data = TensorDataset(images_uint8().float().div_(255))
        self.loader = DataLoader(data, batch_size=batch, shuffle=True, drop_last=True)
        self.batches = iter(self.loader)
        self.model = new_model(device, 0)
        self.scheduler = self.model.scheduler
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=1e-4, betas=(0.9, 0.99))
        self.t = 0

    def step(self) -> None:
        try:
            (x,) = next(self.batches)
        except StopIteration:
            self.batches = iter(self.loader)
            (x,) = next(self.batches)
        x = x.to(self.device)
        terms = self.model(x)
        beta = self.scheduler.step(terms.kl.item())  # the host reads the KL every step
        loss = terms.recon + beta * terms.kl
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()

    images_per_step = property(lambda self: self.batch)


class Disbench:
    def __init__(self, device, batch: int, k: int = 1, **options):
        protocol = replace(Protocol(batch_size=batch, lr=1e-4, adam_betas=(0.9, 0.99)), **options)
        self.group = RunGroup([new_model(device, s) for s in range(k)], images_uint8(), list(range(k)),
                              protocol, device)
        self.batch, self.k, self.t = batch, k, 0

    def step(self) -> None:
        self.t += 1
        self.group.step()

    images_per_step = property(lambda self: self.batch * self.k)


def synchronize(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_steps(runner, device, steps: int) -> float:
    synchronize(device)
    started = time.perf_counter()
    for _ in range(steps):
        runner.step()
    synchronize(device)
    return (time.perf_counter() - started) / steps


def sync_check(runner) -> str:
    torch.cuda.set_sync_debug_mode("error")
    try:
        runner.step()
        return "none"
    except RuntimeError as exc:
        return f"SYNC: {str(exc).splitlines()[0]}"
    finally:
        torch.cuda.set_sync_debug_mode("default")


def configurations(args, device) -> dict:
    configs = {"reference": lambda: Reference(device, args.batch), "disbench": lambda: Disbench(device, args.batch)}
    for option in filter(None, args.options.split(",")):
        settings = {"bf16": {"precision": "bf16"}, "channels_last": {"channels_last": True}}[option]
        configs[f"disbench {option}"] = (lambda s: lambda: Disbench(device, args.batch, **s))(settings)
    if args.compile:
        configs["disbench compile"] = lambda: Disbench(device, args.batch, compile="compile")
    if args.cudagraph and device.type == "cuda":
        configs["disbench cudagraph"] = lambda: Disbench(device, args.batch, compile="cudagraph")
    for k in (int(k) for k in filter(None, args.ks.split(","))):
        configs[f"fused K={k}"] = (lambda k: lambda: Disbench(device, args.batch, k))(k)
    if args.cudagraph and device.type == "cuda":
        for k in (int(k) for k in filter(None, args.cudagraph_ks.split(","))):
            configs[f"fused K={k} cudagraph"] = (lambda k: lambda: Disbench(device, args.batch, k,
                                                                             compile="cudagraph"))(k)
    return configs


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="auto")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--steps", type=int, default=10, help="timed steps per configuration and round")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--ks", default="2,4,8", help="fused group sizes")
    p.add_argument("--options", default="bf16,channels_last")
    p.add_argument("--compile", action="store_true", help="also time Protocol.compile = 'compile' (slow to build)")
    p.add_argument("--cudagraph", action="store_true",
                   help="on CUDA, also time Protocol.compile = 'cudagraph' (one run, and --cudagraph-ks groups)")
    p.add_argument("--cudagraph-ks", default="", help="fused group sizes also timed under 'cudagraph'")
    p.add_argument("--json", help="also write the results here")
    args = p.parse_args(argv)
    device = resolve_device(args.device)
    setup = {"device": str(device), "device_name": torch.cuda.get_device_name(device) if device.type == "cuda"
             else cpu_name(), "cpu": cpu_name(), "threads": torch.get_num_threads(), "torch": torch.__version__,
             "batch": args.batch, "steps": args.steps, "rounds": args.rounds, "machine": platform.machine(),
             "load_average_before": os.getloadavg()}
    print(json.dumps(setup), flush=True)

    runners = {}
    for name, make in configurations(args, device).items():
        runners[name] = make()
        for _ in range(args.warmup):
            runners[name].step()
    times: dict[str, list[float]] = {name: [] for name in runners}
    for _ in range(args.rounds):
        for name, runner in runners.items():
            times[name].append(time_steps(runner, device, args.steps))
    reference = runners["reference"].images_per_step / statistics.median(times["reference"])
    results = {}
    for name, runner in runners.items():
        seconds = statistics.median(times[name])
        aggregate = runner.images_per_step / seconds
        k = getattr(runner, "k", 1)
        results[name] = {"runs": k, "ms_per_step": round(seconds * 1e3, 2),
                         "images_per_s_per_run": round(aggregate / k, 1),
                         "images_per_s_aggregate": round(aggregate, 1),
                         "run_steps_per_s": round(k / seconds, 2),
                         "vs_reference": round(aggregate / reference, 2)}
        if device.type == "cuda" and name != "reference":
            results[name]["host_syncs_in_step"] = sync_check(runner)
        print(f"{name:>22}: {results[name]}", flush=True)
    setup["load_average_after"] = os.getloadavg()
    return finish(setup, results, args.json)


def finish(setup: dict, results: dict, json_path: str | None) -> int:
    """Write the JSON (if asked); exit status 1 if any step synchronised with the host."""
    if json_path:
        with open(json_path, "w") as f:
            json.dump({"setup": setup, "results": results}, f, indent=2)
    syncs = [n for n, r in results.items() if r.get("host_syncs_in_step", "none") != "none"]
    return 1 if syncs else 0


if __name__ == "__main__":
    raise SystemExit(main())
