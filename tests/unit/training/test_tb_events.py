"""A resumed run's TensorBoard files hold every step once (the steps past the checkpoint are cut first)."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

from rltrade.training.tb_events import truncate_events


def _raw_steps(log_dir: Path, tag: str) -> Counter[int]:
    """Every (tag, step) in the files as written, with no reader-side purging."""
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

    seen: Counter[int] = Counter()
    for path in sorted(log_dir.glob("events.out.tfevents.*")):
        for event in EventFileLoader(str(path)).Load():
            if any(v.tag == tag for v in event.summary.value):
                seen[event.step] += 1
    return seen


def test_a_resume_after_a_crash_past_the_checkpoint_leaves_no_duplicated_step(tmp_path: Path) -> None:
    from torch.utils.tensorboard import SummaryWriter

    log_dir = tmp_path / "tensorboard"
    first = SummaryWriter(str(log_dir))
    for step in range(10):  # the checkpoint was at step 6; the process died at step 9
        first.add_scalar("train/loss", float(step), step)
    first.close()
    time.sleep(1.1)  # a second writer in the same second would share the file name's timestamp
    assert truncate_events(log_dir, 6) == 4
    second = SummaryWriter(str(log_dir), purge_step=6)
    for step in range(6, 12):
        second.add_scalar("train/loss", 100.0 + step, step)
    second.close()
    steps = _raw_steps(log_dir, "train/loss")
    assert sorted(steps) == list(range(12)) and set(steps.values()) == {1}
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(log_dir), size_guidance={"scalars": 0}, purge_orphaned_data=False)
    acc.Reload()
    values = {e.step: e.value for e in acc.Scalars("train/loss")}
    assert values == {**{s: float(s) for s in range(6)}, **{s: 100.0 + s for s in range(6, 12)}}


def test_nothing_to_cut_leaves_the_files_alone(tmp_path: Path) -> None:
    from torch.utils.tensorboard import SummaryWriter

    assert truncate_events(tmp_path / "absent", 3) == 0
    w = SummaryWriter(str(tmp_path))
    w.add_scalar("a", 1.0, 1)
    w.close()
    (path,) = tmp_path.glob("events.out.tfevents.*")
    before = path.read_bytes()
    assert truncate_events(tmp_path, 5) == 0
    assert path.read_bytes() == before
