"""``omasgan evaluate --dataset adbench:NAME``: OMASGAN on one table per seed beside the classical baselines,
under the novelty or unsupervised protocol (``omasgan.data.table_split``).

OMASGAN is fitted on the raw rows (its tabular recipe scales them itself); the baselines (kNN-5,
IsolationForest, one-class SVM, LOF, and PyOD's ECOD where installed) on rows standardised by a scaler
fitted on the training rows. Under the unsupervised protocol J's scores of the rows it was fitted on
are its leave-self-out ``decision_scores_``. Writes ``out/results.csv`` (one row per method and seed)
and ``out/results.md`` (mean ± SD over seeds). For every PyOD detector side by side, run
``python -m benchmarks.tabular``.
"""

from __future__ import annotations

import csv
import time
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score
from sklearn.preprocessing import StandardScaler
from tqdm.auto import tqdm

from omasgan.config import OMASGANConfig
from omasgan.data.tables import table_split
from omasgan.estimator import OMASGANDetector
from omasgan.evaluation.baselines import run_baselines

__all__ = ["TABLE_SCORES", "evaluate_table"]

# OMASGAN's scores, named for what they are: J is the method's detector; -D and -C are its critics.
TABLE_SCORES = {"detector": "OMASGAN J", "task1_critic": "Task-1 critic D", "task3_critic": "Task-3 critic C"}


def evaluate_table(
    name: str,
    protocol: str = "novelty",
    seeds: list[int] | tuple[int, ...] = (0,),
    *,
    preset: str = "quick",
    out: str | Path = "evaluation",
    data_dir: str | None = None,
    overrides: dict | OMASGANConfig | None = None,
    device: str = "auto",
    verbose: int = 1,
) -> dict[str, Any]:
    """AUROC and AUPRC of OMASGAN's scores and the baselines on table ``name``, per seed. Returns
    {method: {"auroc": [per seed], "auprc": [...], "fit_seconds": [...]}}."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for seed in tqdm(list(seeds), desc=f"adbench:{name} {protocol}", disable=verbose == 0):
        split = table_split(name, protocol, seed, data_dir_path=data_dir)
        start = time.perf_counter()
        detector = OMASGANDetector(preset=preset, config=overrides or None, random_state=seed, device=device)
        detector.fit(split.train)
        seconds = time.perf_counter() - start
        scores = {TABLE_SCORES[k]: v for k, v in detector.ablation_scores(split.test).items()}
        if protocol == "unsupervised":  # the fitted rows themselves: J's leave-self-out scores (PyOD's way)
            scores[TABLE_SCORES["detector"]] = detector.decision_scores_
        fit_seconds = dict.fromkeys(scores, seconds)
        scaler = StandardScaler().fit(split.train)
        for method, (values,) in run_baselines(scaler.transform(split.train), scaler.transform(split.test)).items():
            scores[method], fit_seconds[method] = values, float("nan")
        for method, values in scores.items():
            rows.append(
                {
                    "table": split.name,
                    "protocol": protocol,
                    "seed": seed,
                    "method": method,
                    "auroc": float(roc_auc_score(split.test_labels, values)),
                    "auprc": float(average_precision_score(split.test_labels, values)),
                    "fit_seconds": fit_seconds[method],
                }
            )
    with open(out / "results.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    summary: dict[str, dict[str, list[float]]] = {}
    for row in rows:
        entry = summary.setdefault(row["method"], {"auroc": [], "auprc": [], "fit_seconds": []})
        for key in entry:
            entry[key].append(row[key])
    lines = [
        f"adbench:{name}, {protocol} protocol, seeds {list(seeds)} (mean ± SD over seeds; higher = better)",
        "",
        "| method | AUROC | AUPRC |",
        "|---|---|---|",
    ]
    for method, entry in summary.items():
        cells = [f"{np.mean(entry[k]):.3f} ± {np.std(entry[k]):.3f}" for k in ("auroc", "auprc")]
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    (out / "results.md").write_text("\n".join(lines) + "\n")
    return summary
