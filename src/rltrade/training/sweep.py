"""Hyperparameter sweep: Optuna (TPE, median pruning) over a YAML search space, trials run as Ray tasks.

**Search space** (``--space FILE``, :func:`load_space`): a YAML mapping with ``params`` (dotted config paths,
each ``{type: float|int|categorical, low, high, log, step, choices}``) and the budget (``trials``, ``seeds`` ≥ 2,
``folds``, ``top_k``, ``top_seeds``, ``pruner``: ``median`` or ``none``, ``sampler_seed``). Any config field can
be swept: learning rate (``agent.lr``), γ (``agent.gamma``), n-step (``agent.n_step``), network
(``agent.encoder_hidden``, ``agent.network``), reward weights (``reward.*_weight``), the turnover penalty
(``reward.turnover_weight``), the minimum holding time (``env.min_hold_steps``, the one ``env`` field allowed)
and the training-time fee multiplier (``train.fee_multiplier``). Evaluation always charges the config's
``env.taker_fee``: a sweep may not set ``env.*`` cost or clock fields.

**Objective, never the test range.** The span before the outer test range (the config's own train + validation,
:func:`inner_folds`) is cut into ``folds`` rolling walk-forward folds. A trial trains each fold on ``seeds``
seeds (one torch thread each) and scores the fold by the mean over seeds of the best checkpoint's return on the
fold's validation *selection window* (:mod:`rltrade.training.confirmation`); the trial's objective is the
**median over folds**. Fold ``k``'s score is reported as Optuna's intermediate value at step ``k``, so the
median pruner stops a trial whose first folds trail the others. Nothing reads the outer test range.

**Workers and storage.** The driver asks Optuna for trials and tells it the results (ask/tell): only the driver
writes the study, to an Optuna journal file in the sweep folder (``study.journal``; SQLite locks under parallel
writers and remote workers cannot reach a local file). Each (trial, fold) is one Ray task of one CPU (a local
Ray, or the cluster at ``ray_address``); ``executor="local"`` runs them one after another in this process (the
sequential baseline). The journal keeps each trial's values and fold scores, not its return series (those stay
in the runs' ``selection_detail.npz``, so the journal stays small). The driver warns once about history too
short for a block's warm-up (at the earliest fold's train start); the runs' repeats of it are filtered. A rerun
resumes the study: trials left
running by a crash are marked failed, finished ones are kept, and the sweep continues until ``trials`` have
finished. On a cluster, ``out_dir`` must be on storage every worker and the driver share.

**Do no harm.** The ``top_k`` best trials are re-run on ``top_seeds`` fresh seeds; their re-run objectives,
flat's (0) and buy-and-hold's (median over folds of its selection-window return) are the candidates of
:func:`rltrade.training.selection.decide`. PBO is computed over every finished trial's pooled validation returns
(the folds' selection windows, mean over seeds) beside both baselines; a selection with PBO ≥ ``max_pbo`` is
refused unless ``allow_overfit``; the winner must beat flat and buy-and-hold on the folds' pooled confirmation
windows. ``sweep.json`` holds every trial, the PBO, the selection and its label.

**Final evaluation.** The chosen configuration (the best trial's, whatever was selected) is trained once on the
config's own splits and backtested once on the test range (``final/``), beside the baselines, with the
selection's label.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import statistics
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal, Protocol

import numpy as np
import numpy.typing as npt
import torch
from pydantic import ValidationError

from rltrade.config import ONE_THREAD, Config, ConfigError, describe_differences, read_yaml_mapping, result_differences
from rltrade.data.atomic import write_json_atomic
from rltrade.data.market import MarketFrames, load_market
from rltrade.data.splits import Fold, TimeRange, split_span
from rltrade.features.layout import build_layout
from rltrade.training.bundle import open_bundle
from rltrade.training.confirmation import read_selection, read_selection_detail
from rltrade.training.loop import train
from rltrade.training.pipeline import SHORTFALL, decision_span, warn_short_history
from rltrade.training.pipeline import logger as pipeline_logger
from rltrade.training.presets import deep_merge
from rltrade.training.selection import BASELINES, Pbo, Selection, decide, pbo_cscv
from rltrade.training.walkforward import fold_to_dict, plan_folds

F64 = npt.NDArray[np.float64]
JOURNAL: Final = "study.journal"
RESULT: Final = "sweep.json"
FORBIDDEN_PREFIXES: Final = ("env.", "seed", "splits.", "data.", "selection.")
"""Config paths a sweep may not search: costs and clock (evaluation uses the user's), seeds, ranges and data."""
ALLOWED_ENV: Final = ("env.min_hold_steps",)
"""The ``env`` fields a sweep may search: not costs, the agent's minimum holding time."""
RERUN_SEED_OFFSET: Final = 1000
"""Re-runs of the top trials use seeds ``cfg.seed + 1000 + i`` (fresh: no trial trained on them)."""

SweepProgress = Callable[[str], None]


class SweepError(ValueError):
    """A sweep cannot run as asked (the message says why and what to do)."""


@dataclass(frozen=True)
class Param:
    """One searched config field."""

    path: str
    kind: Literal["float", "int", "categorical"]
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: tuple[Any, ...] = ()


@dataclass(frozen=True)
class SweepSpace:
    """The search space and the sweep's budget (module docstring)."""

    params: tuple[Param, ...]
    trials: int = 20
    seeds: int = 2
    folds: int = 2
    top_k: int = 5
    top_seeds: int = 3
    pruner: Literal["median", "none"] = "median"
    sampler_seed: int = 0

    def to_dict(self) -> dict[str, Any]:
        """Return the space as a JSON-ready mapping."""
        return {
            "params": [p.__dict__ | {"choices": list(p.choices)} for p in self.params],
            "trials": self.trials,
            "seeds": self.seeds,
            "folds": self.folds,
            "top_k": self.top_k,
            "top_seeds": self.top_seeds,
            "pruner": self.pruner,
            "sampler_seed": self.sampler_seed,
        }


def load_space(path: Path, cfg: Config) -> SweepSpace:
    """Read and check the YAML search space at ``path`` against ``cfg`` (every value must make a valid config)."""
    raw = read_yaml_mapping(path, "search space")
    return parse_space(raw, cfg, where=str(path))


def parse_space(raw: Mapping[str, Any], cfg: Config, *, where: str = "search space") -> SweepSpace:
    """Check a search-space mapping (see :func:`load_space`)."""
    known = {"params", "trials", "seeds", "folds", "top_k", "top_seeds", "pruner", "sampler_seed"}
    extra = sorted(set(raw) - known)
    if extra:
        raise ConfigError(f"{where}: unknown keys {', '.join(extra)}; use {', '.join(sorted(known))}")
    params_raw = raw.get("params")
    if not isinstance(params_raw, Mapping) or not params_raw:
        raise ConfigError(f"{where}: 'params' must map config paths (e.g. agent.lr) to their ranges")
    params = tuple(_param(str(k), v, where) for k, v in params_raw.items())
    budget = {k: raw[k] for k in known - {"params"} if k in raw}
    space = SweepSpace(params, **budget)
    if space.seeds < 2:
        raise ConfigError(f"{where}: seeds must be at least 2 (each trial runs on ≥ 2 seeds), got {space.seeds}")
    if space.top_seeds < 3 or space.top_k < 1 or space.trials < 1 or space.folds < 1:
        raise ConfigError(f"{where}: need trials ≥ 1, folds ≥ 1, top_k ≥ 1 and top_seeds ≥ 3")
    if space.pruner not in ("median", "none"):
        raise ConfigError(f"{where}: pruner must be 'median' or 'none', got {space.pruner!r}")
    base = cfg.model_dump(mode="json")
    for p in params:
        for value in _extremes(p):
            try:
                Config.model_validate(deep_merge(base, nested({p.path: value})))
            except ValidationError as exc:
                first = exc.errors()[0]
                raise ConfigError(
                    f"{where}: {p.path} = {value!r} is not a valid config value: {first['msg']}"
                ) from None
    return space


def _param(path: str, spec: Any, where: str) -> Param:
    if path not in ALLOWED_ENV and any(path == f.rstrip(".") or path.startswith(f) for f in FORBIDDEN_PREFIXES):
        raise ConfigError(
            f"{where}: {path} cannot be searched (costs, clock, seeds, ranges and data are the user's: evaluation "
            "always charges env.taker_fee; sweep train.fee_multiplier to train against other fees)"
        )
    if not isinstance(spec, Mapping) or spec.get("type") not in ("float", "int", "categorical"):
        raise ConfigError(f"{where}: {path} needs type: float, int or categorical")
    kind = spec["type"]
    if kind == "categorical":
        choices = spec.get("choices")
        if not isinstance(choices, list) or not choices:
            raise ConfigError(f"{where}: {path} (categorical) needs a non-empty list of choices")
        return Param(path, kind, choices=tuple(tuple(c) if isinstance(c, list) else c for c in choices))
    low, high = spec.get("low"), spec.get("high")
    if not isinstance(low, int | float) or not isinstance(high, int | float) or not low < high:
        raise ConfigError(f"{where}: {path} needs numbers low < high, got low={low!r}, high={high!r}")
    return Param(path, kind, float(low), float(high), bool(spec.get("log", False)), spec.get("step"))


def _extremes(p: Param) -> list[Any]:
    if p.kind == "categorical":
        return [list(c) if isinstance(c, tuple) else c for c in p.choices]
    assert p.low is not None and p.high is not None
    if p.kind == "int":
        return [int(p.low), int(p.high)]
    return [p.low, p.high]


def nested(flat: Mapping[str, Any]) -> dict[str, Any]:
    """``{"agent.lr": 1e-3}`` → ``{"agent": {"lr": 1e-3}}`` (tuples become lists, as YAML gives them)."""
    out: dict[str, Any] = {}
    for path, value in flat.items():
        node = out
        *parents, leaf = path.split(".")
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = list(value) if isinstance(value, tuple) else value
    return out


def suggest(trial: Any, space: SweepSpace) -> dict[str, Any]:
    """Draw the trial's values (Optuna ``trial.suggest_*``), by config path."""
    values: dict[str, Any] = {}
    for p in space.params:
        if p.kind == "categorical":
            labels = [str(list(c)) if isinstance(c, tuple) else str(c) for c in p.choices]
            values[p.path] = p.choices[labels.index(trial.suggest_categorical(p.path, labels))]
        elif p.kind == "int":
            assert p.low is not None and p.high is not None
            values[p.path] = trial.suggest_int(p.path, int(p.low), int(p.high), log=p.log, step=int(p.step or 1))
        else:
            assert p.low is not None and p.high is not None
            values[p.path] = trial.suggest_float(p.path, p.low, p.high, log=p.log, step=p.step)
    return values


def inner_folds(cfg: Config, n_folds: int, *, frames: MarketFrames | None = None) -> tuple[list[Fold], Fold]:
    """Plan the sweep's folds: ``(inner folds, outer split)``.

    The inner folds are rolling folds over the span before the outer test range (its train and validation
    ranges, ending at the validation range's end); the outer split is the config's own.
    """
    frames = frames if frames is not None else load_market(cfg.data)
    span = decision_span(frames, cfg)
    outer = split_span(span, cfg.splits, step_us=cfg.env.step.us)
    end = outer.validation.end_us if outer.validation is not None else outer.train.end_us
    if cfg.splits.validation <= 0:
        raise SweepError("a sweep selects on validation: set splits.validation > 0")
    return plan_folds(cfg, TimeRange(span.start_us, end), n_folds), outer


class _DropShortfalls(logging.Filter):
    """Drops :func:`rltrade.training.pipeline.warn_short_history` records (the sweep gave them once)."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Keep every record but a history shortfall."""
        return not getattr(record, SHORTFALL, False)


@contextlib.contextmanager
def history_warned_once() -> Iterator[None]:
    """Silence the per-run history-shortfall warnings while the block runs (the sweep's driver warned once)."""
    drop = _DropShortfalls()
    pipeline_logger.addFilter(drop)
    try:
        yield
    finally:
        pipeline_logger.removeFilter(drop)


def run_trial_fold(cfg_dict: dict[str, Any], fold: Fold, seeds: Sequence[int], out_dir: str) -> dict[str, Any]:
    """Train ``cfg_dict`` on ``fold`` once per seed (one torch thread) into ``out_dir/fold<k>_seed<s>``.

    Returns the fold's score (mean over seeds of the best checkpoint's selection-window return), each seed's
    score and selection, and the per-step returns (mean over seeds) of ``agent``, ``flat`` and ``buy_and_hold``
    on the selection and confirmation windows. A run folder that already holds the run is resumed.
    """
    torch.set_num_threads(1)
    scores, selections = [], []
    for seed in seeds:
        cfg = Config.model_validate(deep_merge(cfg_dict, {"seed": seed, **ONE_THREAD}))
        run_dir = Path(out_dir) / f"fold{fold.index}_seed{seed}"
        resume = (run_dir / "manifest.json").exists()
        differ = result_differences(open_bundle(run_dir).config, cfg) if resume else []
        if differ:
            raise SweepError(
                f"{run_dir} holds a different run (its config differs in {describe_differences(differ)}); "
                "use another sweep folder"
            )
        with history_warned_once():
            train(cfg, run_dir, splits=None if resume else fold, resume=resume, log=lambda _: None)
        sel = read_selection(run_dir)
        detail = read_selection_detail(run_dir)
        if sel is None or not detail:
            raise SweepError(f"{run_dir} made no selection (its validation range is missing or too short)")
        scores.append(float(sel["scores"]["agent"]))
        selections.append({k: sel[k] for k in ("selected", "status", "label")})
    return {
        "fold": fold.index,
        "seeds": list(seeds),
        "out_dir": str(out_dir),
        "score": float(np.mean(scores)),
        "seed_scores": scores,
        "selections": selections,
        "returns": {k: v.tolist() for k, v in fold_returns(Path(out_dir), fold.index, seeds).items()},
    }


def fold_returns(out_dir: Path, fold_index: int, seeds: Sequence[int]) -> dict[str, F64]:
    """Mean over ``seeds`` of the runs' per-step selection and confirmation returns (``selection_detail.npz``)."""
    pooled: dict[str, list[F64]] = {}
    for seed in seeds:
        for key, value in read_selection_detail(out_dir / f"fold{fold_index}_seed{seed}").items():
            pooled.setdefault(key, []).append(value)
    return {
        k: np.mean(np.stack(v), axis=0)
        for k, v in pooled.items()
        if len(v) == len(seeds) and len({a.size for a in v}) == 1
    }


def _with_returns(row: Mapping[str, Any]) -> dict[str, Any]:
    """Reload the return series of a fold row read back from the journal (which keeps none) from its runs."""
    got = fold_returns(Path(row["out_dir"]), int(row["fold"]), row["seeds"])
    return {**row, "returns": {k: v.tolist() for k, v in got.items()}}


class Executor(Protocol):
    """Runs :func:`run_trial_fold` calls: submit, then collect finished ones."""

    def submit(self, key: Any, args: tuple[Any, ...]) -> None:
        """Start ``run_trial_fold(*args)``, remembered as ``key``."""

    def next_done(self) -> tuple[Any, dict[str, Any] | BaseException]:
        """Wait for one started call; its key and its result (or what it raised)."""

    def pending(self) -> int:
        """How many calls are started and not yet collected."""


@dataclass
class LocalExecutor:
    """Each call runs at submission, in this process (the sequential baseline; tests)."""

    done: list[tuple[Any, dict[str, Any] | BaseException]] = field(default_factory=list)

    def submit(self, key: Any, args: tuple[Any, ...]) -> None:
        """Run the call now."""
        try:
            self.done.append((key, run_trial_fold(*args)))
        except Exception as exc:  # a failed trial fails alone: the sweep goes on
            self.done.append((key, exc))

    def next_done(self) -> tuple[Any, dict[str, Any] | BaseException]:
        """Return the oldest finished call."""
        return self.done.pop(0)

    def pending(self) -> int:
        """Count the finished calls not yet collected."""
        return len(self.done)


class RayExecutor:
    """Each call is a Ray task of one CPU."""

    def __init__(self) -> None:
        """Wrap :func:`run_trial_fold` as a Ray task (Ray must be initialised)."""
        import ray

        self._ray = ray
        self._task = ray.remote(num_cpus=1)(run_trial_fold)
        self._keys: dict[Any, Any] = {}

    def submit(self, key: Any, args: tuple[Any, ...]) -> None:
        """Submit the task."""
        self._keys[self._task.remote(*args)] = key

    def next_done(self) -> tuple[Any, dict[str, Any] | BaseException]:
        """Wait for any task to finish."""
        ready, _ = self._ray.wait(list(self._keys), num_returns=1)
        key = self._keys.pop(ready[0])
        try:
            return key, self._ray.get(ready[0])
        except self._ray.exceptions.RayError as exc:
            cause = getattr(exc, "cause", None)
            return key, cause if isinstance(cause, BaseException) else exc

    def pending(self) -> int:
        """Count the tasks in flight."""
        return len(self._keys)


@dataclass
class SweepResult:
    """What :func:`run_sweep` wrote to ``sweep.json``."""

    path: Path
    trials: list[dict[str, Any]]
    pbo: dict[str, Any] | None
    selection: dict[str, Any]
    best_trial: int | None
    final: dict[str, Any] | None
    wall_s: float


@dataclass
class _Trial:
    number: int
    params: dict[str, Any]
    optuna_trial: Any
    folds: dict[int, dict[str, Any]] = field(default_factory=dict)
    next_fold: int = 0
    pruned: bool = False


def run_sweep(
    cfg: Config,
    space: SweepSpace,
    out_dir: Path,
    *,
    executor: Literal["ray", "local"] = "ray",
    ray_address: str | None = None,
    num_cpus: int | None = None,
    allow_overfit: bool = False,
    final: bool = True,
    progress: SweepProgress | None = None,
    frames: MarketFrames | None = None,
) -> SweepResult:
    """Run (or resume) the sweep of the module docstring into ``out_dir``; write ``sweep.json``."""
    import time

    import optuna

    t0 = time.perf_counter()
    say = progress or (lambda _: None)
    out_dir.mkdir(parents=True, exist_ok=True)
    frames = frames if frames is not None else load_market(cfg.data)
    folds, _outer = inner_folds(cfg, space.folds, frames=frames)
    # Once for the sweep, at its earliest train start (the runs' own warnings are filtered: history_warned_once).
    warn_short_history(frames, build_layout(cfg.features.layout), cfg, min(f.train.start_us for f in folds))
    base = cfg.model_dump(mode="json")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = _journal(out_dir)
    pruner: optuna.pruners.BasePruner = (
        optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=0)
        if space.pruner == "median"
        else optuna.pruners.NopPruner()
    )
    study = optuna.create_study(
        study_name="rltrade-sweep",
        storage=storage,
        load_if_exists=True,
        direction="maximize",
        sampler=optuna.samplers.TPESampler(seed=space.sampler_seed),
        pruner=pruner,
    )
    for t in study.trials:  # a crash left these running: nothing will finish them
        if t.state == optuna.trial.TrialState.RUNNING:
            study.tell(t.number, state=optuna.trial.TrialState.FAIL)
    results: dict[int, dict[str, Any]] = {
        t.number: {**t.user_attrs, "folds": [_with_returns(f) for f in t.user_attrs.get("folds", [])]}
        for t in study.trials
        if t.user_attrs
    }
    seeds = [cfg.seed + i for i in range(space.seeds)]

    ex: Executor
    started_ray = False
    if executor == "ray":
        import ray

        if not ray.is_initialized():
            started_ray = True
            if ray_address is not None:
                ray.init(address=ray_address)
            else:
                ray.init(num_cpus=num_cpus, include_dashboard=False)
        ex = RayExecutor()
        slots = max(1, int(ray.available_resources().get("CPU", 1)))  # type: ignore[no-untyped-call]
    else:
        ex = LocalExecutor()
        slots = 1
    try:
        _search(study, space, folds, base, seeds, out_dir, ex, slots, results, say)
        finished = _finished(study)
        ranked = sorted(finished, key=lambda t: float(t.value), reverse=True)[: space.top_k]
        rerun_seeds = [cfg.seed + RERUN_SEED_OFFSET + i for i in range(space.top_seeds)]
        reruns = _rerun(ranked, folds, base, rerun_seeds, out_dir, ex, say)
    finally:
        if started_ray:
            import ray

            ray.shutdown()
    trials = _trial_rows(study, results, reruns)
    pbo = _sweep_pbo(finished, results)
    selection, best = _select(cfg, ranked, reruns, results, pbo, allow_overfit)
    say(selection.label)
    final_row = None
    if final and best is not None:
        final_row = _final(cfg, best, out_dir, selection)
    result = SweepResult(
        out_dir / RESULT, trials, None if pbo is None else pbo.to_dict(), selection.to_dict(), best, final_row, 0.0
    )
    result.wall_s = time.perf_counter() - t0
    write_json_atomic(
        result.path,
        {
            "format": "rltrade.sweep",
            "version": 1,
            "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "space": space.to_dict(),
            "config": base,
            "folds": [fold_to_dict(f) for f in folds],
            "seeds": seeds,
            "trials": trials,
            "pbo": result.pbo,
            "selection": result.selection,
            "best_trial": best,
            "final": final_row,
            "wall_s": result.wall_s,
        },
    )
    return result


def _journal(out_dir: Path) -> Any:
    """Open the Optuna journal storage of the sweep in ``out_dir`` (only the driver writes it)."""
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    return JournalStorage(JournalFileBackend(str(out_dir / JOURNAL)))


def _finished(study: Any) -> list[Any]:
    import optuna

    return [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE and t.value is not None]


def _search(
    study: Any,
    space: SweepSpace,
    folds: list[Fold],
    base: dict[str, Any],
    seeds: list[int],
    out_dir: Path,
    ex: Executor,
    slots: int,
    results: dict[int, dict[str, Any]],
    say: SweepProgress,
) -> None:
    """Ask, run fold by fold (pruning between folds), tell, until ``space.trials`` trials have finished."""
    import optuna

    done_states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    n_done = sum(t.state in done_states for t in study.trials)
    live: dict[int, _Trial] = {}

    def start_next(tr: _Trial) -> None:
        fold = folds[tr.next_fold]
        tr.next_fold += 1
        cfg_dict = deep_merge(base, nested(tr.params))
        ex.submit(tr.number, (cfg_dict, fold, seeds, str(out_dir / f"trial{tr.number:04d}")))

    while n_done < space.trials or live:
        while len(live) < slots and n_done + len(live) < space.trials:
            trial = study.ask()
            tr = _Trial(trial.number, suggest(trial, space), trial)
            live[tr.number] = tr
            start_next(tr)
        number, out = ex.next_done()
        tr = live[number]
        if isinstance(out, BaseException):
            study.tell(tr.optuna_trial, state=optuna.trial.TrialState.FAIL)
            results[number] = {"params": _jsonable(tr.params), "error": f"{type(out).__name__}: {out}"}
            say(f"trial {number} failed: {type(out).__name__}: {out}")
            del live[number]
            n_done += 1
            continue
        k = int(out["fold"])
        tr.folds[k] = out
        tr.optuna_trial.report(float(out["score"]), step=k)
        if tr.next_fold < len(folds) and tr.optuna_trial.should_prune():
            tr.pruned = True
        if tr.pruned or tr.next_fold == len(folds):
            attrs: dict[str, Any] = {"params": _jsonable(tr.params), "folds": [tr.folds[i] for i in sorted(tr.folds)]}
            tr.optuna_trial.set_user_attr("params", attrs["params"])  # the journal keeps no return series
            tr.optuna_trial.set_user_attr("folds", [_without_returns(f) for f in attrs["folds"]])
            results[number] = attrs
            if tr.pruned:
                study.tell(tr.optuna_trial, state=optuna.trial.TrialState.PRUNED)
                say(f"trial {number} pruned after fold {k}")
            else:
                value = statistics.median(f["score"] for f in attrs["folds"])
                study.tell(tr.optuna_trial, value)
                say(f"trial {number}: median validation return {value:+.4%}")
            del live[number]
            n_done += 1
        else:
            start_next(tr)


def _rerun(
    ranked: list[Any],
    folds: list[Fold],
    base: dict[str, Any],
    seeds: list[int],
    out_dir: Path,
    ex: Executor,
    say: SweepProgress,
) -> dict[int, dict[str, Any]]:
    """Re-run each of the top trials on fresh seeds, every fold: trial number → ``{"value", "folds"}``."""
    for t in ranked:
        params = dict(t.user_attrs["params"])
        for fold in folds:
            args = (deep_merge(base, nested(params)), fold, seeds, str(_rerun_dir(out_dir, t.number)))
            ex.submit((t.number, fold.index), args)
    got: dict[int, dict[int, dict[str, Any]]] = {}
    errors: dict[int, str] = {}
    for _ in range(len(ranked) * len(folds)):
        (number, _k), out = ex.next_done()
        if isinstance(out, BaseException):
            errors[number] = f"{type(out).__name__}: {out}"
        else:
            got.setdefault(number, {})[int(out["fold"])] = out
    reruns: dict[int, dict[str, Any]] = {}
    for t in ranked:
        if t.number in errors or len(got.get(t.number, {})) != len(folds):
            say(f"re-run of trial {t.number} failed: {errors.get(t.number, 'missing folds')}")
            continue
        rows = [got[t.number][k] for k in sorted(got[t.number])]
        reruns[t.number] = {"value": statistics.median(r["score"] for r in rows), "folds": rows, "seeds": seeds}
        say(f"trial {t.number} re-run on {len(seeds)} seeds: {reruns[t.number]['value']:+.4%}")
    return reruns


def _rerun_dir(out_dir: Path, number: int) -> Path:
    return out_dir / f"trial{number:04d}_rerun"


def _pooled(folds: Sequence[Mapping[str, Any]], key: str) -> F64 | None:
    parts = [np.asarray(f["returns"][key], dtype=np.float64) for f in folds if key in f["returns"]]
    return np.concatenate(parts) if parts and len(parts) == len(folds) else None


def _sweep_pbo(finished: list[Any], results: Mapping[int, Mapping[str, Any]]) -> Pbo | None:
    """PBO over every finished trial's pooled selection-window returns beside both baselines."""
    series: dict[str, F64] = {}
    for t in finished:
        pooled = _pooled(results[t.number]["folds"], "agent_selection")
        if pooled is not None:
            series[f"trial{t.number}"] = pooled
    if not series:
        return None
    first = results[finished[0].number]["folds"]
    for b in BASELINES:
        pooled = _pooled(first, f"{b}_selection")
        if pooled is not None:
            series[b] = pooled
    if len({s.size for s in series.values()}) != 1 or len(series) < 3:
        return None
    try:
        return pbo_cscv(series)
    except ValueError:
        return None


def _select(
    cfg: Config,
    ranked: list[Any],
    reruns: Mapping[int, Mapping[str, Any]],
    results: Mapping[int, Mapping[str, Any]],
    pbo: Pbo | None,
    allow_overfit: bool,
) -> tuple[Selection, int | None]:
    """Candidates: flat, buy-and-hold and the re-run top trials (median over folds); confirm the winner."""
    s = cfg.selection
    if not ranked:
        return Selection("flat", "flat", "baseline_best", "no trial finished", {}, {}, None, allow_overfit), None
    some = reruns[next(iter(reruns))]["folds"] if reruns else results[ranked[0].number]["folds"]
    bh = statistics.median(_total(np.asarray(f["returns"]["buy_and_hold_selection"])) for f in some)
    scores: dict[str, float] = {"flat": 0.0, "buy_and_hold": bh}
    for t in ranked:
        if t.number in reruns:
            scores[f"trial{t.number}"] = float(reruns[t.number]["value"])
    best_name = max(scores, key=lambda k: scores[k])
    confirm: dict[str, F64] | None = None
    if best_name not in BASELINES:
        rows = reruns[int(best_name.removeprefix("trial"))]["folds"]
        got = {k: v for k in ("agent", *BASELINES) if (v := _pooled(rows, f"{k}_confirmation")) is not None}
        if len(got) == 1 + len(BASELINES):
            confirm = {best_name: got["agent"], **{b: got[b] for b in BASELINES}}
    sel = decide(
        scores,
        confirm,
        rng=np.random.default_rng(np.random.SeedSequence([cfg.seed, 0x5EE9])),
        n_resamples=s.n_resamples,
        level=s.level,
        pbo=pbo,
        max_pbo=s.max_pbo,
        allow_overfit=allow_overfit or s.allow_overfit,
    )
    best = max(reruns, key=lambda n: float(reruns[n]["value"])) if reruns else ranked[0].number
    return sel, best


def _total(r: F64) -> float:
    return float(np.prod(1.0 + r) - 1.0)


def _final(cfg: Config, best: int, out_dir: Path, selection: Selection) -> dict[str, Any]:
    """Train the best trial's configuration on the config's own splits and backtest it once on the test range."""
    from rltrade.training.evaluate import evaluate_bundle

    raw = read_trial_params(out_dir, best)
    final_cfg = Config.model_validate(deep_merge(cfg.model_dump(mode="json"), nested(raw)))
    run_dir = out_dir / "final"
    resume = (run_dir / "manifest.json").exists()
    with history_warned_once():
        train(final_cfg, run_dir, resume=resume, log=lambda _: None)
    ev = evaluate_bundle(run_dir)
    return {
        "run_dir": str(run_dir),
        "trial": best,
        "test": ev.period.to_dict(),
        "sweep_selection": selection.label,
        "run_selection": None if ev.selection is None else ev.selection.get("label"),
        "metrics": {
            name: {"total_return": float(m["total_return"]), "sharpe": float(m["sharpe"])}
            for name, m in ev.metrics.items()
            if name in ("agent", *BASELINES)
        },
    }


def read_trial_params(out_dir: Path, number: int) -> dict[str, Any]:
    """Read the searched values of trial ``number`` of the study in ``out_dir`` (from its journal)."""
    import optuna

    storage = _journal(out_dir)
    study = optuna.load_study(study_name="rltrade-sweep", storage=storage)
    return dict(study.trials[number].user_attrs["params"])


def _trial_rows(
    study: Any, results: Mapping[int, Mapping[str, Any]], reruns: Mapping[int, Mapping[str, Any]]
) -> list[dict[str, Any]]:
    rows = []
    for t in study.trials:
        r = results.get(t.number, {})
        folds = r.get("folds", [])
        rows.append(
            {
                "number": t.number,
                "state": t.state.name.lower(),
                "params": r.get("params", {}),
                "value": t.value,
                "fold_scores": [f["score"] for f in folds],
                "rerun_value": reruns[t.number]["value"] if t.number in reruns else None,
                "error": r.get("error"),
            }
        )
    return rows


def _without_returns(row: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k != "returns"}


def _jsonable(values: Mapping[str, Any]) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in values.items()}
