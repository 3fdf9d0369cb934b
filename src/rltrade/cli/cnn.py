"""``rltrade cnn ...``: train the per-timeframe CNNs and evaluate them out of sample."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import torch
import typer
from pydantic import ValidationError
from rich.progress import Progress, TaskID
from rich.table import Table

from rltrade.cli.app import ConfigOpt, app, console, load, progress_bar
from rltrade.cli.errors import UsageError
from rltrade.config import CnnConfig, ConfigError, read_yaml_mapping, validation_error
from rltrade.data.market import load_market
from rltrade.data.splits import TimeRange, split_span
from rltrade.models.dataset import CnnDataError, build_timeframe_data
from rltrade.models.evaluate import TimeframeEval, evaluate_timeframe, fold_scores
from rltrade.models.io import save_cnn
from rltrade.models.labels import CLASS_NAMES
from rltrade.models.metrics import ClassMetrics
from rltrade.models.train import Progress as ProgressFn
from rltrade.models.walkforward import fit_predict
from rltrade.types import Timeframe

cnn_app = typer.Typer(help="Per-timeframe CNNs: train, evaluate out of sample.", no_args_is_help=True)
app.add_typer(cnn_app, name="cnn")

CnnConfigOpt = Annotated[
    Path | None, typer.Option("--cnn-config", help="YAML file of CnnConfig fields (defaults when omitted).")
]
TimeframesOpt = Annotated[
    list[str] | None, typer.Option("--timeframe", "-t", help="Timeframe(s) to run (default: the CNN config's).")
]
EpochsOpt = Annotated[int | None, typer.Option(help="Override max_epochs.")]
MaxWindowsOpt = Annotated[int | None, typer.Option(help="Override max_train_windows (subsample per epoch).")]
ThreadsOpt = Annotated[int, typer.Option(help="torch CPU threads (the machines are shared).")]


def load_cnn_config(
    path: Path | None, *, epochs: int | None = None, max_windows: int | None = None, base: CnnConfig | None = None
) -> CnnConfig:
    """Load the CNN config from ``path``, else take the main config's ``cnn`` section (``base``).

    ``path`` holds a mapping of CnnConfig fields, or one with a ``cnn:`` section.
    """
    raw: dict[str, object] = base.model_dump(mode="json") if base is not None and path is None else {}
    if path is not None:
        loaded = read_yaml_mapping(path, "CNN config")
        section = loaded.get("cnn", loaded)
        if not isinstance(section, dict):
            raise ConfigError(f"{path}: expected a mapping of CnnConfig fields, got {type(section).__name__}")
        raw = section
    overrides = {"max_epochs": epochs, "max_train_windows": max_windows}
    try:
        return CnnConfig.model_validate({**raw, **{k: v for k, v in overrides.items() if v is not None}})
    except ValidationError as exc:
        raise validation_error(f"{path if path is not None else 'command line'}: CNN config", exc) from None


def _timeframes(cfg: CnnConfig, names: list[str] | None) -> list[Timeframe]:
    return [Timeframe.parse(n) for n in names] if names else list(cfg.timeframes)


def _reporter(bar: Progress, task: TaskID) -> ProgressFn:
    def report(done: int, total: int, desc: str) -> None:
        bar.update(task, completed=done, total=total, description=desc)

    return report


def _freq(freq: tuple[float, ...]) -> str:
    return " / ".join(f"{x:.2f}" for x in freq)


def _metrics_row(m: ClassMetrics) -> list[str]:
    return [f"{m.accuracy:.3f}", f"{m.balanced_accuracy:.3f}", f"{m.log_loss:.4f}", f"{m.direction_accuracy:.3f}"]


@cnn_app.command("train")
def train(
    config: ConfigOpt = None,
    cnn_config: CnnConfigOpt = None,
    timeframe: TimeframesOpt = None,
    out: Annotated[Path, typer.Option(help="Folder for the model files and TensorBoard logs.")] = Path("runs/cnn"),
    epochs: EpochsOpt = None,
    max_windows: MaxWindowsOpt = None,
    tensorboard: Annotated[bool, typer.Option(help="Write TensorBoard logs under OUT/tensorboard.")] = True,
    threads: ThreadsOpt = 2,
) -> None:
    """Fit each timeframe's CNN on the config's train split (early-stopped on validation), score it on test."""
    torch.set_num_threads(threads)
    cfg = load(config)
    ccfg = load_cnn_config(cnn_config, epochs=epochs, max_windows=max_windows, base=cfg.cnn)
    frames = load_market(cfg.data)
    embargo_us = cfg.splits.embargo_us
    table = Table(title=f"CNN training (class frequencies down / flat / up; models in {out})")
    columns = ("tf", "train", "validation", "test", "freq train", "epochs", "fit s", "windows", "test bal. acc", "file")
    for col in columns:
        table.add_column(col, justify="left" if col in ("tf", "file", "freq train") else "right")
    for tf in _timeframes(ccfg, timeframe):
        try:
            data = build_timeframe_data(frames, tf, ccfg, cfg.features)
        except CnnDataError as exc:
            raise UsageError(str(exc)) from None
        span = TimeRange(int(data.eth.open_us_T[0]), int(data.close_us_T[-1]))
        fold = split_span(span, cfg.splits, step_us=tf.us)
        with progress_bar() as bar:
            task = bar.add_task(f"{tf.value} CNN", total=ccfg.max_epochs)
            try:
                res = fit_predict(
                    data,
                    fold.train,
                    fold.validation,
                    fold.test,
                    ccfg,
                    embargo_us=embargo_us,
                    seed=cfg.seed,
                    model_id=0,
                    progress=_reporter(bar, task),
                    log_dir=out / "tensorboard" / tf.value if tensorboard else None,
                )
            except CnnDataError as exc:
                raise UsageError(str(exc)) from None
        path = out / f"cnn_{tf.value}.pt"
        save_cnn(res.trained, path)
        info = res.trained.info
        scores = fold_scores(data, res, ccfg.horizon(tf))
        table.add_row(
            tf.value,
            f"{info.n_train:,}",
            f"{info.n_validation:,}",
            f"{scores['model'].n:,}",
            _freq(info.class_freq_train),
            f"{info.epochs} (best {info.best_epoch})",
            f"{info.seconds:.1f}",
            f"{info.windows_seen:,}",
            f"{scores['model'].balanced_accuracy:.3f}",
            str(path),
        )
    console.print(table)


@cnn_app.command("eval")
def eval_(
    config: ConfigOpt = None,
    cnn_config: CnnConfigOpt = None,
    timeframe: TimeframesOpt = None,
    folds: Annotated[int, typer.Option(help="Walk-forward folds (each predicts the next chunk).")] = 3,
    epochs: EpochsOpt = None,
    max_windows: MaxWindowsOpt = None,
    threads: ThreadsOpt = 2,
) -> None:
    """Walk-forward out-of-sample accuracy, balanced accuracy and log loss beside majority and persistence."""
    torch.set_num_threads(threads)
    cfg = load(config)
    ccfg = load_cnn_config(cnn_config, epochs=epochs, max_windows=max_windows, base=cfg.cnn)
    frames = load_market(cfg.data)
    results: list[TimeframeEval] = []
    for tf in _timeframes(ccfg, timeframe):
        try:
            data = build_timeframe_data(frames, tf, ccfg, cfg.features)
        except CnnDataError as exc:
            raise UsageError(str(exc)) from None
        with progress_bar() as bar:
            task = bar.add_task(f"{tf.value} CNN", total=ccfg.max_epochs)
            try:
                results.append(
                    evaluate_timeframe(
                        data,
                        ccfg,
                        n_folds=folds,
                        embargo_us=cfg.splits.embargo_us,
                        seed=cfg.seed,
                        source=cfg.data.source,
                        progress=_reporter(bar, task),
                    )
                )
            except CnnDataError as exc:
                raise UsageError(str(exc)) from None
    console.print(accuracy_table(results))


def accuracy_table(results: list[TimeframeEval]) -> Table:
    """One row per timeframe and predictor: out-of-sample metrics and the test class frequencies."""
    table = Table(title=f"CNN out-of-sample ({' / '.join(CLASS_NAMES)} classes; walk-forward)")
    for col in ("tf", "source", "n", "freq test", "predictor", "accuracy", "bal. acc", "log loss", "dir. acc", "note"):
        table.add_column(col, justify="left" if col in ("tf", "source", "predictor", "note", "freq test") else "right")
    for ev in results:
        for name in ("model", "majority", "persistence"):
            m: ClassMetrics = getattr(ev, name)
            # A planted synthetic signal is meant to be found; on real data such skill is first a leak suspect.
            note = "leak suspect" if name == "model" and ev.leak_suspect and ev.source != "synthetic" else ""
            table.add_row(
                ev.tf.value if name == "model" else "",
                ev.source if name == "model" else "",
                f"{m.n:,}" if name == "model" else "",
                _freq(ev.class_freq_test) if name == "model" else "",
                "CNN" if name == "model" else name,
                *_metrics_row(m),
                note,
            )
    return table
