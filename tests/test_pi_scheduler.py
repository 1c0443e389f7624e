"""DynamicVAE's incremental PI β scheduler (docs/controllers.md), and the machinery both PI
schedulers share (disbench.control): float and tensor KLs, checkpoints, set-point resolution, gin."""

import io
import json
import math
import random
from pathlib import Path

import gin
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from disbench.errors import UnknownNameError
from disbench.hookspecs import hookimpl
from disbench.plugins import PluginHost, set_host
from disbench.schedulers import BetaScheduler
from dvae_plugin.control_laws import sigmoid
from dvae_plugin.pi_scheduler import PIBetaScheduler
from dvae_plugin.positional_pi import PositionalPIBetaScheduler
from dvae_plugin.setpoints import ConstantSetpoint, HybridAnnealing, StepAnnealing

pytestmark = pytest.mark.numerical  # compared against bounds or bit for bit: run again under AVX2 kernels

SCHEDULERS = [PIBetaScheduler, PositionalPIBetaScheduler]
DATA = Path(__file__).parent / "data"


def as64(x: float) -> torch.Tensor:
    return torch.tensor(x, dtype=torch.float64)


def random_kls(n: int, seed: int, high: float = 3.0) -> list[float]:
    rng = random.Random(seed)
    return [rng.uniform(0.0, high) for _ in range(n)]


# -- docs/controllers.md by hand ------------------------------------------------------------

def test_first_steps_by_hand():
    # Kp 0.5, Ki 0.2, β_init 0.3, β_min 0.1, window 3, C = 1; σ(−e) = 1/(1+e^e).
    s = PIBetaScheduler(kp=0.5, ki=0.2, beta_init=0.3, beta_min=0.1, window=3, setpoint=ConstantSetpoint(1.0))
    expected = [
        # kl,  y = sum(window)/3,  e,    β stored (un-clamped),  β returned
        # t=1: window [0.3, 0, 0] (zero fill still counts): y = 0.1, e = 0.9
        #      dP = 0.5·(σ(−0.9) − σ(0)) = 0.5·(0.289050497375 − 0.5) = −0.105474751313
        #      β_prev 0.3 >= 0.1, so dI = −0.2·0.9 = −0.18;  β = 0.3 − 0.105474751313 − 0.18
        (0.3, 0.1, 0.9, 0.014525248687, 0.1),   # stored below β_min, returned clamped
        # t=2: window [0.3, 0.6, 0]: y = 0.3, e = 0.7; dP = 0.5·(0.331812227832 − 0.289050497375)
        #      β_prev = 0.0145 < 0.1 → dI = 0 (the clamped 0.1 would NOT have stopped it: 0.1 < 0.1 is false)
        (0.6, 0.3, 0.7, 0.035906113916, 0.1),
        # t=3: window full [0.3, 0.6, 0.9]: y = 0.6, e = 0.4; dP = 0.034750056028, dI = 0 again
        (0.9, 0.6, 0.4, 0.070656169944, 0.1),
        # t=4: 0.3 leaves the window: [3.0, 0.6, 0.9], y = 1.5, e = −0.5
        #      dP = 0.5·(σ(0.5) − σ(−0.4)) = 0.5·(0.622459331202 − 0.401312339888) = 0.110573495657
        #      β_prev = 0.0707 < 0.1 → dI = 0, yet P alone lifts β above β_min
        (3.0, 1.5, -0.5, 0.181229665601, 0.181229665601),
        # t=5: [3.0, 3.0, 0.9], y = 2.3, e = −1.3; dP = 0.5·(0.785834983043 − 0.622459331202)
        #      β_prev = 0.181 >= 0.1 → integral acts again: dI = −0.2·(−1.3) = +0.26
        (3.0, 2.3, -1.3, 0.522917491521, 0.522917491521),
    ]
    for t, (kl, y, e, stored, returned) in enumerate(expected, start=1):
        beta = s.step(kl)
        sc = s.scalars()
        assert sc["setpoint"] == 1.0
        assert sc["kl_avg"] == pytest.approx(y, abs=1e-12), t
        assert sc["error"] == pytest.approx(e, abs=1e-12), t
        assert sc["beta_unclamped"] == pytest.approx(stored, abs=1e-11), t
        assert beta == pytest.approx(returned, abs=1e-11), t
    assert s.t == 5


def test_first_step_with_paper_defaults():
    # β(0) = 150, C(1) = 0.5, window 5: y = kl/5, e = 0.5 − kl/5, dP = 0.01·(σ(−e) − 0.5), dI = −0.005·e
    s = PIBetaScheduler()
    y = 0.3 / 5
    e = 0.5 - y
    assert s.step(0.3) == pytest.approx(150 + 0.01 * (1 / (1 + math.exp(e)) - 0.5) - 0.005 * e, abs=1e-12)
    assert s.step(0.3) < 150.0


# -- docs/controllers.md + §5 independently re-implemented -----------------------------------

def reference_pi(kls, *, kp, ki, beta_init, beta_min, window, start, stop, step, period, ramp):
    """docs/controllers.md with §5's hybrid C as a plain loop: the whole KL history in a list,
    C accumulated step by step. Returns the β sequence and how often each branch ran."""
    history, c, beta_prev, e_prev = [], start, beta_init, 0.0
    betas, branches = [], {"anti_windup": 0, "integrating": 0, "clamped": 0}
    for t, kl in enumerate(kls, start=1):
        if t >= period and t % period < ramp:
            c = min(c + step / ramp, stop)
        history.append(kl)
        y = sum(history[-window:]) / window  # too few values yet: the zero fill adds nothing
        e = c - y
        d_p = kp * (1 / (1 + math.exp(e)) - 1 / (1 + math.exp(e_prev)))
        if beta_prev < beta_min:
            d_i = 0.0
            branches["anti_windup"] += 1
        else:
            d_i = -ki * e
            branches["integrating"] += 1
        beta_prev, e_prev = beta_prev + d_p + d_i, e
        branches["clamped"] += beta_prev < beta_min
        betas.append(max(beta_prev, beta_min))
    return betas, branches


def test_matches_independent_reimplementation_over_20000_steps():
    hybrid = dict(start=0.5, stop=10.0, step=0.5, period=600, ramp=100)
    gains = dict(kp=0.01, ki=0.005, beta_init=2.0, beta_min=0.1, window=5)
    sp = HybridAnnealing(**hybrid)
    rng = random.Random(3)
    # KL swings above and below C for long stretches, so β both winds down to the floor
    # (anti-windup, clamp) and climbs away from it; the ramps and the cap are crossed too.
    kls = [max(0.0, sp.value(t) * (1 + 0.9 * math.sin(2 * math.pi * t / 1500)) + rng.gauss(0, 0.3))
           for t in range(1, 20_001)]
    expected, branches = reference_pi(kls, **gains, **hybrid)
    assert min(branches.values()) > 500, branches  # every branch really ran

    s = PIBetaScheduler(**gains, setpoint=sp)
    got = [s.step(kl) for kl in kls]
    assert max(abs(a - b) for a, b in zip(got, expected)) < 1e-9
    assert s.scalars()["setpoint"] == 10.0


def released_controller(kls, setpoint, *, kp, ki, beta_init, beta_min, window):
    """The authors' released dSprites controller (DynamicVAE-CVPR2022, 2D-sprites/I_PID.py and
    the window of 5 KLs its solver feeds it), in its own update order: its Ki is negative
    (dI = Ki·e), and it adds dW = dP + dI to the previous W, where the docs add dP, then dI."""
    history, w_prev, e_prev, betas = [], beta_init, 0.0, []
    for t, kl in enumerate(kls, start=1):
        history.append(kl)
        e = setpoint.value(t) - sum(history[-window:]) / window
        d_p = kp * (1.0 / (1.0 + math.exp(e)) - 1.0 / (1.0 + math.exp(e_prev)))
        d_i = 0 if w_prev < beta_min else (-ki) * e
        w_prev, e_prev = (d_p + d_i) + w_prev, e
        betas.append(max(w_prev, beta_min))
    return betas


def test_matches_the_released_controller_over_30000_steps_within_1e_10():
    sp = HybridAnnealing(start=0.5, stop=12.0, step=0.5, period=900, ramp=150)
    rng = random.Random(30)
    kls = [max(0.0, sp.value(t) * (1 + 0.8 * math.sin(2 * math.pi * t / 2300)) + rng.gauss(0, 0.4))
           for t in range(1, 30_001)]
    gains = dict(kp=0.01, ki=0.005, beta_init=3.0, beta_min=0.1, window=5)
    expected = released_controller(kls, sp, **gains)
    scheduler = PIBetaScheduler(**gains, setpoint=sp)
    got = torch.tensor([scheduler.step(kl) for kl in kls], dtype=torch.float64)
    assert min(expected) == 0.1 and max(expected) > 20  # saturated for a while, and far from it
    assert (got - torch.tensor(expected, dtype=torch.float64)).abs().max().item() <= 1e-10


# -- the machinery both schedulers share -------------------------------------------

def test_both_satisfy_the_harness_protocol():
    for cls in SCHEDULERS:
        assert isinstance(cls(), BetaScheduler)


@pytest.mark.parametrize("cls", SCHEDULERS)
def test_float_and_float64_tensor_paths_are_identical(cls):
    kls = random_kls(3000, seed=1, high=2.0)
    make = lambda: cls(beta_min=0.5, window=4, setpoint=HybridAnnealing(period=200, ramp=50, step=0.5))
    f, t = make(), make()
    for kl in kls:
        bf, bt = f.step(kl), t.step(as64(kl))
        assert isinstance(bf, float) and isinstance(bt, torch.Tensor) and bt.dtype == torch.float64
        assert bt.item() == bf  # exact, not approximately
        sf, st_ = f.scalars(), t.scalars()
        assert {k: v.item() for k, v in st_.items()} == sf


def test_the_laws_sigmoid_is_the_docs_formula_bit_for_bit_for_any_group_size():
    # The control law's only transcendental: σ(−e) equals the docs' 1/(1+exp(e)) as libm's
    # exp gives it, for every member of a group of any size K — so a member's β does not
    # depend on K or its place (ATen's vectorised float64 exp differs from libm's in ~3 % of
    # values), and the law can be checked against plain-float re-implementations exactly.
    rng = random.Random(6)
    es = [rng.uniform(-40.0, 40.0) for _ in range(20_000)] + [-1000.0, 709.0, 710.0, 1000.0]

    def formula(e):
        try:
            return 1.0 / (1.0 + math.exp(e))
        except OverflowError:
            return 0.0

    expected = [formula(e) for e in es]
    for k in (1, 3, 8, 16, 17, 64, len(es)):
        got = [v for i in range(0, len(es), k)
               for v in sigmoid(-torch.tensor(es[i:i + k], dtype=torch.float64)).tolist()]
        assert got == expected, k


@pytest.mark.parametrize("cls", SCHEDULERS)
def test_paths_identical_across_the_whole_error_range(cls):
    # e = C − kl spans [−40, 40], then e = 1000 (past the overflow of exp)
    rng = random.Random(6)
    kls = [rng.uniform(0.0, 80.0) for _ in range(3000)]
    f, t = cls(window=1, setpoint=ConstantSetpoint(40.0)), cls(window=1, setpoint=ConstantSetpoint(40.0))
    assert [t.step(as64(kl)).item() for kl in kls] == [f.step(kl) for kl in kls]
    f, t = cls(window=1, setpoint=ConstantSetpoint(1000.0)), cls(window=1, setpoint=ConstantSetpoint(1000.0))
    assert [t.step(as64(0.0)).item() for _ in range(3)] == [f.step(0.0) for _ in range(3)]


@settings(max_examples=40, deadline=None)
@given(cls=st.sampled_from(SCHEDULERS),
       kp=st.floats(1e-3, 2.0), ki=st.floats(1e-4, 1.0), beta_min=st.floats(0.01, 2.0),
       extra=st.floats(0.0, 50.0), window=st.integers(1, 7),
       kls=st.lists(st.floats(0.0, 60.0), min_size=1, max_size=40), c=st.floats(0.0, 30.0))
def test_float_and_tensor_paths_identical_for_any_parameters(cls, kp, ki, beta_min, extra, window, kls, c):
    kwargs = dict(kp=kp, ki=ki, beta_min=beta_min, window=window, setpoint=ConstantSetpoint(c))
    if cls is PIBetaScheduler:
        kwargs["beta_init"] = beta_min + extra
    f, t = cls(**kwargs), cls(**kwargs)
    assert [t.step(as64(kl)).item() for kl in kls] == [f.step(kl) for kl in kls]


@pytest.mark.parametrize("cls", SCHEDULERS)
def test_tensor_path_returns_the_kl_dtype_and_ignores_its_graph(cls):
    s = cls()
    kl = torch.tensor(0.25, dtype=torch.float32, requires_grad=True)
    beta = s.step(kl * 2)
    assert beta.dtype == torch.float32 and beta.dim() == 0 and not beta.requires_grad
    f = cls()
    kl32 = float(torch.tensor(0.5, dtype=torch.float32))  # the float32 KL, exactly, as a double
    assert beta.item() == torch.tensor(f.step(kl32), dtype=torch.float32).item()


@pytest.mark.parametrize("cls", SCHEDULERS)
def test_tensor_path_never_reads_values_back_to_the_host(cls):
    # A meta tensor has no data: any .item(), float(), bool() or `if` on one raises.
    with pytest.raises(Exception):
        bool(torch.tensor(1.0, device="meta") > 0)
    s = cls(setpoint=HybridAnnealing(period=3, ramp=2))
    for _ in range(12):
        beta = s.step(torch.tensor(0.7, device="meta"))
    assert beta.device.type == "meta"
    assert all(v.device.type == "meta" for v in s.scalars().values())
    # (a state for a checkpoint reads the step counter back: a checkpoint synchronises anyway)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("cls", SCHEDULERS)
def test_cuda_path_does_not_synchronise_and_matches_the_float_path(cls):
    kls = random_kls(200, seed=5)
    s, f = cls(), cls()
    gpu_kls = torch.tensor(kls, dtype=torch.float64, device="cuda")
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        betas = [s.step(kl) for kl in gpu_kls.unbind(0)]
        s.scalars()
    finally:
        torch.cuda.set_sync_debug_mode(0)
    expected = [f.step(kl) for kl in kls]
    assert torch.stack(betas).cpu().tolist() == pytest.approx(expected, rel=1e-12, abs=1e-12)


@pytest.mark.parametrize("cls", SCHEDULERS)
def test_a_run_may_switch_between_float_and_tensor_kls(cls):
    kls = random_kls(60, seed=2)
    a, b = cls(), cls()
    seq_a = [a.step(kl) for kl in kls]
    seq_b = ([b.step(kl) for kl in kls[:20]] + [b.step(as64(kl)).item() for kl in kls[20:40]]
             + [b.step(kl) for kl in kls[40:]])
    assert seq_a == seq_b


@pytest.mark.parametrize("cls", SCHEDULERS)
def test_bad_kl_values(cls):
    s = cls()
    s.step(0.5)
    for bad in (float("nan"), float("inf")):
        with pytest.raises(ValueError, match="kl must be finite"):
            s.step(bad)
    assert s.t == 1  # a refused KL changes nothing
    with pytest.raises(TypeError):
        s.step("0.5")
    t = cls()
    with pytest.raises(ValueError, match="0-dim"):
        t.step(torch.zeros(2))
    with pytest.raises(TypeError, match="floating-point"):
        t.step(torch.tensor(1))
    # On tensors a NaN is not checked (that would need a host read): it propagates into β,
    # where the training loop's NaN guard sees it.
    assert torch.isnan(t.step(torch.tensor(float("nan"))))


# -- checkpoints ------------------------------------------------------------------

def make_for_resume(cls):
    # small β_min-hugging settings, so the state at the save point is clamped / winding up
    kwargs = dict(kp=0.05, ki=0.02, beta_min=0.2, window=5, setpoint=HybridAnnealing(period=40, ramp=10, step=1.0))
    return cls(**kwargs, **({"beta_init": 1.0} if cls is PIBetaScheduler else {}))


@pytest.mark.parametrize("cls", SCHEDULERS)
@pytest.mark.parametrize("kind", ["float", "tensor"])
def test_resume_from_a_saved_state_continues_the_identical_sequence(cls, kind):
    convert = float if kind == "float" else as64
    kls = random_kls(400, seed=4)
    run = make_for_resume(cls)
    for kl in kls[:152]:  # 152 % 5 = 2: the ring buffer is mid-cycle at the save
        run.step(convert(kl))
    buffer = io.BytesIO()
    torch.save(run.state_dict(), buffer)
    snapshot = run.state_dict()
    tail = [run.step(convert(kl)) for kl in kls[152:]]

    buffer.seek(0)
    resumed = make_for_resume(cls)
    resumed.load_state_dict(torch.load(buffer, weights_only=True))
    assert resumed.t == 152
    resumed_tail = [resumed.step(convert(kl)) for kl in kls[152:]]
    if kind == "tensor":
        resumed_tail, tail = torch.stack(resumed_tail).tolist(), torch.stack(tail).tolist()
    assert resumed_tail == tail

    # the snapshot taken before the tail was not changed by it
    again = make_for_resume(cls)
    again.load_state_dict(snapshot)
    assert float(again.step(convert(kls[152]))) == tail[0]


def test_state_dict_layout():
    s = PIBetaScheduler(window=3)
    fresh = s.state_dict()
    assert fresh == {"format": 1, "kind": "unstarted", "t": 0, "window": [0.0, 0.0, 0.0], "window_pos": 0,
                     "beta_prev": 150.0, "e_prev": 0.0, "setpoint": {}}
    s.step(as64(0.3))
    state = s.state_dict()
    assert state["kind"] == "tensor" and state["t"] == 1 and state["window_pos"] == 1
    assert state["window"].dtype == torch.float64 and state["window"].tolist() == [0.3, 0.0, 0.0]
    assert state["beta_prev"].dim() == 0 and state["e_prev"].item() == pytest.approx(0.4)
    p = PositionalPIBetaScheduler()
    assert set(p.state_dict()) == {"format", "kind", "t", "window", "window_pos", "integral", "w_prev", "setpoint"}


@pytest.mark.parametrize("name", ["pi_tensor", "pi_float", "positional_tensor", "positional_float"])
def test_states_saved_by_the_earlier_version_load_and_continue_identically(name):
    """tests/data/scheduler_states_format1.*: states (format 1) written by the version with a
    separate float path and tensor path, after 37 steps, and the next 23 βs it gave."""
    data = json.loads((DATA / "scheduler_states_format1.json").read_text())
    state = torch.load(DATA / "scheduler_states_format1.pt", weights_only=True)[name]
    if name.startswith("pi"):
        s = PIBetaScheduler(kp=0.05, ki=0.02, beta_init=1.0, beta_min=0.2, window=5,
                            setpoint=HybridAnnealing(period=40, ramp=10, step=1.0))
    else:
        s = PositionalPIBetaScheduler(kp=0.05, ki=0.02, beta_min=0.2, window=3,
                                      setpoint=StepAnnealing(period=20, step=0.5))
    s.load_state_dict(state)
    assert s.t == 37 and state["kind"] == name.rsplit("_", 1)[1]
    convert = float if name.endswith("float") else as64
    assert [float(s.step(convert(kl))) for kl in data["kls"][37:]] == data["expected"][name]


def test_load_state_dict_refuses_a_mismatched_state():
    s = PIBetaScheduler(window=3)
    s.step(0.5)
    with pytest.raises(ValueError, match="window holds 3 values, this scheduler's window is 5"):
        PIBetaScheduler(window=5).load_state_dict(s.state_dict())
    with pytest.raises(ValueError, match="lacks beta_prev"):
        PIBetaScheduler(window=3).load_state_dict(PositionalPIBetaScheduler(window=3).state_dict())


# -- set-point forms, config, gin --------------------------------------------------

class _SetpointPlugin:
    @hookimpl
    def register_setpoints(self, registry):
        registry.add("hybrid", HybridAnnealing)
        registry.add("step", StepAnnealing)


@pytest.fixture
def setpoint_registry():
    set_host(PluginHost(entry_points=False, extra_plugins={"setpoint_test_plugin": _SetpointPlugin()}))
    try:
        yield
    finally:
        set_host(None)


def test_setpoint_forms():
    assert PIBetaScheduler().config["setpoint"] == HybridAnnealing().config  # None: the default
    assert PositionalPIBetaScheduler().config["setpoint"] == StepAnnealing().config
    assert PIBetaScheduler(setpoint=ConstantSetpoint(2.0)).setpoint.value(9) == 2.0
    assert isinstance(PIBetaScheduler(setpoint=StepAnnealing).setpoint, StepAnnealing)  # a class
    assert PIBetaScheduler(setpoint=lambda: ConstantSetpoint(4.0)).setpoint.value(1) == 4.0  # a factory
    assert PIBetaScheduler(setpoint=3.0).setpoint.config == ConstantSetpoint(3.0).config  # a number: constant C
    with pytest.raises(ValueError, match="PIBetaScheduler.setpoint must be a set point"):
        PIBetaScheduler(setpoint=[3.0])


def test_setpoint_by_registered_name(setpoint_registry):
    assert isinstance(PIBetaScheduler(setpoint="step").setpoint, StepAnnealing)
    with pytest.raises(UnknownNameError, match="did you mean 'hybrid'"):
        PIBetaScheduler(setpoint="hybird")


def test_config_records_every_argument():
    assert PIBetaScheduler(setpoint=ConstantSetpoint(3.0)).config == {
        "name": "pi", "kp": 0.01, "ki": 0.005, "beta_init": 150.0, "beta_min": 0.1, "window": 5,
        "setpoint": {"name": "constant", "value": 3.0}}


def test_gin_binds_parameters_and_nested_setpoints():
    gin.parse_config("""
        PIBetaScheduler.kp = 0.02
        PIBetaScheduler.setpoint = @HybridAnnealing
        HybridAnnealing.period = 600
        HybridAnnealing.ramp = 100
        PositionalPIBetaScheduler.setpoint = @StepAnnealing()
        StepAnnealing.step = 0.5
    """)
    config = PIBetaScheduler().config
    assert config["kp"] == 0.02 and config["setpoint"]["period"] == 600 and config["setpoint"]["ramp"] == 100
    assert PositionalPIBetaScheduler().config["setpoint"]["step"] == 0.5


def test_gin_bad_binding_fails_at_construction_naming_it():
    gin.parse_config("PIBetaScheduler.ki = -0.005")
    with pytest.raises(ValueError, match=r"PIBetaScheduler\.ki must be > 0, got -0\.005") as info:
        PIBetaScheduler()
    assert "In call to configurable 'PIBetaScheduler'" in str(info.value)


@pytest.mark.parametrize("kwargs, message", [
    ({"kp": 0.0}, "PIBetaScheduler.kp must be > 0, got 0.0"),
    ({"kp": -0.01}, "PIBetaScheduler.kp must be > 0"),
    ({"ki": 0.0}, "PIBetaScheduler.ki must be > 0"),
    ({"ki": -0.005}, r"PIBetaScheduler.ki must be > 0, got -0.005"),
    ({"window": 0}, "PIBetaScheduler.window must be >= 1"),
    ({"window": 2.5}, "PIBetaScheduler.window must be an integer"),
    ({"beta_min": 0.0}, "PIBetaScheduler.beta_min must be > 0"),
    ({"beta_min": -1.0}, "PIBetaScheduler.beta_min must be > 0"),
    ({"beta_init": 0.05}, r"PIBetaScheduler.beta_init must be >= beta_min \(0.1\), got 0.05"),
    ({"kp": float("nan")}, "PIBetaScheduler.kp must be a finite number"),
    ({"beta_init": float("inf")}, "PIBetaScheduler.beta_init must be a finite number"),
])
def test_bad_arguments_fail_at_construction(kwargs, message):
    with pytest.raises(ValueError, match=message):
        PIBetaScheduler(**kwargs)
