import gin
import pytest

from disbench.config import (ConfigSources, Protocol, build_protocol, build_run, fingerprint, parse_sources,
                             resolve_protocol)
from disbench.errors import DisbenchError
from tests.conftest import TOY_PROTOCOL


def test_protocol_file_and_overrides(toy_host):
    model = parse_sources(ConfigSources(protocol=TOY_PROTOCOL, gin_params=["Protocol.batch_size = 4"],
                                        overrides={"Protocol.steps": 7, "Run.seed": 3}), model="vae")
    protocol, run = build_protocol(), build_run()
    assert model == "vae" and run.model == "vae" and run.seed == 3
    assert protocol.dataset == "toy_squares" and protocol.batch_size == 4 and protocol.steps == 7


def test_model_chosen_by_gin_binding(toy_host):
    model = parse_sources(ConfigSources(protocol=TOY_PROTOCOL, gin_params=["Run.model = 'betavae_h'"]))
    assert model == "betavae_h" and build_run().model == "betavae_h"


def test_model_defaults_file_is_parsed_first(toy_host, tmp_path, monkeypatch):
    (tmp_path / "gin" / "models").mkdir(parents=True)
    (tmp_path / "gin" / "models" / "betavae_h.gin").write_text("BetaVAEH.beta = 6.0\n")
    monkeypatch.setenv("DISBENCH_GIN_PATH", str(tmp_path / "gin"))
    parse_sources(ConfigSources(protocol=TOY_PROTOCOL), model="betavae_h")
    assert gin.query_parameter("BetaVAEH.beta") == 6.0
    parse_sources(ConfigSources(protocol=TOY_PROTOCOL, gin_params=["BetaVAEH.beta = 2.0"]), model="betavae_h")
    assert gin.query_parameter("BetaVAEH.beta") == 2.0  # the user's binding wins over the model's defaults


def test_protocol_name_resolution(tmp_path, monkeypatch):
    (tmp_path / "gin" / "protocols").mkdir(parents=True)
    (tmp_path / "gin" / "protocols" / "tiny.gin").write_text("Protocol.steps = 3\n")
    monkeypatch.setenv("DISBENCH_GIN_PATH", str(tmp_path / "gin"))
    assert resolve_protocol("tiny").name == "tiny.gin"
    with pytest.raises(DisbenchError, match=r"unknown protocol 'tiyn'.*did you mean 'tiny'"):
        resolve_protocol("tiyn")
    with pytest.raises(DisbenchError, match="does not exist"):
        resolve_protocol(str(tmp_path / "missing.gin"))


def test_gin_errors_name_the_file_and_binding(toy_host, tmp_path):
    bad = tmp_path / "bad.gin"
    bad.write_text("Protocl.steps = 3\n")
    with pytest.raises(DisbenchError) as info:
        parse_sources(ConfigSources(gin_files=[str(bad)]), model="vae")
    assert str(bad) in str(info.value) and "Protocl" in str(info.value) and "did you mean 'Protocol'" in str(info.value)
    with pytest.raises(DisbenchError, match=r"--gin_param 'Protocol.nope = 1'.*nope"):
        parse_sources(ConfigSources(gin_params=["Protocol.nope = 1"]), model="vae")
    broken = tmp_path / "syntax.gin"
    broken.write_text("Protocol.steps = (\n")
    with pytest.raises(DisbenchError, match="syntax.gin"):
        parse_sources(ConfigSources(gin_files=[str(broken)]), model="vae")
    with pytest.raises(DisbenchError, match="does not exist"):
        parse_sources(ConfigSources(gin_files=[str(tmp_path / "nope.gin")]), model="vae")


def test_bad_protocol_values_are_clear_errors(toy_host):
    parse_sources(ConfigSources(gin_params=["Protocol.batch_size = 0"]), model="vae")
    with pytest.raises(DisbenchError, match="Protocol.batch_size must be a positive integer"):
        build_protocol()


def test_no_model_is_an_error(toy_host):
    parse_sources(ConfigSources(protocol=TOY_PROTOCOL))
    with pytest.raises(DisbenchError, match="no model chosen"):
        build_run()


def test_fingerprint_tracks_protocol_owned_settings_only():
    base = Protocol(dataset="toy_squares", steps=10)
    assert fingerprint(base) == fingerprint(Protocol(dataset="toy_squares", steps=10, log_every=7,
                                                     checkpoint_every=3, data_root="/x"))
    assert fingerprint(base) != fingerprint(Protocol(dataset="toy_squares", steps=11))
    assert fingerprint(base) != fingerprint(Protocol(dataset="toy_squares", steps=10, batch_size=64))
    assert fingerprint(base) != fingerprint(Protocol(dataset="toy_squares", steps=10, metrics=("mig",)))
    assert fingerprint(base) != fingerprint(base, {"dataset": {"x": 1}})
