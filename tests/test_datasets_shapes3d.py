"""3D Shapes from a miniature 3dshapes.h5 in the official layout."""

import h5py
import numpy as np
import pytest

from disbench.data import FactorGridDataset
from disbench.errors import DisbenchError
from disbench.datasets.shapes3d import FACTOR_NAMES, FILENAME, shapes3d

SIZES = (2, 1, 2, 3, 2, 2)  # 48 images
VALUES = [np.linspace(0, 0.9, 10), np.linspace(0, 0.9, 10), np.linspace(0, 0.9, 10),
          np.linspace(0.75, 1.25, 8), np.arange(4.0), np.linspace(-30, 30, 15)]


def message(err) -> str:
    text = str(err.value).split("\n  In call to configurable")[0]
    assert "\n" not in text, text
    return text


def grid_labels(sizes=SIZES):
    factors = np.stack(np.unravel_index(np.arange(int(np.prod(sizes))), sizes), axis=1)
    # spread indices over the official values so the mapping by sorted unique values is tested
    labels = np.stack([VALUES[k][factors[:, k] * (len(VALUES[k]) // sizes[k])] for k in range(6)], axis=1)
    return factors, labels


def write_h5(path, images=None, labels=None, **extra):
    n = int(np.prod(SIZES))
    if images is None:
        images = np.random.default_rng(0).integers(0, 256, (n, 64, 64, 3), dtype=np.uint8)
    if labels is None:
        labels = grid_labels()[1]
    with h5py.File(path, "w") as f:
        if images is not False:
            f.create_dataset("images", data=images)
        if labels is not False:
            f.create_dataset("labels", data=labels)
        for key, value in extra.items():
            f.create_dataset(key, data=value)
    return images


def test_loads_grid_with_factor_indices(tmp_path):
    images = write_h5(tmp_path / FILENAME)
    ds = shapes3d(data_root=tmp_path, allow_subgrid=True)
    assert isinstance(ds, FactorGridDataset)
    assert ds.factor_names == FACTOR_NAMES and ds.factor_sizes == SIZES
    assert ds.likelihood == "gaussian"
    assert tuple(ds.images.shape) == (48, 3, 64, 64)
    assert np.array_equal(ds.images.numpy(), images.transpose(0, 3, 1, 2))
    assert np.array_equal(ds.factors, grid_labels()[0])
    assert str(tmp_path / FILENAME) in ds.source


def test_subfolder_and_official_sizes_required_by_default(tmp_path):
    (tmp_path / "shapes3d").mkdir()
    write_h5(tmp_path / "shapes3d" / FILENAME)
    with pytest.raises(DisbenchError) as err:
        shapes3d(data_root=tmp_path)
    assert "floor_hue': 10" in message(err) and "allow_subgrid" in message(err)


def test_missing_file_names_expected_path(tmp_path):
    with pytest.raises(DisbenchError) as err:
        shapes3d(data_root=tmp_path)
    assert str(tmp_path / FILENAME) in message(err) and "3d-shapes" in message(err)


def _error(path):
    with pytest.raises(DisbenchError) as err:
        shapes3d(path=path, allow_subgrid=True)
    text = message(err)
    assert str(path) in text, text
    return text


def test_not_hdf5(tmp_path):
    path = tmp_path / FILENAME
    path.write_bytes(b"not an hdf5 file at all" * 20)
    assert "HDF5" in _error(path)


def test_truncated(tmp_path):
    path = tmp_path / FILENAME
    write_h5(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    _error(path)


def test_missing_key(tmp_path):
    path = tmp_path / FILENAME
    write_h5(path, labels=False)
    assert "labels" in _error(path)


def test_wrong_image_shape_or_dtype(tmp_path):
    path = tmp_path / FILENAME
    write_h5(path, images=np.zeros((48, 3, 64, 64), np.uint8))
    assert "(N, 64, 64, 3) uint8" in _error(path)
    write_h5(path, images=np.zeros((48, 64, 64, 3), np.float32))
    assert "uint8" in _error(path)


def test_labels_shape(tmp_path):
    path = tmp_path / FILENAME
    write_h5(path, labels=grid_labels()[1][:, :5])
    assert "'labels' must be (48, 6)" in _error(path)


def test_labels_not_in_official_order(tmp_path):
    path = tmp_path / FILENAME
    write_h5(path, labels=grid_labels()[1][np.random.default_rng(1).permutation(48)])
    assert "official order" in _error(path)


def test_labels_incomplete_grid(tmp_path):
    path = tmp_path / FILENAME
    labels = grid_labels()[1]
    labels[5, 3] = 1.1  # a fourth scale value appears once
    write_h5(path, labels=labels)
    assert "grid of" in _error(path)


def test_nan_labels(tmp_path):
    path = tmp_path / FILENAME
    labels = grid_labels()[1]
    labels[0, 0] = np.nan
    write_h5(path, labels=labels)
    assert "NaN" in _error(path)
