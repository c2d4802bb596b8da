"""Where do B's samples lie? Distances in the Task-1 critic's features, from the cached base runs of
benchmarks/boundary_features (issue 17).

J is trained to tell the data from B's samples. That can only help a detector if the unseen class lies where
B's samples are, or beyond them in a direction no distance score already covers. This measures it in D's
unit-normalised features (the space of the default J): each sample's distance to its nearest training image,
for the normal and anomalous test images, G's samples and B's samples on the same latents; the fraction of
each set farther out than 95% of the held-out normals; and proximity scores (minus the distance to the
nearest B sample, or G sample: AUROC above 0.5 means the unseen class lies nearer those samples than the
normals do). G's samples are the no-boundary control. Trains nothing: a class whose base run is not cached is
skipped. From the repository root::

    OMASGAN_DATA=... python -m benchmarks.boundary_proximity --dataset mnist --classes 0-9 --seeds 2
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from benchmarks.ablation_boundary import _fmt, _parse_classes
from benchmarks.ablation_detector import _completed
from benchmarks.boundary_features import BASES, REPO_ROOT, image_loo_parser
from omasgan import ops
from omasgan.checkpoint import atomic_write_text
from omasgan.data.protocols import make_split
from omasgan.evaluation.runner import split_metrics
from omasgan.models import OMASGANModels
from omasgan.plots import group_histograms
from omasgan.scoring import critic_features

SAMPLES = 5000  # of G and of B, on the same latents
SOURCES = {"G": "generator", "B": "boundary"}
OUTSIDE = 95  # percentile of the held-out normals' distance to the training images


def _nearest(queries: torch.Tensor, bank: torch.Tensor) -> np.ndarray:
    return ops.min_distance(queries, bank)[0].double().numpy()


def distances(models: OMASGANModels, split, seed: int) -> dict[str, dict[str, np.ndarray]]:
    """{query set or "G"/"B": {"train"/"G"/"B": distance of each sample to its nearest sample of that set}}
    in D's features; G's and B's samples share their latents (seeded by ``seed``)."""
    models = models.eval()
    features = {"train": critic_features(models, split.train)}
    with torch.no_grad():
        for label, key in SOURCES.items():
            features[label] = critic_features(models, models.sample(key, SAMPLES, torch.Generator().manual_seed(seed)))
    queries = {key: critic_features(models, x) for key, x in split.query_sets().items()}
    found = {key: {bank: _nearest(q, features[bank]) for bank in features} for key, q in queries.items()}
    for label in SOURCES:
        found[label] = {"train": _nearest(features[label], features["train"])}
    return found


def proximity_metrics(found: dict[str, dict[str, np.ndarray]], split) -> dict:
    """The record of one class and seed: medians and outside fractions of the distance to the training
    images, and split_metrics of each proximity score."""
    to_train = _to_train(found, split)
    threshold = float(np.percentile(found["validation"]["train"], OUTSIDE))
    record = {
        "median_distance_to_train": {k: float(np.median(v)) for k, v in to_train.items()},
        "outside_normals": {k: float(np.mean(v > threshold)) for k, v in to_train.items()},
        "scores": {},
    }
    for name, bank, sign in (("kNN-1 in D (distance to train)", "train", 1), *(
            (f"nearness to {label}", label, -1) for label in SOURCES)):
        record["scores"][name] = split_metrics({key: sign * found[key][bank] for key in split.query_sets()}, split)
    return record


def _to_train(found: dict[str, dict[str, np.ndarray]], split) -> dict[str, np.ndarray]:
    """{set: each sample's distance to its nearest training image}: the test images by label, G's, B's."""
    labels = split.test_labels
    return {
        "normal test": found["test"]["train"][labels == 0],
        "anomalous test": found["test"]["train"][labels == 1],
        **{f"{label}(z)": found[label]["train"] for label in SOURCES},
    }


def figure(panels: dict[str, dict[str, np.ndarray]], path: Path) -> Path:
    """One panel per class: the distance histograms of the normal and anomalous test images, G's and B's."""
    return group_histograms(panels, path, bins=60, clip=0.5,
                            xlabel="distance to the nearest training image, D's features")


def run(dataset: str, classes: list[int], seeds: list[int], cache: Path, out: Path, figures: set[int],
        base: str = "base") -> None:
    (out / "runs").mkdir(parents=True, exist_ok=True)
    panels: dict[int, dict[str, dict[str, np.ndarray]]] = {}
    for target in classes:
        split = make_split(dataset, "loo", target)
        for seed in seeds:
            path = out / "runs" / f"{split.name}_seed{seed}.json"
            base_dir = cache / f"{split.name}_seed{seed}" / base
            if (path.exists() and target not in figures) or not _completed(base_dir):
                continue
            models, _ = OMASGANModels.load_run(base_dir)
            found = distances(models, split, seed)
            record = {"split": split.name, "seed": seed, **proximity_metrics(found, split)}
            atomic_write_text(path, json.dumps(record, indent=1))
            if target in figures:
                panels.setdefault(seed, {})[f"class {target} left out"] = _to_train(found, split)
            scores = ", ".join(f"{k} {v['auroc']:.3f}" for k, v in record["scores"].items())
            print(f"{split.name} seed {seed}: outside {record['outside_normals']}; {scores}", flush=True)
    for seed, by_class in panels.items():
        figure(by_class, out / f"distances_seed{seed}.png")
    (out / "results.md").write_text(table(out))


def table(out: Path) -> str:
    records = [json.loads(p.read_text()) for p in sorted((out / "runs").glob("*_seed*.json"))]
    if not records:
        return "No runs recorded.\n"
    groups = list(records[0]["median_distance_to_train"])
    seeds = ", ".join(str(s) for s in sorted({r["seed"] for r in records}))
    lines = [
        f"D's unit-normalised features of each class's base run; {SAMPLES} samples of G and of B on the same "
        f"latents. Mean ± SD over {len(records)} class-seed runs "
        f"(seeds {seeds}).",
        "",
        f"| set | median distance to the nearest training image | fraction beyond the {OUTSIDE}th percentile of "
        "the held-out normals |",
        "|---|---|---|",
    ]
    for group in groups:
        lines.append(f"| {group} | {_fmt([r['median_distance_to_train'][group] for r in records])} | "
                     f"{_fmt([r['outside_normals'][group] for r in records])} |")
    lines += ["", "| score (higher = anomalous) | validation AUROC | test AUROC |", "|---|---|---|"]
    for name in records[0]["scores"]:
        lines.append(f"| {name} | {_fmt([r['scores'][name]['validation_auroc'] for r in records])} | "
                     f"{_fmt([r['scores'][name]['auroc'] for r in records])} |")
    lines += ["", "Per class and seed (test AUROC; fraction of B(z) beyond the normals):", "",
              "| run | " + " | ".join(records[0]["scores"]) + " | B(z) beyond | anomalies beyond |",
              "|" + "---|" * (len(records[0]["scores"]) + 3)]
    for r in records:
        cells = [f"{m['auroc']:.3f}" for m in r["scores"].values()]
        cells += [f"{r['outside_normals']['B(z)']:.2f}", f"{r['outside_normals']['anomalous test']:.2f}"]
        lines.append(f"| {r['split']} seed {r['seed']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = image_loo_parser(__doc__, "boundary_proximity", seeds="2", folder="<dataset>_loo[_<base>]")
    parser.add_argument("--figure-classes", default="", help="classes whose distance histograms are drawn")
    parser.add_argument("--base", default="base", choices=list(BASES), help="whose Tasks 1-3 (boundary_features)")
    args = parser.parse_args()
    folder = f"{args.dataset}_loo" + ("" if args.base == "base" else f"_{args.base}")
    out = Path(args.out or REPO_ROOT / "benchmarks" / "results" / "boundary_proximity" / folder)
    if args.table_only:
        (out / "results.md").write_text(table(out))
        return
    figures = set(_parse_classes(args.figure_classes)) if args.figure_classes else set()
    run(args.dataset, _parse_classes(args.classes), [int(s) for s in args.seeds.split(",")], Path(args.cache), out,
        figures, args.base)


if __name__ == "__main__":
    main()
