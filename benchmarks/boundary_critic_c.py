"""Does B shape the Task-3 critic's features? Neighbour scores in C's features with and without B (issue 17).

The Task-3 critic C is the one network trained with B's samples as negatives before J (eq. 5, weight
task3.gamma). Issue 17 asks whether C's feature space is a better space for the neighbour scores than the
Task-1 critic D's; the no-boundary control retrains Task 3 from the same Tasks 1-2 with task3.gamma = 0
(B's term removed), so B's contribution is a paired difference. Scores: kNN-1 and LOF in each critic's
unit-normalised features (omasgan.evaluation.runner.feature_baseline_metrics), fitted on the training
images. Bases are benchmarks/boundary_features' (same cache), so a class trained for one serves both.
Selection by validation AUROC only; the test split reports. From the repository root::

    OMASGAN_DATA=... python -m benchmarks.boundary_critic_c --dataset mnist --classes 1,9 --seeds 0
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

from benchmarks.ablation_boundary import _fmt, _parse_classes
from benchmarks.ablation_detector import _detector, _reuse_tasks
from benchmarks.boundary_features import BASE, REPO_ROOT, base_run, image_loo_parser, val_test
from omasgan.checkpoint import atomic_write_text
from omasgan.data.protocols import make_split
from omasgan.evaluation.runner import feature_baseline_metrics

WITHOUT_BOUNDARY = {"task3.gamma": 0.0}  # C and G' trained without B's negative term
SPACES = ("task1_critic", "task3_critic", "task3_critic_without_boundary")


def _feature_metrics(models, split, critic) -> dict:
    """feature_baseline_metrics in the features of ``critic`` instead of the Task-1 critic's."""
    return feature_baseline_metrics(dataclasses.replace(models, critic=critic), split)


def run(dataset: str, classes: list[int], seeds: list[int], cache: Path, out: Path) -> None:
    (out / "runs").mkdir(parents=True, exist_ok=True)
    for target in classes:
        split = make_split(dataset, "loo", target)
        for seed in seeds:
            path = out / "runs" / f"{split.name}_seed{seed}.json"
            if path.exists():
                continue
            base_dir = base_run(split, seed, cache)
            base = _detector(BASE, seed, base_dir).fit(split.train).models_  # reloads the finished run
            control_dir = cache / f"{split.name}_seed{seed}" / "task3_without_boundary"
            detector = _detector({**BASE, **WITHOUT_BOUNDARY}, seed, control_dir)
            _reuse_tasks(base_dir, control_dir, detector, tasks=("task1", "task2"))
            start = time.perf_counter()
            control = detector.fit(split.train).models_
            record = {
                "split": split.name,
                "seed": seed,
                "minutes_control": (time.perf_counter() - start) / 60,
                "spaces": {
                    "task1_critic": _feature_metrics(base, split, base.critic),
                    "task3_critic": _feature_metrics(base, split, base.retrain_critic),
                    "task3_critic_without_boundary": _feature_metrics(control, split, control.retrain_critic),
                },
            }
            atomic_write_text(path, json.dumps(record, indent=1))
            spaces = record["spaces"]
            by_space = {f"{space} {score}": m for space, scores in spaces.items() for score, m in scores.items()}
            print(f"{split.name} seed {seed}: {val_test(by_space)}", flush=True)


def table(out: Path) -> str:
    records = [json.loads(p.read_text()) for p in sorted((out / "runs").glob("*_seed*.json"))]
    lines = [
        "Neighbour scores (kNN-1, LOF) in the unit-normalised features of the Task-1 critic D, the Task-3 critic C "
        "(quick image preset: B's samples are C's negatives, task3.gamma 0.7) and C retrained from the same "
        "Tasks 1-2 without B's term (task3.gamma 0). Validation AUROC: held-out normal train images vs the "
        "left-out class's train images; test: the whole test split. Mean ± SD over classes and seeds.",
        "",
        "| feature space · score | runs | validation AUROC | test AUROC |",
        "|---|---|---|---|",
    ]
    scores = sorted({score for r in records for score in r["spaces"]["task1_critic"]})
    for space in SPACES:
        for score in scores:
            values = [r["spaces"][space][score] for r in records]
            lines.append(
                f"| {space} · {score} | {len(values)} | {_fmt([v['validation_auroc'] for v in values])} | "
                f"{_fmt([v['auroc'] for v in values])} |"
            )
    lines += ["", "Paired contribution of B to C's features (with minus without B's term, same class and seed):", "",
              "| score | pairs | validation Δ | test Δ |", "|---|---|---|---|"]
    for score in scores:
        pairs = [(r["spaces"]["task3_critic"][score], r["spaces"]["task3_critic_without_boundary"][score])
                 for r in records]
        lines.append(
            f"| {score} | {len(pairs)} | {_fmt([a['validation_auroc'] - b['validation_auroc'] for a, b in pairs])} | "
            f"{_fmt([a['auroc'] - b['auroc'] for a, b in pairs])} |"
        )
    lines += ["", "Test AUROC per class and seed:", "",
              "| split | seed | " + " | ".join(f"{s} · {c}" for s in SPACES for c in scores) + " |",
              "|---|---|" + "---|" * (len(SPACES) * len(scores))]
    for r in records:
        cells = [f"{r['spaces'][s][c]['auroc']:.3f}" for s in SPACES for c in scores]
        lines.append(f"| {r['split']} | {r['seed']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    args = image_loo_parser(__doc__, "boundary_critic_c", classes="1,9").parse_args()
    out = Path(args.out or REPO_ROOT / "benchmarks" / "results" / "boundary_critic_c" / f"{args.dataset}_loo")
    if not args.table_only:
        run(args.dataset, _parse_classes(args.classes), [int(s) for s in args.seeds.split(",")], Path(args.cache), out)
    (out / "results.md").write_text(table(out))
    print((out / "results.md").read_text())


if __name__ == "__main__":
    main()
