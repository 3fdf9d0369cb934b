"""Supervised training of one timeframe's CNN on a training range, early-stopped on a validation range.

The loop, top to bottom (:func:`fit_cnn`)::

    rows        windows a fit on each range may use (TimeframeData.fit_rows: exact purge by label end)
    flat band   cfg.flat_band, or the cfg.flat_quantile of |forward return| over the training rows
    weights     class weights n / (3 · n_c) from the training rows (a dominant class does not win by default)
    scale       input_scale_C = per channel std of a sample of training windows
    epoch       a seeded subset of windows_per_epoch training rows (≤ max_train_windows), shuffled, in batches:
                loss = weighted cross-entropy(3 logits) + pivot_loss_weight · Huber(distance, where known)
    validate    same loss on ≤ max_val_windows validation rows (eval mode), plus class metrics of the
                prior-corrected probabilities
    stop        after ``patience`` epochs without a lower validation loss; the best epoch's weights are kept
    correct     logit_offset_3 = −log(class weights): the outputs become calibrated probabilities again
                (:mod:`rltrade.models.cnn`)

Randomness: one ``torch.Generator`` from ``seed`` draws the initial weights, the subsets and the
shuffles; dropout runs under ``torch.random.fork_rng`` seeded from it, so the global RNG is left as it
was. Same data, config, seed and thread count → bit-identical weights.

Costs are reported in :class:`FitInfo` (wall seconds, windows seen). With the defaults (300-bar windows,
16 channels, 50k windows per epoch) an epoch is a few hundred thousand window passes of a ~0.7 M-parameter
CNN; on 2 CPU threads budget minutes per epoch, so 1 s data is subsampled, never swept whole.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F

from rltrade.config import CnnConfig
from rltrade.data.splits import TimeRange
from rltrade.models.cnn import N_CLASS_LOGITS, CnnShape, TimeframeCnn, build_cnn, predictions
from rltrade.models.dataset import CnnDataError, TimeframeData
from rltrade.models.labels import N_CLASSES, class_frequencies, fit_flat_band
from rltrade.models.metrics import ClassMetrics, class_metrics
from rltrade.types import Timeframe

Progress = Callable[[int, int, str], None]
"""``progress(done, total, description)``: epochs done out of ``max_epochs``."""

SCALE_SAMPLE = 2048
"""Training windows the input scale is estimated on."""


@dataclass(frozen=True)
class FitInfo:
    """What a fitted CNN was fitted on and how the fit went (saved with the model)."""

    tf: Timeframe
    train: TimeRange
    validation: TimeRange | None
    fit_end_us: int
    """When the latest label window used (training or validation) ended: the model may serve a bar
    closing at ``t`` only when ``fit_end_us + embargo <= t``."""
    flat_band: float
    class_freq_train: tuple[float, ...]
    class_freq_validation: tuple[float, ...] | None
    n_train: int
    n_validation: int
    epochs: int
    best_epoch: int
    best_val_loss: float | None
    seed: int
    seconds: float
    windows_seen: int
    val_metrics: dict[str, float | int] | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return the fit record as a JSON-ready dict (stored beside the weights)."""
        return {
            "tf": self.tf.value,
            "train": self.train.to_dict(),
            "validation": None if self.validation is None else self.validation.to_dict(),
            "fit_end_us": self.fit_end_us,
            "flat_band": self.flat_band,
            "class_freq_train": list(self.class_freq_train),
            "class_freq_validation": None if self.class_freq_validation is None else list(self.class_freq_validation),
            "n_train": self.n_train,
            "n_validation": self.n_validation,
            "epochs": self.epochs,
            "best_epoch": self.best_epoch,
            "best_val_loss": self.best_val_loss,
            "seed": self.seed,
            "seconds": self.seconds,
            "windows_seen": self.windows_seen,
            "val_metrics": self.val_metrics,
        }

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> FitInfo:
        """Rebuild the fit record from :meth:`to_dict`'s output."""
        val = raw["validation"]
        freq_val = raw["class_freq_validation"]
        return cls(
            tf=Timeframe(raw["tf"]),
            train=TimeRange(**raw["train"]),
            validation=None if val is None else TimeRange(**val),
            fit_end_us=int(raw["fit_end_us"]),
            flat_band=float(raw["flat_band"]),
            class_freq_train=tuple(float(x) for x in raw["class_freq_train"]),
            class_freq_validation=None if freq_val is None else tuple(float(x) for x in freq_val),
            n_train=int(raw["n_train"]),
            n_validation=int(raw["n_validation"]),
            epochs=int(raw["epochs"]),
            best_epoch=int(raw["best_epoch"]),
            best_val_loss=None if raw["best_val_loss"] is None else float(raw["best_val_loss"]),
            seed=int(raw["seed"]),
            seconds=float(raw["seconds"]),
            windows_seen=int(raw["windows_seen"]),
            val_metrics=raw.get("val_metrics"),
        )


@dataclass(frozen=True, eq=False)
class TrainedCnn:
    """A fitted CNN with its config and fit record."""

    model: TimeframeCnn
    config: CnnConfig
    info: FitInfo
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def tf(self) -> Timeframe:
        """The timeframe the model was trained on."""
        return self.info.tf

    def may_serve(self, t_us: npt.ArrayLike, embargo_us: int) -> npt.NDArray[np.bool_]:
        """Whether the model may fill a row visible from ``t_us``: every label it saw ended by ``t − embargo``."""
        return np.asarray(np.asarray(t_us, dtype=np.int64) >= self.info.fit_end_us + embargo_us)


@dataclass(frozen=True)
class _Split:
    rows: npt.NDArray[np.int64]
    y: npt.NDArray[np.int64]
    dist: npt.NDArray[np.float32]
    dist_ok: npt.NDArray[np.bool_]


def _split(data: TimeframeData, rng: TimeRange, band: float, rows: npt.NDArray[np.int64]) -> _Split:
    assert data.labels is not None
    y = data.labels.classes(band)[rows].astype(np.int64)
    dist, ok = data.pivot_target(rows, rng.end_us)
    return _Split(rows, y, dist, ok)


def windows_per_epoch(cfg: CnnConfig, available: int) -> int:
    """Training windows one epoch draws from ``available`` labelled ones.

    ``max_train_windows`` when ``train_window_fraction`` is unset; otherwise that fraction of the available
    windows (at least ``min_fit_windows``, at most ``max_train_windows``), so the CNN stage's work grows
    with the data up to the cap instead of always paying the cap.
    """
    if cfg.train_window_fraction is None:
        return cfg.max_train_windows
    return min(cfg.max_train_windows, max(cfg.min_fit_windows, math.ceil(cfg.train_window_fraction * available)))


def _subset(rows: npt.NDArray[np.int64], k: int, gen: torch.Generator) -> npt.NDArray[np.int64]:
    if rows.shape[0] <= k:
        return rows
    pick = torch.randperm(rows.shape[0], generator=gen)[:k].numpy()
    return np.sort(rows[pick])


def _loss(
    out_B4: torch.Tensor, part: _Split, idx: npt.NDArray[np.int64], class_w: torch.Tensor, pivot_weight: float
) -> torch.Tensor:
    y = torch.from_numpy(part.y[idx])
    ce = F.cross_entropy(out_B4[:, :N_CLASS_LOGITS], y, weight=class_w)
    ok = torch.from_numpy(part.dist_ok[idx].astype(np.float32))
    huber = F.huber_loss(out_B4[:, N_CLASS_LOGITS], torch.from_numpy(part.dist[idx]), reduction="none")
    return ce + pivot_weight * (huber * ok).sum() / ok.sum().clamp(min=1.0)


def _train_epoch(
    model: TimeframeCnn,
    opt: torch.optim.Optimizer,
    data: TimeframeData,
    part: _Split,
    class_w: torch.Tensor,
    cfg: CnnConfig,
    gen: torch.Generator,
) -> tuple[float, int]:
    """One pass over a seeded subset of :func:`windows_per_epoch` training rows; returns (mean loss, windows)."""
    model.train()
    rows = _subset(np.arange(part.rows.shape[0]), windows_per_epoch(cfg, part.rows.shape[0]), gen)
    order = rows[torch.randperm(rows.shape[0], generator=gen).numpy()]
    total = 0.0
    for a in range(0, order.shape[0], cfg.batch_size):
        idx = order[a : a + cfg.batch_size]
        out = model(torch.from_numpy(data.windows(part.rows[idx])))
        loss = _loss(out, part, idx, class_w, cfg.pivot_loss_weight)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        total += float(loss.detach()) * idx.shape[0]
    return total / max(order.shape[0], 1), int(order.shape[0])


@torch.no_grad()
def _validate(
    model: TimeframeCnn, data: TimeframeData, part: _Split, class_w: torch.Tensor, cfg: CnnConfig
) -> tuple[float, ClassMetrics]:
    was_training = model.training
    model.eval()
    total, probs = 0.0, []
    for a in range(0, part.rows.shape[0], cfg.inference_batch):
        idx = np.arange(a, min(a + cfg.inference_batch, part.rows.shape[0]))
        out = model(torch.from_numpy(data.windows(part.rows[idx])))
        total += float(_loss(out, part, idx, class_w, cfg.pivot_loss_weight)) * idx.shape[0]
        probs.append(predictions(out + _offset(class_w))[:, :N_CLASSES].numpy())
    model.train(was_training)
    return total / max(part.rows.shape[0], 1), class_metrics(np.concatenate(probs), part.y)


def fit_cnn(
    data: TimeframeData,
    train: TimeRange,
    validation: TimeRange | None,
    cfg: CnnConfig,
    *,
    seed: int,
    progress: Progress | None = None,
    log_dir: Path | None = None,
) -> TrainedCnn:
    """Fit ``data``'s CNN on ``train``, early-stopped on ``validation`` (see the module docstring)."""
    if validation is not None and validation.start_us < train.end_us:
        raise CnnDataError(
            f"{data.tf.value} CNN: validation must start after the training range ends "
            f"({validation.start_us} < {train.end_us})"
        )
    t_start = time.perf_counter()
    gen = torch.Generator().manual_seed(seed)
    train_rows = data.fit_rows(train)
    if train_rows.size == 0:
        raise CnnDataError(
            f"{data.tf.value} CNN: no labelled window in the training range [{train.start_us}, {train.end_us}); "
            f"it needs more than the indicator warm-up plus a {cfg.horizon(data.tf)}-bar horizon of bars"
        )
    assert data.labels is not None
    band = (
        fit_flat_band(data.labels.fwd_ret_T[train_rows], cfg.flat_quantile)
        if cfg.flat_quantile is not None
        else cfg.flat_band
    )
    tr = _split(data, train, band, train_rows)
    va: _Split | None = None
    if validation is not None:
        val_rows = data.fit_rows(validation)
        if val_rows.size == 0:
            raise CnnDataError(
                f"{data.tf.value} CNN: no labelled window in the validation range "
                f"[{validation.start_us}, {validation.end_us}); use a longer range or no validation"
            )
        va = _split(data, validation, band, _subset(val_rows, cfg.max_val_windows, gen))
    freq = class_frequencies(tr.y)
    class_w = torch.tensor(np.where(freq > 0, 1.0 / (N_CLASSES * np.maximum(freq, 1e-12)), 0.0), dtype=torch.float32)

    model = build_cnn(CnnShape.of(cfg, data.n_channels), gen)
    sample = data.windows(_subset(train_rows, SCALE_SAMPLE, gen))
    scale = np.maximum(sample.reshape(-1, sample.shape[-1]).std(axis=0), 1e-8)
    model.get_buffer("input_scale_C").copy_(torch.from_numpy(scale.astype(np.float32)))
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    writer = _writer(log_dir)

    best_loss, best_epoch, best_state = float("inf"), 0, _clone(model)
    best_metrics: ClassMetrics | None = None
    seen, epoch = 0, 0
    dropout_seed = int(torch.randint(0, 2**62, (1,), generator=gen))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(dropout_seed)
        for epoch in range(1, cfg.max_epochs + 1):
            epoch_loss, n_seen = _train_epoch(model, opt, data, tr, class_w, cfg, gen)
            seen += n_seen
            desc = f"{data.tf.value} CNN epoch {epoch}: train loss {epoch_loss:.4f}"
            if writer is not None:
                writer.add_scalar(f"cnn_{data.tf.value}/train_loss", epoch_loss, epoch)
            if va is not None:
                val_loss, metrics = _validate(model, data, va, class_w, cfg)
                desc += f", val loss {val_loss:.4f}, val bal. acc {metrics.balanced_accuracy:.3f}"
                if writer is not None:
                    writer.add_scalar(f"cnn_{data.tf.value}/val_loss", val_loss, epoch)
                    writer.add_scalar(f"cnn_{data.tf.value}/val_accuracy", metrics.accuracy, epoch)
                    writer.add_scalar(f"cnn_{data.tf.value}/val_balanced_accuracy", metrics.balanced_accuracy, epoch)
                if val_loss < best_loss:
                    best_loss, best_epoch, best_state, best_metrics = val_loss, epoch, _clone(model), metrics
            else:
                best_epoch, best_state = epoch, _clone(model)
            if progress is not None:
                progress(epoch, cfg.max_epochs, desc)
            if va is not None and epoch - best_epoch >= cfg.patience:
                break
    if writer is not None:
        writer.close()
    model.load_state_dict(best_state)
    model.get_buffer("logit_offset_3").copy_(_offset(class_w)[:N_CLASSES])
    model.eval()
    fit_end = data.label_end_us(tr.rows, train.end_us)
    if va is not None and validation is not None:
        fit_end = max(fit_end, data.label_end_us(data.fit_rows(validation), validation.end_us))
    info = FitInfo(
        tf=data.tf,
        train=train,
        validation=validation,
        fit_end_us=fit_end,
        flat_band=float(band),
        class_freq_train=tuple(float(x) for x in freq),
        class_freq_validation=None if va is None else tuple(float(x) for x in class_frequencies(va.y)),
        n_train=int(tr.rows.shape[0]),
        n_validation=0 if va is None else int(va.rows.shape[0]),
        epochs=epoch,
        best_epoch=best_epoch,
        best_val_loss=None if va is None else best_loss,
        seed=seed,
        seconds=time.perf_counter() - t_start,
        windows_seen=seen,
        val_metrics=None if best_metrics is None else best_metrics.to_dict(),
    )
    return TrainedCnn(model, cfg, info)


def _offset(class_w: torch.Tensor) -> torch.Tensor:
    """``[−log w_c (3), 0]``: the prior correction of a model trained with class weights ``w_c``.

    A class absent from the training rows (weight 0) keeps offset 0: there is nothing to correct.
    """
    logw = torch.where(class_w > 0, -torch.log(class_w.clamp(min=1e-12)), torch.zeros_like(class_w))
    return torch.cat([logw, logw.new_zeros(1)])


def _clone(model: TimeframeCnn) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _writer(log_dir: Path | None) -> Any:
    if log_dir is None:
        return None
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter(log_dir=str(log_dir))
