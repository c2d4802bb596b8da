"""torch.distributed: two gloo processes under torchrun train the 2-D pipeline, repeat exactly, survive a kill."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from omasgan.checkpoint import read_checkpoint
from omasgan.data import bimodal, bimodal_anomalies
from omasgan.distributed import DistributedContext
from omasgan.estimator import OMASGANDetector
from omasgan.pipeline import _streams

pytestmark = pytest.mark.skipif(
    not torch.distributed.is_available() or not torch.distributed.is_gloo_available() or sys.platform != "linux",
    reason="needs the gloo backend and Linux /proc",
)


def _env() -> dict[str, str]:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    env.pop("WORLD_SIZE", None)
    return env


def _torchrun(*args: str, nproc: int = 2) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}", *args]


def _fit_args(data: Path, run: Path, out: Path, *extra: str) -> list[str]:
    return ["-m", "omasgan", "fit", "--input", str(data), "--run-dir", str(run), "--out", str(out), "--quiet", *extra]


# The kill-and-resume half of the test needs a run with in-task checkpoints, not the preset's full length.
SHORT = [
    arg
    for key, value in {"task1.steps": 150, "task2.steps": 20, "task3.steps": 20, "detector.steps": 20,
                       "checkpoint_every": 50, "log_every": 10}.items()
    for arg in ("--set", f"{key}={value}")
]


def _process_tree(pid: int) -> list[int]:
    """pid and all its descendants (Linux /proc): torchrun starts each worker in a session of its own, so
    killing torchrun's process group would leave the workers running."""
    tree, frontier = [], [pid]
    while frontier:
        current = frontier.pop()
        tree.append(current)
        for task in Path(f"/proc/{current}/task").glob("*"):
            with contextlib.suppress(OSError):
                frontier += [int(child) for child in (task / "children").read_text().split()]
    return tree


def _alive(pid: int) -> bool:
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"  # zombies are dead
    return False


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    return read_checkpoint(folder / "estimator.json")[0]


def test_two_processes_reach_the_target_repeat_exactly_and_resume_after_a_kill(tmp_path):
    """The quick 2-D preset on 2 gloo ranks: J's AUROC >= 0.95. A shorter run, and the same run killed
    (SIGKILL to every process) in the middle of Task 1 and resumed, end with bit-identical networks."""
    data = tmp_path / "train.npy"
    np.save(data, bimodal(4000, random_state=0))

    first = subprocess.run(
        _torchrun(*_fit_args(data, tmp_path / "run_a", tmp_path / "model_a")),
        env=_env(), capture_output=True, text=True, timeout=600,
    )
    assert first.returncode == 0, first.stderr[-3000:]

    detector = OMASGANDetector.load(tmp_path / "model_a")
    normal, anomalies = bimodal(1000, random_state=11), bimodal_anomalies(1000, random_state=12)
    auroc = roc_auc_score(np.r_[np.zeros(1000), np.ones(1000)], detector.anomaly_score(np.r_[normal, anomalies]))
    assert auroc >= 0.95
    metrics = [json.loads(line) for line in (tmp_path / "run_a" / "metrics.jsonl").read_text().splitlines()]
    steps = [row["step"] for row in metrics if row["task"] == "task1"]
    assert steps == sorted(set(steps))  # one writer (rank 0): each logged step once

    short = subprocess.run(
        _torchrun(*_fit_args(data, tmp_path / "run_c", tmp_path / "model_c", *SHORT)),
        env=_env(), capture_output=True, text=True, timeout=600,
    )
    assert short.returncode == 0, short.stderr[-3000:]
    # The same short run again: SIGKILL every process of it (as a machine failure would) once Task 1 has
    # written an in-task checkpoint.
    run_b = tmp_path / "run_b"
    killed = subprocess.Popen(
        _torchrun(*_fit_args(data, run_b, tmp_path / "model_b", *SHORT)),
        env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 300
    while not (run_b / "task1.partial.json").exists():
        assert killed.poll() is None and time.monotonic() < deadline, "no checkpoint before the run ended"
        time.sleep(0.05)
    tree = _process_tree(killed.pid)
    assert len(tree) >= 3, tree  # torchrun and its two workers
    for pid in reversed(tree):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    killed.wait(timeout=60)
    time.sleep(0.5)
    assert not [pid for pid in tree if Path(f"/proc/{pid}").exists() and _alive(pid)]
    assert json.loads((run_b / "state.json").read_text())["completed"] == []
    assert not (tmp_path / "model_b").exists()

    # The checkpoint holds both ranks' random streams: a single process may not resume it.
    single = subprocess.run(
        [sys.executable, *_fit_args(data, run_b, tmp_path / "model_b", *SHORT)],
        env=_env(), capture_output=True, text=True, timeout=120,
    )
    assert single.returncode != 0 and "resume it with the same number" in single.stderr

    resumed = subprocess.run(
        _torchrun(*_fit_args(data, run_b, tmp_path / "model_b", *SHORT)),
        env=_env(), capture_output=True, text=True, timeout=600,
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    a, b = _weights(tmp_path / "model_c"), _weights(tmp_path / "model_b")
    assert a.keys() == b.keys()
    assert all(torch.equal(a[key], b[key]) for key in a)


WORKER = textwrap.dedent(
    """
    import os, torch
    from omasgan.config import OMASGANConfig
    from omasgan.data import bimodal
    from omasgan.distributed import session
    from omasgan.pipeline import OMASGAN

    def fail_on_rank_1(task, step, metrics):
        if int(os.environ["RANK"]) == 1 and step == 20:
            raise RuntimeError("injected failure")

    config = OMASGANConfig.preset("quick", "vector").with_overrides(
        {"task1.steps": 100000, "log_every": 10, "task1.batch_size": 32})
    with session(torch.device("cpu")):
        OMASGAN(config, device="cpu", verbose=0, callbacks=[fail_on_rank_1]).fit(torch.from_numpy(bimodal(500)))
    """
)


def test_a_failing_rank_stops_the_whole_run(tmp_path):
    """Rank 1 raises; torchrun stops rank 0 (blocked in the next collective) and reports the failure."""
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    start = time.monotonic()
    result = subprocess.run(_torchrun(str(script)), env=_env(), capture_output=True, text=True, timeout=300)
    assert result.returncode != 0
    assert "injected failure" in result.stderr
    assert "rank 1 of 2 failed" in result.stderr
    assert time.monotonic() - start < 240


def test_shards_partition_the_data_with_equal_sizes():
    n, seed = 11, 5
    shards = [DistributedContext(rank=r, world_size=3).shard(n, seed) for r in range(3)]
    assert {len(s) for s in shards} == {4}  # padded to equal size, as DistributedSampler does
    assert set(torch.cat(shards).tolist()) == set(range(n))
    again = DistributedContext(rank=1, world_size=3).shard(n, seed)
    assert torch.equal(again, shards[1])


def test_rank_streams_are_distinct_and_rank_0_is_the_single_process_stream():
    single, rank0, rank1 = _streams(3, 1), _streams(3, 1, 0), _streams(3, 1, 1)
    for name in single:
        assert torch.equal(single[name].get_state(), rank0[name].get_state())
        assert not torch.equal(single[name].get_state(), rank1[name].get_state())
