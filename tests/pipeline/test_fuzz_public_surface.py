"""Fuzzing the public surface: OMASGANDetector.fit / score_samples / predict / anomaly_score and
`omasgan fit` / `omasgan score` on random shapes, dtypes, non-finite and huge values, memory maps,
non-contiguous arrays and wrong feature counts.

Every call either works (finite scores of the right length, labels in {-1, 1}) or raises
InvalidInputError with a message that says what to do; the CLI exits 2 with one line and leaves no
output file. The oracle (`_expected_valid`) says which of the two must happen, so a call that works
where it should refuse, or refuses where it should work, fails too.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from omasgan.cli import main
from omasgan.errors import InvalidInputError
from omasgan.estimator import OMASGANDetector

TINY = {"task1.steps": 2, "task2.steps": 2, "task3.steps": 2, "detector.steps": 2, "log_every": 1}
FEATURES = 3
IMAGE = (1, 28, 28)
DTYPES = ["bool", "int8", "int64", "float16", "float32", "float64", "complex128", "object_numbers", "object_text"]
# What a refusal must tell the user to do, by the problem it names (a message matching none fails).
ADVICE = (
    "reshape",
    "scale them",
    "impute",
    "drop",
    "encode",
    "real values",
    "fitted on",
    "a minimum of",
    "convert",
    "resize",
    "must be (n, d)",
    "np.save",
)
FUZZ = settings(max_examples=150, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))


def _detector() -> OMASGANDetector:
    return OMASGANDetector(preset="quick", config=TINY, random_state=0, device="cpu", verbose=0)


@pytest.fixture(scope="module")
def fitted():
    """A vector detector (3 features) and an image detector (1 x 28 x 28), each trained a few steps."""
    rng = np.random.default_rng(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return {
            "vector": _detector().fit(rng.normal(size=(40, FEATURES))),
            "image": _detector().fit(rng.random((8, *IMAGE))),
        }


@dataclass
class Case:
    X: object
    rows: int
    sample_shape: tuple  # per-sample shape as the detector sees it ((h, w) counts as (1, h, w))
    dtype: str
    non_finite: bool
    container: str


@st.composite
def cases(draw, memmap_dir=None):
    rows = draw(st.sampled_from([0, 1, 2, 5]))
    layout = draw(st.sampled_from(["1d", "2d", "2d-wrong", "3d", "4d", "4d-wrong", "5d"]))
    shape = {
        "1d": (rows,),
        "2d": (rows, FEATURES),
        "2d-wrong": (rows, draw(st.sampled_from([1, 2, 4, 784]))),
        "3d": (rows, 28, 28),
        "4d": (rows, *IMAGE),
        "4d-wrong": (rows, draw(st.sampled_from([(3, 28, 28), (1, 8, 8), (1, 28, 32)]))),
        "5d": (rows, 1, 2, 2, 2),
    }[layout]
    if layout == "4d-wrong":
        shape = (rows, *shape[1])
    dtype = draw(st.sampled_from(DTYPES))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    values = rng.normal(size=shape)
    values = {"normal": values, "pixels": np.tanh(values), "huge": values * 1e30}[
        draw(st.sampled_from(["normal", "pixels", "huge"]))
    ]
    non_finite = False
    if values.size and draw(st.booleans()):
        values.flat[draw(st.integers(0, values.size - 1))] = draw(st.sampled_from([np.nan, np.inf, -np.inf]))
        non_finite = True
    if dtype == "bool":
        X, non_finite = values > 0, False
    elif dtype in ("int8", "int64"):
        X, non_finite = np.clip(np.nan_to_num(values), -100, 100).astype(dtype), False
    elif dtype == "float16":
        X = values.astype(np.float16)  # 1e30 overflows to inf in float16
        non_finite = non_finite or (X.size > 0 and not np.isfinite(X).all())
    elif dtype == "complex128":
        X = values + 1j
    elif dtype == "object_numbers":
        X = values.astype(object)
    elif dtype == "object_text":
        X = values.astype(object)
        if X.size:
            X.flat[0] = "n/a"
    else:
        X = values.astype(dtype)
    container = draw(st.sampled_from(["array", "non_contiguous", "fortran", "torch"]))
    if container == "non_contiguous" and X.ndim >= 2:
        wide = np.repeat(X, 2, axis=-1)
        X = wide[..., ::2]
    elif container == "fortran":
        X = np.asfortranarray(X)
    elif container == "torch" and X.dtype.kind in "biuf":
        X = torch.from_numpy(np.ascontiguousarray(X))
    else:
        container = "array"
    sample_shape = tuple(shape[1:])
    if len(sample_shape) == 2:
        sample_shape = (1, *sample_shape)
    return Case(X, rows, sample_shape, dtype, non_finite, container)


def _keep_two_rows(case: Case) -> None:
    """Cut the case to its first two rows, and recount whether a non-finite value is left among them."""
    case.X, case.rows = case.X[:2], min(case.rows, 2)
    if case.dtype not in ("complex128", "object_text"):
        case.non_finite = not np.isfinite(np.asarray(case.X, dtype=np.float64)).all()


def _expected_valid(case: Case, fitted_shape: tuple | None) -> bool:
    """Whether the call must work: numeric real values, all finite, enough rows, a shape the detector takes."""
    if case.dtype in ("complex128", "object_text") or case.non_finite:
        return False
    if case.rows < (2 if fitted_shape is None else 1):
        return False
    if fitted_shape is not None:
        return case.sample_shape == fitted_shape
    if len(case.sample_shape) == 1:
        return True
    # Images for the built-in networks: 28x28 or 32x32, pixels in [-1, 1] (their generator's tanh).
    pixels = np.abs(np.asarray(case.X, dtype=np.float64))
    return case.sample_shape[1:] in ((28, 28), (32, 32)) and bool(pixels.max() <= 1.0)


def _refusal_is_actionable(exc: BaseException) -> None:
    assert isinstance(exc, InvalidInputError), f"{type(exc).__name__}: {exc}"
    message = str(exc).lower()
    assert any(advice in message for advice in ADVICE), str(exc)


@pytest.mark.filterwarnings("ignore")
@FUZZ
@given(
    case=cases(),
    kind=st.sampled_from(["vector", "image"]),
    method=st.sampled_from(["score_samples", "predict", "anomaly_score"]),
)
def test_scoring_works_or_refuses_with_advice(fitted, case, kind, method):
    detector = fitted[kind]
    valid = _expected_valid(case, detector.input_shape_)
    try:
        out = getattr(detector, method)(case.X)
    except Exception as exc:  # noqa: BLE001  the assertion says what it was
        assert not valid, f"{method} refused valid input {case}: {type(exc).__name__}: {exc}"
        _refusal_is_actionable(exc)
        return
    assert valid, f"{method} accepted invalid input {case}"
    assert isinstance(out, np.ndarray) and out.shape == (case.rows,)
    if method == "predict":
        assert set(np.unique(out)) <= {-1, 1}
    else:
        assert np.isfinite(out).all(), out


@pytest.mark.filterwarnings("ignore")
@settings(FUZZ, max_examples=40)
@given(case=cases())
def test_fitting_works_or_refuses_with_advice(case):
    if len(case.sample_shape) > 1:
        _keep_two_rows(case)  # images are slow to train; 2 rows exercise the same path
    valid = _expected_valid(case, None)
    try:
        detector = _detector().fit(case.X)
    except Exception as exc:  # noqa: BLE001
        assert not valid, f"fit refused valid input {case}: {type(exc).__name__}: {exc}"
        _refusal_is_actionable(exc)
        return
    assert valid, f"fit accepted invalid input {case}"
    assert np.isfinite(detector.score_samples(case.X)).all()


def test_memory_maps_fit_and_score_like_arrays(fitted, tmp_path):
    rng = np.random.default_rng(1)
    data = np.lib.format.open_memmap(tmp_path / "x.npy", mode="w+", dtype=np.float64, shape=(30, FEATURES))
    data[:] = rng.normal(size=(30, FEATURES))
    data.flush()
    read_only = np.load(tmp_path / "x.npy", mmap_mode="r")
    detector = fitted["vector"]
    assert np.array_equal(detector.score_samples(read_only), detector.score_samples(np.asarray(read_only)))
    assert np.isfinite(_detector().fit(read_only).score_samples(read_only)).all()


CLI_TINY = [arg for key, value in TINY.items() for arg in ("--set", f"{key}={value}")]


@pytest.fixture(scope="module")
def saved(fitted, tmp_path_factory):
    path = tmp_path_factory.mktemp("cli") / "model"
    fitted["vector"].save(path)
    return path


def _npy(case: Case, path) -> None:
    """Write the case as .npy, what a CLI user has (object arrays only with pickle, which omasgan refuses)."""
    X = case.X.numpy() if isinstance(case.X, torch.Tensor) else case.X
    np.save(path, X, allow_pickle=X.dtype == object)


@pytest.mark.filterwarnings("ignore")
@settings(FUZZ, max_examples=50)
@given(case=cases(), command=st.sampled_from(["fit", "score"]))
def test_cli_works_or_exits_2_with_one_line_and_no_output(saved, tmp_path_factory, capsys, case, command):
    folder = tmp_path_factory.mktemp("fuzz")
    if command == "fit" and len(case.sample_shape) > 1:
        _keep_two_rows(case)
    _npy(case, folder / "in.npy")
    out = folder / ("model" if command == "fit" else "scores.npy")
    if command == "fit":
        argv = ["fit", "--input", str(folder / "in.npy"), "--out", str(out), "--quiet", *CLI_TINY]
        # An object array is refused at loading (no pickle), whatever it holds.
        valid = _expected_valid(case, None) and not case.dtype.startswith("object")
    else:
        argv = ["score", "--run", str(saved), "--input", str(folder / "in.npy"), "--output", str(out), "--quiet"]
        # score takes any layout with the fitted number of values per sample; 0 rows give 0 scores.
        same_size = int(np.prod(case.sample_shape)) == FEATURES and len(case.sample_shape) >= 1 and case.X.ndim >= 2
        valid = (
            same_size
            and case.dtype not in ("complex128",)
            and not case.dtype.startswith("object")
            and not case.non_finite
        )
    capsys.readouterr()
    code = main(argv)
    captured = capsys.readouterr()
    if code == 0:
        assert valid, f"{command} accepted invalid input {case}"
        if command == "score":
            scores = np.load(out)
            assert scores.shape == (case.rows,) and np.isfinite(scores).all()
        else:
            assert (out / "estimator.json").exists()
        return
    assert not valid, f"{command} refused valid input {case}: {captured.err}"
    assert code == 2
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("omasgan: error: "), captured.err
    assert any(advice in lines[0].lower() for advice in ADVICE), lines[0]
    assert not out.exists() and not list(folder.glob("*.partial")), list(folder.iterdir())
