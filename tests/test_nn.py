"""Tests for autobp.nn: Module bookkeeping, layers (gradchecked), init, and the conv/pool ops."""

from __future__ import annotations

import math

import numpy as np
import pytest

import autobp as ab
from autobp import nn
from autobp.ops.nn import _output_padding, max_pool2d_gather, max_pool2d_scatter


def _set(module: nn.Module, dotted: str, value: ab.Tensor) -> None:
    *path, last = dotted.split(".")
    owner = module
    for part in path:
        owner = getattr(owner, part)
    object.__setattr__(owner, last, value)  # bypass registration: a temporary stand-in


def check_module(module: nn.Module, x: ab.Tensor, second_order: bool = True) -> None:
    """gradcheck (and gradgradcheck) a module's output wrt its input and every parameter."""
    names = [name for name, _ in module.named_parameters()]
    originals = [param for _, param in module.named_parameters()]

    def fn(x: ab.Tensor, *params: ab.Tensor) -> ab.Tensor:
        for name, value in zip(names, params, strict=True):
            _set(module, name, value)
        try:
            return module(x)
        finally:
            for name, param in zip(names, originals, strict=True):
                _set(module, name, param)

    inputs = (x, *[ab.Tensor(p.data, requires_grad=True) for p in originals])
    assert ab.gradcheck(fn, inputs)
    if second_order:
        assert ab.gradgradcheck(fn, inputs)


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(3, 4, rng=0)
        self.block = nn.Sequential(nn.Tanh(), nn.Linear(4, 2, bias=False, rng=1))
        self.scale = nn.Parameter(np.ones(2))

    def forward(self, x: ab.Tensor) -> ab.Tensor:
        return self.block(self.fc1(x)) * self.scale


# -- Module bookkeeping --------------------------------------------------------------------------
def test_parameter_is_a_leaf_tensor_that_requires_grad() -> None:
    p = nn.Parameter([1.0, 2.0])
    assert isinstance(p, ab.Tensor) and p.requires_grad and p.is_leaf
    assert not nn.Parameter([1.0], requires_grad=False).requires_grad


def test_named_parameters_use_dotted_names_in_registration_order() -> None:
    net = Net()
    assert [name for name, _ in net.named_parameters()] == ["scale", "fc1.weight", "fc1.bias", "block.1.weight"]
    assert [type(m).__name__ for m in net.children()] == ["Linear", "Sequential"]
    assert len(list(net.parameters())) == 4


def test_shared_parameters_are_listed_once_and_reassignment_unregisters() -> None:
    net = Net()
    net.other = net.fc1  # the same module twice
    assert len(list(net.parameters())) == 4
    net.scale = None  # no longer a parameter
    assert "scale" not in dict(net.named_parameters())
    del net.other
    assert [name for name, _ in net.named_children()] == ["fc1", "block"]


def test_module_errors() -> None:
    class Broken(nn.Module):
        def __init__(self) -> None:
            self.weight = nn.Parameter([1.0])

    with pytest.raises(AttributeError, match="super"):
        Broken()
    with pytest.raises(NotImplementedError, match="forward"):
        nn.Module()(1.0)


def test_backward_fills_parameter_grads_and_zero_grad_clears_them() -> None:
    net = Net()
    ab.sum(net(ab.randn(5, 3, rng=0))).backward()
    assert all(p.grad is not None and p.grad.shape == p.shape for p in net.parameters())
    net.zero_grad(set_to_none=False)
    assert all(np.all(p.grad.numpy() == 0) for p in net.parameters())
    net.zero_grad()
    assert all(p.grad is None for p in net.parameters())


def test_train_and_eval_propagate_and_switch_dropout() -> None:
    model = nn.Sequential(nn.Linear(4, 4, rng=0), nn.Dropout(0.5, rng=0))
    x = ab.ones(8, 4)
    assert model.eval() is model and not model[1].training
    assert np.array_equal(model(x).numpy(), model[0](x).numpy())
    model.train()
    assert model[1].training
    assert np.any(model(x).numpy() == 0)


def test_dropout_is_seeded_and_keeps_the_expectation() -> None:
    x = ab.ones(200, 50)
    first, second = nn.Dropout(0.3, rng=7)(x).numpy(), nn.Dropout(0.3, rng=7)(x).numpy()
    assert np.array_equal(first, second)
    assert set(np.unique(first).round(12)) == {0.0, round(1 / 0.7, 12)}
    assert abs((first == 0).mean() - 0.3) < 0.02
    with pytest.raises(ValueError, match="p must"):
        nn.Dropout(1.5)


def test_state_dict_copies_and_load_state_dict_round_trips() -> None:
    source, target = Net(), Net()
    ab.nn.init.normal_(source.scale, rng=3)
    state = source.state_dict()
    assert list(state) == [name for name, _ in source.named_parameters()]
    state["scale"].data[...] = 123.0  # a copy: the model is unchanged
    assert not np.any(source.scale.numpy() == 123.0)
    weight = target.fc1.weight
    version = weight._version
    assert target.load_state_dict(source.state_dict()) == ([], [])
    assert target.fc1.weight is weight and weight._version == version + 1
    for (_, a), (_, b) in zip(source.named_parameters(), target.named_parameters(), strict=True):
        assert np.array_equal(a.numpy(), b.numpy())


def test_load_state_dict_names_missing_unexpected_and_mismatched_keys() -> None:
    net = Net()
    state = net.state_dict()
    del state["fc1.bias"]
    state["extra.weight"] = np.zeros(3)
    state["scale"] = np.zeros(5)
    with pytest.raises(ValueError) as error:
        net.load_state_dict(state)
    message = str(error.value)
    assert "fc1.bias" in message and "extra.weight" in message and "scale" in message and "(5,)" in message
    del state["scale"]
    missing, unexpected = net.load_state_dict(state, strict=False)
    assert missing == ["scale", "fc1.bias"] and unexpected == ["extra.weight"]


def test_repr_is_a_readable_tree() -> None:
    assert repr(Net()) == (
        "Net(\n"
        "  (fc1): Linear(in_features=3, out_features=4, bias=True)\n"
        "  (block): Sequential(\n"
        "    (0): Tanh()\n"
        "    (1): Linear(in_features=4, out_features=2, bias=False)\n"
        "  )\n"
        ")"
    )


# -- layers ----------------------------------------------------------------------------------------
def test_linear_matches_numpy_and_default_init_is_seeded_and_bounded() -> None:
    layer = nn.Linear(5, 3, rng=4)
    x = np.random.default_rng(0).standard_normal((2, 5))
    assert np.allclose(layer(ab.tensor(x)).numpy(), x @ layer.weight.numpy().T + layer.bias.numpy())
    assert np.array_equal(layer.weight.numpy(), nn.Linear(5, 3, rng=4).weight.numpy())
    assert np.abs(layer.weight.numpy()).max() <= 1 / math.sqrt(5)
    assert nn.Linear(5, 3, dtype=np.float32, rng=0)(ab.ones(1, 5, dtype=np.float32)).dtype == np.float32


@pytest.mark.parametrize(
    "module, shape, smooth",
    [
        (nn.Linear(4, 3, rng=0), (2, 4), True),
        (nn.Sigmoid(), (2, 3), True),
        (nn.Tanh(), (2, 3), True),
        (nn.Softmax(axis=1), (2, 3), True),
        (nn.ReLU(), (2, 3), False),
        (nn.Flatten(), (2, 2, 3), True),
        (nn.Identity(), (3,), True),
        (nn.Conv2d(2, 3, 3, rng=0), (2, 2, 5, 5), True),
        (nn.Conv2d(2, 2, (2, 3), stride=2, padding=1, rng=1), (1, 2, 5, 4), True),
        (nn.MaxPool2d(2), (1, 2, 4, 4), False),
        (nn.MaxPool2d(3, stride=2, padding=1), (1, 2, 5, 5), False),
        (
            nn.Sequential(nn.Conv2d(1, 2, 3, padding=1, rng=0), nn.Tanh(), nn.Flatten(), nn.Linear(18, 2, rng=1)),
            (2, 1, 3, 3),
            True,
        ),
    ],
    ids=repr,
)
def test_layers_gradcheck(module: nn.Module, shape: tuple[int, ...], smooth: bool) -> None:
    rng = np.random.default_rng(1)
    # Distinct values kept away from 0, so ReLU and max pooling meet no kink under finite differences.
    values = rng.permutation(np.prod(shape)).reshape(shape) / np.prod(shape) + 0.05
    x = ab.tensor(values * rng.choice([-1.0, 1.0], size=shape), requires_grad=True)
    check_module(module, x, second_order=smooth)


def test_dropout_gradcheck_with_a_fixed_mask() -> None:
    x = ab.randn(4, 5, requires_grad=True, rng=0)
    assert ab.gradcheck(lambda t: nn.functional.dropout(t, 0.4, rng=1), x)
    assert ab.gradgradcheck(lambda t: nn.functional.dropout(t, 0.4, rng=1), x)


# -- init --------------------------------------------------------------------------------------------
def test_init_helpers_match_their_formulas() -> None:
    w = ab.zeros(400, 300)
    nn.init.xavier_uniform_(w, rng=0)
    assert np.abs(w.numpy()).max() <= math.sqrt(6 / 700) and np.abs(w.numpy()).max() > 0.9 * math.sqrt(6 / 700)
    nn.init.xavier_normal_(w, gain=2.0, rng=0)
    assert abs(w.numpy().std() - 2.0 * math.sqrt(2 / 700)) < 0.02 * 2.0 * math.sqrt(2 / 700)
    nn.init.kaiming_normal_(w, nonlinearity="relu", rng=1)
    assert abs(w.numpy().std() - math.sqrt(2 / 300)) < 0.02 * math.sqrt(2 / 300)
    nn.init.kaiming_uniform_(w, mode="fan_out", nonlinearity="relu", rng=2)
    assert np.abs(w.numpy()).max() <= math.sqrt(6 / 400)
    conv = ab.zeros(8, 3, 5, 5)
    assert nn.init.fans(conv) == (75, 200)
    first = nn.init.uniform_(ab.zeros(3), rng=5).numpy().copy()
    assert np.array_equal(first, nn.init.uniform_(ab.zeros(3), rng=5).numpy())
    assert np.all(nn.init.ones_(ab.zeros(2)).numpy() == 1) and np.all(nn.init.zeros_(ab.ones(2)).numpy() == 0)
    assert nn.init.calculate_gain("tanh") == 5 / 3 and nn.init.calculate_gain("leaky_relu", 0.0) == math.sqrt(2)
    with pytest.raises(ValueError, match="nonlinearity"):
        nn.init.calculate_gain("swish")
    with pytest.raises(ValueError, match="mode"):
        nn.init.kaiming_normal_(w, mode="fan_avg")
    with pytest.raises(ValueError, match="2 dimensions"):
        nn.init.xavier_uniform_(ab.zeros(3))


# -- conv / pool ops ---------------------------------------------------------------------------------
def naive_conv(x: np.ndarray, w: np.ndarray, stride: tuple[int, int], padding: tuple[int, int]) -> np.ndarray:
    (sh, sw), (ph, pw) = stride, padding
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    kh, kw = w.shape[2:]
    ho, wo = (xp.shape[2] - kh) // sh + 1, (xp.shape[3] - kw) // sw + 1
    out = np.zeros((x.shape[0], w.shape[0], ho, wo))
    for i in range(ho):
        for j in range(wo):
            out[:, :, i, j] = np.einsum("nchw,ochw->no", xp[:, :, i * sh : i * sh + kh, j * sw : j * sw + kw], w)
    return out


def naive_pool(x: np.ndarray, k: int, s: int, p: int) -> np.ndarray:
    xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)), constant_values=-np.inf)
    ho, wo = (xp.shape[2] - k) // s + 1, (xp.shape[3] - k) // s + 1
    return np.array(
        [[xp[:, :, i * s : i * s + k, j * s : j * s + k].max(axis=(2, 3)) for j in range(wo)] for i in range(ho)]
    ).transpose(2, 3, 0, 1)


CONV_CASES = [((1, 1), (0, 0)), ((2, 2), (1, 1)), ((2, 1), (0, 1)), ((1, 2), (2, 0))]


@pytest.mark.parametrize("stride, padding", CONV_CASES)
def test_conv_ops_match_numpy_and_are_adjoint(stride: tuple[int, int], padding: tuple[int, int]) -> None:
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal((2, 3, 7, 6)), rng.standard_normal((4, 3, 3, 2))
    y = ab.conv2d(x, w, stride=stride, padding=padding).numpy()
    assert np.allclose(y, naive_conv(x, w, stride, padding))
    g = rng.standard_normal(y.shape)
    extra = _output_padding(x.shape[2:], y.shape[2:], (3, 2), stride, padding)
    dx = ab.conv_transpose2d(g, w, stride=stride, padding=padding, output_padding=extra).numpy()
    dw = ab.conv2d_weight(x, g, (3, 2), stride=stride, padding=padding).numpy()
    # <conv(x, w), g> = <x, conv^T(g, w)> = <w, conv2d_weight(x, g)>
    assert dx.shape == x.shape and dw.shape == w.shape
    assert np.isclose(np.sum(y * g), np.sum(x * dx)) and np.isclose(np.sum(y * g), np.sum(w * dw))


@pytest.mark.parametrize("stride, padding", CONV_CASES)
def test_conv_ops_gradcheck_and_gradgradcheck(stride: tuple[int, int], padding: tuple[int, int]) -> None:
    x = ab.randn(2, 2, 5, 6, requires_grad=True, rng=1)
    w = ab.randn(3, 2, 2, 3, requires_grad=True, rng=2)
    y = ab.conv2d(x, w, stride=stride, padding=padding)
    g = ab.randn(*y.shape, requires_grad=True, rng=3)
    extra = _output_padding(x.shape[2:], y.shape[2:], (2, 3), stride, padding)
    cases = [
        (lambda a, b: ab.conv2d(a, b, stride=stride, padding=padding), (x, w)),
        (lambda a, b: ab.conv_transpose2d(a, b, stride=stride, padding=padding, output_padding=extra), (g, w)),
        (lambda a, b: ab.conv2d_weight(a, b, (2, 3), stride=stride, padding=padding), (x, g)),
    ]
    for fn, inputs in cases:
        assert ab.gradcheck(fn, inputs)
        assert ab.gradgradcheck(fn, inputs)


@pytest.mark.parametrize("k, s, p", [(2, 2, 0), (3, 1, 1), (3, 2, 1), (2, 1, 0)])
def test_max_pool_ops_match_numpy_and_gradcheck(k: int, s: int, p: int) -> None:
    rng = np.random.default_rng(2)
    x = ab.tensor(rng.permutation(2 * 2 * 6 * 5).reshape(2, 2, 6, 5) / 10.0, requires_grad=True)
    assert np.array_equal(ab.max_pool2d(x, k, s, p).numpy(), naive_pool(x.numpy(), k, s, p))
    assert ab.gradcheck(lambda t: ab.max_pool2d(t, k, s, p), x)
    assert ab.gradgradcheck(lambda t: ab.max_pool2d(t, k, s, p), x)
    out = ab.max_pool2d(x, k, s, p)
    g, v = ab.randn(*out.shape, requires_grad=True, rng=3), ab.randn(*x.shape, requires_grad=True, rng=4)
    assert ab.gradcheck(lambda a: max_pool2d_scatter(a, x.detach(), k, s, p), g)
    assert ab.gradcheck(lambda a: max_pool2d_gather(a, x.detach(), k, s, p), v)


def test_max_pool_sends_the_gradient_to_the_first_maximum_on_ties() -> None:
    x = ab.tensor(np.ones((1, 1, 2, 2)), requires_grad=True)
    ab.max_pool2d(x, 2).sum().backward()
    assert x.grad.numpy().ravel().tolist() == [1.0, 0.0, 0.0, 0.0]


def test_conv_and_pool_errors_name_the_shapes() -> None:
    with pytest.raises(ValueError, match=r"conv2d: input has 2 channels.*\(4, 3, 3, 3\)"):
        ab.conv2d(np.zeros((1, 2, 5, 5)), np.zeros((4, 3, 3, 3)))
    with pytest.raises(ValueError, match="must be 4-D"):
        ab.conv2d(np.zeros((2, 5, 5)), np.zeros((4, 2, 3, 3)))
    with pytest.raises(ValueError, match="gives no output"):
        ab.conv2d(np.zeros((1, 1, 2, 2)), np.zeros((1, 1, 3, 3)))
    with pytest.raises(ValueError, match="at most half"):
        ab.max_pool2d(np.zeros((1, 1, 4, 4)), 2, padding=2)
    with pytest.raises(ValueError, match="pair of ints"):
        ab.max_pool2d(np.zeros((1, 1, 4, 4)), (2, 2, 2))


def test_float32_stays_float32_through_a_cnn() -> None:
    model = nn.Sequential(nn.Conv2d(1, 2, 3, rng=0, dtype=np.float32), nn.MaxPool2d(2), nn.Flatten())
    x = ab.tensor(np.ones((2, 1, 6, 6), dtype=np.float32))
    out = model(x)
    ab.sum(out).backward()
    assert out.dtype == np.float32 and model[0].weight.grad.dtype == np.float32


def test_convolution_ops_refuse_inconsistent_shapes() -> None:
    with pytest.raises(ValueError, match="conv_transpose2d: input has 3 channels"):
        ab.conv_transpose2d(ab.ones(1, 3, 2, 2), ab.ones(2, 1, 2, 2))
    with pytest.raises(ValueError, match=r"conv_transpose2d: output_padding=1 must be smaller than the stride"):
        ab.conv_transpose2d(ab.ones(1, 2, 2, 2), ab.ones(2, 1, 2, 2), stride=1, output_padding=1)
    with pytest.raises(ValueError, match="conv2d_weight: grad shape"):
        ab.conv2d_weight(ab.ones(1, 1, 4, 4), ab.ones(1, 1, 2, 2), (2, 2))


def test_modules_name_their_parameters_with_dotted_paths() -> None:
    class Block(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc1 = nn.Linear(3, 4)
            self.scale = nn.Parameter([1.0])

    class Model(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.encoder = Block()
            self.head = nn.Sequential(nn.Linear(4, 2), nn.Tanh())

    model = Model()
    assert [p.name for p in model.parameters()] == [name for name, _ in model.named_parameters()]
    assert [p.name for p in model.parameters()][:3] == ["encoder.scale", "encoder.fc1.weight", "encoder.fc1.bias"]
    own = nn.Parameter([2.0])
    own.name = "temperature"  # a name the user chose is kept
    model.encoder.extra = own
    model.wrapped = model.encoder  # a second home renames what the module system named
    assert own.name == "temperature" and model.encoder.scale.name == "wrapped.scale"


def test_graph_pictures_show_nn_parameter_names() -> None:
    model = nn.Sequential(nn.Linear(3, 2))
    loss = model(ab.tensor(np.ones((1, 3)))).sum()
    source = ab.viz.draw_graph(loss).source
    assert "<B>0.weight</B>" in source and "<B>0.bias</B>" in source


def test_a_masked_logit_at_minus_inf_gives_the_loss_not_nan() -> None:
    # The target is picked by selection, not by multiplying with a one-hot mask (-inf * 0 = nan).
    logits = ab.tensor([[1.0, 2.0, -np.inf]], requires_grad=True)
    loss = nn.functional.cross_entropy(logits, [0])
    np.testing.assert_allclose(loss.item(), np.log(np.exp(1.0) + np.exp(2.0)) - 1.0)
    loss.backward()
    softmax = np.array([1.0, np.e, 0.0]) / (1.0 + np.e)
    np.testing.assert_allclose(logits.grad.data, [softmax - [1.0, 0.0, 0.0]])
    assert nn.functional.nll_loss(ab.tensor([[-0.5, -np.inf]]), [0]).item() == 0.5


def test_assigning_a_plain_tensor_to_a_parameter_is_refused() -> None:
    # Unregistered without a word, the new weight would be neither trained nor saved.
    lin = nn.Linear(2, 1, rng=0)
    with pytest.raises(TypeError, match=r"Linear.weight is a parameter: assign an nn.Parameter"):
        lin.weight = ab.tensor([[1.0, 1.0]], requires_grad=True)
    lin.weight = nn.Parameter([[1.0, 1.0]])
    assert sorted(name for name, _ in lin.named_parameters()) == ["bias", "weight"]


def test_a_module_shared_in_two_places_is_visited_once_as_pytorch_does() -> None:
    # Sequential(l, Tanh(), l): modules() gave l twice, so a penalty summed over the Linear
    # layers counted its weight twice (loss and gradient double PyTorch's), with no error.
    shared = nn.Linear(2, 2, rng=0)
    model = nn.Sequential(shared, nn.Tanh(), shared)
    assert [name for name, _ in model.named_modules()] == ["", "0", "1"]
    assert [module for module in model.modules()] == [model, shared, model[1]]
    assert [name for name, _ in model.named_children()] == ["0", "1"] and len(list(model.children())) == 2
    assert len(model) == 3 and [type(m).__name__ for m in model] == ["Linear", "Tanh", "Linear"]  # (still run twice)
    penalty = sum((m.weight * m.weight).sum() for m in model.modules() if isinstance(m, nn.Linear))
    np.testing.assert_allclose(penalty.item(), (shared.weight.numpy() ** 2).sum(), rtol=1e-15)
    penalty.backward()
    np.testing.assert_allclose(shared.weight.grad.numpy(), 2 * shared.weight.numpy(), rtol=1e-15)
    # A module that holds itself (or an ancestor) is walked once, not without end.
    loop = nn.Sequential(nn.Linear(1, 1, rng=0))
    loop.add_module("again", loop)
    assert [name for name, _ in loop.named_modules()] == ["", "0"]
    assert [name for name, _ in loop.named_parameters()] == ["0.weight", "0.bias"]


def test_an_array_or_a_list_into_a_parameter_slot_or_register_parameter_is_refused() -> None:
    # A numpy array (or a list) in the weight's place: forward computes with it, but it is in no
    # parameters() and no state_dict, so an optimizer never trains it (PyTorch raises). So was a
    # plain Tensor or array given to register_parameter, kept as a plain attribute.
    lin = nn.Linear(2, 1, rng=0)
    with pytest.raises(TypeError, match=r"Linear.weight is a parameter: assign an nn.Parameter.*got ndarray"):
        lin.weight = np.ones((1, 2))
    with pytest.raises(TypeError, match=r"Linear.weight is a parameter: assign an nn.Parameter.*got list"):
        lin.weight = [[1.0, 1.0]]
    empty = nn.Linear(2, 1, bias=False, rng=0)
    with pytest.raises(TypeError, match=r"parameter slot \(None now\)"):
        empty.bias = np.zeros(1)
    assert [name for name, _ in lin.named_parameters()] == ["weight", "bias"]
    assert [name for name, _ in empty.named_parameters()] == ["weight"]
    module = nn.Module()
    for value in (ab.tensor([1.0], requires_grad=True), np.ones(2), [1.0]):
        with pytest.raises(TypeError, match=r"Module.register_parameter\('w'\): expected an nn.Parameter or None"):
            module.register_parameter("w", value)
        assert not hasattr(module, "w")
    module.register_parameter("w", nn.Parameter([1.0]))
    module.register_parameter("b", None)
    assert [name for name, _ in module.named_parameters()] == ["w"] and list(module._parameters) == ["w", "b"]


def test_a_tensor_into_an_empty_parameter_slot_is_refused_and_slots_keep_their_order() -> None:
    # Linear(bias=False), then .bias = a tensor: used by forward, but in no parameters() and no
    # state_dict, so never trained or saved, with no error (PyTorch raises).
    lin = ab.nn.Linear(2, 1, bias=False, rng=0)
    with pytest.raises(TypeError, match=r"Linear.bias is a parameter slot \(None now\): assign an nn.Parameter"):
        lin.bias = ab.tensor([1.0], requires_grad=True)
    lin.bias = ab.nn.Parameter(ab.tensor([1.0]))
    assert [name for name, _ in lin.named_parameters()] == ["weight", "bias"]
    # A replaced parameter (or sub-module) keeps its place: an optimizer's state is kept by position.
    full = ab.nn.Linear(2, 1, rng=0)
    full.weight = ab.nn.Parameter(ab.zeros((1, 2)))
    assert [name for name, _ in full.named_parameters()] == ["weight", "bias"]
    full.bias = None  # (the slot stays, as bias=False leaves it)
    with pytest.raises(TypeError, match="parameter slot"):
        full.bias = ab.tensor([0.0])
    seq = ab.nn.Sequential(ab.nn.Linear(2, 2, rng=0), ab.nn.Linear(2, 1, rng=1))
    setattr(seq, "0", ab.nn.Linear(2, 2, rng=2))  # (Sequential names its layers by position)
    assert [name for name, _ in seq.named_parameters()] == ["0.weight", "0.bias", "1.weight", "1.bias"]


def test_a_parameter_made_of_a_tensor_on_a_graph_is_a_new_leaf_of_its_values() -> None:
    """``nn.Parameter(t)`` is a new leaf by its name, as PyTorch's is: of a tensor on a graph it takes
    the values (where ``ab.tensor(t)`` refuses to drop the gradient unsaid); the new leaf's
    gradient is its own, and ``t``'s graph is untouched."""
    w = ab.tensor([1.0, 2.0], requires_grad=True)
    p = nn.Parameter(w * 2.0)
    assert p.is_leaf and p.requires_grad and p.data.tolist() == [2.0, 4.0]
    (p * p).sum().backward()
    assert p.grad.data.tolist() == [4.0, 8.0] and w.grad is None
    with pytest.raises(TypeError, match="requires grad; the copy is on no graph"):
        ab.tensor(w * 2.0)
