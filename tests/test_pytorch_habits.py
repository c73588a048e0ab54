"""PyTorch spellings a newcomer types give errors that say autobp's (numpy's) spelling."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import autobp as ab

REDUCTIONS = ["sum", "mean", "max", "min", "prod", "var", "std", "logsumexp", "argmax", "argmin"]


@pytest.mark.parametrize("method", REDUCTIONS)
def test_dim_and_keepdim_name_axis_and_keepdims(method: str) -> None:
    x = ab.tensor(np.arange(6.0).reshape(2, 3))
    # The op is named as the user called it, not the forward that runs it (`_sum`, `_extreme.<locals>.forward`).
    unexpected = rf"^{method}: {method}\(\) got an unexpected keyword argument 'dim'"
    with pytest.raises(TypeError, match=unexpected + ".*axis= instead of dim="):
        getattr(x, method)(dim=1)
    with pytest.raises(TypeError, match=r"keepdims= instead of keepdim="):
        getattr(x, method)(axis=1, keepdim=True)
    # The numpy spelling works and computes what numpy computes.
    want = getattr(np, method if method != "logsumexp" else "sum")(x.data, axis=1, keepdims=True)
    got = getattr(x, method)(axis=1, keepdims=True).numpy()
    if method == "logsumexp":
        want = np.log(np.exp(x.data).sum(axis=1, keepdims=True))
    np.testing.assert_allclose(got, want, rtol=1e-12)


def test_squeeze_dim_names_axis() -> None:
    x = ab.ones((1, 3))
    with pytest.raises(TypeError, match=r"^squeeze: .*axis= instead of dim="):
        x.squeeze(dim=0)
    assert x.squeeze(axis=0).shape == (3,)


def test_size_stays_a_plain_int_so_float32_stays_float32() -> None:
    """x.size() cannot explain itself: an int subclass would change numpy's type promotion."""
    x = ab.ones((2, 3), dtype=np.float32)
    assert type(x.size) is int and x.size == 6
    assert (x.data / x.size).dtype == np.float32 and (x / x.size).dtype == np.float32


def test_saving_a_model_says_to_save_its_state_dict(tmp_path: Path) -> None:
    model = ab.nn.Linear(2, 3, rng=0)
    for obj in (model, {"model": model}):
        with pytest.raises(TypeError, match=r"save its state: ab\.save\(model\.state_dict\(\), path\)"):
            ab.save(obj, tmp_path / "m.npz")
    ab.save(model.state_dict(), tmp_path / "m.npz")  # the advice works
    restored = ab.nn.Linear(2, 3, rng=1)
    restored.load_state_dict(ab.load(tmp_path / "m.npz"))
    np.testing.assert_array_equal(restored.weight.data, model.weight.data)


@pytest.mark.parametrize("optimizer", [ab.optim.SGD, ab.optim.Adam, ab.optim.AdamW])
def test_optimizers_given_the_model_say_to_pass_its_parameters(optimizer: type) -> None:
    model = ab.nn.Sequential(ab.nn.Linear(2, 1))
    with pytest.raises(
        TypeError, match=rf"{optimizer.__name__}: got the model \(Sequential\) itself; .*model\.parameters\(\)"
    ):
        optimizer(model, lr=0.1)
    assert optimizer(model.parameters(), lr=0.1).param_groups[0]["params"] == list(model.parameters())


@pytest.mark.parametrize("name", ["sum", "mean", "max", "min", "prod", "var", "std", "logsumexp"])
def test_function_forms_name_numpy_keywords(name: str) -> None:
    x = ab.tensor([[1.0, 2.0], [3.0, 4.0]])
    with pytest.raises(TypeError, match=rf"{name}: .*write axis= instead of dim="):
        getattr(ab, name)(x, dim=1)
    with pytest.raises(TypeError, match=r"write keepdims= instead of keepdim=$"):
        getattr(ab, name)(x, axis=1, keepdim=True)


@pytest.mark.parametrize("name", ["var", "std"])
def test_var_and_std_name_ddof_for_pytorchs_correction_and_its_default(name: str) -> None:
    # numpy's var and std default to ddof=0, PyTorch's to the unbiased correction=1: a PyTorch
    # spelling is refused with numpy's keyword and both defaults named.
    x = ab.tensor([[1.0, 2.0], [3.0, 5.0]])
    for keyword in ("correction", "unbiased"):
        expected = rf"^{name}: .*write ddof= instead of {keyword}= \(.*ddof=0.*correction=1\)$"
        with pytest.raises(TypeError, match=expected):
            getattr(ab, name)(x, **{keyword: 1})
        with pytest.raises(TypeError, match=rf"write ddof= instead of {keyword}="):
            getattr(x, name)(axis=0, **{keyword: True})
    np.testing.assert_allclose(getattr(ab, name)(x, axis=0, ddof=1).numpy(), getattr(np, name)(x.data, axis=0, ddof=1))
