"""Option values the CLI must refuse or describe correctly."""

import json
from pathlib import Path

import pytest

from disbench import paths
from disbench.cli import main
from tests.conftest import TOY_PROTOCOL


def test_evaluate_refuses_an_empty_metrics_list(toy_host, capsys):
    assert main(["train", "--model", "vae", "--protocol", TOY_PROTOCOL, "--out", "run", "--device", "cpu",
                 "--no-progress", "--no-eval", "--steps", "5"]) == 0
    capsys.readouterr()
    for value in ("", " , ", ","):
        assert main(["evaluate", "run", "--metrics", value, "--device", "cpu", "--no-progress"]) == 2
        err = capsys.readouterr().err
        assert err == ("disbench evaluate: error: --metrics is empty: give comma-separated metric names "
                       "or leave it out\n")
    assert "metrics" not in json.loads(Path("run/results.json").read_text())  # nothing was evaluated


def test_data_root_help_describes_what_paths_does(monkeypatch, capsys):
    with pytest.raises(SystemExit):
        main(["data", "prepare", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "(default: $DISBENCH_DATA if set, else ~/disbench_data)" in help_text
    # ... which is what disbench.paths does
    monkeypatch.setenv("DISBENCH_DATA", "/somewhere")
    assert paths.data_root() == Path("/somewhere")
    monkeypatch.setenv("DISBENCH_DATA", "")
    assert paths.data_root() == Path.home() / "disbench_data"
    monkeypatch.delenv("DISBENCH_DATA")
    assert paths.data_root() == Path.home() / "disbench_data"
