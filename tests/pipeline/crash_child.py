"""The training process tests/pipeline/test_crash_resume.py kills: a tiny 2-D run in a run directory.

Imported by a forkserver whose children start with torch, omasgan and matplotlib already loaded, so each
of the 60-odd runs costs its training time only. ``crash_at_write`` makes the child SIGKILL itself inside
its k-th durable write (weights, manifest, state.json, config.json: every file omasgan replaces
atomically), at one of three phases of it.
"""

from __future__ import annotations

import os
import signal

import matplotlib.pyplot  # noqa: F401  (preloaded: the run draws its figure at the end)
import torch
import torch._dynamo  # noqa: F401  (preloaded: torch.optim imports it on first use, ~3 s)

import omasgan.checkpoint as checkpoint
from omasgan.config import OMASGANConfig
from omasgan.data import bimodal
from omasgan.pipeline import OMASGAN

SMALL = {
    "task1.steps": 20,
    "task2.steps": 10,
    "task3.steps": 10,
    "detector.steps": 10,
    "log_every": 5,
    "checkpoint_every": 5,
    "width": 32,
    "task1.batch_size": 64,
    "task2.batch_size": 32,
    "task2.pool_size": 128,
    "task3.batch_size": 64,
    "detector.batch_size": 64,
    "detector.head_size": 128,
}
PHASES = ("half_written", "before_rename", "after_rename")


def _die_inside_write(index: int, phase: str) -> None:
    """Replace the checkpoint module's durable write with one that kills this process in its index-th call."""
    original = checkpoint._atomic_write_bytes
    calls = [0]

    def write(path, data):
        calls[0] += 1
        if calls[0] != index:
            return original(path, data)
        tmp = path.with_name(path.name + ".tmp")
        if phase == "half_written":
            with open(tmp, "wb") as handle:
                handle.write(data[: len(data) // 2])
                handle.flush()
                os.fsync(handle.fileno())
        elif phase == "before_rename":
            with open(tmp, "wb") as handle:
                handle.write(data)
        else:
            original(path, data)
        os.kill(os.getpid(), signal.SIGKILL)

    checkpoint._atomic_write_bytes = write


def train(run_dir: str, crash_at_write: tuple[int, str] | None = None, count_writes_to: str | None = None) -> None:
    """Train (or resume) the tiny run in ``run_dir``; optionally die inside a write, or count the writes."""
    torch.set_num_threads(1)  # the parent measures and kills; one thread keeps runs alike and cheap
    if crash_at_write is not None:
        _die_inside_write(*crash_at_write)
    counted = [0]
    if count_writes_to is not None:
        original = checkpoint._atomic_write_bytes

        def counting(path, data):
            counted[0] += 1
            original(path, data)

        checkpoint._atomic_write_bytes = counting
    config = OMASGANConfig.preset("quick", "vector").with_overrides(SMALL)
    OMASGAN(config, run_dir, device="cpu", verbose=0).fit(torch.from_numpy(bimodal(300, random_state=0)))
    if count_writes_to is not None:
        with open(count_writes_to, "w") as handle:
            handle.write(str(counted[0]))
