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
* ``table1 K=n`` (``--table1-ks``): the paper's Table 1 as one group — its six models
  (VAE, β-VAE, FactorVAE, β-TCVAE, ControlVAE, DynamicVAE), n/6 runs of each, one
  forward pass for all, each model's loss over its runs (under ``cudagraph`` too with
  ``--cudagraph`` on CUDA). Its ``run_steps_per_s`` is the figure the GPU target is
  stated in: 6,250 run-steps/s, 45 M run-steps in 2 hours.

    python benchmarks/bench_throughput.py [--device auto] [--batch 128] [--steps 10]
        [--rounds 3] [--ks 2,4,8] [--options bf16,channels_last] [--compile]
        [--cudagraph] [--cudagraph-ks 16] [--table1-ks 30] [--max-seconds S] [--json out.json]

The output and the JSON name the hardware (the CPU model, the kernel level torch
dispatches to — ``torch.backends.cpu.get_cpu_capability()``, lowered by
``ATEN_CPU_CAPABILITY`` — and its threads; the GPU on CUDA) and end with the ratio
``default / reference`` (disbench's default run against the reference loop, images/s; the
JSON's ``default_vs_reference``, and ``default_vs_reference_each_round`` for its spread).
The JSON is rewritten (atomically) after every configuration built and every one timed,
so a run stopped midway keeps what it measured; ``--max-seconds`` stops building
configurations and starting rounds after that long (those left out are listed under
``not_timed``). A 1-minute load of 0.5 or more on the CPU is warned about: measure on an
idle machine.

On CUDA every disbench step also runs once under
``torch.cuda.set_sync_debug_mode("error")`` (a host synchronisation inside the
step fails loudly and is reported).
"""

from __future__ import annotations

import argparse
import itertools
import os
import platform
import statistics
import sys
import time
from dataclasses import replace

import torch
from torch.utils.data import DataLoader, TensorDataset

from disbench.builders import resolve_device
from disbench.config import Protocol
from disbench.execution import CPU_ENV, cpu_facts, device_facts
from disbench.io import atomic_write_json
from disbench.plugins import get_registry
from disbench.training.group import RunGroup

NUM_IMAGES = 4096


def images_uint8(n: int = NUM_IMAGES) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return (torch.rand(n, 1, 64, 64, generator=g) > 0.9).to(torch.uint8) * 255


TABLE_1 = ("vae", "betavae_h", "factorvae", "betatcvae", "controlvae", "dynamicvae")  # the paper's Table 1


def new_model(device, seed: int, name: str = "dynamicvae"):
    torch.manual_seed(seed)
    return get_registry("models").get(name)(latent_dim=10, num_channels=1, likelihood="bernoulli",
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
    """A group of ``k`` runs: of DynamicVAE, or of ``models`` (k / len(models) runs of each)."""

    def __init__(self, device, batch: int, k: int = 1, models: tuple = ("dynamicvae",), **options):
        protocol = replace(Protocol(batch_size=batch, lr=1e-4, adam_betas=(0.9, 0.99)), **options)
        names = [name for name in models for _ in range(k // len(models))]  # each model's runs together
        self.group = RunGroup([new_model(device, s, name) for s, name in enumerate(names)], images_uint8(),
                              list(range(k)), protocol, device)
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
    for k in table1_sizes(args.table1_ks):
        configs[f"table1 K={k}"] = (lambda k: lambda: Disbench(device, args.batch, k, TABLE_1))(k)
        if args.cudagraph and device.type == "cuda":
            configs[f"table1 K={k} cudagraph"] = (lambda k: lambda: Disbench(device, args.batch, k, TABLE_1,
                                                                              compile="cudagraph"))(k)
    return configs


def table1_sizes(text: str) -> list[int]:
    sizes = [int(k) for k in filter(None, text.split(","))]
    if any(k < len(TABLE_1) or k % len(TABLE_1) for k in sizes):
        raise SystemExit(f"--table1-ks {text!r}: each size must be a multiple of {len(TABLE_1)} "
                         f"(runs of each of {', '.join(TABLE_1)})")
    return sizes


def cpu_identity() -> str | None:
    """Vendor, family, model and stepping from /proc/cpuinfo: in a VM the model name may say only
    'AMD EPYC', and these tell its generation (family 25 model 17: Zen 4)."""
    try:
        with open("/proc/cpuinfo") as f:
            first = [line.split(":", 1) for line in itertools.takewhile(str.strip, f) if ":" in line]
    except OSError:
        return None
    fields = {key.strip(): value.strip() for key, value in first}
    if "cpu family" not in fields:
        return None
    return (f"{fields.get('vendor_id', '?')} family {fields['cpu family']} model {fields.get('model', '?')} "
            f"stepping {fields.get('stepping', '?')}")


def hardware(device) -> dict:
    """What ran it: the CPU, the kernel level torch dispatches to, threads; the GPU on CUDA."""
    facts = {"cpu": {**cpu_facts(), "id": cpu_identity()}, "threads": torch.get_num_threads(),
             "interop_threads": torch.get_num_interop_threads()}
    if device.type == "cuda":
        facts["gpu"] = device_facts(device)
    return facts


def describe_hardware(facts: dict) -> str:
    cpu = facts["cpu"]
    name = f"{cpu['name']} ({cpu['id']})" if cpu.get("id") else cpu["name"]
    forced = ", ".join(f"{k}={cpu[k]}" for k in CPU_ENV if k in cpu)
    kernels = f"{cpu['capability']} ({forced})" if forced else cpu["capability"]
    line = f"{name}, torch CPU kernels {kernels}, {facts['threads']} threads"
    gpu = facts.get("gpu")
    return line + (f"; GPU {gpu['name']} (capability {gpu['capability']})" if gpu else "")


def summarize(runners: dict, times: dict) -> dict:
    """Every configuration timed so far: its median over the rounds done (each round's kept: the spread
    says how steady the machine was), and its ratio to the reference."""
    timed = {name: statistics.median(t) for name, t in times.items() if t}
    if "reference" not in timed:
        return {}
    reference = runners["reference"].images_per_step / timed["reference"]
    results = {}
    for name, seconds in timed.items():
        runner = runners[name]
        aggregate = runner.images_per_step / seconds
        k = getattr(runner, "k", 1)
        results[name] = {"runs": k, "rounds": len(times[name]), "ms_per_step": round(seconds * 1e3, 2),
                         "ms_per_step_each_round": [round(t * 1e3, 1) for t in times[name]],
                         "images_per_s_per_run": round(aggregate / k, 1),
                         "images_per_s_aggregate": round(aggregate, 1),
                         "run_steps_per_s": round(k / seconds, 2),
                         "vs_reference": round(aggregate / reference, 2)}
    return results


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
    p.add_argument("--table1-ks", default="", help="sizes of a group of the paper's six models (multiples of 6)")
    p.add_argument("--max-seconds", type=float, default=None,
                   help="build no further configuration and start no further round after this many seconds "
                        "(the reference and disbench are always built, one round always runs)")
    p.add_argument("--json", help="also write the results here (rewritten after every configuration)")
    args = p.parse_args(argv)
    started = time.monotonic()

    def over_time() -> bool:
        return args.max_seconds is not None and time.monotonic() - started > args.max_seconds

    device = resolve_device(args.device)
    setup = {"device": str(device), "hardware": hardware(device), "torch": torch.__version__,
             "batch": args.batch, "steps": args.steps, "rounds": args.rounds, "machine": platform.machine(),
             "load_average_before": os.getloadavg()}
    print(f"hardware: {describe_hardware(setup['hardware'])}", flush=True)
    if device.type == "cpu" and setup["load_average_before"][0] >= 0.5:
        print(f"warning: 1-minute load {setup['load_average_before'][0]:.2f} >= 0.5: "
              f"other work shares this CPU and slows every configuration unevenly", file=sys.stderr, flush=True)
    # rewritten after every configuration built and timed: a run killed midway keeps what it measured
    report = {"setup": setup, "results": {}, "not_timed": {}, "default_vs_reference": None, "complete": False}

    runners: dict = {}
    for name, make in configurations(args, device).items():
        if name not in ("reference", "disbench") and over_time():
            report["not_timed"][name] = f"not built: --max-seconds {args.max_seconds:g} reached"
            continue
        try:
            runners[name] = make()
            for _ in range(args.warmup):
                runners[name].step()
        except Exception as exc:  # one configuration that fails (a compile) must not lose the others
            if name in ("reference", "disbench"):
                raise
            runners.pop(name, None)
            report["not_timed"][name] = failed(exc)
        report["built"] = list(runners)
        finish(report, args.json)
    times: dict[str, list[float]] = {name: [] for name in runners}
    for round_index in range(args.rounds):
        if round_index and over_time():
            report["rounds_stopped"] = (f"after {round_index} of {args.rounds} rounds: --max-seconds "
                                        f"{args.max_seconds:g} reached")
            break
        for name, runner in list(runners.items()):
            try:
                times[name].append(time_steps(runner, device, args.steps))
            except Exception as exc:
                if name in ("reference", "disbench"):
                    raise
                del runners[name], times[name]
                report["not_timed"][name] = failed(exc)
            report["results"] = summarize(runners, times)
            finish(report, args.json)
    results = report["results"]
    for name, runner in runners.items():
        if device.type == "cuda" and name != "reference":
            results[name]["host_syncs_in_step"] = sync_check(runner)
        print(f"{name:>22}: {results[name]}", flush=True)
    for name, why in report["not_timed"].items():
        print(f"{name:>22}: not timed: {why}", flush=True)
    default, reference = (results[n]["images_per_s_aggregate"] for n in ("disbench", "reference"))
    report["default_vs_reference"] = ratio = round(default / reference, 3)
    # the same ratio within each round (both timed seconds apart): a machine whose speed drifts
    # during the run moves both alike, so the spread of these says how far to trust the ratio
    report["default_vs_reference_each_round"] = rounds = [round(r / d, 3) for r, d in
                                                          zip(times["reference"], times["disbench"])]
    print(f"default / reference: {ratio:.3f}x ({default} vs {reference} images/s, median of {len(rounds)} "
          f"rounds of {args.steps} steps; round by round {min(rounds):.3f}-{max(rounds):.3f}x, median "
          f"{statistics.median(rounds):.3f}x; {describe_hardware(setup['hardware'])})", flush=True)
    setup["load_average_after"] = os.getloadavg()
    report["complete"] = True
    status = finish(report, args.json)
    return 1 if any(why.startswith("failed") for why in report["not_timed"].values()) else status


def failed(exc: Exception) -> str:
    return f"failed: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"


def finish(report: dict, json_path: str | None) -> int:
    """Write the report (if asked; atomically: a reader never sees half of it); exit status 1 if any
    step synchronised with the host (a configuration that failed also gives 1, in ``main``)."""
    if json_path:
        atomic_write_json(json_path, report)
    syncs = [n for n, r in report["results"].items() if r.get("host_syncs_in_step", "none") != "none"]
    return 1 if syncs else 0


if __name__ == "__main__":
    raise SystemExit(main())
