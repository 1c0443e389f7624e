"""K runs trained as one computation (K = 1: one ordinary run).

The members are ordinary models, built as for K separate runs (each with its
own seed and scheduler bindings), of one model or of several whose forward pass
is the same computation (:mod:`.parts`). Their parameters are stacked (one
[K, ...] tensor per encoder/decoder parameter, one [K_c, ...] tensor per
auxiliary parameter of the K_c members of one model configuration) and the
forward pass runs once for all members under ``torch.func.vmap`` over
``functional_call`` — which turns the K small convolutions into one grouped
convolution; each configuration's loss (and auxiliary loss) then runs once,
vmapped over its members' slice. One Adam runs over the stacked parameters
(Adam is element-wise, so this is K Adams), one per auxiliary optimizer of a
configuration, and the schedulers of all members are stepped at once on the
[K] KLs (:func:`disbench.schedulers.group_scheduler`).

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
from torch.func import functional_call, vmap
from torch.optim.adam import adam as adam_update
from torch.utils._pytree import tree_map

from ..builders import canonical_device, check_compile_mode
from ..errors import DisbenchError
from ..models.base import Terms
from ..schedulers import group_scheduler
from .adam_state import adam, adam_kernel, adam_tensors, member_optimizer_state, stacked_optimizer_state
from .draws import BlockDraws
from .log_sums import LogSums
from .parts import auxiliary_prefixes, check_shared_forward, configuration_spans, is_auxiliary

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


class _Call:
    """One method of a model run for ``size`` members: under vmap over their stacked
    state and inputs, or (one member) on the squeezed tensors, an ordinary call."""

    def __init__(self, template: nn.Module, method: str, in_dims: tuple, size: int):
        call = _Method(template, method)
        fn = lambda state, *args: functional_call(call, state, args)  # noqa: E731
        self.size = size
        self.fn = fn if size == 1 else vmap(fn, in_dims=in_dims)

    def __call__(self, state: dict, *args, step=None):
        tail = () if step is None else (step,)  # the step: one for all members
        if self.size == 1:  # the same computation without vmap's batching: an ordinary run
            # squeeze, not t[0]: its backward is a view, where select's allocates and copies
            out = self.fn(*tree_map(lambda t: t.squeeze(0), (state, *args)), *tail)
            return tree_map(lambda t: t.unsqueeze(0), out)
        return self.fn(state, *args, *tail)


class _Configuration:
    """The members [start, stop) of a group that share one model configuration
    (:mod:`.parts`): their loss calls, auxiliary parameters and optimizers, draws."""

    def __init__(self, group: "RunGroup", start: int, stop: int, seeds: list[int]):
        models = group.models[start:stop]
        self.start, self.stop, self.size = start, stop, stop - start
        self.name = type(models[0]).__name__
        template = copy.deepcopy(models[0]).to("meta")
        template.compute_dtype = torch.bfloat16 if group.protocol.precision == "bf16" else None
        self.template = template
        spec = models[0].auxiliary_parameters()
        prefixes = auxiliary_prefixes(models[0])
        names = [n for n, _ in models[0].named_parameters() if is_auxiliary(n, prefixes)]
        self.params = group.stacked(models, names)  # the auxiliary ones: [K_c, ...]
        self.optimizer_names = {name: [n for n in names if n.startswith(s["prefix"])] for name, s in spec.items()}
        self.optimizers = {name: adam([self.params[n] for n in self.optimizer_names[name]], s["lr"], s["betas"],
                                      group.adam_kernel) for name, s in spec.items()}
        self.loss = _Call(template, "loss", (0, 0, 0, None), self.size)
        self.auxiliary_loss = _Call(template, "auxiliary_loss", (0, 0, 0, None), self.size)
        device = group.device
        self.draws = BlockDraws([seeded_generator(s, device) for s in seeds],
                                [seeded_generator(int(s) + NOISE_SEED_OFFSET, device) for s in seeds],
                                num_images=group.images.shape[0], batch_size=group.protocol.batch_size,
                                latent_dim=group.latent_dim, auxiliary=bool(spec), device=device)

    def piece(self, tree, whole: bool):
        """This configuration's members of a [K, ...] tree (``whole``: it is all of them)."""
        return tree if whole else tree_map(lambda t: t[self.start:self.stop], tree)


class RunGroup:
    """The stacked state and the step of K members (see the module docstring)."""

    def __init__(self, models: list[nn.Module], images: torch.Tensor, seeds: list[int], protocol, device):
        self.size = len(models)
        self.device = canonical_device(device)
        self.protocol = protocol
        self.models = models
        self.latent_dim = models[0].latent_dim
        spans = configuration_spans(models)
        if len(spans) > 1:
            check_shared_forward(models, [type(m).__name__ for m in models])
        self.images = images.to(self.device)  # one copy on the device, read by every member's indices
        self.adam_kernel = adam_kernel(self.device, compiled=protocol.compile != "none")
        prefixes = auxiliary_prefixes(models[0])
        self.params = self.stacked(models, [n for n, _ in models[0].named_parameters()
                                            if not is_auxiliary(n, prefixes)])  # shared by all: [K, ...]
        self.buffers = {n: torch.stack([dict(m.named_buffers())[n] for m in models])
                        for n, _ in models[0].named_buffers() if not is_auxiliary(n, prefixes)}
        self.parts = [_Configuration(self, start, stop, seeds[start:stop]) for start, stop in spans]
        self.whole = len(self.parts) == 1  # one configuration: no slicing anywhere
        self.model_name = " + ".join(part.name for part in self.parts)
        self._forward = _Call(self.parts[0].template, "forward", (0, 0, 0), self.size)
        self.optimizer = adam(list(self.params.values()), protocol.lr, protocol.adam_betas, self.adam_kernel)
        self.schedulers = group_scheduler([m.scheduler for m in models])
        if callable(getattr(self.schedulers, "to", None)):
            self.schedulers.to(self.device)
        # The step the losses see, on the device (set on resume, advanced by each step).
        self.step_count = torch.zeros((), dtype=torch.int64, device=self.device)
        # Each member's tensors in its model's state_dict order: (stacked tensor, index in dim 0).
        self._member_tensors = [self._tensors_of(part, j) for part in self.parts for j in range(part.size)]
        # The arguments of each call, made once: the same tensors every step (each
        # detached alias shares its parameter's storage, which Adam updates in place).
        # (Several configurations: their slices are made in the step.)
        self._forward_state = self._state(self.params, self.buffers)
        self._made_states: dict = {}
        if self.whole:
            self._made_states = {(0, auxiliary): self._part_state(0, auxiliary) for auxiliary in (False, True)}
        self._owners: dict | None = None  # see logged_shapes
        self.log = LogSums(*self.logged_shapes(), self.device)
        self._eager_scheduler_step = torch.compiler.disable(self.schedulers.step)
        self._compute = self._compiled(self._whole_step)
        self._adam_groups: list | None = None  # each optimizer's tensors, (re)gathered before a step
        self._static_marked = False

    def stacked(self, models: list[nn.Module], names: list[str]) -> dict:
        """The parameters ``names`` of ``models`` stacked: new [len(models), ...] leaves
        on the members' device (as ``torch.func.stack_module_state`` makes them)."""
        out, by_name = {}, [dict(m.named_parameters()) for m in models]  # each model's, read once
        for name in names:
            tensors = [params[name] for params in by_name]
            t = torch.stack(tensors).detach()
            if self.protocol.channels_last:
                t = member_channels_last(t)
            out[name] = t.requires_grad_(all(p.requires_grad for p in tensors))
        return out

    def _tensors_of(self, part: _Configuration, j: int) -> dict:
        k = part.start + j
        where = {**{n: (t, k) for n, t in {**self.params, **self.buffers}.items()},
                 **{n: (t, j) for n, t in part.params.items()}}
        return {n: where[n] for n in self.models[k].state_dict()}

    @property
    def auxiliary_optimizers(self) -> dict:
        """Every configuration's auxiliary optimizers (``{name: Adam}`` with one configuration)."""
        if self.whole:
            return self.parts[0].optimizers
        return {f"{part.name}[{part.start}:{part.stop}].{name}": o
                for part in self.parts for name, o in part.optimizers.items()}

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
            states = [self._forward_state, *self._made_states.values()]
            for t in (*(t for s in states for t in s.values()), self.step_count, self.images,
                      *(t for part in self.parts for t in (*part.params.values(), *part.draws.static_tensors())),
                      *getattr(self.schedulers, "state_tensors", list)(),
                      *self.log.tensors(), *(t for g in self._adam_groups for ts in g[:-1] for t in ts)):
                torch._dynamo.mark_static_address(t)
        self._static_marked = True

    @staticmethod
    def _state(params: dict, buffers: dict, extra: dict | None = None) -> dict:
        """The state dict of a call: ``model.`` + each name."""
        return {f"model.{n}": t for n, t in {**params, **buffers, **(extra or {})}.items()}

    def _part_state(self, index: int, auxiliary: bool) -> dict:
        """Configuration ``index``'s state for its loss (its auxiliary parameters constant)
        or, ``auxiliary``, for its auxiliary loss (the shared parameters constant)."""
        if (index, auxiliary) in self._made_states:
            return self._made_states[index, auxiliary]
        part = self.parts[index]
        shared = _detached(self.params) if auxiliary else self.params
        return self._state(part.piece(shared, self.whole), part.piece(self.buffers, self.whole),
                           part.params if auxiliary else _detached(part.params))

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
        nothing here waits for the device; a scalar only some members' model logs is
        NaN for the others). On the host: a new block of draws every
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
        for part in self.parts:
            part.draws.before_step()
        beta, logged = self._compute()
        self.log.count += 1
        return beta, logged

    def _whole_step(self):
        """One step of every member, from the draws to Adam (what ``Protocol.compile``
        compiles, as one graph when the schedulers are capturable)."""
        draws = [part.draws.take() for part in self.parts]
        self.step_count.add_(1)
        x = self._images(joined([indices[:, 0] for indices, _, _ in draws]))
        terms = self._terms(x, joined([normal[:, 0] for _, normal, _ in draws]))
        beta = self._scheduler_step(terms["kl"].detach())
        loss, logged = self._loss(terms, beta, self.step_count)
        self._descend(loss.sum(), self._adam_groups[:1])
        if len(self._adam_groups) > 1:
            others = [{"x": self._images(indices[:, 1]), "noise": normal[:, 1], "uniform": uniform}
                      if part.optimizers else None for part, (indices, normal, uniform) in zip(self.parts, draws)]
            aux_loss, auxiliary = self._auxiliary_loss(terms, others, self.step_count)
            self._descend(aux_loss.sum(), self._adam_groups[1:])
            logged.update(auxiliary)
        self.log.add(logged)
        return beta, logged

    def _terms(self, x: torch.Tensor, noise: torch.Tensor) -> dict:
        terms = self._forward(self._forward_state, x, noise)
        # Terms.kl, summed once here (not through its cached_property, whose lock
        # torch.compile cannot trace): the controller, the losses and the log read it.
        terms["kl"] = terms["kl_per_dim"].sum(-1)
        return terms

    def _loss(self, terms: dict, beta: torch.Tensor, step: torch.Tensor) -> tuple[torch.Tensor, dict]:
        """The members' [K] losses and what the step logs of them."""
        losses, extras = zip(*(part.loss(self._part_state(i, False), part.piece(terms, self.whole),
                                         part.piece(beta, self.whole), step=step)
                               for i, part in enumerate(self.parts)))
        loss = joined(list(losses))
        return loss, {"loss": loss.detach(), "recon": terms["recon"].detach(), "kl": terms["kl"].detach(),
                      "kl_per_dim": terms["kl_per_dim"].detach(), **self._merged(extras)}

    def _auxiliary_loss(self, terms: dict, others: list, step: torch.Tensor) -> tuple[torch.Tensor, dict]:
        """The auxiliary losses of the configurations that have one (``others[i]``: the
        second batch of configuration i, None for one without) and what they log."""
        terms = tree_map(torch.Tensor.detach, terms)
        losses, extras = [], []
        for i, (part, other) in enumerate(zip(self.parts, others)):
            loss, extra = (part.auxiliary_loss(self._part_state(i, True), part.piece(terms, self.whole), other,
                                               step=step) if other is not None else (None, {}))
            losses += [loss] if loss is not None else []
            extras.append(extra)
        return joined(losses), self._merged(extras)

    def _merged(self, extras) -> dict:
        """Each configuration's extra scalars as [K, ...] tensors, NaN for members whose
        configuration does not log that one (the log leaves those out of their rows)."""
        if self.whole:
            return dict(extras[0])
        keys = list(dict.fromkeys(key for extra in extras for key in extra))
        merged = {}
        for key in keys:
            if self._owners is not None:  # while logged_shapes looks: whose scalar this is
                self._owners[key] = [k for part, extra in zip(self.parts, extras) if key in extra
                                     for k in range(part.start, part.stop)]
            like = next(extra[key] for extra in extras if key in extra)
            merged[key] = torch.cat([extra[key] if key in extra else
                                     like.new_full((part.size, *like.shape[1:]), float("nan"))
                                     for part, extra in zip(self.parts, extras)])
        return merged

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
    def logged_shapes(self) -> tuple[dict[str, tuple[int, ...]], dict[str, list[int]]]:
        """What :meth:`step` logs, its shapes and, for a scalar only some members' model
        logs, those members; found by running the model's methods once on a batch of
        two images (a model may read its step on the host, so not on ``meta``
        tensors): the log's sums exist before the first step."""
        self._owners = {}  # filled by _merged
        x = self._images(torch.zeros((self.size, 2), dtype=torch.int64, device=self.device))
        noise = torch.zeros((self.size, 2, self.latent_dim), device=self.device)
        terms = self._terms(x, noise)
        step = self.step_count + 1  # the step it will see first
        _, logged = self._loss(terms, torch.ones(self.size, device=self.device), step)
        others = [{"x": x[part.start:part.stop], "noise": noise[part.start:part.stop],
                   "uniform": noise[part.start:part.stop]} if part.optimizers else None for part in self.parts]
        if any(others):
            logged.update(self._auxiliary_loss(terms, others, step)[1])
        owners, self._owners = self._owners, None
        return {key: tuple(value.shape) for key, value in logged.items()}, owners

    # -- the members' own states -----------------------------------------------------
    def finite_members(self) -> list[bool]:
        """Which members' parameters are all finite (one host transfer)."""
        def finite(tensors, size):
            flags = [torch.isfinite(t.detach()).flatten(1).all(1) for t in tensors]
            return torch.stack(flags).all(0) if flags else torch.ones(size, dtype=torch.bool, device=self.device)

        shared = finite(self.params.values(), self.size)
        own = torch.cat([finite(part.params.values(), part.size) for part in self.parts])
        return (shared & own).cpu().tolist()

    def non_finite_parameters(self, k: int) -> list[str]:
        return [n for n, (t, i) in self._member_tensors[k].items()
                if t.is_floating_point() and not torch.isfinite(t[i].detach()).all()]

    def member_tensors(self, k: int) -> dict:
        """Member ``k``'s parameters and buffers, ``{name: (stacked tensor, index in dim 0)}``."""
        return self._member_tensors[k]

    def member_model_state(self, k: int) -> dict:
        return {n: t[i].detach().clone() for n, (t, i) in self._member_tensors[k].items()}

    def member_states(self) -> list[dict]:
        """Each member's training state, in the layout of an ordinary run's checkpoint."""
        schedulers = self.schedulers.member_state_dicts()
        return [{
            "model": self.member_model_state(part.start + j),
            "optimizer": member_optimizer_state(self.optimizer, part.start + j),
            "auxiliary_optimizers": {n: member_optimizer_state(o, j) for n, o in part.optimizers.items()},
            "scheduler": schedulers[part.start + j],
            **part.draws.member_state(j),
        } for part in self.parts for j in range(part.size)]

    def load_member_states(self, states: list[dict], step: int) -> None:
        """Continue from the members' checkpoints (all of ``step``)."""
        self.step_count.fill_(step)  # a fill from the host: no read back
        with torch.no_grad():
            for k, state in enumerate(states):
                for n, (t, i) in self._member_tensors[k].items():
                    t[i].copy_(state["model"][n])
        for optimizer, saved in ((self.optimizer, [s["optimizer"] for s in states]),
                                 *((o, [s["auxiliary_optimizers"][n] for s in states[part.start:part.stop]])
                                   for part in self.parts for n, o in part.optimizers.items())):
            state = stacked_optimizer_state(saved)
            for group in state["param_groups"]:  # this device's kernel, not the saving device's
                group.update(self.adam_kernel)  # (before loading: it places the step counts)
            optimizer.load_state_dict(state)
        self._adam_groups = None  # new state tensors: gathered again before the next step
        self.schedulers.load_member_state_dicts([s["scheduler"] for s in states])
        for part in self.parts:
            part.draws.load_member_states(states[part.start:part.stop])

    def write_back(self) -> None:
        """Copy the trained parameters into the member models (for evaluation)."""
        for k, model in enumerate(self.models):
            model.load_state_dict(self.member_model_state(k))


def joined(tensors: list[torch.Tensor]) -> torch.Tensor:
    """[K_c, ...] pieces as one [K, ...] tensor (one piece: itself)."""
    return tensors[0] if len(tensors) == 1 else torch.cat(tensors)


def _detached(params: dict) -> dict:
    return {n: p.detach() for n, p in params.items()}


def root_cause(exc: BaseException) -> str:
    """The innermost exception (a compiler's own, wrapped by Dynamo), in one line."""
    while (inner := getattr(exc, "inner_exception", None) or exc.__cause__) is not None:
        exc = inner
    first = (str(exc).strip().splitlines() or [""])[0]
    return f"{type(exc).__name__}: {first[:300]}"


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


def estimate_memory_bytes(models: list[nn.Module], protocol, num_images: int, image_shape) -> int:
    """A generous estimate of what a group needs on its device: parameters with
    their gradients and Adam moments, the activations of one step, the images."""
    parameters = sum(p.numel() for m in models for p in m.parameters()) * 4 * 4
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
