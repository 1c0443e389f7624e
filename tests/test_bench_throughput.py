"""benchmarks/bench_throughput.py on tiny steps: the hardware named, the ratio default/reference,
the JSON rewritten as it goes, a failing configuration recorded without losing the others, and
--max-seconds."""

import copy
import importlib.util
from pathlib import Path

import pytest
import torch

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_throughput.py"
TINY = ["--device", "cpu", "--batch", "8", "--steps", "1", "--warmup", "0", "--options", ""]


def load_bench(monkeypatch):
    spec = importlib.util.spec_from_file_location("bench_throughput_under_test", BENCH)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    writes = []  # every report written, as it was then
    monkeypatch.setattr(bench, "atomic_write_json", lambda path, report: writes.append(copy.deepcopy(report)))
    return bench, writes


def test_a_failing_configuration_is_recorded_and_the_others_are_timed(monkeypatch, capsys):
    bench, writes = load_bench(monkeypatch)
    configurations = bench.configurations

    def broken():
        raise RuntimeError("no kernel for this\nsecond line")

    monkeypatch.setattr(bench, "configurations", lambda args, device: {**configurations(args, device),
                                                                        "broken": broken})
    assert bench.main([*TINY, "--ks", "2", "--rounds", "2", "--json", "t.json"]) == 1
    final = writes[-1]
    assert final["complete"] and final["not_timed"] == {"broken": "failed: RuntimeError: no kernel for this"}
    assert list(final["results"]) == ["reference", "disbench", "fused K=2"]
    assert all(r["rounds"] == 2 for r in final["results"].values())
    # written after each configuration built and each one timed, not only at the end
    assert [w["built"] for w in writes[:3]] == [["reference"], ["reference", "disbench"],
                                               ["reference", "disbench", "fused K=2"]]
    assert any(list(w["results"]) == ["reference"] for w in writes)
    ratio = final["results"]["disbench"]["images_per_s_aggregate"] / final["results"]["reference"][
        "images_per_s_aggregate"]
    assert final["default_vs_reference"] == round(ratio, 3)
    each = final["default_vs_reference_each_round"]
    assert len(each) == 2 and all(isinstance(r, float) for r in each)
    cpu = final["setup"]["hardware"]["cpu"]
    assert cpu["capability"] == torch.backends.cpu.get_cpu_capability() and cpu["name"]
    assert final["setup"]["hardware"]["threads"] == torch.get_num_threads()
    out = capsys.readouterr().out
    assert out.startswith(f"hardware: {cpu['name']}") and f"torch CPU kernels {cpu['capability']}" in out
    assert f"default / reference: {final['default_vs_reference']:.3f}x" in out
    assert "broken: not timed: failed: RuntimeError: no kernel for this" in out


def test_max_seconds_builds_the_reference_and_default_and_times_one_round(monkeypatch):
    bench, writes = load_bench(monkeypatch)
    assert bench.main([*TINY, "--ks", "2", "--rounds", "3", "--max-seconds", "0", "--json", "t.json"]) == 0
    final = writes[-1]
    assert list(final["results"]) == ["reference", "disbench"]
    assert final["not_timed"] == {"fused K=2": "not built: --max-seconds 0 reached"}
    assert final["rounds_stopped"] == "after 1 of 3 rounds: --max-seconds 0 reached"
    assert final["complete"] and isinstance(final["default_vs_reference"], float)


def test_table_1_as_one_group_is_timed(monkeypatch):
    bench, writes = load_bench(monkeypatch)
    assert bench.main([*TINY, "--ks", "", "--rounds", "1", "--table1-ks", "6", "--json", "t.json"]) == 0
    final = writes[-1]["results"]["table1 K=6"]
    assert final["runs"] == 6 and final["run_steps_per_s"] > 0
    group = bench.Disbench(torch.device("cpu"), 8, 12, bench.TABLE_1).group
    assert [part.name for part in group.parts] == ["VAE", "BetaVAEH", "FactorVAE", "BetaTCVAE", "ControlVAE",
                                                   "DynamicVAE"]
    assert [part.size for part in group.parts] == [2] * 6


def test_table_1_sizes_must_be_multiples_of_six(monkeypatch, capsys):
    bench, _ = load_bench(monkeypatch)
    with pytest.raises(SystemExit, match="multiple of 6"):
        bench.main([*TINY, "--ks", "", "--table1-ks", "8"])
