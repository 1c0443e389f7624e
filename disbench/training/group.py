"""K runs of one model trained as one computation (K = 1: one ordinary run).

The members are ordinary models, built as for K separate runs (each with its
own seed and scheduler bindings; one shared model configuration). Their
parameters are stacked (``torch.func.stack_module_state``: one [K, ...] tensor
per parameter) and the model's methods run once per member under
``torch.func.vmap`` over ``functional_call`` — which turns the K small
convolutions into one grouped convolution. One Adam runs over the stacked
parameters (Adam is element-wise, so this is K Adams), and the schedulers
of all members are stepped at once on the [K] KLs
(:func:`disbench.schedulers.group_scheduler`).

Each member draws its batches from its own sampler and its noise from its own
generator, both seeded by its run seed, so a member sees exactly the data and
noise it would see trained alone; what differs is only the order of
floating-point operations in the grouped kernels.

Members are independent: nothing mixes them but the sum of their losses,
whose gradient is 1 for each. A member whose numbers go non-finite is left
to itself (its NaNs stay in its slices) and the others train on.

The step is free of host work: the step counter the losses see is a 0-dim
int64 tensor on the device (``step_count``), the schedulers keep their state
(their own step counter and set point C(t) included) on the device, and
nothing reads a value back. So the part of the step from the batch to the
summed loss — forward, controller, loss, and with it the backward that
autograd derives from it — is one function (``_compute``) that
``Protocol.compile`` compiles as it is: ``'compile'`` with ``torch.compile``,
``'cudagraph'`` with ``torch.compile(mode="reduce-overhead")``, which replays
it (and its backward) as CUDA graphs. Left outside it, run eagerly: the
members' draws (one call per member and generator: each member's own stream
must stay what it is alone, and one call cannot draw from K generators) and
Adam (``fused`` on CUDA, ``foreach`` elsewhere: a few kernels for all
parameters). A scheduler group that is not ``capturable`` (a third party's,
stepped member by member on the host) is stepped outside the compiled code.
"""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.func import functional_call, stack_module_state, vmap
from torch.utils._pytree import tree_map

from ..builders import canonical_device, check_compile_mode
from ..errors import DisbenchError
from ..data import DeviceSampler
from ..models.base import Terms
from ..schedulers import group_scheduler

NOISE_SEED_OFFSET = 0x6E6F6973  # a run's noise generator is seeded with seed + this ("nois")


class _Method(nn.Module):
    """Calls one method of a model, so that ``functional_call`` can run it."""

    def __init__(self, model: nn.Module, method: str):
        super().__init__()
        self.model, self.method = model, method

    def forward(self, *args):
        if self.method != "forward":  # loss methods take Terms; vmap passes them as a dict
            fields = dict(args[0])
            kl = fields.pop("kl", None)
            terms = Terms(**fields)
            if kl is not None:  # the KL sum the group already has: not summed again
                terms.kl = kl
            args = (terms, *args[1:])
        out = getattr(self.model, self.method)(*args)
        if isinstance(out, Terms):
            return out.as_dict()
        if out is None:
            return None
        loss, extras = out
        return loss, {k: v for k, v in extras.items()}


class RunGroup:
    """The stacked state and the step of K members (see the module docstring)."""

    def __init__(self, models: list[nn.Module], images: torch.Tensor, seeds: list[int], protocol, device):
        self.size = len(models)
        self.device = canonical_device(device)
        self.protocol = protocol
        self.models = models
        self.latent_dim = models[0].latent_dim
        self.params, self.buffers = stack_module_state(models)  # new leaves on the members' device
        if protocol.channels_last:
            self.params = {n: member_channels_last(p).detach().requires_grad_() for n, p in self.params.items()}
        self._state_order = {n: i for i, n in enumerate(models[0].state_dict())}  # a checkpoint's key order
        template = copy.deepcopy(models[0]).to("meta")
        template.compute_dtype = torch.bfloat16 if protocol.precision == "bf16" else None
        self.model_name = type(models[0]).__name__
        self._functions = {}
        for name, in_dims in (("forward", (0, 0, 0)), ("loss", (0, 0, 0, None)),
                              ("auxiliary_loss", (0, 0, 0, None))):  # None: the step, the same for all
            call = _Method(template, name)
            fn = (lambda c: lambda s, *a: functional_call(c, s, a))(call)
            self._functions[name] = fn if self.size == 1 else vmap(fn, in_dims=in_dims)
        auxiliary = models[0].auxiliary_parameters()
        self.auxiliary_names = {name: [p for p in self.params if p.startswith(spec["prefix"])]
                                for name, spec in auxiliary.items()}
        owned = {p for names in self.auxiliary_names.values() for p in names}
        self.main_names = [p for p in self.params if p not in owned]
        self._auxiliary_owned = owned
        self.optimizer = adam([self.params[n] for n in self.main_names], protocol.lr, protocol.adam_betas,
                              self.device)
        self.auxiliary_optimizers = {
            name: adam([self.params[n] for n in self.auxiliary_names[name]], spec["lr"], spec["betas"],
                       self.device)
            for name, spec in auxiliary.items()}
        self.schedulers = group_scheduler([m.scheduler for m in models])
        if callable(getattr(self.schedulers, "to", None)):
            self.schedulers.to(self.device)
        images = images.to(self.device)  # one copy on the device, shared by the members' samplers
        self.samplers = [DeviceSampler(images, protocol.batch_size, self.device, seed=s) for s in seeds]
        self.noise_generators = [torch.Generator(device=self.device) for _ in seeds]
        for generator, seed in zip(self.noise_generators, seeds):
            generator.manual_seed(int(seed) + NOISE_SEED_OFFSET)
        # The step the losses see, on the device (set on resume, advanced by each step).
        self.step_count = torch.zeros((), dtype=torch.int64, device=self.device)
        # The arguments of each call, made once: the same tensors every step (each
        # detached alias shares its parameter's storage, which Adam updates in place).
        self._forward_state = self._state()
        self._main_state = self._state(owned.__contains__)
        self._auxiliary_state = self._state(lambda name: name not in owned)
        self._eager_scheduler_step = torch.compiler.disable(self.schedulers.step)
        self._compute = self._compiled(self._main_step)
        self._compute_auxiliary = self._compiled(self._auxiliary_step)
        self._static_marked = False

    def _compiled(self, fn):
        """``fn`` as ``Protocol.compile`` says: as it is, compiled, or compiled for CUDA graphs."""
        mode = self.protocol.compile
        check_compile_mode(self.protocol, self.device)
        if mode == "none":
            return fn
        compiled = torch.compile(fn, dynamic=False, **({"mode": "reduce-overhead"} if mode == "cudagraph" else {}))

        def reported(*args):
            try:
                return compiled(*args)
            except DisbenchError:
                raise
            except Exception as exc:  # torch.compile's own failures end in many exception types
                raise DisbenchError(f"Protocol.compile = {mode!r}: {self.model_name}'s step failed under "
                                    f"torch.compile ({root_cause(exc)}); train it with "
                                    f"Protocol.compile = 'none'") from exc

        return reported

    def _mark_static(self) -> None:
        """For CUDA graphs: the tensors every step reads and updates in place keep their
        addresses (parameters, buffers, the step counters, the schedulers' state), so the
        graphs read them where they are instead of copying them in."""
        if self.protocol.compile == "cudagraph":
            for t in (*self._forward_state.values(), *self._main_state.values(),
                      *self._auxiliary_state.values(), self.step_count,
                      *getattr(self.schedulers, "state_tensors", list)()):
                torch._dynamo.mark_static_address(t)
        self._static_marked = True

    # -- running a model method for every member --------------------------------
    def _state(self, constant=lambda name: False) -> dict:
        """Parameters and buffers for a call; those ``constant(name)`` picks detached."""
        params = {n: p.detach() if constant(n) else p for n, p in self.params.items()}
        return {**{f"model.{n}": p for n, p in params.items()},
                **{f"model.{n}": b for n, b in self.buffers.items()}}

    def _run(self, method: str, state: dict, *args, step: int | None = None):
        """``model.method(*args[, step])`` for each member (args and state stacked on dim 0)."""
        tail = () if step is None else (step,)
        if self.size == 1:  # the same computation without vmap's batching: an ordinary run
            # squeeze, not t[0]: its backward is a view, where select's allocates and copies
            out = self._functions[method](*tree_map(lambda t: t.squeeze(0), (state, *args)), *tail)
            return tree_map(lambda t: t.unsqueeze(0), out)
        return self._functions[method](state, *args, *tail)

    # -- random draws, each member from its own generators ------------------------
    def batches(self) -> torch.Tensor:
        return torch.stack([s.next() for s in self.samplers])

    def noise(self, uniform: bool = False) -> torch.Tensor:
        draw = torch.rand if uniform else torch.randn
        return torch.stack([draw(self.protocol.batch_size, self.latent_dim, generator=g, device=self.device)
                            for g in self.noise_generators])

    # -- one optimizer step of every member ------------------------------------------
    def step(self) -> tuple[torch.Tensor, dict]:
        """The next step (counted from 1): forward, β from the [K] detached KLs, loss,
        backward, Adam; then the auxiliary step. Returns the [K] βs and the step's
        [K, ...] scalars (tensors; nothing here waits for the device)."""
        if not self._static_marked:
            self._mark_static()
        if self.protocol.compile == "cudagraph":
            # one step = one generation of CUDA graphs: the main and the auxiliary graph's
            # outputs (the terms, β, the logged scalars) live until the next step begins
            torch.compiler.cudagraph_mark_step_begin()
        x = self.batches()
        if self.protocol.channels_last:
            x = images_channels_last(x)
        loss, beta, logged, terms = self._compute(x, self.noise())
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        if self.auxiliary_optimizers:
            other_x = self.batches()
            other = {"x": images_channels_last(other_x) if self.protocol.channels_last else other_x,
                     "noise": self.noise(), "uniform": self.noise(uniform=True)}
            aux_loss, auxiliary = self._compute_auxiliary(tree_map(torch.Tensor.detach, terms), other)
            for optimizer in self.auxiliary_optimizers.values():
                optimizer.zero_grad(set_to_none=True)
            aux_loss.backward()
            for optimizer in self.auxiliary_optimizers.values():
                optimizer.step()
            logged.update(auxiliary)
        return beta, logged

    def _main_step(self, x: torch.Tensor, noise: torch.Tensor):
        """The step up to the summed loss (what ``Protocol.compile`` compiles)."""
        self.step_count.add_(1)
        terms = self._run("forward", self._forward_state, x, noise)
        # Terms.kl, summed once here (not through its cached_property, whose lock
        # torch.compile cannot trace): the controller, the losses and the log read it.
        terms["kl"] = kl = terms["kl_per_dim"].sum(-1)
        beta = self._scheduler_step(kl.detach())
        loss, extras = self._run("loss", self._main_state, terms, beta, step=self.step_count)
        logged = {"loss": loss.detach(), "recon": terms["recon"].detach(), "kl": kl.detach(),
                  "kl_per_dim": terms["kl_per_dim"].detach(), **extras}
        if self.protocol.compile != "none" and self.auxiliary_optimizers:
            # copies, not views of the terms also returned: AOTAutograd (torch 2.13) fails
            # to regenerate an output that views another output ("incorrect out shape")
            logged = {name: value.clone() for name, value in logged.items()}
        return loss.sum(), beta, logged, (terms if self.auxiliary_optimizers else None)

    def _scheduler_step(self, kl: torch.Tensor) -> torch.Tensor:
        if self.protocol.compile != "none" and not getattr(self.schedulers, "capturable", False):
            return self._eager_scheduler_step(kl)  # host state (Python ints): outside compiled code
        return self.schedulers.step(kl)

    def _auxiliary_step(self, terms: dict, other: dict):
        aux_loss, auxiliary = self._run("auxiliary_loss", self._auxiliary_state, terms, other, step=self.step_count)
        return aux_loss.sum(), auxiliary

    # -- the members' own states -----------------------------------------------------
    def finite_members(self) -> list[bool]:
        """Which members' parameters are all finite (one host transfer)."""
        flags = torch.stack([torch.isfinite(p.detach()).flatten(1).all(1) for p in self.params.values()])
        return flags.all(0).cpu().tolist()

    def non_finite_parameters(self, k: int) -> list[str]:
        return [n for n, p in self.params.items() if not torch.isfinite(p[k].detach()).all()]

    def member_model_state(self, k: int) -> dict:
        state = {n: p[k].detach().clone() for n, p in self.params.items()}
        state.update({n: b[k].clone() for n, b in self.buffers.items()})
        return dict(sorted(state.items(), key=lambda kv: self._state_order[kv[0]]))

    def member_states(self) -> list[dict]:
        """Each member's training state, in the layout of an ordinary run's checkpoint."""
        schedulers = self.schedulers.member_state_dicts()
        return [{
            "model": self.member_model_state(k),
            "optimizer": _member_optimizer_state(self.optimizer, k),
            "auxiliary_optimizers": {n: _member_optimizer_state(o, k) for n, o in self.auxiliary_optimizers.items()},
            "scheduler": schedulers[k],
            "sampler": self.samplers[k].state_dict(),
            "noise": self.noise_generators[k].get_state(),
        } for k in range(self.size)]

    def load_member_states(self, states: list[dict], step: int) -> None:
        """Continue from the members' checkpoints (all of ``step``)."""
        self.step_count.fill_(step)  # a fill from the host: no read back
        with torch.no_grad():
            for n, p in self.params.items():
                p.copy_(torch.stack([s["model"][n] for s in states]).to(p.device))
            for n, b in self.buffers.items():
                b.copy_(torch.stack([s["model"][n] for s in states]).to(b.device))
        for optimizer, saved in ((self.optimizer, [s["optimizer"] for s in states]),
                                 *((o, [s["auxiliary_optimizers"][n] for s in states])
                                   for n, o in self.auxiliary_optimizers.items())):
            state = _stacked_optimizer_state(saved)
            for group in state["param_groups"]:  # this device's kernel, not the saving device's
                group.update(adam_kernel(self.device))  # (before loading: it places the step counts)
            optimizer.load_state_dict(state)
        self.schedulers.load_member_state_dicts([s["scheduler"] for s in states])
        for k, s in enumerate(states):
            self.samplers[k].load_state_dict(s["sampler"])
            self.noise_generators[k].set_state(s["noise"])

    def write_back(self) -> None:
        """Copy the trained parameters into the member models (for evaluation)."""
        for k, model in enumerate(self.models):
            model.load_state_dict(self.member_model_state(k))


def root_cause(exc: BaseException) -> str:
    """The innermost exception (a compiler's own, wrapped by Dynamo), in one line."""
    while (inner := getattr(exc, "inner_exception", None) or exc.__cause__) is not None:
        exc = inner
    first = (str(exc).strip().splitlines() or [""])[0]
    return f"{type(exc).__name__}: {first[:300]}"


def adam_kernel(device: torch.device) -> dict:
    """Adam's kernel flags for ``device``: fused on CUDA, multi-tensor (foreach) elsewhere."""
    return {"fused": True, "foreach": False} if device.type == "cuda" else {"fused": False, "foreach": True}


def adam(params, lr: float, betas, device: torch.device) -> torch.optim.Adam:
    """Adam over ``params``, with the kernel :func:`adam_kernel` picks."""
    return torch.optim.Adam(params, lr=lr, betas=tuple(betas), **adam_kernel(device))


def stored_in_order(t: torch.Tensor, order: tuple[int, ...]) -> torch.Tensor:
    """``t`` (same shape and values) with its dimensions laid out in memory in ``order``,
    outermost first. A fresh copy, not ``.contiguous()``, which keeps the strides of
    size-1 dimensions, and with them a layout the convolutions read as NCHW."""
    stored = t.new_empty([t.shape[d] for d in order])
    stored.copy_(t.permute(order))
    return stored.permute([order.index(d) for d in range(t.dim())])


def member_channels_last(t: torch.Tensor) -> torch.Tensor:
    """A stacked [K, O, I, h, w] convolution weight stored as (K, O, h, w, I): K folded
    into O by vmap (a grouped convolution) keeps it channels_last; other tensors as they are."""
    return stored_in_order(t, (0, 1, 3, 4, 2)) if t.dim() == 5 else t


def images_channels_last(x: torch.Tensor) -> torch.Tensor:
    """[K, B, C, H, W] images stored as (B, H, W, K, C): K folded into C by vmap keeps the
    grouped convolution's input NHWC (K = 1: each member's batch NHWC)."""
    return stored_in_order(x, (1, 3, 4, 0, 2))


def _member_optimizer_state(optimizer: torch.optim.Optimizer, k: int) -> dict:
    state = optimizer.state_dict()
    return {"state": {i: {key: (v[k].clone() if key != "step" else v.clone()) for key, v in s.items()}
                      for i, s in state["state"].items()},
            "param_groups": copy.deepcopy(state["param_groups"])}


def _stacked_optimizer_state(states: list[dict]) -> dict:
    first = states[0]
    return {"state": {i: {key: (torch.stack([s["state"][i][key] for s in states]) if key != "step" else v)
                          for key, v in per_param.items()}
                      for i, per_param in first["state"].items()},
            "param_groups": copy.deepcopy(first["param_groups"])}


def estimate_memory_bytes(models: list[nn.Module], protocol, num_images: int, image_shape) -> int:
    """A generous estimate of what a group needs on its device: parameters with
    their gradients and Adam moments, the activations of one step, the images."""
    parameters = sum(p.numel() for p in models[0].parameters()) * 4 * 4 * len(models)
    c, h, w = image_shape
    # conv64's activations, about 25 values per input pixel per image, kept for
    # backward and mirrored by their gradients; x3 for temporaries
    activations = protocol.batch_size * c * h * w * 25 * 4 * 2 * 3 * len(models)
    return int(parameters + activations + num_images * c * h * w)


def available_memory_bytes(device) -> int | None:
    device = torch.device(device)
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    if device.type == "cpu":
        try:
            with open("/proc/meminfo") as f:
                for line in f:
                    if line.startswith("MemAvailable:"):
                        return int(line.split()[1]) * 1024
        except OSError:
            return None
    return None
