"""TensorBoard event files of a resumed run: cut every step at or after the resume step before writing again.

A run killed after its last checkpoint (step ``S``) has event files holding steps past ``S``; the resumed
run writes those steps again. ``SummaryWriter(purge_step=S)`` only asks readers to hide the old ones: the
files still overlap, and every tool that reads them raw sees each step twice. :func:`truncate_events`
rewrites each event file of the folder without the events at ``step >= S`` (atomically, file by file), so
the files hold every step once; the resumed writer then continues from ``S``.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["truncate_events"]


def truncate_events(log_dir: Path, step: int) -> int:
    """Drop the events at ``step`` or later from every ``events.out.tfevents.*`` file in ``log_dir``.

    Parameters
    ----------
    log_dir
        The run's TensorBoard folder (absent: nothing to do).
    step
        The step the resumed run starts at; events before it are kept, byte for byte.

    Returns
    -------
    int
        The number of events dropped.
    """
    from tensorboard.backend.event_processing.event_file_loader import RawEventFileLoader
    from tensorboard.compat.proto.event_pb2 import Event
    from tensorboard.summary.writer.record_writer import RecordWriter

    if not log_dir.is_dir():
        return 0
    dropped = 0
    for path in sorted(log_dir.glob("events.out.tfevents.*")):
        records = list(RawEventFileLoader(str(path)).Load())
        # Keep the header (file_version) and everything before the resume step.
        keep = [r for r in records if Event.FromString(r).step < step or Event.FromString(r).HasField("file_version")]
        if len(keep) == len(records):
            continue
        dropped += len(records) - len(keep)
        tmp = path.with_name(path.name + ".tmp")
        with open(tmp, "wb") as f:
            writer = RecordWriter(f)
            for record in keep:
                writer.write(record)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    return dropped
