"""A group's Adams: their kernel flags, their tensors for the step, and each
member's share of their state in the layout of an ordinary run's checkpoint.

A group's optimizer holds stacked parameters ([K, ...] for the parameters all
members share, [K_c, ...] for the auxiliary ones of one model configuration's
members), in the order each member's own optimizer lists its parameters; a
member's state is its slice of each.
"""

from __future__ import annotations

import copy

import torch
from torch.optim.optimizer import _get_scalar_dtype

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


def member_optimizer_state(optimizer: torch.optim.Optimizer, index: int) -> dict:
    """One member's state: its slices (``index`` in dim 0) of the moments; the step count,
    one per stacked tensor, is every member's."""
    state = optimizer.state_dict()
    return {"state": {i: {key: (v[index].clone() if key != "step" else v.clone()) for key, v in s.items()}
                      for i, s in state["state"].items()},
            "param_groups": copy.deepcopy(state["param_groups"])}


def stacked_optimizer_state(states: list[dict]) -> dict:
    """The inverse of :func:`member_optimizer_state`: the members' states stacked in their order."""
    first = states[0]
    return {"state": {i: {key: (torch.stack([s["state"][i][key] for s in states]) if key != "step" else v)
                          for key, v in per_param.items()}
                      for i, per_param in first["state"].items()},
            "param_groups": copy.deepcopy(first["param_groups"])}
