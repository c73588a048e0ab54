"""The model stack on other array libraries: creation, Module.to, optimizers, save/load, the seed
Network and the MNIST examples give numpy's numbers (same seed) with torch and array_api_strict.

Every library is compared with a numpy run of the same code: float64 to 1e-12, float32 to the
tolerance its rounding allows. With ``--array-library X`` (not numpy) only X runs.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import autobp as ab
from autobp import backends, nn, optim
from autobp.models import Network

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "lib" in metafunc.fixturenames:
        chosen = metafunc.config.getoption("--array-library")
        names = ["array_api_strict", "torch"] if chosen == "numpy" else [chosen]
        metafunc.parametrize("lib", names, indirect=True)


@pytest.fixture
def lib(request: pytest.FixtureRequest) -> backends.Namespace:
    """The library under test (torch is a test-time extra: skipped with the reason when missing)."""
    if request.param in ("torch", "cupy"):
        pytest.importorskip(request.param, reason=f"{request.param} is not installed")
    return backends.library(request.param)


def host(value: Any) -> np.ndarray:
    """A Tensor's or array's values as a numpy array (copied off other libraries)."""
    data = value.data if isinstance(value, ab.Tensor) else value
    return np.asarray(data) if isinstance(data, np.ndarray) else backends.namespace(data).to_numpy(data)


def assert_in(value: Any, lib: backends.Namespace, dtype: str) -> None:
    data = value.data if isinstance(value, ab.Tensor) else value
    assert backends.library_of(data) is lib and lib.dtype_name(data.dtype) == dtype, backends.describe(data)


# -- creation ------------------------------------------------------------------------------------
CREATIONS = {
    "zeros": lambda **kw: ab.zeros(2, 3, **kw),
    "ones": lambda **kw: ab.ones((2, 3), **kw),
    "full": lambda **kw: ab.full((2, 3), 1.5, **kw),
    "arange": lambda **kw: ab.arange(0.0, 3.0, 0.5, **kw),
    "linspace": lambda **kw: ab.linspace(-1.0, 1.0, 7, **kw),
    "eye": lambda **kw: ab.eye(3, 4, **kw),
    "randn": lambda **kw: ab.randn(3, 4, rng=11, **kw),
    "rand": lambda **kw: ab.rand(3, 4, rng=11, **kw),
    "uniform": lambda **kw: ab.uniform(-2.0, 3.0, (3, 4), rng=11, **kw),
    "normal": lambda **kw: ab.normal(1.0, 0.5, (3, 4), rng=11, **kw),
}


@pytest.mark.parametrize("name", list(CREATIONS))
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_creation_with_library_gives_numpys_values_there(lib: backends.Namespace, name: str, dtype: str) -> None:
    make = CREATIONS[name]
    expected = make(dtype=dtype)
    got = make(dtype=dtype, library=lib.name, requires_grad=True)
    assert_in(got, lib, dtype)
    assert got.requires_grad and got.is_leaf
    np.testing.assert_array_equal(host(got), host(expected))  # a seed draws the same numbers everywhere
    # The library's own dtype object names the same dtype.
    assert_in(make(dtype=getattr(lib, dtype), library=lib.name), lib, dtype)


def test_random_draws_continue_one_generator_the_same_way_on_every_library(lib: backends.Namespace) -> None:
    rngs = np.random.default_rng(5), np.random.default_rng(5)
    for _ in range(3):
        np.testing.assert_array_equal(host(ab.randn(4, rng=rngs[0], library=lib.name)), host(ab.randn(4, rng=rngs[1])))


@pytest.mark.parametrize("like", ["zeros_like", "ones_like", "full_like"])
def test_like_functions_follow_their_arguments_library_and_dtype(lib: backends.Namespace, like: str) -> None:
    source = ab.randn(2, 3, dtype="float32", rng=0, library=lib.name)
    extra = (2.5,) if like == "full_like" else ()
    for given in (source, source.data):  # a Tensor or a bare array
        got = getattr(ab, like)(given, *extra)
        assert_in(got, lib, "float32")
        np.testing.assert_array_equal(host(got), host(getattr(ab, like)(np.zeros((2, 3), np.float32), *extra)))
    assert_in(getattr(ab, like)(source, *extra, dtype=np.float64), lib, "float64")


# -- Module.to -----------------------------------------------------------------------------------
def mlp(seed: int = 0, dtype: Any = np.float64) -> nn.Module:
    return nn.Sequential(nn.Linear(5, 4, rng=seed, dtype=dtype), nn.Tanh(), nn.Linear(4, 3, rng=seed + 1, dtype=dtype))


def test_module_to_moves_every_parameter_in_place_keeping_names_and_flags(lib: backends.Namespace) -> None:
    model = mlp(dtype=np.float32)
    before = {name: (param, host(param).copy(), param._version) for name, param in model.named_parameters()}
    model[0].bias.requires_grad_(False)
    model[2].weight.grad = ab.ones(3, 4, dtype="float32")
    assert model.to(lib.name) is model
    after = dict(model.named_parameters())
    assert list(after) == list(before)
    for name, (param, values, version) in before.items():
        assert after[name] is param and param.name == name and param._version > version
        assert_in(param, lib, "float32")
        np.testing.assert_array_equal(host(param), values)
    assert not model[0].bias.requires_grad and model[0].weight.requires_grad
    assert_in(model[2].weight.grad, lib, "float32")
    # Already there: nothing is copied and graphs that saved the parameters stay valid.
    arrays = [p.data for p in model.parameters()]
    versions = [p._version for p in model.parameters()]
    model.to(lib.name, device="cpu")
    assert [p.data for p in model.parameters()] == arrays and [p._version for p in model.parameters()] == versions
    model.to("numpy")
    for param, values, _ in before.values():
        assert type(param.data) is np.ndarray and np.array_equal(param.data, values)


def test_module_zero_grad_to_zeros_stays_in_the_library(lib: backends.Namespace) -> None:
    model = mlp().to(lib.name)
    for param in model.parameters():
        param.grad = ab.ones_like(param)
    model.zero_grad(set_to_none=False)
    for param in model.parameters():
        assert_in(param.grad, lib, "float64")
        assert not host(param.grad).any()


def test_network_to_moves_weights_and_biases(lib: backends.Namespace) -> None:
    net = Network([4, 3, 2], rng=0)
    values = [host(p).copy() for p in net.parameters()]
    assert net.to(lib.name) is net
    for param, expected in zip(net.parameters(), values, strict=True):
        assert_in(param, lib, "float64")
        np.testing.assert_array_equal(host(param), expected)


# -- optimizers ----------------------------------------------------------------------------------
OPTIMIZERS = {
    "sgd": lambda ps: optim.SGD(ps, lr=0.1),
    "momentum": lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9, dampening=0.2, weight_decay=0.05),
    "nesterov": lambda ps: optim.SGD(ps, lr=0.1, momentum=0.8, nesterov=True),
    "adam": lambda ps: optim.Adam(ps, lr=0.05, weight_decay=0.1),
    "amsgrad": lambda ps: optim.Adam(ps, lr=0.05, amsgrad=True),
    "adamw": lambda ps: optim.AdamW(ps, lr=0.05),
}


def steps(make: Any, library: str | None, dtype: str, count: int = 4) -> tuple[list[ab.Tensor], optim.Optimizer]:
    """``count`` steps with seeded gradients and a StepLR schedule; returns the parameters and the optimizer."""
    params = [ab.randn(3, 4, rng=0, dtype=dtype, requires_grad=True, library=library)]
    params.append(ab.randn(4, rng=1, dtype=dtype, requires_grad=True, library=library))
    optimizer = make(params)
    schedule = optim.StepLR(optimizer, step_size=2, gamma=0.5)
    rng = np.random.default_rng(2)
    for _ in range(count):
        for param in params:
            param.grad = ab.randn(*param.shape, rng=rng, dtype=dtype, library=library)
        optimizer.step()
        schedule.step()
    return params, optimizer


@pytest.mark.parametrize("kind", list(OPTIMIZERS))
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_optimizers_update_in_place_in_the_library_as_on_numpy(lib: backends.Namespace, kind: str, dtype: str) -> None:
    expected, _ = steps(OPTIMIZERS[kind], None, dtype)
    arrays = [p.data for p in steps(OPTIMIZERS[kind], lib.name, dtype, count=0)[0]]
    got, optimizer = steps(OPTIMIZERS[kind], lib.name, dtype)
    tolerance = 1e-12 if dtype == "float64" else 1e-6
    for param, reference in zip(got, expected, strict=True):
        assert_in(param, lib, dtype)
        np.testing.assert_allclose(host(param), host(reference), rtol=tolerance, atol=tolerance)
        for value in optimizer.state[id(param)].values():  # the state lives with the parameter
            if not isinstance(value, int):
                assert_in(value, lib, dtype)
    assert all(backends.library_of(a) is lib for a in arrays)


def test_an_update_writes_the_parameters_array_and_bumps_its_version(lib: backends.Namespace) -> None:
    param = ab.ones(3, requires_grad=True, library=lib.name)
    array, version = param.data, param._version
    param.grad = ab.full((3,), 2.0, library=lib.name)
    optim.SGD([param], lr=0.25).step()
    assert param.data is array and param._version == version + 1
    np.testing.assert_array_equal(host(array), np.full(3, 0.5))


def test_an_optimizer_built_before_model_to_refuses_to_mix_libraries(lib: backends.Namespace) -> None:
    model = mlp()
    optimizer = optim.Adam(model.parameters(), lr=0.1)
    for param in model.parameters():
        param.grad = ab.ones_like(param)
    optimizer.step()  # state made on numpy
    model.to(lib.name)
    for param in model.parameters():
        param.grad = ab.ones_like(param)
    with pytest.raises(backends.MixedArraysError, match=r"Adam\.step: .*build the optimizer after model\.to"):
        optimizer.step()


# -- save and load -------------------------------------------------------------------------------
def test_save_writes_host_copies_and_load_puts_them_back(lib: backends.Namespace, tmp_path: Path) -> None:
    model = mlp(dtype=np.float32).to(lib.name)
    optimizer = optim.Adam(model.parameters(), lr=0.1)
    for param in model.parameters():
        param.grad = ab.ones_like(param)
    optimizer.step()
    path = tmp_path / "state.npz"
    ab.save({"model": model.state_dict(), "optimizer": optimizer.state_dict()}, path)
    on_host = ab.load(path)
    for name, param in model.named_parameters():
        assert type(on_host["model"][name].data) is np.ndarray
        np.testing.assert_array_equal(on_host["model"][name].numpy(), host(param))
    there = ab.load(path, library=lib.name)
    assert_in(there["model"]["0.weight"], lib, "float32")
    assert_in(there["optimizer"]["state"][0]["exp_avg"], lib, "float32")
    assert there["optimizer"]["state"][0]["step"] == 1
    # load_state_dict copies into each model's own library, whichever library the state is in.
    for state in (on_host, there):
        for target in (mlp(seed=7, dtype=np.float32), mlp(seed=7, dtype=np.float32).to(lib.name)):
            library = target[0].weight.library
            target.load_state_dict(state["model"])
            for name, param in target.named_parameters():
                assert param.library == library
                np.testing.assert_array_equal(host(param), host(model.state_dict()[name]))


def test_load_state_dict_writes_into_the_parameters_memory_where_the_library_writes_in_place(
    lib: backends.Namespace,
) -> None:
    """As on numpy (and in PyTorch), the loaded values go into the parameter's own array on torch:
    a ``detach()`` of the parameter, which shares its memory and sees every optimizer step, sees
    them too. A new tensor in the parameter's place left it holding the old weights on torch
    alone. array-api-strict has no writes into shared memory: there the array is replaced."""
    model = nn.Linear(2, 2, rng=0, dtype=np.float32).to(lib.name)
    held, data = model.weight.detach(), model.weight.data
    version = model.weight._version
    model.load_state_dict({"weight": np.arange(4.0).reshape(2, 2), "bias": np.zeros(2)})  # float64 in: cast
    assert_in(model.weight, lib, "float32")
    assert host(model.weight).tolist() == [[0.0, 1.0], [2.0, 3.0]] and model.weight._version > version
    if lib.name == "torch":
        assert model.weight.data is data
        assert host(held).tolist() == [[0.0, 1.0], [2.0, 3.0]]
        import torch

        # A torch model's Parameters (which require grad in torch) load as values: the array
        # stays off torch's graph.
        model.load_state_dict({"weight": torch.nn.Parameter(torch.ones(2, 2)), "bias": torch.zeros(2)})
        assert not model.weight.data.requires_grad and model.weight.data is data
        assert host(held).tolist() == [[1.0, 1.0], [1.0, 1.0]]
    on_numpy = nn.Linear(2, 2, rng=0)  # the behaviour torch follows
    numpy_held = on_numpy.weight.detach()
    on_numpy.load_state_dict({"weight": np.arange(4.0).reshape(2, 2), "bias": np.zeros(2)})
    assert numpy_held.numpy().tolist() == [[0.0, 1.0], [2.0, 3.0]]


def test_load_puts_big_endian_arrays_in_the_library_in_native_order(lib: backends.Namespace, tmp_path: Path) -> None:
    """A file written on a big-endian machine (or of a ">f8" array) is no damaged file: its arrays
    reach the library byte-swapped, values and dtype kind kept (torch refuses other byte orders)."""
    path = tmp_path / "big_endian.npz"
    ab.save({"w": ab.tensor(np.arange(3, dtype=">f8")), "i": np.array([1, -2, 300], ">i4")}, path)
    there = ab.load(path, library=lib.name)
    assert_in(there["w"], lib, "float64")
    assert_in(there["i"], lib, "int32")
    assert host(there["w"]).tolist() == [0.0, 1.0, 2.0] and host(there["i"]).tolist() == [1, -2, 300]
    moved = ab.tensor(np.arange(3, dtype=">f4")).to(lib.name)
    assert_in(moved, lib, "float32")
    assert host(moved).tolist() == [0.0, 1.0, 2.0]


def test_load_names_an_entry_the_library_cannot_hold_and_calls_no_file_damaged(
    lib: backends.Namespace, tmp_path: Path
) -> None:
    ab.save({"names": np.array(["a", "b"])}, tmp_path / "names.npz")
    with pytest.raises(TypeError, match=rf"entry 'd:names\|array' holds <U1\[2\], which {lib.name} cannot hold"):
        ab.load(tmp_path / "names.npz", library=lib.name)


def test_optimizer_state_round_trip_through_a_file_resumes_exactly(lib: backends.Namespace, tmp_path: Path) -> None:
    uninterrupted, _ = steps(OPTIMIZERS["amsgrad"], lib.name, "float64", count=4)
    params, optimizer = steps(OPTIMIZERS["amsgrad"], lib.name, "float64", count=2)
    ab.save(optimizer.state_dict(), tmp_path / "opt.npz")
    resumed = OPTIMIZERS["amsgrad"](params)
    resumed.load_state_dict(ab.load(tmp_path / "opt.npz"))  # numpy arrays: copied to the parameters' library
    assert_in(resumed.state[id(params[0])]["exp_avg"], lib, "float64")
    rng = np.random.default_rng(2)
    for _ in range(2):  # the generator's first two steps' draws, then the two resumed steps
        for param in params:
            ab.randn(*param.shape, rng=rng)
    for _ in range(2):
        for param in params:
            param.grad = ab.randn(*param.shape, rng=rng, library=lib.name)
        resumed.step()
    for param, reference in zip(params, uninterrupted, strict=True):
        np.testing.assert_array_equal(host(param), host(reference))


# -- the seed network and the MNIST examples, end to end -------------------------------------------
def small_classification(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """40 examples of 12 features as columns, 4 classes: (x (12, 40), labels (40,))."""
    rng = np.random.default_rng(seed)
    return rng.random((12, 40)), rng.integers(0, 4, 40)


@pytest.mark.parametrize("taped", [False, True])
def test_the_seed_network_trains_to_numpys_weights(lib: backends.Namespace, taped: bool) -> None:
    data = small_classification()
    runs = []
    for library in (None, lib.name):
        net = Network([12, 6, 4], rng=0, taped=taped)
        if library is not None:
            net.to(library)
        history = net.SGD(data, 2, 8, 3.0, test_data=data)
        runs.append((net, history))
    (expected, expected_history), (got, history) = runs
    assert [(r["correct"], r["total"]) for r in history] == [(r["correct"], r["total"]) for r in expected_history]
    np.testing.assert_allclose([r["loss"] for r in history], [r["loss"] for r in expected_history], rtol=1e-12)
    for param, reference in zip(got.parameters(), expected.parameters(), strict=True):
        assert_in(param, lib, "float64")
        np.testing.assert_allclose(host(param), host(reference), rtol=1e-12, atol=1e-12)
    # backprop and update_mini_batch take host data too, and answer in the network's library.
    x, labels = data
    y = ab.models.one_hot(labels[:5], 4)
    (got_b, got_w), (expected_b, expected_w) = got.backprop(x[:, :5], y), expected.backprop(x[:, :5], y)
    for gradient, reference in zip(got_b + got_w, expected_b + expected_w, strict=True):
        assert_in(gradient, lib, "float64")
        np.testing.assert_allclose(host(gradient), host(reference), rtol=1e-12, atol=1e-12)
    assert got.update_mini_batch((x[:, :5], y), 1.0) == pytest.approx(expected.update_mini_batch((x[:, :5], y), 1.0))


def test_the_seed_network_refuses_another_librarys_data(lib: backends.Namespace) -> None:
    net = Network([3, 2], rng=0)
    with pytest.raises(backends.MixedArraysError, match="move one first"):
        net.predict(lib.from_numpy(np.ones((3, 2))))


@pytest.fixture(scope="module")
def examples() -> Any:
    """The MNIST examples' modules, imported as the scripts import each other."""
    sys.path.insert(0, str(EXAMPLES))
    try:
        import cnn_mnist
        import mlp_mnist
        import mnist_common
    finally:
        sys.path.remove(str(EXAMPLES))
    return mlp_mnist, cnn_mnist, mnist_common


@pytest.mark.parametrize("script", ["mlp_mnist", "cnn_mnist"])
def test_the_mnist_examples_take_numpys_steps_with_library(lib: backends.Namespace, examples: Any, script: str) -> None:
    mlp_mnist, cnn_mnist, common = examples
    module, width = (mlp_mnist, 32) if script == "mlp_mnist" else (cnn_mnist, 2)  # small: a few seconds
    flags = ["--limit", "96", "--batch-size", "32", "--epochs", "2"]
    runs = []
    for library in (None, lib.name):
        args = module.parse(flags + (["--library", library] if library else []))
        train_x, train_y, test_x, test_y = common.load(args, f"{script}.py", channel_axis=script == "cnn_mnist")
        model = module.build(width, 0)
        accuracy = common.train(model, args, (train_x, train_y, test_x[:100], test_y[:100]), decay_every=1)
        runs.append((model, accuracy))
    (expected, expected_accuracy), (got, accuracy) = runs
    assert accuracy == expected_accuracy
    for (name, param), reference in zip(got.named_parameters(), expected.parameters(), strict=True):
        assert_in(param, lib, "float32")
        # float32 through six Adam steps: torch sums in another order (measured: 4e-8 at most).
        np.testing.assert_allclose(host(param), host(reference), rtol=1e-5, atol=1e-6, err_msg=name)


def test_autobp_demo_with_library_trains_as_on_numpy(
    lib: backends.Namespace, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    from autobp import cli

    histories = []
    for library in ("numpy", lib.name):
        out = tmp_path / library
        flags = ["demo", "--epochs", "1", "--limit", "300", "--sizes", "784,8,10", "--out", str(out)]
        assert cli.main([*flags, "--library", library]) == 0, capsys.readouterr().out
        histories.append(json.loads((out / "history.json").read_text()))
    expected, got = histories
    assert [(r["correct"], r["total"]) for r in got] == [(r["correct"], r["total"]) for r in expected]
    assert [r["loss"] for r in got] == pytest.approx([r["loss"] for r in expected], rel=1e-12)


def test_save_names_the_entry_whose_dtype_numpy_lacks_and_writes_no_file(tmp_path: Path) -> None:
    # torch's own error ("Got unsupported ScalarType BFloat16") named neither the entry nor a way out.
    torch = pytest.importorskip("torch")
    weight = ab.tensor(torch.ones(2, 3, dtype=torch.bfloat16), requires_grad=True)
    path = tmp_path / "model.npz"
    for obj, where, what, cast in [
        ({"model": {"fc.weight": weight}}, "d:model/d:fc.weight", "Tensor", "ab.astype(t, 'float32')"),
        ([1.0, torch.zeros(2, dtype=torch.float8_e4m3fn)], "l:1", "array", "t.to(torch.float32)"),
    ]:
        with pytest.raises(TypeError) as error:
            ab.save(obj, path)
        message = str(error.value)
        assert message.startswith("save: cannot store the torch ") and f" {what} at {where!r}: numpy" in message
        assert cast in message and "and back after loading" in message
        assert not path.exists()
    ab.save({"model": {"fc.weight": ab.astype(weight, "float32")}}, path)  # the way out, exact
    back = ab.load(path, library="torch")["model"]["fc.weight"]
    assert torch.equal(ab.astype(back, "bfloat16").data, weight.data)
