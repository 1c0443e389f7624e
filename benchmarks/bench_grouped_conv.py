"""Two ways to fuse K conv64 VAEs, side by side in one process: vmap or hand-written groups.

Issue 12 asks to measure both forms of a fused group's networks and keep the faster:

* ``loop``: K separate encoder/decoder passes (the reference: K ordinary runs);
* ``vmap``: what disbench's RunGroup does — ``torch.func.vmap`` over ``functional_call``
  with the K members' parameters stacked (torch turns each batched convolution into a
  grouped one);
* ``grouped``: the same network written by hand in grouped form — the K members' images
  side by side along the channel axis, each convolution ``groups=K`` with the K weights
  concatenated, each linear layer one batched matrix product (``baddbmm``).

Each form runs forward (encoder, reparameterisation with given noise, decoder), a
Bernoulli reconstruction + KL loss, and backward. All three are first checked against a
float64 run of the loop: losses to 1e-5 (relative), gradients no further off than 10x the
float32 loop's own error (measured: some gradients are sums that cancel, and every
float32 form, the loop included, is off them by up to ~1e-3 of their largest element). Rounds are interleaved (loop, vmap,
grouped, loop, ...) so that a change in machine load hits all three alike; the median
per form is reported with its ratio to ``loop``, the CPU model and the load averages.

    python benchmarks/bench_grouped_conv.py [--ks 2,4,8] [--batch 128] [--rounds 5]
        [--device cpu|cuda] [--out benchmarks/results/bench_grouped_conv_cpu.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.func import functional_call, stack_module_state, vmap

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from disbench.models.architecture import Decoder, Encoder, kaiming_init  # noqa: E402

LATENT = 10


class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder, self.decoder = Encoder(1, LATENT), Decoder(1, LATENT)
        kaiming_init(self)

    def forward(self, x, noise):
        mu, logvar = self.encoder(x)
        logits = self.decoder(mu + noise * torch.exp(0.5 * logvar))
        recon = F.binary_cross_entropy_with_logits(logits, x, reduction="sum") / x.shape[0]
        kl = 0.5 * (mu.pow(2) + logvar.exp() - logvar - 1).sum(1).mean()
        return recon + kl


def grouped_forward(params: dict, nets: list[Net], x: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """The K members' losses ([K]) from stacked parameters, convolutions in grouped form."""
    k, b = x.shape[:2]
    h = x.transpose(0, 1).reshape(b, k * x.shape[2], *x.shape[3:])  # [B, K*C, H, W]

    def layer(prefix, module, h):
        w, bias = params[f"{prefix}.weight"], params[f"{prefix}.bias"]
        if isinstance(module, torch.nn.Conv2d):
            return F.conv2d(h, w.flatten(0, 1), bias.flatten(), module.stride, module.padding, groups=k)
        if isinstance(module, torch.nn.ConvTranspose2d):
            return F.conv_transpose2d(h, w.flatten(0, 1), bias.flatten(), module.stride, module.padding, groups=k)
        return torch.baddbmm(bias.unsqueeze(1), h, w.transpose(1, 2))  # Linear on [K, B, in]

    template = nets[0]
    for i, module in enumerate(template.encoder.net):
        if isinstance(module, torch.nn.Flatten):
            h = h.reshape(b, k, -1).transpose(0, 1)  # [K, B, 256]
        elif isinstance(module, torch.nn.ReLU):
            h = torch.relu(h)
        else:
            h = layer(f"encoder.net.{i}", module, h)
    mu, logvar = h.chunk(2, dim=2)
    h = mu + noise * torch.exp(0.5 * logvar)
    for i, module in enumerate(template.decoder.net):
        if isinstance(module, torch.nn.Unflatten):
            h = h.transpose(0, 1).reshape(b, -1, 1, 1)  # [B, K*256, 1, 1]
        elif isinstance(module, torch.nn.ReLU):
            h = torch.relu(h)
        else:
            h = layer(f"decoder.net.{i}", module, h)
    logits = h.reshape(b, k, *x.shape[2:]).transpose(0, 1)
    recon = F.binary_cross_entropy_with_logits(logits, x, reduction="none").flatten(1).sum(1) / b
    kl = 0.5 * (mu.pow(2) + logvar.exp() - logvar - 1).sum(2).mean(1)
    return recon + kl


def make_forms(k: int, device):
    nets = [Net().to(device) for _ in range(k)]
    params, buffers = stack_module_state(nets)
    template = Net().to("meta")
    batched = vmap(lambda p, x, n: functional_call(template, p, (x, n)))

    def loop(x, noise):
        return torch.stack([net(x[i], noise[i]) for i, net in enumerate(nets)])

    forms = {"loop": (loop, [p for net in nets for p in net.parameters()]),
             "vmap": (lambda x, n: batched(params, x, n), list(params.values())),
             "grouped": (lambda x, n: grouped_forward(params, nets, x, n), list(params.values()))}
    return forms, nets, params


def step(form, x, noise):
    fn, parameters = form
    for p in parameters:
        p.grad = None
    losses = fn(x, noise)
    losses.sum().backward()
    return losses


def check_equal(forms, nets, params, x, noise) -> dict:
    """Each form's largest error against a float64 run of the loop: losses (relative)
    and gradients (relative to each member's largest gradient of that tensor)."""
    import copy

    exact_losses, exact_grads = [], {n: [] for n in params}
    for i, net in enumerate(nets):
        double = copy.deepcopy(net).double()
        loss = double(x[i].double(), noise[i].double())
        loss.backward()
        exact_losses.append(loss.detach())
        for n, p in double.named_parameters():
            exact_grads[n].append(p.grad)
    exact_losses = torch.stack(exact_losses)
    exact_grads = {n: torch.stack(g) for n, g in exact_grads.items()}
    errors = {}
    for name, form in forms.items():
        losses = step(form, x, noise).detach().double()
        if name == "loop":
            grads = {n: torch.stack([dict(net.named_parameters())[n].grad for net in nets]) for n in params}
        else:
            grads = {n: p.grad for n, p in params.items()}
        grad_error = max((((grads[n].double() - exact_grads[n]).flatten(1).abs().max(1).values
                           / exact_grads[n].flatten(1).abs().max(1).values.clamp_min(1e-30)).max().item())
                         for n in params)
        errors[name] = {"loss": ((losses - exact_losses).abs() / exact_losses.abs()).max().item(),
                        "gradient": grad_error}
    return errors


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ks", default="2,4,8")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=2, help="steps per round and form")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", default="benchmarks/results/bench_grouped_conv_cpu.json")
    args = ap.parse_args()
    device = torch.device(args.device)
    torch.manual_seed(0)
    results = []
    for k in [int(v) for v in args.ks.split(",")]:
        forms, nets, params = make_forms(k, device)
        x = (torch.rand(k, args.batch, 1, 64, 64, device=device) > 0.5).float()
        noise = torch.randn(k, args.batch, LATENT, device=device)
        errors = check_equal(forms, nets, params, x, noise)
        for name, error in errors.items():  # float32 rounding, not another computation
            if error["loss"] > 1e-5 or error["gradient"] > 10 * errors["loop"]["gradient"] + 1e-4:
                raise SystemExit(f"K={k}: {name} is off the float64 reference by {error} (loop: {errors['loop']})")
        times = {name: [] for name in forms}
        for _ in range(args.rounds):
            for name, form in forms.items():
                sync(device)
                started = time.perf_counter()
                for _ in range(args.steps):
                    step(form, x, noise)
                sync(device)
                times[name].append((time.perf_counter() - started) / args.steps)
        median = {name: statistics.median(t) for name, t in times.items()}
        row = {"k": k, "error_vs_float64": errors,
               **{f"{name}_ms_per_step": round(1e3 * m, 2) for name, m in median.items()},
               **{f"{name}_vs_loop": round(median["loop"] / m, 3) for name, m in median.items()}}
        results.append(row)
        print(json.dumps(row))
    record = {"benchmark": "bench_grouped_conv", "device": str(device), "batch": args.batch, "rounds": args.rounds,
              "steps_per_round": args.steps, "threads": torch.get_num_threads(), "torch": torch.__version__,
              "cpu": _cpu_model(), "load_average": os.getloadavg(), "python": platform.python_version(),
              "results": results}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(f"{args.out}.tmp")
    tmp.write_text(json.dumps(record, indent=2) + "\n")
    os.replace(tmp, args.out)
    print(f"wrote {args.out}")


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


if __name__ == "__main__":
    main()
