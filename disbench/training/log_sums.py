"""The step's scalars summed on the device between two log rows.

The sums are float64 [K, ...] tensors allocated once, before the first step,
with the shapes the step will log (:meth:`RunGroup.logged_shapes`), so that
adding to them is part of the step itself (and of its compiled graph): one
multi-tensor add per step. ``fetch`` returns each member's means with one host
transfer and zeroes the sums. In a group of several models a scalar only some
members' model logs is summed for all (NaN for the others) and left out of the
others' rows, so each member's row has exactly the keys it has alone.
"""

from __future__ import annotations

import torch


class LogSums:
    def __init__(self, shapes: dict[str, tuple[int, ...]], owners: dict[str, list[int]], device: torch.device):
        self.owners = {key: set(members) for key, members in owners.items()}  # a key left out: every member's
        self.sums = {key: torch.zeros(shape, dtype=torch.float64, device=device) for key, shape in shapes.items()}
        self.count = 0  # host: steps added since the last fetch

    def tensors(self) -> list[torch.Tensor]:
        return list(self.sums.values())

    def add(self, values: dict) -> None:
        """Inside the step: add this step's values (same keys and shapes)."""
        torch._foreach_add_([self.sums[k] for k in values], [v.detach() for v in values.values()])

    def fetch(self, size: int) -> list[dict]:
        keys = list(self.sums)
        flat = torch.cat([self.sums[k].reshape(size, -1) for k in keys], dim=1).cpu() / max(self.count, 1)
        rows = [{} for _ in range(size)]
        i = 0
        for key in keys:
            width = self.sums[key][0].numel()
            for k, row in enumerate(flat[:, i:i + width].tolist()):
                if key not in self.owners or k in self.owners[key]:
                    rows[k][key] = row[0] if self.sums[key].ndim == 1 else row
            i += width
        torch._foreach_zero_(self.tensors())
        self.count = 0
        return rows
