"""Batched schedulers: one object steps the schedulers of a group's K members
and equals K independent schedulers exactly."""

import pytest
import torch

from disbench.control import ClosedLoopGroup
from disbench.schedulers import ConstantBeta, ConstantGroup, PerMemberGroup, group_scheduler
from dvae_plugin.pi_scheduler import PIBetaScheduler
from dvae_plugin.positional_pi import PositionalPIBetaScheduler
from dvae_plugin.setpoints import HybridAnnealing, StepAnnealing

pytestmark = pytest.mark.numerical  # compared against bounds or bit for bit: run again under AVX2 kernels


def members(kind):
    if kind == "pi_ki_grid":  # a grid of Ki, one set point
        return [PIBetaScheduler(ki=ki, beta_init=20.0, setpoint=HybridAnnealing(period=7, ramp=3, step=1.0))
                for ki in (0.005, 0.01, 0.02)]
    if kind == "pi_setpoint_grid":  # set points that differ: C(t) per member
        return [PIBetaScheduler(beta_init=b, setpoint=HybridAnnealing(period=7, ramp=3, step=1.0, stop=s))
                for b, s in ((20.0, 2.0), (30.0, 3.0), (5.0, 9.0))]
    return [PositionalPIBetaScheduler(kp=kp, ki=0.01, window=3, setpoint=StepAnnealing(period=5, step=0.5))
            for kp in (0.01, 0.05)]


def kl_sequence(k, steps=60):
    g = torch.Generator().manual_seed(0)
    return torch.rand(steps, k, generator=g, dtype=torch.float64) * 4


@pytest.mark.parametrize("kind", ["pi_ki_grid", "pi_setpoint_grid", "positional"])
def test_the_batched_group_equals_independent_schedulers_exactly(kind):
    group = group_scheduler(members(kind))
    assert isinstance(group, ClosedLoopGroup)
    alone = members(kind)
    kls = kl_sequence(len(alone))
    for t, kl in enumerate(kls):
        betas = group.step(kl.float())
        for k, s in enumerate(alone):
            assert torch.equal(betas[k], s.step(kl[k].float())), (t, k)
        scalars = group.scalars()
        for k, s in enumerate(alone):
            for name, value in s.scalars().items():
                assert torch.equal(scalars[name][k], torch.as_tensor(value, dtype=torch.float64)), (t, name)
    for state, s in zip(group.member_state_dicts(), alone):
        theirs = s.state_dict()
        assert state.keys() == theirs.keys()
        for key, value in theirs.items():
            assert (torch.equal(state[key], value) if isinstance(value, torch.Tensor) else state[key] == value), key


def test_a_group_resumes_from_its_members_states_exactly():
    kind = "pi_ki_grid"
    whole, first = group_scheduler(members(kind)), group_scheduler(members(kind))
    kls = kl_sequence(3)
    for kl in kls[:20]:
        whole.step(kl.float())
        first.step(kl.float())
    resumed = group_scheduler(members(kind))
    resumed.load_member_state_dicts(first.member_state_dicts())
    for kl in kls[20:]:
        assert torch.equal(whole.step(kl.float()), resumed.step(kl.float()))
    # and a member's state resumes it alone, as an ordinary run
    alone = members(kind)[1]
    alone.load_state_dict(whole.member_state_dicts()[1])
    assert alone.t == 60 and torch.equal(alone.state_dict()["beta_prev"], whole.member_state_dicts()[1]["beta_prev"])


def test_a_large_group_equals_its_members_alone_bit_for_bit():
    """16 and 33 members: more than the CPU's vector blocks, where ATen's float64 exp would
    differ from libm's for some members (the law's sigmoid keeps every member on one path)."""
    for size in (16, 33):
        def make():
            return [PIBetaScheduler(ki=0.001 * (k + 1), kp=0.5, beta_init=5.0, window=2,
                                    setpoint=HybridAnnealing(period=7, ramp=3, step=1.0)) for k in range(size)]

        group, alone = group_scheduler(make()), make()
        for kl in kl_sequence(size, 80):
            betas = group.step(kl)
            assert all(torch.equal(betas[k], s.step(kl[k])) for k, s in enumerate(alone)), size


def test_members_with_different_windows_are_stepped_one_by_one():
    schedulers = [PIBetaScheduler(window=w) for w in (1, 5)]
    group = group_scheduler(schedulers)
    assert isinstance(group, PerMemberGroup)
    alone = [PIBetaScheduler(window=w) for w in (1, 5)]
    for kl in kl_sequence(2, 10):
        betas = group.step(kl.float())
        assert all(torch.equal(betas[k], s.step(kl[k].float())) for k, s in enumerate(alone))


def test_a_third_party_scheduler_works_in_a_group_unchanged():
    import cyclical_beta as cyclical  # examples/third_party_scheduler (installed by the test command)

    group = group_scheduler([cyclical.CyclicalBeta(period=4), cyclical.CyclicalBeta(period=6)])
    assert isinstance(group, PerMemberGroup)
    alone = [cyclical.CyclicalBeta(period=4), cyclical.CyclicalBeta(period=6)]
    for kl in kl_sequence(2, 12):
        betas = group.step(kl.float())
        assert all(float(betas[k]) == float(s.step(kl[k].float())) for k, s in enumerate(alone))
    assert group.member_state_dicts() == [a.state_dict() for a in alone]


def test_constant_betas_are_one_tensor_made_once():
    group = group_scheduler([ConstantBeta(1.0), ConstantBeta(4.0)])
    assert isinstance(group, ConstantGroup)
    first = group.step(torch.zeros(2))
    assert first.tolist() == [1.0, 4.0] and group.step(torch.ones(2)) is first


@pytest.mark.parametrize("kind", ["pi_ki_grid", "pi_setpoint_grid", "positional"])
def test_a_group_steps_on_the_device_in_place_reading_nothing_back(kind):
    """Everything a step reads lives on the KL's device and is updated in place: on
    meta tensors (no data: any host read raises) the group steps, with the same
    tensors before and after — what a compiled or captured step needs."""
    group = group_scheduler(members(kind))
    assert group.capturable
    kl = torch.rand(len(group), dtype=torch.float32, device="meta")
    group.step(kl)
    before = [(id(t), t.device.type) for t in group.state_tensors()]
    for _ in range(9):
        beta = group.step(kl)
    assert beta.device.type == "meta" and beta.shape == (len(group),)
    assert [(id(t), t.device.type) for t in group.state_tensors()] == before == [(id(t), "meta") for t in
                                                                                  group.state_tensors()]
    assert all(v.device.type == "meta" for v in group.scalars().values())


@pytest.mark.parametrize("kind", ["float", "tensor"])
def test_a_group_loads_the_states_single_runs_save_and_continues_them_exactly(kind):
    """The members' states keep the layout every checkpoint so far holds (a single
    scheduler's state_dict, on the float or the tensor path): a group loads them and
    continues each member exactly as the single scheduler does."""
    kls = kl_sequence(3, 40)
    singles = members("pi_setpoint_grid")
    for kl in kls[:13]:
        for k, s in enumerate(singles):
            s.step(float(kl[k]) if kind == "float" else kl[k])
    group = group_scheduler(members("pi_setpoint_grid"))
    group.load_member_state_dicts([s.state_dict() for s in singles])
    for kl in kls[13:]:
        betas = group.step(kl)
        for k, s in enumerate(singles):
            expected = s.step(kl[k]) if kind == "tensor" else s.step(float(kl[k]))
            assert float(betas[k]) == float(expected)
    for state, s in zip(group.member_state_dicts(), singles):
        assert state["t"] == s.t == 40 and state["window_pos"] == s.state_dict()["window_pos"]


class HostOnlySetpoint:
    """A third party's set point with only the host form ``value(t)``."""

    config = {"name": "host_only"}

    def value(self, t):
        return 0.5 + 0.25 * (t // 4)


def test_a_set_point_without_a_tensor_form_still_works_in_a_group():
    def make():
        return [PIBetaScheduler(ki=ki, setpoint=HostOnlySetpoint()) for ki in (0.005, 0.01)]

    group, alone = group_scheduler(make()), make()
    assert isinstance(group, ClosedLoopGroup) and not group.capturable
    for kl in kl_sequence(2, 20):
        betas = group.step(kl)
        assert all(torch.equal(betas[k], s.step(kl[k])) for k, s in enumerate(alone))
    assert torch.equal(group.scalars()["setpoint"], torch.full((2,), HostOnlySetpoint().value(20),
                                                               dtype=torch.float64))
