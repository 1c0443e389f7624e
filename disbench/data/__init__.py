"""Dataset interface, dataset metadata and the on-device batch sampler."""

from .dataset import FactorGridDataset, GroundTruthDataset, ImageDataset
from .info import DatasetInfo, dataset_info
from .sampler import DeviceSampler

__all__ = ["ImageDataset", "GroundTruthDataset", "FactorGridDataset", "DatasetInfo", "dataset_info",
           "DeviceSampler"]
