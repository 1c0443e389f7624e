"""The Python API (issue 16): disbench.load_run and disbench.load_compare."""

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import disbench
from disbench.cli import main
from disbench.errors import DisbenchError
from disbench.execution import SETTINGS
from disbench.training.scalars import read_scalars
from tests import toy_plugin
from tests.conftest import TOY_PROTOCOL


def train(out, *extra):
    assert main(["train", "--model", "vae", "--protocol", TOY_PROTOCOL, "--out", str(out), "--device", "cpu",
                 "--no-progress", "--seed", "4", *extra]) == 0
    return Path(out)


def load(run_dir):
    return json.loads((Path(run_dir) / "results.json").read_text())


def test_load_run_gives_the_model_its_config_results_and_logs(toy_host):
    train("run", "--gin_param", "Protocol.eval_every = 15")
    run = disbench.load_run("run")
    assert isinstance(run.model, torch.nn.Module) and not run.model.training
    assert (run.model_name, run.seed, run.latent_dim) == ("vae", 4, 4)
    assert run.protocol.steps == 30 and run.protocol.dataset == "toy_squares" and run.settings.model == "vae"
    assert run.config_text == Path("run/config.gin").read_text()
    assert run.results == load("run") and run.metrics == load("run")["metrics"]
    assert run.scalars == read_scalars(Path("run/scalars.jsonl")) and len(run.scalars) == 6
    assert [r["step"] for r in run.metrics_log] == [15, 30]
    assert run.device == torch.device("cpu") and "vae seed 4" in repr(run)
    weights = torch.load("run/checkpoint.pt", weights_only=True)["model"]
    assert all(torch.equal(weights[k], v) for k, v in run.model.state_dict().items())


def test_encodings_equal_the_ones_evaluate_used(toy_host):
    """run.encode gives exactly the (μ, log σ²) the evaluation encodes (its
    Representation, as evaluate_model builds it), and the run's metric scored on
    run.encode's codes is the score in results.json."""
    from disbench.trained import load_trained
    from disbench.metrics import Representation

    train("run")
    trained = load_trained(Path("run"))
    mu_eval, logvar_eval = Representation(trained.model.encode, trained.dataset.images, device="cpu").encode()

    run = disbench.load_run("run")
    images = run.dataset.images                       # (72, 1, 64, 64) uint8 tensor
    mu, logvar = run.encode(images.numpy())            # numpy in, numpy out
    assert isinstance(mu, np.ndarray) and mu.dtype == np.float32 and mu.shape == (72, 4)
    np.testing.assert_array_equal(mu, mu_eval)
    np.testing.assert_array_equal(logvar, logvar_eval)
    mu_t, logvar_t = run.encode(images)                # tensor in, tensors out
    assert isinstance(mu_t, torch.Tensor) and torch.equal(mu_t, torch.from_numpy(mu_eval))
    assert torch.equal(run.encode(images.float() / 255)[0], mu_t)     # float in [0, 1]
    assert torch.equal(run.encode(images.permute(0, 2, 3, 1))[0], mu_t)  # (N, H, W, C)
    assert torch.equal(run.encode(images[:, 0])[0], mu_t)             # (N, H, W)
    np.testing.assert_allclose(run.encode(images, batch_size=5)[0], mu_t, rtol=1e-5, atol=1e-6)
    one = run.encode(images[7].numpy())
    assert one[0].shape == (4,)
    np.testing.assert_allclose(one[0], mu[7], rtol=1e-5, atol=1e-6)

    class FromApi:  # the representation interface, fed by run.encode
        def __len__(self):
            return len(images)

        def encode(self, indices=None):
            chosen = images if indices is None else images[torch.as_tensor(np.asarray(indices))]
            return run.encode(chosen.numpy())

        codes = lambda self, indices=None: self.encode(indices)[0]  # noqa: E731

    score = toy_plugin.ToyMetric()(FromApi(), run.dataset, seed=4)["score"]
    assert score == load("run")["metrics"]["toy_metric"]["score"]


def test_decode_and_traverse(toy_host):
    from disbench.models.traversal import traverse

    train("run", "--no-eval")
    run = disbench.load_run("run")
    images = run.dataset.images[:6]
    mu, _ = run.encode(images)
    decoded = run.decode(mu)
    assert isinstance(decoded, torch.Tensor) and decoded.shape == (6, 1, 64, 64)
    assert torch.equal(decoded, torch.sigmoid(run.model.decode(mu)).detach())
    assert 0.0 <= float(decoded.min()) and float(decoded.max()) <= 1.0
    as_numpy = run.decode(mu.numpy())
    assert isinstance(as_numpy, np.ndarray) and np.array_equal(as_numpy, decoded.numpy())
    assert run.decode(mu[0]).shape == (1, 64, 64)

    image = images[2]
    tiles = run.traverse(image, 1, [-2.0, 0.0, 2.0])
    assert isinstance(tiles, torch.Tensor) and tiles.shape == (3, 1, 64, 64)
    np.testing.assert_array_equal(tiles.numpy(), traverse(run.model, image, [1], [-2.0, 0.0, 2.0])[0])
    # the latent set to its own encoder mean: the image's plain reconstruction
    at_mean = run.traverse(image.numpy(), 1, [float(mu[2, 1])])
    assert isinstance(at_mean, np.ndarray)
    np.testing.assert_allclose(at_mean[0], decoded[2].numpy(), rtol=1e-5, atol=1e-6)
    assert run.traverse(image, [0, 3]).shape == (2, 10, 1, 64, 64)  # default values: 10 from -3 to 3
    assert not np.array_equal(tiles[0].numpy(), tiles[2].numpy())

    for call, message in ((lambda: run.traverse(image, 4), "latent 4 is not one of 0 … 3"),
                          (lambda: run.traverse(images, 0), "expected one image, got 6"),
                          (lambda: run.decode(np.zeros((2, 5))), "expected codes of shape (N, 4)"),
                          (lambda: run.encode(np.zeros((2, 3, 64, 64))), "1-channel 64x64 images"),
                          (lambda: run.encode(np.full((2, 1, 64, 64), 2.0)), "float images must lie in [0, 1]"),
                          (lambda: run.encode(images, batch_size=0), "batch_size must be a positive integer")):
        with pytest.raises(DisbenchError, match=None) as info:
            call()
        assert message in str(info.value) and "\n" not in str(info.value)


def _one_line_refusal(path, *expected):
    with pytest.raises(DisbenchError) as info:
        disbench.load_run(path)
    text = str(info.value)
    assert "\n" not in text and all(e in text for e in expected), text


def test_load_run_refuses_what_is_not_a_complete_run(toy_host, tmp_path):
    _one_line_refusal("nowhere", "nowhere is not a directory")
    Path("empty").mkdir()
    _one_line_refusal("empty", "is not a disbench run directory")
    train("run", "--no-eval")
    results = load("run")
    Path("run/results.json").write_text(json.dumps({**results, "status": "running"}))
    _one_line_refusal("run", "is not a finished run (status 'running')")
    Path("run/results.json").write_text(json.dumps(results))
    Path("run/checkpoint.pt").rename("run/kept.pt")
    _one_line_refusal("run", "no checkpoint at run/checkpoint.pt")


class _Payload:  # unpickling this would run os.system
    def __reduce__(self):
        import os

        return (os.system, (f"touch {Path.cwd() / 'PWNED'}",))


def test_load_run_never_unpickles(toy_host):
    train("run", "--no-eval")
    state = torch.load("run/checkpoint.pt", weights_only=True)
    state["extra"] = _Payload()
    torch.save(state, "run/checkpoint.pt")
    _one_line_refusal("run", "holds Python objects other than tensors", "refused")
    assert not Path("PWNED").exists()


def test_load_run_never_executes_gin_imports(toy_host, monkeypatch, tmp_path):
    train("run", "--no-eval")
    (tmp_path / "evil_module.py").write_text("open('IMPORTED', 'w').close()\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    config = Path("run/config.gin")
    config.write_text("import evil_module\n" + config.read_text())
    _one_line_refusal("run", "imports module 'evil_module' (line 1)", "refused")
    assert not Path("IMPORTED").exists() and "evil_module" not in sys.modules


def test_import_disbench_stays_light():
    code = "import sys, disbench; print(sorted(m for m in ('torch', 'numpy', 'gin') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# -- load_compare -------------------------------------------------------------------

def _csv_rows(path):
    def value(key, text):
        if key in ("mean", "std", "median", "q1", "q3"):
            return float(text) if text else None
        if key in ("n", "failed"):
            return int(text)
        if key == "seeds":
            return [int(seed) for seed in text.split()]
        return text or None

    with open(path) as f:
        return [{k: value(k, v) for k, v in row.items()} for row in csv.DictReader(f)]


def test_load_compare_gives_the_rows_of_table_csv(toy_host):
    assert main(["compare", "--models", "vae,betavae_h", "--seeds", "1-2", "--protocol", TOY_PROTOCOL,
                 "--out", "cmp", "--steps", "10", "--device", "cpu", "--no-progress", "--no-figures"]) == 0
    rows = disbench.load_compare("cmp")
    assert rows == _csv_rows("cmp/table.csv")
    assert {r["model"] for r in rows} == {"vae", "betavae_h"}
    score = next(r for r in rows if r["model"] == "vae" and r["metric"] == "toy_metric" and r["column"] == "score")
    assert score["representation"] == "mean" and score["n"] == 2 and score["seeds"] == [1, 2]
    scores = [load(f"cmp/runs/vae/seed{s}")["metrics"]["toy_metric"]["score"] for s in (1, 2)]
    assert score["mean"] == pytest.approx(np.mean(scores)) and score["std"] == pytest.approx(np.std(scores, ddof=1))
    assert [score[k] for k in ("q1", "median", "q3")] == pytest.approx(list(np.percentile(scores, [25, 50, 75])))
    final = [r for r in rows if r["metric"] == "final"]
    assert {r["column"] for r in final} == {"recon", "kl", "beta"} and all(r["representation"] is None for r in final)

    import pandas  # noqa: F401  (in the test extra: missing is a failure, not a skip)
    frame = disbench.load_compare("cmp", as_dataframe=True)
    assert list(frame.columns) == ["model", "metric", "representation", "column", "mean", "std", "median", "q1", "q3",
                                   "n", "failed",
                                   "seeds", *(f"exec_{name}" for name in SETTINGS)]
    assert set(frame["exec_backend"]) == {"local"} and set(frame["exec_group_size"]) == {"1"}
    assert len(frame) == len(rows) and frame.equals(rows.to_pandas())


def test_load_compare_refusals(toy_host, monkeypatch):
    for path, message in (("nowhere", "nowhere is not a directory"),):
        with pytest.raises(DisbenchError, match=message):
            disbench.load_compare(path)
    Path("empty").mkdir()
    with pytest.raises(DisbenchError, match="empty is not a compare directory"):
        disbench.load_compare("empty")
    monkeypatch.setitem(sys.modules, "pandas", None)
    from disbench.api import CompareRows

    with pytest.raises(DisbenchError, match=r'pip install -e "\.\[pandas\]"'):
        CompareRows([]).to_pandas()


def test_load_run_reads_no_images_until_the_dataset_is_asked_for(toy_host, monkeypatch):
    """Loading a run costs about the model: the dataset (gigabytes for the real ones) is built
    the first time ``run.dataset`` is read, from the run's own config (whatever gin holds then)."""
    import disbench.builders as builders
    import disbench.trained as trained

    assert main(["train", "--model", "vae", "--protocol", TOY_PROTOCOL, "--out", "run", "--steps", "5",
                 "--device", "cpu", "--no-progress", "--no-eval"]) == 0
    built, real = [], builders.build_dataset
    monkeypatch.setattr(trained, "build_dataset", lambda protocol: built.append(protocol.dataset) or real(protocol))
    monkeypatch.setattr(builders, "build_dataset", lambda protocol: built.append(protocol.dataset) or real(protocol))
    run = disbench.load_run("run")
    assert built == [] and run.encode(np.zeros((2, 64, 64, 1), dtype=np.uint8))[0].shape == (2, 4)
    assert run.dataset.images.shape == (72, 1, 64, 64) and built == ["toy_squares"]
    assert run.dataset is run.dataset and built == ["toy_squares"]  # built once
