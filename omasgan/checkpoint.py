"""Checkpoints without pickle, written as one unit: a JSON manifest that names its weights by SHA-256.

A checkpoint is two files: ``<prefix>.<digest>.safetensors`` (the tensors) and a manifest (JSON) holding
everything else and the weights file's name, size and SHA-256. The weights are written first, under a
name of their own; the manifest, replaced atomically after both are on disk (fsync before each rename), is
the commit point. A crash at any moment leaves either the old manifest with the old weights (still on
disk: older weights files are deleted only after the new manifest is in place) or the new pair, and a
reader checks the size and digest, so a manifest is never paired with weights it did not describe.

A nested state (dicts, lists, tensors, numbers, strings; optimizer state dicts included) is split into a
flat ``{key: tensor}`` map and a JSON skeleton that refers to those keys (:func:`save_state`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

from omasgan.errors import CheckpointError

__all__ = [
    "atomic_write_text",
    "checkpoint_exists",
    "checkpoint_paths",
    "load_state",
    "read_checkpoint",
    "remove_checkpoint",
    "save_state",
    "write_checkpoint",
]

FORMAT, VERSION = "omasgan-checkpoint", 1
_TENSOR, _INT_KEYS, _TUPLE = "__tensor__", "__int_keys__", "__tuple__"
_DIGEST_CHARS = 16  # of the SHA-256 in a weights file's name; the manifest holds all 64


def _fsync_dir(folder: Path) -> None:
    """Make a rename in ``folder`` durable (POSIX; a no-op where directories cannot be opened)."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def atomic_write_text(path: Path, text: str) -> None:
    """Replace ``path`` with ``text``: written to a temporary file, fsynced, renamed."""
    _atomic_write_bytes(Path(path), text.encode("utf-8"))


def _weights_pattern(prefix: str) -> re.Pattern[str]:
    return re.compile(rf"^{re.escape(prefix)}\.[0-9a-f]{{{_DIGEST_CHARS}}}\.safetensors(\.tmp)?$")


def write_checkpoint(manifest: Path, tensors: dict[str, torch.Tensor], content: Any, prefix: str) -> None:
    """Write ``tensors`` to ``<prefix>.<digest>.safetensors`` beside ``manifest``, then the manifest (JSON,
    holding ``content`` and the weights' name, size and SHA-256), then delete the weights it replaced."""
    manifest = Path(manifest)
    folder = manifest.parent
    folder.mkdir(parents=True, exist_ok=True)
    data = save_safetensors({k: v.detach().to("cpu").contiguous() for k, v in tensors.items()})
    digest = hashlib.sha256(data).hexdigest()
    weights = folder / f"{prefix}.{digest[:_DIGEST_CHARS]}.safetensors"
    _atomic_write_bytes(weights, data)
    record = {
        "format": FORMAT,
        "version": VERSION,
        "weights": {"file": weights.name, "bytes": len(data), "sha256": digest},
        "content": content,
    }
    atomic_write_text(manifest, json.dumps(record, indent=1))
    pattern = _weights_pattern(prefix)
    for stale in folder.iterdir():
        if stale.name != weights.name and pattern.match(stale.name):
            with contextlib.suppress(FileNotFoundError):
                stale.unlink()


def _manifest_record(manifest: Path) -> dict[str, Any]:
    """The manifest's JSON, its structure checked."""
    try:
        text = manifest.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise CheckpointError(f"checkpoint manifest {manifest} is missing.") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"checkpoint manifest {manifest} cannot be read ({exc}).") from exc
    try:
        record = json.loads(text)
    except ValueError as exc:
        raise CheckpointError(f"checkpoint manifest {manifest} is not JSON (truncated or edited?): {exc}") from exc
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        raise CheckpointError(
            f'{manifest} is not an omasgan checkpoint manifest (no "format": "{FORMAT}"). Saves and run '
            "directories from before the manifest format (0.1 pre-releases: a separate .safetensors and .json) "
            "are not read; retrain with this version."
        )
    if record.get("version") != VERSION:
        found = record.get("version")
        raise CheckpointError(f"{manifest}: checkpoint version {found!r}; this omasgan reads version {VERSION}.")
    weights = record.get("weights")
    if (
        "content" not in record
        or not isinstance(weights, dict)
        or not isinstance(weights.get("file"), str)
        or not isinstance(weights.get("bytes"), int)
        or not isinstance(weights.get("sha256"), str)
    ):
        raise CheckpointError(f"{manifest}: the manifest lacks its content or its weights' file, bytes or sha256.")
    name = weights["file"]
    if Path(name).name != name or name.startswith("."):
        raise CheckpointError(f"{manifest}: weights file {name!r} must be a plain file name beside the manifest.")
    return record


def read_checkpoint(manifest: Path, device: str | torch.device = "cpu") -> tuple[dict[str, torch.Tensor], Any]:
    """The tensors (on ``device``) and content of a checkpoint written by :func:`write_checkpoint`.

    Raises :class:`CheckpointError`, naming the file and the problem, for a missing, truncated, edited or
    mismatched manifest or weights file."""
    manifest = Path(manifest)
    record = _manifest_record(manifest)
    expected = record["weights"]
    weights = manifest.parent / expected["file"]
    try:
        data = weights.read_bytes()
    except FileNotFoundError as exc:
        raise CheckpointError(f"{weights}, the weights {manifest.name} names, is missing.") from exc
    except OSError as exc:
        raise CheckpointError(f"{weights} cannot be read ({exc}).") from exc
    if len(data) != expected["bytes"]:
        raise CheckpointError(
            f"{weights} holds {len(data)} bytes where {manifest.name} records {expected['bytes']}: truncated or "
            "replaced; the checkpoint cannot be used."
        )
    if hashlib.sha256(data).hexdigest() != expected["sha256"]:
        raise CheckpointError(
            f"{weights} does not match the SHA-256 in {manifest.name}: corrupt, or weights of another checkpoint."
        )
    try:
        tensors = load_safetensors(data)
    except (SafetensorError, ValueError) as exc:
        raise CheckpointError(f"{weights} is not a valid safetensors file ({exc}).") from exc
    device = torch.device(device)
    return {k: v.to(device) for k, v in tensors.items()}, record["content"]


def checkpoint_paths(stem: Path) -> tuple[Path, Path]:
    """The two files of the checkpoint at ``stem``: its manifest ``<stem>.json`` and the weights it names."""
    manifest = _manifest(stem)
    return manifest, manifest.parent / _manifest_record(manifest)["weights"]["file"]


def checkpoint_exists(stem: Path) -> bool:
    """Whether a checkpoint was committed at ``stem`` (its manifest ``<stem>.json`` exists)."""
    return _manifest(stem).exists()


def remove_checkpoint(stem: Path) -> None:
    """Delete the checkpoint at ``stem``: the manifest first (so it disappears at once), then its weights."""
    manifest = _manifest(stem)
    with contextlib.suppress(FileNotFoundError):
        manifest.unlink()
    _fsync_dir(manifest.parent)
    pattern = _weights_pattern(Path(stem).name)
    for stale in manifest.parent.iterdir():
        if pattern.match(stale.name):
            with contextlib.suppress(FileNotFoundError):
                stale.unlink()


# -- nested states -----------------------------------------------------------------------------------


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


def _manifest(stem: Path) -> Path:
    stem = Path(stem)
    return stem.with_name(stem.name + ".json")


def save_state(stem: Path, state: dict[str, Any]) -> None:
    """Write a nested state as the checkpoint ``<stem>.json`` + ``<stem>.<digest>.safetensors``."""
    tensors: dict[str, torch.Tensor] = {}
    skeleton = _encode(state, "", tensors)
    write_checkpoint(_manifest(stem), tensors, skeleton, prefix=Path(stem).name)


def load_state(stem: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_state`, tensors on ``map_location``."""
    manifest = _manifest(stem)
    tensors, skeleton = read_checkpoint(manifest, map_location)
    try:
        return _decode(skeleton, tensors)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise CheckpointError(f"{manifest} refers to tensors its weights do not hold ({exc!r}); edited?") from exc
