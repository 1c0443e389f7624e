import json
import os
import subprocess
import sys
from pathlib import Path

import gin
import pytest
import torch

from disbench.plugins import PluginHost, set_host

TESTS = Path(__file__).parent
TOY_PROTOCOL = str(TESTS / "gin" / "toy.gin")

torch.set_num_threads(1)  # tests are tiny; one thread keeps CPU results reproducible and fast
os.environ.setdefault("DISBENCH_NO_PROGRESS", "1")


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "numerical: compares floating-point results against a bound or bit for bit; "
                   "run again under AVX2 kernels in CI")


def _host_with_toy_plugin(entry_points: bool):
    from tests import toy_plugin

    host = PluginHost(entry_points=entry_points, extra_plugins={"toy": toy_plugin})
    set_host(host)
    yield host
    set_host(None)
    gin.clear_config()


@pytest.fixture
def toy_host():
    """The harness with its built-ins and the test-only toy plugin, no entry points."""
    yield from _host_with_toy_plugin(entry_points=False)


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    """Each test runs in its own folder with its own cache; gin starts empty."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DISBENCH_CACHE", str(tmp_path / "cache"))
    gin.clear_config()
    yield
    gin.clear_config()


@pytest.fixture
def full_host():
    """Every installed plugin (entry points: dvae_plugin, the example) plus the toy plugin."""
    yield from _host_with_toy_plugin(entry_points=True)


@pytest.fixture(scope="session")
def installed_plugins_json() -> dict:
    """What the installed package's `disbench plugins --json` prints, run once as a user would."""
    out = subprocess.run([sys.executable, "-m", "disbench", "plugins", "--json"],
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out)
