"""``omasgan evaluate``: the pipeline per (target class or dataset) x seed, baselines on identical splits,
tables and figures. Finished runs are skipped, so an interrupted evaluation resumes where it stopped.

Layout of ``out``::

    runs/<split>_seed<k>.json       metrics of OMASGAN's scores for one run (+ minutes, config, diagnostics)
    fits/<digest>_seed<k>/          the fitted detector's run directory, one per training set, configuration
                                    and seed (every ood target of a dataset shares one)
    baselines/<split>.json          metrics of the classical baselines and image statistics (seed-free)
    figures/<split>_seed<k>_*.png   ROC curves, score histograms, sample grids
    results.csv, results.md         every run, and mean +- SD over seeds and targets
"""

from __future__ import annotations

import csv
import hashlib
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from omasgan.checkpoint import atomic_write_text
from omasgan.config import OMASGANConfig
from omasgan.data.protocols import Split, make_split
from omasgan.estimator import OMASGANDetector
from omasgan.evaluation.baselines import STATISTICS, run_baselines
from omasgan.evaluation.metrics import detection_metrics, spearman
from omasgan.plots import model_samples, score_histograms

__all__ = ["baseline_metrics", "evaluate", "feature_baseline_metrics", "score_metrics", "split_metrics", "summarise"]

OMASGAN_SCORES = {"detector": "OMASGAN J", "task3_critic": "Task-3 critic C", "task1_critic": "Task-1 critic D"}
# Named scoring options built on the trained networks (issue 7), reported next to J, never in its place.
FUSED_SCORES = {"feature_knn": "kNN-1 in D's features", "fused": "J + kNN-1 in D's features"}
FEATURE_BANK = 10000  # training samples whose critic features form the kNN bank (seeded subsample)


def _figures(split: Split, scores: dict[str, np.ndarray], path_stem: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import roc_curve

    fig, ax = plt.subplots(figsize=(5, 5))
    for name, values in scores.items():
        fpr, tpr, _ = roc_curve(split.test_labels, values)
        ax.plot(fpr, tpr, label=name)
    ax.plot([0, 1], [0, 1], "k:", lw=0.8)
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title=split.name)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(f"{path_stem}_roc.png", dpi=90)
    plt.close(fig)

    score_histograms(scores, split.test_labels, f"{path_stem}_hist.png")


def split_metrics(scores: dict[str, np.ndarray], split: Split) -> dict[str, float]:
    """detection_metrics of one score given its values on each of ``split.query_sets()``."""
    anomalies = scores.get("validation_anomalies")
    return detection_metrics(scores["test"], split.test_labels, scores["validation"], anomalies)


def score_metrics(scores: dict[str, np.ndarray], split: Split) -> dict[str, float]:
    """split_metrics, plus the Spearman correlation of the test scores with the test samples' ink."""
    ink = STATISTICS["more_ink"](split.test)
    return {**split_metrics(scores, split), "spearman_with_ink": spearman(scores["test"], ink)}


def baseline_metrics(split: Split, names: list[str] | None = None) -> dict[str, dict[str, float]]:
    """Metrics of the classical baselines (``names``, all by default) and the image statistics on ``split``;
    each baseline also gets the Spearman correlation of its test scores with the test samples' ink."""
    sets = split.query_sets()
    scores = run_baselines(split.train, *sets.values(), names=names)
    out = {name: score_metrics(dict(zip(sets, values, strict=True)), split) for name, values in scores.items()}
    for name, statistic in STATISTICS.items():
        out[name] = split_metrics({key: statistic(x) for key, x in sets.items()}, split)
    return out


def feature_baseline_metrics(models, split: Split) -> dict[str, dict[str, float]]:
    """kNN-1 and LOF in the Task-1 critic's unit-normalised features (``feature_knn1``, ``feature_lof``): the
    classical detectors in D's view instead of pixels, fitted as on pixels (kNN on every training sample,
    LOF on its seeded subsample). ``models``: the fitted OMASGANModels whose critic gives the features."""
    from omasgan.evaluation.baselines import knn, local_outlier_factor
    from omasgan.scoring import critic_features

    sets = split.query_sets()
    train = critic_features(models, split.train).numpy()
    queries = [critic_features(models, x).numpy() for x in sets.values()]
    found = {"feature_knn1": knn(train, *queries, k=1), "feature_lof": local_outlier_factor(train, *queries)}
    return {name: score_metrics(dict(zip(sets, values, strict=True)), split) for name, values in found.items()}


def _add_fused_scores(detector: OMASGANDetector, split: Split, scores: dict[str, dict[str, np.ndarray]]) -> None:
    """kNN-1 in the Task-1 critic's features, and its fusion with J (standardised on validation normals).
    ``scores``: {query set: {score name: values}}, completed in place."""
    from omasgan.scoring import feature_knn_scores, fuse_scores

    rng = np.random.default_rng(0)
    bank = split.train[rng.choice(len(split.train), min(FEATURE_BANK, len(split.train)), replace=False)]
    sets = split.query_sets()
    for name, values in zip(sets, feature_knn_scores(detector.models_, bank, *sets.values()), strict=True):
        scores[name]["feature_knn"] = values
    normal = {k: scores["validation"][k] for k in ("detector", "feature_knn")}
    for values in scores.values():
        values["fused"] = fuse_scores({k: values[k] for k in ("detector", "feature_knn")}, normal)


def _baselines(split: Split, out: Path) -> dict[str, Any]:
    path = out / "baselines" / f"{split.name}.json"
    if path.exists():
        return json.loads(path.read_text())
    start = time.perf_counter()
    result: dict[str, Any] = baseline_metrics(split)
    result["_minutes"] = (time.perf_counter() - start) / 60
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(result, indent=1))
    return result


def _fit_dir(split: Split, seed: int, preset: str, overrides, out: Path) -> Path:
    """The run directory of the detector fitted for ``split`` and ``seed``: named by a digest of the training
    images and the configuration, so that splits with one training set (every ``ood`` target of a dataset)
    share one fit, and an interrupted fit resumes from its last checkpoint."""
    digest = hashlib.blake2b(np.ascontiguousarray(split.train).data, digest_size=8)
    settings = overrides.to_dict() if isinstance(overrides, OMASGANConfig) else overrides or {}
    digest.update(json.dumps([preset, settings], sort_keys=True, default=str).encode())
    return out / "fits" / f"{digest.hexdigest()}_seed{seed}"


def _run(split: Split, seed: int, preset: str, overrides, device: str, out: Path, verbose: int) -> dict[str, Any]:
    run_dir = _fit_dir(split, seed, preset, overrides, out)
    minutes_path = run_dir / "minutes.json"
    detector = OMASGANDetector(
        preset=preset,
        config=overrides or None,
        random_state=seed,
        device=device,
        run_dir=str(run_dir),
        verbose=max(0, verbose - 1),  # verbose 1: the evaluation's own bar; 2: each fit's too
    )
    start = time.perf_counter()
    detector.fit(split.train)
    if not minutes_path.exists():  # else a finished fit was reloaded: its training minutes are recorded
        atomic_write_text(minutes_path, json.dumps((time.perf_counter() - start) / 60))
    minutes = json.loads(minutes_path.read_text())
    scores = {name: detector.ablation_scores(x) for name, x in split.query_sets().items()}
    _add_fused_scores(detector, split, scores)
    test = scores["test"]
    names = {**OMASGAN_SCORES, **FUSED_SCORES}
    metrics = {name: split_metrics({s: v[name] for s, v in scores.items()}, split) for name in names}
    statistics = {name: STATISTICS[f"more_{name}"](split.test) for name in ("ink", "contrast")}
    stem = out / "figures" / f"{split.name}_seed{seed}"
    stem.parent.mkdir(parents=True, exist_ok=True)
    _figures(split, {OMASGAN_SCORES[k]: test[k] for k in OMASGAN_SCORES}, stem)
    model_samples(detector.models_, split.train, f"{stem}_samples.png")
    task2 = [row for row in detector.history_ if row["task"] == "task2"]
    task3 = [row for row in detector.history_ if row["task"] == "task3"]
    detector_rows = [row for row in detector.history_ if row["task"] == "detector"]
    return {
        "split": split.name,
        "description": split.description,
        "subset": split.subset,
        "seed": seed,
        "minutes": minutes,
        "fit": run_dir.name,  # splits with one training set share it
        "methods": metrics,
        "spearman_with_ink": {name: spearman(test[name], statistics["ink"]) for name in names},
        "spearman_with_contrast": {name: spearman(test[name], statistics["contrast"]) for name in names},
        "task2_last": task2[-1] if task2 else None,
        "task3_boundary_term_active": float(np.mean([r["boundary_term_active"] for r in task3])) if task3 else None,
        "detector_last": detector_rows[-1] if detector_rows else None,
        "config": detector.config_.to_dict(),
        "n_train": int(len(split.train)),
        "n_test": int(len(split.test)),
    }


def evaluate(
    dataset: str,
    protocol: str,
    targets: list,
    seeds: list[int],
    *,
    preset: str = "quick",
    out: str | Path = "evaluation",
    data_dir: str | None = None,
    overrides: dict | OMASGANConfig | None = None,
    device: str = "auto",
    verbose: int = 1,
) -> dict[str, Any]:
    """Run every (target, seed) not yet in ``out`` and write the tables. Returns the summary."""
    out = Path(out)
    (out / "runs").mkdir(parents=True, exist_ok=True)
    jobs = [(t, s) for t in targets for s in seeds]
    bar = tqdm(jobs, desc=f"{dataset} {protocol}", disable=verbose == 0)
    splits: dict[Any, Split] = {}
    for target, seed in bar:
        if target not in splits:
            splits[target] = make_split(dataset, protocol, target, data_dir=data_dir)
        split = splits[target]
        run_path = out / "runs" / f"{split.name}_seed{seed}.json"
        bar.set_postfix_str(f"{split.name} seed {seed}")
        _baselines(split, out)
        if run_path.exists():
            continue
        atomic_write_text(run_path, json.dumps(_run(split, seed, preset, overrides, device, out, verbose), indent=1))
    return summarise(out)


def _mean_sd(values: list[float]) -> str:
    if not values:
        return "—"
    return f"{np.mean(values):.3f} ± {np.std(values):.3f}" if len(values) > 1 else f"{values[0]:.3f}"


def summarise(out: str | Path) -> dict[str, Any]:
    """Collect every run and baseline in ``out`` into results.csv and results.md."""
    out = Path(out)
    runs = [json.loads(p.read_text()) for p in sorted((out / "runs").glob("*.json"))]
    baselines = {p.stem: json.loads(p.read_text()) for p in sorted((out / "baselines").glob("*.json"))}
    rows = []
    for run in runs:
        for method, metrics in run["methods"].items():
            rows.append(
                {
                    "split": run["split"],
                    "seed": run["seed"],
                    "method": {**OMASGAN_SCORES, **FUSED_SCORES}.get(method, method),
                    **{k: metrics[k] for k in ("auroc", "auprc", "f1")},
                }
            )
    for split, result in baselines.items():
        for method, metrics in result.items():
            if not method.startswith("_"):
                rows.append(
                    {"split": split, "seed": "", "method": method, **{k: metrics[k] for k in ("auroc", "auprc", "f1")}}
                )
    with open(out / "results.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["split", "seed", "method", "auroc", "auprc", "f1"])
        writer.writeheader()
        writer.writerows(rows)

    ours = [m for m in (*OMASGAN_SCORES.values(), *FUSED_SCORES.values()) if any(r["method"] == m for r in rows)]
    methods = ours + sorted({r["method"] for r in rows} - set(ours))
    splits = sorted({r["split"] for r in rows}, key=lambda s: (len(s), s))
    lines = ["| split | " + " | ".join(methods) + " |", "|" + "---|" * (len(methods) + 1)]
    overall: dict[str, list[float]] = {m: [] for m in methods}
    for split in splits:
        cells = []
        for method in methods:
            values = [r["auroc"] for r in rows if r["split"] == split and r["method"] == method]
            overall[method] += values
            cells.append(_mean_sd(values))
        lines.append(f"| {split} | " + " | ".join(cells) + " |")
    lines.append("| **mean** | " + " | ".join(_mean_sd(overall[m]) for m in methods) + " |")
    minutes = [run["minutes"] for run in runs]
    seeds = sorted({run["seed"] for run in runs})
    subsets = sorted({run["subset"] for run in runs if run.get("subset")})
    named = {**OMASGAN_SCORES, **FUSED_SCORES}

    def per_run(key: str) -> dict[str, list[float]]:
        return {m: [run[key][k] for run in runs if k in run.get(key, {})] for k, m in named.items()}

    def last(section: str, metric: str) -> list[float]:
        return [run[section][metric] for run in runs if (run.get(section) or {}).get(metric) is not None]

    ink, contrast = per_run("spearman_with_ink"), per_run("spearman_with_contrast")
    validation = {
        m: [run["methods"][k]["validation_auroc"] for run in runs if "validation_auroc" in run["methods"].get(k, {})]
        for k, m in named.items()
    }
    active = [run["task3_boundary_term_active"] for run in runs if run.get("task3_boundary_term_active") is not None]
    header = [
        "AUROC (mean ± SD over seeds; **mean** row over every run). OMASGAN columns per seed; baselines and image "
        "statistics are seed-free. Anomaly scores: higher = more anomalous.",
        "",
        f"Runs: {len(runs)}; seeds {seeds}; minutes per run (training OMASGAN) {_mean_sd(minutes)}.",
    ]
    if subsets:
        header.append(f"**Subset:** {'; '.join(subsets)}.")
    header += [
        "Validation AUROC (held-out normal train images vs the anomaly classes' train images; the number "
        "configurations are chosen by): "
        + (", ".join(f"{m} {_mean_sd(v)}" for m, v in validation.items() if v) or "— (no validation anomalies)")
        + ".",
        "Spearman ρ of each OMASGAN score with total intensity (ink) on the test split: "
        + ", ".join(f"{m} {_mean_sd(v)}" for m, v in ink.items() if v)
        + ".",
        "Spearman ρ with contrast (per-sample SD): "
        + ", ".join(f"{m} {_mean_sd(v)}" for m, v in contrast.items() if v)
        + ".",
        f"Share of B samples whose Task-3 critic term is active (mean over runs): {_mean_sd(active)}.",
        "End of Task 2 (pixel L2 to the nearest of 2048 training samples): B "
        f"{_mean_sd(last('task2_last', 'boundary_nn_data'))}, G {_mean_sd(last('task2_last', 'generator_nn_data'))}; "
        f"B's diversity (mean pairwise distance / the data's) {_mean_sd(last('task2_last', 'boundary_diversity'))}; "
        "share of B samples J leaves below logit 0 at the end "
        f"{_mean_sd(last('detector_last', 'detector_boundary_missed'))}.",
        "",
    ]
    (out / "results.md").write_text("\n".join(header + lines) + "\n")
    return {"runs": len(runs), "rows": rows}
