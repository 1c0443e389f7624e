"""3D chairs from a nested folder of PNG/JPG images."""

import numpy as np
import pytest
from PIL import Image

from disbench.errors import DisbenchError
from disbench.datasets import chairs3d as chairs_module
from disbench.datasets.chairs3d import chairs3d


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("DISBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("DISBENCH_NO_PROGRESS", "1")


def message(err) -> str:
    text = str(err.value).split("\n  In call to configurable")[0]
    assert "\n" not in text, text
    return text


def make_folder(root):
    folder = root / "rendered_chairs"
    (folder / "b" / "renders").mkdir(parents=True)
    (folder / "a").mkdir()
    Image.new("RGB", (120, 90), (255, 0, 0)).save(folder / "b" / "renders" / "image_001.png")
    Image.new("RGB", (64, 64), (0, 0, 255)).save(folder / "a" / "x.jpg", quality=95)
    Image.new("RGBA", (50, 50), (0, 0, 0, 0)).save(folder / "0.PNG")  # fully transparent
    Image.new("L", (30, 30), 128).save(folder / "a" / "y.jpeg")
    (folder / "notes.txt").write_text("not an image")
    return folder


def test_reads_nested_images_sorted_rgb_64(tmp_path):
    folder = make_folder(tmp_path)
    ds = chairs3d(data_root=tmp_path)
    assert not ds.has_factors and ds.likelihood == "gaussian"
    assert tuple(ds.images.shape) == (4, 3, 64, 64)
    means = ds.images.float().mean(dim=(2, 3)).round().int().tolist()
    # sorted relative paths: 0.PNG, a/x.jpg, a/y.jpeg, b/renders/image_001.png
    assert means[0] == [255, 255, 255]  # transparent -> white background
    assert abs(means[1][2] - 254) <= 2 and means[1][0] <= 2
    assert means[2] == [128, 128, 128]
    assert means[3] == [255, 0, 0]
    assert str(folder) in ds.source and "4 images" in ds.source


def test_cache_is_used_and_invalidated_by_a_change(tmp_path, monkeypatch):
    folder = make_folder(tmp_path)
    first = chairs3d(path=folder)
    assert first.info["cache"].startswith(str(tmp_path / "cache"))
    monkeypatch.setattr(chairs_module, "read_image", lambda p: pytest.fail("decoded although cached"))
    assert np.array_equal(chairs3d(path=folder).images.numpy(), first.images.numpy())
    monkeypatch.undo()
    monkeypatch.setenv("DISBENCH_CACHE", str(tmp_path / "cache"))
    Image.new("RGB", (64, 64), (0, 255, 0)).save(folder / "b" / "renders" / "image_002.png")
    assert len(chairs3d(path=folder)) == 5


def test_without_cache(tmp_path):
    make_folder(tmp_path)
    ds = chairs3d(data_root=tmp_path, cache=False)
    assert len(ds) == 4 and "cache" not in ds.info
    assert not (tmp_path / "cache").exists() or not list((tmp_path / "cache").glob("chairs3d_*"))


def test_missing_folder_names_expected_path(tmp_path):
    with pytest.raises(DisbenchError) as err:
        chairs3d(data_root=tmp_path)
    text = message(err)
    assert str(tmp_path / "rendered_chairs") in text and "seeing3Dchairs" in text


def test_empty_folder(tmp_path):
    (tmp_path / "chairs3d" / "sub").mkdir(parents=True)
    (tmp_path / "chairs3d" / "readme.txt").write_text("x")
    with pytest.raises(DisbenchError) as err:
        chairs3d(data_root=tmp_path)
    assert str(tmp_path / "chairs3d") in message(err) and "no .png/.jpg" in message(err)


def test_unreadable_image_named(tmp_path):
    folder = make_folder(tmp_path)
    bad = folder / "a" / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    with pytest.raises(DisbenchError) as err:
        chairs3d(path=folder, cache=False)
    assert str(bad) in message(err) and "unreadable image" in message(err)


def test_truncated_image_named(tmp_path):
    folder = make_folder(tmp_path)
    good = folder / "b" / "renders" / "image_001.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (90, 120, 3), dtype=np.uint8)).save(good)
    good.write_bytes(good.read_bytes()[:400])
    with pytest.raises(DisbenchError) as err:
        chairs3d(path=folder)
    assert str(good) in message(err)


def test_path_must_be_a_folder(tmp_path):
    with pytest.raises(DisbenchError, match="not a folder"):
        chairs3d(path=tmp_path / "nothing")


def test_missing_folder_names_the_expected_path_and_the_source(tmp_path):
    (tmp_path / "rendered_chairs").write_text("a file, not the folder")
    with pytest.raises(DisbenchError) as err:
        chairs3d(data_root=tmp_path)
    assert f"expected the folder {tmp_path / 'rendered_chairs'}" in message(err)
    assert "rendered_chairs.tar" in message(err)


def test_second_folder_name_is_found(tmp_path):
    make_folder(tmp_path)
    (tmp_path / "rendered_chairs").rename(tmp_path / "chairs3d")
    assert len(chairs3d(data_root=tmp_path, cache=False).images) > 0
