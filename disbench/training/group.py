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

Each member draws its batch indices and noise from its own generators, both
seeded by its run seed, a block of steps at a time (:mod:`.draws`), so a member
sees exactly the data and noise it would see trained alone; what differs is
only the order of floating-point operations in the grouped kernels.

Members are independent: nothing mixes them but the sum of their losses,
whose gradient is 1 for each. A member whose numbers go non-finite is left
to itself (its NaNs stay in its slices) and the others train on.

The step is free of host work: the step counter the losses see is a 0-dim
int64 tensor on the device (``step_count``), the schedulers keep their state
(their own step counter and set point C(t) included) on the device, the
position in the block of draws too, and nothing reads a value back. So the
whole step — this step's draws, the batch gathered with one index, forward,
controller, loss, its gradients (``torch.autograd.grad``), Adam's update (the
function ``torch.optim.Adam.step`` applies) and the log's sums — is one
function (``_whole_step``) that ``Protocol.compile`` compiles as one graph:
``'compile'`` with ``torch.compile(fullgraph=True)``, ``'cudagraph'`` with
``mode="reduce-overhead"``, which replays it as CUDA graphs. Compiled, Adam is
multi-tensor and capturable (its step counts on the device); uncompiled, it is
fused on CUDA and multi-tensor elsewhere, the very update ``Adam.step`` makes.
On the host between two steps: a new block of draws every 64 steps. A
scheduler group that is not ``capturable`` (a third party's, stepped member by
member on the host) is stepped outside the compiled code, which then splits
around it.
"""

from __future__ import annotations

import copy
from contextlib import nullcontext

import torch
from torch import nn
from torch.func import functional_call, stack_module_state, vmap
from torch.optim.adam import adam as adam_update
from torch.optim.optimizer import _get_scalar_dtype
from torch.utils._pytree import tree_map

from ..builders import canonical_device, check_compile_mode
from ..errors import DisbenchError
from ..models.base import Terms
from ..schedulers import group_scheduler
from .draws import BlockDraws
from .log_sums import LogSums

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
        self._adam_kernel = adam_kernel(self.device, compiled=protocol.compile != "none")
        self.optimizer = adam([self.params[n] for n in self.main_names], protocol.lr, protocol.adam_betas,
                              self._adam_kernel)
        self.auxiliary_optimizers = {
            name: adam([self.params[n] for n in self.auxiliary_names[name]], spec["lr"], spec["betas"],
                       self._adam_kernel)
            for name, spec in auxiliary.items()}
        self.schedulers = group_scheduler([m.scheduler for m in models])
        if callable(getattr(self.schedulers, "to", None)):
            self.schedulers.to(self.device)
        self.images = images.to(self.device)  # one copy on the device, read by every member's indices
        self.draws = BlockDraws([seeded_generator(s, self.device) for s in seeds],
                                [seeded_generator(int(s) + NOISE_SEED_OFFSET, self.device) for s in seeds],
                                num_images=self.images.shape[0], batch_size=protocol.batch_size,
                                latent_dim=self.latent_dim, auxiliary=bool(auxiliary), device=self.device)
        # The step the losses see, on the device (set on resume, advanced by each step).
        self.step_count = torch.zeros((), dtype=torch.int64, device=self.device)
        # The arguments of each call, made once: the same tensors every step (each
        # detached alias shares its parameter's storage, which Adam updates in place).
        self._forward_state = self._state()
        self._main_state = self._state(owned.__contains__)
        self._auxiliary_state = self._state(lambda name: name not in owned)
        self.log = LogSums(self.logged_shapes(), self.device)
        self._eager_scheduler_step = torch.compiler.disable(self.schedulers.step)
        self._compute = self._compiled(self._whole_step)
        self._adam_groups: list | None = None  # each optimizer's tensors, (re)gathered before a step
        self._static_marked = False

    def _compiled(self, fn):
        """``fn`` as ``Protocol.compile`` says: as it is, compiled, or compiled for CUDA graphs."""
        mode = self.protocol.compile
        check_compile_mode(self.protocol, self.device)
        if mode == "none":
            return fn
        # one graph for the whole step, unless a scheduler must run on the host in between
        tracing_gradients = hasattr(torch._dynamo.config, "trace_autograd_ops")  # older torch: a graph break
        fullgraph = bool(getattr(self.schedulers, "capturable", False)) and tracing_gradients
        compiled = torch.compile(fn, dynamic=False, fullgraph=fullgraph,
                                 **({"mode": "reduce-overhead"} if mode == "cudagraph" else {}))

        def reported(*args):
            try:
                with torch._dynamo.config.patch(trace_autograd_ops=True) if tracing_gradients else nullcontext():
                    return compiled(*args)  # the gradients, in the graph
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
                      *self._auxiliary_state.values(), self.step_count, self.images,
                      *getattr(self.schedulers, "state_tensors", list)(), *self.draws.static_tensors(),
                      *self.log.tensors(), *(t for g in self._adam_groups for ts in g[:-1] for t in ts)):
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

    def _images(self, indices: torch.Tensor) -> torch.Tensor:
        """The [K, B] indexed images of all members, gathered at once, as floats in [0, 1]."""
        k, b = indices.shape
        x = self.images.index_select(0, indices.reshape(-1)).float().div_(255.0)
        x = x.view(k, b, *self.images.shape[1:])
        return images_channels_last(x) if self.protocol.channels_last else x

    # -- one optimizer step of every member ------------------------------------------
    def step(self) -> tuple[torch.Tensor, dict]:
        """The next step (counted from 1): this step's draws, forward, β from the [K]
        detached KLs, loss, gradients, Adam; the auxiliary step; the scalars added to
        :attr:`log`. Returns the [K] βs and the step's [K, ...] scalars (tensors;
        nothing here waits for the device). On the host: a new block of draws every
        :data:`~disbench.training.draws.BLOCK_STEPS` steps."""
        if self._adam_groups is None:  # first step, or optimizer states loaded
            self._adam_groups = [adam_tensors(o) for o in (self.optimizer, *self.auxiliary_optimizers.values())]
            self._static_marked = False
        if not self._static_marked:
            self._mark_static()
        if self.protocol.compile == "cudagraph":
            # one step = one generation of CUDA graphs: its outputs (β, the logged
            # scalars) stay readable until the next step begins
            torch.compiler.cudagraph_mark_step_begin()
        self.draws.before_step()
        beta, logged = self._compute()
        self.log.count += 1
        return beta, logged

    def _whole_step(self):
        """One step of every member, from the draws to Adam (what ``Protocol.compile``
        compiles, as one graph when the schedulers are capturable)."""
        indices, normal, uniform = self.draws.take()
        self.step_count.add_(1)
        terms = self._terms(self._images(indices[:, 0]), normal[:, 0])
        beta = self._scheduler_step(terms["kl"].detach())
        loss, logged = self._loss(terms, beta, self.step_count)
        self._descend(loss.sum(), self._adam_groups[:1])
        if self.auxiliary_optimizers:
            other = {"x": self._images(indices[:, 1]), "noise": normal[:, 1], "uniform": uniform}
            aux_loss, auxiliary = self._auxiliary_loss(terms, other, self.step_count)
            self._descend(aux_loss.sum(), self._adam_groups[1:])
            logged.update(auxiliary)
        self.log.add(logged)
        return beta, logged

    def _terms(self, x: torch.Tensor, noise: torch.Tensor) -> dict:
        terms = self._run("forward", self._forward_state, x, noise)
        # Terms.kl, summed once here (not through its cached_property, whose lock
        # torch.compile cannot trace): the controller, the losses and the log read it.
        terms["kl"] = terms["kl_per_dim"].sum(-1)
        return terms

    def _loss(self, terms: dict, beta: torch.Tensor, step: torch.Tensor) -> tuple[torch.Tensor, dict]:
        """The members' [K] losses and what the step logs of them."""
        loss, extras = self._run("loss", self._main_state, terms, beta, step=step)
        return loss, {"loss": loss.detach(), "recon": terms["recon"].detach(), "kl": terms["kl"].detach(),
                      "kl_per_dim": terms["kl_per_dim"].detach(), **extras}

    def _auxiliary_loss(self, terms: dict, other: dict, step: torch.Tensor) -> tuple[torch.Tensor, dict]:
        return self._run("auxiliary_loss", self._auxiliary_state, tree_map(torch.Tensor.detach, terms), other,
                         step=step)

    def _descend(self, loss: torch.Tensor, groups: list) -> None:
        """The gradients of ``loss`` and an Adam step of each optimizer in ``groups`` (the
        same update as ``torch.optim.Adam.step``, whose wrapper torch.compile cannot trace)."""
        params = [p for g in groups for p in g[0]]
        grads = torch.autograd.grad(loss, params)
        at = 0
        for group_params, exp_avgs, exp_avg_sqs, steps, settings in groups:
            n = len(group_params)
            with torch.no_grad():
                adam_update(group_params, list(grads[at:at + n]), exp_avgs, exp_avg_sqs, [], steps, **settings)
            at += n

    def _scheduler_step(self, kl: torch.Tensor) -> torch.Tensor:
        if self.protocol.compile != "none" and not getattr(self.schedulers, "capturable", False):
            return self._eager_scheduler_step(kl)  # host state (Python ints): outside compiled code
        return self.schedulers.step(kl)

    @torch.no_grad()
    def logged_shapes(self) -> dict[str, tuple[int, ...]]:
        """What :meth:`step` logs and its shapes, found by running the model's methods once
        on a batch of two images (a model may read its step on the host, so not on
        ``meta`` tensors): the log's sums exist before the first step."""
        x = self._images(torch.zeros((self.size, 2), dtype=torch.int64, device=self.device))
        noise = torch.zeros((self.size, 2, self.latent_dim), device=self.device)
        terms = self._terms(x, noise)
        step = self.step_count + 1  # the step it will see first
        _, logged = self._loss(terms, torch.ones(self.size, device=self.device), step)
        if self.auxiliary_optimizers:
            logged.update(self._auxiliary_loss(terms, {"x": x, "noise": noise, "uniform": noise}, step)[1])
        return {key: tuple(value.shape) for key, value in logged.items()}

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
            **self.draws.member_state(k),
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
                group.update(self._adam_kernel)  # (before loading: it places the step counts)
            optimizer.load_state_dict(state)
        self._adam_groups = None  # new state tensors: gathered again before the next step
        self.schedulers.load_member_state_dicts([s["scheduler"] for s in states])
        self.draws.load_member_states(states)

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


def adam_kernel(device: torch.device, compiled: bool) -> dict:
    """Adam's kernel flags: in a compiled step multi-tensor and capturable (its step counts
    on the device, updated in the graph); else fused on CUDA, multi-tensor elsewhere."""
    if compiled:
        return {"fused": False, "foreach": True, "capturable": True}
    if device.type == "cuda":
        return {"fused": True, "foreach": False, "capturable": False}
    return {"fused": False, "foreach": True, "capturable": False}


def adam(params, lr: float, betas, kernel: dict) -> torch.optim.Adam:
    """Adam over ``params`` with ``kernel``'s flags. It holds the state and its checkpoint
    format; the step applies its update with :func:`adam_tensors` (see ``RunGroup._descend``)."""
    return torch.optim.Adam(params, lr=lr, betas=tuple(betas), **kernel)


def adam_tensors(optimizer: torch.optim.Adam) -> tuple:
    """(params, exp_avgs, exp_avg_sqs, steps, settings) of a one-group Adam, its state
    made now where it has none (as its first ``step`` would make it)."""
    (group,) = optimizer.param_groups
    on_device = group["fused"] or group["capturable"]
    for p in group["params"]:
        state = optimizer.state[p]
        if not state:
            state["step"] = (torch.zeros((), dtype=_get_scalar_dtype(is_fused=group["fused"]), device=p.device)
                             if on_device else torch.tensor(0.0, dtype=_get_scalar_dtype()))
            state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
    states = [optimizer.state[p] for p in group["params"]]
    settings = {"amsgrad": False, "beta1": group["betas"][0], "beta2": group["betas"][1], "lr": group["lr"],
                "weight_decay": group["weight_decay"], "eps": group["eps"], "maximize": group["maximize"],
                "foreach": group["foreach"], "capturable": group["capturable"], "fused": group["fused"],
                "differentiable": False}
    if "decoupled_weight_decay" in group:  # torch >= 2.7
        settings["decoupled_weight_decay"] = group["decoupled_weight_decay"]
    return (list(group["params"]), [s["exp_avg"] for s in states], [s["exp_avg_sq"] for s in states],
            [s["step"] for s in states], settings)


def seeded_generator(seed: int, device: torch.device) -> torch.Generator:
    generator = torch.Generator(device=device)
    generator.manual_seed(int(seed))
    return generator


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
