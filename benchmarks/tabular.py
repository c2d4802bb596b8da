"""OMASGAN on ADBench tables beside PyOD's detectors, in one run (issue 16).

    python -m benchmarks.tabular                       # 12 tables x 3 seeds, every method
    python -m benchmarks.tabular --tables cardio,WBC --seeds 0 --methods omasgan,KNN
    python -m benchmarks.tabular --speed               # fit seconds and scoring rows/s (speed.md)

Novelty protocol (omasgan.data.table_split): fit on a seeded 70% of the normal rows, score the other 30%
plus every anomaly. Every peer sees the rows standardised by a StandardScaler fitted on its training rows;
OMASGAN is given the raw rows (its tabular recipe fits and keeps its own scaler, as a user would call it).
Peers run with PyOD's defaults (``pip install omasgan[bench]``); each row of results.csv is one method on
one (table, seed): AUROC, AUPRC, fit and score seconds. Finished rows are kept, so an interrupted run
resumes. ``--report`` rewrites README.md, the CSV summary and the mean-rank figure from results.csv.

OMASGAN rows: "omasgan J" is the tabular recipe's J (the default ``OMASGANDetector()`` on a table),
"omasgan J no-boundary" the same detector with Task 2 skipped, so B = G and J and C are trained against
G's own samples (the control for B's contribution); "omasgan-paper J/D/C" the paper's 2-D recipe
(``preset="paper"``) and its critics' scores (-D, -C), named for what they are.
"""

from __future__ import annotations

import argparse
import csv
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score
from sklearn.preprocessing import StandardScaler

from omasgan.data import ADBENCH_TABLES, table_split

RESULTS = Path(__file__).parent / "results" / "adbench"
FIELDS = ["table", "seed", "runner", "method", "auroc", "auprc", "fit_seconds", "score_seconds", "n_train", "d"]

# Variants of OMASGAN's tabular recipe: dotted overrides of the default preset.
NO_BOUNDARY = {"task2.steps": 0}


def _omasgan(preset: str, overrides: dict | None, names: dict[str, str]):
    """A runner fitting OMASGANDetector on the raw rows; ``names`` maps its scores to method names."""

    def run(train, test, seed):
        from omasgan import OMASGANDetector

        start = time.perf_counter()
        detector = OMASGANDetector(preset=preset, config=overrides, random_state=seed, device="cpu").fit(train)
        fitted = time.perf_counter() - start
        start = time.perf_counter()
        scores = detector.ablation_scores(test)
        scored = time.perf_counter() - start
        return {method: scores[key] for key, method in names.items()}, fitted, scored

    return run


def _pyod(factory: Callable[[int, int], object]):
    """A runner for a PyOD detector (defaults; the seed where it takes one) on standardised rows;
    ``factory(seed, n_features)`` builds it."""

    def run(train, test, seed):
        scaler = StandardScaler().fit(train)
        model = factory(seed, train.shape[1])
        start = time.perf_counter()
        model.fit(scaler.transform(train))
        fitted = time.perf_counter() - start
        start = time.perf_counter()
        scores = model.decision_function(scaler.transform(test))
        return {None: scores}, fitted, time.perf_counter() - start

    return run


def _peers() -> dict[str, Callable]:
    from pyod.models.auto_encoder import AutoEncoder
    from pyod.models.copod import COPOD
    from pyod.models.deep_svdd import DeepSVDD
    from pyod.models.ecod import ECOD
    from pyod.models.iforest import IForest
    from pyod.models.knn import KNN
    from pyod.models.lof import LOF
    from pyod.models.mo_gaal import MO_GAAL
    from pyod.models.ocsvm import OCSVM
    from pyod.models.so_gaal import SO_GAAL

    return {
        "IForest": _pyod(lambda seed, d: IForest(random_state=seed)),
        "KNN": _pyod(lambda seed, d: KNN()),
        "LOF": _pyod(lambda seed, d: LOF()),
        "ECOD": _pyod(lambda seed, d: ECOD()),
        "COPOD": _pyod(lambda seed, d: COPOD()),
        "OCSVM": _pyod(lambda seed, d: OCSVM()),
        "DeepSVDD": _pyod(lambda seed, d: DeepSVDD(n_features=d, random_state=seed, verbose=0)),
        "AutoEncoder": _pyod(lambda seed, d: AutoEncoder(random_state=seed, verbose=0)),
        "SO_GAAL": _pyod(lambda seed, d: SO_GAAL()),
        "MO_GAAL": _pyod(lambda seed, d: MO_GAAL()),
    }


OMASGAN_METHODS: dict[str, Callable] = {
    "omasgan": _omasgan("quick", None, {"detector": "omasgan J"}),
    "omasgan-no-boundary": _omasgan("quick", NO_BOUNDARY, {"detector": "omasgan J no-boundary"}),
    "omasgan-paper": _omasgan(
        "paper",
        None,
        {"detector": "omasgan-paper J", "task1_critic": "omasgan-paper D", "task3_critic": "omasgan-paper C"},
    ),
}


def _methods(selected: list[str] | None) -> dict[str, Callable]:
    methods = dict(OMASGAN_METHODS)
    if selected is None or set(selected) - set(OMASGAN_METHODS):
        methods.update(_peers())
    return {k: v for k, v in methods.items() if selected is None or k in selected}


def _done(path: Path) -> set[tuple[str, int, str]]:
    if not path.exists():
        return set()
    with open(path) as handle:
        return {(r["table"], int(r["seed"]), r["runner"]) for r in csv.DictReader(handle)}


def _pyod_seed(seed: int) -> None:
    import torch

    np.random.seed(seed)  # SO_GAAL, MO_GAAL and DeepSVDD draw from the global generators
    torch.manual_seed(seed)


def run(tables: list[str], seeds: list[int], methods: dict[str, Callable], out: Path, data_dir=None) -> None:
    out.mkdir(parents=True, exist_ok=True)
    path = out / "results.csv"
    done = _done(path)
    new = not path.exists()
    with open(path, "a", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=FIELDS)
        if new:
            writer.writeheader()
        for seed in seeds:  # seeds outermost: an interrupted run has every table at the first seeds
            for table in tables:
                split = table_split(table, "novelty", seed, data_dir_path=data_dir)
                for key, runner in methods.items():
                    if (split.name, seed, key) in done:
                        continue
                    _pyod_seed(seed)
                    scores, fitted, scored = runner(split.train, split.test, seed)
                    for name, values in scores.items():
                        values = np.nan_to_num(np.asarray(values, dtype=np.float64), nan=0.0)
                        row = {
                            "table": split.name,
                            "seed": seed,
                            "runner": key,
                            "method": name or key,
                            "auroc": round(float(roc_auc_score(split.test_labels, values)), 5),
                            "auprc": round(float(average_precision_score(split.test_labels, values)), 5),
                            "fit_seconds": round(fitted, 3),
                            "score_seconds": round(scored, 4),
                            "n_train": len(split.train),
                            "d": split.train.shape[1],
                        }
                        writer.writerow(row)
                        handle.flush()
                        print(f"{split.name:12s} seed {seed} {row['method']:24s} AUROC {row['auroc']:.3f} "
                              f"fit {fitted:6.1f}s", flush=True)


def speed(out: Path, sizes=((10_000, 100), (10_000, 10), (1_000, 100))) -> list[dict]:
    """Fit seconds and scoring rows/s of the default detector on Gaussian tables of n rows x d columns
    (the issue's bound: n <= 10,000 and d <= 100), 200,000 rows scored. Written to speed.md."""
    from omasgan import OMASGANDetector

    rows = []
    for n, d in sizes:
        rng = np.random.default_rng(0)
        train, queries = rng.normal(size=(n, d)), rng.normal(size=(200_000, d)).astype(np.float32)
        start = time.perf_counter()
        detector = OMASGANDetector(random_state=0, device="cpu").fit(train)
        fitted = time.perf_counter() - start
        detector.anomaly_score(queries[:1000])  # warm-up
        start = time.perf_counter()
        detector.anomaly_score(queries)
        rate = len(queries) / (time.perf_counter() - start)
        rows.append({"n": n, "d": d, "fit_seconds": round(fitted, 1), "score_rows_per_second": int(rate)})
        print(rows[-1], flush=True)
    lines = ["| n | d | fit s | J scoring rows/s |", "|---|---|---|---|"]
    lines += [f"| {r['n']} | {r['d']} | {r['fit_seconds']} | {r['score_rows_per_second']:,} |" for r in rows]
    out.mkdir(parents=True, exist_ok=True)
    (out / "speed.md").write_text("\n".join(lines) + "\n")
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tables", default=",".join(ADBENCH_TABLES))
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--methods", default=None, help="comma-separated keys (default: all)")
    parser.add_argument("--out", default=str(RESULTS))
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--report", action="store_true", help="only rewrite the report from results.csv")
    parser.add_argument("--speed", action="store_true", help="only measure fit and scoring speed (speed.md)")
    args = parser.parse_args(argv)
    out = Path(args.out)
    if args.speed:
        speed(out)
        return
    if not args.report:
        selected = args.methods.split(",") if args.methods else None
        run(args.tables.split(","), [int(s) for s in args.seeds.split(",")], _methods(selected), out, args.data_dir)
    from benchmarks.tabular_report import report

    report(out)


if __name__ == "__main__":
    main()
