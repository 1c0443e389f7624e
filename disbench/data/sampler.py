"""Random-index batch sampling from images held on the training device."""

from __future__ import annotations

import torch


class DeviceSampler:
    """Draws batches by random index from a uint8 image tensor on ``device``.

    The images are moved to the device once; each batch is one ``randint`` and
    one gather, then a cast to float in [0, 1]. Nothing here synchronises with
    the host, and the generator's state is part of a checkpoint so a resumed
    run draws the same batches.
    """

    def __init__(self, images: torch.Tensor, batch_size: int, device: torch.device | str, seed: int):
        if images.dtype != torch.uint8:
            raise TypeError("DeviceSampler expects uint8 images")
        self.device = torch.device(device)
        self.images = images.to(self.device)
        self.batch_size = int(batch_size)
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(int(seed))

    def sample_indices(self) -> torch.Tensor:
        return torch.randint(
            0, self.images.shape[0], (self.batch_size,), device=self.device, generator=self.generator
        )

    def batch(self, indices: torch.Tensor) -> torch.Tensor:
        return self.images.index_select(0, indices).float().div_(255.0)

    def next(self) -> torch.Tensor:
        return self.batch(self.sample_indices())

    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"])
