"""How runs are executed: recorded in results.json, set explicitly (--threads,
--fuse auto's rule), and shown (or refused) where a table's runs differ."""

import csv
import json
import shlex
import socket
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from disbench import load_compare, load_run
from disbench.cli import main
from disbench.compare import fuse
from disbench.compare.plan import TRAIN
from disbench.determinism import cpu_name
from disbench.execution import COLUMNS, default_threads
from tests.compare_helpers import compare_args, md_table
from tests.test_training import interrupted_at_step, load, train_args


def test_results_record_how_the_run_was_executed(toy_host):
    before = torch.get_num_threads()
    args = train_args("run", "--no-eval", "--threads", "2")
    assert main(args) == 0
    assert torch.get_num_threads() == before  # the run's threads are restored after it
    execution = load("run")["execution"]
    assert execution["threads"] == {"intra_op": 2, "inter_op": torch.get_num_interop_threads()}
    assert execution["command"] == shlex.join(["disbench", *args])
    assert execution["backend"] == "local" and execution["host"] == socket.gethostname()
    assert execution["device"] == {"type": "cpu", "name": cpu_name()}
    cpu = execution["cpu"]
    assert cpu["capability"] == torch.backends.cpu.get_cpu_capability() and cpu["name"] == cpu_name()
    assert isinstance(cpu["avx512_bf16"], bool) and isinstance(cpu["amx"], bool)
    assert execution["fused_group"] == {"size": 1, "index": 0, "members": ["run"]}
    assert (execution["layout"], execution["compile"], execution["deterministic"]) == ("contiguous", "none", False)
    assert execution["cudnn_benchmark"] is None  # cuDNN is not used on the CPU
    assert execution["versions"]["torch"] == torch.__version__ and execution["versions"]["cuda"] == torch.version.cuda
    history = load("run")["execution_history"]
    assert len(history) == 1 and history[0]["from_step"] == 0 and history[0]["threads"] == "2"
    assert load_run("run").execution == execution


def test_threads_default_to_the_cores_and_must_be_positive(toy_host, capsys):
    assert main(train_args("run", "--no-eval")) == 0
    assert load("run")["execution"]["threads"]["intra_op"] == default_threads()
    for bad in ("0", "-2"):
        assert main(train_args(f"bad{bad}", "--threads", bad)) == 2
        assert main(compare_args(f"cmp{bad}", "--threads", bad)) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 2 and all("--threads must be a whole number of threads >= 1" in e for e in err)
        assert not Path(f"bad{bad}").exists() and not Path(f"cmp{bad}").exists()


def test_a_resume_under_other_threads_is_recorded(toy_host, monkeypatch):
    with interrupted_at_step(monkeypatch, 17):  # between the checkpoints at steps 10 and 20
        assert main(train_args("cut", "--no-eval", "--threads", "1")) == 130
    assert main(["train", "--resume", "--out", "cut", "--no-progress", "--device", "cpu", "--threads", "2"]) == 0
    history = load("cut")["execution_history"]
    assert [(h["from_step"], h["threads"]) for h in history] == [(0, "1"), (10, "2")]
    assert load("cut")["execution"]["threads"]["intra_op"] == 2


def mixed_compare(capsys):
    """vae seed 1 trained with 1 thread, seed 2 with 2; betavae_h both with 2."""
    assert main(compare_args("out", "--threads", "1", "--no-figures", models="vae", seeds="1")) == 0
    assert main(compare_args("out", "--threads", "2", "--no-figures", seeds="1-2")) == 0
    capsys.readouterr()


def test_tables_name_runs_executed_differently_and_can_refuse_them(toy_host, capsys):
    mixed_compare(capsys)
    md = Path("out/table.md").read_text()
    assert "Runs were executed differently" in md
    rows = md_table(md, "TOY_METRIC (mean representation)")
    assert [r[0] for r in rows[1:]] == ["vae †", "betavae_h"]
    assert "† Executed differently within the row — vae: threads 1 (seed 1), 2 (seed 2)." in md
    execution = md_table(md, "Execution")
    assert execution[0][:5] == ["model", "n", "device", "CPU kernels", "threads"]
    assert execution[1][4] == "1; 2" and execution[2][4] == "2"
    table = list(csv.DictReader(Path("out/table.csv").open()))
    assert list(table[0])[-len(COLUMNS):] == list(COLUMNS)
    assert {r["exec_threads"] for r in table if r["model"] == "vae"} == {"1; 2"}
    assert {r["exec_threads"] for r in table if r["model"] == "betavae_h"} == {"2"}
    assert {r["exec_group_size"] for r in table} == {"1"} and {r["exec_backend"] for r in table} == {"local"}
    rows = load_compare("out")
    assert {r["exec_threads"] for r in rows if r["model"] == "vae"} == {"1; 2"}

    # --same-execution refuses to average them: compare, report and the API alike
    assert main(compare_args("out", "--threads", "2", "--no-figures", "--same-execution", seeds="1-2")) == 2
    assert main(["report", "out", "--same-execution", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all("--same-execution: the runs of vae: threads 1 (seed 1), 2 (seed 2)" in e
                                 for e in err)
    with pytest.raises(Exception, match="executed differently"):
        load_compare("out", same_execution=True)


def test_a_table_of_runs_executed_alike_says_how_in_its_header(toy_host, capsys):
    assert main(compare_args("out", "--threads", "1", "--no-figures", "--same-execution", seeds="1-2")) == 0
    md = Path("out/table.md").read_text()
    assert "Executed alike: cpu (" in md and "1 thread, fused group size 1, contiguous layout" in md
    assert "†" not in md and "## Execution" not in md
    assert json.loads(Path("out/compare.json").read_text())["threads"] == 1


def test_fuse_auto_is_a_rule_not_a_timing(toy_host, capsys, monkeypatch):
    built = []
    monkeypatch.setattr(fuse, "memory_estimates", lambda *a, **k: built.append(a) or ({}, 0))
    assert main(compare_args("out", "--fuse", "auto", "--no-figures", models="vae", seeds="1-3")) == 0
    out = capsys.readouterr().out
    assert "--fuse auto: 1 on cpu (a fused group is no faster than its runs in turn there)" in out
    rule = json.loads(Path("out/compare.json").read_text())["fuse_rule"]
    assert rule["size"] == 1 and rule["device_type"] == "cpu" and rule["runs_waiting"] == 3
    assert not built and "img/s" not in out  # on a CPU nothing is even estimated, nothing timed


@pytest.mark.parametrize("total_gib, expected", [(80, 8), (0.5, 2), (0.01, 1)])
def test_fuse_auto_on_cuda_takes_the_largest_group_that_fits_half_the_memory(monkeypatch, total_gib, expected):
    estimates = {1: 2**27, 2: 2**28, 4: 2**30, 8: 2**31}  # 128 MiB per run, doubling
    monkeypatch.setattr(fuse, "memory_estimates", lambda job, device, most: (
        {k: v for k, v in estimates.items() if k <= most}, int(total_gib * 2**30)))
    jobs = [SimpleNamespace(action=TRAIN, model="vae", fuse_key="conv64") for _ in range(9)]
    size, rule = fuse.choose_fuse("auto", jobs, "cuda")
    assert size == expected and rule["size"] == expected and rule["runs_waiting"] == 9
    assert rule["device_memory_bytes"] == int(total_gib * 2**30) and rule["max_auto"] == fuse.MAX_AUTO
    assert f"--fuse auto chose {expected} on cuda" in rule["why"]
    # fewer runs waiting than the cap: never more than are waiting
    size, _ = fuse.choose_fuse("auto", jobs[:3], "cuda")
    assert size == min(2, expected)


def test_memory_estimates_grow_with_the_group(toy_host, monkeypatch):
    from disbench.compare.plan import plan_runs
    from disbench.config import ConfigSources
    from tests.conftest import TOY_PROTOCOL

    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda device: SimpleNamespace(total_memory=2**34))
    plan = plan_runs(Path("out"), ["vae"], [1, 2, 3, 4, 5], ConfigSources(protocol=TOY_PROTOCOL))
    estimates, total = fuse.memory_estimates(plan.todo[0], torch.device("cuda"), 5)
    assert list(estimates) == [1, 2, 4] and total == 2**34
    assert estimates[1] < estimates[2] < estimates[4]


def test_layout_is_execution_not_protocol(toy_host):
    """channels_last changes the convolutions' memory layout, at most their rounding: recorded
    as the run's layout, not part of what runs are compared under."""
    assert main(train_args("a", "--no-eval", "--threads", "1")) == 0
    assert main(train_args("b", "--no-eval", "--threads", "1", "--gin_param", "Protocol.channels_last = True")) == 0
    assert load("a")["protocol_fingerprint"] == load("b")["protocol_fingerprint"]
    assert (load("a")["execution"]["layout"], load("b")["execution"]["layout"]) == ("contiguous", "channels_last")
