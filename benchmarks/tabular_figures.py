"""Where B's samples went on a table: a PCA view of the training rows, B's samples, the test anomalies
and J's logit on the plane of the first two principal components (omasgan.plots.table_boundary_figure).

    python -m benchmarks.tabular_figures                 # cardio and satellite, seed 0
    python -m benchmarks.tabular_figures --tables WBC,thyroid --seed 1
"""

from __future__ import annotations

import argparse
from pathlib import Path

from sklearn.metrics import roc_auc_score

from omasgan import OMASGANDetector
from omasgan.data import table_split
from omasgan.plots import table_boundary_figure

RESULTS = Path(__file__).parent / "results" / "adbench"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tables", default="cardio,satellite")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args(argv)
    for name in args.tables.split(","):
        split = table_split(name, "novelty", args.seed)
        detector = OMASGANDetector(random_state=args.seed, device="cpu").fit(split.train)
        auroc = roc_auc_score(split.test_labels, detector.anomaly_score(split.test))
        path = table_boundary_figure(
            detector.models_,
            split.train,
            Path(args.out) / f"pca_{split.name}_seed{args.seed}.png",
            anomalies=split.test[split.test_labels == 1],
            title=f"{split.name} (seed {args.seed}): J test AUROC {auroc:.3f}",
        )
        print(f"{split.name}: J AUROC {auroc:.3f}; wrote {path}")


if __name__ == "__main__":
    main()
