"""The generated dSprites: grid, index order, geometry, determinism and cache (sub-grids only)."""

import json

import numpy as np
import pytest

from disbench.data import FactorGridDataset
from disbench.errors import DisbenchError
from disbench.datasets import dsprites_synth as synth
from disbench.datasets.dsprites_synth import FULL_SIZES, dsprites_synth, render

SUB = (3, 2, 9, 4, 5)  # orientations 0, pi/4, ..., 2pi; unequal x/y counts catch a swap


@pytest.fixture(scope="module")
def images():
    return render(SUB)


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("DISBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("DISBENCH_NO_PROGRESS", "1")


def index(shape, scale, orient, x, y, sizes=SUB):
    return int(np.ravel_multi_index((shape, scale, orient, x, y), sizes))


def centroid(image):
    rows, cols = np.nonzero(image)
    return rows.mean(), cols.mean()


def reference_image(shape, scale, angle, cx, cy):
    """One sprite drawn directly on the 64x64 frame (no windows, no phases)."""
    samples = (np.arange(64 * synth.SUPERSAMPLE) + 0.5) / synth.SUPERSAMPLE
    x = samples[None, :] - cx
    y = cy - samples[:, None]
    size = synth.UNIT * scale
    u = (x * np.cos(angle) + y * np.sin(angle)) / size
    v = (y * np.cos(angle) - x * np.sin(angle)) / size
    hits = synth._inside(synth.SHAPES[shape], u, v).reshape(64, synth.SUPERSAMPLE, 64, synth.SUPERSAMPLE)
    return (2 * hits.sum(axis=(1, 3)) >= synth.SUPERSAMPLE**2).astype(np.uint8)


def test_full_grid_strides_match_the_official_order():
    assert FULL_SIZES == (3, 6, 40, 32, 32)
    strides = np.concatenate([np.cumprod(FULL_SIZES[::-1])[::-1][1:], [1]])
    assert strides.tolist() == [245760, 40960, 1024, 32, 1]
    values = synth.factor_values()
    assert np.allclose(values["scale"], np.linspace(0.5, 1, 6))
    assert np.allclose(values["orientation"], np.linspace(0, 2 * np.pi, 40))
    assert np.allclose(values["pos_x"], np.linspace(0, 1, 32))
    centres = synth._centres(32)
    assert np.allclose(np.diff(centres), 1.5) and centres[0] == 8.75 and centres[-1] == 55.25


def test_every_image_is_the_sprite_its_index_names(images):
    """index -> factors -> a direct render: checks index order, placement and the window trick."""
    values = synth.factor_values(SUB)
    cx, cy = synth._centres(SUB[3]), synth._centres(SUB[4])
    for i in np.random.default_rng(0).choice(len(images), 60, replace=False):
        s, sc, o, x, y = np.unravel_index(i, SUB)
        expected = reference_image(s, values["scale"][sc], values["orientation"][o], cx[x], cy[y])
        assert np.array_equal(images[i], expected), (s, sc, o, x, y)


def test_dataset_index_factor_round_trip():
    ds = dsprites_synth(factor_sizes=SUB, cache=False)
    assert isinstance(ds, FactorGridDataset)
    assert ds.factor_names == ("shape", "scale", "orientation", "pos_x", "pos_y")
    assert ds.factor_sizes == SUB and len(ds) == np.prod(SUB)
    idx = np.arange(len(ds))
    assert np.array_equal(ds.index_of(ds.factors_of(idx)), idx)
    assert ds.factors[index(2, 1, 3, 2, 4)].tolist() == [2, 1, 3, 2, 4]
    assert tuple(ds.images.shape) == (len(ds), 1, 64, 64)
    assert set(np.unique(ds.images.numpy())) == {0, 255}
    assert ds.likelihood == "bernoulli" and ds.source == "generated: dsprites_synth v1 (not cached)"


def test_deterministic():
    a, b = render(SUB), render(SUB)
    assert a.tobytes() == b.tobytes()


def test_scale_grows_the_sprite(images):
    for s in range(3):
        for o in range(SUB[2]):
            small = images[index(s, 0, o, 1, 2)].sum()
            big = images[index(s, 1, o, 1, 2)].sum()
            assert big > 1.5 * small, (s, o)


def test_orientation_turns_the_sprite(images):
    # The heart has no rotational symmetry: every turn strictly inside (0, 2pi) changes it.
    heart = [images[index(2, 1, o, 2, 2)] for o in range(SUB[2])]
    for o in range(1, SUB[2] - 1):
        assert not np.array_equal(heart[o], heart[0]), o
    # The ellipse turned by pi/2 and the square by pi/4 differ from orientation 0 ...
    assert not np.array_equal(images[index(1, 1, 2, 2, 2)], images[index(1, 1, 0, 2, 2)])
    assert not np.array_equal(images[index(0, 1, 1, 2, 2)], images[index(0, 1, 0, 2, 2)])
    # ... and counter-clockwise: the heart's heavy lobes are above its centre at 0, left of it at pi/2.
    mid_y, mid_x = synth._centres(SUB[4])[2] - 0.5, synth._centres(SUB[3])[2] - 0.5
    row, col = centroid(heart[0])
    assert row < mid_y - 0.3 and abs(col - mid_x) < 0.3
    row, col = centroid(heart[2])
    assert col < mid_x - 0.3 and abs(row - mid_y) < 0.3


def test_position_moves_the_centroid_monotonically(images):
    for s in range(3):
        cols = [centroid(images[index(s, 1, 1, x, 2)])[1] for x in range(SUB[3])]
        rows = [centroid(images[index(s, 1, 1, 1, y)])[0] for y in range(SUB[4])]
        assert np.all(np.diff(cols) > 10) and np.all(np.diff(rows) > 8), (cols, rows)
        # pos_x moves only the column, pos_y only the row
        assert np.ptp([centroid(images[index(s, 1, 1, x, 2)])[0] for x in range(SUB[3])]) < 0.5


def test_sprite_stays_inside_the_frame(images):
    # Same sub-pixel phase (x positions 0 and 2: 8.75 -> 39.75 px; y positions 1 and 3:
    # 20.5 -> 43.5 px): the far sprite is the near one shifted whole, at the largest scale
    # and the widest turn (pi/4), so nothing was clipped.
    for s in range(3):
        near, far = images[index(s, 1, 1, 0, 1)], images[index(s, 1, 1, 2, 3)]
        assert np.array_equal(np.roll(near, (23, 31), axis=(0, 1)), far)
    # The extreme corners keep the whole sprite: about the pixel count of a central one.
    for corner in [(0, 0), (SUB[3] - 1, SUB[4] - 1), (0, SUB[4] - 1), (SUB[3] - 1, 0)]:
        count = int(images[index(2, 1, 1, *corner)].sum())
        assert abs(count - int(images[index(2, 1, 1, 1, 2)].sum())) < 0.1 * count


def test_shapes_differ(images):
    counts = [images[index(s, 1, 0, 1, 1)].sum() for s in range(3)]
    assert len(set(counts)) == 3
    for a in range(3):
        for b in range(a + 1, 3):
            assert not np.array_equal(images[index(a, 1, 0, 1, 1)], images[index(b, 1, 0, 1, 1)])


@pytest.mark.parametrize("sizes", [(4, 1, 1, 1, 1), (3, 6, 40, 32), (0, 1, 1, 1, 1), "abc"])
def test_bad_sizes(sizes):
    with pytest.raises(DisbenchError, match="factor_sizes"):
        dsprites_synth(factor_sizes=sizes, cache=False)


SMALL = (2, 2, 3, 3, 2)


def _cache_files(tmp_path):
    folder = tmp_path / "cache"
    return folder / "dsprites_synth_v1_2x2x3x3x2.npy", folder / "dsprites_synth_v1_2x2x3x3x2.json"


def test_cache_round_trip(tmp_path, monkeypatch):
    first = dsprites_synth(factor_sizes=SMALL)
    npy, sidecar = _cache_files(tmp_path)
    assert npy.exists() and sidecar.exists()
    assert np.load(npy, allow_pickle=False).shape == (np.prod(SMALL), 512)  # packed bits
    assert json.loads(sidecar.read_text())["meta"]["version"] == synth.GENERATOR_VERSION
    assert str(npy) in first.source and first.info["cache"] == str(npy)
    monkeypatch.setattr(synth, "render", lambda *a, **k: pytest.fail("rendered although cached"))
    second = dsprites_synth(factor_sizes=SMALL)
    assert second.images.numpy().tobytes() == first.images.numpy().tobytes()


def _rebuilds_after(tmp_path, damage):
    expected = dsprites_synth(factor_sizes=SMALL).images.numpy().copy()
    npy, sidecar = _cache_files(tmp_path)
    damage(npy, sidecar)
    rebuilt = dsprites_synth(factor_sizes=SMALL)
    assert np.array_equal(rebuilt.images.numpy(), expected)
    assert np.load(npy, allow_pickle=False).shape == (np.prod(SMALL), 512)
    calls = []
    original = synth.render
    synth.render = lambda *a, **k: calls.append(1) or original(*a, **k)
    try:
        dsprites_synth(factor_sizes=SMALL)
    finally:
        synth.render = original
    assert calls == []  # the rebuilt cache is valid again


def test_corrupt_cache_byte_is_rebuilt(tmp_path):
    def flip(npy, sidecar):
        data = bytearray(npy.read_bytes())
        data[-100] ^= 0xFF
        npy.write_bytes(bytes(data))
    _rebuilds_after(tmp_path, flip)


def test_truncated_cache_is_rebuilt(tmp_path):
    _rebuilds_after(tmp_path, lambda npy, sidecar: npy.write_bytes(npy.read_bytes()[:300]))


def test_bad_or_stale_sidecar_is_rebuilt(tmp_path):
    _rebuilds_after(tmp_path, lambda npy, sidecar: sidecar.write_text("{not json"))

    def stale(npy, sidecar):
        side = json.loads(sidecar.read_text())
        side["meta"]["version"] = 0
        sidecar.write_text(json.dumps(side))
    _rebuilds_after(tmp_path, stale)
    _rebuilds_after(tmp_path, lambda npy, sidecar: sidecar.unlink())


def test_cache_holds_no_pickle(tmp_path):
    dsprites_synth(factor_sizes=SMALL)
    npy, _ = _cache_files(tmp_path)
    assert np.load(npy, allow_pickle=False).dtype == np.uint8
