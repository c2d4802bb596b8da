"""The trained networks of a run (``OMASGANModels``): sampling, scoring, reloading a run directory, and the
saved-estimator format (the checkpoint ``estimator.json`` + ``weights.<digest>.safetensors``) that
``OMASGANDetector.save`` writes and ``omasgan score`` reads."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from omasgan.checkpoint import load_state, read_checkpoint, write_checkpoint
from omasgan.config import OMASGANConfig
from omasgan.errors import CheckpointError
from omasgan.nets.assembly import NETWORK_NAMES, networks_for_reload
from omasgan.preprocessing import InputScaler

__all__ = ["TASKS", "OMASGANModels", "read_saved", "write_saved"]

TASKS = ("task1", "task2", "task3", "detector")  # checkpoint names of the four tasks, in order
ESTIMATOR_FILE, WEIGHTS_PREFIX = "estimator.json", "weights"


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
    # Raw rows -> the networks' space (config.input_scaling="standard"); None: the networks see x as given.
    input_scaler: InputScaler | None = None

    NAMES = NETWORK_NAMES
    # Where each network's final state lives in a run directory: (task checkpoint, key in its "models").
    _IN_RUN = {
        "generator": ("task1", "generator"),
        "critic": ("task1", "critic"),
        "boundary": ("task2", "boundary"),
        "boundary_critic": ("task2", "boundary_critic"),
        "retrained_generator": ("task3", "retrained_generator"),
        "retrain_critic": ("task3", "retrain_critic"),
        "detector": ("detector", "detector"),
    }

    @classmethod
    def build(
        cls,
        config: OMASGANConfig,
        input_shape: tuple[int, ...],
        weights: dict[str, dict[str, torch.Tensor]],
        device: torch.device | str = "cpu",
    ) -> OMASGANModels:
        """The built-in networks for ``input_shape`` with the given state dicts (one per name in NAMES, and
        ``input_scaler``'s where the configuration scales its input)."""
        modules = networks_for_reload(config, tuple(input_shape))
        if config.input_scaling == "standard":
            if "input_scaler" not in weights:
                raise CheckpointError("the configuration scales its input but no input scaler was saved.")
            modules["input_scaler"] = InputScaler(weights["input_scaler"]["center"].numel())
        for name, module in modules.items():
            module.load_state_dict(weights[name])
            module.to(device)
        return cls(**modules, latent_dim=config.latent_dim).eval()

    @classmethod
    def load_run(cls, run_dir: str | Path, device: torch.device | str = "cpu") -> tuple[OMASGANModels, OMASGANConfig]:
        """The networks of a completed run directory (built-in networks only) and its configuration."""
        run_dir = Path(run_dir)
        try:
            record = json.loads((run_dir / "config.json").read_text())
            completed = json.loads((run_dir / "state.json").read_text())["completed"]
        except (OSError, ValueError, KeyError) as exc:
            raise CheckpointError(f"{run_dir} is not an OMASGAN run directory ({exc}).") from exc
        missing = [task for task in TASKS if task not in completed]
        if missing:
            raise CheckpointError(f"{run_dir}: tasks {missing} have not completed; resume the run first.")
        config = OMASGANConfig.from_dict(record["config"])
        states = {task: load_state(run_dir / task, "cpu")["models"] for task in TASKS}
        weights = {name: states[task][key] for name, (task, key) in cls._IN_RUN.items()}
        if "input_scaler" in record:
            weights["input_scaler"] = InputScaler.from_dict(record["input_scaler"]).state_dict()
        try:
            return cls.build(config, tuple(record["data"]["shape"][1:]), weights, device), config
        except RuntimeError as exc:  # state dicts that do not fit the built-in networks
            raise CheckpointError(
                f"{run_dir} was trained with networks other than the built-in ones; load them yourself ({exc})."
            ) from exc

    def eval(self) -> OMASGANModels:
        for module in self.modules().values():
            module.eval()
        return self

    def modules(self) -> dict[str, nn.Module]:
        return {k: v for k, v in vars(self).items() if isinstance(v, nn.Module)}

    @torch.no_grad()
    def sample(self, which: str, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """n samples from ``generator``, ``boundary`` or ``retrained_generator`` (eval mode, no grad), in
        the data's units (unscaled where the networks work on scaled rows)."""
        model = getattr(self, which)
        device = next(model.parameters()).device
        z = torch.randn(n, self.latent_dim, generator=generator).to(device)
        samples = model.eval()(z)
        return samples if self.input_scaler is None else self.input_scaler.inverse(samples)

    @torch.no_grad()
    def scores(
        self,
        x: torch.Tensor,
        batch_size: int = 4096,
        which: tuple[str, ...] = ("detector", "task1_critic", "task3_critic"),
    ) -> dict[str, torch.Tensor]:
        """Anomaly scores (higher = more anomalous): ``detector`` = J's logit, ``task1_critic`` = -D(x),
        ``task3_critic`` = -C(x), and with detector.input_space="tuned_features" ``tuned_classifier`` = the
        fine-tuned critic copy's linear logit; ``which`` picks the ones computed."""
        self.eval()
        networks = {
            "detector": (self.detector, 1.0),
            "task1_critic": (self.critic, -1.0),
            "task3_critic": (self.retrain_critic, -1.0),
        }
        if hasattr(self.detector, "classifier_logit"):
            networks["tuned_classifier"] = (self.detector.classifier_logit, 1.0)
        out: dict[str, list[torch.Tensor]] = {name: [] for name in which}
        device = next(self.detector.parameters()).device
        for start in range(0, x.shape[0], batch_size):
            chunk = x[start : start + batch_size].to(device)
            if self.input_scaler is not None:
                chunk = self.input_scaler(chunk)
            for name in which:
                network, sign = networks[name]
                out[name].append(sign * network(chunk).float().cpu())
        return {k: torch.cat(v) for k, v in out.items()}


def write_saved(path: str | Path, models: OMASGANModels, state: dict[str, Any]) -> None:
    """Write a saved estimator as one checkpoint: every network's state dict to
    ``weights.<digest>.safetensors`` and ``state`` (the estimator's parameters, configuration and fitted
    values; JSON-serialisable) to the manifest ``estimator.json``."""
    tensors = {  # copies: J shares the critic's tensors, and safetensors refuses shared storage
        f"{name}.{key}": value.detach().cpu().contiguous().clone()
        for name, module in models.modules().items()
        for key, value in module.state_dict().items()
    }
    write_checkpoint(Path(path) / ESTIMATOR_FILE, tensors, state, prefix=WEIGHTS_PREFIX)


def read_saved(path: str | Path, device: torch.device | str = "cpu") -> tuple[OMASGANModels, dict[str, Any]]:
    """The networks (on ``device``) and the JSON state of an estimator written by :func:`write_saved`.

    Raises :class:`CheckpointError` naming the file and the problem for a missing, truncated, edited or
    mismatched save."""
    manifest = Path(path) / ESTIMATOR_FILE
    tensors, state = read_checkpoint(manifest, device)
    weights: dict[str, dict[str, torch.Tensor]] = {name: {} for name in NETWORK_NAMES}
    for key, value in tensors.items():
        name, _, param = key.partition(".")
        weights.setdefault(name, {})[param] = value
    try:
        config = OMASGANConfig.from_dict(state["config"])
        return OMASGANModels.build(config, tuple(state["input_shape"]), weights, device), state
    except CheckpointError as exc:
        raise CheckpointError(f"{manifest}: {exc}") from exc
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:  # InvalidInputError included (a ValueError)
        raise CheckpointError(
            f"{manifest} does not describe its weights ({type(exc).__name__}: {exc}); edited, or written by "
            "other networks?"
        ) from exc
