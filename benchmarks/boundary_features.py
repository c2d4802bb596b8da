"""Does B shape the image detector? J variants in which B's samples reach the features, each with its
no-boundary control (issue 17), on MNIST or Fashion-MNIST leave-one-out.

Tasks 1-3 are the quick image preset's, trained once per class and seed (the ``base`` run under
``--cache``; its J is a 1-step placeholder). Every variant reuses them and trains J alone, so a variant and
its control differ in J's anomalous samples only: B(z), G(z) in B's place (``_generator``), or none
(``_none``). Selection uses the validation AUROC (held-out normals vs the left-out class's *train*
images); the test split only reports. Resumable: finished runs are skipped. From the repository root::

    OMASGAN_DATA=... python -m benchmarks.boundary_features --dataset mnist --classes 0-9 --seeds 0
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from benchmarks.ablation_boundary import _fmt, _parse_classes
from benchmarks.ablation_detector import _completed, _detector, _reuse_tasks
from omasgan.checkpoint import atomic_write_text
from omasgan.config import PAPER_J
from omasgan.data.protocols import make_split
from omasgan.evaluation.runner import baseline_metrics, feature_baseline_metrics, score_metrics
from omasgan.scoring import fuse_scores

REPO_ROOT = Path(__file__).resolve().parent.parent
BASE = {"detector.steps": 1}  # the quick preset's Tasks 1-3; J is trained by each variant
TUNED = {"detector.input_space": "tuned_features", "detector.steps": 1500, "detector.tuning_steps": 1000}
PIXELS = {**PAPER_J, "detector.augment": "strokes"}
# B placed nearer the data. NEAR: B's mean nearness to G's samples equal to G's own (the preset: 1.5x).
# AT_DATA: nearness measured to the training images instead, at G's own nearness to them.
NEAR = {"task2.target_ratio": 1.0}
AT_DATA = {"task2.reference": "data", "task2.target_ratio": 1.0}
VARIANTS: dict[str, dict] = {
    # The quick preset's J: a neighbour head on the frozen Task-1 critic's features (B reaches its metric only).
    "neighbours": {},
    "neighbours_generator": {"detector.negatives": "generator"},
    "neighbours_none": {"detector.negatives": "none"},
    # J's critic copy fine-tuned by eq. 6 against B, then the neighbour head on its features.
    "tuned": TUNED,
    "tuned_generator": {**TUNED, "detector.negatives": "generator"},
    "tuned_none": {**TUNED, "detector.negatives": "none"},
    # The same with the normal samples' tuned features held near D's (detector.tuning_anchor), three weights.
    "anchored1": {**TUNED, "detector.tuning_anchor": 1.0},
    "anchored1_generator": {**TUNED, "detector.tuning_anchor": 1.0, "detector.negatives": "generator"},
    "anchored10": {**TUNED, "detector.tuning_anchor": 10.0},
    "anchored10_generator": {**TUNED, "detector.tuning_anchor": 10.0, "detector.negatives": "generator"},
    "anchored100": {**TUNED, "detector.tuning_anchor": 100.0},
    "anchored100_generator": {**TUNED, "detector.tuning_anchor": 100.0, "detector.negatives": "generator"},
    "anchored100_none": {**TUNED, "detector.tuning_anchor": 100.0, "detector.negatives": "none"},
    # A convolutional J on the pixels (the paper's J) trained with the stroke augmentation; its score is also
    # fused with the neighbour head's J trained against the same negatives (FUSED_WITH, score `pixels_fused`).
    "pixels": PIXELS,
    "pixels_generator": {**PIXELS, "detector.negatives": "generator"},
    "pixels_none": {**PIXELS, "detector.negatives": "none"},
    # Its options, chosen on validation AUROC: 4x the updates; each sample standardised (no intensity cue).
    "pixels_long": {**PIXELS, "detector.steps": 2000},
    "pixels_long_generator": {**PIXELS, "detector.steps": 2000, "detector.negatives": "generator"},
    "pixels_long_none": {**PIXELS, "detector.steps": 2000, "detector.negatives": "none"},
    "pixels_norm": {**PIXELS, "detector.input_norm": "per_sample"},
    "pixels_norm_generator": {**PIXELS, "detector.input_norm": "per_sample", "detector.negatives": "generator"},
    # B placed nearer the data (Tasks 2-3 retrained on the base's Task 1: BASES), with the default J and the
    # chosen pixel J. B of the quick preset lies beyond ~99% of the normals in D's features, farther out than
    # the unseen classes (benchmarks/boundary_proximity); these ask whether a B at their distance does more.
    "near_neighbours": NEAR,
    "near_neighbours_generator": {**NEAR, "detector.negatives": "generator"},
    "near_pixels_long": {**NEAR, **PIXELS, "detector.steps": 2000},
    "near_pixels_long_generator": {**NEAR, **PIXELS, "detector.steps": 2000, "detector.negatives": "generator"},
    "at_data_neighbours": AT_DATA,
    "at_data_neighbours_generator": {**AT_DATA, "detector.negatives": "generator"},
    "at_data_pixels_long": {**AT_DATA, **PIXELS, "detector.steps": 2000},
    "at_data_pixels_long_generator": {**AT_DATA, **PIXELS, "detector.steps": 2000, "detector.negatives": "generator"},
    "at_data_neighbours_none": {**AT_DATA, "detector.negatives": "none"},
    "at_data_pixels_long_none": {**AT_DATA, **PIXELS, "detector.steps": 2000, "detector.negatives": "none"},
}
# Tasks 2-3 of each base (trained once per class and seed; "base" trains Task 1 too, the others reuse it).
BASES: dict[str, dict] = {"base": {}, "near": NEAR, "at_data": AT_DATA}
# Each pixel J is fused with the neighbour head's J trained against the same negatives, on the same base.
CONTROLS = ("_generator", "_none")
FUSED_WITH = {
    name: name.partition("pixels")[0] + "neighbours" + next((c for c in CONTROLS if name.endswith(c)), "")
    for name in VARIANTS
    if "pixels" in name
}
SCORES = ("detector", "tuned_classifier")
# Weights of the pixel J in its fusion with the neighbour J (1: `pixels_fused`, else `pixels_fused_<w>`).
FUSION_WEIGHTS = (1.0, 0.5, 0.25)
PIXEL_BASELINES = ("knn5", "lof")
FEATURE_BASELINES = ("feature_knn1", "feature_lof")  # in the base run's Task-1 critic features, per seed


def _partner_scores(partner, split) -> dict[str, np.ndarray]:
    """{query set: the fusion partner's J} (FUSED_WITH)."""
    return {key: partner._scores(x, ("detector",))["detector"] for key, x in split.query_sets().items()}


def _scores(detector, split, partner=None) -> dict[str, dict[str, np.ndarray]]:
    """{score name: {query set: values}}: J; for tuned variants the fine-tuned logit and its fusion with J;
    with ``partner`` (a fusion partner's J, from _partner_scores) the partner's J plus each FUSION_WEIGHTS
    multiple of J. Fusions standardise each score on the validation normals."""
    sets = split.query_sets()
    names = SCORES if hasattr(detector.models_.detector, "classifier_logit") else SCORES[:1]
    by_set = {key: detector._scores(x, names) for key, x in sets.items()}
    if len(names) > 1:
        normal = by_set["validation"]
        for values in by_set.values():
            values["tuned_fused"] = fuse_scores({k: values[k] for k in names}, normal)
    if partner is not None:
        normal = {"detector": by_set["validation"]["detector"], "partner": partner["validation"]}
        for key, values in by_set.items():
            standard = fuse_scores({"detector": values["detector"]}, normal)
            standard_partner = fuse_scores({"partner": partner[key]}, normal)
            for weight in FUSION_WEIGHTS:
                name = "pixels_fused" if weight == 1 else f"pixels_fused_{weight:g}"
                values[name] = standard_partner + weight * standard
    return {name: {key: by_set[key][name] for key in sets} for name in by_set["test"]}


def _pixel_baselines(split, path: Path) -> None:
    """kNN-5 and LOF on pixels and the image statistics; LOF is added to a record made without it."""
    record = json.loads(path.read_text()) if path.exists() else {}
    missing = [name for name in PIXEL_BASELINES if name not in record]
    if missing:
        record.update(baseline_metrics(split, names=missing))
        atomic_write_text(path, json.dumps(record, indent=1))


def val_test(metrics: dict[str, dict]) -> str:
    """One progress line: each score's validation and test AUROC."""
    return ", ".join(f"{name} val {m['validation_auroc']:.3f} test {m['auroc']:.3f}" for name, m in metrics.items())


def base_of(variant: str) -> str:
    """The name in BASES of the Tasks 1-3 that ``variant`` trains its J on (its task2/task3 overrides)."""
    tasks = {k: v for k, v in VARIANTS[variant].items() if k.startswith(("task2.", "task3."))}
    return next(name for name, overrides in BASES.items() if overrides == tasks)


def base_run(split, seed: int, cache: Path, name: str = "base") -> Path:
    """The run directory of base ``name``'s Tasks 1-3 for ``split`` and ``seed``, trained if missing (the
    quick preset's; a base other than "base" retrains Tasks 2-3 on the "base" run's Task 1)."""
    base_dir = cache / f"{split.name}_seed{seed}" / name
    if not _completed(base_dir):
        start = time.perf_counter()
        detector = _detector({**BASE, **BASES[name]}, seed, base_dir)
        if name != "base":
            _reuse_tasks(base_run(split, seed, cache), base_dir, detector, tasks=("task1",))
        detector.fit(split.train)
        atomic_write_text(base_dir / "minutes.json", json.dumps((time.perf_counter() - start) / 60))
    return base_dir


def _variant(name: str, split, seed: int, base_dir: Path, cache: Path):
    """The fitted detector of variant ``name``: its J trained on the base run's Tasks 1-3, or reloaded where
    its run directory holds a finished J (a fusion partner is often already trained)."""
    run_dir = cache / f"{split.name}_seed{seed}" / name
    detector = _detector({**BASE, **VARIANTS[name]}, seed, run_dir)
    if not _completed(run_dir, ("detector",)):
        _reuse_tasks(base_dir, run_dir, detector)
    return detector.fit(split.train)


def _score_metrics(name: str, detector, split, seed: int, base_dir: Path, cache: Path, partners: dict) -> dict:
    """{score: metrics} of variant ``name``'s fitted ``detector``; a fusion partner's J is scored once per
    class and seed (``partners`` keeps it)."""
    partner = FUSED_WITH.get(name)
    if partner is not None and partner not in partners:
        partners[partner] = _partner_scores(_variant(partner, split, seed, base_dir, cache), split)
    scores = _scores(detector, split, partners.get(partner))
    return {score: score_metrics(values, split) for score, values in scores.items()}


def rescore(dataset: str, variants: list[str], classes: list[int], seeds: list[int], cache: Path, out: Path) -> None:
    """Score the recorded runs again from their cached run directories (after a score is added); a run whose
    directory is gone is left as recorded."""
    for target in classes:
        split = make_split(dataset, "loo", target)
        for seed in seeds:
            partners: dict[str, dict] = {}
            for name in variants:
                path = out / "runs" / f"{split.name}_seed{seed}_{name}.json"
                dirs = [cache / f"{split.name}_seed{seed}" / n for n in (name, FUSED_WITH.get(name, name))]
                if not path.exists() or not all(_completed(d, ("detector",)) for d in dirs):
                    continue  # rescoring never trains
                base_dir = cache / f"{split.name}_seed{seed}" / base_of(name)
                detector = _variant(name, split, seed, base_dir, cache)
                record = json.loads(path.read_text())
                record["scores"] = _score_metrics(name, detector, split, seed, base_dir, cache, partners)
                atomic_write_text(path, json.dumps(record, indent=1))
                print(f"{split.name} seed {seed} {name} rescored: {val_test(record['scores'])}", flush=True)
    (out / "results.md").write_text(table(out))


def run(dataset: str, variants: list[str], classes: list[int], seeds: list[int], cache: Path, out: Path) -> None:
    (out / "runs").mkdir(parents=True, exist_ok=True)
    for target in classes:
        split = make_split(dataset, "loo", target)
        _pixel_baselines(split, out / "runs" / f"{split.name}_baselines.json")
        for seed in seeds:
            recorded = [out / "runs" / f"{split.name}_seed{seed}_{name}.json" for name in variants]
            path = out / "feature_baselines" / f"{split.name}_seed{seed}.json"
            if path.exists() and all(p.exists() for p in recorded):
                continue  # nothing left to train: the base run (possibly a cleared cache) is not needed
            base_dir = base_run(split, seed, cache)
            if not path.exists():  # the base run is complete: fit() only reloads its networks
                models = _detector(BASE, seed, base_dir).fit(split.train).models_
                path.parent.mkdir(exist_ok=True)
                atomic_write_text(path, json.dumps(feature_baseline_metrics(models, split), indent=1))
            partners: dict[str, dict] = {}
            for name in variants:
                path = out / "runs" / f"{split.name}_seed{seed}_{name}.json"
                if path.exists():
                    continue
                variant_base = base_run(split, seed, cache, base_of(name))
                start = time.perf_counter()
                detector = _variant(name, split, seed, variant_base, cache)
                minutes = (time.perf_counter() - start) / 60
                result = {
                    "split": split.name,
                    "seed": seed,
                    "variant": name,
                    "overrides": VARIANTS[name],
                    "minutes_detector": minutes,
                    "minutes_base": json.loads((variant_base / "minutes.json").read_text()),
                    "scores": _score_metrics(name, detector, split, seed, variant_base, cache, partners),
                }
                atomic_write_text(path, json.dumps(result, indent=1))
                print(f"{split.name} seed {seed} {name}: {val_test(result['scores'])}", flush=True)
    (out / "results.md").write_text(table(out))


def _baselines(out: Path) -> tuple[dict[str, dict], dict[str, list[dict]]]:
    """({split: {baseline: metrics}}, with each feature baseline's test AUROC the mean over the recorded
    seeds, {baseline: metrics of every split and seed}) from the recorded baseline files."""
    per_split = {p.name.split("_")[0]: json.loads(p.read_text()) for p in (out / "runs").glob("*_baselines.json")}
    every: dict[str, list[dict]] = {}
    for record in per_split.values():
        for name, metrics in record.items():
            every.setdefault(name, []).append(metrics)
    seeds: dict[tuple[str, str], list[float]] = {}
    for path in sorted((out / "feature_baselines").glob("*_seed*.json")):
        split = path.stem.rsplit("_seed", 1)[0]
        for name, metrics in json.loads(path.read_text()).items():
            every.setdefault(name, []).append(metrics)
            seeds.setdefault((split, name), []).append(metrics["auroc"])
    for (split, name), values in seeds.items():
        if split in per_split:
            per_split[split][name] = {"auroc": float(np.mean(values))}
    return per_split, every


def table(out: Path) -> str:
    runs = [json.loads(p.read_text()) for p in sorted((out / "runs").glob("*_seed*_*.json"))]
    baselines, every_baseline = _baselines(out)
    lines = [
        "Tasks 1-3: the quick image preset, once per class and seed; the variants differ in J only. Validation "
        "AUROC: held-out normal train images vs the left-out class's train images (chooses); test: the whole "
        "test split (reports). Mean ± SD over the classes (and seeds) run. Baselines: kNN-5 and LOF on pixels "
        "(seed-free); kNN-1 and LOF in the base run's Task-1 critic features (`feature_*`, one per class and seed).",
        "",
        "| variant · score | runs | validation AUROC | test AUROC | ρ(score, ink) | overrides |",
        "|---|---|---|---|---|---|",
    ]
    rows: dict[tuple[str, str], list[dict]] = {}
    for record in runs:
        for score, metrics in record["scores"].items():
            rows.setdefault((record["variant"], score), []).append(
                {**metrics, "split": record["split"], "seed": record["seed"]}
            )
    for (variant, score), values in sorted(rows.items(), key=lambda item: list(VARIANTS).index(item[0][0])):
        lines.append(
            f"| {variant} · {score} | {len(values)} | {_fmt([v['validation_auroc'] for v in values])} | "
            f"{_fmt([v['auroc'] for v in values])} | {_fmt([v['spearman_with_ink'] for v in values])} | "
            f"`{json.dumps(VARIANTS[variant])}` |"
        )
    shown = [n for n in (*PIXEL_BASELINES, *FEATURE_BASELINES, "less_ink", "more_ink") if n in every_baseline]
    for name in shown:
        values = every_baseline[name]
        rho = [m["spearman_with_ink"] for m in values if "spearman_with_ink" in m]
        lines.append(
            f"| baseline: {name} | {len(values)} | {_fmt([m['validation_auroc'] for m in values])} | "
            f"{_fmt([m['auroc'] for m in values])} | {_fmt(rho)} | |"
        )
    if shown:
        best = max(shown, key=lambda n: np.mean([m["auroc"] for m in every_baseline[n]]))
        lines += ["", f"Best baseline by mean test AUROC: {best} "
                  f"({np.mean([m['auroc'] for m in every_baseline[best]]):.3f}; a bar, not a selection)."]
    # Paired differences: each variant minus its control, same class and seed.
    lines += ["", "Paired contribution of B (variant minus control, same class and seed):", "",
              "| variant · score | control | pairs | validation Δ | test Δ |", "|---|---|---|---|---|"]
    for (variant, score), values in rows.items():
        for control in (f"{variant}_generator", f"{variant}_none"):
            paired = {(v["split"], v["seed"]): v for v in rows.get((control, score), [])}
            pairs = [(v, paired[v["split"], v["seed"]]) for v in values if (v["split"], v["seed"]) in paired]
            if pairs:
                lines.append(
                    f"| {variant} · {score} | {control} | {len(pairs)} | "
                    f"{_fmt([a['validation_auroc'] - b['validation_auroc'] for a, b in pairs])} | "
                    f"{_fmt([a['auroc'] - b['auroc'] for a, b in pairs])} |"
                )
    lines += _per_seed_table(out, rows)
    lines += ["", "Test AUROC per class (J's score, fusions and the baselines; mean over the seeds recorded for that "
              "class, which differ between variants: see the runs column and the per-seed table):", ""]
    names = [(n, score) for n in VARIANTS for score in ("detector", "pixels_fused") if (n, score) in rows]
    columns = [n for n in (*PIXEL_BASELINES, *FEATURE_BASELINES) if n in every_baseline]
    headers = [n if score == "detector" else f"{n} · {score}" for n, score in names]
    lines += ["| split | " + " | ".join([*headers, *columns]) + " |", "|" + "---|" * (len(names) + len(columns) + 1)]
    for split in sorted(baselines, key=lambda s: (len(s), s)):
        cells = []
        for key in names:
            found = [v["auroc"] for v in rows[key] if v["split"] == split]
            cells.append(f"{np.mean(found):.3f}" if found else "—")
        cells += [f"{baselines[split][n]['auroc']:.3f}" if n in baselines[split] else "—" for n in columns]
        lines.append(f"| {split} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _per_seed_table(out: Path, rows: dict[tuple[str, str], list[dict]]) -> list[str]:
    """Test AUROC averaged over the classes of each seed, and the mean ± SD of those seed means, for J's
    scores and the per-seed feature baselines that were run on more than one seed."""
    by_seed: dict[str, dict[int, list[float]]] = {}
    for (variant, score), values in rows.items():
        for v in values:
            by_seed.setdefault(f"{variant} · {score}", {}).setdefault(v["seed"], []).append(v["auroc"])
    for path in sorted((out / "feature_baselines").glob("*_seed*.json")):
        seed = int(path.stem.rsplit("_seed", 1)[1])
        for name, metrics in json.loads(path.read_text()).items():
            by_seed.setdefault(f"baseline: {name}", {}).setdefault(seed, []).append(metrics["auroc"])
    shown = {name: seeds for name, seeds in by_seed.items() if len(seeds) > 1}
    if not shown:
        return []
    seeds = sorted({seed for per in shown.values() for seed in per})
    lines = ["", "Test AUROC per seed (mean over that seed's classes; classes in brackets) and over the seeds:", "",
             "| score | " + " | ".join(f"seed {s}" for s in seeds) + " | mean ± SD over seeds |",
             "|" + "---|" * (len(seeds) + 2)]
    for name, per in shown.items():
        cells = [f"{np.mean(per[s]):.3f} ({len(per[s])})" if s in per else "—" for s in seeds]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {_fmt([np.mean(v) for v in per.values()])} |")
    return lines


def image_loo_parser(
    doc: str, results: str, classes: str = "0-9", seeds: str = "0", folder: str = "<dataset>_loo"
) -> argparse.ArgumentParser:
    """The options the issue-17 benchmarks share: --dataset, --classes, --seeds, --cache (this module's run
    directories), --out (default benchmarks/results/<results>/<folder>), --table-only."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="mnist", choices=["mnist", "fashion-mnist"])
    parser.add_argument("--classes", default=classes)
    parser.add_argument("--seeds", default=seeds)
    parser.add_argument("--cache", default=str(REPO_ROOT / "runs" / "boundary_features"))
    parser.add_argument("--out", help=f"default: benchmarks/results/{results}/{folder}")
    parser.add_argument("--table-only", action="store_true", help="rewrite results.md from the recorded runs")
    return parser


def main() -> None:
    parser = image_loo_parser(__doc__, "boundary_features")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument(
        "--rescore", action="store_true", help="score the recorded runs of --variants again from the cache"
    )
    parser.add_argument(
        "--pixel-baselines-only", action="store_true", help="add missing pixel baselines of --classes; train nothing"
    )
    args = parser.parse_args()
    out = Path(args.out or REPO_ROOT / "benchmarks" / "results" / "boundary_features" / f"{args.dataset}_loo")
    if args.pixel_baselines_only:
        (out / "runs").mkdir(parents=True, exist_ok=True)
        for target in _parse_classes(args.classes):
            split = make_split(args.dataset, "loo", target)
            _pixel_baselines(split, out / "runs" / f"{split.name}_baselines.json")
            print(f"{split.name}: pixel baselines recorded", flush=True)
    elif args.rescore:
        rescore(args.dataset, args.variants.split(","), _parse_classes(args.classes),
                [int(s) for s in args.seeds.split(",")], Path(args.cache), out)
    elif not args.table_only:
        run(args.dataset, args.variants.split(","), _parse_classes(args.classes),
            [int(s) for s in args.seeds.split(",")], Path(args.cache), out)
    (out / "results.md").write_text(table(out))
    print((out / "results.md").read_text())


if __name__ == "__main__":
    main()
