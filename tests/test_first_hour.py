"""What tripped a new user (issue: the first hour): inputs that gave a traceback or left
half-made state now give one line, exit 2, and leave nothing behind."""

from pathlib import Path

import pytest

from disbench.cli import main
from tests.conftest import TOY_PROTOCOL


def train(*extra, out="run"):
    return main(["train", "--model", "vae", "--protocol", TOY_PROTOCOL, "--out", out, "--device", "cpu",
                 "--no-progress", *extra])


def one_line_error(capsys, *expected: str) -> None:
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    assert all(text in err for text in expected), err


@pytest.mark.parametrize("extra, message", [
    (("--seed", "99999999999999999999"), "Run.seed must be an integer from 0 to 4,294,967,295"),
    (("--seed", str(2**32)), "Run.seed must be an integer from 0 to 4,294,967,295"),
    (("--steps", "99999999999999999999999"), "Protocol.steps must be at most 2,147,483,647"),
])
def test_seeds_and_steps_out_of_range_are_refused_before_anything_is_written(toy_host, capsys, extra, message):
    assert train(*extra) == 2
    one_line_error(capsys, message)
    assert not Path("run").exists()


def test_the_largest_seed_is_a_seed(toy_host, capsys):
    assert train("--seed", str(2**32 - 1), "--steps", "2", "--no-eval") == 0


def test_names_too_long_for_the_file_system(toy_host, capsys):
    assert main(["train", "--model", "a" * 5000, "--out", "run", "--no-progress"]) == 2
    one_line_error(capsys, "unknown model")
    assert train(out="a" * 300) == 2
    one_line_error(capsys, "--out", "300 bytes long", "at most 255")
    assert train(out="/".join(["abcdefgh"] * 600)) == 2
    one_line_error(capsys, "--out", "at most 4095")
    assert not any(Path(".").iterdir())


def test_an_output_under_a_file_is_refused(toy_host, capsys):
    Path("AFILE").write_text("x")
    assert main(["data", "show", "toy_squares", "--out", "AFILE/x.png"]) == 2
    one_line_error(capsys, "--out AFILE: is a file, not a folder")
    assert main(["report", ".", "--out", "AFILE/rep"]) == 2
    one_line_error(capsys, "--out AFILE/rep: AFILE is a file")
    Path("folder.png").mkdir()
    assert main(["data", "show", "toy_squares", "--out", "folder.png"]) == 2
    one_line_error(capsys, "--out folder.png: is a folder, not a file")


@pytest.mark.parametrize("option, value, message", [
    ("--models", "vae,,betavae_h", "--models 'vae,,betavae_h': an empty name between commas"),
    ("--seeds", "0-99999999999", "seeds go from 0 to 4,294,967,295"),
])
def test_compare_refuses_what_a_typo_makes(toy_host, capsys, option, value, message):
    options = {"--models": "vae", "--seeds": "1", option: value}
    assert main(["compare", "--models", options["--models"], "--seeds", options["--seeds"], "--protocol", TOY_PROTOCOL,
                 "--out", "cmp", "--device", "cpu", "--no-progress"]) == 2
    one_line_error(capsys, message)
    assert not Path("cmp").exists()


def test_an_interrupted_command_says_how_to_continue(toy_host, capsys, monkeypatch):
    from tests.test_training import interrupted_at_step

    with interrupted_at_step(monkeypatch, 15):
        assert train(out="my run") == 130
    err = capsys.readouterr().err.strip()
    assert err == "disbench train: interrupted; continue it with: disbench train --resume --out 'my run'"
    assert main(["train", "--resume", "--out", "my run", "--device", "cpu", "--no-progress", "--no-eval"]) == 0
    with interrupted_at_step(monkeypatch, 5):
        assert main(["compare", "--models", "vae", "--seeds", "1", "--protocol", TOY_PROTOCOL, "--out", "c",
                     "--device", "cpu", "--no-progress", "--no-figures"]) == 130
    assert "interrupted; run the same command again to continue" in capsys.readouterr().err


def test_a_no_op_resume_changes_no_file_and_a_refusal_shows_defaults(toy_host, capsys):
    assert train("--steps", "3", "--no-eval") == 0
    files = {p: p.read_bytes() for p in Path("run").rglob("*") if p.is_file()}
    capsys.readouterr()
    assert main(["train", "--resume", "--seed", "0", "--out", "run", "--device", "cpu", "--no-progress"]) == 0
    assert "nothing to resume" in capsys.readouterr().out
    assert {p: p.read_bytes() for p in Path("run").rglob("*") if p.is_file()} == files
    assert main(["train", "--resume", "--seed", "5", "--out", "run", "--device", "cpu", "--no-progress"]) == 2
    one_line_error(capsys, "Run.seed: 0 (default) -> 5")
