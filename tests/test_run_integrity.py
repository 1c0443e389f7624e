"""A run can be resumed anywhere, repeats where the hardware allows, and no input
corrupts results or reaches outside the output folder (issue: ready for the GPU
and for hostile input)."""

import datetime
import json
import os
from pathlib import Path

import gin
import pytest
import torch

from disbench.cli import main
from disbench.config import ConfigSources, parse_sources
from disbench.determinism import configure_determinism
from disbench.training.checkpoint import load_checkpoint, set_rng_state
from disbench.training.scalars import ScalarLog, read_scalars
from tests.conftest import TOY_PROTOCOL

pytestmark = pytest.mark.numerical  # compared against bounds or bit for bit: run again under AVX2 kernels


def train_args(out, *extra, model="vae"):
    return ["train", "--model", model, "--protocol", TOY_PROTOCOL, "--out", str(out), "--device", "cpu",
            "--no-progress", *extra]


def load(run_dir):
    return json.loads((Path(run_dir) / "results.json").read_text())


def one_line_error(capsys, *fragments):
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    for fragment in fragments:
        assert fragment in err, err
    return err


@pytest.fixture
def trained(toy_host):
    assert main(train_args("run", "--no-eval")) == 0
    return Path("run")


# -- 1. resume on another device ------------------------------------------------

def test_checkpoint_mapped_to_another_device_keeps_generator_states_on_the_cpu(trained):
    state = load_checkpoint(trained / "checkpoint.pt", map_location="meta")
    assert next(iter(state["model"].values())).device.type == "meta"  # the weights did move
    assert state["rng"]["torch"].device.type == "cpu"
    set_rng_state(state["rng"])  # raises for a tensor on another device
    torch.Generator().set_state(state["sampler"]["generator"])  # raises for a state on another device
    torch.Generator().set_state(state["noise"])


# -- 2. determinism ---------------------------------------------------------------

def test_deterministic_mode_is_set_and_recorded(toy_host):
    try:
        assert main(train_args("det", "--no-eval", "--deterministic")) == 0
        assert torch.are_deterministic_algorithms_enabled() and torch.backends.cudnn.deterministic
    finally:
        configure_determinism(False)
    execution = load("det")["execution"]
    assert execution["deterministic"] is True and execution["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
    assert execution["device"]["type"] == "cpu" and execution["threads"]["intra_op"] >= 1
    assert execution["device"]["name"] == execution["cpu"]["name"] and execution["cpu"]["name"]
    assert main(train_args("plain", "--no-eval")) == 0
    assert load("plain")["execution"]["deterministic"] is False
    assert not torch.are_deterministic_algorithms_enabled()
    # how a run is computed is not what it is compared under
    assert load("plain")["protocol_fingerprint"] == load("det")["protocol_fingerprint"]


# -- 3. one resolver --------------------------------------------------------------

def test_a_scheduler_class_given_in_gin_is_instantiated(full_host):
    from disbench.builders import build_model
    from disbench.config import build_protocol, build_run
    from disbench.data import DatasetInfo

    parse_sources(ConfigSources(protocol=TOY_PROTOCOL,
                                gin_params=["VAE.scheduler = @PIBetaScheduler", "PIBetaScheduler.beta_init = 7.0"]),
                  model="vae")
    info = DatasetInfo("toy", 8, (1, 64, 64), "bernoulli")
    model = build_model(build_run(), build_protocol(), info)
    assert not isinstance(model.scheduler, type)
    assert float(model.scheduler.step(torch.tensor(0.0))) == pytest.approx(7.0, abs=0.1)


@pytest.mark.parametrize("given", ["name", "class", "instance", "factory"])
def test_resolve_component_forms(full_host, given):
    from disbench.components import has_method, resolve_component
    from disbench.schedulers import ConstantBeta

    value = {"name": "constant", "class": ConstantBeta, "instance": ConstantBeta(2.0),
             "factory": lambda: ConstantBeta(3.0)}[given]
    resolved = resolve_component(value, kind="schedulers", default=lambda: None, is_instance=has_method("step"),
                                 owner="X.scheduler")
    assert isinstance(resolved, ConstantBeta)


def test_resolve_component_refuses_what_is_not_one(full_host):
    from disbench.components import has_method, resolve_component

    with pytest.raises(ValueError, match="X.scheduler must be a scheduler"):
        resolve_component(42, kind="schedulers", default=lambda: None, is_instance=has_method("step"),
                          owner="X.scheduler")


# -- 4. resume checks what it resumes --------------------------------------------

def interrupt(run_dir):
    results = load(run_dir)
    results["status"] = "interrupted"
    (Path(run_dir) / "results.json").write_text(json.dumps(results))


def test_resume_refuses_a_changed_binding_naming_it(toy_host, capsys):
    assert main(train_args("run", "--no-eval", model="betavae_h")) == 0
    interrupt("run")
    assert main(train_args("run", "--resume", "--gin_param", "BetaVAEH.beta = 8.0", model="betavae_h")) == 2
    one_line_error(capsys, "configured differently", "BetaVAEH.beta: 4.0 -> 8.0")
    assert main(["train", "--resume", "--out", "run", "--model", "vae", "--device", "cpu"]) == 2
    one_line_error(capsys, "Run.model: 'betavae_h' -> 'vae'")
    # repeating the run's own options is fine, and the run resumes from its checkpoint
    assert main(["train", "--resume", "--out", "run", "--model", "betavae_h", "--steps", "30",
                 "--device", "cpu", "--no-progress"]) == 0
    assert "resuming run from step 30 of 30" in capsys.readouterr().out


def test_resume_of_a_complete_run_with_another_protocol_names_the_mismatch(trained, capsys, tmp_path):
    other = tmp_path / "other.gin"
    other.write_text(Path(TOY_PROTOCOL).read_text().replace("Protocol.steps = 30", "Protocol.steps = 50"))
    assert main(["train", "--resume", "--out", "run", "--protocol", str(other), "--device", "cpu"]) == 2
    one_line_error(capsys, "Protocol.steps: 30 -> 50")


def test_checkpoint_of_another_scheduler_configuration_is_refused(toy_host, capsys):
    assert main(train_args("run", "--no-eval", model="betavae_h")) == 0
    interrupt("run")
    state = torch.load("run/checkpoint.pt", weights_only=True)
    state["scheduler_config"] = {"name": "constant", "beta": 9.0}
    torch.save(state, "run/checkpoint.pt")
    assert main(["train", "--resume", "--out", "run", "--device", "cpu", "--no-progress"]) == 2
    one_line_error(capsys, "belongs to another configuration", "scheduler_config")


def test_resume_remembers_no_eval_and_says_where_it_starts(toy_host, capsys):
    assert main(train_args("run", "--no-eval", model="toy_interrupted")) == 130
    capsys.readouterr()
    assert load("run")["status"] == "interrupted" and load("run")["steps"] == 20
    assert main(["train", "--resume", "--out", "run", "--device", "cpu", "--no-progress",
                 "--gin_param", "InterruptedVAE.at = 0"]) == 2  # still refused: another config
    capsys.readouterr()
    config = Path("run/config.gin")
    config.write_text(config.read_text() + "\nInterruptedVAE.at = 0\n")  # let it finish
    assert main(["train", "--resume", "--out", "run", "--device", "cpu", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "resuming run from step 20 of 30" in out and "metrics:" not in out
    assert load("run")["status"] == "complete" and "metrics" not in load("run")


# -- 5. no bad state saved as good ------------------------------------------------

def test_non_finite_parameters_stop_the_run_before_the_checkpoint(toy_host, capsys):
    assert main(train_args("run", "--no-eval", model="toy_corrupting")) == 2
    err = one_line_error(capsys, "non-finite parameters", "at step 20", "last good checkpoint (step 10")
    assert "encoder.net.0.weight" in err
    assert torch.load("run/checkpoint.pt", weights_only=True)["step"] == 10
    results = load("run")
    assert results["status"] == "failed" and results["steps"] == 10 and results["checkpoint_step"] == 10


def test_divergence_before_the_first_checkpoint_says_there_is_none(toy_host, capsys):
    assert main(train_args("run", "--no-eval", model="toy_diverging")) == 2
    one_line_error(capsys, "no checkpoint had been written yet")
    assert not Path("run/checkpoint.pt").exists()


def test_run_killed_after_its_last_checkpoint_ends_with_its_final_values(trained):
    results = load(trained)
    final = results["final"]
    results.update(status="running", final=None)  # as if killed before the results write
    (trained / "results.json").write_text(json.dumps(results))
    assert main(["train", "--resume", "--out", "run", "--device", "cpu", "--no-progress"]) == 0
    assert load(trained)["status"] == "complete" and load(trained)["final"] == final
    assert final["recon"] == read_scalars(trained / "scalars.jsonl")[-1]["recon"]


def test_results_record_the_checkpoint_step_at_every_checkpoint(toy_host, capsys):
    assert main(train_args("run", "--no-eval", model="toy_interrupted")) == 130
    results = load("run")
    assert results["steps"] == 20 and results["checkpoint_step"] == 20 and results["status"] == "interrupted"


def test_writes_are_fsynced_before_and_after_the_rename(tmp_path, monkeypatch):
    from disbench import io

    synced = []
    real = os.fsync
    monkeypatch.setattr(io.os, "fsync", lambda fd: (synced.append(os.readlink(f"/proc/self/fd/{fd}")), real(fd)))
    io.atomic_write_text(tmp_path / "a.txt", "x")
    assert len(synced) == 2 and ".a.txt." in synced[0] and synced[1] == str(tmp_path)


def test_scalar_log_rewrite_on_resume_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "scalars.jsonl"
    path.write_text("".join(json.dumps({"step": s, "kl": 1.0}) + "\n" for s in (5, 10, 15)))
    monkeypatch.setattr("disbench.io.os.replace", lambda *a: (_ for _ in ()).throw(OSError("disk gone")))
    with pytest.raises(OSError):
        ScalarLog(path, keep_up_to_step=10)
    assert [r["step"] for r in read_scalars(path)] == [5, 10, 15]  # untouched, not truncated


def test_metric_needing_factors_is_refused_before_training(toy_host, capsys):
    assert main(train_args("plain", "--dataset", "toy_unlabelled")) == 2
    one_line_error(capsys, "'toy_metric' need ground-truth factors")
    assert not Path("plain").exists()


# -- 6. names and paths ------------------------------------------------------------

def test_default_run_folder_never_comes_from_an_unchecked_name(toy_host, capsys):
    assert main(["train", "--model", "../../x", "--protocol", TOY_PROTOCOL, "--device", "cpu"]) == 2
    one_line_error(capsys, "unknown model '../../x'")
    assert not Path("runs").exists() and not Path("../x").exists()


@pytest.mark.parametrize("layout, fragment", [("file", "is a file, not a folder"),
                                              ("under_file", "is a file, so no folder can be made under it")])
def test_bad_output_folders_are_one_line_errors(toy_host, capsys, layout, fragment):
    Path("f").write_text("x")
    out = "f" if layout == "file" else "f/run"
    assert main(train_args(out)) == 2
    one_line_error(capsys, fragment)


def test_unwritable_output_folder_is_a_one_line_error(toy_host, capsys, monkeypatch):
    def read_only(self, *args, **kwargs):
        raise OSError(30, "Read-only file system")

    monkeypatch.setattr(Path, "mkdir", read_only)
    assert main(train_args("ro/run")) == 2
    one_line_error(capsys, "cannot write there (Read-only file system)")


def test_a_refused_configuration_leaves_no_folder(toy_host, capsys):
    assert main(train_args("run", "--gin_param", "Protocol.metrics = ['nope']")) == 2
    one_line_error(capsys, "unknown metric 'nope'")
    assert not Path("run").exists()
    assert main(train_args("run2", "--gin_param", "VAE.scheduler = 'nope'")) == 2
    one_line_error(capsys, "unknown scheduler 'nope'")
    assert not Path("run2").exists()


# -- 7. run folders are data, not code ----------------------------------------------

@pytest.mark.parametrize("line, fragment", [("import os.path", "imports module 'os.path'"),
                                            ("include '/etc/x.gin'", "includes '/etc/x.gin'")])
def test_run_folder_configs_may_not_import_or_include(trained, capsys, line, fragment):
    config = trained / "config.gin"
    config.write_text(f"{line}\n" + config.read_text())
    assert main(["evaluate", "run", "--device", "cpu"]) == 2
    one_line_error(capsys, fragment, "refused")
    interrupt(trained)
    assert main(["train", "--resume", "--out", "run", "--device", "cpu"]) == 2
    one_line_error(capsys, fragment)


def test_gin_imports_are_refused_in_new_runs_too(toy_host, capsys):
    assert main(train_args("run", "--gin_param", "import json")) == 2
    one_line_error(capsys, "imports module 'json'")
    assert not Path("run").exists()


# -- 11. unreadable files are described, never with unsafe advice -----------------------

def test_garbage_checkpoints_are_described(trained, capsys):
    interrupt(trained)
    for content, fragment in ((b"", "the file is empty"), (b"not a checkpoint", "not a PyTorch checkpoint")):
        (trained / "checkpoint.pt").write_bytes(content)
        assert main(["train", "--resume", "--out", "run", "--device", "cpu"]) == 2
        err = one_line_error(capsys, fragment)
        assert "weights_only" not in err
    torch.save({"step": 1, "payload": datetime.timedelta(1)}, trained / "checkpoint.pt")  # not plain data
    assert main(["train", "--resume", "--out", "run", "--device", "cpu"]) == 2
    err = one_line_error(capsys, "are refused (loading them could run code from the file)")
    assert "weights_only" not in err


# -- the run record -------------------------------------------------------------------

def test_eval_every_is_not_part_of_the_fingerprint(toy_host):
    assert main(train_args("a", "--no-eval")) == 0
    assert main(train_args("b", "--no-eval", "--gin_param", "Protocol.eval_every = 10")) == 0
    assert load("a")["protocol_fingerprint"] == load("b")["protocol_fingerprint"]
    gin.clear_config()


def test_garbage_npz_is_described_without_unsafe_advice(tmp_path, capsys, toy_host):
    from disbench.datasets.dsprites import FILENAME

    (tmp_path / "data").mkdir()
    (tmp_path / "data" / FILENAME).write_bytes(b"this is not a numpy file at all" * 10)
    assert main(["data", "prepare", "dsprites", "--data-root", str(tmp_path / "data")]) == 2
    err = one_line_error(capsys, "neither an npz archive nor a .npy array")
    assert "allow_pickle" not in err


# -- 9. one way to build a run -----------------------------------------------------------

def test_train_then_evaluate_builds_the_dataset_once_and_compare_plans_without_it(toy_host):
    from tests import toy_plugin

    toy_plugin.BUILDS["toy_squares"] = 0
    assert main(train_args("run")) == 0  # checks, training and the evaluation after it
    assert toy_plugin.BUILDS["toy_squares"] == 1 and "toy_metric" in load("run")["metrics"]
    assert main(["compare", "--models", "vae", "--seeds", "1", "--protocol", TOY_PROTOCOL, "--out", "cmp",
                 "--no-figures", "--device", "cpu", "--no-progress"]) == 0
    toy_plugin.BUILDS["toy_squares"] = 0
    assert main(["compare", "--models", "vae", "--seeds", "1", "--protocol", TOY_PROTOCOL, "--out", "cmp",
                 "--no-figures", "--device", "cpu", "--no-progress"]) == 0
    assert toy_plugin.BUILDS["toy_squares"] == 0  # nothing to do: planning reads metadata only


def test_binding_a_parameter_to_its_default_is_no_change_on_resume(trained, capsys):
    interrupt(trained)
    assert main(["train", "--resume", "--out", "run", "--device", "cpu", "--no-progress",
                 "--gin_param", "Protocol.precision = 'fp32'"]) == 0  # what the run had, unbound
    interrupt(trained)
    capsys.readouterr()
    assert main(["train", "--resume", "--out", "run", "--device", "cpu", "--no-progress",
                 "--gin_param", "Protocol.precision = 'bf16'"]) == 2
    one_line_error(capsys, "Protocol.precision: 'fp32' (default) -> 'bf16'")  # the first resume changed no file
