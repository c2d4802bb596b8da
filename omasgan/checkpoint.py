"""Checkpoints without pickle: tensors in safetensors, everything else in JSON, written atomically.

A nested state (dicts, lists, tensors, numbers, strings; optimizer state dicts included) is split into a
flat ``{key: tensor}`` map saved with safetensors and a JSON skeleton that refers to those keys. Both
files are written to temporary names and renamed with ``os.replace``, the JSON last, so a reader never
sees a half-written checkpoint.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from omasgan.errors import CheckpointError

__all__ = ["atomic_write_text", "checkpoint_files", "load_state", "save_state"]

_TENSOR, _INT_KEYS, _TUPLE = "__tensor__", "__int_keys__", "__tuple__"


def atomic_write_text(path: Path, text: str) -> None:
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _encode(value: Any, prefix: str, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(value, torch.Tensor):
        key = prefix or "root"
        tensors[key] = value.detach().to("cpu").contiguous().clone()
        return {_TENSOR: key}
    if isinstance(value, dict):
        int_keys = bool(value) and all(isinstance(k, int) for k in value)
        encoded = {str(k): _encode(v, f"{prefix}/{k}", tensors) for k, v in value.items()}
        if int_keys:
            encoded[_INT_KEYS] = True
        return encoded
    if isinstance(value, (list, tuple)):
        items = [_encode(v, f"{prefix}/{i}", tensors) for i, v in enumerate(value)]
        return {_TUPLE: items} if isinstance(value, tuple) else items
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise CheckpointError(f"cannot checkpoint a {type(value).__name__} at {prefix!r}")


def _decode(value: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(value, dict):
        if _TENSOR in value:
            return tensors[value[_TENSOR]]
        if _TUPLE in value:
            return tuple(_decode(v, tensors) for v in value[_TUPLE])
        int_keys = value.get(_INT_KEYS, False)
        return {(int(k) if int_keys else k): _decode(v, tensors) for k, v in value.items() if k != _INT_KEYS}
    if isinstance(value, list):
        return [_decode(v, tensors) for v in value]
    return value


def checkpoint_files(stem: Path) -> tuple[Path, Path]:
    """The two files of a checkpoint: ``<stem>.safetensors`` and ``<stem>.json`` (suffixes appended)."""
    stem = Path(stem)
    return stem.with_name(stem.name + ".safetensors"), stem.with_name(stem.name + ".json")


def save_state(stem: Path, state: dict[str, Any]) -> None:
    """Write ``stem.safetensors`` and ``stem.json``."""
    stem = Path(stem)
    tensors: dict[str, torch.Tensor] = {}
    skeleton = _encode(state, "", tensors)
    weights, skeleton_path = checkpoint_files(stem)
    tmp = weights.with_name(weights.name + ".tmp")
    save_file(tensors, str(tmp))
    os.replace(tmp, weights)
    atomic_write_text(skeleton_path, json.dumps(skeleton))


def load_state(stem: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_state`, tensors on ``map_location``."""
    stem = Path(stem)
    weights, skeleton = checkpoint_files(stem)
    if not weights.exists() or not skeleton.exists():
        raise CheckpointError(f"checkpoint {stem} is incomplete: expected {weights.name} and {skeleton.name}.")
    try:
        tensors = load_file(str(weights), device=str(torch.device(map_location)))
        return _decode(json.loads(skeleton.read_text()), tensors)
    except (SafetensorError, json.JSONDecodeError, KeyError, OSError) as exc:
        reason = f"{type(exc).__name__}: {exc}"
        raise CheckpointError(f"checkpoint {stem} is corrupt ({reason}); delete it to retrain.") from exc
