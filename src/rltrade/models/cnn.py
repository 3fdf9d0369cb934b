"""The per-timeframe 1D-CNN: a window of bars in, a named 128-unit hidden layer, 4 outputs.

Shapes (B batch, W bars, C channels = 8 traded symbol [+ 8 reference])::

    x_BWC ─ ÷ input_scale_C ─► [B, C, W] ─ conv k, stride 1 ─ ReLU ─ (conv k, stride 2 ─ ReLU) × (n-1)
          ─► [B, C_last, L] ─ flatten ─ dropout ─► hidden: Linear + act [B, H] ─► head: Linear [B, 4]

``act`` is ``cnn.hidden_activation``: LeakyReLU (slope 0.01) by default, so no hidden unit can die into a
constant feature; ReLU for CNNs saved before the option existed.

``out_B4`` holds 3 class logits (down, flat, up) and the next-pivot distance (in ATRs). ``hidden`` is a
named submodule so the CNN–RL bridge can read it with a forward hook (:mod:`rltrade.models.bridge`).

``logit_offset_3`` is added to the class logits. It is 0 while training; afterwards it is set to
``−log w_c`` for the class weights ``w_c`` of the weighted cross-entropy: a model trained with weights
learns ``q(c|x) ∝ w_c · p(c|x)``, so the offset turns its outputs back into calibrated probabilities
``p(c|x)`` (the post-hoc prior correction of Menon et al. 2021, "Long-tail learning via logit
adjustment"). Class balance then helps the features learn the rare classes without biasing the
probabilities the state holds.

Flattening (rather than pooling over time) keeps *where* in the window a pattern sits: for a lead-lag
signal the last few bars matter more than the rest. ``input_scale_C`` is a buffer fitted on the training
windows (per channel standard deviation): the relative log prices of 1 s bars are ~1e-4, the indicators
~1, and the scale travels with the weights.

Parameters are initialised from an explicit ``torch.Generator`` (:meth:`TimeframeCnn.reset_parameters`);
:func:`build_cnn` builds on the meta device first so that construction never draws from torch's global RNG.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from rltrade.config import CnnConfig

N_OUTPUTS = 4
N_CLASS_LOGITS = 3


@dataclass(frozen=True)
class CnnShape:
    """What fixes the module's parameter shapes (saved with the weights)."""

    in_channels: int
    window: int
    conv_channels: tuple[int, ...]
    kernel_size: int
    hidden: int
    dropout: float
    hidden_activation: str = "relu"
    """``relu`` or ``leaky_relu`` (``CnnConfig.hidden_activation``); ``relu`` for shapes saved without it."""

    @classmethod
    def of(cls, cfg: CnnConfig, in_channels: int) -> CnnShape:
        """Return the shape of the CNN that ``cfg`` describes over ``in_channels`` input channels."""
        return cls(
            in_channels,
            cfg.window,
            tuple(cfg.conv_channels),
            cfg.kernel_size,
            cfg.hidden,
            cfg.dropout,
            cfg.hidden_activation,
        )

    def to_dict(self) -> dict[str, object]:
        """Return the shape as a JSON-ready dict (stored beside the weights)."""
        return {
            "in_channels": self.in_channels,
            "window": self.window,
            "conv_channels": list(self.conv_channels),
            "kernel_size": self.kernel_size,
            "hidden": self.hidden,
            "dropout": self.dropout,
            "hidden_activation": self.hidden_activation,
        }

    @classmethod
    def from_dict(cls, raw: dict[str, object]) -> CnnShape:
        """Rebuild the shape from :meth:`to_dict`'s output."""
        conv = raw["conv_channels"]
        assert isinstance(conv, list)
        return cls(
            int(raw["in_channels"]),  # type: ignore[call-overload]
            int(raw["window"]),  # type: ignore[call-overload]
            tuple(int(c) for c in conv),
            int(raw["kernel_size"]),  # type: ignore[call-overload]
            int(raw["hidden"]),  # type: ignore[call-overload]
            float(raw["dropout"]),  # type: ignore[arg-type]
            str(raw.get("hidden_activation", "relu")),
        )


def _conv_out(length: int, kernel: int, stride: int) -> int:
    return (length + 2 * (kernel // 2) - kernel) // stride + 1


class TimeframeCnn(nn.Module):
    """The CNN of one timeframe (see the module docstring)."""

    def __init__(self, shape: CnnShape) -> None:
        super().__init__()
        self.shape = shape
        layers: list[nn.Module] = []
        c_in, length = shape.in_channels, shape.window
        for i, c_out in enumerate(shape.conv_channels):
            stride = 1 if i == 0 else 2
            layers += [nn.Conv1d(c_in, c_out, shape.kernel_size, stride=stride, padding=shape.kernel_size // 2)]
            layers += [nn.ReLU()]
            c_in, length = c_out, _conv_out(length, shape.kernel_size, stride)
        self.convs = nn.Sequential(*layers)
        self.dropout = nn.Dropout(shape.dropout)
        if shape.hidden_activation not in ("relu", "leaky_relu"):
            raise ValueError(f"unknown CNN hidden activation {shape.hidden_activation!r}; use relu or leaky_relu")
        act = nn.LeakyReLU(0.01) if shape.hidden_activation == "leaky_relu" else nn.ReLU()
        self.hidden = nn.Sequential(nn.Linear(c_in * length, shape.hidden), act)
        """The last hidden layer: its output is the state's ``cnn_hidden`` row."""
        self.head = nn.Linear(shape.hidden, N_OUTPUTS)
        self.register_buffer("input_scale_C", torch.ones(shape.in_channels))
        self.register_buffer("logit_offset_3", torch.zeros(N_CLASS_LOGITS))

    def trunk(self, x_BWC: Tensor) -> Tensor:
        """Everything before ``hidden``: ``[B, W, C]`` → flattened conv features ``[B, C_last · L]``."""
        scale = self.get_buffer("input_scale_C")
        z = self.convs((x_BWC / scale).transpose(1, 2))
        features: Tensor = self.dropout(z.flatten(1))
        return features

    def outputs(self, hidden_BH: Tensor) -> Tensor:
        """Apply the head: hidden features → ``out_B4`` (class logits with ``logit_offset_3``, distance)."""
        out_B4: Tensor = self.head(hidden_BH)
        offset = self.get_buffer("logit_offset_3")
        return out_B4 + torch.cat([offset, offset.new_zeros(N_OUTPUTS - N_CLASS_LOGITS)])

    def forward(self, x_BWC: Tensor) -> Tensor:
        """``[B, W, C]`` → ``out_B4``: 3 class logits and the next-pivot distance."""
        return self.outputs(self.hidden(self.trunk(x_BWC)))

    def forward_with_hidden(self, x_BWC: Tensor) -> tuple[Tensor, Tensor]:
        """``(out_B4, hidden_BH)`` computed explicitly, without hooks (the reference the bridge is tested on)."""
        hidden_BH = self.hidden(self.trunk(x_BWC))
        return self.outputs(hidden_BH), hidden_BH

    @torch.no_grad()
    def reset_parameters(self, generator: torch.Generator) -> None:
        """Apply torch's default Conv1d / Linear initialisation (Kaiming-uniform, a=√5), drawn from ``generator``."""
        for module in self.modules():
            if isinstance(module, nn.Conv1d | nn.Linear):
                nn.init.kaiming_uniform_(module.weight, a=math.sqrt(5), generator=generator)
                fan_in = module.weight[0].numel()
                bound = 1.0 / math.sqrt(fan_in)
                assert module.bias is not None
                nn.init.uniform_(module.bias, -bound, bound, generator=generator)
        self.get_buffer("input_scale_C").fill_(1.0)
        self.get_buffer("logit_offset_3").zero_()


def build_cnn(shape: CnnShape, generator: torch.Generator) -> TimeframeCnn:
    """Build a CNN with parameters drawn from ``generator`` only (built on the meta device, then materialised)."""
    with torch.device("meta"):
        model = TimeframeCnn(shape)
    model = model.to_empty(device="cpu")
    model.reset_parameters(generator)
    return model


def predictions(out_B4: Tensor) -> Tensor:
    """Raw outputs → the state's prediction row: softmax over the 3 class logits, the distance unchanged."""
    return torch.cat([torch.softmax(out_B4[:, :N_CLASS_LOGITS], dim=1), out_B4[:, N_CLASS_LOGITS:]], dim=1)
