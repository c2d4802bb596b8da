"""``OMASGANDetector``: OMASGAN as a scikit-learn outlier detector (like ``IsolationForest``)."""

from __future__ import annotations

from numbers import Integral, Real
from pathlib import Path

import numpy as np
import torch
from sklearn.base import BaseEstimator, OutlierMixin
from sklearn.utils.validation import check_is_fitted, validate_data

from omasgan._validation import Interval, Options, validate_params
from omasgan.config import PRESET_NAMES, OMASGANConfig, resolve_config, resolve_seed
from omasgan.errors import CheckpointError, InvalidInputError, InvalidInputTypeError
from omasgan.models import ESTIMATOR_FILE, OMASGANModels, read_saved, write_saved
from omasgan.nets.heads import NeighbourHead
from omasgan.pipeline import OMASGAN
from omasgan.runtime import resolve_device
from omasgan.scoring import score_batches

__all__ = ["OMASGANDetector"]

_WHOLE_CONFIG = "OMASGANConfig"  # how a saved estimator's params mark a whole configuration
_LEAVE_SELF_OUT = (
    "with J's neighbour head (the tabular recipe) the contamination threshold is PyOD's: set on the training "
    "rows' scores with each stored row scored without itself, so predict on the very rows J stores flags "
    "fewer than the contamination share (a stored row's distance to itself is 0); "
    "tests/pipeline/test_tables_detector.py checks the share on new rows"
)


_COMPLEX_HINT = "pass real values, e.g. the real and imaginary parts as separate columns."


class OMASGANDetector(OutlierMixin, BaseEstimator):
    """Anomaly detector trained on normal data only, with generated boundary samples as negatives.

    Runs the four OMASGAN tasks (a GAN, the boundary generator B, the retrained G' with critic C, and the
    detector J) and scores with J. Score directions follow scikit-learn: ``score_samples`` is higher for
    normal points; ``anomaly_score`` is J's logit, higher for anomalies (the paper's convention).

    Parameters
    ----------
    preset : {"quick", "tuned", "paper", "paper-quick"}, default="quick"
        Hyper-parameter preset (``omasgan config --describe``): "paper" is the published recipe, "tuned"
        the recipe chosen on validation data, "quick" the tuned recipe at CPU size, "paper-quick" the
        paper's at CPU size. Vector (n, d) data and images (n, [c,] h, w) get their own variants.
    config : dict or OMASGANConfig, default=None
        Dotted-key overrides of the preset, e.g. ``{"task2.mu": 1.0, "task1.steps": 500}``, or a whole
        :class:`~omasgan.config.OMASGANConfig` (then ``preset`` is not used). The seed is not set here but
        by ``random_state``.
    divergence : str, default=None
        Any registered divergence (``omasgan divergences``); None keeps the configuration's (klwgan).
    divergence_params : dict, default=None
        Its parameters; None keeps the configuration's (or the new divergence's defaults).
    contamination : "auto" or float in (0, 0.5], default="auto"
        "auto": the threshold is J's decision boundary (logit 0). A float: as in PyOD, the threshold labels
        that share of the training rows outlier, each row scored as a new row at its place would be: where
        J's neighbour head stores training rows (the tabular recipe), a stored row is scored without itself
        (its distance to itself is 0), so about that share of *new* normal rows is flagged.
    device : str, default="auto"
        "auto" picks CUDA when available.
    random_state : int, RandomState or None, default=None
        The run's seed (``config_.seed``): an int is used as the seed itself, so ``random_state=3`` and
        ``omasgan fit --seed 3`` train the same run; None or a RandomState draw one. With an
        :class:`~omasgan.config.OMASGANConfig` as ``config``, None keeps its seed.
    verbose : int, default=0
        0 silent; 1 progress bars; 2 also logged metrics.
    run_dir : str, default=None
        Keep checkpoints and metrics there (and resume an interrupted fit); None trains in memory.
    runtime : dict, default=None
        Fast paths, e.g. ``{"precision": "bf16", "channels_last": True, "compile": True}``
        (:class:`omasgan.runtime.RuntimeOptions`); they change speed, not the configuration.
    batch_size : int, default=4096
        Samples scored per batch: scoring converts and moves one batch at a time, so ``X`` may be a
        memory-mapped array larger than memory.

    Attributes
    ----------
    generator_, boundary_generator_, retrained_generator_ : torch.nn.Module
        G (Task 1), B (Task 2), G' (Task 3).
    critic_, retrain_critic_, detector_ : torch.nn.Module
        D (Task 1), C (Task 3), J (Task 3-J).
    config_ : OMASGANConfig
        The configuration actually used.
    offset_ : float
        ``decision_function = score_samples - offset_``.
    decision_scores_ : ndarray of shape (n_samples,)
        J's anomaly score of each training row, as PyOD's: a row J's neighbour head stored is scored without
        itself. Score the rows you fitted on with this (the unsupervised setting), not ``anomaly_score``.
        Not kept by :meth:`save`.
    device_ : torch.device
    history_ : list of dict
        Logged metrics per task and step.
    input_shape_ : tuple
        Shape of one sample as the networks see it: (d,) or (c, h, w).
    n_features_in_ : int

    See Also
    --------
    sklearn.ensemble.IsolationForest : the estimator conventions followed here.
    omasgan.OMASGAN : the pipeline with run directories and custom networks.

    References
    ----------
    N. Dionelis, M. Yaghoobi, S. A. Tsaftaris, "Out-of-Distribution Minimum Anomaly Score GAN for Sample
    Generation on the Boundary" (OMASGAN).

    Examples
    --------
    >>> import numpy as np
    >>> from omasgan import OMASGANDetector
    >>> X = np.random.default_rng(0).normal(size=(200, 2)).astype("float32")
    >>> tiny = {"task1.steps": 20, "task2.steps": 5, "task3.steps": 5, "detector.steps": 20}
    >>> det = OMASGANDetector(config=tiny, random_state=0, device="cpu").fit(X)
    >>> det.predict(np.array([[0.0, 0.0]])).shape
    (1,)
    """

    _parameter_constraints: dict = {
        "preset": [Options(set(PRESET_NAMES))],
        "config": [dict, OMASGANConfig, None],
        "divergence": [str, None],
        "divergence_params": [dict, None],
        "contamination": [Options({"auto"}), Interval(Real, 0, 0.5, closed="right")],
        "device": [str, torch.device],
        "random_state": ["random_state"],
        "verbose": [Interval(Integral, 0, None, closed="left")],
        "run_dir": [str, Path, None],
        "runtime": [dict, None],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
    }

    # scikit-learn checks this estimator cannot pass, and why (pass to check_estimator's
    # expected_failed_checks; tests/pipeline/test_detector.py does).
    expected_failed_checks: dict = {
        "check_outlier_contamination": (
            "it requires the constraint objects of scikit-learn's private _param_validation module; the "
            "same (0, 0.5] interval is enforced by omasgan._validation and tested separately"
        ),
        "check_outliers_train": _LEAVE_SELF_OUT,
        "check_outliers_fit_predict": _LEAVE_SELF_OUT,
        "check_methods_subset_invariance": (
            "the networks compute in float32, and a matrix product over a batch rounds differently from one "
            "over a subset by about one ulp, over the check's 1e-7 tolerance; tests/pipeline/test_detector.py "
            "checks subset invariance at float32's tolerance"
        ),
    }

    def __init__(
        self,
        *,
        preset="quick",
        config=None,
        divergence=None,
        divergence_params=None,
        contamination="auto",
        device="auto",
        random_state=None,
        verbose=0,
        run_dir=None,
        runtime=None,
        batch_size=4096,
    ):
        self.preset = preset
        self.config = config
        self.divergence = divergence
        self.divergence_params = divergence_params
        self.contamination = contamination
        self.device = device
        self.random_state = random_state
        self.verbose = verbose
        self.run_dir = run_dir
        self.runtime = runtime
        self.batch_size = batch_size

    # -- input handling -------------------------------------------------------------------------------

    @staticmethod
    def _to_numpy(X):
        if isinstance(X, torch.Tensor):
            if X.is_complex():
                raise InvalidInputError(f"X is a complex tensor ({X.dtype}); {_COMPLEX_HINT}")
            return X.detach().to("cpu", torch.float32).numpy()
        return X

    def _samples(self, X, *, reset: bool) -> torch.Tensor:
        """Validated input as a float32 tensor of shape (n, *input_shape_)."""
        X = self._to_numpy(X)
        if getattr(X, "ndim", None) == 3:  # (n, h, w) single-channel images -> (n, 1, h, w)
            X = X[:, None]
        try:
            X = validate_data(
                self, X, reset=reset, allow_nd=True, dtype=np.float32, ensure_min_samples=2 if reset else 1
            )
        except (ValueError, TypeError) as exc:  # scikit-learn's and numpy's checks, under our error class
            kind = InvalidInputTypeError if isinstance(exc, TypeError) else InvalidInputError
            raise kind(self._what_to_do(str(exc))) from exc
        if X.ndim not in (2, 4):
            raise InvalidInputError(
                f"X must be (n, d) vectors or (n, h, w) / (n, c, h, w) images, got shape {X.shape}."
            )
        shape = X.shape[1:]
        if not reset and tuple(shape) != tuple(self.input_shape_):
            raise InvalidInputError(
                f"X has samples of shape {tuple(shape)} but this detector was fitted on {tuple(self.input_shape_)}."
            )
        X = np.ascontiguousarray(X)
        if not X.flags.writeable:  # e.g. a memory-mapped .npy; torch wants writable memory
            X = X.copy()
        return torch.from_numpy(X).reshape(X.shape[0], *shape)

    def _what_to_do(self, message: str) -> str:
        """scikit-learn's message about bad input, with what to do where it does not say."""
        if "Complex data" in message:
            return f"{message.splitlines()[0]}: {_COMPLEX_HINT}"
        if "could not convert" in message or "argument must be" in message:
            return (
                f"X must be numeric ({message.splitlines()[0]}): encode non-numeric columns first, e.g. with "
                "scikit-learn's OrdinalEncoder or OneHotEncoder."
            )
        if "infinity or a value too large" in message:
            return f"{message} Replace or drop infinite values and values beyond float32's range (3.4e38)."
        if "features, but" in message and hasattr(self, "input_shape_"):
            return f"{message} It was fitted on samples of shape {tuple(self.input_shape_)}."
        return message

    def _build_config(self, kind: str, data_shape: tuple[int, ...]) -> OMASGANConfig:
        """The one path from this estimator's parameters to the run's configuration."""
        keep_seed = isinstance(self.config, OMASGANConfig) and self.random_state is None
        seed = self.config.seed if keep_seed else resolve_seed(self.random_state)
        return resolve_config(
            self.preset,
            kind,
            self.config,
            seed=seed,
            divergence=self.divergence,
            divergence_params=self.divergence_params,
            data_shape=data_shape,
        )

    # -- fitting ------------------------------------------------------------------------------------

    def fit(self, X, y=None):
        """Train on normal data ``X`` ((n, d), (n, h, w) or (n, c, h, w); numpy or torch). Returns self."""
        validate_params(self)
        samples = self._samples(X, reset=True)
        self.input_shape_ = tuple(samples.shape[1:])
        self.config_ = self._build_config("vector" if samples.dim() == 2 else "image", tuple(samples.shape))
        self.device_ = resolve_device(self.device)
        pipeline = OMASGAN(
            self.config_, self.run_dir, device=str(self.device_), verbose=self.verbose, runtime=self.runtime
        )
        self._set_models(pipeline.fit(samples))
        self.device_ = pipeline.device  # under torchrun: this rank's GPU
        self.history_ = pipeline.history
        self.offset_ = 0.0  # contamination="auto": J's decision boundary, logit 0
        self.decision_scores_ = self._training_scores(samples, pipeline.stored_rows)
        if self.contamination != "auto":
            self.offset_ = float(np.percentile(-self.decision_scores_, 100.0 * self.contamination))
        return self

    def _training_scores(self, samples: torch.Tensor, stored: torch.Tensor | None) -> np.ndarray:
        """J's anomaly score of each training row as a new row at its place would get it (PyOD's
        ``decision_scores_``): rows J's neighbour head stored are scored without themselves (a stored
        row's distance to itself is 0), the others as they are."""
        scores = self._scores(samples, ("detector",))["detector"]
        head = getattr(self.models_.detector, "head", None)
        if stored is not None and isinstance(head, NeighbourHead) and not torch.distributed.is_initialized():
            if len(stored) > 1:
                scores[stored.cpu().numpy()] = head.stored_logits().double().cpu().numpy()
        return scores

    def _set_models(self, models: OMASGANModels) -> None:
        self.models_ = models
        self.generator_ = models.generator
        self.critic_ = models.critic
        self.boundary_generator_ = models.boundary
        self.retrained_generator_ = models.retrained_generator
        self.retrain_critic_ = models.retrain_critic
        self.detector_ = models.detector

    # -- scoring (outputs are numpy on the CPU) ---------------------------------------------------------

    def _scores(self, X, which: tuple[str, ...]) -> dict[str, np.ndarray]:
        """Scores of ``X`` one batch at a time: each batch is validated, converted and moved on its own, so
        a memory-mapped ``X`` is read in order and never held in memory whole."""

        def prepare(rows, _start: int) -> torch.Tensor:
            return rows if isinstance(rows, torch.Tensor) else self._samples(rows, reset=False)

        return score_batches(self.models_, X, which, prepare, batch_size=self.batch_size)

    def _checked(self, X):
        """X as an array whose batches ``_samples`` validates; a memmap stays a memmap (not read here)."""
        array = self._to_numpy(X)
        if not isinstance(array, np.ndarray) or array.ndim < 2 or array.shape[0] == 0:
            return self._samples(X, reset=False)  # small or unusual input: validated whole, usual messages
        return array

    def anomaly_score(self, X) -> np.ndarray:
        """J's logit for each sample: higher = more anomalous (the paper's score). ``X`` may be a
        ``numpy.memmap``; it is scored ``batch_size`` samples at a time."""
        check_is_fitted(self)
        return self._scores(self._checked(X), ("detector",))["detector"]

    def score_samples(self, X) -> np.ndarray:
        """Opposite of ``anomaly_score``: higher = more normal (scikit-learn's convention)."""
        return -self.anomaly_score(X)

    def decision_function(self, X) -> np.ndarray:
        """``score_samples(X) - offset_``: negative for outliers."""
        return self.score_samples(X) - self.offset_

    def predict(self, X) -> np.ndarray:
        """+1 for inliers, -1 for outliers."""
        return np.where(self.decision_function(X) < 0, -1, 1)

    def ablation_scores(self, X) -> dict[str, np.ndarray]:
        """Anomaly scores (higher = more anomalous) of J, the Task-1 critic (-D) and the Task-3 critic (-C)."""
        check_is_fitted(self)
        return self._scores(self._checked(X), ("detector", "task1_critic", "task3_critic"))

    def boundary_samples(self, n: int, random_state=None) -> np.ndarray:
        """n samples of the boundary generator B, shaped like the training samples."""
        check_is_fitted(self)
        samples = self.models_.sample("boundary", n, torch.Generator().manual_seed(resolve_seed(random_state)))
        return samples.cpu().numpy().reshape(n, *self.input_shape_)

    # -- persistence (safetensors + JSON, no pickle) ----------------------------------------------------

    def save(self, path) -> None:
        """Write ``path/estimator.json`` and the weights it names, ``path/weights.<digest>.safetensors``, as
        one checkpoint (a crash while saving leaves the previous save loadable)."""
        check_is_fitted(self)
        params = {k: (str(v) if isinstance(v, (Path, torch.device)) else v) for k, v in self.get_params().items()}
        if not isinstance(params["random_state"], (int, type(None))):
            params["random_state"] = None
        if isinstance(params["config"], OMASGANConfig):  # a whole configuration, tagged so load rebuilds it
            params["config"] = {_WHOLE_CONFIG: params["config"].to_dict()}
        state = {
            "params": params,
            "config": self.config_.to_dict(),
            "offset": self.offset_,
            "input_shape": list(self.input_shape_),
            "n_features_in": self.n_features_in_,
        }
        write_saved(path, self.models_, state)

    @classmethod
    def load(cls, path, map_location="cpu") -> OMASGANDetector:
        """Load a detector written by :meth:`save`, its networks on ``map_location``."""
        models, state = read_saved(path, map_location)
        try:
            params = dict(state["params"])
            if isinstance(params.get("config"), dict) and set(params["config"]) == {_WHOLE_CONFIG}:
                params["config"] = OMASGANConfig.from_dict(params["config"][_WHOLE_CONFIG])
            estimator = cls(**params)
            estimator.config_ = OMASGANConfig.from_dict(state["config"])
            estimator.input_shape_ = tuple(int(n) for n in state["input_shape"])
            estimator.n_features_in_ = int(state["n_features_in"])
            estimator.offset_ = float(state["offset"])
        except (KeyError, TypeError, ValueError) as exc:  # InvalidInputError included (a ValueError)
            raise CheckpointError(
                f"{Path(path) / ESTIMATOR_FILE} does not hold a detector's parameters ({type(exc).__name__}: {exc}); "
                "edited by hand?"
            ) from exc
        estimator.device_ = torch.device(map_location)
        estimator.history_ = []
        estimator._set_models(models)
        return estimator

    def _rebuild_models(self, weights: dict[str, dict[str, torch.Tensor]], device: torch.device) -> OMASGANModels:
        return OMASGANModels.build(self.config_, self.input_shape_, weights, device)

    # Spectral-norm parametrisations cannot be pickled, so pickling (joblib, clone of a fitted
    # estimator) carries the networks as state dicts and rebuilds them.
    def __getstate__(self):
        state = dict(super().__getstate__())  # object.__getstate__ returns the live __dict__
        models = state.pop("models_", None)
        for attr in (
            "generator_",
            "critic_",
            "boundary_generator_",
            "retrained_generator_",
            "retrain_critic_",
            "detector_",
        ):
            state.pop(attr, None)
        if models is not None:
            state["_weights"] = {
                name: {k: v.detach().cpu() for k, v in module.state_dict().items()}
                for name, module in models.modules().items()
            }
        return state

    def __setstate__(self, state):
        weights = state.pop("_weights", None)
        super().__setstate__(state)
        if weights is not None:
            self._set_models(self._rebuild_models(weights, self.device_))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.non_deterministic = self.random_state is None
        tags.input_tags.three_d_array = True
        return tags
