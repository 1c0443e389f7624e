"""Mixed scheduler groups: the members of a fused group may have schedulers of several
classes (runs of different models); each class is batched, the whole can be captured,
and every member equals its scheduler stepped alone, bit for bit."""

from pathlib import Path

import pytest
import torch

from disbench.config import ConfigSources
from disbench.control import ClosedLoopGroup
from disbench.plugins import get_registry
from disbench.runner import prepare_new_run, train_and_evaluate, train_and_evaluate_group
from disbench.schedulers import ConstantGroup, MixedGroup, PerMemberGroup, group_scheduler
from disbench.training.loop import _instantaneous
from disbench.training.scalars import read_scalars
from tests.conftest import TOY_PROTOCOL
from tests.test_compiled_step import compile_counters

pytestmark = pytest.mark.numerical  # compared bit for bit: run again under AVX2 kernels

STEPS = 200


def make(third_party=False):
    """ConstantBeta(1), a PI, a positional PI, ConstantBeta(4), a PI with other gains and
    set point (and, with ``third_party``, the example's cyclical β, which has no stack_group)."""
    schedulers, setpoints = get_registry("schedulers"), get_registry("setpoints")
    constant, pi, positional = (schedulers.get(n) for n in ("constant", "pi", "positional_pi"))
    hybrid, step = setpoints.get("hybrid"), setpoints.get("step")
    members = [constant(1.0), pi(ki=0.01, beta_init=20.0, setpoint=hybrid(period=7, ramp=3, step=1.0)),
               positional(kp=0.05, ki=0.01, window=3, setpoint=step(period=5, step=0.5)), constant(4.0),
               pi(kp=0.5, ki=0.02, beta_init=5.0, setpoint=hybrid(period=11, ramp=2, step=0.5, stop=3.0))]
    if third_party:
        import cyclical_beta  # examples/third_party_scheduler (installed by the test command)

        members.insert(2, cyclical_beta.CyclicalBeta(period=6))
    return members


def kl_trace(k, steps=STEPS):
    g = torch.Generator().manual_seed(0)
    return (torch.rand(steps, k, generator=g, dtype=torch.float64) * 4).float()


def alone(schedulers):
    """Each member's scheduler as a group of one: what its run steps when trained alone."""
    return [group_scheduler([s]) for s in schedulers]


def assert_steps_like_alone(group, singles, kls):
    for t, kl in enumerate(kls):
        betas = group.step(kl)
        assert betas.shape == kl.shape and betas.dtype == kl.dtype
        for k, single in enumerate(singles):
            assert torch.equal(betas[k:k + 1], single.step(kl[k:k + 1])), (t, k)


def assert_same_states(states, theirs):
    assert len(states) == len(theirs)
    for k, (state, their) in enumerate(zip(states, theirs)):
        assert state.keys() == their.keys(), k
        for key, value in their.items():
            same = torch.equal(state[key], value) if isinstance(value, torch.Tensor) else state[key] == value
            assert same, (k, key)


def test_a_mixed_group_batches_each_class_and_equals_its_members_alone(full_host):
    group, singles = group_scheduler(make()), alone(make())
    assert isinstance(group, MixedGroup) and len(group) == 5
    assert [type(p) for p in group.parts] == [ConstantGroup, ClosedLoopGroup, ClosedLoopGroup]
    assert group.slots == [[0, 3], [1, 4], [2]]  # by class, in member order
    assert_steps_like_alone(group, singles, kl_trace(5))
    states = group.member_state_dicts()
    assert_same_states(states, [s.member_state_dicts()[0] for s in singles])
    assert states[1]["t"] == STEPS and states[1]["beta_prev"] != states[4]["beta_prev"]


def test_one_class_is_grouped_as_before(full_host):
    pi = get_registry("schedulers").get("pi")
    assert isinstance(group_scheduler([pi(ki=0.01), pi(ki=0.02)]), ClosedLoopGroup)
    assert isinstance(group_scheduler([pi(window=1), pi(window=5)]), PerMemberGroup)


def test_a_mixed_group_resumes_from_its_members_states(full_host):
    kls = kl_trace(5)
    whole, first = group_scheduler(make()), group_scheduler(make())
    for kl in kls[:80]:
        assert torch.equal(whole.step(kl), first.step(kl))
    states = first.member_state_dicts()
    resumed = group_scheduler(make())
    resumed.load_member_state_dicts(states)
    for kl in kls[80:]:
        assert torch.equal(whole.step(kl), resumed.step(kl))
    assert_same_states(resumed.member_state_dicts(), whole.member_state_dicts())
    # each state is its own member's: it resumes that member alone, as an ordinary run's checkpoint
    singles = alone(make())
    for single, state in zip(singles, states):
        single.load_member_state_dicts([state])
    assert_steps_like_alone(first, singles, kls[80:])


def test_capturable_only_when_every_class_is_and_correct_either_way(full_host):
    assert group_scheduler(make()).capturable
    group, singles = group_scheduler(make(third_party=True)), alone(make(third_party=True))
    assert isinstance(group.parts[2], PerMemberGroup) and group.slots[2] == [2]
    assert not group.capturable
    assert_steps_like_alone(group, singles, kl_trace(6, 60))
    assert_same_states(group.member_state_dicts(), [s.member_state_dicts()[0] for s in singles])


def test_a_capturable_mixed_group_steps_on_the_device_reading_nothing_back(full_host):
    """On meta tensors (no data: any host read raises) the group steps, updating the
    same state tensors in place: what a compiled or captured step needs."""
    group = group_scheduler(make()).to("meta")
    kl = torch.rand(5, device="meta")
    group.step(kl)
    before = [id(t) for t in group.state_tensors()]
    assert before and all(t.device.type == "meta" for t in group.state_tensors())
    for _ in range(5):
        betas = group.step(kl)
    assert betas.device.type == "meta" and betas.shape == (5,)
    assert [id(t) for t in group.state_tensors()] == before


def test_a_compiled_mixed_group_traces_once_without_graph_breaks(full_host, monkeypatch):
    counters = compile_counters(monkeypatch)
    group, singles = group_scheduler(make()), alone(make())
    step = torch.compile(group.step, dynamic=False)
    for t, kl in enumerate(kl_trace(5, 5)):
        betas = step(kl)
        for k, single in enumerate(singles):
            assert torch.equal(betas[k:k + 1], single.step(kl[k:k + 1])), (t, k)
    assert counters["stats"]["unique_graphs"] == 1
    assert not counters["graph_break"] and not counters["recompiles"], dict(counters["graph_break"])


def test_a_members_logged_row_has_exactly_its_own_keys(full_host):
    group, singles = group_scheduler(make(third_party=True)), alone(make(third_party=True))
    assert _instantaneous(torch.zeros(6), group, 6) == [{"beta": 0.0}] * 6  # before a step: no scalars
    for kl in kl_trace(6, 30):
        rows = _instantaneous(group.step(kl), group, 6)
        own = [_instantaneous(s.step(kl[k:k + 1]), s, 1)[0] for k, s in enumerate(singles)]
        assert rows == own and [list(r) for r in rows] == [list(r) for r in own]  # values, keys and order
    assert [list(rows[k]) for k in (0, 2, 4)] == [["beta"]] * 3  # the constants and the cyclical β
    assert "setpoint" in rows[1] and "integral" in rows[3] and "integral" not in rows[5]
    assert group.scalar_members()["integral"] == [3]
    assert group.scalars()["setpoint"].isnan().tolist() == [True, False, True, False, True, False]


def test_fused_runs_with_other_schedulers_log_what_they_log_alone(full_host):
    """The training loop end to end: runs of one model with a constant β, a PI and a
    positional PI, trained alone and fused (a mixed group): each member's scalars.jsonl
    rows have the keys, in the order, of its run alone."""
    names = ("constant", "pi", "positional_pi")

    def prepare(out, scheduler):
        params = [f"Run.scheduler = '{scheduler}'", "Protocol.steps = 10"]
        return prepare_new_run(Path(out), ConfigSources(protocol=TOY_PROTOCOL, gin_params=params), "vae",
                               evaluate=False)

    for name in names:
        train_and_evaluate(prepare(f"alone_{name}", name), device="cpu", resume=False, progress=False)
    fused = [prepare(f"fused_{name}", name) for name in names]
    train_and_evaluate_group(fused, device="cpu", resume=False, progress=False)
    keys = {}
    for name, run_dir in zip(names, fused):
        rows, alone = read_scalars(run_dir / "scalars.jsonl"), read_scalars(Path(f"alone_{name}") / "scalars.jsonl")
        assert len(rows) == len(alone) == 2 and [list(r) for r in rows] == [list(r) for r in alone], name
        keys[name] = set(rows[-1])
    assert "setpoint" not in keys["constant"] and "integral" in keys["positional_pi"] - keys["pi"]
