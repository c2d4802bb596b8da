"""SIGKILL at 30 seeded moments, half of them inside a checkpoint write: resuming always ends with the
uninterrupted run's exact weights and metrics, with no checkpoint file left over or mismatched."""

from __future__ import annotations

import json
import multiprocessing
import os
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from omasgan.checkpoint import load_state
from omasgan.models import TASKS
from tests.pipeline import crash_child

KILLS = 30
SEED = 15


@pytest.fixture(scope="module")
def context():
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["tests.pipeline.crash_child"])
    warm = ctx.Process(target=os.getpid)  # starts the server (imports torch once) outside any timing
    warm.start()
    warm.join()
    return ctx


def _run(ctx, run_dir: Path, *, kill_after: float | None = None, crash_at_write=None, count_to=None) -> int:
    """Exit code of one training process (-9: killed), SIGKILLed after ``kill_after`` seconds if still alive."""
    process = ctx.Process(target=crash_child.train, args=(str(run_dir), crash_at_write, count_to))
    process.start()
    process.join(kill_after if kill_after is not None else 300)
    if process.is_alive():
        process.kill()
        process.join()
    return process.exitcode


def _final_state(run_dir: Path) -> dict[str, dict[str, torch.Tensor]]:
    return {task: load_state(run_dir / task)["models"] for task in TASKS}


def _metrics(run_dir: Path) -> list[tuple[str, int]]:
    return [(row["task"], row["step"]) for row in map(json.loads, (run_dir / "metrics.jsonl").read_text().splitlines())]


def _files(run_dir: Path) -> list[str]:
    return sorted(p.name for p in run_dir.iterdir() if p.is_file() and p.name != ".lock")


def test_killed_runs_resume_to_the_uninterrupted_weights(context, tmp_path):
    reference = tmp_path / "reference"
    count = tmp_path / "writes"
    start = time.perf_counter()
    assert _run(context, reference, count_to=str(count)) == 0
    duration = time.perf_counter() - start
    writes = int(count.read_text())
    expected_state, expected_metrics, expected_files = _final_state(reference), _metrics(reference), _files(reference)
    assert len(expected_metrics) == len(set(expected_metrics))

    rng = np.random.default_rng(SEED)
    plans = [("time", float(rng.uniform(0.05, 0.9) * duration)) for _ in range(KILLS // 2)]
    plans += [
        ("write", (int(rng.integers(1, writes + 1)), str(rng.choice(crash_child.PHASES))))
        for _ in range(KILLS - KILLS // 2)
    ]
    killed = 0
    for i, (kind, when) in enumerate(plans):
        run_dir = tmp_path / f"run{i}"
        if kind == "time":
            code = _run(context, run_dir, kill_after=when)
        else:
            code = _run(context, run_dir, crash_at_write=when)
            assert code == -9, (when, code)
        killed += code == -9
        assert _run(context, run_dir) == 0, (kind, when)  # the resume: never refused, never mismatched
        state = _final_state(run_dir)
        for task in TASKS:
            for network, weights in expected_state[task].items():
                for key, value in weights.items():
                    assert torch.equal(state[task][network][key], value), (kind, when, task, network, key)
        assert _metrics(run_dir) == expected_metrics, (kind, when)  # every step once, in order
        assert _files(run_dir) == expected_files, (kind, when)  # no partial, stray weights or .tmp left
    assert killed >= KILLS - 5  # a timed kill may come after the run ended; nearly all must interrupt it
