"""Dataset interface and dataset metadata."""

from .dataset import FactorGridDataset, GroundTruthDataset, ImageDataset
from .info import DatasetInfo, dataset_info

__all__ = ["ImageDataset", "GroundTruthDataset", "FactorGridDataset", "DatasetInfo", "dataset_info"]
