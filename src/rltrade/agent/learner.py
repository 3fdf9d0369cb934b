"""The DQN learner: acting (ε-greedy or noisy) and one gradient update per replay sample.

Glossary of one ``update`` (Rainbow's learner, Hessel et al. 2018, without its loop)::

    gather      states s_t and s_{t+m} of the sample's time indices from a ``StateSource`` (one call);
                the network sees each with its account vector, as if concatenated: [state F | account K]
    target      y = R + d · Q_target(s', a*), where R is the n-step return and d = γ^m (0 at a
                terminal) straight from the replay; a* = argmax_a Q_online(s', a) for double DQN
                (van Hasselt et al. 2016), argmax_a Q_target(s', a) for vanilla DQN
    C51         the target distribution of R + d·z, projected onto the support (Bellemare et al.
                2017); the per-sample loss is its cross-entropy with the online distribution
    loss        mean_i w_i · Huber_δ(y_i − Q_online(s_i, a_i)), w the replay's importance weights
    step        gradient norm clipped to ``max_grad_norm``, Adam (fused where torch supports it)
    sync        target ← online every ``target_update_interval`` updates (hard), or
                target ← (1 − τ)·target + τ·online after every update (Polyak)

``update`` returns the metrics and the new per-sample |TD error| (C51: the cross-entropy), which the
caller hands to ``PrioritizedReplay.update_priorities``. All randomness (initialisation, noise,
exploration) comes from ``torch.Generator``s derived from ``LearnerConfig.seed`` (0 when unset; training
passes ``Config.learner_config``); torch's global RNG is never used. On a CPU with a fixed thread count
(``train.torch_threads``) the same seed gives the same updates bit for bit; the learner does not turn on
``torch.use_deterministic_algorithms`` itself (its tests do, to prove no op it uses is nondeterministic).

Overlap (``agent.overlap_update``; :mod:`rltrade.agent.overlap` decides when): on a CPU the next-state
half of an update (gather s', the target network's output and, for double DQN, the online network's
argmax on s', all without gradients) can run on a second thread while the calling thread gathers s
and runs the online network's forward pass with gradients; the loss waits for both. Each state row,
each forward pass and every random draw is the same as in the one-thread order (block dropout is
switched on per thread, and only the online pass on s draws), so the updates are bit for bit those of
``overlap_update: off``; only the wall time changes. When the worker has not started by the time the s
half is done, the calling thread takes the s' half back and does it itself. On a GPU the passes run one
after the other.

Standardisation (``agent.block_norm``): each gathered batch belongs to the update, so the learner
standardises it in place before the forward passes, the s' batch once for both networks (their statistics
are fitted together and never trained), instead of each network writing its own standardised copy.

Backward threads (``agent.backward_threads``): the backward pass and the optimiser step, the serial part of
an update, may run on more torch threads than the forward passes; the forward passes keep the process's
count in both overlap orders, so the overlap's bit-for-bit equality holds for any setting.

Device (:func:`resolve_device`): the networks live on ``device``; on a GPU each batch of states goes
through one pinned host buffer and a non-blocking copy, so the transfer overlaps the next kernel
launches. ``mixed_precision`` runs the forward passes under ``torch.autocast`` in bfloat16 (the
parameters, optimiser state, loss and TD errors stay float32; bfloat16 keeps float32's exponent
range, so no loss scaling is needed). Off by default: results then match bit for bit across runs.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import wait
from contextlib import contextmanager
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F
from torch import Tensor

from rltrade.agent.batches import ReplaySample, StateSource
from rltrade.agent.block_norm import InputStandardiser, block_statistics
from rltrade.agent.encoder import BlockSpec, StructuredBody, StructuredEncoder, block_dropout, structured_q_network
from rltrade.agent.networks import QNetwork, flat_q_network
from rltrade.agent.overlap import OverlapChooser, submit
from rltrade.agent.schedules import epsilon_schedule
from rltrade.config import AgentConfig, ConfigError

# The agent's config lives with every other stage's in rltrade.config (the ``agent`` section).
LearnerConfig = AgentConfig


class UpdateResult(NamedTuple):
    """What one gradient update reports."""

    loss: float
    q_mean: float
    """Mean of Q_online(s, a) over the batch, for the actions taken."""
    td_abs_mean: float
    grad_norm: float
    """Gradient L2 norm before clipping."""
    td_abs_B: np.ndarray
    """New priorities' raw values (float32 [B]): |y − Q(s, a)|, or the C51 cross-entropy."""

    @property
    def metrics(self) -> dict[str, float]:
        """The update's statistics by name (for logging)."""
        return {
            "loss": self.loss,
            "q_mean": self.q_mean,
            "td_abs_mean": self.td_abs_mean,
            "grad_norm": self.grad_norm,
        }


def build_q_network(
    config: LearnerConfig,
    state_dim: int,
    account_dim: int,
    generator: torch.Generator,
    blocks: Sequence[BlockSpec] | None = None,
    device: torch.device | str = "cpu",
) -> QNetwork:
    """Build the network ``config`` describes for states of width F and accounts of width K, from ``generator``."""
    n_atoms = config.n_atoms if config.distributional else 1
    noisy = config.exploration == "noisy"
    if config.network == "flat":
        return flat_q_network(
            state_dim,
            account_dim,
            generator,
            hidden=config.hidden,
            n_actions=config.n_actions,
            dueling=config.dueling,
            noisy=noisy,
            sigma0=config.noisy_sigma0,
            n_atoms=n_atoms,
            v_min=config.v_min,
            v_max=config.v_max,
            device=device,
        )
    if blocks is None:
        raise ValueError("network='structured' needs the state layout: pass blocks=[BlockSpec, ...]")
    return structured_q_network(
        blocks,
        state_dim,
        account_dim,
        generator,
        channels=config.encoder_channels,
        patches=config.encoder_patches,
        hidden=config.encoder_hidden,
        input_norm=config.block_norm,
        block_dropout=config.block_dropout,
        recent_rows=config.encoder_recent_rows,
        recent_diff=config.encoder_recent_diff,
        n_actions=config.n_actions,
        dueling=config.dueling,
        noisy=noisy,
        sigma0=config.noisy_sigma0,
        n_atoms=n_atoms,
        v_min=config.v_min,
        v_max=config.v_max,
        device=device,
    )


def project_distribution(next_probs_BN: Tensor, reward_B: Tensor, discount_B: Tensor, support_N: Tensor) -> Tensor:
    """C51 projection of the distribution of ``reward + discount · Z`` onto ``support_N``.

    Each shifted atom ``Tz_j`` (clamped to [v_min, v_max]) splits its mass between its two neighbouring
    atoms in proportion to closeness, i.e. atom i receives ``p_j · max(0, 1 − |Tz_j − z_i| / Δz)``.
    Written as a dense [B, N, N] product instead of the usual scatter-add, so it is deterministic and
    exact when ``Tz_j`` lands on an atom.
    """
    v_min, v_max = float(support_N[0]), float(support_N[-1])
    delta = (v_max - v_min) / (support_N.numel() - 1)
    tz_BN = (reward_B[:, None] + discount_B[:, None] * support_N[None, :]).clamp_(v_min, v_max)
    weight_BNN = (1.0 - (tz_BN[:, None, :] - support_N[None, :, None]).abs() / delta).clamp_(min=0.0)
    return torch.bmm(weight_BNN, next_probs_BN.unsqueeze(-1)).squeeze(-1)


@torch.no_grad()
def clip_grad_norm(params: Sequence[Tensor], max_norm: float) -> Tensor:
    """Scale gradients in place so their global L2 norm is at most ``max_norm``; return the norm before.

    The same arithmetic as ``torch.nn.utils.clip_grad_norm_`` (bit for bit), but the scaling pass is
    skipped when the factor would be 1: on the flat network that pass rewrites 64 MB every update.
    """
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return torch.zeros(())
    norm: Tensor = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))
    coef = max_norm / (norm + 1e-6)
    if coef < 1.0:
        for g in grads:
            g.mul_(coef)
    return norm


def _derived_seeds(seed: int, n: int) -> list[int]:
    # Independent streams for initialisation, learning noise and acting, from one config seed.
    return [int(s) for s in np.random.SeedSequence(seed).generate_state(n, dtype=np.uint64) >> np.uint64(1)]


class DQNLearner:
    """Online and target Q-networks, their optimiser and the update rule.

    Parameters
    ----------
    config : LearnerConfig
        The agent configuration.
    state_dim : int
        Width F of the market state (what ``StateSource.gather`` returns).
    account_dim : int
        Width K of the account vector (what the replay stores).
    blocks : Sequence[BlockSpec] | None
        The state layout, required by ``network='structured'``.
    device : torch.device | str
        Torch device of the networks.
    """

    def __init__(
        self,
        config: LearnerConfig,
        state_dim: int,
        account_dim: int,
        *,
        blocks: Sequence[BlockSpec] | None = None,
        device: torch.device | str = "cpu",
        mixed_precision: bool = False,
    ) -> None:
        if state_dim < 1 or account_dim < 0:
            raise ValueError(f"need state_dim ≥ 1 and account_dim ≥ 0, got {state_dim} and {account_dim}")
        self.config = config
        self.state_dim, self.account_dim = state_dim, account_dim
        self.obs_dim = state_dim + account_dim
        """Observation width F + K, as ``act`` takes it."""
        self.device = torch.device(device)
        self.mixed_precision = bool(mixed_precision)
        """Forward passes under ``torch.autocast`` in bfloat16 (see the module docstring)."""
        self._staging: Tensor | None = None  # pinned host buffer of the state batch (GPU only)
        init_seed, learn_seed, act_seed = _derived_seeds(config.seed or 0, 3)  # unset: seed 0
        init_gen = torch.Generator(self.device).manual_seed(init_seed)
        self.learn_generator = torch.Generator(self.device).manual_seed(learn_seed)
        """Draws the noisy layers' noise for updates."""
        self.act_generator = torch.Generator(self.device).manual_seed(act_seed)
        """Default generator of ``act`` (ε draws and acting noise)."""
        self.blocks: tuple[BlockSpec, ...] = tuple(blocks or ())
        """The state layout the structured network reads (empty for the flat network)."""
        self.online = build_q_network(config, state_dim, account_dim, init_gen, blocks, self.device)
        self.target = copy.deepcopy(self.online).requires_grad_(False)
        self.noisy = self.online.has_noise
        self.overlap = OverlapChooser(config.overlap_update if self.device.type == "cpu" else "off")
        """Whether each update runs its s' half on a worker thread (``agent.overlap_update``; CPU only)."""
        self._last_update: tuple[float, bool] | None = None  # (start, overlapped) of the latest update
        self._params = list(self.online.parameters())
        self.optimizer = torch.optim.Adam(
            self._params, lr=config.lr, eps=config.adam_eps, fused=_fused_supported(self.device)
        )
        self.updates = 0
        """Gradient updates done so far."""
        if self.noisy:
            self.online.reset_noise(self.learn_generator)
            self.target.reset_noise(self.learn_generator)

    # ------------------------------------------------------------------ acting
    def epsilon(self, step: int) -> float:
        """ε of the ε-greedy policy at acting step ``step`` (0 with noisy exploration)."""
        if self.config.exploration == "noisy":
            return 0.0
        c = self.config
        return epsilon_schedule(step, duration=c.epsilon_steps, start=c.epsilon_start, end=c.epsilon_end)

    @torch.no_grad()
    def act(
        self,
        obs_BF: npt.ArrayLike | Tensor,
        step: int,
        *,
        greedy: bool = False,
        generator: torch.Generator | None = None,
    ) -> np.ndarray:
        """Actions (int64 [B]) for observations [B, F+K] (state, then account) at acting step ``step``.

        Exploring (``greedy=False``): ε-greedy with ε from the schedule, or greedy on freshly
        resampled noise for a noisy net. ``greedy=True``: argmax of Q with noise switched off (for
        evaluation; draws nothing). Draws come from ``generator`` or the learner's ``act_generator``.
        """
        obs = self._as_obs(obs_BF)
        state_BF, account_BK = obs[:, : self.state_dim], obs[:, self.state_dim :]
        gen = self.act_generator if generator is None else generator
        if greedy:
            with self.evaluating(), self._autocast():
                return self.online.q_values(state_BF, account_BK).argmax(dim=1).cpu().numpy()
        if self.noisy:
            self.online.reset_noise(gen)
        with self._autocast():
            actions_B = self.online.q_values(state_BF, account_BK).argmax(dim=1)
        if self.config.exploration == "epsilon":
            b = obs.shape[0]
            explore_B = torch.rand(b, generator=gen, device=self.device) < self.epsilon(step)
            random_B = torch.randint(self.config.n_actions, (b,), generator=gen, device=self.device)
            actions_B = torch.where(explore_B, random_B, actions_B)
        return actions_B.cpu().numpy()

    # ------------------------------------------------------------------ learning
    def update(self, sample: ReplaySample, state_source: StateSource) -> UpdateResult:
        """One gradient step on ``sample``; states are gathered from ``state_source``."""
        started = time.perf_counter()
        if self._last_update is not None:  # the previous step, from its update's start to this one's
            self.overlap.record(self._last_update[1], started - self._last_update[0])
        overlap = self.overlap.next()
        self._last_update = (started, overlap)
        b = int(sample.action_B.shape[0])
        action_B = torch.from_numpy(np.asarray(sample.action_B, dtype=np.int64)).to(self.device)
        reward_B = torch.from_numpy(np.asarray(sample.reward_B, dtype=np.float32)).to(self.device)
        discount_B = torch.from_numpy(np.asarray(sample.discount_B, dtype=np.float32)).to(self.device)
        weight_B = torch.from_numpy(np.asarray(sample.weight_B, dtype=np.float32)).to(self.device)
        if self.noisy:
            self.online.reset_noise(self.learn_generator)
            self.target.reset_noise(self.learn_generator)

        if overlap:
            # The s' half on the worker thread while this one does s (module docstring: "Overlap").
            pending = submit(self._next_values, sample, state_source)
            try:
                state_BF, account_BK = self._gather(sample.t_idx_B, sample.account_BK, state_source)
                out = self._online_out(state_BF, account_BK, self._standardise_(state_BF, self.online))
            except BaseException:
                if not pending.cancel():
                    wait([pending])
                raise
            if pending.cancel():  # the worker never got a core (a busy machine): do the s' half here instead
                next_target_out, next_action_B = self._next_values(sample, state_source)
            else:
                next_target_out, next_action_B = pending.result()
        else:
            state_2BF, account_2BK = self._gather(
                np.concatenate([sample.t_idx_B, sample.next_t_idx_B]),
                np.concatenate([sample.account_BK, sample.next_account_BK]),
                state_source,
            )
            next_target_out, next_action_B = self._next_out(state_2BF[b:], account_2BK[b:])
            state_BF = state_2BF[:b]
            out = self._online_out(state_BF, account_2BK[:b], self._standardise_(state_BF, self.online))
        with torch.no_grad():
            next_target_q_BA = self.target.q_from_output(next_target_out)
        rows_B = torch.arange(b, device=self.device)
        if self.online.distributional:
            with torch.no_grad():
                next_probs_BN = next_target_out[rows_B, next_action_B].exp()
                target_BN = project_distribution(next_probs_BN, reward_B, discount_B, self.target.support_N)
            log_probs_BN = out[rows_B, action_B]
            per_sample_B = -(target_BN * log_probs_BN).sum(dim=1)
            td_abs_B = per_sample_B.detach()
            q_sa_B = (log_probs_BN.detach().exp() * self.online.support_N).sum(dim=1)
        else:
            with torch.no_grad():
                y_B = reward_B + discount_B * next_target_q_BA[rows_B, next_action_B]
            q_sa_full_B = out[rows_B, action_B]
            per_sample_B = F.huber_loss(q_sa_full_B, y_B, reduction="none", delta=self.config.huber_delta)
            q_sa_B = q_sa_full_B.detach()
            td_abs_B = (y_B - q_sa_B).abs()
        loss = (weight_B * per_sample_B).mean()

        with self._backward_threads():
            # set_to_none: no zeroing pass; the flat body's first layer reuses its gradient buffer anyway.
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            grad_norm = clip_grad_norm(self._params, self.config.max_grad_norm)
            self.optimizer.step()
        self.updates += 1
        self._sync_target()
        return UpdateResult(
            loss=float(loss.item()),
            q_mean=float(q_sa_B.mean().item()),
            td_abs_mean=float(td_abs_B.mean().item()),
            grad_norm=float(grad_norm.item()),
            td_abs_B=td_abs_B.cpu().numpy().astype(np.float32, copy=False),
        )

    def fit_input_norm(self, states_NF: npt.ArrayLike) -> None:
        """Fit the per-block input standardiser (``block_norm``) of both networks on ``states_NF``.

        ``states_NF`` must be training-range states only (the caller's duty: :func:`rltrade.training.loop.train`
        passes evenly spaced rows of the training clock); nothing else is read.
        """
        if not self.config.block_norm:
            raise ValueError("fit_input_norm needs agent.block_norm: true")
        mean_F, std_F = block_statistics(states_NF, self.blocks)
        for net in (self.online, self.target):
            for module in net.modules():
                if isinstance(module, InputStandardiser):
                    module.fit(mean_F, std_F)
            for module in net.modules():  # after the standardiser: the changes are taken between its rows
                if isinstance(module, StructuredEncoder) and module.recent_diff:
                    module.fit_recent_scale(states_NF)

    @torch.no_grad()
    def _sync_target(self) -> None:
        pairs = zip(self.target.parameters(), self.online.parameters(), strict=True)
        if self.config.target_update == "polyak":
            for target_p, online_p in pairs:
                target_p.lerp_(online_p, self.config.tau)
        elif self.updates % self.config.target_update_interval == 0:
            for target_p, online_p in pairs:
                target_p.copy_(online_p)

    def _next_values(self, sample: ReplaySample, state_source: StateSource) -> tuple[Tensor, Tensor]:
        """Gather s' and compute :meth:`_next_out` on it (what the worker thread runs)."""
        return self._next_out(*self._gather(sample.next_t_idx_B, sample.next_account_BK, state_source))

    def _next_out(self, next_state_BF: Tensor, next_account_BK: Tensor) -> tuple[Tensor, Tensor]:
        """Return the target network's output on s' and the action a* it is valued at (no gradients).

        ``next_state_BF`` is a gathered batch this learner owns: it is standardised in place, once for both
        networks when they standardise alike (:meth:`_standardise_`).
        """
        nets = (self.target, self.online) if self.config.double else (self.target,)
        done = self._standardise_(next_state_BF, *nets)
        with torch.no_grad(), self._autocast():
            next_target_out = self.target(next_state_BF, next_account_BK, standardised=done).float()
            if self.config.double:
                next_action_B = self.online.q_values(next_state_BF, next_account_BK, standardised=done).argmax(dim=1)
            else:
                next_action_B = self.target.q_from_output(next_target_out).argmax(dim=1)
        return next_target_out, next_action_B

    def _online_out(self, state_BF: Tensor, account_BK: Tensor, standardised: bool) -> Tensor:
        """Return the online network's output on s, with gradients and block dropout (this thread only)."""
        with self._autocast(), block_dropout(self.online, self.learn_generator):
            out: Tensor = self.online(state_BF, account_BK, standardised=standardised).float()
        return out

    @contextmanager
    def _backward_threads(self) -> Iterator[None]:
        """Run the block on ``agent.backward_threads`` torch threads (CPU only), then restore the caller's count."""
        n = self.config.backward_threads
        before = torch.get_num_threads()
        if n is None or n == before or self.device.type != "cpu":
            yield
            return
        torch.set_num_threads(n)
        try:
            yield
        finally:
            torch.set_num_threads(before)

    @staticmethod
    def _standardise_(states_BF: Tensor, *nets: QNetwork) -> bool:
        """Standardise a gathered batch in place for ``nets``; return whether it did (then they skip theirs).

        Only when every one of ``nets`` has an input standardiser with the same statistics (the online and
        target networks' are fitted together and never trained): the s' batch is then standardised once for
        both instead of once in each, and no batch gets a second ``[B, F]`` copy. The values are bit for bit
        those of the networks' own standardisers. ``states_BF`` must be a batch only this update reads
        (what :meth:`_gather` returns: ``StateSource.gather`` gives a new array per call).
        """
        norms = [net.input_standardiser() for net in nets]
        first = norms[0]
        if first is None or any(n is None or not first.same_statistics(n) for n in norms[1:]):
            return False
        first.standardise_(states_BF)
        return True

    def _gather(
        self, t_idx_B: npt.ArrayLike, account_BK: npt.ArrayLike, state_source: StateSource
    ) -> tuple[Tensor, Tensor]:
        """Gather the states at ``t_idx_B`` in one call and pair them with ``account_BK``, on the device.

        The states are used in place (never copied into a [B, F + K] observation).
        """
        states_BF = np.asarray(state_source.gather(np.asarray(t_idx_B)), dtype=np.float32)
        if not states_BF.flags.writeable:  # e.g. a memory-mapped source: the batch is standardised in place
            states_BF = states_BF.copy()
        accounts_BK = np.asarray(account_BK).astype(np.float32, copy=False)
        if states_BF.shape[1] != self.state_dim or accounts_BK.shape[1] != self.account_dim:
            raise ValueError(
                f"the state source gives {states_BF.shape[1]} features and the replay {accounts_BK.shape[1]} "
                f"account values, but the learner was built for state_dim={self.state_dim} and "
                f"account_dim={self.account_dim}"
            )
        return self._to_device(states_BF), torch.from_numpy(accounts_BK).to(self.device)

    def _to_device(self, states_NF: npt.NDArray[np.float32]) -> Tensor:
        """Move a state batch to the learner's device.

        As is on a CPU; on a GPU copied once into a pinned host buffer (grown when needed) and sent with
        a non-blocking copy. Reusing the buffer is safe because every ``update`` ends by reading its loss
        back to the host, which waits for the copy that read the buffer.
        """
        host = torch.from_numpy(states_NF)
        if self.device.type != "cuda":
            return host.to(self.device)
        n, f = host.shape
        if self._staging is None or self._staging.shape[0] < n or self._staging.shape[1] != f:
            self._staging = torch.empty((n, f), dtype=torch.float32).pin_memory()
        staging = self._staging[:n]
        staging.copy_(host)
        return staging.to(self.device, non_blocking=True)

    def greedy_q(self, obs_BF: npt.ArrayLike | Tensor) -> np.ndarray:
        """Return the online network's Q-values (float32 [B, A]) with noise off, as a greedy :meth:`act` sees them."""
        obs = self._as_obs(obs_BF)
        with self.evaluating(), torch.no_grad(), self._autocast():
            q = self.online.q_values(obs[:, : self.state_dim], obs[:, self.state_dim :])
        return q.float().cpu().numpy()

    @property
    def encodes_states(self) -> bool:
        """Whether :meth:`encode_states` can take the state's part of acting out of the per-step loop."""
        return isinstance(self.online.body, StructuredBody)

    @torch.no_grad()
    def encode_states(self, states_BF: npt.ArrayLike | Tensor) -> Tensor:
        """Return the online encoder's output for market states ``[B, F]`` (no account), for :meth:`act_encoded`.

        Only for a structured body (:attr:`encodes_states`). Each row depends on its own state only, so a
        greedy :meth:`act_encoded` on a row of a chunk gives the action :meth:`act` gives on that state
        alone, up to float rounding: the BLAS may sum a patch product in another order for another batch
        size (a tie broken the other way is the only possible difference). On the development machine the
        demo and full presets' backtests were identical step for step either way.
        """
        body = self.online.body
        if not isinstance(body, StructuredBody):
            raise ValueError("encode_states needs the structured encoder; a flat body acts on whole observations")
        states = states_BF if isinstance(states_BF, Tensor) else torch.from_numpy(np.asarray(states_BF, np.float32))
        with self.evaluating(), self._autocast():
            return body.encoder.encode_state(states.to(self.device, torch.float32))

    @torch.no_grad()
    def act_encoded(self, encoded_BD: Tensor, obs_BF: npt.ArrayLike | Tensor) -> np.ndarray:
        """Greedy actions from :meth:`encode_states` rows and the observations' account columns."""
        body = self.online.body
        if not isinstance(body, StructuredBody):
            raise ValueError("act_encoded needs the structured encoder; use act")
        account_BK = self._as_obs(obs_BF)[:, self.state_dim :]
        with self.evaluating(), self._autocast():
            out = self.online.output_from_features(body.forward_encoded(encoded_BD, account_BK))
            return self.online.q_from_output(out).argmax(dim=1).cpu().numpy()

    @contextmanager
    def evaluating(self) -> Iterator[None]:
        """Put the online network in eval mode (noise off) inside the block; restore its previous mode after.

        A greedy :meth:`act` enters it on every call; a backtest enters it once around all its steps, so the
        per-call mode switch (a walk over every submodule, twice: ~12 % of a demo backtest's time,
        ``benchmarks/bench_backtest.py``) is skipped when the network is in eval mode already.
        """
        if not self.online.training:
            yield
            return
        self.online.eval()
        try:
            yield
        finally:
            self.online.train()

    def _autocast(self) -> torch.autocast:
        """bfloat16 autocast on the learner's device when ``mixed_precision`` is on, a no-op otherwise."""
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.mixed_precision)

    def _as_obs(self, obs_BF: npt.ArrayLike | Tensor) -> Tensor:
        obs = obs_BF if isinstance(obs_BF, Tensor) else torch.from_numpy(np.asarray(obs_BF, dtype=np.float32))
        if obs.ndim != 2 or obs.shape[1] != self.obs_dim:
            raise ValueError(f"act: expected observations of shape [B, {self.obs_dim}], got {tuple(obs.shape)}")
        return obs.to(self.device, torch.float32)

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        """Networks, optimiser, generator states and counters (tensors and plain values only)."""
        return {
            "config": self.config.model_dump(mode="json"),
            "state_dim": self.state_dim,
            "account_dim": self.account_dim,
            "online": self.online.state_dict(),
            "target": self.target.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "learn_generator": self.learn_generator.get_state(),
            "act_generator": self.act_generator.get_state(),
            "updates": self.updates,
            "device": self.device.type,
        }

    def load_state_dict(self, state: dict[str, Any], *, random_streams: bool = True) -> None:
        """Restore a ``state_dict`` saved by a learner with the same config and observation width.

        The seed is not compared: it only initialises the generators, whose saved states are restored (run
        folders made before ``agent.seed`` defaulted to the top-level seed record ``agent.seed: 0``).

        Tensors may come from another device (a checkpoint written on a GPU, read with ``map_location``):
        they are copied onto this learner's. The generators' states cannot move between device types (a
        CUDA generator's Philox state is not a CPU Mersenne Twister's), so a state from another device type
        is refused with ``random_streams=True`` (resuming training, which must continue those streams),
        and its generators are left as seeded with ``random_streams=False`` (evaluation: greedy actions
        draw nothing).
        """
        mine = self.config.model_dump(mode="json")
        # A field added after the state was saved counts as its default there.
        theirs = {**type(self.config)().model_dump(mode="json"), **state["config"]}
        diff = sorted(k for k in mine.keys() | theirs.keys() if k != "seed" and mine.get(k) != theirs.get(k))
        if diff:
            details = ", ".join(f"{k}: saved {theirs.get(k)!r} vs now {mine.get(k)!r}" for k in diff)
            raise ValueError(f"learner state was saved with a different config ({details})")
        saved_dims = (state["state_dim"], state["account_dim"])
        if saved_dims != (self.state_dim, self.account_dim):
            raise ValueError(
                f"learner state has (state_dim, account_dim)={saved_dims}, this learner "
                f"{(self.state_dim, self.account_dim)}"
            )
        streams_fit = all(_generator_state_fits(self.device, state[k]) for k in ("learn_generator", "act_generator"))
        if random_streams and not streams_fit:
            saved_on = state.get("device", "another device")
            raise ValueError(
                f"learner state was written on {saved_on}: its random streams (exploration, noise) cannot "
                f"continue on {self.device.type}; resume training on a {saved_on} machine, or load it for "
                "evaluation only"
            )
        self.online.load_state_dict(state["online"])
        self.target.load_state_dict(state["target"])
        self.optimizer.load_state_dict(state["optimizer"])
        if streams_fit:
            self.learn_generator.set_state(state["learn_generator"])
            self.act_generator.set_state(state["act_generator"])
        self.updates = int(state["updates"])


def resolve_device(name: str) -> torch.device:
    """Resolve a ``train.device`` name to a torch device.

    ``"auto"``: the first CUDA GPU when torch sees one, else the CPU; ``"cpu"``; ``"cuda"`` or ``"cuda:N"``
    (refused with a clear message when torch sees no GPU).
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(
            f"train.device is {name!r} but torch sees no CUDA GPU (torch {torch.__version__}); "
            "use 'auto' or 'cpu', or install a CUDA build of torch on a machine with a GPU"
        )
    if device.type not in ("cpu", "cuda"):
        raise ConfigError(f"train.device must be 'auto', 'cpu' or 'cuda', got {name!r}")
    return device


def _generator_state_fits(device: torch.device, state: Tensor) -> bool:
    """Whether a saved generator state can be restored into a generator on ``device`` (same device type)."""
    try:
        torch.Generator(device).set_state(state)
    except (RuntimeError, TypeError):
        return False
    return True


def _fused_supported(device: torch.device) -> bool:
    # torch ≥ 2.4 ships fused Adam for CPU float32 as well as CUDA; one kernel per step instead of a
    # dozen passes over the parameters (the update's largest memory-bound part on the flat network).
    if device.type not in ("cpu", "cuda"):
        return False
    try:
        probe = torch.zeros(1, device=device, requires_grad=True)
        torch.optim.Adam([probe], fused=True)
    except (RuntimeError, ValueError):
        return False
    return True
