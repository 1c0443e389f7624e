"""Anti-windup modes of the PI schedulers against hand-computed sequences,
including leaving saturation, on both arithmetic paths and in a group."""

import math

import pytest
import torch

from disbench.schedulers import group_scheduler
from dvae_plugin.pi_scheduler import PIBetaScheduler
from dvae_plugin.positional_pi import PositionalPIBetaScheduler
from dvae_plugin.setpoints import ConstantSetpoint

pytestmark = pytest.mark.numerical  # compared against bounds or bit for bit: run again under AVX2 kernels


def sig_neg(e):
    return 1 / (1 + math.exp(e))


KLS = [0.0, 0.0, 3.0, 3.0]  # C = 1: e = 1, 1, -2, -2


def incremental_by_hand(mode):
    """kp 0.01, ki 0.5, β(0) 0.3, β_min 0.1, window 1, C = 1, written out step by step."""
    kp, ki, b_min = 0.01, 0.5, 0.1
    b = 0.3 + kp * (sig_neg(1) - sig_neg(0)) - ki * 1  # step 1: not saturated: -0.2023
    out = [b]
    # step 2, e = 1 (dP = 0): saturated and e > 0 -> latch and conditional freeze the integral
    b = b + (0.0 if mode in ("latch", "conditional") else -ki * 1)
    out.append(b)
    # step 3, e = -2: latch still freezes (saturated); conditional integrates again (e < 0)
    d_p = kp * (sig_neg(-2) - sig_neg(1))
    b = b + d_p + (0.0 if mode == "latch" else -ki * -2)
    out.append(b)
    # step 4, e = -2 (dP = 0)
    saturated = b < b_min
    b = b + (0.0 if mode == "latch" and saturated else -ki * -2)
    out.append(b)
    return [max(x, b_min) for x in out], out


def positional_by_hand(mode):
    """kp 0.01, ki 0.5, β_min 0.1, window 1, C = 1; w_prev starts at 1, I at 0."""
    kp, ki, b_min = 0.01, 0.5, 0.1
    out, integral, w_prev = [], 0.0, 1.0
    for kl in KLS:
        e = 1.0 - kl
        saturated = w_prev < b_min
        freeze = {"latch": saturated, "conditional": saturated and e > 0, "none": False}[mode]
        integral = integral if freeze else integral - ki * e
        w_prev = kp * sig_neg(e) + b_min + integral
        out.append(w_prev)
    return [max(x, b_min) for x in out], out


@pytest.mark.parametrize("mode", ["latch", "conditional", "none"])
@pytest.mark.parametrize("path", ["float", "tensor"])
def test_incremental_modes_by_hand(mode, path):
    s = PIBetaScheduler(kp=0.01, ki=0.5, beta_init=0.3, beta_min=0.1, window=1,
                        setpoint=ConstantSetpoint(1.0), anti_windup=mode)
    betas, unclamped = incremental_by_hand(mode)
    for kl, beta, raw in zip(KLS, betas, unclamped):
        got = s.step(kl if path == "float" else torch.tensor(kl, dtype=torch.float64))
        assert float(got) == pytest.approx(beta, abs=1e-12)
        assert float(s.scalars()["beta_unclamped"]) == pytest.approx(raw, abs=1e-12)
    if mode == "latch":
        assert betas[2:] == [0.1, 0.1]  # KL > C asks for more β, but the latch holds it at β_min
    else:
        assert betas[3] > 0.5  # the integral acts again: β leaves β_min


@pytest.mark.parametrize("mode", ["latch", "conditional", "none"])
def test_positional_modes_by_hand(mode):
    s = PositionalPIBetaScheduler(kp=0.01, ki=0.5, beta_min=0.1, window=1, setpoint=ConstantSetpoint(1.0),
                                  anti_windup=mode)
    betas, _ = positional_by_hand(mode)
    assert [s.step(kl) for kl in KLS] == pytest.approx(betas, abs=1e-12)


def test_conditional_leaves_saturation_where_latch_stays():
    """A long run: the KL falls short of C (β saturates, undershooting β_min by more
    than kp), then exceeds it."""
    kls = [0.0] * 50 + [5.0] * 200
    finals = {}
    for mode in ("latch", "conditional"):
        s = PIBetaScheduler(kp=0.01, ki=0.1, beta_init=0.13, beta_min=0.1, window=5,
                            setpoint=ConstantSetpoint(1.0), anti_windup=mode)
        finals[mode] = [s.step(kl) for kl in kls][-1]
    assert finals["latch"] < 0.1 + 0.011  # stuck within kp of β_min
    assert finals["conditional"] > 5.0


@pytest.mark.parametrize("mode", ["conditional", "none"])
def test_modes_run_batched_in_a_group_exactly(mode):
    make = lambda ki: PIBetaScheduler(kp=0.01, ki=ki, beta_init=0.3, beta_min=0.1, window=1,  # noqa: E731
                                      setpoint=ConstantSetpoint(1.0), anti_windup=mode)
    group = group_scheduler([make(0.5), make(0.2)])
    alone = [make(0.5), make(0.2)]
    for kl in KLS:
        betas = group.step(torch.tensor([kl, kl]))
        assert all(torch.equal(betas[k], s.step(torch.tensor(kl))) for k, s in enumerate(alone))


def test_members_with_different_modes_are_stepped_one_by_one():
    from disbench.schedulers import PerMemberGroup

    assert isinstance(group_scheduler([PIBetaScheduler(), PIBetaScheduler(anti_windup="conditional")]),
                      PerMemberGroup)


def test_mode_is_recorded_and_checked():
    assert "anti_windup" not in PIBetaScheduler().config  # the default: earlier runs' configs still match
    assert PIBetaScheduler(anti_windup="conditional").config["anti_windup"] == "conditional"
    with pytest.raises(ValueError, match="anti_windup must be one of latch, conditional, none"):
        PIBetaScheduler(anti_windup="clamp")


def test_state_resumes_in_every_mode():
    for mode in ("latch", "conditional", "none"):
        a = PIBetaScheduler(ki=0.5, beta_init=0.3, window=2, setpoint=ConstantSetpoint(1.0), anti_windup=mode)
        for kl in KLS[:2]:
            a.step(torch.tensor(kl, dtype=torch.float64))
        b = PIBetaScheduler(ki=0.5, beta_init=0.3, window=2, setpoint=ConstantSetpoint(1.0), anti_windup=mode)
        b.load_state_dict(a.state_dict())
        for kl in KLS[2:]:
            x = torch.tensor(kl, dtype=torch.float64)
            assert torch.equal(a.step(x), b.step(x))


def test_stability_says_what_the_modes_mean_for_the_analysis(capsys):
    import argparse

    from dvae_plugin.stability.cli import add_parser

    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers())
    args = parser.parse_args(["stability", "--kp", "0.01", "--ki", "0.005", "--a", "0.0004", "--g-prime", "-3.2"])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert "away from saturation" in out and "'conditional'" in out and "'latch'" in out and "'none'" in out
