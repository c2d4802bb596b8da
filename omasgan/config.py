"""One configuration object for a whole OMASGAN run: the paper's defaults, named presets, and each field's meaning.

Every field is JSON-serialisable; ``to_dict``/``from_dict`` round-trip, and ``with_overrides`` takes the
dotted keys the CLI accepts (``task2.mu=1.0``). The configuration is written into every run directory.

Each field's meaning lives once, in its ``metadata["doc"]`` here; ``omasgan config --describe`` and the
documentation's configuration reference (docs/configuration.md) are generated from it by :func:`describe`.
Measured results behind the presets are in benchmarks/results/README.md, not here.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from omasgan.errors import InvalidInputError

__all__ = [
    "PAPER_B",
    "PAPER_J",
    "PRESETS",
    "TUNED_IMAGE",
    "DetectorConfig",
    "OMASGANConfig",
    "Task1Config",
    "Task2Config",
    "Task3Config",
    "describe",
    "resolve_config",
    "resolve_seed",
    "table_sizes",
]


def _doc(default: Any, doc: str) -> Any:
    """A dataclass field with its documentation (the one place a field's meaning is written)."""
    if isinstance(default, dict):
        return field(default_factory=lambda: dict(default), metadata={"doc": doc})
    return field(default=default, metadata={"doc": doc})


def _section(factory: type, doc: str) -> Any:
    return field(default_factory=factory, metadata={"doc": doc})


@dataclass(frozen=True)
class Task1Config:
    """Task 1: the base GAN (G, D) under the run's divergence."""

    steps: int = _doc(4000, "Generator updates.")
    n_critic: int = _doc(1, "Critic updates per generator update.")
    batch_size: int = _doc(256, "Real and generated samples per update.")
    lr_generator: float = _doc(2e-4, "Adam learning rate of G (betas 0.5, 0.999, as in DCGAN).")
    lr_critic: float = _doc(2e-4, "Adam learning rate of D.")


@dataclass(frozen=True)
class Task2Config:
    """Task 2: the boundary generator B (DESIGN §2): L_B = -m(B, G) + mu mean_i d_i + nu mean_i s_i."""

    steps: int = _doc(600, "B updates.")
    n_critic: int = _doc(1, "Updates of B's critic D_B (a copy of D) per B update.")
    batch_size: int = _doc(256, "N: boundary samples B(z) per update (the paper: 256 for images, 100 for 2-D).")
    pool_size: int = _doc(
        1024,
        "Q: reference points the nearness term d_i = min_j ||b_i - r_j|| searches (paper: 1024 images, 4096 for 2-D).",
    )
    mu: float = _doc(
        0.2, "Weight of the nearness term mean_i d_i, which holds B near the data (paper: 0.2 images, 8 for 2-D)."
    )
    nu: float = _doc(
        0.3,
        "Weight of the scattering term mean_i s_i, s_i = mean_{j != i} ||z_i - z_j|| / (||b_i - b_j|| + eps), "
        "which spreads B's samples (paper: 0.3 images, 20 for 2-D).",
    )
    reference: str = _doc(
        "generator", "The reference pool r_j: 'generator' = fresh G samples (the paper), 'data' = training samples."
    )
    eps: float = _doc(1e-8, "Added to ||b_i - b_j|| in the scattering ratio.")
    lr_boundary: float = _doc(2e-4, "Adam learning rate of B (or of its latent shift h).")
    lr_critic: float = _doc(2e-4, "Adam learning rate of D_B.")
    boundary_space: str = _doc(
        "weights",
        "What B is: 'weights' = a trained copy of G (the paper); 'latent' = G(z + h(z)) with G frozen and a small "
        "MLP h starting at 0; 'latent_shell' = the same with z + h(z) rescaled to |z|, so B's latents stay on the "
        "Gaussian shell G was trained on.",
    )
    nearness_space: str = _doc(
        "pixels",
        "Where d_i is measured: 'pixels' = L2 between flattened samples (the paper); 'features' = L2 between the "
        "frozen Task-1 critic's unit-normalised features.",
    )
    target_ratio: float = _doc(
        0.0, "> 0: mu adapts so that B's mean nearness is target_ratio x G's (a scale-free nearness); 0: fixed mu."
    )
    mu_rate: float = _doc(0.05, "Step of the adaptive log(mu) per B update (with target_ratio > 0).")
    repulsion: float = _doc(
        0.0,
        "Weight of an RBF repulsion between B's samples in the nearness space (bandwidth: median distance); 0: off.",
    )
    match_statistics: float = _doc(
        0.0,
        "Weight of matching the batch mean and SD of per-sample intensity and contrast to the reference's; 0: off.",
    )
    push_limit: float = _doc(
        0.0,
        "> 0: the push stops for samples D_B already puts below -push_limit (1 = klwgan's hinge margin); "
        "0: unbounded, as in the paper.",
    )


@dataclass(frozen=True)
class Task3Config:
    """Task 3: G' retrained against a critic C told that B's samples are negatives (eq. 5)."""

    steps: int = _doc(1000, "G' updates.")
    n_critic: int = _doc(1, "Updates of C per G' update.")
    batch_size: int = _doc(256, "Samples of each of x, G(z), G'(z) and B(z) per update.")
    alpha: float = _doc(0.3, "Weight of real data x on C's positive side (alpha + delta = 0.7 in the paper).")
    delta: float = _doc(0.4, "Weight of G's samples on C's positive side.")
    beta: float = _doc(1.0, "Weight of G''s samples on C's negative side.")
    gamma: float = _doc(0.7, "Weight of B's samples on C's negative side.")
    critic_init: str = _doc("copy", "C's start: 'copy' of the Task-1 critic D, or a 'fresh' critic.")
    lr_generator: float = _doc(2e-4, "Adam learning rate of G'.")
    lr_critic: float = _doc(2e-4, "Adam learning rate of C.")


@dataclass(frozen=True)
class DetectorConfig:
    """Task 3-J: the detector J (eq. 6); B's samples are anomalies, data and G' samples normal."""

    steps: int = _doc(1000, "J updates.")
    batch_size: int = _doc(256, "Samples of each of B(z), x and G'(z) per update.")
    zeta: float = _doc(0.5, "Weight of real data among J's normal samples (1 - zeta for G''s samples), in [0, 1].")
    lr: float = _doc(2e-4, "Adam learning rate of J.")
    input_norm: str = _doc(
        "none", "'per_sample': J sees each sample standardised to mean 0, SD 1 (no intensity/contrast shortcut)."
    )
    input_space: str = _doc(
        "pixels",
        "'pixels': J is a network on the samples (the paper); 'critic_features': J is a head on the frozen Task-1 "
        "critic's unit-normalised features; 'tuned_features': a copy of that critic is first fine-tuned by eq. 6 "
        "(a linear logit on its features, tuning_steps updates), then J is a neighbour head on its features.",
    )
    head: str = _doc(
        "mlp",
        "'mlp' (with 'pixels': the network on the samples, the paper's J); 'prototypes' = distance to the nearest "
        "of head_size learnt prototypes; 'neighbours' = distance to the nearest stored training samples in a "
        "learnt diagonal metric (on the critic's features, or on the samples themselves with 'pixels').",
    )
    head_size: int = _doc(256, "Hidden units of the MLP head, prototypes, or most training samples stored.")
    feature_rank: int = _doc(128, "'neighbours': principal components of the critic's features kept.")
    local_k: int = _doc(
        0,
        "'neighbours': 0 scores the distance to the nearest stored sample; K > 0 the mean distance to the K "
        "nearest relative to their own mean distance to their K nearest (a simplified local outlier factor).",
    )
    augment: str = _doc(
        "none", "'strokes': real images randomly thickened or thinned, so total ink is no cue for J (images only)."
    )
    negatives: str = _doc(
        "boundary",
        "J's anomalous samples: 'boundary' = B(z) (eq. 6); 'generator' = G(z), B replaced by the generator it "
        "started from, and 'none' = no anomalous term: the no-boundary controls of B's contribution.",
    )
    tuning_steps: int = _doc(
        1000,
        "'tuned_features': the first tuning_steps of J's steps fine-tune the critic copy; the rest train the head.",
    )
    tuning_lr: float = _doc(1e-4, "'tuned_features': Adam learning rate of the critic copy and its linear logit.")
    tuning_anchor: float = _doc(
        0.0,
        "'tuned_features': weight of a feature-preservation term in the tuning, the mean squared distance between "
        "the copy's and the frozen critic's unit features of the real batch; 0 = none. It keeps normal samples' "
        "neighbourhoods while B's samples move the rest of the feature space.",
    )


@dataclass(frozen=True)
class OMASGANConfig:
    """Every hyper-parameter of a run; defaults are the paper's image recipe (``preset("paper", "image")``)."""

    latent_dim: int = _doc(128, "l: the latent z ~ N(0, I_l).")
    divergence: str = _doc("klwgan", "The distribution metric of every adversarial task (`omasgan divergences`).")
    divergence_params: dict[str, Any] = _doc(
        {"temperature": 5.0, "form": "reference"},
        "Keyword parameters of the divergence (klwgan: temperature T and form, see omasgan.divergences.KLWGAN).",
    )
    input_scaling: str = _doc(
        "none",
        "'standard': each column of vector data is scaled by the training rows' mean and SD (constant columns: "
        "scale 1) before any task, and the scaler is kept with the networks, so raw rows are scored; 'none': "
        "the samples as given (images, the paper's 2-D data).",
    )
    width: int = _doc(64, "Hidden units (MLPs) or base channels (convolutional nets) of every network.")
    spectral_norm: bool = _doc(True, "Spectral normalisation on the critics D, D_B and C.")
    seed: int = _doc(
        0,
        "The one seed: initialisation, latents, batch order, everything. The estimator sets it from random_state, "
        "the CLI from --seed.",
    )
    log_every: int = _doc(50, "Steps between logged metrics (and the finiteness check of the losses).")
    checkpoint_every: int = _doc(500, "Steps between in-task checkpoints when the run has a run directory.")
    task1: Task1Config = _section(Task1Config, "Task 1: the base GAN.")
    task2: Task2Config = _section(Task2Config, "Task 2: the boundary generator B.")
    task3: Task3Config = _section(Task3Config, "Task 3: G' and its critic C.")
    detector: DetectorConfig = _section(DetectorConfig, "Task 3-J: the detector J.")

    def __post_init__(self) -> None:
        choices = {
            "input_scaling": (self.input_scaling, ("none", "standard")),
            "task2.reference": (self.task2.reference, ("generator", "data")),
            "task3.critic_init": (self.task3.critic_init, ("copy", "fresh")),
            "task2.boundary_space": (self.task2.boundary_space, ("weights", "latent", "latent_shell")),
            "task2.nearness_space": (self.task2.nearness_space, ("pixels", "features")),
            "detector.input_norm": (self.detector.input_norm, ("none", "per_sample")),
            "detector.input_space": (self.detector.input_space, ("pixels", "critic_features", "tuned_features")),
            "detector.head": (self.detector.head, ("mlp", "prototypes", "neighbours")),
            "detector.augment": (self.detector.augment, ("none", "strokes")),
            "detector.negatives": (self.detector.negatives, ("boundary", "generator", "none")),
        }
        for name, (value, allowed) in choices.items():
            if value not in allowed:
                raise InvalidInputError(f"{name} must be one of {allowed}, got {value!r}.")
        if self.detector.input_space != "pixels" and self.detector.input_norm != "none":
            raise InvalidInputError(
                f"detector.input_norm must be 'none' with detector.input_space={self.detector.input_space!r}: the "
                "critic was trained on the samples as they are."
            )
        if self.detector.input_space == "tuned_features" and (
            self.detector.head != "neighbours" or not 0 < self.detector.tuning_steps < self.detector.steps
        ):
            raise InvalidInputError(
                "detector.input_space='tuned_features' needs detector.head='neighbours' and 0 < detector.tuning_steps "
                f"< detector.steps (the head trains after the tuning), got head {self.detector.head!r}, "
                f"tuning_steps {self.detector.tuning_steps}, steps {self.detector.steps}."
            )
        if not 0 <= self.detector.tuning_anchor < float("inf"):
            raise InvalidInputError(
                f"detector.tuning_anchor must be finite and >= 0, got {self.detector.tuning_anchor}."
            )
        if self.detector.head_size < 1 or self.detector.feature_rank < 1 or self.detector.local_k < 0:
            raise InvalidInputError(
                "detector.head_size and detector.feature_rank must be positive, detector.local_k non-negative."
            )
        if not 0.0 <= self.detector.zeta <= 1.0:
            raise InvalidInputError(f"detector.zeta must be in [0, 1], got {self.detector.zeta}.")

    # -- serialisation ------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> OMASGANConfig:
        nested = {f.name: f.type for f in dataclasses.fields(cls)}
        kwargs = {}
        for key, value in data.items():
            if key not in nested:
                raise InvalidInputError(f"unknown configuration field {key!r}; known: {sorted(nested)}.")
            section = _SECTIONS.get(key)
            kwargs[key] = section(**value) if section is not None else value
        return cls(**kwargs)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> OMASGANConfig:
        return cls.from_dict(json.loads(text))

    def with_overrides(self, overrides: dict[str, Any]) -> OMASGANConfig:
        """A copy with dotted-key overrides applied, e.g. ``{"task2.mu": 1.0, "seed": 3}``."""
        data = self.to_dict()
        for dotted, value in overrides.items():
            target = data
            *path, leaf = dotted.split(".")
            for part in path:
                if not isinstance(target.get(part), dict):
                    raise InvalidInputError(f"unknown configuration section {part!r} in {dotted!r}.")
                target = target[part]
            if leaf not in target:
                raise InvalidInputError(f"unknown configuration field {dotted!r}; known here: {sorted(target)}.")
            target[leaf] = value
        return OMASGANConfig.from_dict(data)

    @classmethod
    def preset(cls, name: str, kind: str = "image") -> OMASGANConfig:
        """A named preset (``PRESET_NAMES``) for ``kind`` "image" or "vector" data."""
        key = (name, kind)
        if key not in PRESETS:
            raise InvalidInputError(f"unknown preset {name!r} for {kind} data; presets: {list(PRESET_NAMES)}.")
        return cls.from_dict(PRESETS[key])


_SECTIONS = {"task1": Task1Config, "task2": Task2Config, "task3": Task3Config, "detector": DetectorConfig}

# -- presets -----------------------------------------------------------------------------------------
#
# Two recipes at two scales. The *paper* recipe is the published method: B a trained copy of G with pixel
# nearness, the paper's Task 3 and an MLP J on the samples, KL-WGAN as Song & Ermon wrote it. The *tuned*
# recipe (images only) is the paper's with the B and J options chosen on validation data (TUNED_IMAGE;
# the measurements are in benchmarks/results/README.md). "quick" sizes are for a CPU.

# The tuned image recipe's departures from the paper.
TUNED_IMAGE: dict[str, Any] = {
    "task2.boundary_space": "latent_shell",
    "task2.lr_boundary": 1e-3,
    "task2.nearness_space": "features",
    "task2.target_ratio": 1.5,
    "task2.repulsion": 1.0,
    "task2.match_statistics": 1.0,
    "task2.push_limit": 1.0,
    "detector.input_space": "critic_features",
    "detector.head": "neighbours",
    "detector.head_size": 65536,
    "detector.local_k": 10,
    "detector.lr": 1e-3,
}
# The paper's values of those fields, split into B's (Task 2) and J's halves, for undoing one of the two
# (the ablation benchmarks do). PAPER_B | PAPER_J undoes TUNED_IMAGE.
PAPER_B: dict[str, Any] = {
    "task2.boundary_space": "weights",
    "task2.lr_boundary": 2e-4,
    "task2.nearness_space": "pixels",
    "task2.target_ratio": 0.0,
    "task2.repulsion": 0.0,
    "task2.match_statistics": 0.0,
    "task2.push_limit": 0.0,
}
PAPER_J: dict[str, Any] = {
    "detector.input_space": "pixels",
    "detector.head": "mlp",
    "detector.head_size": 256,
    "detector.local_k": 0,
    "detector.lr": 2e-4,
}

_PAPER_IMAGE = OMASGANConfig()
# 2-D data (the paper's synthetic experiments): Q = 4096, N = 100, mu = 8, nu = 20; small enough for a CPU.
_PAPER_VECTOR = OMASGANConfig(
    latent_dim=2,
    width=128,
    task1=Task1Config(steps=4000, batch_size=256),
    task2=Task2Config(steps=1000, batch_size=100, pool_size=4096, mu=8.0, nu=20.0),
    task3=Task3Config(steps=1500, batch_size=256),
    detector=DetectorConfig(steps=1500, batch_size=256),
)
# The paper's image recipe at CPU size: smaller nets, latents, batches and step counts.
_PAPER_QUICK_IMAGE = OMASGANConfig(
    latent_dim=64,
    width=32,
    log_every=25,
    checkpoint_every=250,
    task1=Task1Config(steps=4000, batch_size=64),
    task2=Task2Config(steps=300, batch_size=64, pool_size=512),
    task3=Task3Config(steps=500, batch_size=64),
    detector=DetectorConfig(steps=500, batch_size=64),
)
# Tables (any (n, d) vector data): the tabular recipe, its sizes derived from n and d by table_sizes().
# Columns are standardised; J is a neighbour head on the scaled rows, a distance to the normal rows in a
# metric trained against B's samples, so its score grows beyond the data however far an anomaly lies (an
# MLP's logit extrapolates arbitrarily there: inverted AUROCs on ADBench, issue 16); B's nearness adapts
# to G's own (target_ratio), a scale-free setting for any d. Chosen on the 12 ADBench tuning tables
# (benchmarks/results/adbench/README.md).
_TABULAR = OMASGANConfig(
    latent_dim=8,
    width=64,
    input_scaling="standard",
    task1=Task1Config(steps=1500, n_critic=2, batch_size=256, lr_generator=3e-4, lr_critic=3e-4),
    task2=Task2Config(
        steps=300, batch_size=128, pool_size=2048, mu=1.0, nu=1.0, lr_boundary=1e-3, lr_critic=1e-3, target_ratio=2.0
    ),
    task3=Task3Config(steps=300, batch_size=256, lr_generator=1e-3, lr_critic=1e-3),
    detector=DetectorConfig(steps=300, batch_size=256, lr=1e-3, head="neighbours", head_size=4096, local_k=0),
)


def table_sizes(n: int, d: int) -> dict[str, Any]:
    """The tabular recipe's sizes for n training rows of d columns (dotted overrides of the preset).

    - latent_dim = clip(d, 8, 32): enough latent directions for G to cover d columns (8: the 2-D demo's).
    - width = clip(2 d rounded up to a power of two, 64, 256).
    - batch sizes min(preset, n); Task 2's N and pool min(preset, n); J stores at most 4096 rows (the
      rest train its metric), so scoring costs O(4096 d) per row at any n.
    - step counts fixed: more rows are sampled in the same number of steps, not trained for longer.
    """
    if n < 2 or d < 1:
        raise InvalidInputError(f"a table needs at least 2 rows and 1 column, got {n} x {d}.")
    width = int(min(256, max(64, 1 << max(0, int(np.ceil(np.log2(2 * d)))))))
    return {
        "latent_dim": int(min(32, max(8, d))),
        "width": width,
        "task1.batch_size": min(_TABULAR.task1.batch_size, n),
        "task2.batch_size": min(_TABULAR.task2.batch_size, n),
        "task3.batch_size": min(_TABULAR.task3.batch_size, n),
        "detector.batch_size": min(_TABULAR.detector.batch_size, n),
    }


PRESET_NAMES: dict[str, str] = {
    "quick": "CPU-sized, tuned recipe (the default): images get TUNED_IMAGE; vectors the tabular recipe, sized "
    "from the data by table_sizes().",
    "tuned": "Paper-sized, tuned recipe: images get TUNED_IMAGE; vectors the tabular recipe as 'quick'.",
    "paper": "The paper's recipe at the paper's sizes (B, Task 3, J and KL-WGAN as published).",
    "paper-quick": "The paper's recipe at CPU size (images); vectors as 'paper' (its 2-D recipe is CPU-sized).",
}
TABULAR_PRESETS = ("quick", "tuned")  # vector presets sized from the data
PRESETS: dict[tuple[str, str], dict[str, Any]] = {
    ("quick", "image"): _PAPER_QUICK_IMAGE.with_overrides(TUNED_IMAGE).to_dict(),
    ("quick", "vector"): _TABULAR.to_dict(),
    ("tuned", "image"): _PAPER_IMAGE.with_overrides(TUNED_IMAGE).to_dict(),
    ("tuned", "vector"): _TABULAR.to_dict(),
    ("paper", "image"): _PAPER_IMAGE.to_dict(),
    ("paper", "vector"): _PAPER_VECTOR.to_dict(),
    ("paper-quick", "image"): _PAPER_QUICK_IMAGE.to_dict(),
    ("paper-quick", "vector"): _PAPER_VECTOR.to_dict(),
}


# -- the one way from user input to a configuration ----------------------------------------------------


def resolve_seed(random_state: Any) -> int:
    """The run's seed from a scikit-learn ``random_state``: an int is the seed itself; None or a
    ``numpy.random.RandomState`` draws one (so it is recorded in the configuration and reproducible)."""
    if isinstance(random_state, (int, np.integer)) and not isinstance(random_state, bool):
        if not 0 <= int(random_state) < 2**32:
            raise InvalidInputError(f"random_state must be in [0, 2**32), got {random_state}.")
        return int(random_state)
    from sklearn.utils import check_random_state

    return int(check_random_state(random_state).randint(np.iinfo(np.int32).max))


def resolve_config(
    preset: str,
    kind: str,
    config: OMASGANConfig | dict[str, Any] | None,
    *,
    seed: int,
    divergence: str | None = None,
    divergence_params: dict[str, Any] | None = None,
    data_shape: tuple[int, ...] | None = None,
) -> OMASGANConfig:
    """The configuration of a fit: ``preset`` for ``kind`` data with the user's dotted overrides ``config``
    (or ``config`` itself when it is an :class:`OMASGANConfig`), the seed, and the divergence if given.

    ``data_shape`` (n, d) sizes the tabular recipe (the "quick" and "tuned" vector presets) by
    :func:`table_sizes`; the user's overrides win over those sizes.

    A setting given twice (``divergence=`` and ``config={"divergence": ...}``; a ``"seed"`` override
    beside ``random_state``) is refused rather than resolved by precedence.
    """
    if isinstance(config, OMASGANConfig):
        base, overrides = config, {}
    else:
        base, overrides = OMASGANConfig.preset(preset, kind), dict(config or {})
        if kind == "vector" and preset in TABULAR_PRESETS and data_shape is not None:
            base = base.with_overrides(table_sizes(data_shape[0], int(np.prod(data_shape[1:]))))
    if "seed" in overrides:
        raise InvalidInputError("set the seed with random_state (CLI: --seed), not config['seed'].")
    for name, value in (("divergence", divergence), ("divergence_params", divergence_params)):
        if value is None:
            continue
        if name in overrides:
            raise InvalidInputError(f"{name} is given both as a parameter and in config; give it once.")
        overrides[name] = dict(value) if name == "divergence_params" else value
    if divergence is not None and divergence != base.divergence and divergence_params is None:
        overrides.setdefault("divergence_params", {})  # another divergence: its own defaults
    overrides["seed"] = seed
    return base.with_overrides(overrides)


# -- documentation generated from the fields ----------------------------------------------------------


def _rows() -> list[tuple[str, dataclasses.Field, Any]]:
    """(dotted name, field, default) for every leaf field, in declaration order."""
    rows = []
    default = OMASGANConfig()
    for top in dataclasses.fields(OMASGANConfig):
        section = _SECTIONS.get(top.name)
        if section is None:
            rows.append((top.name, top, getattr(default, top.name)))
            continue
        for leaf in dataclasses.fields(section):
            rows.append((f"{top.name}.{leaf.name}", leaf, getattr(getattr(default, top.name), leaf.name)))
    return rows


def _value(data: dict[str, Any], dotted: str) -> Any:
    for part in dotted.split("."):
        data = data[part]
    return data


def _fmt(value: Any) -> str:
    return json.dumps(value) if isinstance(value, (dict, str, bool)) else repr(value)


def describe(markdown: bool = False) -> str:
    """Every configuration field with its meaning, default and each preset's value (image / vector).

    ``markdown=True`` gives the tables of docs/configuration.md; otherwise plain text for a terminal.
    """
    names = list(PRESET_NAMES)

    def preset_value(name: str, dotted: str) -> str:
        image, vector = (_value(PRESETS[(name, kind)], dotted) for kind in ("image", "vector"))
        return _fmt(image) if image == vector else f"{_fmt(image)} / {_fmt(vector)}"

    lines: list[str] = []
    if markdown:
        lines += [
            "# Configuration reference",
            "",
            "Generated by `omasgan config --describe --markdown` from the field documentation in "
            "`omasgan/config.py`; a test fails when this file is out of date.",
            "",
            "Presets (`OMASGANDetector(preset=...)`, `--preset`):",
            "",
            *[f"- `{name}`: {text}" for name, text in PRESET_NAMES.items()],
            "",
            "A cell `a / b` gives the preset's value for images / for vectors.",
            "",
        ]
    section = None
    for dotted, fld, default in _rows():
        head = dotted.split(".")[0] if "." in dotted else ""
        if head != section:
            section = head
            title = _SECTIONS[head].__doc__.strip() if head else "Run-wide settings."
            if markdown:
                header = "| field | meaning | default | " + " | ".join(f"`{n}`" for n in names) + " |"
                gap = [""] if lines[-1] else []
                lines += [*gap, f"## `{head or 'top level'}`", "", title, "", header, "|---" * (len(names) + 3) + "|"]
            else:
                lines += ["", f"[{head or 'top level'}] {title}"]
        doc = fld.metadata["doc"]
        values = [preset_value(n, dotted) for n in names]
        if markdown:
            cells = [f"`{dotted}`", doc.replace("|", "\\|"), f"`{_fmt(default)}`", *[f"`{v}`" for v in values]]
            lines.append("| " + " | ".join(cells) + " |")
        else:
            lines.append(f"  {dotted} = {_fmt(default)}")
            lines.append(f"      {doc}")
            pairs = zip(names, values, strict=True)
            lines.append("      presets (image / vector): " + "; ".join(f"{n} {v}" for n, v in pairs))
    return "\n".join(lines).strip("\n") + "\n"
