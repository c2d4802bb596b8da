"""``OMASGAN``: runs Tasks 1, 2, 3 and J in order, with checkpoints, resumption and logging.

Run directory layout::

    config.json       the configuration (and the data fingerprint) of the run
    state.json        completed tasks
    <task>.safetensors / <task>.json            final state of a completed task
    <task>.partial.safetensors / .json          latest in-task checkpoint (every checkpoint_every steps)
    metrics.jsonl     one line per logged step: {"task", "step", metric: value, ...}

A run resumes from its last completed task, or from the latest in-task checkpoint, with the random
streams restored, so an interrupted run finishes exactly as an uninterrupted one would (same device).
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from omasgan import divergences
from omasgan.checkpoint import atomic_write_text, checkpoint_files, load_state, save_state
from omasgan.config import OMASGANConfig
from omasgan.errors import CheckpointError, InvalidInputError, NonFiniteLossError
from omasgan.nets import build_nets
from omasgan.tasks import BoundaryTrainer, DetectorTrainer, RetrainTrainer, Task1Trainer
from omasgan.tasks._common import TaskTrainer

__all__ = ["OMASGAN", "OMASGANModels", "TASKS", "resolve_device"]

logger = logging.getLogger("omasgan")
TASKS = ("task1", "task2", "task3", "detector")
Callback = Callable[[str, int, dict[str, float]], None]


def resolve_device(device: str | torch.device) -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


@dataclass
class OMASGANModels:
    """The trained networks. Scores follow the paper: higher = more anomalous."""

    generator: nn.Module
    critic: nn.Module
    boundary: nn.Module
    boundary_critic: nn.Module
    retrained_generator: nn.Module
    retrain_critic: nn.Module
    detector: nn.Module
    latent_dim: int

    def eval(self) -> OMASGANModels:
        for module in self.modules().values():
            module.eval()
        return self

    def modules(self) -> dict[str, nn.Module]:
        return {k: v for k, v in vars(self).items() if isinstance(v, nn.Module)}

    @torch.no_grad()
    def sample(self, which: str, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """n samples from ``generator``, ``boundary`` or ``retrained_generator`` (eval mode, no grad)."""
        model = getattr(self, which)
        device = next(model.parameters()).device
        z = torch.randn(n, self.latent_dim, generator=generator).to(device)
        return model.eval()(z)

    @torch.no_grad()
    def scores(
        self,
        x: torch.Tensor,
        batch_size: int = 4096,
        which: tuple[str, ...] = ("detector", "task1_critic", "task3_critic"),
    ) -> dict[str, torch.Tensor]:
        """Anomaly scores (higher = more anomalous): ``detector`` = J's logit, ``task1_critic`` = -D(x),
        ``task3_critic`` = -C(x); ``which`` picks the ones computed."""
        self.eval()
        networks = {
            "detector": (self.detector, 1.0),
            "task1_critic": (self.critic, -1.0),
            "task3_critic": (self.retrain_critic, -1.0),
        }
        out: dict[str, list[torch.Tensor]] = {name: [] for name in which}
        device = next(self.detector.parameters()).device
        for start in range(0, x.shape[0], batch_size):
            chunk = x[start : start + batch_size].to(device)
            for name in which:
                network, sign = networks[name]
                out[name].append(sign * network(chunk).float().cpu())
        return {k: torch.cat(v) for k, v in out.items()}


def _streams(seed: int, task_index: int) -> dict[str, torch.Generator]:
    """Independent CPU random streams (latent, batch, penalty) for one task, from the run's one seed."""
    children = np.random.SeedSequence([seed, task_index]).spawn(3)
    return {
        name: torch.Generator().manual_seed(int(child.generate_state(1, dtype=np.uint64)[0] >> 1))
        for name, child in zip(("latent", "batch", "penalty"), children, strict=True)
    }


def _fingerprint(x: torch.Tensor) -> dict[str, Any]:
    x64 = x.detach().double()
    return {"shape": list(x.shape), "sum": float(x64.sum()), "sumsq": float((x64 * x64).sum())}


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
    ) -> None:
        self.config = config
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.device = resolve_device(device)
        self.verbose = verbose
        self.callbacks = list(callbacks or [])
        self.modules = modules
        self.history: list[dict[str, Any]] = []

    # -- run directory --------------------------------------------------------------------------------

    def _prepare_run_dir(self, x: torch.Tensor) -> list[str]:
        """Create or validate the run directory; return the tasks already completed."""
        if self.run_dir is None:
            return []
        self.run_dir.mkdir(parents=True, exist_ok=True)
        config_path, state_path = self.run_dir / "config.json", self.run_dir / "state.json"
        record = {"config": self.config.to_dict(), "data": _fingerprint(x)}
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
            if previous["data"]["shape"] != record["data"]["shape"] or not math.isclose(
                previous["data"]["sum"], record["data"]["sum"], rel_tol=1e-9, abs_tol=1e-6
            ):
                raise CheckpointError(f"{self.run_dir} was trained on different data; use a new run directory.")
        else:
            atomic_write_text(config_path, json.dumps(record, indent=2, sort_keys=True))
        if state_path.exists():
            return list(json.loads(state_path.read_text())["completed"])
        atomic_write_text(state_path, json.dumps({"completed": []}))
        return []

    def _mark_completed(self, completed: list[str]) -> None:
        if self.run_dir is not None:
            atomic_write_text(self.run_dir / "state.json", json.dumps({"completed": completed}))

    def _log(self, task: str, step: int, metrics: dict[str, torch.Tensor]) -> None:
        values = torch.stack([v.float().reshape(()) for v in metrics.values()]).cpu()  # one device sync
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
        if self.verbose >= 2:
            logger.info("%s step %d: %s", task, step, ", ".join(f"{k}={v:.4g}" for k, v in floats.items()))
        if self.run_dir is not None:
            with open(self.run_dir / "metrics.jsonl", "a") as handle:
                handle.write(json.dumps(row) + "\n")
        for callback in self.callbacks:
            callback(task, step, floats)

    # -- training ------------------------------------------------------------------------------------

    def _run_task(self, trainer: TaskTrainer, steps: int, x: torch.Tensor, completed: list[str]) -> None:
        task = trainer.name
        if task in completed:
            trainer.load_state_dict(load_state(self.run_dir / task, "cpu"))
            return
        partial = self.run_dir / f"{task}.partial" if self.run_dir is not None else None
        if partial is not None and checkpoint_files(partial)[1].exists():
            trainer.load_state_dict(load_state(partial, "cpu"))
        log_every, checkpoint_every = self.config.log_every, self.config.checkpoint_every
        bar = tqdm(total=steps, initial=trainer.step_count, desc=task, disable=self.verbose == 0, leave=False)
        with bar:
            while trainer.step_count < steps:
                metrics = trainer.step(x)
                step = trainer.step_count
                bar.update(1)
                if step % log_every == 0 or step == steps or (partial is not None and step % checkpoint_every == 0):
                    self._log(task, step, metrics)  # also the finiteness check before any checkpoint
                if partial is not None and step % checkpoint_every == 0 and step < steps:
                    save_state(partial, trainer.state_dict())
        if self.run_dir is not None:
            save_state(self.run_dir / task, trainer.state_dict())
            for path in checkpoint_files(partial):
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
        completed.append(task)
        self._mark_completed(completed)

    def _build_modules(self, input_shape: tuple[int, ...]) -> tuple[nn.Module, nn.Module, nn.Module, nn.Module]:
        if self.modules is not None:
            generator, critic, detector = self.modules
            fresh_critic = None
        else:
            # Initialisation draws from its own seeded stream, without touching global RNG state outside.
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(int(np.random.SeedSequence([self.config.seed, 99]).generate_state(1)[0]))
                cfg = self.config
                generator, critic, detector = build_nets(input_shape, cfg.latent_dim, cfg.width, cfg.spectral_norm)
                _, fresh_critic, _ = build_nets(input_shape, cfg.latent_dim, cfg.width, cfg.spectral_norm)
        modules = (generator, critic, detector, fresh_critic)
        return tuple(m.to(self.device) if m is not None else None for m in modules)

    def fit(self, x: torch.Tensor) -> OMASGANModels:
        """Train every task on normal data ``x`` (N, ...) and return the models."""
        if not isinstance(x, torch.Tensor) or x.dim() < 2 or x.shape[0] < 2:
            raise InvalidInputError("OMASGAN.fit: x must be a tensor of shape (N, ...) with N >= 2.")
        x = x.detach().to(self.device, torch.float32)
        completed = self._prepare_run_dir(x)
        cfg = self.config
        divergence = divergences.get(cfg.divergence, **cfg.divergence_params)
        generator, critic, detector, fresh_critic = self._build_modules(tuple(x.shape[1:]))
        common = dict(latent_dim=cfg.latent_dim, device=self.device)

        task1 = Task1Trainer(generator, critic, divergence, cfg.task1, streams=_streams(cfg.seed, 1), **common)
        self._run_task(task1, cfg.task1.steps, x, completed)
        task2 = BoundaryTrainer(generator, critic, divergence, cfg.task2, streams=_streams(cfg.seed, 2), **common)
        self._run_task(task2, cfg.task2.steps, x, completed)
        task3 = RetrainTrainer(
            generator,
            critic,
            task2.boundary,
            divergence,
            cfg.task3,
            fresh_critic=fresh_critic,
            streams=_streams(cfg.seed, 3),
            **common,
        )
        self._run_task(task3, cfg.task3.steps, x, completed)
        detect = DetectorTrainer(
            detector, task2.boundary, task3.retrained, cfg.detector, streams=_streams(cfg.seed, 4), **common
        )
        self._run_task(detect, cfg.detector.steps, x, completed)

        models = OMASGANModels(
            generator=generator,
            critic=critic,
            boundary=task2.boundary,
            boundary_critic=task2.critic,
            retrained_generator=task3.retrained,
            retrain_critic=task3.critic,
            detector=detector,
            latent_dim=cfg.latent_dim,
        ).eval()
        if self.run_dir is not None:
            from omasgan.plots import model_samples  # matplotlib only when a run directory asks for figures

            (self.run_dir / "figures").mkdir(exist_ok=True)
            model_samples(models, x[:2000].cpu().numpy(), self.run_dir / "figures" / "samples.png")
        return models
