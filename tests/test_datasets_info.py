"""dataset_info: each shipped dataset's size and factors from its metadata, never its pixels."""

import gzip
import io
import zipfile

import gin
import numpy as np
import pytest
import torch
from PIL import Image

from disbench import plugins
from disbench.data import DatasetInfo, FactorGridDataset, dataset_info
from disbench.data.info import factory_info, supports_metadata
from disbench.datasets import DATASETS
from disbench.datasets import chairs3d as chairs_module
from disbench.datasets import dsprites as dsprites_module
from disbench.datasets import dsprites_synth as synth_module
from disbench.datasets import mnist as mnist_module
from disbench.datasets import shapes3d as shapes_module
from disbench.errors import DisbenchError
from disbench.hookspecs import hookimpl
from tests.test_datasets_chairs3d import make_folder
from tests.test_datasets_dsprites import SIZES as DSPRITES_SIZES, write_npz
from tests.test_datasets_mnist import N as MNIST_N, write_idx
from tests.test_datasets_shapes3d import SIZES as SHAPES_SIZES, write_h5


class _PixelsRead(Exception):
    pass


def _fail(*args, **kwargs):
    raise _PixelsRead("the info path read images")


def message(err) -> str:
    return str(err.value).split("\n  In call to configurable")[0]


def third_party(data_root=None):
    """A plugin's factory that knows nothing of metadata_only."""
    return FactorGridDataset(name="plain", images=torch.zeros((6, 1, 64, 64), dtype=torch.uint8),
                             source="test", factor_names=("a", "b"), factor_sizes=(2, 3))


class ThirdParty:
    @staticmethod
    @hookimpl
    def register_datasets(registry):
        registry.add("plain", third_party)


@pytest.fixture(autouse=True)
def host(tmp_path, monkeypatch):
    monkeypatch.setenv("DISBENCH_NO_PROGRESS", "1")
    host = plugins.PluginHost(entry_points=False, extra_plugins={"third": ThirdParty})
    assert all(p.error is None for p in host.plugins.values())
    plugins.set_host(host)
    yield host
    plugins.set_host(None)


def built_then_info(monkeypatch, name, data_root, forbid, **bindings):
    """The dataset built as registered, and its info with the pixel readers ``forbid`` patched to fail."""
    for key, value in bindings.items():
        gin.bind_parameter(f"{name}.{key}", value)
    built = DATASETS[name](data_root=data_root)
    with monkeypatch.context() as patch:
        for owner, attribute in forbid:
            patch.setattr(owner, attribute, _fail)
        info = dataset_info(name, data_root=data_root)
    return built, info


def test_shipped_factories_offer_metadata_and_keep_it_out_of_gin():
    assert all(supports_metadata(factory) for factory in DATASETS.values())
    assert not supports_metadata(third_party)
    with pytest.raises(ValueError, match="denylisted"):
        gin.parse_config("dsprites_synth.metadata_only = True")


def test_dsprites_synth_from_its_factor_sizes(monkeypatch):
    built, info = built_then_info(monkeypatch, "dsprites_synth", None,
                                  [(synth_module, "build"), (synth_module, "render_into")],
                                  factor_sizes=(2, 1, 3, 2, 2), cache=False)
    assert info == DatasetInfo.of(built) and info.num_images == len(built) == 24
    assert info.factor_display_order == ("pos_x", "pos_y", "shape", "scale", "orientation")
    gin.clear_config()
    with monkeypatch.context() as patch:
        patch.setattr(synth_module, "build", _fail)
        assert dataset_info("dsprites_synth").num_images == 737280  # the full grid, nothing rendered


def test_dsprites_from_the_imgs_header_with_a_bound_path(tmp_path, monkeypatch):
    path = write_npz(tmp_path / "elsewhere.npz")
    built, info = built_then_info(monkeypatch, "dsprites", None,
                                  [(dsprites_module, "_check_images")], path=str(path), allow_subgrid=True)
    assert info == DatasetInfo.of(built) and info.num_images == len(built) == int(np.prod(DSPRITES_SIZES))
    assert info.factor_sizes == DSPRITES_SIZES
    original = dsprites_module._read

    def classes_only(archive, key, path):
        assert key != "imgs", "the info path read 'imgs'"
        return original(archive, key, path)

    monkeypatch.setattr(dsprites_module, "_read", classes_only)
    assert dataset_info("dsprites") == info


def npz_with_header_only(path, arrays_shapes):
    """An npz whose members are .npy headers with no data behind them: only a
    reader that stops at the header gets through."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for key, (shape, dtype) in arrays_shapes.items():
            member = io.BytesIO()
            np.lib.format.write_array_header_1_0(
                member, {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)), "fortran_order": False,
                         "shape": shape})
            archive.writestr(key + ".npy", member.getvalue())
    return path


def test_official_dsprites_size_without_its_3gb_of_pixels(tmp_path, monkeypatch):
    npz_with_header_only(tmp_path / dsprites_module.FILENAME,
                         {"imgs": ((737280, 64, 64), np.uint8), "latents_classes": ((737280, 6), np.int64)})
    monkeypatch.setattr(np.lib.format, "read_array", _fail)
    info = dataset_info("dsprites", data_root=str(tmp_path))
    assert info.num_images == 737280 and info.factor_sizes == (3, 6, 40, 32, 32)
    assert info.observation_shape == (1, 64, 64) and info.likelihood == "bernoulli"
    npz_with_header_only(tmp_path / "small.npz", {"imgs": ((72, 64, 64), np.uint8)})
    with pytest.raises(DisbenchError, match="holds 72 images.*allow_subgrid"):
        DATASETS["dsprites"](path=tmp_path / "small.npz", metadata_only=True)
    npz_with_header_only(tmp_path / "floats.npz", {"imgs": ((72, 64, 64), np.float32)})
    with pytest.raises(DisbenchError, match="must be \\(N, 64, 64\\) uint8"):
        DATASETS["dsprites"](path=tmp_path / "floats.npz", metadata_only=True)
    (tmp_path / "broken.npz").write_bytes(b"not a zip")
    with pytest.raises(DisbenchError, match="not a readable npz file"):
        DATASETS["dsprites"](path=tmp_path / "broken.npz", metadata_only=True)
    npz_with_header_only(tmp_path / "nokey.npz", {"other": ((1,), np.uint8)})
    with pytest.raises(DisbenchError, match="missing key 'imgs'"):
        DATASETS["dsprites"](path=tmp_path / "nokey.npz", metadata_only=True)


@pytest.mark.parametrize("gz", [False, True])
def test_mnist_from_the_idx_header(tmp_path, monkeypatch, gz):
    write_idx(tmp_path, gz=gz)
    built, info = built_then_info(monkeypatch, "mnist", str(tmp_path),
                                  [(mnist_module, "_read_idx"), (mnist_module, "_read_npz")])
    assert info == DatasetInfo.of(built) and info.num_images == len(built) == MNIST_N
    assert info.factor_names == ("digit",) and info.factor_sizes == (10,)


def test_mnist_header_only_idx_and_npz(tmp_path, monkeypatch):
    header = bytes([0, 0, 8, 3]) + (60000).to_bytes(4, "big") + (28).to_bytes(4, "big") * 2
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(header))  # no pixels at all
    assert dataset_info("mnist", data_root=str(tmp_path)).num_images == 60000
    npz_with_header_only(tmp_path / "mnist.npz", {"x_train": ((60000, 28, 28), np.uint8),
                                                  "x_test": ((10000, 28, 28), np.uint8)})
    monkeypatch.setattr(np.lib.format, "read_array", _fail)
    gin.bind_parameter("mnist.path", str(tmp_path / "mnist.npz"))
    gin.bind_parameter("mnist.split", "test")
    assert dataset_info("mnist").num_images == 10000
    (tmp_path / "bad-images-idx3-ubyte").write_bytes(b"\0\0\x09\x03" + bytes(12))
    with pytest.raises(DisbenchError, match="bad IDX magic"):
        DATASETS["mnist"](path=tmp_path / "bad-images-idx3-ubyte", metadata_only=True)


def test_mnist_npz_matches_the_built_dataset(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "mnist.npz", x_train=rng.integers(0, 256, (7, 28, 28), dtype=np.uint8),
             y_train=np.arange(7, dtype=np.uint8))
    built, info = built_then_info(monkeypatch, "mnist", str(tmp_path), [(mnist_module, "_read_npz")])
    assert info == DatasetInfo.of(built) and info.num_images == 7


def test_shapes3d_from_the_h5_shapes(tmp_path, monkeypatch):
    write_h5(tmp_path / shapes_module.FILENAME)
    original = shapes_module._read

    def labels_only(dataset, rows, path, key):
        assert key != "images", "the info path read 'images'"
        return original(dataset, rows, path, key)

    built, info = built_then_info(monkeypatch, "shapes3d", str(tmp_path), [], allow_subgrid=True)
    monkeypatch.setattr(shapes_module, "_read", labels_only)
    assert dataset_info("shapes3d", data_root=str(tmp_path)) == info == DatasetInfo.of(built)
    assert info.num_images == len(built) == int(np.prod(SHAPES_SIZES)) and info.factor_sizes == SHAPES_SIZES
    gin.clear_config()
    with pytest.raises(DisbenchError, match="official grid.*allow_subgrid"):
        dataset_info("shapes3d", data_root=str(tmp_path))


def test_official_shapes3d_size_from_unwritten_datasets(tmp_path, monkeypatch):
    import h5py

    with h5py.File(tmp_path / shapes_module.FILENAME, "w") as f:  # shapes only: the file stays tiny
        f.create_dataset("images", shape=(480000, 64, 64, 3), dtype=np.uint8)
        f.create_dataset("labels", shape=(480000, 6), dtype=np.float64)
    assert (tmp_path / shapes_module.FILENAME).stat().st_size < 2**20
    monkeypatch.setattr(shapes_module, "_read", _fail)
    info = dataset_info("shapes3d", data_root=str(tmp_path))
    assert info.num_images == 480000 and info.factor_sizes == shapes_module.FULL_SIZES
    assert info.observation_shape == (3, 64, 64) and info.likelihood == "gaussian"


def test_chairs3d_counts_files(tmp_path, monkeypatch):
    make_folder(tmp_path)
    monkeypatch.setenv("DISBENCH_CACHE", str(tmp_path / "cache"))
    built, info = built_then_info(monkeypatch, "chairs3d", str(tmp_path),
                                  [(chairs_module, "read_image"), (Image, "open")], cache=False)
    assert info == DatasetInfo.of(built) and info.num_images == len(built) == 4
    assert not info.has_factors


def test_a_factory_without_metadata_is_built_and_measured():
    info = dataset_info("plain")
    assert info.num_images == 6 and info.factor_names == ("a", "b") and info.factor_sizes == (2, 3)


def test_a_factory_answering_metadata_with_a_dataset_is_an_error():
    def confused(data_root=None, metadata_only=False):
        return third_party()

    with pytest.raises(DisbenchError, match="expected a DatasetInfo"):
        factory_info(confused, name="confused")
