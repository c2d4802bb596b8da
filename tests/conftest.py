"""Shared fixtures: data location and the device list every device-parametrised test uses."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parent.parent

# Tests read the verified offline copies beside the checkout and never download anything.
os.environ.setdefault("OMASGAN_DATA", str((REPO_ROOT.parent / "shared" / "data").resolve()))


def available_devices() -> list:
    """CPU always; CUDA as a parameter that skips with a reason when no GPU is present."""
    cuda = pytest.param(
        "cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
    )
    return ["cpu", cuda]


@pytest.fixture
def data_dir() -> Path:
    path = Path(os.environ["OMASGAN_DATA"])
    if not path.is_dir():
        if os.environ.get("CI"):
            pytest.fail(f"dataset folder {path} not present: CI must run beside ../shared/data")
        pytest.skip(f"dataset folder {path} not present")
    return path


@pytest.fixture(params=["float32", "bfloat16"])
def candidate_precision(request, monkeypatch):
    """knn's and min_distance's CPU candidate GEMM in float32 and in bfloat16 (forced on any CPU; the
    default only where the CPU multiplies bfloat16 natively): their results must be the same."""
    monkeypatch.setenv("OMASGAN_BF16_CANDIDATES", "0" if request.param == "float32" else "1")
    return request.param
