"""The official dSprites npz loader, on miniature files in the official layout."""

import zipfile

import numpy as np
import pytest

from disbench.data import FactorGridDataset
from disbench.errors import DisbenchError
from disbench.datasets import dsprites as dsprites_module
from disbench.datasets.dsprites import FILENAME, dsprites
from disbench.datasets.dsprites_synth import render

SIZES = (3, 2, 2, 2, 3)  # a complete sub-grid: 72 images


class _Unpickled(Exception):
    pass


def _explode():
    raise _Unpickled("metadata was unpickled")


class Bomb:
    """Unpickling this raises: a loader that touches `metadata` fails the test."""

    def __reduce__(self):
        return (_explode, ())


def message(err) -> str:
    """The loader's own message: one line (gin appends where the configurable was called)."""
    text = str(err.value).split("\n  In call to configurable")[0]
    assert "\n" not in text, text
    return text


def grid_classes(sizes):
    n = int(np.prod(sizes))
    idx = np.arange(n)
    strides = np.concatenate([np.cumprod(sizes[::-1])[::-1][1:], [1]])
    factors = (idx[:, None] // strides) % np.asarray(sizes)
    return np.concatenate([np.zeros((n, 1), dtype=np.int64), factors], axis=1)


DROP = object()


def write_npz(path, imgs=None, classes=None, compressed=True):
    """A miniature file in the official layout, `metadata` a pickled object array."""
    arrays = {
        "imgs": render(SIZES) if imgs is None else imgs,
        "latents_classes": grid_classes(SIZES) if classes is None else classes,
        "latents_values": grid_classes(SIZES).astype(np.float64),
        "metadata": np.array([Bomb()], dtype=object),
    }
    arrays = {k: v for k, v in arrays.items() if v is not DROP}
    (np.savez_compressed if compressed else np.savez)(path, **arrays)
    return path


def test_loads_official_layout_without_unpickling_metadata(tmp_path):
    write_npz(tmp_path / FILENAME)
    ds = dsprites(data_root=tmp_path, allow_subgrid=True)
    assert isinstance(ds, FactorGridDataset)
    assert ds.factor_names == ("shape", "scale", "orientation", "pos_x", "pos_y")
    assert ds.factor_sizes == SIZES
    assert tuple(ds.images.shape) == (72, 1, 64, 64)
    assert ds.likelihood == "bernoulli"
    assert np.array_equal(ds.images[:, 0].numpy(), render(SIZES) * 255)
    assert set(np.unique(ds.images.numpy())) == {0, 255}
    assert str(tmp_path / FILENAME) in ds.source and "bytes" in ds.source
    assert np.array_equal(ds.factors[5], grid_classes(SIZES)[5, 1:])


def test_finds_file_in_dsprites_subfolder_and_env(tmp_path, monkeypatch):
    (tmp_path / "dsprites").mkdir()
    write_npz(tmp_path / "dsprites" / FILENAME, compressed=False)
    monkeypatch.setenv("DISBENCH_DATA", str(tmp_path))
    assert len(dsprites(allow_subgrid=True)) == 72


def test_missing_file_names_expected_path_and_source(tmp_path):
    with pytest.raises(DisbenchError) as err:
        dsprites(data_root=tmp_path)
    text = message(err)
    assert str(tmp_path / FILENAME) in text
    assert "github.com/deepmind/dsprites-dataset" in text and "DISBENCH_DATA" in text


def test_explicit_missing_path(tmp_path):
    with pytest.raises(DisbenchError, match="does not exist"):
        dsprites(path=tmp_path / "nope.npz")


def test_subgrid_needs_opt_in(tmp_path):
    write_npz(tmp_path / FILENAME)
    with pytest.raises(DisbenchError, match=r"expected the official .*allow_subgrid"):
        dsprites(data_root=tmp_path)


def _error(path, **options):
    with pytest.raises(DisbenchError) as err:
        dsprites(path=path, allow_subgrid=True, **options)
    text = message(err)
    assert str(path) in text, text
    return text


def test_not_an_npz(tmp_path):
    path = tmp_path / FILENAME
    path.write_bytes(b"this is not a zip archive" * 10)
    assert "not a readable npz" in _error(path)


def test_truncated_npz(tmp_path):
    path = write_npz(tmp_path / FILENAME)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    _error(path)


def test_corrupt_member(tmp_path):
    path = write_npz(tmp_path / FILENAME)
    with zipfile.ZipFile(path) as z:
        info = z.getinfo("imgs.npy")
    data = bytearray(path.read_bytes())
    start = info.header_offset + 30 + len(info.filename) + len(info.extra)
    for i in range(start + 20, start + info.compress_size - 20, 7):  # scramble the deflated bytes
        data[i] ^= 0x5A
    path.write_bytes(bytes(data))
    assert "imgs" in _error(path)


@pytest.mark.parametrize("drop", ["imgs", "latents_classes"])
def test_missing_key(tmp_path, drop):
    path = write_npz(tmp_path / FILENAME, **{"classes" if drop == "latents_classes" else drop: DROP})
    assert drop in _error(path)


def test_pickled_single_array_is_refused(tmp_path):
    path = tmp_path / FILENAME
    np.save(tmp_path / "x.npy", np.array([Bomb()], dtype=object))
    path.write_bytes((tmp_path / "x.npy").read_bytes())
    _error(path)


def test_wrong_classes_shape(tmp_path):
    path = write_npz(tmp_path / FILENAME, classes=grid_classes(SIZES)[:, 1:])
    assert "(N, 6)" in _error(path)


def test_classes_not_in_official_order(tmp_path):
    classes = grid_classes(SIZES)[np.random.default_rng(0).permutation(72)]
    assert "official order" in _error(write_npz(tmp_path / FILENAME, classes=classes))


def test_incomplete_grid(tmp_path):
    path = write_npz(tmp_path / FILENAME, imgs=render(SIZES)[:-1], classes=grid_classes(SIZES)[:-1])
    assert "grid of 72" in _error(path)


def test_colour_column_must_be_constant(tmp_path):
    classes = grid_classes(SIZES)
    classes[3, 0] = 1
    assert "colour" in _error(write_npz(tmp_path / FILENAME, classes=classes))


def test_images_must_be_binary_uint8_and_match(tmp_path):
    imgs = render(SIZES)
    imgs[0, 0, 0] = 2
    assert "binary" in _error(write_npz(tmp_path / FILENAME, imgs=imgs))
    assert "uint8" in _error(write_npz(tmp_path / FILENAME, imgs=render(SIZES).astype(np.float32)))
    assert "uint8" in _error(write_npz(tmp_path / FILENAME, imgs=render(SIZES)[:, :32, :32]))
    assert "holds 71 images" in _error(write_npz(tmp_path / FILENAME, imgs=render(SIZES)[:71]))


def test_module_documents_the_pickle_rule():
    assert "never unpickled" in dsprites_module.__doc__
