"""Loggers (issue 16): what a logger receives equals what the run writes; a
failing logger is reported once and dropped; loggers change nothing in a run;
the built-in TensorBoard logger, read back from its event files. On a shared
cluster: the hub's queue is bounded and what it drops is recorded; loggers not
finished at the end are recorded; a later evaluate reaches the run's loggers."""

import io
import json
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from disbench.cli import main
from disbench.config import Protocol, fingerprint
from disbench.loggers import Logger, RunInfo
from disbench.loggers.hub import LoggerHub
from disbench.runs import read_results, update_results
from disbench.training.scalars import read_scalars
from tests import toy_plugin
from tests.conftest import TOY_PROTOCOL

IMAGES = ("--gin_param", "Protocol.image_every = 10")


def train(out, *extra):
    return main(["train", "--model", "vae", "--protocol", TOY_PROTOCOL, "--out", str(out), "--device", "cpu",
                 "--no-progress", *extra])


def load(run_dir):
    return json.loads((Path(run_dir) / "results.json").read_text())


@pytest.fixture(autouse=True)
def _fresh_records():
    toy_plugin.RECORDED.clear()
    yield
    toy_plugin.RECORDED.clear()


def calls(label="toy_recording", run_dir=None, method=None):
    return [(info, m, args) for name, info, m, args in toy_plugin.RECORDED
            if name == label and (run_dir is None or Path(info.run_dir) == Path(run_dir))
            and (method is None or m == method)]


def test_a_logger_receives_the_config_the_rows_the_metrics_and_images(toy_host):
    assert train("run", "--logger", "toy_recording", "--gin_param", "Protocol.eval_every = 10", *IMAGES) == 0
    got = calls()
    methods = [m for _, m, _ in got]
    assert methods[:2] == ["__init__", "log_config"] and methods[-1] == "close"
    assert methods.count("log_config") == 1 and methods.count("close") == 1
    info = got[0][0]
    assert (info.model, info.seed, info.start_step, info.steps, info.group_size) == ("vae", 0, 0, 30, 1)
    assert info.fingerprint == load("run")["protocol_fingerprint"]

    config = calls(method="log_config")[0][2][0]
    assert config["config_gin"] == Path("run/config.gin").read_text()
    assert "Run.loggers = ('toy_recording',)" in config["config_gin"]
    assert config["protocol"]["steps"] == 30 and config["run"]["loggers"] == ["toy_recording"]

    rows = [args[1] for _, _, args in calls(method="log_scalars")]
    assert rows == read_scalars(Path("run/scalars.jsonl")) and len(rows) == 6
    assert [args[0] for _, _, args in calls(method="log_scalars")] == [r["step"] for r in rows]

    metrics = [args for _, _, args in calls(method="log_metrics")]
    during = [(step, m) for step, m, final in metrics if not final]
    assert during == [(r["step"], r["metrics"]) for r in read_scalars(Path("run/metrics.jsonl"))]
    assert [step for step, _ in during] == [10, 20, 30]
    final = [(step, m) for step, m, final in metrics if final]
    assert final == [(30, load("run")["metrics"])]

    images = calls(method="log_images")
    assert [args[0] for _, _, args in images] == [10, 20, 30]
    for _, _, (step, drawn) in images:
        assert set(drawn) == {"reconstructions", "traversal"}
        for image in drawn.values():
            assert image.dtype == np.float32 and image.ndim == 3 and image.shape[-1] == 1
            assert 0.0 <= image.min() and image.max() <= 1.0
        assert drawn["traversal"].shape[0] == 4 * 64 + 3 * 2  # one row per latent (4), 2-pixel gaps
    assert calls(method="close")[0][2] == ("complete",)
    assert "logger_errors" not in load("run")


def test_loggers_and_their_images_change_nothing_in_the_run(toy_host):
    """Bit for bit: weights, optimizer state, scalars and metrics of a run with
    loggers (and images every 5 steps) equal those of the same run without."""
    common = ("--seed", "3", "--gin_param", "Protocol.eval_every = 10")
    assert train("plain", *common) == 0
    assert train("watched", *common, "--logger", "toy_recording", "--logger", "tensorboard",
                 "--logger", "toy_failing", "--gin_param", "Protocol.image_every = 5") == 0
    assert len(calls(method="log_images")) == 6
    a, b = (torch.load(Path(d) / "checkpoint.pt", weights_only=True) for d in ("plain", "watched"))
    for key in ("model", "optimizer", "sampler", "noise", "rng"):
        flat_a, flat_b = torch.utils._pytree.tree_flatten(a[key])[0], torch.utils._pytree.tree_flatten(b[key])[0]
        assert len(flat_a) == len(flat_b)
        for x, y in zip(flat_a, flat_b):
            assert torch.equal(x, y) if isinstance(x, torch.Tensor) else x == y, key
    assert read_scalars(Path("plain/scalars.jsonl")) == read_scalars(Path("watched/scalars.jsonl"))
    timed = [read_scalars(Path(d) / "metrics.jsonl") + [load(d)["metrics"]] for d in ("plain", "watched")]
    assert _untimed(timed[0]) == _untimed(timed[1])
    assert load("plain")["protocol_fingerprint"] == load("watched")["protocol_fingerprint"]


def _untimed(obj):
    """Metric results without their 'seconds' (how long they took)."""
    if isinstance(obj, dict):
        return {k: _untimed(v) for k, v in obj.items() if k != "seconds"}
    if isinstance(obj, list):
        return [_untimed(v) for v in obj]
    return obj


def test_image_every_and_loggers_are_not_fingerprinted():
    assert fingerprint(Protocol()) == fingerprint(Protocol(image_every=100))
    with pytest.raises(Exception, match="Protocol.image_every must be an integer >= 0"):
        Protocol(image_every=-1)


def test_a_failing_logger_is_reported_once_and_dropped(toy_host, capsys):
    assert train("run", "--logger", "toy_failing", "--logger", "toy_recording") == 0
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if "toy_failing" in line]
    assert len(lines) == 1, err
    assert "failed in log_scalars at step 10 and was dropped (OSError: disk full); the run goes on" in lines[0]
    results = load("run")
    assert results["status"] == "complete" and results["metrics"]
    assert len(results["logger_errors"]) == 1 and "'toy_failing'" in results["logger_errors"][0]
    # dropped: nothing after its failing call, not even close; the other logger got everything
    assert [args[0] for _, _, args in calls("toy_failing", method="log_scalars")] == [5, 10]
    assert not calls("toy_failing", method="close")
    assert [args[1] for _, _, args in calls(method="log_scalars")] == read_scalars(Path("run/scalars.jsonl"))
    assert calls(method="close")[0][2] == ("complete",)


def test_a_logger_failing_to_start_is_dropped(toy_host, capsys):
    assert train("run", "--logger", "toy_failing_start", "--logger", "toy_recording", "--no-eval") == 0
    err = capsys.readouterr().err
    assert err.count("toy_failing_start") == 1
    assert "failed in starting and was dropped (RuntimeError: cannot reach the server)" in err
    assert load("run")["status"] == "complete" and len(load("run")["logger_errors"]) == 1
    assert len(calls(method="log_scalars")) == 6


def test_a_slow_logger_does_not_hold_up_training(toy_host):
    """Training ends while the logger is still blocked in its first row; the rows
    it has not taken yet wait in the queue and all arrive before the run closes."""
    from disbench.config import ConfigSources
    from disbench.runner import prepare_new_run, train_and_evaluate

    release = threading.Event()
    seen_at_end = []
    original = toy_plugin.RecordingLogger.log_scalars

    def blocked(self, step, row):
        original(self, step, row)
        assert release.wait(30)

    def on_trained(results):
        seen_at_end.append(len(calls(method="log_scalars")))
        release.set()

    toy_plugin.RecordingLogger.log_scalars = blocked
    try:
        sources = ConfigSources(protocol=TOY_PROTOCOL, overrides={"Run.loggers": ("toy_recording",)})
        run_dir = prepare_new_run(Path("run"), sources, "vae")
        train_and_evaluate(run_dir, device="cpu", resume=False, evaluate=False, progress=False,
                           on_trained=on_trained)
    finally:
        toy_plugin.RecordingLogger.log_scalars = original
    assert seen_at_end == [1]
    assert [a[1] for _, _, a in calls(method="log_scalars")] == read_scalars(run_dir / "scalars.jsonl")


def test_a_logger_far_behind_loses_the_oldest_rows_counted_in_results(toy_host, monkeypatch, capsys):
    """With room for 2 queued rows, a logger blocked in its first row (step 5)
    until training ends gets that row and the last two; the 3 dropped between
    are counted in results.json and reported once."""
    from disbench.config import ConfigSources
    from disbench.loggers import hub
    from disbench.runner import prepare_new_run, train_and_evaluate

    monkeypatch.setattr(hub, "MAX_QUEUED_ROWS", 2)
    release = threading.Event()
    original = toy_plugin.RecordingLogger.log_scalars

    def blocked(self, step, row):
        original(self, step, row)
        assert release.wait(30)

    monkeypatch.setattr(toy_plugin.RecordingLogger, "log_scalars", blocked)
    sources = ConfigSources(protocol=TOY_PROTOCOL, overrides={"Run.loggers": ("toy_recording",)})
    run_dir = prepare_new_run(Path("run"), sources, "vae")
    train_and_evaluate(run_dir, device="cpu", resume=False, evaluate=False, progress=False,
                       on_trained=lambda results: release.set())
    assert [a[0] for _, _, a in calls(method="log_scalars")] == [5, 25, 30]
    assert load(run_dir)["logger_dropped"] == {"rows": 3, "images": 0}
    assert capsys.readouterr().err.count("its loggers are falling behind") == 1
    assert calls(method="close")[0][2] == ("complete",)


class _Registry(dict):
    def get(self, name):
        return self[name]


def _info(run_dir: Path) -> RunInfo:
    run_dir.mkdir()
    update_results(run_dir, status="running")
    return RunInfo(run_dir=run_dir, model="vae", seed=0, fingerprint="f", steps=100)


def test_the_queue_drops_the_oldest_rows_and_images_never_metrics_or_close(tmp_path):
    """A logger busy with its config while 7 rows, 3 image sets and a metric
    arrive, with room for 2 rows and 1 image set: the oldest are dropped, the
    training side never waits; the counts are written at once the first time,
    then at most every DROPS_RECORD_SECONDS and at the end, added to an
    earlier process's counts."""
    busy, release, got = threading.Event(), threading.Event(), []

    class Slow(Logger):
        def log_config(self, config):
            got.append(("config",))
            busy.set()
            assert release.wait(30)

        def log_scalars(self, step, row):
            got.append(("row", step))

        def log_metrics(self, step, metrics, *, final):
            got.append(("metrics", step))

        def log_images(self, step, images):
            got.append(("images", step))

        def close(self, status):
            got.append(("close", status))

    stream = io.StringIO()
    info = _info(tmp_path / "run")
    update_results(info.run_dir, logger_dropped={"rows": 5, "images": 1})  # from the process before a resume
    hub = LoggerHub([["slow"]], _Registry(slow=Slow), stream=stream, max_rows=2, max_images=1)
    try:
        hub.start(0, info, {"config_gin": ""})
        assert busy.wait(30)
        started = time.monotonic()
        for step in range(10, 70, 10):
            hub.scalars(0, step, {"step": step})
        for step in (20, 40, 60):
            hub.images(0, step, {"traversal": np.zeros((2, 2, 1), np.float32)})
        hub.metrics(0, 60, {"m": {"score": 1.0}}, final=False)
        assert time.monotonic() - started < 5  # nothing above waited for the logger
        assert hub.dropped() == [{"rows": 4, "images": 2}]
        hub.record_failures()
        assert read_results(info.run_dir)["logger_dropped"] == {"rows": 9, "images": 3}
        hub.scalars(0, 70, {"step": 70})  # one more drop: not written yet (less than 30 s since) ...
        hub.record_failures()
        assert read_results(info.run_dir)["logger_dropped"] == {"rows": 9, "images": 3}
    finally:
        release.set()
    hub.finish(["complete"])
    hub.record_failures()  # ... but at the end
    assert read_results(info.run_dir)["logger_dropped"] == {"rows": 10, "images": 3}
    assert got == [("config",), ("row", 60), ("images", 60), ("metrics", 60), ("row", 70), ("close", "complete")]
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1 and "its loggers are falling behind" in lines[0] and str(info.run_dir) in lines[0]
    assert "logger_errors" not in read_results(info.run_dir)


def test_loggers_not_finished_in_time_are_named_in_results(tmp_path):
    """The end waits for the loggers at most its timeout; each logger that has
    not closed by then is reported and recorded under logger_errors."""
    release = threading.Event()

    class Stuck(Logger):
        def log_scalars(self, step, row):
            assert release.wait(30)

    stream = io.StringIO()
    info = _info(tmp_path / "run")
    hub = LoggerHub([["stuck", "quick"]], _Registry(stuck=Stuck, quick=Logger), stream=stream)
    try:
        hub.start(0, info, {"config_gin": ""})
        hub.scalars(0, 10, {"step": 10})
        hub.scalars(0, 20, {"step": 20})
        started = time.monotonic()
        hub.finish(["complete"], timeout=0.5)
        assert time.monotonic() - started < 5
        errors = hub.record_failures()[0]["logger_errors"]
    finally:
        release.set()
    assert errors == [
        "logger 'quick' did not finish within 0.5 s of the end (waiting behind a busy logger, 2 calls still "
        "queued) and was not waited for; what it had not sent is lost",
        "logger 'stuck' did not finish within 0.5 s of the end (busy in log_scalars at step 10, 2 calls still "
        "queued) and was not waited for; what it had not sent is lost"]
    assert read_results(info.run_dir)["logger_errors"] == errors
    assert stream.getvalue().count("did not finish") == 2


def test_evaluate_sends_its_metrics_to_the_runs_loggers(toy_host, monkeypatch, capsys):
    """A later evaluate: the run's loggers get the evaluated metrics as final
    metrics at the run's last step, then close; --no-loggers sends nothing; a
    logger that fails is reported once and recorded, and the evaluation stands."""
    assert train("run", "--logger", "toy_recording", "--no-eval") == 0
    assert "metrics" not in load("run")
    toy_plugin.RECORDED.clear()
    assert main(["evaluate", "run", "--device", "cpu", "--no-progress"]) == 0
    got = calls()
    assert [m for _, m, _ in got] == ["__init__", "log_metrics", "close"]
    info = got[0][0]
    assert info.evaluation and (info.start_step, info.steps, info.model, info.seed) == (30, 30, "vae", 0)
    assert got[1][2] == (30, load("run")["metrics"], True) and set(load("run")["metrics"]) == {"toy_metric"}
    assert got[2][2] == ("complete",)

    toy_plugin.RECORDED.clear()
    assert main(["evaluate", "run", "--device", "cpu", "--no-progress", "--no-loggers"]) == 0
    assert calls() == []

    def failing(self, step, metrics, *, final):
        raise ConnectionError("server gone")

    monkeypatch.setattr(toy_plugin.RecordingLogger, "log_metrics", failing)
    capsys.readouterr()
    assert main(["evaluate", "run", "--device", "cpu", "--no-progress"]) == 0
    err = [line for line in capsys.readouterr().err.splitlines() if "toy_recording" in line]
    assert len(err) == 1 and ("failed in log_metrics at step 30 and was dropped (ConnectionError: server gone); "
                              "the evaluation goes on") in err[0]
    results = load("run")
    assert results["status"] == "complete" and results["metrics"]["toy_metric"]
    assert len(results["logger_errors"]) == 1 and "'toy_recording'" in results["logger_errors"][0]
    assert not calls(method="close")  # dropped, like in training


@pytest.mark.parametrize("logger, message", [
    ("tensorbord", "unknown logger 'tensorbord'; known: tensorboard, toy_failing"),
    ("toy_unavailable", "logger 'toy_unavailable' needs the toylib package: pip install toylib"),
])
def test_unusable_loggers_are_refused_before_anything_is_made(toy_host, capsys, logger, message):
    assert train("run", "--logger", logger) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not Path("run").exists()
    assert main(["compare", "--models", "vae", "--seeds", "1", "--protocol", TOY_PROTOCOL, "--out", "cmp",
                 "--device", "cpu", "--no-progress", "--logger", logger]) == 2
    assert message in capsys.readouterr().err and not Path("cmp").exists()


def test_run_loggers_must_be_names(toy_host, capsys):
    assert train("run", "--gin_param", "Run.loggers = [3]") == 2
    assert "Run.loggers must be a list of logger names" in capsys.readouterr().err


def test_loggers_are_kept_and_may_change_on_resume(toy_host, monkeypatch, capsys):
    """The run's config keeps Run.loggers, so --resume alone watches it again; a
    resumed run may add or drop loggers (they change nothing in it)."""
    from tests.test_training import interrupted_at_step

    with interrupted_at_step(monkeypatch, 17):  # between the checkpoints at steps 10 and 20
        assert train("run", "--logger", "toy_recording", "--no-eval") == 130
    assert calls(method="close")[-1][2] == ("interrupted",)
    toy_plugin.RECORDED.clear()
    assert main(["train", "--resume", "--out", "run", "--device", "cpu", "--no-progress",
                 "--logger", "toy_recording", "--logger", "tensorboard"]) == 0
    assert calls()[0][0].start_step == 10
    assert calls(method="log_config")[0][2][0]["resumed_from_step"] == 10
    rows = [a[1] for _, _, a in calls(method="log_scalars")]
    assert [r["step"] for r in rows] == [15, 20, 25, 30] and rows == read_scalars(Path("run/scalars.jsonl"))[2:]
    assert "Run.loggers = ('toy_recording', 'tensorboard')" in Path("run/config.gin").read_text()


def test_a_fused_group_gives_each_member_its_own_rows(toy_host):
    assert main(["compare", "--models", "vae", "--seeds", "1-2", "--protocol", TOY_PROTOCOL, "--out", "cmp",
                 "--device", "cpu", "--no-progress", "--no-figures", "--fuse", "2",
                 "--logger", "toy_recording", "--gin_param", "Protocol.image_every = 15"]) == 0
    manifest = json.loads(Path("cmp/compare.json").read_text())
    assert "--logger toy_recording" in manifest["command"]
    for index, seed in enumerate((1, 2)):
        run_dir = Path(f"cmp/runs/vae/seed{seed}")
        mine = calls(run_dir=run_dir)
        info = mine[0][0]
        assert (info.seed, info.group_index, info.group_size, info.name) == (seed, index, 2, f"vae/seed{seed}")
        assert load(run_dir)["execution"]["fused_group"]["index"] == index
        rows = [args[1] for _, m, args in mine if m == "log_scalars"]
        assert rows == read_scalars(run_dir / "scalars.jsonl") and len(rows) == 6
        assert [args[0] for _, m, args in mine if m == "log_images"] == [15, 30]
        assert [args[1] for _, m, args in mine if m == "log_metrics"] == [load(run_dir)["metrics"]]
        assert mine[-1][1:] == ("close", ("complete",))
    first, second = (calls(run_dir=f"cmp/runs/vae/seed{s}", method="log_scalars") for s in (1, 2))
    assert first[0][2][1] != second[0][2][1]  # two members, two different runs


# -- TensorBoard ------------------------------------------------------------------

def _events(folder: Path):
    import tensorboard  # noqa: F401  (in the test extra: missing is a failure, not a skip)
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(str(folder), size_guidance={"scalars": 0, "images": 0, "tensors": 0})
    accumulator.Reload()
    return accumulator


def test_tensorboard_event_files_hold_the_rows_under_the_tables_names(toy_host):
    import tensorboard  # noqa: F401  (in the test extra: missing is a failure, not a skip)
    assert train("run", "--logger", "tensorboard", *IMAGES) == 0
    events = _events(Path("run/tensorboard"))
    tags = events.Tags()
    rows = read_scalars(Path("run/scalars.jsonl"))
    expected = {"recon", "kl", "beta", "loss"} | {f"kl_per_dim/z{j}" for j in range(4)}
    assert expected <= set(tags["scalars"])
    for tag in expected:
        got = events.Scalars(tag)
        assert [e.step for e in got] == [r["step"] for r in rows]
        wanted = [r[tag] if "/" not in tag else r["kl_per_dim"][int(tag.split("z")[-1])] for r in rows]
        np.testing.assert_array_equal([e.value for e in got], np.float32(wanted))
    metrics = load("run")["metrics"]
    assert [e.value for e in events.Scalars("metrics/toy_metric")] == [np.float32(metrics["toy_metric"]["score"])]
    assert "metrics/toy_metric/pos_x" in tags["scalars"]
    assert set(tags["images"]) == {"images/reconstructions", "images/traversal"}
    assert [e.step for e in events.Images("images/traversal")] == [10, 20, 30]


def test_tensorboard_runs_of_a_compare_overlay_under_one_folder(toy_host):
    import tensorboard  # noqa: F401  (in the test extra: missing is a failure, not a skip)
    assert main(["compare", "--models", "vae", "--seeds", "1-2", "--protocol", TOY_PROTOCOL, "--out", "cmp",
                 "--device", "cpu", "--no-progress", "--no-figures", "--logger", "tensorboard"]) == 0
    for seed in (1, 2):
        tags = _events(Path(f"cmp/runs/vae/seed{seed}/tensorboard")).Tags()["scalars"]
        assert {"recon", "kl", "beta", "kl_per_dim/z0"} <= set(tags)


def test_tensorboard_missing_is_one_line_naming_the_extra(toy_host, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # import tensorboard now fails
    assert train("run", "--logger", "tensorboard") == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and 'pip install -e ".[tensorboard]"' in err
    assert not Path("run").exists()


def test_the_tensorboard_logger_is_a_builtin_plugin(toy_host):
    assert toy_host.registry("loggers").source("tensorboard") == "disbench.loggers"
