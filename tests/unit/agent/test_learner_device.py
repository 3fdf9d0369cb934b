"""The learner's device options on a CPU: device resolution, bfloat16 autocast, pinned transfers refused here."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rltrade.agent.batches import ArrayStateSource
from rltrade.agent.encoder import BlockSpec
from rltrade.agent.learner import DQNLearner, resolve_device
from tests.unit.agent.test_learner import F_STATE, K, _config, _sample


@pytest.fixture
def source() -> ArrayStateSource:
    return ArrayStateSource(np.random.default_rng(0).standard_normal((40, F_STATE), dtype=np.float32))


def test_auto_resolves_to_what_torch_sees_and_cpu_is_cpu() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto") == torch.device("cuda" if torch.cuda.is_available() else "cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message shown on a machine without a GPU")
def test_cuda_without_a_gpu_is_refused_with_a_clear_message() -> None:
    with pytest.raises(ValueError, match="no CUDA GPU"):
        resolve_device("cuda")
    with pytest.raises(ValueError, match="'auto', 'cpu' or 'cuda'"):
        resolve_device("meta")


@pytest.mark.parametrize("network", ["flat", "structured"])
def test_mixed_precision_updates_keep_float32_parameters_and_stay_close_to_float32(
    source: ArrayStateSource, network: str
) -> None:
    config = _config(network=network, encoder_channels=(4,), encoder_patches=(3,), encoder_hidden=(8, 8), seed=2)
    blocks = [BlockSpec("bars", (3, 2), 0, 6, "bars")]
    full = DQNLearner(config, F_STATE, K, blocks=blocks)
    mixed = DQNLearner(config, F_STATE, K, blocks=blocks, mixed_precision=True)
    for i in range(3):
        a, b = full.update(_sample(i), source), mixed.update(_sample(i), source)
        assert np.isfinite(b.loss) and b.td_abs_B.dtype == np.float32
        # bfloat16 keeps ~3 significant digits: the same update, not the same bits.
        assert b.loss == pytest.approx(a.loss, rel=0.05, abs=1e-2)
    assert all(p.dtype == torch.float32 for p in mixed.online.parameters())
    changed = [not torch.equal(p, q) for p, q in zip(full.online.parameters(), mixed.online.parameters(), strict=True)]
    assert any(changed)  # autocast really ran in bfloat16
    obs = np.concatenate([source.gather(np.arange(8)), np.zeros((8, K), np.float32)], axis=1)
    assert mixed.act(obs, 0, greedy=True).shape == (8,)
