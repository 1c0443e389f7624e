"""Dataset interface and the on-device batch sampler."""

from .dataset import FactorGridDataset, GroundTruthDataset, ImageDataset
from .sampler import DeviceSampler

__all__ = ["ImageDataset", "GroundTruthDataset", "FactorGridDataset", "DeviceSampler"]
