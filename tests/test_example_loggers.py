"""The W&B and MLflow loggers of examples/ (issue 16), each run against a fake of
its library injected into sys.modules (the real libraries are not needed): what
they send equals what the run writes."""

import importlib.util
import json
import sys
import types
from pathlib import Path

import gin
import numpy as np
import pytest

from disbench.cli import main
from disbench.loggers import metric_tags, scalar_tags
from disbench.plugins import PluginHost, set_host
from disbench.training.scalars import read_scalars
from tests import toy_plugin
from tests.conftest import TESTS, TOY_PROTOCOL

EXAMPLES = TESTS.parent / "examples"


def _example(name: str):
    """The example plugin module, imported once per session (gin registers its classes)."""
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, EXAMPLES / name / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


@pytest.fixture
def host_with(request):
    def make(name):
        host = PluginHost(entry_points=False, extra_plugins={"toy": toy_plugin, name: _example(name)})
        set_host(host)
        return host

    yield make
    set_host(None)
    gin.clear_config()


def train(out, logger, *extra):
    return main(["train", "--model", "vae", "--protocol", TOY_PROTOCOL, "--out", str(out), "--device", "cpu",
                 "--no-progress", "--logger", logger, "--gin_param", "Protocol.image_every = 15", *extra])


# -- a fake wandb ------------------------------------------------------------------

FAKE_SERVER: dict = {}  # run id -> what W&B keeps of a run between processes: its history and summary


class FakeWandbRun:
    """One ``wandb.init()``, with W&B's rules for steps: ``log(step=S)`` below the
    run's current step is dropped (W&B warns and drops it); without ``step=``
    each call is a row of its own; a resumed run continues the history W&B
    holds, its step after the last row's, with its summary restored."""

    def __init__(self, **kwargs):
        self.kwargs, self.id = kwargs, kwargs.get("id") or f"fake{len(FAKE_SERVER)}"
        if kwargs.get("resume") not in ("allow", "must") or self.id not in FAKE_SERVER:
            FAKE_SERVER[self.id] = {"history": [], "summary": {}}
        self.history, self.summary = FAKE_SERVER[self.id]["history"], FAKE_SERVER[self.id]["summary"]
        self.step = self.history[-1]["_step"] + 1 if self.history else 0
        self.pending, self.dropped, self.defined, self.exit_code = {}, [], {}, None
        self.config = types.SimpleNamespace(values={}, update=lambda d, allow_val_change=False:
                                            self.config.values.update(d))

    def define_metric(self, name, step_metric=None):
        self.defined[name] = step_metric

    def log(self, values, step=None, commit=None):
        if step is not None and step < self.step:
            self.dropped.append((step, values))
            return
        if step is not None and step > self.step:
            self._commit()
            self.step = step
        self.pending.update(values)
        if commit or (commit is None and step is None):
            self._commit()

    def _commit(self):
        if self.pending:
            self.history.append({"_step": self.step, **self.pending})
            self.summary.update(self.pending)
            self.step, self.pending = self.step + 1, {}

    def finish(self, exit_code=0):
        self._commit()
        self.exit_code = exit_code


FAKE_RUNS: list = []


def fake_wandb():
    FAKE_RUNS.clear()
    FAKE_SERVER.clear()
    module = types.ModuleType("wandb")

    def init(**kwargs):
        FAKE_RUNS.append(FakeWandbRun(**kwargs))
        return FAKE_RUNS[-1]

    class Image:
        def __init__(self, data, caption=None):
            self.data, self.caption = np.asarray(data), caption

    module.init, module.Image = init, Image
    return module


def by_step(history, wanted: str):
    """The (training step, values) of the W&B rows holding key ``wanted``, in order."""
    return [(row["step"], {k: v for k, v in row.items() if k not in ("_step", "step")})
            for row in history if wanted in row]


def test_wandb_logger_sends_the_runs_rows_metrics_and_images(host_with, monkeypatch):
    monkeypatch.setitem(sys.modules, "wandb", fake_wandb())
    host = host_with("wandb_logger")
    assert host.registry("loggers").source("wandb") == "wandb_logger"
    assert train("run", "wandb", "--gin_param", "WandbLogger.mode = 'offline'") == 0
    (wb,) = FAKE_RUNS
    assert wb.kwargs["mode"] == "offline" and wb.kwargs["name"] == "run" and wb.kwargs["group"] == "vae"
    assert wb.kwargs["reinit"] == "create_new" and wb.kwargs["dir"] == "run"
    assert Path("run/wandb-run-id").read_text().strip() == wb.id
    assert wb.config.values["protocol"]["steps"] == 30 and "config_gin" in wb.summary
    assert wb.defined == {"step": None, "*": "step"}  # every metric plotted against the training step

    rows = read_scalars(Path("run/scalars.jsonl"))
    scalars = by_step(wb.history, "recon")
    assert scalars == [(r["step"], scalar_tags(r)) for r in rows]
    assert {"kl_per_dim/z0", "kl_per_dim/z3", "beta", "kl"} <= set(scalars[0][1])
    results = json.loads(Path("run/results.json").read_text())
    assert by_step(wb.history, "metrics/toy_metric") == [(30, metric_tags(results["metrics"]))]
    assert wb.summary["metrics/toy_metric"] == results["metrics"]["toy_metric"]["score"]
    images = by_step(wb.history, "images/traversal")
    assert [step for step, _ in images] == [15, 30]
    assert images[0][1]["images/traversal"].data.ndim == 2  # one channel: (H, W)
    assert wb.exit_code == 0 and wb.summary["status"] == "complete" and not wb.dropped


def test_wandb_steps_continue_after_a_resume_and_an_evaluate(host_with, monkeypatch):
    """A run killed at step 17 (checkpoint 10, rows to 15 sent) and resumed logs
    again from step 15, and a later evaluate logs at step 30: one W&B run, with
    nothing W&B drops and each training step's row and images once."""
    from tests.test_training import interrupted_at_step

    monkeypatch.setitem(sys.modules, "wandb", fake_wandb())
    host_with("wandb_logger")
    with interrupted_at_step(monkeypatch, 17):
        assert train("run", "wandb") == 130
    assert main(["train", "--resume", "--out", "run", "--device", "cpu", "--no-progress"]) == 0
    assert main(["evaluate", "run", "--device", "cpu", "--no-progress"]) == 0

    first, resumed, evaluated = FAKE_RUNS
    assert first.exit_code == 1 and first.summary is resumed.summary  # one W&B run throughout
    assert len({wb.id for wb in FAKE_RUNS}) == 1 and resumed.kwargs["resume"] == evaluated.kwargs["resume"] == "allow"
    assert [wb.dropped for wb in FAKE_RUNS] == [[], [], []]
    history = evaluated.history
    rows = read_scalars(Path("run/scalars.jsonl"))
    assert by_step(history, "recon") == [(r["step"], scalar_tags(r)) for r in rows]  # 5, 10, ..., 30: each once
    assert [step for step, _ in by_step(history, "images/traversal")] == [15, 30]
    final = metric_tags(json.loads(Path("run/results.json").read_text())["metrics"])
    assert by_step(history, "metrics/toy_metric") == [(30, final), (30, final)]  # the run's end, then evaluate
    assert evaluated.summary["metrics/toy_metric"] == final["metrics/toy_metric"]
    assert evaluated.exit_code == 0 and evaluated.summary["status"] == "complete"


def test_wandb_missing_is_refused_in_one_line(host_with, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "wandb", None)
    host_with("wandb_logger")
    assert train("run", "wandb") == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "pip install wandb" in err and not Path("run").exists()


# -- a fake mlflow -------------------------------------------------------------------

class FakeMlflowClient:
    calls: list = []

    def __init__(self, tracking_uri=None):
        self.calls.append(("client", tracking_uri))

    def get_experiment_by_name(self, name):
        self.calls.append(("get_experiment_by_name", name))
        return None

    def create_experiment(self, name):
        self.calls.append(("create_experiment", name))
        return "7"

    def create_run(self, experiment_id, run_name=None, tags=None):
        self.calls.append(("create_run", experiment_id, run_name, tags))
        return types.SimpleNamespace(info=types.SimpleNamespace(run_id=f"r{experiment_id}"))

    def __getattr__(self, name):  # log_batch, log_text, log_image, set_terminated, update_run
        return lambda *args, **kwargs: self.calls.append((name, args, kwargs))


def fake_mlflow():
    mlflow = types.ModuleType("mlflow")
    tracking, entities = types.ModuleType("mlflow.tracking"), types.ModuleType("mlflow.entities")
    tracking.MlflowClient = FakeMlflowClient
    entities.Metric = lambda key, value, timestamp, step: ("metric", key, value, step)
    entities.Param = lambda key, value: ("param", key, value)
    mlflow.tracking, mlflow.entities = tracking, entities
    return {"mlflow": mlflow, "mlflow.tracking": tracking, "mlflow.entities": entities}


def test_mlflow_logger_sends_the_runs_rows_metrics_and_images(host_with, monkeypatch):
    FakeMlflowClient.calls = []
    for name, module in fake_mlflow().items():
        monkeypatch.setitem(sys.modules, name, module)
    host_with("mlflow_logger")
    assert train("run", "mlflow", "--gin_param", "MLflowLogger.tracking_uri = 'file:///tmp/x'") == 0
    calls = FakeMlflowClient.calls
    assert calls[0] == ("client", "file:///tmp/x")
    assert ("create_experiment", "disbench") in calls
    created = next(c for c in calls if c[0] == "create_run")
    assert created[2] == "run" and created[3]["disbench.model"] == "vae"
    assert Path("run/mlflow-run-id").read_text().strip() == "r7"

    batches = [c[2] for c in calls if c[0] == "log_batch"]
    params = [p for b in batches for p in b.get("params", [])]
    assert ("param", "protocol.steps", "30") in params and ("param", "model", "vae") in params
    metric_batches = [b["metrics"] for b in batches if b.get("metrics")]
    rows = read_scalars(Path("run/scalars.jsonl"))
    sent_rows = [{m[1]: m[2] for m in batch} for batch in metric_batches if any(m[1] == "recon" for m in batch)]
    assert sent_rows == [scalar_tags(r) for r in rows]
    assert all(m[3] == r["step"] for batch, r in zip(metric_batches, rows) for m in batch)
    results = json.loads(Path("run/results.json").read_text())
    assert {m[1]: m[2] for m in metric_batches[-1]} == metric_tags(results["metrics"])
    texts = [c[1] for c in calls if c[0] == "log_text"]
    assert texts == [("r7", Path("run/config.gin").read_text(), "config.gin")]
    images = [c[1][2] for c in calls if c[0] == "log_image"]
    assert images == ["images/reconstructions/step_00000015.png", "images/traversal/step_00000015.png",
                      "images/reconstructions/step_00000030.png", "images/traversal/step_00000030.png"]
    assert calls[-1] == ("set_terminated", ("r7",), {"status": "FINISHED"})


def test_mlflow_keys_are_made_acceptable():
    module = _example("mlflow_logger")
    assert module.key("metrics/dci@sampled") == "metrics/dci_sampled"
    assert module.flatten({"protocol": {"adam_betas": (0.9, 0.99)}, "x": None}) == {
        "protocol.adam_betas": "(0.9, 0.99)"}
