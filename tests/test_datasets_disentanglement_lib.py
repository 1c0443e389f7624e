"""The datasets of disentanglement_lib's studies, on miniature files in the official
layouts written here: smallNORB (NYU binary matrices), Cars3D (.mat per car),
MPI3D (.npz) and the colour / noisy / scream dSprites variants."""

import argparse
import zipfile

import gin
import numpy as np
import pytest
import scipy.io
from PIL import Image

from disbench.cli import data_cmd
from disbench.data import DatasetInfo, dataset_info
from disbench.data.dataset import FactorGridDataset
from disbench.datasets import cars3d, dsprites_variants, mpi3d, smallnorb
from disbench.datasets.dsprites_synth import dsprites_synth
from disbench.datasets.smallnorb import HALVES, binary_matrix_header, read_binary_matrix, write_binary_matrix
from disbench.errors import DisbenchError
from disbench.standard_metrics.sampling import FactorLookup


@pytest.fixture(autouse=True)
def _env(tmp_path, monkeypatch):
    monkeypatch.setenv("DISBENCH_NO_PROGRESS", "1")
    gin.clear_config()
    yield
    gin.clear_config()


def run_cli(argv):
    parser = argparse.ArgumentParser(prog="disbench")
    data_cmd.add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    return args.func(args)


# -- smallNORB -----------------------------------------------------------------------

NORB_SIZES = {"category": 2, "elevation": 2, "azimuth": 3, "lighting": 2}


def norb_rows(instances):
    return np.array([(c, i, e, 2 * a, light) for c in range(2) for i in instances for e in range(2)
                     for a in range(3) for light in range(2)], dtype=np.int32)


def norb_pixel(rows):
    """A grey level per image that encodes its factors (camera 0)."""
    return (rows[:, 0] * 100 + rows[:, 2] * 40 + rows[:, 3] // 2 * 10 + rows[:, 4] * 3 + rows[:, 1]).astype(np.uint8)


def write_norb(folder, gz=True, halves=(("training", (0, 1)), ("testing", (2,)))):
    folder.mkdir(parents=True, exist_ok=True)
    for half, instances in halves:
        rows = norb_rows(instances)[::-1].copy()  # not in any grid order
        dat = np.empty((len(rows), 2, 12, 10), dtype=np.uint8)
        dat[:, 0] = norb_pixel(rows)[:, None, None]
        dat[:, 1] = 255  # the second camera: never read
        write_binary_matrix(folder / f"{HALVES[half]}-dat.mat{'.gz' if gz else ''}", dat)
        write_binary_matrix(folder / f"{HALVES[half]}-cat.mat", rows[:, 0])
        write_binary_matrix(folder / f"{HALVES[half]}-info.mat{'.gz' if gz else ''}", rows[:, 1:])
    return folder


@pytest.mark.parametrize("dtype", [np.uint8, np.int32, np.float32, np.float64, np.int16])
@pytest.mark.parametrize("shape", [(7,), (3, 4), (2, 3, 4), (2, 1, 3, 5)])
def test_binary_matrix_round_trip(tmp_path, dtype, shape):
    array = (np.arange(np.prod(shape)) % 120).reshape(shape).astype(dtype)
    for name in ("m.mat", "m.mat.gz"):
        write_binary_matrix(tmp_path / name, array)
        assert binary_matrix_header(tmp_path / name) == (np.dtype(dtype).newbyteorder("<"), shape)
        back = read_binary_matrix(tmp_path / name)
        assert back.dtype == dtype and np.array_equal(back, array)
    if len(shape) >= 2:
        assert np.array_equal(read_binary_matrix(tmp_path / "m.mat", first_of_axis1=True), array[:, 0])


def test_binary_matrix_header_layout(tmp_path):
    """The NYU layout: magic, ndim, max(3, ndim) dims, little endian; a 1-D vector pads dims with 1s."""
    write_binary_matrix(tmp_path / "v.mat", np.array([5, 6], dtype=np.int32))
    raw = (tmp_path / "v.mat").read_bytes()
    assert np.frombuffer(raw[:20], "<i4").tolist() == [0x1E3D4C54, 1, 2, 1, 1]
    assert np.frombuffer(raw[20:], "<i4").tolist() == [5, 6]


@pytest.mark.parametrize("damage, message", [
    (lambda raw: raw[:-3], "truncated"),
    (lambda raw: raw + b"x", "longer than its header"),
    (lambda raw: b"\x00\x00\x00\x00" + raw[4:], "not an NYU binary matrix: magic number 0x00000000"),
])
def test_binary_matrix_damage_is_named(tmp_path, damage, message):
    write_binary_matrix(tmp_path / "m.mat", np.zeros((3, 4), dtype=np.uint8))
    (tmp_path / "m.mat").write_bytes(damage((tmp_path / "m.mat").read_bytes()))
    with pytest.raises(DisbenchError, match=message):
        read_binary_matrix(tmp_path / "m.mat")


@pytest.mark.parametrize("gz", [True, False])
def test_smallnorb_reads_both_halves_first_camera_resized(tmp_path, gz):
    write_norb(tmp_path / "small_norb", gz=gz)
    ds = smallnorb.smallnorb(data_root=tmp_path, allow_subgrid=True)
    assert ds.images.shape == (72, 1, 64, 64) and ds.likelihood == "gaussian"
    assert ds.factor_names == tuple(NORB_SIZES) and ds.factor_sizes == tuple(NORB_SIZES.values())
    assert ds.info["instances"] == 3 and not isinstance(ds, FactorGridDataset)
    # each image is its camera-0 grey level (a constant survives Lanczos resizing), factors as in the files
    rows = np.concatenate([norb_rows((0, 1))[::-1], norb_rows((2,))[::-1]])
    assert np.array_equal(ds.factors, np.column_stack([rows[:, 0], rows[:, 2], rows[:, 3] // 2, rows[:, 4]]))
    assert np.array_equal(ds.images[:, 0, 30, 30].numpy(), norb_pixel(rows))
    assert smallnorb.smallnorb(data_root=tmp_path, allow_subgrid=True, metadata_only=True) == DatasetInfo.of(ds)
    assert len(smallnorb.smallnorb(data_root=tmp_path, allow_subgrid=True, split="test")) == 24
    # a factor combination has one image per instance; lookups draw among them
    lookup = FactorLookup(ds.factors, ds.factor_sizes)
    picked = lookup.indices(np.repeat([[1, 0, 2, 1]], 200, axis=0), np.random.default_rng(0))
    assert set(ds.images[picked, 0, 0, 0].numpy().tolist()) == {123, 124, 125}  # instances 0, 1, 2


@pytest.mark.parametrize("change, message", [
    (lambda f: (f / f"{HALVES['testing']}-cat.mat").unlink(), "smallNORB file not found: expected .*testing-cat.mat"),
    (lambda f: write_binary_matrix(f / f"{HALVES['testing']}-cat.mat", np.zeros(5, dtype=np.int32)),
     "expected 24 integer categories"),
    (lambda f: write_binary_matrix(f / f"{HALVES['testing']}-info.mat.gz", np.ones((24, 4), dtype=np.int32)),
     "azimuth values must be even"),
    (lambda f: write_binary_matrix(f / f"{HALVES['testing']}-cat.mat", np.full(24, 7, dtype=np.int32)),
     r"category values must lie in 0..4"),
])
def test_smallnorb_bad_files_are_one_line_errors(tmp_path, change, message):
    change(write_norb(tmp_path / "smallnorb"))
    with pytest.raises(DisbenchError, match=message):
        smallnorb.smallnorb(data_root=tmp_path, allow_subgrid=True)


def test_smallnorb_needs_every_combination_and_the_official_sizes(tmp_path):
    write_norb(tmp_path / "a", halves=(("training", (0,)), ("testing", (1,))))
    with pytest.raises(DisbenchError, match=r"expected the official .*allow_subgrid=True"):
        smallnorb.smallnorb(path=tmp_path / "a")
    with pytest.raises(DisbenchError, match=r"48 images, the official set has 48600"):
        smallnorb.smallnorb(path=tmp_path / "a", metadata_only=True)
    folder = write_norb(tmp_path / "b")
    rows = norb_rows((2,))[::-1].copy()
    rows[:, 4] = np.minimum(rows[:, 4], 0)  # no image lit 1 in the test half ... still lit 1 in training
    write_binary_matrix(folder / f"{HALVES['testing']}-info.mat.gz", rows[:, 1:])
    assert len(smallnorb.smallnorb(path=folder, allow_subgrid=True)) == 72
    write_norb(tmp_path / "c", halves=(("testing", (2,)),))
    rows = norb_rows((2,))[::-1].copy()
    rows[:, 4] = rows[:, 4] * (rows[:, 0] == 0)  # category 1 never lit 1
    write_binary_matrix(tmp_path / "c" / f"{HALVES['testing']}-info.mat.gz", rows[:, 1:])
    with pytest.raises(DisbenchError, match="only 6 of the 24 combinations|only 18 of the 24 combinations"):
        smallnorb.smallnorb(path=tmp_path / "c", split="test", allow_subgrid=True)


# -- Cars3D --------------------------------------------------------------------------

def write_cars(folder, cars=3, azimuths=5, elevations=2, side=16):
    folder.mkdir(parents=True, exist_ok=True)
    for obj in range(cars):
        im = np.empty((side, side, 3, azimuths, elevations), dtype=np.uint8)
        for a in range(azimuths):
            for e in range(elevations):
                im[:, :, :, a, e] = np.array([10 * a, 50 * e, 20 * obj + 1], dtype=np.uint8)
        scipy.io.savemat(folder / f"car_{obj + 1:03d}_mesh.mat", {"im": im, "other": np.zeros(3)})
    return folder


def test_cars3d_grid_in_row_major_order(tmp_path):
    write_cars(tmp_path / "cars")
    (tmp_path / "cars" / "list.txt").write_text("not a car")
    ds = cars3d.cars3d(data_root=tmp_path, allow_subgrid=True)
    assert isinstance(ds, FactorGridDataset) and ds.images.shape == (30, 3, 64, 64)
    assert ds.factor_names == ("elevation", "azimuth", "object") and ds.factor_sizes == (2, 5, 3)
    colour = ds.images[:, :, 20, 20].numpy()
    e, a, o = ds.factors.T
    assert np.array_equal(colour, np.stack([10 * a, 50 * e, 20 * o + 1], axis=1))
    assert cars3d.cars3d(data_root=tmp_path, allow_subgrid=True, metadata_only=True) == DatasetInfo.of(ds)


def test_cars3d_checks(tmp_path):
    folder = write_cars(tmp_path / "cars3d")
    with pytest.raises(DisbenchError, match=r"holds 3 .mat files, the official set has 183"):
        cars3d.cars3d(data_root=tmp_path)
    scipy.io.savemat(folder / "car_009_mesh.mat", {"im": np.zeros((16, 16, 3, 4, 2), dtype=np.uint8)})
    with pytest.raises(DisbenchError, match=r"car_009_mesh.mat: 'im' holds 4 azimuths x 2 elevations, but"):
        cars3d.cars3d(path=folder, allow_subgrid=True)
    (folder / "car_009_mesh.mat").write_bytes(b"garbage")
    with pytest.raises(DisbenchError, match="car_009_mesh.mat: not a readable MATLAB file"):
        cars3d.cars3d(path=folder, allow_subgrid=True)
    with pytest.raises(DisbenchError, match=r"Cars3D not found: expected the folder .*cars"):
        cars3d.cars3d(data_root=tmp_path / "nowhere")


# -- MPI3D ---------------------------------------------------------------------------

MPI_SIZES = (2, 1, 2, 1, 1, 3, 2)


def write_mpi3d(path, count=24, compressed=True, images=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    if images is None:
        images = np.zeros((count, 64, 64, 3), dtype=np.uint8)
        images[:, :, :, 0] = np.arange(count, dtype=np.uint8)[:, None, None]
        images[:, :, :, 2] = 7
    (np.savez_compressed if compressed else np.savez)(path, images=images)
    return path


@pytest.mark.parametrize("compressed", [True, False])
def test_mpi3d_reads_the_images_in_grid_order(tmp_path, compressed):
    write_mpi3d(tmp_path / "mpi3d_toy" / "mpi3d_toy.npz", compressed=compressed)
    gin.parse_config(f"mpi3d.factor_sizes = {MPI_SIZES}")
    ds = mpi3d.mpi3d(data_root=tmp_path)
    assert ds.images.shape == (24, 3, 64, 64) and ds.factor_sizes == MPI_SIZES and len(ds.factor_names) == 7
    assert np.array_equal(ds.images[:, 0, 5, 5].numpy(), np.arange(24)) and int(ds.images[:, 2].min()) == 7
    assert np.array_equal(ds.factors[5], [0, 0, 0, 0, 0, 2, 1])  # vertical_axis fastest
    assert mpi3d.mpi3d(data_root=tmp_path, metadata_only=True) == DatasetInfo.of(ds)


def test_mpi3d_checks(tmp_path):
    path = write_mpi3d(tmp_path / "mpi3d_real.npz")
    with pytest.raises(DisbenchError, match=r"'images' holds 24 images, but the factor grid .*'object_color': 6.* "
                                            r"\(1036800\) has another count \(mpi3d.factor_sizes reads"):
        mpi3d.mpi3d(data_root=tmp_path, variant="real")
    with pytest.raises(DisbenchError, match="variant must be one of 'toy', 'realistic', 'real'"):
        mpi3d.mpi3d(data_root=tmp_path, variant="fake")
    with pytest.raises(DisbenchError, match=r"MPI3D \(toy\) not found: expected .*mpi3d_toy.npz"):
        mpi3d.mpi3d(data_root=tmp_path)
    objects = tmp_path / "objects.npz"
    np.savez(objects, images=np.array([None] * 24, dtype=object))
    with pytest.raises(DisbenchError, match=r"'images' must be \(N, 64, 64, 3\) uint8"):
        mpi3d.mpi3d(path=objects, factor_sizes=MPI_SIZES)
    truncated = tmp_path / "cut.npz"
    write_mpi3d(truncated, compressed=False)
    with zipfile.ZipFile(truncated) as archive:
        member = archive.read("images.npy")
    with zipfile.ZipFile(truncated, "w") as archive:
        archive.writestr("images.npy", member[:-5000])
    with pytest.raises(DisbenchError, match="truncated"):
        mpi3d.mpi3d(path=truncated, factor_sizes=MPI_SIZES)


def header_only_npz(path, count):
    """An npz whose images.npy is a header without pixels (what metadata reads)."""
    import io

    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "|u1", "fortran_order": False,
                                                  "shape": (count, 64, 64, 3)})
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("images.npy", header.getvalue())  # magic, length, dict; no pixels
    return path


def test_mpi3d_grid_follows_the_release(tmp_path):
    released = header_only_npz(tmp_path / "a.npz", 1_036_800)
    first = header_only_npz(tmp_path / "b.npz", 460_800)
    assert mpi3d.mpi3d(path=released, metadata_only=True).factor_sizes == (6, 6, 2, 3, 3, 40, 40)
    assert mpi3d.mpi3d(path=first, metadata_only=True).factor_sizes == (4, 4, 2, 3, 3, 40, 40)
    assert mpi3d.mpi3d(path=released, variant="real", metadata_only=True).num_images == 1_036_800
    with pytest.raises(DisbenchError, match="460800 images"):
        mpi3d.mpi3d(path=first, variant="real", metadata_only=True)
    with pytest.raises(DisbenchError, match="'images' is truncated at image 0"):
        mpi3d.mpi3d(path=released)


# -- the dSprites variants --------------------------------------------------------------

SPRITES = (1, 2, 3, 2, 2)


@pytest.fixture
def synth_base():
    gin.parse_config(f"dsprites_synth.factor_sizes = {SPRITES}\ndsprites_synth.cache = False\n"
                     "color_dsprites.base = 'dsprites_synth'\nnoisy_dsprites.base = 'dsprites_synth'\n"
                     "scream_dsprites.base = 'dsprites_synth'")
    return dsprites_synth(factor_sizes=SPRITES, cache=False)


def write_scream(folder, size=(80, 70)):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(3)
    Image.fromarray(rng.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)).save(folder / "scream.jpg",
                                                                                             quality=95)
    return folder / "scream.jpg"


def test_color_dsprites(synth_base):
    ds = dsprites_variants.color_dsprites()
    assert ds.images.shape == (24, 3, 64, 64) and ds.factor_names == synth_base.factor_names
    assert ds.factor_display_order == synth_base.factor_display_order and ds.likelihood == "gaussian"
    mask = synth_base.images[:, 0].numpy() > 0
    images = ds.images.numpy()
    assert images.transpose(0, 2, 3, 1)[~mask].max() == 0  # black background
    for n in range(len(ds)):
        colours = images[n].transpose(1, 2, 0)[mask[n]]
        assert (colours == colours[0]).all() and colours[0].min() >= 127  # one colour in [0.5, 1]
    assert len({tuple(images[n].transpose(1, 2, 0)[mask[n]][0]) for n in range(len(ds))}) > 20
    assert np.array_equal(dsprites_variants.color_dsprites().images, ds.images)  # the same on every build
    assert not np.array_equal(dsprites_variants.color_dsprites(variation_seed=1).images, ds.images)
    assert dsprites_variants.color_dsprites(metadata_only=True) == DatasetInfo.of(ds)


def test_noisy_dsprites(synth_base):
    ds = dsprites_variants.noisy_dsprites()
    mask = synth_base.images[:, 0].numpy() > 0
    pixels = ds.images.numpy().transpose(0, 2, 3, 1)
    assert (pixels[mask] == 255).all()
    background = pixels[~mask].astype(float)
    assert background.mean() == pytest.approx(127.5, abs=3) and background.std() == pytest.approx(73.9, abs=3)
    assert dsprites_variants.noisy_dsprites(metadata_only=True) == DatasetInfo.of(ds)


def test_scream_dsprites_is_a_tinted_patch_inverted_under_the_sprite(synth_base, tmp_path):
    path = write_scream(tmp_path / "scream")
    ds = dsprites_variants.scream_dsprites(data_root=tmp_path)
    picture = dsprites_variants.load_scream(path)
    assert picture.shape == (70, 80, 3)  # within the 350 x 274 box already
    mask = synth_base.images[:, 0].numpy() > 0
    for n in range(len(ds)):
        values = ds.images[n].numpy().transpose(1, 2, 0) / 255.0
        background = np.where(mask[n][..., None], 1.0 - values, values)  # undo the inversion
        fits = []
        for top in range(picture.shape[0] - 64):
            for left in range(picture.shape[1] - 64):
                tint = 2 * background - picture[top:top + 64, left:left + 64]  # one (r, g, b) if this patch
                if np.ptp(tint.reshape(-1, 3), axis=0).max() < 3 / 255:
                    fits.append((top, left))
        assert len(fits) == 1, n
    with pytest.raises(DisbenchError, match="The Scream picture .* not found: expected .*scream.jpg"):
        dsprites_variants.scream_dsprites(data_root=tmp_path / "nowhere")
    write_scream(tmp_path / "small", size=(60, 200))
    with pytest.raises(DisbenchError, match="patches need more than 64 px each way"):
        dsprites_variants.scream_dsprites(scream_path=tmp_path / "small" / "scream.jpg")
    assert dsprites_variants.scream_dsprites(data_root=tmp_path, metadata_only=True) == DatasetInfo.of(ds)


def test_variants_refuse_an_unknown_base():
    with pytest.raises(DisbenchError, match="base must be one of 'dsprites', 'dsprites_synth', got 'mnist'"):
        dsprites_variants.noisy_dsprites(base="mnist")


# -- every new dataset through `disbench data show` and dataset_info ---------------------

def test_data_show_and_dataset_info_work_for_every_one(tmp_path, synth_base, toy_host, capsys):
    write_norb(tmp_path / "smallnorb")
    write_cars(tmp_path / "cars")
    write_mpi3d(tmp_path / "mpi3d_toy.npz")
    write_scream(tmp_path / "scream")
    gin.parse_config(f"smallnorb.allow_subgrid = True\ncars3d.allow_subgrid = True\nmpi3d.factor_sizes = {MPI_SIZES}")
    for name in ("smallnorb", "cars3d", "mpi3d", "color_dsprites", "noisy_dsprites", "scream_dsprites"):
        out = tmp_path / f"{name}.png"
        assert run_cli(["data", "show", name, "--out", str(out), "--data-root", str(tmp_path)]) == 0
        assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        info = dataset_info(name, tmp_path)
        assert info.num_images > 0 and info.observation_shape[1:] == (64, 64) and info.has_factors
        assert f"{name}: preview written to" in capsys.readouterr().out
