"""Each member's random draws, made a block of steps at a time.

A member draws its batch indices from its sampler's generator and its noise
from its noise generator, both seeded by its run seed. Drawing one call per
member and generator every step would put 2K+1 small launches outside the
step; instead every member draws :data:`BLOCK_STEPS` steps at once, into
[K, BLOCK_STEPS, ...] tensors at fixed addresses, and the step reads its slice
at a position kept on the device. A member alone (K = 1) draws the same blocks,
so it sees exactly the stream it sees in a group.

Per step a member uses ``batches_per_step`` index rows (2 when the model has an
auxiliary step: its second batch), as many normal draws of shape (batch,
latent_dim), and for an auxiliary step one uniform draw. On the CPU, a block of
draws equals the same draws made one step at a time when batch × latent_dim is
a multiple of 16 (the normal sampler's chunk), so runs without an auxiliary
step keep the streams of earlier versions.

A checkpoint holds each generator's state at the start of the current block
and how many of its steps were used; a resume draws the block again and goes
on from there, so it continues the same stream.
"""

from __future__ import annotations

import torch

BLOCK_STEPS = 64  # fixed: the streams on CUDA depend on it (one Philox offset per call)


class BlockDraws:
    """The [K] members' draws, a block at a time (see the module docstring)."""

    def __init__(self, index_generators: list[torch.Generator], noise_generators: list[torch.Generator], *,
                 num_images: int, batch_size: int, latent_dim: int, auxiliary: bool, device: torch.device):
        k, m, b = len(index_generators), BLOCK_STEPS, batch_size
        per_step = 2 if auxiliary else 1
        self.index_generators, self.noise_generators = index_generators, noise_generators
        self.num_images = num_images
        self.indices = torch.zeros((k, m, per_step, b), dtype=torch.int64, device=device)
        self.normal = torch.zeros((k, m, per_step, b, latent_dim), device=device)
        self.uniform = torch.zeros((k, m, b, latent_dim), device=device) if auxiliary else None
        self.position = torch.zeros((), dtype=torch.int64, device=device)  # the next step's slice
        self.used = BLOCK_STEPS  # host: steps taken from the current block (none drawn yet)
        self.block_start: list[tuple[torch.Tensor, torch.Tensor]] = []

    def static_tensors(self) -> list[torch.Tensor]:
        return [t for t in (self.indices, self.normal, self.uniform, self.position) if t is not None]

    def before_step(self) -> None:
        """On the host, before each step: a new block when this one is used up."""
        if self.used == BLOCK_STEPS:
            self._draw()
        self.used += 1

    def _draw(self) -> None:
        self.block_start = [(i.get_state(), n.get_state()) for i, n in zip(self.index_generators,
                                                                          self.noise_generators)]
        for k, (index_generator, noise_generator) in enumerate(zip(self.index_generators, self.noise_generators)):
            self.indices[k].random_(0, self.num_images, generator=index_generator)
            self.normal[k].normal_(generator=noise_generator)
            if self.uniform is not None:
                self.uniform[k].uniform_(generator=noise_generator)
        self.position.zero_()
        self.used = 0

    def take(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """This step's slices — indices [K, per_step, B], normal [K, per_step, B, D],
        uniform [K, B, D] or None — and the position moved on (traceable: no host value)."""
        at = self.position.view(1)
        taken = [t.index_select(1, at).squeeze(1) if t is not None else None
                 for t in (self.indices, self.normal, self.uniform)]
        self.position.add_(1)
        return taken[0], taken[1], taken[2]

    # -- checkpoints --------------------------------------------------------------------
    def member_state(self, k: int) -> dict:
        """Member ``k``'s draws as its checkpoint holds them: its generators at the start of
        its current block (as they are when nothing was drawn yet), and how far into it."""
        if not self.block_start:
            return {"sampler": {"generator": self.index_generators[k].get_state(), "block_offset": 0},
                    "noise": self.noise_generators[k].get_state()}
        index, noise = self.block_start[k]
        return {"sampler": {"generator": index, "block_offset": self.used}, "noise": noise}

    def load_member_states(self, states: list[dict]) -> None:
        """Continue from each member's checkpoint (:meth:`member_state`; one offset for all).
        A checkpoint without ``block_offset`` (saved before blocks) holds the generators
        after the last step: the next step starts a new block from them."""
        for index, noise, state in zip(self.index_generators, self.noise_generators, states):
            index.set_state(state["sampler"]["generator"])
            noise.set_state(state["noise"])
        offsets = {s["sampler"].get("block_offset") for s in states}
        if offsets != {None}:
            (offset,) = offsets
            self._draw()
            self.position.fill_(offset)
            self.used = offset
        else:
            self.used = BLOCK_STEPS
