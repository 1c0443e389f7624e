"""`disbench verify`: a run's first steps replayed and compared with what it recorded."""

import json
from pathlib import Path

import pytest

from disbench.cli import main
from tests.compare_helpers import compare_args
from tests.test_training import train_args

pytestmark = pytest.mark.numerical


def verify(capsys, run_dir, *extra):
    capsys.readouterr()  # what came before
    code = main(["verify", str(run_dir), "--no-progress", *extra])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def snapshot(run_dir):
    return {p.name: p.read_bytes() for p in Path(run_dir).iterdir() if p.is_file()}


def test_a_fresh_run_verifies_bit_for_bit_and_is_left_untouched(toy_host, capsys):
    assert main(train_args("run", "--no-eval", "--threads", "1")) == 0
    before = snapshot("run")
    code, out, _ = verify(capsys, "run")
    assert code == 0, out
    assert out.strip() == ("reproduced 30 steps bit for bit (6 rows of scalars.jsonl and every tensor of "
                           "checkpoint.pt at step 30)")
    assert snapshot("run") == before
    code, out, _ = verify(capsys, "run", "--steps", "10")
    assert code == 0 and out.strip() == "reproduced 10 steps bit for bit (2 rows of scalars.jsonl)"


def test_an_edited_row_fails_at_exactly_that_step(toy_host, capsys):
    assert main(train_args("run", "--no-eval", "--threads", "1")) == 0
    path = Path("run/scalars.jsonl")
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    recorded = rows[2]["recon"]
    rows[2]["recon"] = recorded * (1 + 1e-12)  # step 15: one value, a few ulps off
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    code, out, _ = verify(capsys, "run")
    assert code == 1
    assert out.startswith(f"not reproduced: first difference at step 15, recon: recorded {rows[2]['recon']!r}, "
                          f"replayed {recorded!r}")


def test_an_edited_checkpoint_tensor_fails(toy_host, capsys):
    import torch

    assert main(train_args("run", "--no-eval", "--threads", "1")) == 0
    state = torch.load("run/checkpoint.pt", weights_only=True)
    name = next(iter(state["model"]))
    state["model"][name].view(-1)[0] += 1e-3
    torch.save(state, "run/checkpoint.pt")
    code, out, _ = verify(capsys, "run")
    assert code == 1 and f"first difference at checkpoint/model/{name}[0]" in out


def test_another_thread_count_is_reported_as_drift(toy_host, capsys):
    assert main(train_args("run", "--no-eval", "--threads", "1")) == 0
    code, out, _ = verify(capsys, "run", "--threads", "2")
    assert code == 0
    assert "executed differently (threads: 1 -> 2)" in out


def test_a_fused_member_is_replayed_alone_and_its_drift_reported(toy_host, capsys):
    assert main(compare_args("cmp", "--fuse", "2", "--threads", "1", "--no-figures", models="vae")) == 0
    capsys.readouterr()
    code, out, _ = verify(capsys, "cmp/runs/vae/seed2")
    assert code == 0
    assert "executed differently (fused group size: 2 -> 1)" in out
    assert "largest relative difference in scalars.jsonl:" in out and "largest relative difference in checkpoint.pt" in out


@pytest.mark.parametrize("extra, message", [
    (["--steps", "0"], "--steps must be a positive number of steps"),
    (["--steps", "31"], "--steps 31: run recorded only 30 steps"),
    (["--threads", "0"], "--threads must be a whole number of threads >= 1"),
])
def test_bad_input_is_a_one_line_error(toy_host, capsys, extra, message):
    assert main(train_args("run", "--no-eval", "--threads", "1")) == 0
    code, _, err = verify(capsys, "run", *extra)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
    code, _, err = verify(capsys, "nothing-here")
    assert code == 2 and "not a directory" in err
