"""The positional PI β scheduler of ControlVAE / DynamicVAE-P (docs/controllers.md).

The float/tensor, checkpoint and sync-free tests of the machinery it shares
with PIBetaScheduler run for both classes in test_pi_scheduler.py.
"""

import math
import random

import gin
import pytest
import torch

from dvae_plugin.positional_pi import PositionalPIBetaScheduler
from dvae_plugin.setpoints import ConstantSetpoint, StepAnnealing

pytestmark = pytest.mark.numerical  # compared against bounds or bit for bit: run again under AVX2 kernels


def test_first_steps_by_hand():
    # Kp 0.4, Ki 0.2, β_min 0.5, window 2, C = 1; I starts at 0, w_prev at 1; σ(−e) = 1/(1+e^e).
    s = PositionalPIBetaScheduler(kp=0.4, ki=0.2, beta_min=0.5, window=2, setpoint=ConstantSetpoint(1.0))
    expected = [
        # kl,  y,   e,    I after,  w stored (un-clamped),  β returned
        # t=1: window [0.4, 0] (zero fill): y = 0.2, e = 0.8; P = 0.4·σ(−0.8) + 0.5 = 0.4·0.310025518872 + 0.5
        #      w_prev = 1 >= 0.5, so I = 0 − 0.2·0.8 = −0.16;  w = 0.624010207549 − 0.16
        (0.4, 0.2, 0.8, -0.16, 0.464010207549, 0.5),   # stored below β_min, returned clamped
        # t=2: y = 0.4, e = 0.6; P = 0.4·0.354343693774 + 0.5; w_prev = 0.464 < 0.5 → I frozen at −0.16
        #      (keyed on the un-clamped w: the returned 0.5 would not have frozen it)
        (0.4, 0.4, 0.6, -0.16, 0.481737477510, 0.5),
        # t=3: window [3.0, 0.4]: y = 1.7, e = −0.7; P = 0.4·0.668187772168 + 0.5 = 0.767275108867
        #      w_prev = 0.482 < 0.5 → I still frozen, yet P alone lifts w above β_min
        (3.0, 1.7, -0.7, -0.16, 0.607275108867, 0.607275108867),
        # t=4: y = 3, e = −2; w_prev = 0.607 >= 0.5 → I = −0.16 + 0.2·2 = 0.24; P = 0.852318831191
        (3.0, 3.0, -2.0, 0.24, 1.092318831191, 1.092318831191),
        # t=5: same error, the integral keeps acting: I = 0.64
        (3.0, 3.0, -2.0, 0.64, 1.492318831191, 1.492318831191),
    ]
    for t, (kl, y, e, integral, stored, returned) in enumerate(expected, start=1):
        beta = s.step(kl)
        sc = s.scalars()
        assert sc["kl_avg"] == pytest.approx(y, abs=1e-12), t
        assert sc["error"] == pytest.approx(e, abs=1e-12), t
        assert sc["integral"] == pytest.approx(integral, abs=1e-12), t
        assert sc["beta_unclamped"] == pytest.approx(stored, abs=1e-11), t
        assert beta == pytest.approx(returned, abs=1e-11), t


def test_first_step_with_controlvae_defaults():
    # window 1, C(1) = 0.5, β_min 1, w_prev = 1 is not < 1 so the integral acts at once
    e = 0.5 - 0.3
    assert PositionalPIBetaScheduler().step(0.3) == pytest.approx(
        0.01 / (1 + math.exp(e)) + 1.0 - 0.001 * e, abs=1e-12)


def test_anti_windup_latches_once_the_integral_is_below_minus_kp():
    # A consequence of docs/controllers.md as written (not of ControlVAE's code, which freezes on w < 0):
    # with w_prev < β_min the integral is frozen, and if I <= −kp then w = kp·σ(−e) + β_min + I
    # < β_min whatever e is, so it stays frozen and β stays at β_min even for KL far above C.
    s = PositionalPIBetaScheduler(kp=0.01, ki=0.01, beta_min=1.0, window=1, setpoint=ConstantSetpoint(5.0))
    for _ in range(3):  # KL far below C: I = −0.05, −0.10, ... then frozen
        s.step(0.0)
    assert s.scalars()["integral"] < -0.01
    assert [s.step(1000.0) for _ in range(100)] == [1.0] * 100
    assert s.scalars()["beta_unclamped"] < 1.0


def reference_positional_pi(kls, *, kp, ki, beta_min, window, start, stop, step, period):
    """docs/controllers.md with §5's step set point as a plain loop: a list of all KLs, C accumulated."""
    history, c, integral, w_prev = [], start, 0.0, 1.0
    betas, branches = [], {"frozen": 0, "integrating": 0, "clamped": 0}
    for t, kl in enumerate(kls, start=1):
        if t % period == 0:
            c = min(c + step, stop)
        history.append(kl)
        e = c - sum(history[-window:]) / window
        p = kp / (1 + math.exp(e)) + beta_min
        if w_prev < beta_min:
            branches["frozen"] += 1
        else:
            integral -= ki * e
            branches["integrating"] += 1
        w_prev = p + integral
        branches["clamped"] += w_prev < beta_min
        betas.append(max(w_prev, beta_min))
    return betas, branches


def test_matches_independent_reimplementation_over_20000_steps():
    steps = dict(start=0.5, stop=6.0, step=0.5, period=700)
    gains = dict(kp=0.01, ki=0.001, beta_min=1.0, window=3)
    sp = StepAnnealing(**steps)
    rng = random.Random(8)
    # KL above C for long stretches, then below: β climbs, then falls back to the floor.
    # The swing is drawn so that I does not sink below −kp (that latches, see the test above).
    kls, drift = [], 0.0
    for t in range(1, 20_001):
        drift = 0.6 * math.sin(2 * math.pi * t / 2500) - 0.15
        kls.append(max(0.0, sp.value(t) + drift + rng.gauss(0, 0.05)))
    expected, branches = reference_positional_pi(kls, **gains, **steps)
    assert min(branches.values()) > 300, branches

    s = PositionalPIBetaScheduler(**gains, setpoint=sp)
    got = [s.step(kl) for kl in kls]
    assert max(abs(a - b) for a, b in zip(got, expected)) < 1e-9


def test_config_and_gin():
    assert PositionalPIBetaScheduler().config == {
        "name": "positional_pi", "kp": 0.01, "ki": 0.001, "beta_min": 1.0, "window": 1,
        "setpoint": {"name": "step", "start": 0.5, "stop": 20.0, "step": 0.15, "period": 5000}}
    gin.clear_config()
    try:
        gin.parse_config("PositionalPIBetaScheduler.ki = 0.002\nPositionalPIBetaScheduler.window = 5")
        config = PositionalPIBetaScheduler().config
        assert (config["ki"], config["window"]) == (0.002, 5)
    finally:
        gin.clear_config()


def test_tensor_scalars_include_the_integral():
    s = PositionalPIBetaScheduler()
    s.step(torch.tensor(0.3, dtype=torch.float64))
    sc = s.scalars()
    assert set(sc) == {"setpoint", "kl_avg", "error", "beta_unclamped", "integral"}
    assert all(isinstance(v, torch.Tensor) for v in sc.values())
    assert sc["integral"].item() == pytest.approx(-0.001 * 0.2)


@pytest.mark.parametrize("kwargs, message", [
    ({"kp": 0.0}, "PositionalPIBetaScheduler.kp must be > 0"),
    ({"ki": 0.0}, "PositionalPIBetaScheduler.ki must be > 0"),
    ({"ki": -0.001}, r"PositionalPIBetaScheduler.ki must be > 0, got -0.001"),
    ({"beta_min": 0.0}, "PositionalPIBetaScheduler.beta_min must be > 0"),
    ({"window": 0}, "PositionalPIBetaScheduler.window must be >= 1"),
    ({"window": "5"}, "PositionalPIBetaScheduler.window must be an integer"),
    ({"kp": float("inf")}, "PositionalPIBetaScheduler.kp must be a finite number"),
])
def test_bad_arguments_fail_at_construction(kwargs, message):
    with pytest.raises(ValueError, match=message):
        PositionalPIBetaScheduler(**kwargs)
