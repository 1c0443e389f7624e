"""The preview grid, `disbench data prepare/show`, and the DATASETS table with gin."""

import argparse

import gin
import numpy as np
import pytest
import torch
from PIL import Image

from disbench import plugins
from disbench.cli import data_cmd
from disbench.data import GroundTruthDataset, ImageDataset
from disbench.data.preview import GAP, LABEL_WIDTH, draw_preview, preview_size
from disbench.errors import DisbenchError, UnknownNameError
from disbench.hookspecs import hookimpl
from disbench.datasets import DATASETS
from disbench.datasets.dsprites import FILENAME
from disbench.datasets.dsprites_synth import dsprites_synth

TINY = (3, 1, 4, 3, 3)


@pytest.fixture(autouse=True)
def _env(tmp_path, monkeypatch):
    monkeypatch.setenv("DISBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("DISBENCH_NO_PROGRESS", "1")
    gin.clear_config()
    yield
    gin.clear_config()


class TinyDatasets:
    """A test plugin: a tiny generated dSprites (the official loader is built in)."""

    @staticmethod
    @hookimpl
    def register_datasets(registry):
        registry.add("tiny", lambda data_root=None: dsprites_synth(data_root, factor_sizes=TINY))


@pytest.fixture
def host():
    host = plugins.PluginHost(entry_points=False, extra_plugins={"tiny": TinyDatasets})
    assert host.plugins["tiny"].error is None, host.plugins["tiny"].error
    assert host.registry("datasets").get("dsprites") is DATASETS["dsprites"]
    assert host.registry("datasets").source("dsprites") == "disbench.datasets"
    plugins.set_host(host)
    yield host
    plugins.set_host(None)


def run_cli(argv):
    parser = argparse.ArgumentParser(prog="disbench")
    data_cmd.add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    return args.func(args)


def test_datasets_table_and_gin_names():
    assert sorted(DATASETS) == ["cars3d", "chairs3d", "color_dsprites", "dsprites", "dsprites_synth", "mnist", "mpi3d",
                                "noisy_dsprites", "scream_dsprites", "shapes3d", "smallnorb"]
    gin.parse_config("dsprites_synth.factor_sizes = (1, 1, 2, 2, 2)\n"
                     "disbench.datasets.dsprites_synth.cache = False")
    ds = DATASETS["dsprites_synth"]()
    assert len(ds) == 8 and ds.source.endswith("(not cached)")
    assert gin.get_bindings(DATASETS["dsprites_synth"])["factor_sizes"] == (1, 1, 2, 2, 2)


def test_preview_of_a_factor_grid(tmp_path):
    ds = dsprites_synth(factor_sizes=TINY, cache=False)
    out = draw_preview(ds, tmp_path / "p" / "grid.png", np.random.default_rng(0), columns=4, scale=1)
    with Image.open(out) as im:
        width, height = im.size
        pixels = np.asarray(im.convert("RGB"))
    # 2 sample rows + 5 factor rows of 64 px cells, 4 columns, labels on the left
    assert (width, height) == (LABEL_WIDTH + GAP + 4 * 66, GAP + 7 * 66) == preview_size(ds, 4, 2, 1)
    assert not list(out.parent.glob(".*.tmp"))  # written atomically, nothing left behind
    # the pos_x traversal row (row 5): its cells differ from each other (the sprite moves)
    top = GAP + 5 * 66
    cells = [pixels[top:top + 64, LABEL_WIDTH + GAP + c * 66:LABEL_WIDTH + GAP + c * 66 + 64] for c in range(3)]
    assert all(c.max() == 255 for c in cells)
    assert not np.array_equal(cells[0], cells[1]) and not np.array_equal(cells[1], cells[2])


def test_preview_without_factors_and_with_missing_combinations(tmp_path):
    plain = ImageDataset(name="rgb", images=torch.full((5, 3, 64, 64), 200, dtype=torch.uint8),
                         source="test", likelihood="gaussian")
    out = draw_preview(plain, tmp_path / "plain.png", np.random.default_rng(1), columns=3, sample_rows=2)
    with Image.open(out) as im:
        assert im.size == (LABEL_WIDTH + GAP + 3 * 130, GAP + 2 * 130)
    labelled = GroundTruthDataset(name="lab", images=torch.zeros((4, 1, 64, 64), dtype=torch.uint8),
                                  source="test", factor_names=("digit", "style"), factor_sizes=(10, 2),
                                  factors=np.array([[0, 0], [1, 1], [3, 0], [3, 1]]))
    out = draw_preview(labelled, tmp_path / "lab.png", np.random.default_rng(2), columns=10, scale=1)
    assert out.stat().st_size > 0


def test_data_prepare_prints_summary(host, tmp_path, capsys):
    assert run_cli(["data", "prepare", "tiny"]) == 0
    line = capsys.readouterr().out.strip()
    assert "\n" not in line
    assert line.startswith("dsprites_synth: 108 images 1x64x64")
    assert "shape 3, scale 1, orientation 4, pos_x 3, pos_y 3" in line
    assert f"cache: {tmp_path / 'cache'}" in line and "generated: dsprites_synth v1" in line


def test_data_show_writes_png(host, tmp_path, capsys):
    out = tmp_path / "show.png"
    assert run_cli(["data", "show", "tiny", "--out", str(out), "--seed", "3"]) == 0
    with Image.open(out) as im:
        assert im.size == (LABEL_WIDTH + GAP + 10 * 130, GAP + 7 * 130)
    assert str(out) in capsys.readouterr().out


def test_data_prepare_with_data_root(host, tmp_path):
    with pytest.raises(DisbenchError) as err:
        run_cli(["data", "prepare", "dsprites", "--data-root", str(tmp_path / "nowhere")])
    assert str(tmp_path / "nowhere" / FILENAME) in str(err.value)
    assert "\n" not in str(err.value)  # gin's "In call to configurable" note is dropped


def test_data_unknown_name(host):
    with pytest.raises(UnknownNameError, match="known: cars3d, chairs3d, color_dsprites, dsprites, dsprites_synth, mnist, mpi3d, noisy_dsprites, "
                                            "scream_dsprites, shapes3d, smallnorb, tiny "):
        run_cli(["data", "prepare", "tinny"])


def test_data_needs_an_action():
    with pytest.raises(SystemExit):
        run_cli(["data"])


def test_datasets_are_the_harness_own_with_dvae_disabled(tmp_path):
    """The shipped datasets come from the built-in plugin: with dvae_plugin disabled
    they are registered and built, and nothing imports dvae_plugin."""
    import os
    import subprocess
    import sys

    script = (
        "import sys\n"
        "from disbench.plugins import get_host, get_registry\n"
        "from disbench.data import dataset_info\n"
        "host = get_host()\n"
        "assert host.plugins['dvae'].disabled, host.plugins['dvae']\n"
        "assert get_registry('datasets').source('dsprites_synth') == 'disbench.datasets'\n"
        "import gin\n"
        "gin.parse_config('dsprites_synth.factor_sizes = (1, 1, 2, 2, 2)\\ndsprites_synth.cache = False')\n"
        "assert dataset_info('dsprites_synth').num_images == len(get_registry('datasets').get('dsprites_synth')()) == 8\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] == 'dvae_plugin')\n"
        "assert not loaded, loaded\n"
    )
    env = {**os.environ, "DISBENCH_DISABLE_PLUGINS": "dvae", "DISBENCH_CACHE": str(tmp_path / "cache")}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
