"""Factorised Gaussian noisy linear layer (Fortunato et al. 2017, "Noisy Networks for Exploration").

A noisy layer computes ``y = (μ_w + σ_w ⊙ ε_w) x + μ_b + σ_b ⊙ ε_b`` with learnable ``μ`` and ``σ``.
The factorised variant draws one noise vector per input (``ε_in``, length p) and one per output
(``ε_out``, length q) and sets ``ε_w = f(ε_out) ⊗ f(ε_in)``, ``ε_b = f(ε_out)`` with
``f(x) = sgn(x)·√|x|``: p + q normal draws per resample instead of p·q.

The weight noise is never materialised: ``(σ_w ⊙ (ε_out ⊗ ε_in)) x = ε_out ⊙ (σ_w (ε_in ⊙ x))``,
so a noisy forward costs two matrix products and no [q, p] temporary.

Noise lives in buffers (saved with the state dict, so a resumed run continues with the same noise)
and changes only when ``reset_noise`` is called with an explicit ``torch.Generator``. In eval mode
the layer is deterministic and uses the means only.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class NoisyLinear(nn.Module):
    """Linear layer with factorised Gaussian parameter noise.

    Parameters
    ----------
    in_features : int
        ``p``, the input width.
    out_features : int
        ``q``, the output width.
    sigma0 : float
        Initial noise scale; ``σ`` starts at ``sigma0 / √p`` (the paper's 0.5).
    """

    weight_mu: nn.Parameter
    weight_sigma: nn.Parameter
    bias_mu: nn.Parameter
    bias_sigma: nn.Parameter
    eps_in: Tensor
    eps_out: Tensor

    def __init__(self, in_features: int, out_features: int, *, sigma0: float = 0.5) -> None:
        super().__init__()
        if in_features < 1 or out_features < 1:
            raise ValueError(f"NoisyLinear needs positive sizes, got {in_features} → {out_features}")
        if sigma0 < 0.0:
            raise ValueError(f"sigma0 must be ≥ 0, got {sigma0}")
        self.in_features = in_features
        self.out_features = out_features
        self.sigma0 = sigma0
        self.weight_mu = nn.Parameter(torch.empty(out_features, in_features))
        self.weight_sigma = nn.Parameter(torch.empty(out_features, in_features))
        self.bias_mu = nn.Parameter(torch.empty(out_features))
        self.bias_sigma = nn.Parameter(torch.empty(out_features))
        self.register_buffer("eps_in", torch.zeros(in_features))
        self.register_buffer("eps_out", torch.zeros(out_features))

    @torch.no_grad()
    def reset_parameters(self, generator: torch.Generator) -> None:
        """Initialise as in the paper: ``μ ~ U[-1/√p, 1/√p]``, ``σ = sigma0/√p``, zero noise."""
        bound = 1.0 / math.sqrt(self.in_features)
        self.weight_mu.uniform_(-bound, bound, generator=generator)
        self.bias_mu.uniform_(-bound, bound, generator=generator)
        self.weight_sigma.fill_(self.sigma0 * bound)
        self.bias_sigma.fill_(self.sigma0 * bound)
        self.eps_in.zero_()
        self.eps_out.zero_()

    @torch.no_grad()
    def reset_noise(self, generator: torch.Generator) -> None:
        """Draw fresh factorised noise ``f(ε_in)``, ``f(ε_out)`` from ``generator``."""
        eps_in = torch.randn(self.in_features, generator=generator, device=self.eps_in.device)
        eps_out = torch.randn(self.out_features, generator=generator, device=self.eps_out.device)
        self.eps_in.copy_(eps_in.sign() * eps_in.abs().sqrt())
        self.eps_out.copy_(eps_out.sign() * eps_out.abs().sqrt())

    def forward(self, x_BP: Tensor) -> Tensor:
        """Apply the mean weights, plus the factorised noise in training mode."""
        mean_BQ = F.linear(x_BP, self.weight_mu, self.bias_mu)
        if not self.training:
            return mean_BQ
        noise_BQ = F.linear(x_BP * self.eps_in, self.weight_sigma) * self.eps_out
        return mean_BQ + noise_BQ + self.bias_sigma * self.eps_out

    def effective_weight(self) -> tuple[Tensor, Tensor]:
        """Return the weight and bias the layer applies in training mode (materialised; for tests and inspection)."""
        weight = self.weight_mu + self.weight_sigma * torch.outer(self.eps_out, self.eps_in)
        return weight, self.bias_mu + self.bias_sigma * self.eps_out

    def extra_repr(self) -> str:
        """Describe the layer's sizes and initial noise scale in its repr."""
        return f"in_features={self.in_features}, out_features={self.out_features}, sigma0={self.sigma0}"
