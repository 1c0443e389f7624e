"""Checkpoints: written atomically, read without unpickling arbitrary objects.

A checkpoint is loaded onto the CPU; the model, optimizer and scheduler state
can then be moved to the training device (``map_location``), but the random
number generator states stay on the CPU whatever the device:
``torch.set_rng_state``, ``torch.cuda.set_rng_state_all`` and
``Generator.set_state`` accept only CPU byte tensors.
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import torch

from ..errors import DisbenchError
from ..io import atomic_paths, json_text
from ..runs import results_path, updated_results

CHECKPOINT_NAME = "checkpoint.pt"
# Entries that hold generator states: never moved off the CPU.
RNG_KEYS = ("rng", "sampler", "noise")


def rng_state() -> dict:
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": [kind, keys.tolist(), int(pos), int(has_gauss), float(cached)],
        "python": _to_lists(random.getstate()),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])  # a CPU ByteTensor (load_checkpoint keeps it there)
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    random.setstate(_to_tuples(state["python"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _to_lists(obj):
    return [_to_lists(o) for o in obj] if isinstance(obj, (tuple, list)) else obj


def _to_tuples(obj):
    return tuple(_to_tuples(o) for o in obj) if isinstance(obj, (tuple, list)) else obj


def save_group_checkpoint(members: list[tuple[Path, dict, dict]]) -> None:
    """Each member's ``(run_dir, checkpoint state, results fields)``: its checkpoint and
    its results.json replaced together with every other member's (:func:`atomic_paths`),
    so a group killed while it writes them continues as one group, from one step."""
    paths = [path for run_dir, _, _ in members for path in (run_dir / CHECKPOINT_NAME, results_path(run_dir))]
    with atomic_paths(paths) as tmps:
        for (run_dir, state, fields), checkpoint, results in zip(members, tmps[0::2], tmps[1::2]):
            torch.save(state, checkpoint)
            results.write_text(json_text(updated_results(run_dir, **fields)))


def load_checkpoint(path: Path, map_location="cpu") -> dict:
    """Read a checkpoint without unpickling; tensors go to ``map_location``
    except the generator states under :data:`RNG_KEYS`, which stay on the CPU."""
    path = Path(path)
    if not path.is_file():
        raise DisbenchError(f"no checkpoint at {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise DisbenchError(f"checkpoint {path} cannot be read: {_why_unreadable(path, exc)}") from None
    if not isinstance(state, dict) or "step" not in state:
        raise DisbenchError(f"checkpoint {path} is not a disbench checkpoint (no training step recorded)")
    if torch.device(map_location).type != "cpu":
        state = {k: v if k in RNG_KEYS else _to_device(v, map_location) for k, v in state.items()}
    return state


def _to_device(obj, device):
    if isinstance(obj, torch.Tensor):
        return obj.to(device)
    if isinstance(obj, dict):
        return {k: _to_device(v, device) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to_device(v, device) for v in obj)
    return obj


def _why_unreadable(path: Path, exc: Exception) -> str:
    """What is wrong with the file, in our words: torch's own message advises
    loading with weights_only=False, which would execute code from the file."""
    with open(path, "rb") as f:
        head = f.read(4)
    if not head:
        return "the file is empty (a write was interrupted?)"
    if head[:2] != b"PK" and head[:1] != b"\x80":
        return "it is not a PyTorch checkpoint (not a zip archive)"
    if "weights_only" in str(exc) or "Unsupported global" in str(exc) or "Unpickler" in str(exc):
        return ("it holds Python objects other than tensors and plain containers, which are refused "
                "(loading them could run code from the file)")
    return f"it is truncated or corrupt ({type(exc).__name__})"
