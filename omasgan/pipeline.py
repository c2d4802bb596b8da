"""``OMASGAN``: runs Tasks 1, 2, 3 and J in order, with checkpoints, resumption and logging.

Run directory layout::

    config.json       the configuration (and the data fingerprint) of the run
    state.json        completed tasks
    <task>.json + <task>.<digest>.safetensors            final state of a completed task
    <task>.partial.json + <task>.partial.<digest>...     latest in-task checkpoint (every checkpoint_every steps)
    metrics.jsonl     one line per logged step: {"task", "step", metric: value, ...}
    .lock             held by the process training in this directory

Each checkpoint is one unit (:mod:`omasgan.checkpoint`): a manifest naming its weights by SHA-256. A run
resumes from its last completed task, or from the latest in-task checkpoint, with the random streams
restored, so an interrupted run finishes exactly as an uninterrupted one would (same device and number of
processes); metrics logged after that checkpoint are dropped from metrics.jsonl, so no step appears twice.
A second process on the same directory is refused while the first holds the lock.

Under torchrun every rank runs ``fit``; see :mod:`omasgan.distributed` for what is shared between ranks.
Rank 0 alone writes to the run directory.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from omasgan import divergences
from omasgan.checkpoint import atomic_write_text, checkpoint_exists, load_state, remove_checkpoint, save_state
from omasgan.config import OMASGANConfig
from omasgan.distributed import DistributedContext, launched_by_torchrun, rank_device
from omasgan.errors import CheckpointError, InvalidInputError, NonFiniteLossError
from omasgan.locking import DirectoryLock
from omasgan.models import OMASGANModels
from omasgan.nets.assembly import config_nets, detector_network
from omasgan.preprocessing import InputScaler
from omasgan.runtime import Engine, RuntimeOptions, resolve_device
from omasgan.tasks import BoundaryTrainer, DetectorTrainer, GANTrainer, RetrainTrainer, TaskTrainer

__all__ = ["OMASGAN"]

logger = logging.getLogger("omasgan")
Callback = Callable[[str, int, dict[str, float]], None]


def _streams(seed: int, task_index: int, rank: int = 0) -> dict[str, torch.Generator]:
    """Independent CPU random streams (latent, batch, penalty) for one task and rank, from the run's one seed.

    Rank 0's streams are those of a single-process run."""
    entropy = [seed, task_index] + ([rank] if rank else [])
    children = np.random.SeedSequence(entropy).spawn(3)
    return {
        name: torch.Generator().manual_seed(int(child.generate_state(1, dtype=np.uint64)[0] >> 1))
        for name, child in zip(("latent", "batch", "penalty"), children, strict=True)
    }


def _fingerprint(x: torch.Tensor) -> dict[str, Any]:
    x64 = x.detach().double()
    return {"shape": list(x.shape), "sum": float(x64.sum()), "sumsq": float((x64 * x64).sum())}


def _check_pixel_range(x: torch.Tensor) -> None:
    """The built-in image generator ends in tanh: images outside [-1, 1] cannot be matched by it."""
    low, high = float(x.min()), float(x.max())
    if not (-1.0 - 1e-3 <= low and high <= 1.0 + 1e-3):
        raise InvalidInputError(
            f"the built-in image networks generate pixels in [-1, 1] (tanh) but these images range over "
            f"[{low:.4g}, {high:.4g}]: scale them to [-1, 1] (e.g. X / 127.5 - 1 for 0-255 pixels, 2 X - 1 for "
            "[0, 1]), or pass your own networks (OMASGAN(modules=...))."
        )


def _same_data(recorded: dict[str, Any], current: dict[str, Any]) -> bool:
    """Whether two fingerprints agree on everything they both record (shape, sum, sum of squares)."""
    if recorded.get("shape") != current["shape"]:
        return False
    return all(
        math.isclose(recorded[key], current[key], rel_tol=1e-9, abs_tol=1e-6)
        for key in ("sum", "sumsq")
        if key in recorded
    )


def _trim_metrics(path: Path, task: str, resumed_step: int) -> None:
    """Drop the rows of ``task`` logged after ``resumed_step`` (and any torn line a crash left), so that a
    resumed run logs each step once."""
    if not path.exists():
        return
    kept, changed = [], False
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
            stale = row["task"] == task and int(row["step"]) > resumed_step
        except (ValueError, KeyError, TypeError):
            stale = True
        changed |= stale
        if not stale:
            kept.append(line + "\n")
    if changed:
        atomic_write_text(path, "".join(kept))


class OMASGAN:
    """Runs the four tasks of OMASGAN on normal data only.

    Parameters
    ----------
    config : OMASGANConfig
    run_dir : path, optional
        Where checkpoints, config and metrics go; an existing run there is resumed. None: in memory only.
    device : "auto", "cpu", "cuda", ...
    verbose : int
        0: silent; 1: a progress bar per task; 2: also log metrics at INFO level.
    callbacks : list of callables ``(task, step, metrics)``, called at every logged step.
    modules : (generator, critic, detector), optional
        Your own networks instead of the built-in ones (critic and detector output one value per sample).
    runtime : RuntimeOptions or dict, optional
        Fast paths: ``{"precision": "bf16", "channels_last": True, "compile": True}``; not part of the
        configuration (a run may resume with other ones).
    distributed : bool, optional
        None: use torch.distributed when launched by torchrun (``WORLD_SIZE`` > 1); True: require it;
        False: never. Callbacks run on every rank with the metrics averaged over the ranks.
    """

    def __init__(
        self,
        config: OMASGANConfig,
        run_dir: str | Path | None = None,
        *,
        device: str = "auto",
        verbose: int = 1,
        callbacks: list[Callback] | None = None,
        modules: tuple[nn.Module, nn.Module, nn.Module] | None = None,
        runtime: RuntimeOptions | dict | None = None,
        distributed: bool | None = None,
    ) -> None:
        self.config = config
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.device = resolve_device(device)
        self.verbose = verbose
        self.callbacks = list(callbacks or [])
        self.modules = modules
        self.runtime = runtime if isinstance(runtime, RuntimeOptions) else RuntimeOptions.from_dict(runtime)
        self.distributed = distributed
        self.context = DistributedContext.single()
        self.history: list[dict[str, Any]] = []
        self.stored_rows: torch.Tensor | None = None
        self._lock: DirectoryLock | None = None

    # -- run directory --------------------------------------------------------------------------------

    def _prepare_run_dir(self, x: torch.Tensor, scaler: InputScaler | None) -> list[str]:
        """Create or validate the run directory; return the tasks already completed. ``x`` is the data as
        given; ``scaler`` (recorded for reloading) maps it to the networks' space."""
        if self.run_dir is None:
            return []
        config_path, state_path = self.run_dir / "config.json", self.run_dir / "state.json"
        record = {"config": self.config.to_dict(), "data": _fingerprint(x)}
        if scaler is not None:
            record["input_scaler"] = scaler.to_dict()
        self._acquire_run_dir()
        if self.context.is_main:
            if not config_path.exists():
                atomic_write_text(config_path, json.dumps(record, indent=2, sort_keys=True))
            if not state_path.exists():
                atomic_write_text(state_path, json.dumps({"completed": []}))
        self.context.barrier()  # the other ranks read what rank 0 wrote
        if config_path.exists():
            try:
                previous = json.loads(config_path.read_text())
            except json.JSONDecodeError as exc:
                raise CheckpointError(f"{config_path} is corrupt; use a new run directory.") from exc
            if previous["config"] != record["config"]:
                raise CheckpointError(
                    f"{self.run_dir} holds a run with a different configuration; resume it with the same "
                    "configuration or use a new run directory."
                )
            if not _same_data(previous["data"], record["data"]):
                raise CheckpointError(f"{self.run_dir} was trained on different data; use a new run directory.")
        return list(json.loads(state_path.read_text())["completed"])

    def _acquire_run_dir(self) -> None:
        """Rank 0 takes the run directory's lock; every rank raises the same error if it is held."""
        refusal = None
        if self.context.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            self._lock = DirectoryLock(self.run_dir)
            try:
                self._lock.acquire()
            except CheckpointError as exc:
                self._lock, refusal = None, str(exc)
        refusal = self.context.gather(refusal)[0]
        if refusal is not None:
            raise CheckpointError(refusal)

    def _release_run_dir(self) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def _mark_completed(self, completed: list[str]) -> None:
        if self.run_dir is not None and self.context.is_main:
            atomic_write_text(self.run_dir / "state.json", json.dumps({"completed": completed}))

    def _log(self, task: str, step: int, metrics: dict[str, torch.Tensor]) -> None:
        # Averaged over the ranks (one collective, one device sync), so every rank sees the same values
        # and a non-finite loss on any rank stops all of them at the same step.
        values = self.context.mean(torch.stack([v.float().reshape(()) for v in metrics.values()])).cpu()
        floats = {k: float(v) for k, v in zip(metrics, values, strict=True)}
        bad = {k: v for k, v in floats.items() if not math.isfinite(v)}
        if bad:
            where = f"; the last good checkpoint in {self.run_dir} is kept" if self.run_dir else ""
            raise NonFiniteLossError(
                f"{task}: {', '.join(f'{k} = {v}' for k, v in bad.items())} at step {step} (losses are checked "
                f"every {self.config.log_every} steps){where}. Lower the learning rates or try another divergence."
            )
        row = {"task": task, "step": step, **floats}
        self.history.append(row)
        if self.verbose >= 2 and self.context.is_main:
            logger.info("%s step %d: %s", task, step, ", ".join(f"{k}={v:.4g}" for k, v in floats.items()))
        if self.run_dir is not None and self.context.is_main:
            with open(self.run_dir / "metrics.jsonl", "a") as handle:
                handle.write(json.dumps(row) + "\n")
        for callback in self.callbacks:
            callback(task, step, floats)

    # -- training ------------------------------------------------------------------------------------

    def _checkpoint_state(self, trainer: TaskTrainer) -> dict[str, Any]:
        """The trainer's state plus every rank's random streams (a collective: all ranks call it)."""
        state = trainer.state_dict()
        state["world_size"] = self.context.world_size
        rank_streams = self.context.gather(state["streams"])
        if self.context.active:
            state["rank_streams"] = rank_streams
        return state

    def _restore(self, trainer: TaskTrainer, stem: Path) -> None:
        """Load an in-task checkpoint, each rank taking its own random streams."""
        state = load_state(stem, "cpu")
        saved_world = int(state.get("world_size", 1))
        if saved_world != self.context.world_size:
            raise CheckpointError(
                f"{stem} was written by a run of {saved_world} process(es); resume it with the same number "
                f"(this one has {self.context.world_size}) or start a new run directory."
            )
        if self.context.active:
            state["streams"] = state["rank_streams"][self.context.rank]
        trainer.load_state_dict(state)

    def _save(self, stem: Path, state: dict[str, Any]) -> None:
        if self.context.is_main:
            save_state(stem, state)

    def _run_task(self, trainer: TaskTrainer, steps: int, x: torch.Tensor, completed: list[str]) -> None:
        task = trainer.name
        # A final checkpoint is the task's commit point: a crash before state.json recorded it loses nothing.
        if task in completed or (self.run_dir is not None and checkpoint_exists(self.run_dir / task)):
            trainer.load_state_dict(load_state(self.run_dir / task, "cpu"))  # its streams are no longer used
            if task not in completed:  # finish what the crash interrupted: the partial goes, state.json learns
                if self.context.is_main:
                    remove_checkpoint(self.run_dir / f"{task}.partial")
                completed.append(task)
                self._mark_completed(completed)
            return
        partial = self.run_dir / f"{task}.partial" if self.run_dir is not None else None
        if partial is not None and checkpoint_exists(partial):
            self._restore(trainer, partial)
        if partial is not None and self.context.is_main:
            _trim_metrics(self.run_dir / "metrics.jsonl", task, trainer.step_count)
        log_every, checkpoint_every = self.config.log_every, self.config.checkpoint_every
        quiet = self.verbose == 0 or not self.context.is_main
        bar = tqdm(total=steps, initial=trainer.step_count, desc=task, disable=quiet, leave=False)
        # A named range per task, so torch.profiler traces (benchmarks/profile_pipeline.py) split by task.
        with bar, torch.profiler.record_function(f"omasgan.{task}"):
            while trainer.step_count < steps:
                metrics = trainer.step(x)
                step = trainer.step_count
                bar.update(1)
                if step % log_every == 0 or step == steps or (partial is not None and step % checkpoint_every == 0):
                    metrics.update(trainer.diagnostics(x))
                    self._log(task, step, metrics)  # also the finiteness check before any checkpoint
                if partial is not None and step % checkpoint_every == 0 and step < steps:
                    self._save(partial, self._checkpoint_state(trainer))
        if self.run_dir is not None:
            self._save(self.run_dir / task, self._checkpoint_state(trainer))
            if self.context.is_main:
                remove_checkpoint(partial)
        completed.append(task)
        self._mark_completed(completed)

    def _build_modules(self, input_shape: tuple[int, ...]) -> tuple[nn.Module, nn.Module, nn.Module, nn.Module]:
        # Every rank builds the same networks from the same seed (DDP also broadcasts rank 0's weights).
        # Initialisation draws from its own seeded stream, without touching global RNG state outside.
        cfg = self.config
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(np.random.SeedSequence([cfg.seed, 99]).generate_state(1)[0]))
            if self.modules is not None:
                generator, critic, detector = self.modules
                fresh_critic = None
            else:
                generator, critic, detector = config_nets(cfg, input_shape)
                _, fresh_critic, _ = config_nets(cfg, input_shape)
            if self.modules is None or cfg.detector.input_space != "pixels":
                # A head drawn after the networks above; a user's own J on the samples is used as given.
                detector = detector_network(critic, detector, cfg, input_shape)
        modules = (generator, critic, detector, fresh_critic)
        return tuple(m.to(self.device) if m is not None else None for m in modules)

    def fit(self, x: torch.Tensor) -> OMASGANModels:
        """Train every task on normal data ``x`` (N, ...) and return the models."""
        try:
            return self._fit(x)
        finally:
            self._release_run_dir()

    def _fit(self, x: torch.Tensor) -> OMASGANModels:
        if not isinstance(x, torch.Tensor) or x.dim() < 2 or x.shape[0] < 2:
            raise InvalidInputError("OMASGAN.fit: x must be a tensor of shape (N, ...) with N >= 2.")
        use_group = launched_by_torchrun() if self.distributed is None else self.distributed
        self.context = DistributedContext.start(self.device) if use_group else DistributedContext.single()
        self.device = rank_device(self.device, self.context)
        x = x.detach().to(self.device, torch.float32)
        cfg = self.config
        if self.modules is None and x.dim() == 4 and cfg.input_scaling != "standard":
            _check_pixel_range(x)
        # Fitted on every row before any sharding: each rank computes the same scaler.
        scaler = InputScaler.fitted(x) if cfg.input_scaling == "standard" else None
        completed = self._prepare_run_dir(x, scaler)
        if scaler is not None:
            x = scaler(x)
        rank = self.context.rank
        if self.context.active:
            x = x[self.context.shard(x.shape[0], cfg.seed).to(self.device)]  # this rank's share of the data
        divergence = divergences.get(cfg.divergence, **cfg.divergence_params)
        generator, critic, detector, fresh_critic = self._build_modules(tuple(x.shape[1:]))
        common = dict(latent_dim=cfg.latent_dim, engine=Engine(self.device, self.runtime, self.context))

        task1 = GANTrainer(generator, critic, divergence, cfg.task1, streams=_streams(cfg.seed, 1, rank), **common)
        self._run_task(task1, cfg.task1.steps, x, completed)
        task2 = BoundaryTrainer(generator, critic, divergence, cfg.task2, streams=_streams(cfg.seed, 2, rank), **common)
        self._run_task(task2, cfg.task2.steps, x, completed)
        task3 = RetrainTrainer(
            generator,
            critic,
            task2.boundary,
            divergence,
            cfg.task3,
            fresh_critic=fresh_critic,
            streams=_streams(cfg.seed, 3, rank),
            **common,
        )
        self._run_task(task3, cfg.task3.steps, x, completed)
        detect = DetectorTrainer(
            detector,
            task2.boundary,
            task3.retrained,
            cfg.detector,
            generator=generator,
            critic=critic,
            streams=_streams(cfg.seed, 4, rank),
            **common,
        )
        self._run_task(detect, cfg.detector.steps, x, completed)
        # Rows of x a neighbour head stored, in memory order (a stored row's distance to itself is 0, so
        # the estimator scores those rows without themselves). Indices into this rank's x.
        self.stored_rows = detect.buffers.get("stored_index")

        models = OMASGANModels(
            generator=generator,
            critic=critic,
            boundary=task2.boundary,
            boundary_critic=task2.critic,
            retrained_generator=task3.retrained,
            retrain_critic=task3.critic,
            detector=detector,
            latent_dim=cfg.latent_dim,
            input_scaler=scaler,
        ).eval()
        if self.run_dir is not None and self.context.is_main:
            from omasgan.plots import model_samples  # matplotlib only when a run directory asks for figures

            (self.run_dir / "figures").mkdir(exist_ok=True)
            data = x[:2000] if scaler is None else scaler.inverse(x[:2000])
            model_samples(models, data.cpu().numpy(), self.run_dir / "figures" / "samples.png")
        return models
