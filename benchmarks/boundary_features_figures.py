"""Figures for benchmarks/boundary_features (issue 17): per-class AUROC bars of a variant, its no-boundary
control and kNN-5; G and B on the same latents for two classes; score histograms of the weakest class.

Reads the recorded runs and the cached run directories; trains nothing. From the repository root::

    OMASGAN_DATA=... python -m benchmarks.boundary_features_figures --dataset mnist --variant neighbours
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from benchmarks.boundary_features import FEATURE_BASELINES, PIXEL_BASELINES, _baselines
from omasgan.data.protocols import make_split
from omasgan.models import OMASGANModels
from omasgan.plots import _pyplot, sample_grid, score_histograms

REPO_ROOT = Path(__file__).resolve().parent.parent
BASELINE_LABELS = {"knn5": "kNN-5 (pixels)", "lof": "LOF (pixels)", "feature_knn1": "kNN-1 (D's features)",
                   "feature_lof": "LOF (D's features)"}


def _records(out: Path) -> dict[tuple[str, int, str], dict]:
    found = {}
    for path in (out / "runs").glob("*_seed*_*.json"):
        record = json.loads(path.read_text())
        found[(record["split"], record["seed"], record["variant"])] = record
    return found


def _class_of(split_name: str) -> int:
    return int(split_name.rsplit("-", 1)[1])


def _feature_baselines(out: Path, split: str, seed: int) -> dict:
    path = out / "feature_baselines" / f"{split}_seed{seed}.json"
    return json.loads(path.read_text()) if path.exists() else {}


def auroc_bars(
    out: Path, variant: str, control: str, seeds: list[int], score: str = "detector", compare: tuple[str, ...] = ()
) -> Path:
    """Test AUROC per class: the variant's and its control's ``score``, the ``compare`` variants' J and the
    recorded baselines, side by side; with several seeds, each bar is the mean over them and its whisker the
    SD (classes every seed ran)."""
    records = _records(out)
    splits = sorted(
        set.intersection(*({s for (s, r, v) in records if r == seed and v == variant} for seed in seeds)),
        key=_class_of,
    )

    def auroc(split: str, seed: int, name: str) -> float:
        record = records.get((split, seed, name))
        if record is not None:
            return record["scores"][score if name in (variant, control) else "detector"]["auroc"]
        # (_baselines merges the feature baselines' mean over seeds into the pixel ones: read each seed's own.)
        found = (_feature_baselines(out, split, seed) if name in FEATURE_BASELINES else pixel.get(split, {})).get(name)
        return found["auroc"] if found else np.nan

    pixel, _ = _baselines(out)
    names = [variant, control, *compare, *PIXEL_BASELINES, *FEATURE_BASELINES]
    # (name, class, seed) -> AUROC; a baseline is drawn where every class and seed has it.
    values = {name: np.array([[auroc(s, seed, name) for seed in seeds] for s in splits]) for name in names}
    rows = {name: v for name, v in values.items() if name in (variant, control) or not np.isnan(v).any()}
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(1.0 + 0.25 * len(rows) * len(splits), 3.4))
    positions = np.arange(len(splits))
    width = 0.8 / len(rows)
    for i, (name, v) in enumerate(rows.items()):
        offset = (i - (len(rows) - 1) / 2) * width
        scored = name in (variant, control) and score != "detector"
        label = BASELINE_LABELS.get(name, f"{name} · {score}" if scored else name)
        spread = v.std(1) if len(seeds) > 1 else None
        ax.bar(positions + offset, np.nanmean(v, 1), width, yerr=spread, error_kw=dict(lw=0.6, capsize=1),
               label=f"{label} ({np.nanmean(v):.3f})")
    ax.set_xticks(positions, [str(_class_of(s)) for s in splits])
    ax.set_xlabel("left-out class")
    ax.set_ylabel("test AUROC" + (f" (mean ± SD, seeds {', '.join(map(str, seeds))})" if len(seeds) > 1 else ""))
    ax.set_ylim(0.3, 1.0)
    ax.axhline(0.5, color="grey", lw=0.5)
    # Beside the axes, not over them: the legend used to hide the last class's bars.
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    scored = variant if score == "detector" else f"{variant}_{score}"
    path = out / f"auroc_bars_{scored}_{_seeds_label(seeds)}.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _seeds_label(seeds: list[int]) -> str:
    return f"seed{seeds[0]}" if len(seeds) == 1 else "seeds" + "-".join(map(str, seeds))


def boundary_pairs(cache: Path, out: Path, dataset: str, classes: list[int], seed: int) -> Path:
    """G(z) above B(z) on the same latents z (column by column), for each class's Task-1 and Task-2
    networks: what Task 2 made of each generated sample."""
    rows = {}
    for target in classes:
        models, _ = OMASGANModels.load_run(cache / f"{dataset}-loo-{target}_seed{seed}" / "base")
        for label, key in (("G", "generator"), ("B", "boundary")):
            samples = models.sample(key, 10, torch.Generator().manual_seed(seed))
            rows[f"class {target} left out: {label}(z)"] = samples.cpu().numpy()
    return sample_grid(rows, out / f"boundary_pairs_seed{seed}.png", n=10)


def weakest_histogram(cache: Path, out: Path, dataset: str, variant: str, control: str, seed: int) -> Path:
    """J's test scores of normals and anomalies for the class where the variant is weakest, beside its
    control's."""
    records = _records(out)
    mine = {s: r["scores"]["detector"]["auroc"] for (s, r_seed, v), r in records.items()
            if r_seed == seed and v == variant}
    weakest = min(mine, key=mine.get)
    split = make_split(dataset, "loo", _class_of(weakest))
    scores = {}
    for name in (variant, control):
        if (weakest, seed, name) not in records:
            continue
        models, _ = OMASGANModels.load_run(cache / f"{weakest}_seed{seed}" / name)
        auroc = records[(weakest, seed, name)]["scores"]["detector"]["auroc"]
        values = models.eval().scores(torch.from_numpy(split.test), which=("detector",))["detector"].numpy()
        scores[f"{weakest}, {name}: J's test AUROC {auroc:.3f}"] = values
    return score_histograms(scores, split.test_labels, out / f"histogram_weakest_{variant}_seed{seed}.png",
                            bins=60, clip=0.5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="mnist", choices=["mnist", "fashion-mnist"])
    parser.add_argument("--variant", default="neighbours")
    parser.add_argument("--control", help="default: <variant>_generator")
    parser.add_argument("--pair-classes", default="1,9", help="classes whose G/B pairs are drawn")
    parser.add_argument("--seed", type=int, default=0, help="the run whose pairs and histogram are drawn")
    parser.add_argument("--bar-seeds", help="seeds averaged in the AUROC bars, e.g. 0,1,2 (default: --seed)")
    parser.add_argument("--score", default="detector", help="the variant's score in the bars, e.g. pixels_fused")
    parser.add_argument("--compare", default="", help="more variants whose J the bars show, e.g. neighbours")
    parser.add_argument("--figures", default="bars,pairs,histogram",
                        help="which to draw (pairs and histogram read --seed's cached run directories)")
    parser.add_argument("--cache", default=str(REPO_ROOT / "runs" / "boundary_features"))
    parser.add_argument("--out", help="default: benchmarks/results/boundary_features/<dataset>_loo")
    args = parser.parse_args()
    out = Path(args.out or REPO_ROOT / "benchmarks" / "results" / "boundary_features" / f"{args.dataset}_loo")
    control = args.control or f"{args.variant}_generator"
    cache = Path(args.cache)
    classes = [int(c) for c in args.pair_classes.split(",")]
    bar_seeds = [int(v) for v in (args.bar_seeds or str(args.seed)).split(",")]
    figures = {
        "bars": lambda: auroc_bars(
            out, args.variant, control, bar_seeds, args.score, tuple(filter(None, args.compare.split(",")))
        ),
        "pairs": lambda: boundary_pairs(cache, out, args.dataset, classes, args.seed),
        "histogram": lambda: weakest_histogram(cache, out, args.dataset, args.variant, control, args.seed),
    }
    chosen = args.figures.split(",")
    unknown = sorted(set(chosen) - set(figures))
    if unknown:
        parser.error(f"unknown figure(s) {', '.join(unknown)}; choose from {', '.join(figures)}")
    for name in chosen:
        print(f"wrote {figures[name]()}")


if __name__ == "__main__":
    main()
