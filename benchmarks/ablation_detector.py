"""Ablation of the detector J's options (issue 7) on MNIST leave-one-out, chosen on validation data.

Tasks 1-3 are trained once per digit and seed (the ``--base`` variant of ``ablation_boundary``, in a run
directory under ``--cache``); every J variant then reuses them: its run directory starts with Tasks 1-3
completed (the same checkpoints) and the pipeline trains J alone. So the variants differ in J only, and
each costs seconds instead of minutes.

Selection uses the validation AUROC: held-out normal train images vs the left-out digit's *train* images
(``Split.validation_anomalies``); the test split only reports. Run from the repository root::

    OMASGAN_DATA=... python -m benchmarks.ablation_detector --classes 0-9 --seeds 0
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import numpy as np
from sklearn.utils import check_random_state

from benchmarks.ablation_boundary import VARIANTS as BOUNDARY_VARIANTS
from benchmarks.ablation_boundary import _fmt, _parse_classes
from omasgan.checkpoint import atomic_write_text, checkpoint_paths
from omasgan.config import PAPER_J
from omasgan.data.protocols import make_split
from omasgan.estimator import OMASGANDetector
from omasgan.evaluation.baselines import STATISTICS
from omasgan.evaluation.metrics import spearman
from omasgan.evaluation.runner import baseline_metrics, split_metrics

REPO_ROOT = Path(__file__).resolve().parent.parent
REUSED_TASKS = ("task1", "task2", "task3")

# J's options on top of the base variant's Tasks 1-3. Each starts from the paper's J (PAPER_J), so a
# variant means the same whatever the presets' defaults.
PROTOTYPES = {**PAPER_J, "detector.input_space": "critic_features", "detector.head": "prototypes"}
NEIGHBOURS = {
    **PAPER_J,
    "detector.input_space": "critic_features",
    "detector.head": "neighbours",
    "detector.head_size": 65536,
    "detector.input_norm": "none",
}
DETECTOR_VARIANTS: dict[str, dict] = {
    "pixels": {**PAPER_J, "detector.input_norm": "none"},
    "pixels_standardised": {**PAPER_J, "detector.input_norm": "per_sample"},
    "critic_features": {**PAPER_J, "detector.input_space": "critic_features", "detector.input_norm": "none"},
    "critic_features_data_only": {
        **PAPER_J,
        "detector.input_space": "critic_features",
        "detector.input_norm": "none",
        "detector.zeta": 1.0,
    },
    "critic_prototypes": {**PROTOTYPES, "detector.input_norm": "none"},
    "critic_prototypes_slow": {**PROTOTYPES, "detector.input_norm": "none", "detector.lr": 5e-5},
    "critic_prototypes_strokes": {**PROTOTYPES, "detector.input_norm": "none", "detector.augment": "strokes"},
    # Control: the prototype head as initialised (nearest-prototype distance), J's training switched off
    # (lr 0), to measure what training against B's samples adds.
    "critic_prototypes_untrained": {**PROTOTYPES, "detector.input_norm": "none", "detector.lr": 0.0},
    # Every training sample J does not train on stored (up to 65536), in 128 principal components; J learns
    # the metric, temperature and calibration against B's samples.
    "critic_neighbours": {**NEIGHBOURS, "detector.lr": 1e-3},
    "critic_neighbours_data_only": {**NEIGHBOURS, "detector.lr": 1e-3, "detector.zeta": 1.0},
    "critic_neighbours_untrained": {**NEIGHBOURS, "detector.lr": 0.0},  # control: B unused
    # The same memory, scored relative to the local spacing of the 10 nearest stored samples.
    "critic_neighbours_local": {**NEIGHBOURS, "detector.lr": 1e-3, "detector.local_k": 10},
    "critic_neighbours_local_untrained": {**NEIGHBOURS, "detector.lr": 0.0, "detector.local_k": 10},
}


def _detector(overrides: dict, seed: int, run_dir: Path) -> OMASGANDetector:
    return OMASGANDetector(preset="quick", config=overrides, random_state=seed, run_dir=str(run_dir), verbose=0)


def _reuse_tasks(base_dir: Path, run_dir: Path, detector: OMASGANDetector, tasks=REUSED_TASKS) -> None:
    """Start ``run_dir`` with the base run's ``tasks`` (default Tasks 1-3) completed, under ``detector``'s
    configuration, which may differ from the base's only in the sections of the tasks still to train."""
    shutil.rmtree(run_dir, ignore_errors=True)  # its result was not recorded: train the rest again
    run_dir.mkdir(parents=True)
    for task in tasks:
        for path in checkpoint_paths(base_dir / task):
            shutil.copy2(path, run_dir / path.name)
    record = json.loads((base_dir / "config.json").read_text())
    seed = int(check_random_state(detector.random_state).randint(np.iinfo(np.int32).max))  # as fit() draws it
    config = detector._build_config("image", seed).to_dict()
    retrained = {"detector", *(task for task in REUSED_TASKS if task not in tasks)}
    changed = [key for key, value in config.items() if key not in retrained and value != record["config"][key]]
    if changed:  # only the tasks trained again may change
        raise SystemExit(f"the variant changes {changed}; it cannot reuse the base run's {', '.join(tasks)}")
    record["config"] = config
    atomic_write_text(run_dir / "config.json", json.dumps(record, indent=2, sort_keys=True))
    atomic_write_text(run_dir / "state.json", json.dumps({"completed": list(tasks)}))


def _baselines(split, path: Path) -> None:
    """kNN-5 on pixels and the intensity / contrast statistics, on the same split and query sets."""
    if not path.exists():
        atomic_write_text(path, json.dumps(baseline_metrics(split, names=["knn5"]), indent=1))


def _completed(run_dir: Path, tasks=REUSED_TASKS) -> bool:
    state = run_dir / "state.json"
    return state.exists() and set(tasks) <= set(json.loads(state.read_text())["completed"])


def run(base: str, variants: list[str], classes: list[int], seeds: list[int], cache: Path, out: Path) -> None:
    (out / "runs").mkdir(parents=True, exist_ok=True)
    for target in classes:
        split = make_split("mnist", "loo", target)
        _baselines(split, out / "runs" / f"{split.name}_baselines.json")
        for seed in seeds:
            base_dir = cache / f"{split.name}_seed{seed}" / base
            if not _completed(base_dir):
                start = time.perf_counter()
                _detector(BOUNDARY_VARIANTS[base], seed, base_dir).fit(split.train)
                atomic_write_text(base_dir / "minutes.json", json.dumps((time.perf_counter() - start) / 60))
            minutes_path = base_dir / "minutes.json"  # absent where the base was fitted by an older script
            base_minutes = json.loads(minutes_path.read_text()) if minutes_path.exists() else None
            for name in variants:
                path = out / "runs" / f"{split.name}_seed{seed}_{name}.json"
                if path.exists():
                    continue
                overrides = {**BOUNDARY_VARIANTS[base], **DETECTOR_VARIANTS[name]}
                run_dir = cache / f"{split.name}_seed{seed}" / f"{base}+{name}"  # J-only run on that base
                detector = _detector(overrides, seed, run_dir)
                _reuse_tasks(base_dir, run_dir, detector)
                start = time.perf_counter()
                detector.fit(split.train)
                scores = {name: detector.anomaly_score(x) for name, x in split.query_sets().items()}
                result = {
                    "split": split.name,
                    "seed": seed,
                    "variant": name,
                    "overrides": DETECTOR_VARIANTS[name],
                    "minutes_detector": (time.perf_counter() - start) / 60,
                    "minutes_base": base_minutes,
                    **split_metrics(scores, split),
                    "spearman_with_ink": spearman(scores["test"], STATISTICS["more_ink"](split.test)),
                }
                atomic_write_text(path, json.dumps(result, indent=1))
                print(
                    f"{split.name} seed {seed} {name}: validation {result['validation_auroc']:.3f} "
                    f"test {result['auroc']:.3f}",
                    flush=True,
                )
    (out / "ablation.md").write_text(table(out, variants))


def table(out: Path, variants: list[str]) -> str:
    baselines = {
        p.name.split("_")[0]: json.loads(p.read_text()) for p in sorted((out / "runs").glob("*_baselines.json"))
    }
    runs = {
        name: [json.loads(p.read_text()) for p in sorted((out / "runs").glob(f"*_seed*_{name}.json"))]
        for name in variants
    }
    runs = {name: values for name, values in runs.items() if values}
    base = BOUNDARY_VARIANTS.get(out.name)
    lines = [
        f"Tasks 1-3: `{out.name}` (`{json.dumps(base)}`), trained once per digit; the variants differ in J only. "
        "Validation AUROC: held-out normal train images vs the left-out digit's train images (chooses); test "
        "AUROC: the whole MNIST test split (reports).",
        "",
        "| J variant | validation AUROC | test AUROC | digits with test J < 0.5 | ρ(J, ink) | overrides |",
        "|---|---|---|---|---|---|",
    ]
    for name, values in runs.items():
        test = [r["auroc"] for r in values]
        lines.append(
            f"| {name} ({len(values)} runs) | {_fmt([r['validation_auroc'] for r in values])} | {_fmt(test)} | "
            f"{sum(a < 0.5 for a in test)} | {_fmt([r['spearman_with_ink'] for r in values])} | "
            f"`{json.dumps(DETECTOR_VARIANTS[name])}` |"
        )
    for name in ("knn5", "less_ink", "more_ink"):
        values = [b[name] for b in baselines.values()]
        test = [m["auroc"] for m in values]
        rho = [m["spearman_with_ink"] for m in values if "spearman_with_ink" in m]  # not for the statistics
        lines.append(
            f"| baseline: {name} | {_fmt([m['validation_auroc'] for m in values])} | {_fmt(test)} | "
            f"{sum(a < 0.5 for a in test)} | {_fmt(rho) if len(rho) == len(values) else ''} | |"
        )
    lines += ["", "Test AUROC per digit (seed 0; validation AUROC in the per-run JSON):", ""]
    lines.append("| split | " + " | ".join([*runs, "kNN-5", "less ink"]) + " |")
    lines.append("|" + "---|" * (len(runs) + 3))
    for split in sorted(baselines, key=lambda s: (len(s), s)):
        cells = []
        for values in runs.values():
            found = [r["auroc"] for r in values if r["split"] == split and r["seed"] == 0]
            cells.append(f"{found[0]:.3f}" if found else "—")
        cells += [f"{baselines[split][name]['auroc']:.3f}" for name in ("knn5", "less_ink")]
        lines.append(f"| {split} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", default="boundary_bounded_push", choices=sorted(BOUNDARY_VARIANTS))
    parser.add_argument("--variants", default=",".join(DETECTOR_VARIANTS))
    parser.add_argument("--classes", default="0-9")
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--cache", default=str(REPO_ROOT / "runs" / "ablation_detector"))
    parser.add_argument("--out", help="default: benchmarks/results/ablation_detector/<base>")
    parser.add_argument("--table-only", action="store_true", help="rewrite ablation.md from the recorded runs")
    args = parser.parse_args()
    out = Path(args.out or REPO_ROOT / "benchmarks" / "results" / "ablation_detector" / args.base)
    if args.table_only:
        (out / "ablation.md").write_text(table(out, args.variants.split(",")))
        print((out / "ablation.md").read_text())
        return
    run(
        args.base,
        args.variants.split(","),
        _parse_classes(args.classes),
        [int(s) for s in args.seeds.split(",")],
        Path(args.cache),
        out,
    )
    print((out / "ablation.md").read_text())


if __name__ == "__main__":
    main()
