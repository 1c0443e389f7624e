"""MNIST from IDX files (plain and gzip) and from an npz, plus every malformed case."""

import gzip
import struct

import numpy as np
import pytest

from disbench.data import GroundTruthDataset
from disbench.errors import DisbenchError
from disbench.datasets.mnist import mnist

N = 12


def message(err) -> str:
    text = str(err.value).split("\n  In call to configurable")[0]
    assert "\n" not in text, text
    return text


def digits_and_labels():
    rng = np.random.default_rng(0)
    digits = rng.integers(0, 256, size=(N, 28, 28), dtype=np.uint8)
    digits[0] = 0
    digits[0, :, :14] = 255  # left half on
    return digits, (np.arange(N) % 10).astype(np.uint8)


def idx_bytes(array, magic_type=0x08):
    header = bytes([0, 0, magic_type, array.ndim]) + b"".join(struct.pack(">I", d) for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_idx(folder, gz=False, prefix="train", digits=None, labels=None):
    d, l = digits_and_labels()
    digits = d if digits is None else digits
    labels = l if labels is None else labels
    folder.mkdir(parents=True, exist_ok=True)
    images_path = folder / f"{prefix}-images-idx3-ubyte"
    labels_path = folder / f"{prefix}-labels-idx1-ubyte"
    for path, array in [(images_path, digits), (labels_path, labels)]:
        data = idx_bytes(array)
        if gz:
            path = path.with_name(path.name + ".gz")
            path.write_bytes(gzip.compress(data, mtime=0))
        else:
            path.write_bytes(data)
    return images_path.with_name(images_path.name + (".gz" if gz else ""))


def test_plain_idx(tmp_path):
    path = write_idx(tmp_path)
    ds = mnist(data_root=tmp_path)
    digits, labels = digits_and_labels()
    assert isinstance(ds, GroundTruthDataset)
    assert ds.factor_names == ("digit",) and ds.factor_sizes == (10,)
    assert ds.factors[:, 0].tolist() == labels.tolist()
    assert tuple(ds.images.shape) == (N, 1, 64, 64)
    assert set(np.unique(ds.images.numpy())) <= {0, 255}
    assert ds.likelihood == "bernoulli"
    assert str(path) in ds.source and "labels-idx1" in ds.source
    # resize: the digit whose left half is on fills the left half of the frame
    first = ds.images[0, 0].numpy()
    assert first[:, :30].min() == 255 and first[:, 34:].max() == 0


def test_gz_idx_in_mnist_subfolder_matches_plain(tmp_path):
    write_idx(tmp_path / "plain")
    write_idx(tmp_path / "gz" / "mnist", gz=True)
    plain = mnist(data_root=tmp_path / "plain")
    gz = mnist(data_root=tmp_path / "gz")
    assert np.array_equal(plain.images.numpy(), gz.images.numpy())
    assert ".gz" in gz.source


def test_pad_placement_keeps_pixels_and_threshold(tmp_path):
    write_idx(tmp_path)
    digits, _ = digits_and_labels()
    ds = mnist(data_root=tmp_path, placement="pad", threshold=200)
    images = ds.images[:, 0].numpy()
    assert np.array_equal(images[:, 18:46, 18:46], (digits >= 200).astype(np.uint8) * 255)
    images[:, 18:46, 18:46] = 0
    assert images.max() == 0
    assert ds.info["placement"] == "pad" and ds.info["threshold"] == 200


def test_npz_and_test_split(tmp_path):
    digits, labels = digits_and_labels()
    np.savez(tmp_path / "mnist.npz", x_train=digits, y_train=labels, x_test=digits[:5], y_test=labels[:5])
    train = mnist(data_root=tmp_path)
    test = mnist(data_root=tmp_path, split="test")
    assert len(train) == N and len(test) == 5
    write_idx(tmp_path / "idx")
    assert np.array_equal(train.images.numpy(), mnist(data_root=tmp_path / "idx").images.numpy())


def test_explicit_path_finds_labels_beside(tmp_path):
    path = write_idx(tmp_path / "somewhere", gz=True, prefix="t10k")
    ds = mnist(path=path, split="test")
    assert len(ds) == N


def test_missing_files_name_expected_path_and_source(tmp_path):
    with pytest.raises(DisbenchError) as err:
        mnist(data_root=tmp_path)
    text = message(err)
    assert str(tmp_path / "train-images-idx3-ubyte") in text and "yann.lecun.com" in text


def _error(path, **options):
    with pytest.raises(DisbenchError) as err:
        mnist(path=path, **options)
    text = message(err)
    return text


def test_bad_magic(tmp_path):
    path = write_idx(tmp_path)
    data = bytearray(path.read_bytes())
    data[2] = 0x0D  # float, not unsigned bytes
    path.write_bytes(bytes(data))
    text = _error(path)
    assert str(path) in text and "magic" in text


def test_wrong_dimensions_in_labels_file(tmp_path):
    path = write_idx(tmp_path)
    labels_path = tmp_path / "train-labels-idx1-ubyte"
    labels_path.write_bytes(idx_bytes(np.zeros((N, 2), np.uint8)))
    text = _error(path)
    assert str(labels_path) in text and "magic" in text


@pytest.mark.parametrize("gz", [False, True])
def test_truncated_images(tmp_path, gz):
    path = write_idx(tmp_path, gz=gz)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 40])
    text = _error(path)
    assert str(path) in text and ("truncated" in text or "corrupt" in text)


def test_extra_bytes(tmp_path):
    path = write_idx(tmp_path)
    path.write_bytes(path.read_bytes() + b"\0\0")
    assert "longer than its header" in _error(path)


def test_header_too_short(tmp_path):
    path = write_idx(tmp_path)
    path.write_bytes(path.read_bytes()[:6])
    assert "too short" in _error(path)


def test_not_gzip(tmp_path):
    path = write_idx(tmp_path, gz=True)
    path.write_bytes(b"definitely not gzip data")
    assert str(path) in _error(path)


def test_label_count_mismatch(tmp_path):
    digits, labels = digits_and_labels()
    path = write_idx(tmp_path, labels=labels[:-1])
    text = _error(path)
    assert "11 labels for 12 images" in text and "labels-idx1" in text


def test_labels_out_of_range(tmp_path):
    digits, labels = digits_and_labels()
    labels[3] = 10
    assert "0-9" in _error(write_idx(tmp_path, labels=labels))


def test_images_must_be_28x28(tmp_path):
    assert "28x28" in _error(write_idx(tmp_path, digits=np.zeros((N, 28, 27), np.uint8)))


def test_missing_labels_file(tmp_path):
    path = write_idx(tmp_path)
    (tmp_path / "train-labels-idx1-ubyte").unlink()
    assert "labels not found" in _error(path)


def test_npz_problems(tmp_path):
    digits, labels = digits_and_labels()
    path = tmp_path / "mnist.npz"
    np.savez(path, x_train=digits)
    assert "y_train" in _error(path) and str(path) in _error(path)
    np.savez(path, x_train=digits.astype(np.float32), y_train=labels)
    assert "uint8" in _error(path)
    np.savez(path, x_train=digits, y_train=labels[:3])
    assert "integer labels" in _error(path)
    np.savez(path, x_train=np.array([object()], dtype=object), y_train=labels)
    assert "not a readable npz" in _error(path)
    path.write_bytes(b"PK\x03\x04 broken")
    assert "not a readable npz" in _error(path)


@pytest.mark.parametrize("options", [{"split": "val"}, {"placement": "crop"}, {"threshold": 0}])
def test_bad_options(tmp_path, options):
    write_idx(tmp_path)
    with pytest.raises(DisbenchError):
        mnist(data_root=tmp_path, **options)
