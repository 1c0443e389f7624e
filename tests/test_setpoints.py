"""KL set points (docs/controllers.md): hybrid (step + ramp), step, constant."""

from decimal import Decimal

import gin
import pytest
import torch

from dvae_plugin.setpoints import ConstantSetpoint, HybridAnnealing, StepAnnealing

pytestmark = pytest.mark.numerical  # compared against bounds or bit for bit: run again under AVX2 kernels


# -- hybrid ---------------------------------------------------------------------

def test_hybrid_small_schedule_step_by_step():
    # period 10, ramp 4, step 0.5: each ramp step adds 0.125 (exact in binary).
    # Ramps run over t = 10..13 and 20..23; C holds in between; stop 2 is reached at t = 23.
    sp = HybridAnnealing(start=1.0, stop=2.0, step=0.5, period=10, ramp=4)
    expected = {t: 1.0 for t in range(1, 10)}
    expected.update({10: 1.125, 11: 1.25, 12: 1.375, 13: 1.5})
    expected.update({t: 1.5 for t in range(14, 20)})
    expected.update({20: 1.625, 21: 1.75, 22: 1.875, 23: 2.0})
    expected.update({t: 2.0 for t in range(24, 61)})  # ramps at 30.., 40.., 50.. change nothing
    assert [sp.value(t) for t in expected] == list(expected.values())


def test_hybrid_default_around_every_boundary():
    sp = HybridAnnealing()
    period, ramp, inc = 6000, 1000, 0.15 / 1000
    cases = {
        1: 0.5,
        period - 1: 0.5,
        period: 0.5 + inc,                 # the first ramp step: t >= period and t % period == 0 < ramp
        period + 1: 0.5 + 2 * inc,
        period + ramp - 1: 0.65,           # the ramp's last step completes +0.15
        period + ramp: 0.65,               # t % period == ramp: holding
        2 * period - 1: 0.65,
        2 * period: 0.65 + inc,
        2 * period + ramp - 1: 0.8,
    }
    for t, c in cases.items():
        assert sp.value(t) == pytest.approx(c, abs=1e-12), t


def test_hybrid_cap_reached_mid_ramp_then_held():
    sp = HybridAnnealing(start=1.0, stop=1.3, step=0.5, period=10, ramp=4)
    assert [sp.value(t) for t in (9, 10, 11)] == [1.0, 1.125, 1.25]
    assert [sp.value(t) for t in (12, 13, 20, 10_000, 10**9)] == [1.3] * 5


def test_hybrid_default_first_reaches_stop_exactly_where_decimal_accumulation_does():
    # Independent: walk t = 1, 2, ... and accumulate C exactly (Decimal), as docs/controllers.md words it.
    step_inc, stop = Decimal("0.15") / 1000, Decimal("20")
    c, t, sampled = Decimal("0.5"), 0, {}
    while c < stop:
        t += 1
        if t >= 6000 and t % 6000 < 1000:
            c = min(c + step_inc, stop)
        if t % 997 == 0:
            sampled[t] = c
    first_at_stop = t
    assert first_at_stop == 780_999  # "reaches 20 after about 780,000 steps"

    sp = HybridAnnealing()
    assert sp.value(first_at_stop - 1) < 20.0
    assert sp.value(first_at_stop) == 20.0
    assert sp.value(first_at_stop + 1) == 20.0 and sp.value(1_500_000) == 20.0
    for t, c in sampled.items():  # the closed form agrees with accumulation all along
        assert sp.value(t) == pytest.approx(float(c), abs=1e-9), t


def test_hybrid_is_monotone_and_bounded():
    sp = HybridAnnealing(start=0.5, stop=3.0, step=0.7, period=50, ramp=7)
    values = [sp.value(t) for t in range(1, 1000)]
    assert all(b >= a for a, b in zip(values, values[1:]))
    assert max(values) == 3.0 and min(values) == 0.5


# -- step -----------------------------------------------------------------------

def test_step_annealing_at_multiples_of_period_and_cap():
    sp = StepAnnealing(start=0.5, stop=1.0, step=0.25, period=5)
    assert [sp.value(t) for t in (1, 4)] == [0.5, 0.5]
    assert [sp.value(t) for t in (5, 6, 9)] == [0.75, 0.75, 0.75]
    assert [sp.value(t) for t in (10, 14, 15, 16, 10**6)] == [1.0] * 5  # 0.5 + 3·0.25 capped at 1


def test_step_annealing_defaults():
    sp = StepAnnealing()
    assert sp.value(4999) == 0.5
    assert sp.value(5000) == pytest.approx(0.65, abs=1e-12)
    assert sp.value(649_999) < 20.0 and sp.value(650_000) == 20.0  # 0.5 + 130·0.15


# -- constant -------------------------------------------------------------------

def test_constant_setpoint():
    sp = ConstantSetpoint(3.5)
    assert [sp.value(t) for t in (1, 2, 10**7)] == [3.5] * 3
    assert sp.config == {"name": "constant", "value": 3.5}


# -- interface ------------------------------------------------------------------

@pytest.mark.parametrize("sp", [HybridAnnealing(), StepAnnealing(), ConstantSetpoint(1.0)])
@pytest.mark.parametrize("bad_t", [0, -1, 1.0, True, "1"])
def test_value_refuses_steps_before_one_or_non_integers(sp, bad_t):
    with pytest.raises(ValueError, match="t is a training step"):
        sp.value(bad_t)


def test_configs_record_name_and_arguments():
    assert HybridAnnealing(stop=26.0).config == {"name": "hybrid", "start": 0.5, "stop": 26.0, "step": 0.15,
                                                 "period": 6000, "ramp": 1000}
    assert StepAnnealing(period=100).config == {"name": "step", "start": 0.5, "stop": 20.0, "step": 0.15,
                                                "period": 100}


@pytest.mark.parametrize("sp", [HybridAnnealing(), StepAnnealing(), ConstantSetpoint(1.0)])
def test_state_dict_round_trip_is_trivial_and_safe_to_torch_load(sp, tmp_path):
    path = tmp_path / "sp.pt"
    torch.save(sp.state_dict(), path)
    sp.load_state_dict(torch.load(path, weights_only=True))
    assert sp.state_dict() == {}
    with pytest.raises(ValueError):
        sp.load_state_dict([])


@pytest.mark.parametrize("cls, kwargs, message", [
    (HybridAnnealing, {"start": 5.0, "stop": 4.0}, "HybridAnnealing.stop must be >= start"),
    (HybridAnnealing, {"period": 1000, "ramp": 1000}, "HybridAnnealing.period must be > ramp"),
    (HybridAnnealing, {"ramp": 0}, "HybridAnnealing.ramp must be >= 1"),
    (HybridAnnealing, {"period": 0, "ramp": 1}, "HybridAnnealing.period must be >= 1"),
    (HybridAnnealing, {"period": 6000.0}, "HybridAnnealing.period must be an integer"),
    (HybridAnnealing, {"step": -0.1}, "HybridAnnealing.step must be >= 0"),
    (HybridAnnealing, {"start": -0.5}, "HybridAnnealing.start must be >= 0"),
    (HybridAnnealing, {"stop": float("inf")}, "HybridAnnealing.stop must be a finite number"),
    (HybridAnnealing, {"step": float("nan")}, "HybridAnnealing.step must be a finite number"),
    (StepAnnealing, {"start": 5.0, "stop": 4.0}, "StepAnnealing.stop must be >= start"),
    (StepAnnealing, {"period": 0}, "StepAnnealing.period must be >= 1"),
    (StepAnnealing, {"step": -1.0}, "StepAnnealing.step must be >= 0"),
    (ConstantSetpoint, {"value": -1.0}, "ConstantSetpoint.value must be >= 0"),
    (ConstantSetpoint, {"value": "3"}, "ConstantSetpoint.value must be a finite number"),
])
def test_bad_arguments_fail_at_construction_naming_the_parameter(cls, kwargs, message):
    with pytest.raises(ValueError, match=message):
        cls(**kwargs)


def test_gin_binds_setpoints_by_class_name():
    gin.parse_config("HybridAnnealing.period = 600\nHybridAnnealing.ramp = 100\nConstantSetpoint.value = 7.0")
    assert HybridAnnealing().config["period"] == 600
    assert HybridAnnealing().value(650) == pytest.approx(0.5 + 0.15 * 51 / 100)  # 51 ramp steps: 600..650
    assert ConstantSetpoint().value(1) == 7.0


def test_gin_bad_binding_names_the_parameter():
    gin.parse_config("HybridAnnealing.ramp = 6000")
    with pytest.raises(ValueError, match="HybridAnnealing.period must be > ramp"):
        HybridAnnealing()


# -- on the device: value_tensor ---------------------------------------------------

def _every_step_equal(sp, last: int):
    """value_tensor(t) == value(t), bit for bit, for every t in 1..last (one tensor call)."""
    ts = torch.arange(1, last + 1, dtype=torch.int64)
    on_device = sp.value_tensor(ts)
    assert on_device.dtype == torch.float64 and on_device.shape == ts.shape
    host = torch.tensor([sp.value(t) for t in range(1, last + 1)], dtype=torch.float64)
    differ = (on_device != host).nonzero().flatten()
    assert differ.numel() == 0, [(int(ts[i]), float(on_device[i]), float(host[i])) for i in differ[:5]]


@pytest.mark.parametrize("sp, last", [
    (HybridAnnealing(), 800_000),  # every ramp and hold until past t = 780,999, where C first equals stop
    (HybridAnnealing(start=1.0, stop=1.3, step=0.5, period=10, ramp=4), 200),  # stop reached mid-ramp
    (HybridAnnealing(start=0.5, stop=3.0, step=0.7, period=50, ramp=7), 2_000),  # increments not exact in binary
    (HybridAnnealing(start=0.0, stop=5.0, step=0.1, period=3, ramp=2), 1_000),  # the shortest hold
    (StepAnnealing(), 700_000),  # every step until past t = 650,000, where C reaches stop
    (StepAnnealing(start=0.5, stop=1.0, step=0.25, period=5), 100),
    (StepAnnealing(start=0.3, stop=2.0, step=0.1, period=1), 100),  # a step every step, 0.1 inexact
    (ConstantSetpoint(3.5), 1_000),
])
def test_the_tensor_form_equals_the_host_form_at_every_step(sp, last):
    _every_step_equal(sp, last)


@pytest.mark.parametrize("sp", [HybridAnnealing(), StepAnnealing(), ConstantSetpoint(2.0)])
def test_the_tensor_form_reads_nothing_back(sp):
    # a meta tensor has no data: a host read of it would raise
    c = sp.value_tensor(torch.tensor(7_000, dtype=torch.int64, device="meta"))
    assert c.device.type == "meta" and c.dtype == torch.float64 and c.dim() == 0
    far = sp.value_tensor(torch.tensor(10**12, dtype=torch.int64))  # long after stop: held there
    assert float(far) == sp.value(10**12)
