"""The per-timeframe CNN module and the hidden-layer hook of the bridge."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from pydantic import ValidationError

from rltrade.config import CnnConfig
from rltrade.models.bridge import HiddenTap, run_cnn
from rltrade.models.cnn import CnnShape, TimeframeCnn, build_cnn, predictions
from rltrade.types import Timeframe

SHAPE = CnnShape(in_channels=16, window=24, conv_channels=(6, 8, 8), kernel_size=5, hidden=128, dropout=0.3)


def _model(seed: int = 0) -> TimeframeCnn:
    return build_cnn(SHAPE, torch.Generator().manual_seed(seed))


def _x(b: int = 5, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((b, SHAPE.window, SHAPE.in_channels)).astype(np.float32)


def test_hook_output_equals_the_modules_own_hidden_activations() -> None:
    model = _model()
    model.get_buffer("input_scale_C").copy_(torch.linspace(0.5, 2.0, 16))
    x = _x()
    hidden, preds = run_cnn(model, x)
    model.eval()
    with torch.no_grad():
        out_ref, hidden_ref = model.forward_with_hidden(torch.from_numpy(x))
    assert hidden.shape == (5, 128) and preds.shape == (5, 4)
    assert np.array_equal(hidden, hidden_ref.numpy())
    assert np.allclose(preds, predictions(out_ref).numpy(), atol=1e-7)
    assert (hidden >= 0).all(), "the hidden layer is read after its ReLU"


def test_leaky_hidden_layer_has_no_dead_units_and_old_shapes_load_as_relu() -> None:
    leaky = replace(SHAPE, hidden_activation="leaky_relu")
    model = build_cnn(leaky, torch.Generator().manual_seed(0))
    with torch.no_grad():
        model.hidden[0].bias.fill_(-1e3)  # every unit far below zero: a ReLU layer would be all 0
    hidden, _ = run_cnn(model, _x(b=8))
    assert (hidden < 0).all() and np.all(hidden.std(axis=0) > 0), "each unit still follows its input"
    assert CnnShape.from_dict(leaky.to_dict()) == leaky
    saved_before = {k: v for k, v in SHAPE.to_dict().items() if k != "hidden_activation"}
    assert CnnShape.from_dict(saved_before).hidden_activation == "relu"
    with pytest.raises(ValueError, match="unknown CNN hidden activation"):
        build_cnn(replace(SHAPE, hidden_activation="tanh"), torch.Generator().manual_seed(0))


def test_bridge_runs_in_eval_mode_without_grad_and_removes_its_hook() -> None:
    model = _model()
    model.train()
    x = _x()
    a, _ = run_cnn(model, x)
    b, _ = run_cnn(model, x)
    assert np.array_equal(a, b), "dropout must be off while reading features"
    assert model.training, "the caller's mode is restored"
    assert len(model.hidden._forward_hooks) == 0
    with HiddenTap(model) as tap:
        model(torch.from_numpy(x))
    assert tap.output is not None and not tap.output.requires_grad
    assert len(model.hidden._forward_hooks) == 0
    with pytest.raises(RuntimeError), HiddenTap(model):
        model(torch.zeros(2, 3, 3))  # wrong shape: the hook must still be removed


def test_a_model_in_eval_mode_is_run_without_switching_modes(monkeypatch: pytest.MonkeyPatch) -> None:
    """The live bridge's models stay in eval mode: run_cnn must not walk their submodules twice per pass."""
    model = _model()
    x = _x()
    model.train()
    want = run_cnn(model, x)
    model.eval()
    switches: list[bool] = []
    for module in model.modules():
        monkeypatch.setattr(module, "train", lambda mode=True: switches.append(mode))
    got = run_cnn(model, x)
    assert switches == [], "an eval-mode model must not be switched"
    assert all(np.array_equal(g, w) for g, w in zip(got, want, strict=True))
    assert not model.training
    assert len(model.hidden._forward_hooks) == 0


def test_construction_is_seeded_and_leaves_the_global_rng_alone() -> None:
    before = torch.random.get_rng_state()
    a, b, c = _model(3), _model(3), _model(4)
    assert torch.equal(torch.random.get_rng_state(), before)
    for (name, pa), pb, pc in zip(
        a.state_dict().items(), b.state_dict().values(), c.state_dict().values(), strict=True
    ):
        assert torch.equal(pa, pb), name
        if name.endswith("weight"):
            assert not torch.equal(pa, pc), name


def test_outputs_are_probabilities_and_a_distance() -> None:
    _, preds = run_cnn(_model(), _x(64))
    assert np.allclose(preds[:, :3].sum(axis=1), 1.0, atol=1e-6)
    assert (preds[:, :3] >= 0).all()


def test_shape_round_trips_and_the_config_is_checked() -> None:
    cfg = CnnConfig(window=40, conv_channels=(8, 16), kernel_size=3)
    shape = CnnShape.of(cfg, 8)
    assert CnnShape.from_dict(shape.to_dict()) == shape
    assert TimeframeCnn(shape)(torch.zeros(2, 40, 8)).shape == (2, 4)
    with pytest.raises(ValidationError, match="horizons has no entry"):
        CnnConfig(horizons={Timeframe.M1: 60})
    with pytest.raises(ValidationError, match="conv_channels"):
        CnnConfig(conv_channels=())
