"""Fixtures of the compare/report tests, loaded with ``pytest_plugins`` so that the one
shared comparison is computed once per session."""

import shutil
from pathlib import Path

import gin
import pytest

from disbench.cli import main
from disbench.plugins import PluginHost, set_host
from tests.compare_helpers import compare_args


@pytest.fixture(scope="session")
def compared(tmp_path_factory):
    """One compare (2 models × 2 seeds, with figures), shared by the tests that read or copy it."""
    from tests import toy_plugin

    out = tmp_path_factory.mktemp("shared") / "cmp"
    set_host(PluginHost(entry_points=False, extra_plugins={"toy": toy_plugin}))
    try:
        assert main(compare_args(out)) == 0
    finally:
        set_host(None)
        gin.clear_config()
    return out


@pytest.fixture
def compared_copy(compared, tmp_path):
    return Path(shutil.copytree(compared, tmp_path / "cmp"))


@pytest.fixture
def train_calls(monkeypatch):
    """Spy on the training loop, where the runner calls it: records (run dir, resume) of every call."""
    import disbench.runner as runner

    calls, real = [], runner.train_group

    def spy(run_dirs, builts, **kwargs):
        for run_dir in run_dirs:
            calls.append((Path(run_dir).relative_to(Path.cwd()).as_posix() if Path(run_dir).is_absolute()
                          else Path(run_dir).as_posix(), kwargs["resume"]))
        return real(run_dirs, builts, **kwargs)

    monkeypatch.setattr(runner, "train_group", spy)
    return calls


@pytest.fixture
def evaluate_calls(monkeypatch):
    import disbench.compare.execute as execute

    calls, real = [], execute.evaluate_run

    def spy(run_dir, metric_names=None, **kwargs):
        calls.append((Path(run_dir).name, list(metric_names or [])))
        return real(run_dir, metric_names, **kwargs)

    monkeypatch.setattr(execute, "evaluate_run", spy)
    return calls
