"""Tests for autobp.optim: updates against hand-computed formulas, state, groups, schedules."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

import autobp as ab
from autobp import nn, optim

P0 = np.array([[0.5, -1.5], [2.0, 0.25]])
GRADS = [np.array([[0.1, -0.2], [0.3, 0.4]]), np.array([[-0.5, 0.2], [0.0, 1.0]]), np.array([[0.3, 0.3], [-0.7, 0.1]])]


def run(optimizer_class: type[optim.Optimizer], **hyper: object) -> np.ndarray:
    """Three steps with the fixed gradients in GRADS; returns the parameter after each step."""
    p = ab.tensor(P0, requires_grad=True)
    opt = optimizer_class([p], **hyper)
    history = []
    for g in GRADS:
        p.grad = ab.tensor(g)
        opt.step()
        history.append(p.numpy().copy())
    return np.array(history)


@pytest.mark.parametrize(
    "momentum, dampening, weight_decay, nesterov",
    [(0.0, 0.0, 0.0, False), (0.9, 0.0, 0.0, False), (0.9, 0.3, 0.01, False), (0.8, 0.0, 0.1, True)],
)
def test_sgd_matches_hand_computed_updates(
    momentum: float, dampening: float, weight_decay: float, nesterov: bool
) -> None:
    lr = 0.1
    p, buffer, expected = P0.copy(), None, []
    for g in GRADS:
        d = g + weight_decay * p
        if momentum:
            buffer = d.copy() if buffer is None else momentum * buffer + (1 - dampening) * d
            d = d + momentum * buffer if nesterov else buffer
        p = p - lr * d
        expected.append(p)
    got = run(optim.SGD, lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay, nesterov=nesterov)
    assert np.allclose(got, expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("kind", ["adam", "adam_l2", "adamw", "amsgrad"])
def test_adam_family_matches_hand_computed_updates(kind: str) -> None:
    lr, beta1, beta2, eps = 0.01, 0.8, 0.9, 1e-6
    decay = {"adam": 0.0, "adam_l2": 0.1, "adamw": 0.1, "amsgrad": 0.0}[kind]
    p, m, v, v_max, expected = P0.copy(), np.zeros_like(P0), np.zeros_like(P0), np.zeros_like(P0), []
    for t, g in enumerate(GRADS, start=1):
        if kind == "adamw":
            p = p - lr * decay * p
        elif decay:
            g = g + decay * p
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g**2
        v_max = np.maximum(v_max, v)
        second = v_max if kind == "amsgrad" else v
        m_hat, v_hat = m / (1 - beta1**t), second / (1 - beta2**t)
        p = p - lr * m_hat / (np.sqrt(v_hat) + eps)
        expected.append(p)
    cls = optim.AdamW if kind == "adamw" else optim.Adam
    got = run(cls, lr=lr, betas=(beta1, beta2), eps=eps, weight_decay=decay, amsgrad=kind == "amsgrad")
    assert np.allclose(got, expected, rtol=0, atol=1e-12)


def test_step_updates_in_place_without_recording_and_bumps_the_version() -> None:
    p = ab.tensor([1.0, 2.0], requires_grad=True)
    array, version = p.data, p._version
    saved = p * p  # a graph that saved p's old value
    opt = optim.SGD([p], lr=0.1)
    ab.sum(p * 3).backward()
    opt.step()
    assert p.data is array and p.is_leaf and p.grad_fn is None and p._version == version + 1
    assert np.allclose(p.numpy(), [0.7, 1.7])
    with pytest.raises(RuntimeError, match="modified"):
        ab.sum(saved).backward()


def test_parameters_without_grad_are_skipped_and_zero_grad_modes() -> None:
    a, b = ab.ones(2, requires_grad=True), ab.ones(2, requires_grad=True)
    opt = optim.Adam([a, b], lr=0.1)
    a.grad = ab.ones(2)
    opt.step()
    assert np.all(b.numpy() == 1) and not np.all(a.numpy() == 1)
    assert opt.state_dict()["state"].keys() == {0}
    opt.zero_grad(set_to_none=False)
    assert np.all(a.grad.numpy() == 0) and b.grad is None
    opt.zero_grad()
    assert a.grad is None


def test_param_groups_take_their_own_hyperparameters() -> None:
    a, b = ab.ones(1, requires_grad=True), ab.ones(1, requires_grad=True)
    opt = optim.SGD([{"params": [a]}, {"params": [b], "lr": 1.0}], lr=0.1)
    a.grad, b.grad = ab.ones(1), ab.ones(1)
    opt.step()
    assert np.isclose(a.item(), 0.9) and np.isclose(b.item(), 0.0)
    assert [g["lr"] for g in opt.param_groups] == [0.1, 1.0] and "lr=1.0" in repr(opt)


def _train(opt: optim.Optimizer, params: list[ab.Tensor], steps: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    for _ in range(steps):
        for p in params:
            p.grad = ab.tensor(rng.standard_normal(p.shape))
        opt.step()


@pytest.mark.parametrize(
    "make", [lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9), lambda ps: optim.AdamW(ps, lr=0.1, amsgrad=True)]
)
def test_state_dict_round_trip_resumes_exactly(make: object) -> None:
    first = [ab.ones(2, 2, requires_grad=True), ab.zeros(3, requires_grad=True)]
    opt = make(first)  # type: ignore[operator]
    _train(opt, first, 2, seed=0)
    state = opt.state_dict()
    second = [ab.tensor(p.numpy(), requires_grad=True) for p in first]
    resumed = make(second)  # type: ignore[operator]
    resumed.load_state_dict(state)
    _train(opt, first, 2, seed=1)
    _train(resumed, second, 2, seed=1)
    for a, b in zip(first, second, strict=True):
        assert np.array_equal(a.numpy(), b.numpy())


def test_state_dict_is_a_copy_and_load_checks_shapes_and_groups() -> None:
    p = ab.ones(2, requires_grad=True)
    opt = optim.SGD([p], lr=0.1, momentum=0.9)
    _train(opt, [p], 1, seed=0)
    state = opt.state_dict()
    state["state"][0]["momentum_buffer"][...] = 99.0
    assert not np.any(opt.state[id(p)]["momentum_buffer"] == 99.0)
    state["state"][0]["momentum_buffer"] = np.zeros(3)
    with pytest.raises(ValueError, match=r"state.0.momentum_buffer has shape \(3,\)"):
        opt.load_state_dict(state)
    other = optim.SGD([{"params": [p]}, {"params": [ab.ones(1, requires_grad=True)]}], lr=0.1)
    with pytest.raises(ValueError, match="saved groups"):
        other.load_state_dict(opt.state_dict())


def test_constructor_errors() -> None:
    p = ab.ones(1, requires_grad=True)
    with pytest.raises(ValueError, match="empty"):
        optim.SGD([], lr=0.1)
    with pytest.raises(ValueError, match="nesterov"):
        optim.SGD([p], lr=0.1, nesterov=True)
    with pytest.raises(ValueError, match="betas"):
        optim.Adam([p], betas=(0.9, 1.0))
    with pytest.raises(ValueError, match="more than one group"):
        optim.SGD([{"params": [p]}, {"params": [p]}], lr=0.1)
    with pytest.raises(TypeError, match=r"leaf Tensors .* got ndarray"):
        optim.SGD([np.ones(1)], lr=0.1)
    with pytest.raises(TypeError, match="unknown hyperparameters"):
        optim.SGD([{"params": [p], "betas": (0.9, 0.9)}], lr=0.1)


def test_step_with_closure_returns_the_loss() -> None:
    p = ab.tensor([2.0], requires_grad=True)
    opt = optim.SGD([p], lr=0.25)

    def closure() -> ab.Tensor:
        opt.zero_grad()
        loss = ab.sum(p * p)
        loss.backward()
        return loss

    assert opt.step(closure).item() == 4.0 and p.item() == 1.0


def test_schedulers_follow_their_formulas() -> None:
    opt = optim.SGD([ab.ones(1, requires_grad=True)], lr=0.8)
    step = optim.StepLR(opt, step_size=3, gamma=0.5)
    lrs = []
    for _ in range(7):
        step.step()
        lrs.append(step.get_last_lr()[0])
    assert np.allclose(lrs, [0.8 * 0.5 ** (e // 3) for e in range(1, 8)])
    restored = optim.StepLR(optim.SGD([ab.ones(1, requires_grad=True)], lr=0.8), step_size=3, gamma=0.5)
    restored.load_state_dict(step.state_dict())
    restored.step()
    assert math.isclose(restored.get_last_lr()[0], 0.8 * 0.5 ** (8 // 3))
    opt = optim.Adam([ab.ones(1, requires_grad=True)], lr=1.0)
    cosine = optim.CosineAnnealingLR(opt, T_max=4, eta_min=0.1)
    got = []
    for _ in range(4):
        cosine.step()
        got.append(opt.param_groups[0]["lr"])
    assert np.allclose(got, [0.1 + 0.9 * (1 + math.cos(math.pi * e / 4)) / 2 for e in range(1, 5)])


@pytest.mark.parametrize(
    "make",
    [
        lambda p: optim.SGD(p, lr=0.1, momentum=0.9),
        lambda p: optim.Adam(p, lr=0.1, amsgrad=True),
        lambda p: optim.AdamW(p, lr=0.1, weight_decay=0.1),
    ],
    ids=["sgd-momentum", "adam-amsgrad", "adamw"],
)
def test_a_0d_parameter_keeps_its_state_moving_after_load_state_dict(make, tmp_path) -> None:  # type: ignore[no-untyped-def]
    # A 0-d parameter's buffers are 0-d arrays; restored as Python floats, the update's in-place
    # `buf *= momentum` rebound a local and the state froze at the loaded value.
    w, reloaded = ab.tensor(1.0, requires_grad=True), ab.tensor(1.0, requires_grad=True)
    plain, opt = make([w]), make([reloaded])
    for step in range(5):
        if step == 2:
            ab.save(opt.state_dict(), tmp_path / "state.ab")
            opt.load_state_dict(ab.load(tmp_path / "state.ab"))
        for param, optimizer in ((w, plain), (reloaded, opt)):
            (param**4).sum().backward()
            optimizer.step()
            optimizer.zero_grad()
    assert reloaded.item() == w.item()


@pytest.mark.parametrize("make", [optim.SGD, optim.Adam])
def test_a_parameter_given_twice_in_one_group_is_refused_not_stepped_twice(make: type[optim.Optimizer]) -> None:
    # SGD([w, w], lr=0.5) stepped w twice with one gradient: w = 1 with loss w^2 went to -1, not
    # 0 (PyTorch warns that this "will cause an error"). Two groups holding it were refused already.
    w = ab.tensor([1.0], requires_grad=True)
    with pytest.raises(ValueError, match=f"{make.__name__}: a parameter appears twice in one group"):
        make([w, w], lr=0.5)
    opt = make([ab.ones(1, requires_grad=True)], lr=0.5)
    with pytest.raises(ValueError, match="appears twice"):
        opt.add_param_group({"params": [w, w]})
    with pytest.raises(ValueError, match="appears twice"):
        make([{"params": (p for p in [w, w])}], lr=0.5)


@pytest.mark.parametrize("lib", ["numpy", "array_api_strict", "torch"])
def test_numpy_scalar_hyperparameters_step_as_python_numbers_on_every_library(lib: str) -> None:
    # np.float64(0.1) from np.logspace: array-api-strict refused it inside the update ("Expected
    # Array or Python scalar; got <class 'numpy.float64'>", naming no optimizer); a 0-d array
    # was refused there too. Taken as the Python numbers, every library steps as with floats.
    pytest.importorskip(lib)
    hyper = {"lr": np.float64(0.1), "betas": (np.float64(0.9), np.float32(0.5)), "weight_decay": np.array(0.01)}
    hyper["eps"] = ab.tensor(1e-3)  # a 0-d Tensor, as PyTorch takes one (it was refused by numpy's operators)
    results = []
    plain = {"lr": 0.1, "betas": (0.9, float(np.float32(0.5))), "weight_decay": 0.01, "eps": 1e-3}
    for given in (hyper, plain):
        p = ab.tensor(P0.astype(np.float32), requires_grad=True)
        if lib != "numpy":
            p = ab.tensor(ab.backends.library(lib).from_numpy(P0.astype(np.float32)), requires_grad=True)
        opt = optim.Adam([p], **given)  # type: ignore[arg-type]
        for g in GRADS:
            p.grad = ab.tensor(ab.backends.namespace(p.data).asarray(g.astype(np.float32), device=None))
            opt.step()
        assert all(type(v) in (float, bool, tuple) for k, v in opt.param_groups[0].items() if k != "params")
        results.append(p.numpy())
    assert results[0].dtype == np.float32
    np.testing.assert_array_equal(results[0], results[1])


def test_parameters_in_a_set_are_refused_as_pytorch_refuses_them() -> None:
    # A set's order follows the parameters' hashes (their ids), which differ from run to run:
    # state_dict numbers parameters in that order, so moments saved in one run were loaded into
    # another same-shaped parameter in the next, without an error.
    a, b = ab.zeros(2, requires_grad=True), ab.ones(2, requires_grad=True)
    for params in ({a, b}, frozenset([a, b]), [{"params": {a, b}}]):
        with pytest.raises(TypeError, match="SGD: parameters in a set have no fixed order"):
            optim.SGD(params, lr=0.1)  # type: ignore[arg-type]
    opt = optim.SGD([a], lr=0.1)
    with pytest.raises(TypeError, match="no fixed order"):
        opt.add_param_group({"params": {b}})


def test_pytorch_refuses_a_groups_set_and_takes_a_whole_set_as_trust_md_says() -> None:
    # trust.md: autobp refuses both; PyTorch 2.13 refuses a set as a group's "params" only, and
    # takes a set given whole (it makes a list of it first, in the set's iteration order).
    torch = pytest.importorskip("torch")
    a, b = torch.zeros(2, requires_grad=True), torch.ones(2, requires_grad=True)
    with pytest.raises(TypeError, match="ordered collections"):
        torch.optim.SGD([{"params": {a, b}}], lr=0.1)
    with pytest.raises(TypeError, match="ordered collections"):
        torch.optim.SGD([a], lr=0.1).add_param_group({"params": {b}})
    assert len(torch.optim.SGD({a, b}, lr=0.1).param_groups[0]["params"]) == 2


def _stepped(opt: Any, schedulers: list[Any], epochs: int) -> list[float]:
    """The first group's lr after each of ``epochs`` steps of every scheduler, in order."""
    lrs = []
    for _ in range(epochs):
        for scheduler in schedulers:
            scheduler.step()
        lrs.append(opt.param_groups[0]["lr"])
    return lrs


def test_schedulers_chain_and_go_on_from_an_lr_set_by_hand_as_pytorchs_do() -> None:
    # Each step changes the current lr: StepLR then CosineAnnealingLR on one optimizer compose
    # (PyTorch 2.13's values, to 12 digits); before, each set lr from initial_lr, and the last to
    # step overwrote the other ([.0525, .01, .0525, .155, ...] for epochs 3 to 8)
    opt = optim.SGD([ab.ones(1, requires_grad=True)], lr=0.3)
    first, second = optim.StepLR(opt, step_size=3, gamma=0.5), optim.CosineAnnealingLR(opt, T_max=4, eta_min=0.01)
    got = _stepped(opt, [first, second], 12)
    torch_lrs = [0.257530483272, 0.155, 0.0297702922699, 0.01, 0.052469516728, 0.0654289321881]
    torch_lrs += [0.104623106012, 0.120857864376, 0.0530437860532, 0.0352144660941, 0.017385146135, 0.01]
    np.testing.assert_allclose(got, torch_lrs, rtol=1e-10)
    # an lr set by hand is where StepLR goes on from ([1, .1, .5, ...] before: the change was dropped)
    opt = optim.SGD([ab.ones(1, requires_grad=True)], lr=1.0)
    step, got = optim.StepLR(opt, step_size=2, gamma=0.5), []
    for epoch in range(6):
        step.step()
        if epoch == 1:
            opt.param_groups[0]["lr"] = 0.1
        got.append(opt.param_groups[0]["lr"])
    assert got == [1.0, 0.1, 0.1, 0.05, 0.05, 0.025]


def test_a_cosine_schedule_left_alone_follows_its_closed_form_through_every_period() -> None:
    opt = optim.SGD([ab.ones(1, requires_grad=True)], lr=1.0)
    cosine = optim.CosineAnnealingLR(opt, T_max=3, eta_min=0.1)
    got = _stepped(opt, [cosine], 10)
    np.testing.assert_allclose(got, [cosine.lr_at(1.0, e) for e in range(1, 11)], rtol=1e-12)
    np.testing.assert_allclose(got, [0.775, 0.325, 0.1, 0.325, 0.775, 1.0, 0.775, 0.325, 0.1, 0.325], rtol=1e-12)


def test_a_scheduler_resumes_at_the_lr_it_saved() -> None:
    opt = optim.SGD([ab.ones(1, requires_grad=True)], lr=1.0)
    step = optim.StepLR(opt, step_size=2, gamma=0.5)
    for _ in range(3):
        step.step()
    opt.param_groups[0]["lr"] = 0.3  # changed by hand: saved as it is
    fresh = optim.SGD([ab.ones(1, requires_grad=True)], lr=1.0)
    resumed = optim.StepLR(fresh, step_size=2, gamma=0.5)
    resumed.load_state_dict(step.state_dict())
    resumed.step()
    assert fresh.param_groups[0]["lr"] == 0.15
    old_state = {"last_epoch": 3, "base_lrs": [1.0]}  # (saved before last_lrs existed: the closed form's)
    resumed.load_state_dict(old_state)
    assert fresh.param_groups[0]["lr"] == 0.5


@pytest.mark.parametrize("make", [optim.SGD, optim.Adam])
def test_a_frozen_parameter_is_taken_left_alone_and_trained_once_unfrozen(make: type[optim.Optimizer]) -> None:
    """Fine-tuning freezes layers (``requires_grad = False``) and passes every parameter to the
    optimizer, as PyTorch allows: the frozen ones have no gradient, so step leaves them, until they
    are unfrozen. (They were refused.) A tensor made by an op, or an integer one, is still refused."""
    model = nn.Sequential(nn.Linear(2, 3, rng=0), nn.Linear(3, 1, rng=1))
    frozen = list(model[0].parameters())
    for param in frozen:
        param.requires_grad = False
    before = [param.data.copy() for param in frozen]
    opt = make(model.parameters(), lr=0.1)
    x = ab.tensor([[1.0, -2.0]])
    model(x).sum().backward()
    trained = model[1].weight.data.copy()
    opt.step()
    assert all(np.array_equal(param.data, old) for param, old in zip(frozen, before, strict=True))
    assert not np.array_equal(model[1].weight.data, trained)
    for param in frozen:
        param.requires_grad = True
    opt.zero_grad()
    model(x).sum().backward()
    opt.step()
    assert not np.array_equal(frozen[0].data, before[0])
    w = ab.tensor([1.0], requires_grad=True)
    with pytest.raises(
        TypeError, match=r"only optimize leaf Tensors \(a model's parameters\), got a tensor made by op 'mul'"
    ):
        make([w * 2.0], lr=0.1)
    with pytest.raises(TypeError, match=r"can only optimize floating-point tensors, got int64\[2\]"):
        make([ab.tensor([1, 2])], lr=0.1)


@pytest.mark.parametrize("optimizer_class", [optim.Adam, optim.AdamW])
def test_adam_refuses_a_complex_parameter_whose_update_it_would_get_wrong(optimizer_class: Any) -> None:
    # Adam's g * g, sqrt and division of complex numbers are not the per-part update PyTorch
    # takes (it steps the real and imaginary parts as two real parameters): [1 + 1j] with .grad
    # [1j] moved the real part (0.9 + 1j) where only the imaginary part has a gradient
    # (1 + 0.9j), and with amsgrad the imaginary part went to -1e7.
    w = ab.tensor(np.array([1 + 1j, 2 - 1j]))
    with pytest.raises(TypeError, match=rf"{optimizer_class.__name__}: cannot optimize a complex tensor"):
        optimizer_class([w], lr=0.1)
    opt = optimizer_class([ab.tensor([1.0])], lr=0.1)
    with pytest.raises(TypeError, match="cannot optimize a complex tensor"):
        opt.add_param_group({"params": [w]})


def test_sgd_steps_a_complex_parameter_as_its_two_real_parts() -> None:
    # (SGD's update is linear: complex arithmetic is the per-part update)
    w = ab.tensor(np.array([1 + 1j, 2 - 1j]))
    opt = optim.SGD([w], lr=0.1, momentum=0.5, weight_decay=0.1)
    grads = [np.array([1j, 1.0 + 0j]), np.array([0.5 - 2j, 1j])]
    re, im = np.array([1.0, 2.0]), np.array([1.0, -1.0])
    buffer_re = buffer_im = None
    for g in grads:
        w.grad = ab.tensor(g)
        opt.step()
        d_re, d_im = g.real + 0.1 * re, g.imag + 0.1 * im
        buffer_re = d_re if buffer_re is None else 0.5 * buffer_re + d_re
        buffer_im = d_im if buffer_im is None else 0.5 * buffer_im + d_im
        re, im = re - 0.1 * buffer_re, im - 0.1 * buffer_im
    np.testing.assert_allclose(w.numpy(), re + 1j * im, rtol=1e-15)


@pytest.mark.parametrize("optimizer_class", [optim.SGD, optim.Adam])
def test_a_complex_grad_on_a_real_parameter_is_refused_not_cast_to_its_real_part(optimizer_class: Any) -> None:
    # The cast to the parameter's dtype dropped the imaginary part (numpy warned; the step took
    # [1, 2] - 0.1 * [0, 1]); PyTorch refuses the assignment itself.
    w = ab.tensor([1.0, 2.0], requires_grad=True)
    opt = optimizer_class([w], lr=0.1)
    w.grad = ab.tensor(np.array([1j, 1 + 1j]))
    with pytest.raises(TypeError, match=r"step: a real parameter float64\[2\] has a complex gradient complex128\[2\]"):
        opt.step()
    np.testing.assert_array_equal(w.numpy(), [1.0, 2.0])
