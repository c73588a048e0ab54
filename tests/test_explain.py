"""``ab.viz.explain`` and ``autobp explain``: the steps come from the engine, BP1-BP4 equal the reference.

The expected numbers are derived independently: ``autobp.reference.backprop`` (hand-written numpy),
gradients from ``ab.grad``, and the order in which the engine runs hooks on a plain ``backward``.
"""

from __future__ import annotations

import json
import re
import struct
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

import autobp as ab
from autobp import reference
from autobp.cli import main
from autobp.cli_explain import example
from autobp.models import Network
from autobp.viz.explain_text import array_text


def _seed_explanation(sizes: list[int], seed: int = 0, columns: int = 1, eta: float | None = None) -> tuple:
    net = Network(sizes, rng=seed, taped=False)
    rng = np.random.default_rng(seed + 100)
    x = rng.uniform(0.0, 1.0, (sizes[0], columns))
    y = np.eye(sizes[-1])[:, rng.integers(0, sizes[-1], columns)]
    explanation = ab.viz.explain(net.cost(x, y), eta=eta)
    arrays = ([w.data for w in net.weights], [b.data for b in net.biases])
    return explanation, arrays, x, y


def _sent_to(explanation: ab.viz.explainer.Explanation, label: str) -> np.ndarray:
    """The gradient a step's vjp rule sent to the tensor labelled ``label`` (exactly one step sends it)."""
    found = [f.gradient for s in explanation.steps for f in s.flows if f.label == label and f.gradient is not None]
    assert len(found) == 1, f"{label}: sent by {len(found)} steps"
    return found[0]


@pytest.mark.parametrize("sizes", [[2, 3, 2], [3, 4, 5, 2]])
def test_bp_equations_equal_the_reference_backprop(sizes: list[int]) -> None:
    explanation, (weights, biases), x, y = _seed_explanation(sizes)
    nabla_b, nabla_w = reference.backprop(weights, biases, x, y)
    layers = len(sizes) - 1
    for n in range(1, layers + 1):
        # delta^n is what the layer's sigmoid sends to z^n (BP1 for the last layer, BP2 below it).
        np.testing.assert_allclose(_sent_to(explanation, f"z{n}"), nabla_b[n - 1], rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(_sent_to(explanation, f"b{n}"), nabla_b[n - 1], rtol=1e-12, atol=1e-15)  # BP3
        np.testing.assert_allclose(_sent_to(explanation, f"w{n}"), nabla_w[n - 1], rtol=1e-12, atol=1e-15)  # BP4
    by_equation = {c.equation for c in explanation.checks}
    assert by_equation == {"BP1", "BP3", "BP4"} | ({"BP2"} if layers > 1 else set())
    assert all(c.ok for c in explanation.checks)
    # One check per BP3/BP4 per layer, one delta per layer, and BP1's first factor a^L - y.
    assert len(explanation.checks) == 3 * layers + 1
    assert explanation.engine_max_diff == 0.0


def test_a_mismatch_is_reported_not_hidden() -> None:
    explanation, *_ = _seed_explanation([2, 3, 2])
    check = explanation.checks[0]
    check.reference = check.reference + 1e-6
    assert not check.ok and check.max_diff == pytest.approx(1e-6)
    assert "MISMATCH" in str(explanation)


def test_mini_batch_checks_sum_delta_over_examples() -> None:
    explanation, (weights, biases), x, y = _seed_explanation([2, 3, 2], columns=3)
    nabla_b, nabla_w = reference.backprop_batch(weights, biases, x, y)
    assert all(c.ok for c in explanation.checks)
    np.testing.assert_allclose(_sent_to(explanation, "b1"), nabla_b[0], rtol=1e-12)
    np.testing.assert_allclose(_sent_to(explanation, "w1"), nabla_w[0], rtol=1e-12)
    assert _sent_to(explanation, "z1").shape == (3, 3)  # delta keeps one column per example


def test_steps_follow_the_engines_order() -> None:
    a = ab.tensor([0.5, -1.0, 2.0], requires_grad=True)
    w = ab.tensor([1.5, 0.25, -0.5], requires_grad=True)
    hidden = ab.tanh(a * w)
    loss = (hidden * hidden).sum() + (ab.exp(hidden) * a).sum()  # a and hidden are used twice
    intermediates = {}
    order: list[str] = []
    stack = [loss]
    while stack:
        tensor = stack.pop()
        if tensor.grad_fn is None or id(tensor) in intermediates:
            continue
        intermediates[id(tensor)] = tensor
        stack.extend(t for t in tensor.grad_fn.inputs if isinstance(t, ab.Tensor) and t.requires_grad)
    explanation = ab.viz.explain(loss, names={"a": a, "w": w})
    labels = dict(explanation.labels)
    handles = [t.register_hook(lambda g, t=t: order.append(t)) for t in intermediates.values()]
    loss.backward(retain_graph=True)
    for handle in handles:
        handle.remove()
    by_tensor = {id(t): name for name, t in labels.items()}
    assert [s.output for s in explanation.steps] == [by_tensor[id(t)] for t in order]
    # The rules' gradients, summed per leaf, are the engine's, and explain left .grad alone before.
    got = dict(explanation.leaves)
    np.testing.assert_array_equal(got["a"], a.grad.numpy())
    np.testing.assert_array_equal(got["w"], w.grad.numpy())
    assert explanation.engine_max_diff == 0.0


def test_incoming_gradients_are_the_retained_grads() -> None:
    x = ab.tensor([[0.3, -0.2], [1.0, 0.4]], requires_grad=True)
    middle = ab.sigmoid(x @ x)
    middle.retain_grad()
    loss = (middle * 3.0).sum()
    explanation = ab.viz.explain(loss, names={"x": x, "middle": middle})
    assert middle.grad is None and x.grad is None  # explaining writes no .grad, retained or not
    loss.backward()
    (step,) = [s for s in explanation.steps if s.output == "middle"]
    np.testing.assert_array_equal(step.incoming, middle.grad.numpy())
    assert step.op == "sigmoid" and [name for name, _ in step.saved] == ["out = middle"]


def test_a_users_model_gets_steps_without_the_bp_mapping() -> None:
    model = ab.nn.Sequential(ab.nn.Linear(3, 4), ab.nn.Tanh(), ab.nn.Linear(4, 1))
    x, y = ab.randn(5, 3, rng=0), ab.randn(5, 1, rng=1)
    loss = ((model(x) - y) ** 2).mean()
    explanation = ab.viz.explain(loss, names=model.named_parameters())
    assert explanation.seed is None and not explanation.checks
    assert not any(step.notes for step in explanation.steps)
    assert all(p.grad is None for p in model.parameters())  # ab.grad, not backward
    expected = ab.grad(loss, list(model.parameters()))
    got = dict(explanation.leaves)
    for (name, _), g in zip(model.named_parameters(), expected, strict=True):
        np.testing.assert_array_equal(got[name], g.numpy())
    text, page = str(explanation), explanation._repr_html_()
    assert "tanh" in text and "BP1" not in text
    assert "2.weight" in page and "BP1" not in page and "<script" not in page


def test_only_the_seed_network_is_matched() -> None:
    w, b = ab.randn(2, 2, rng=0, requires_grad=True), ab.zeros((2, 1), requires_grad=True)
    x, y = np.ones((2, 1)), np.zeros((2, 1))
    seed_like = ab.sum(ab.square(ab.sigmoid(w @ x + b) - y)) * 0.5
    relu_net = ab.sum(ab.square(ab.relu(w @ x + b) - y)) * 0.5
    other_scale = ab.sum(ab.square(ab.sigmoid(w @ x + b) - y)) * 2.0
    assert ab.viz.explain(seed_like).seed is not None  # the same ops by hand count as the seed's network
    assert ab.viz.explain(relu_net).seed is None
    assert ab.viz.explain(other_scale).seed is None


def test_descent_step_matches_the_reference() -> None:
    explanation, (weights, biases), x, y = _seed_explanation([2, 3, 2], eta=0.5)
    new_w, new_b = reference.update_mini_batch(weights, biases, x, y, 0.5)
    after = 0.5 * np.sum((reference.feedforward(new_w, new_b, x) - y) ** 2)
    before = 0.5 * np.sum((reference.feedforward(weights, biases, x) - y) ** 2)
    descent = explanation.descent
    assert descent.cost_before == pytest.approx(before, rel=1e-12)
    assert descent.cost_after == pytest.approx(after, rel=1e-12)
    assert descent.max_parameter_diff < 1e-12


def test_labels_stay_unique_for_the_picture() -> None:
    first, second = ab.tensor([1.0, 2.0], requires_grad=True), ab.tensor([3.0, 4.0], requires_grad=True)
    first.name = second.name = "p"
    explanation = ab.viz.explain((first * second).sum())
    labels = [label for label, _ in explanation.labels]
    assert len(labels) == len(set(labels)) and {"p", "p#2"} <= set(labels)


def test_graphs_too_long_to_read_are_refused() -> None:
    x = ab.tensor([1.0], requires_grad=True)
    y = x
    for _ in range(201):
        y = y * 1.0
    with pytest.raises(ValueError, match="202 ops; explain shows up to 200"):
        ab.viz.explain(y.sum())


def test_bad_input_is_named() -> None:
    x = ab.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(ValueError, match="explain: loss must be a scalar"):
        ab.viz.explain(x * 2)
    with pytest.raises(ValueError, match=r"explain: loss float64\[\] has no graph"):
        ab.viz.explain(ab.tensor(1.0))
    loss = (x * x).sum()
    loss.backward()
    with pytest.raises(RuntimeError, match="freed by backward"):
        ab.viz.explain(loss)


def test_text_command_prints_every_step_and_the_reference_numbers(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["explain", "--text", "--seed", "3", "--example", "1"]) == 0
    out = capsys.readouterr().out
    x, y, _ = example([2, 3, 2], 3, 1, None)
    net = Network([2, 3, 2], rng=3)
    nabla_b, nabla_w = reference.backprop([w.data for w in net.weights], [b.data for b in net.biases], x, y)
    assert "Step 10/10" in out and "Step 11/" not in out
    for equation in ("BP1", "BP2", "BP3", "BP4"):
        assert f"check {equation}" in out
    assert f"sends dC/d z2 = {array_text(nabla_b[1], '    ')}" in out
    assert f"sends dC/d b1 = {array_text(nabla_b[0], '    ')}" in out
    assert f"sends dC/d w2 = {array_text(nabla_w[1], '    ')}" in out
    assert "all equal" in out and "MISMATCH" not in out and "cost before" in out


def test_command_on_mnist_sizes_and_its_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["explain", "--sizes", "784,30,10", "--example", "2", "--out", str(tmp_path)]) == 0
    page = (tmp_path / "index.html").read_text(encoding="utf-8")
    assert "training image 2 of the bundled MNIST subset" in page and "(30, 784)" in page
    assert main(["explain", "--sizes", "784,30,10", "--data", str(tmp_path / "none")]) == 2
    assert main(["explain", "--data", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all(line.startswith("autobp explain: ") for line in err)
    assert "MNIST needs --sizes 784" in err[1]


def test_page_without_graphviz_still_explains(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no `dot` program to be found
    explanation, *_ = _seed_explanation([2, 3, 2])
    page = explanation.save_html(tmp_path).read_text(encoding="utf-8")
    assert '<aside class="graph"><svg' not in page and "Install Graphviz" in page and page.count('class="step"') == 10


def test_page_is_offline(tmp_path: Path) -> None:
    explanation, *_ = _seed_explanation([2, 3, 2], eta=3.0)
    page = explanation.save_html(tmp_path).read_text(encoding="utf-8")
    assert '<aside class="graph"><svg' in page and "katex.render" in page
    for attribute in ("src", "href"):
        assert f'{attribute}="http' not in page and f"{attribute}='http" not in page
    assert "url(fonts/" not in page and "@import" not in page


class _PageValues(HTMLParser):
    """Collect each flow's target and the exact values of the gradient sent to it, and the error box."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: dict[str, list[np.ndarray]] = {}
        self.target: str | None = None
        self.status = ""
        self.in_errors = False
        self.errors = ""
        self.katex = 0
        self.focused: list[str] = []  # graph nodes the page's script highlighted
        self.first_op = ""  # the node of the first step

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "body":
            self.status = found.get("data-status") or ""
        if "data-to" in found:
            self.target = found["data-to"]
        if tag == "span" and self.target is not None and found.get("data-values"):
            self.sent.setdefault(self.target, []).append(np.array(json.loads(found["data-values"] or "")))
            self.target = None
        self.in_errors = tag == "pre" and found.get("id") == "page-errors"
        classes = (found.get("class") or "").split()
        self.katex += "katex" in classes
        if tag == "g" and "focus" in classes:
            self.focused.append(found.get("data-vertex") or "")
        if tag == "article" and not self.first_op:
            self.first_op = found.get("data-op") or ""

    def handle_endtag(self, tag: str) -> None:
        self.in_errors = False

    def handle_data(self, data: str) -> None:
        if self.in_errors:
            self.errors += data


def _chromium(page: Path, tmp_path: Path, screenshot: Path | None = None) -> tuple[str, str]:
    """Render ``page`` headless: (the DOM after its scripts ran, chromium's log); also a PNG if asked."""
    import shutil
    import subprocess

    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("chromium is not installed (.ci/run installs it: apt-get install chromium)")
    flags = [
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}", "--enable-logging=stderr", "--v=0",
        "--host-resolver-rules=MAP * ~NOTFOUND",  # a request to any host fails, and is logged
        "--window-size=1200,900", "--hide-scrollbars",
    ]  # fmt: skip
    url = page.resolve().as_uri()
    dom = subprocess.run([browser, *flags, "--dump-dom", url], capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    if screenshot is not None:
        shot = subprocess.run([browser, *flags, f"--screenshot={screenshot}", url], capture_output=True, timeout=120)
        assert shot.returncode == 0, shot.stderr[-2000:]
    return dom.stdout, dom.stderr


def _console_lines(log: str) -> list[str]:
    return [line for line in log.splitlines() if ":CONSOLE" in line or "ERR_NAME_NOT_RESOLVED" in line]


def test_browser_renders_the_page_and_its_bp_numbers(tmp_path: Path) -> None:
    explanation, (weights, biases), x, y = _seed_explanation([2, 3, 2], eta=3.0)
    page = explanation.save_html(tmp_path / "page")
    broken = tmp_path / "broken.html"  # the same page with one bad script: the harness must see it
    broken.write_text(page.read_text().replace("</body>", "<script>noSuchFunction();</script></body>"))
    broken_dom, broken_log = _chromium(broken, tmp_path)
    parsed = _PageValues()
    parsed.feed(broken_dom)
    assert parsed.status == "error" and "noSuchFunction" in parsed.errors and _console_lines(broken_log)

    dom, log = _chromium(page, tmp_path, tmp_path / "page.png")
    assert _console_lines(log) == []
    parsed = _PageValues()
    parsed.feed(dom)
    assert parsed.status == "ready" and parsed.errors == "" and parsed.katex > 10
    assert parsed.focused == [parsed.first_op] and parsed.first_op.startswith("op")  # step 1's node is lit
    nabla_b, nabla_w = reference.backprop(weights, biases, x, y)
    for n in (1, 2):
        for label, expected in ((f"z{n}", nabla_b[n - 1]), (f"b{n}", nabla_b[n - 1]), (f"w{n}", nabla_w[n - 1])):
            (shown,) = parsed.sent[label]
            np.testing.assert_allclose(shown.reshape(expected.shape), expected, rtol=1e-12, atol=1e-15)
    png = (tmp_path / "page.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and struct.unpack(">II", png[16:24]) == (1200, 900)


def test_zero_size_arrays_are_explained_as_empty(tmp_path: Path) -> None:
    x = ab.tensor(np.zeros((0, 3)), requires_grad=True)
    w = ab.tensor(np.ones((3, 2)), requires_grad=True)
    explanation = ab.viz.explain((x @ w).sum() + (w * w).sum(), names={"x": x, "w": w})
    text = str(explanation)
    assert "dC/d x = empty (0, 3)" in text and "saved x = x = empty (0, 3)" in text
    page = explanation.save_html(tmp_path).read_text(encoding="utf-8")
    assert "data-shape=\"[0, 3]\" data-values='[]'>empty" in page


def test_float32_seed_network_is_checked_at_float32_rounding() -> None:
    rng = np.random.default_rng(0)
    f = np.float32
    w1 = ab.tensor(rng.normal(size=(30, 20)).astype(f), requires_grad=True)
    b1 = ab.tensor(rng.normal(size=(30, 1)).astype(f), requires_grad=True)
    w2 = ab.tensor(rng.normal(size=(10, 30)).astype(f), requires_grad=True)
    b2 = ab.tensor(rng.normal(size=(10, 1)).astype(f), requires_grad=True)
    x = ab.tensor(rng.uniform(size=(20, 7)).astype(f))
    y = ab.tensor(np.eye(10, dtype=f)[:, rng.integers(0, 10, 7)])
    loss = ab.sum(ab.square(ab.sigmoid(w2 @ ab.sigmoid(w1 @ x + b1) + b2) - y)) * 0.5
    explanation = ab.viz.explain(loss)
    assert explanation.seed is not None and len(explanation.checks) == 7
    # float32 rounding (~6e-8 here) is not a mismatch; a fixed float64 tolerance of 1e-12 called it one.
    assert max(c.max_diff for c in explanation.checks) > 1e-12
    assert all(c.ok for c in explanation.checks) and "MISMATCH" not in str(explanation)
    assert all(1e-5 < c.tolerance < 1e-2 for c in explanation.checks)
    assert f"<= tolerance {explanation.checks[1].tolerance:.2g}" in str(explanation)
    check = explanation.checks[1]
    check.reference = check.reference + np.float32(0.01)  # a real error is still one
    assert not check.ok and "MISMATCH" in str(explanation) and "> tolerance" in str(explanation)


def test_a_hooked_gradient_is_not_called_dc_d_and_the_closing_claim_stays_true(tmp_path: Path) -> None:
    x = ab.tensor([1.0, 2.0], requires_grad=True)
    h = x * 2.0
    h.register_hook(lambda g: g * 10)
    explanation = ab.viz.explain((h * h).sum(), names={"x": x, "h": h})
    text = str(explanation)
    # dC/dh = 2h = [4, 8]; the hook makes it [40, 80]: the rules sent 4 and 8, the engine passed 40 and 80.
    assert explanation.engine_max_diff == pytest.approx(72.0)
    assert "equals what the engine delivered" not in text
    assert "differ from what the engine delivered there by max |diff| = 72: the hooks on h changed them" in text
    assert "Gradient hooks on h change" in text
    assert "grad (arriving at h, changed by its hook) = [40  80]" in text and "dC/d h) =" not in text
    assert "grad of x (from a hooked gradient) = [80  160]" in text and "dC/d x" not in text
    page = explanation.save_html(tmp_path).read_text(encoding="utf-8")
    assert "differ from what the engine delivered" in page and 'id="engine-diff">72<' in page
    assert "arriving at h, changed by its hook" in page and "dC/d x" not in page
    plain = ab.viz.explain((x * x).sum(), names={"x": x})  # no hook: the claim of equality holds
    assert "equals what the engine delivered there: max |diff| = 0" in str(plain)


def test_a_one_element_loss_that_is_not_0d_is_explained() -> None:
    x = ab.tensor([[2.0]], requires_grad=True)
    explanation = ab.viz.explain(x * 3.0, names={"x": x})
    assert explanation.loss == 6.0 and explanation.leaves[0][0] == "x"
    assert explanation.leaves[0][1].tolist() == [[3.0]]


def test_nan_in_the_page_values_is_valid_json(tmp_path: Path) -> None:
    x = ab.tensor([0.0, 1.0], requires_grad=True)
    with np.errstate(all="ignore"):
        explanation = ab.viz.explain((ab.sqrt(x) * 0.0).sum(), names={"x": x})
        page = explanation.save_html(tmp_path).read_text(encoding="utf-8")
    values = re.findall(r"data-values='([^']*)'", page)
    decoded = [json.loads(v, parse_constant=lambda name: pytest.fail(f"{name} is not JSON")) for v in values]
    assert any("NaN" in json.dumps(d) for d in decoded)  # the NaN gradient is spelled as a string


def test_a_saturated_sigmoid_shows_numbers_whose_product_is_the_one_sent(tmp_path: Path) -> None:
    # z = 10: a = 0.9999546 rounds to 1 at four digits, and grad * out * (1 - out) read off the
    # shown numbers was 1 * 1 * 0 = 0 beside the 4.539e-05 sent. A number not whole never shows as one.
    net = Network([1, 1], rng=0, taped=False)
    net.weights[0].data[...], net.biases[0].data[...] = 10.0, 0.0
    explanation = ab.viz.explain(net.cost(np.array([[1.0]]), np.array([[0.0]])))
    text = str(explanation)

    def shown(pattern: str) -> float:
        found = re.search(pattern + r" = (\S+)", text)
        assert found is not None, pattern
        return float(found.group(1))

    grad, out, sent = shown(r"grad \(dC/d a1\)"), shown("saved out = a1"), shown("sends dC/d z1")
    assert out != 1.0 and grad != 1.0
    assert grad * out * (1.0 - out) == pytest.approx(sent, rel=2e-3)
    page = explanation.save_html(tmp_path).read_text(encoding="utf-8")
    shown = re.search(r"<b>out = a1</b> <span [^>]*>([^<]*)</span>", page)
    assert shown is not None and float(shown.group(1)) == out
    assert array_text(np.array([[0.9999546], [1.0], [-0.99999]])) == "[0.9999546  1  -0.99999]^T  (3, 1)"


def test_a_mini_batch_check_says_its_reference_is_delta_summed_over_the_examples(tmp_path: Path) -> None:
    # The reference beside delta^n (m columns) is nabla_b, their sum: labelled "delta^n" alone, with
    # "(= delta^n for one example)", the shown reference column read as a wrong delta.
    explanation, (weights, biases), x, y = _seed_explanation([2, 3, 2], columns=3)
    nabla_b, _ = reference.backprop_batch(weights, biases, x, y)
    deltas = [c for c in explanation.checks if c.equation in ("BP1", "BP2") and c.what.startswith("delta")]
    assert [c.what for c in deltas] == [
        "delta^2 summed over the 3 examples (sent to z2)",
        "delta^1 summed over the 3 examples (sent to z1)",
    ]
    assert all("for one example" not in c.source and "backprop_batch" in c.source for c in explanation.checks[1:])
    np.testing.assert_array_equal(deltas[1].reference, nabla_b[0])
    assert "delta^1 summed over the 3 examples (sent to z1)" in explanation.save_html(tmp_path).read_text("utf-8")
    bp3 = [note.text for step in explanation.steps for note in step.notes if note.equation == "BP3"]
    assert bp3[0] == "BP3: dC/db^2 = delta^2 summed over the 3 examples, b was broadcast over them"
    single, *_ = _seed_explanation([2, 3, 2])
    assert [c.what for c in single.checks if c.what.startswith("delta")] == [
        "delta^2 (sent to z2)",
        "delta^1 (sent to z1)",
    ]


def test_a_constant_that_is_not_whole_is_not_labelled_as_one() -> None:
    # x * 0.99996 was drawn "mul(t0, 1)" and explained as "sends nothing to 1" beside dC/dx = 0.99996.
    x = ab.tensor([2.0, 3.0], requires_grad=True)
    loss = (x * 0.99996).sum()
    assert "mul(t0, 0.99996)" in ab.viz.graph_text(loss)
    assert "sends nothing to 0.99996 " in str(ab.viz.explain(loss, names={"x": x}))
    assert "mul(t0, 0.5)" in ab.viz.graph_text((x * 0.5).sum())
