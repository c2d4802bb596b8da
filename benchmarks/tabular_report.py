"""The report of ``benchmarks.tabular``: from results.csv, per-table AUROC and AUPRC (mean ± SD over seeds),
per-table ranks and the mean rank, fit and score times, and a figure of each method's rank spread."""

from __future__ import annotations

import csv
from collections import defaultdict
from pathlib import Path

import numpy as np
from scipy.stats import rankdata

__all__ = ["report"]

CONTROL = "omasgan J no-boundary"


def _ranks(rows: list[dict], tables: list[str], methods: list[str]) -> tuple[dict, dict]:
    """Rank per (table, seed) among ``methods`` (1 = best AUROC, ties averaged): {method: ranks} and
    {(method, table): ranks over seeds}."""
    ranks, per_table = defaultdict(list), defaultdict(list)
    for table in tables:
        for seed in sorted({r["seed"] for r in rows if r["table"] == table}):
            entries = {r["method"]: r["auroc"] for r in rows if r["table"] == table and r["seed"] == seed}
            names = [m for m in methods if m in entries]
            if len(names) < 2:
                continue
            for name, rank in zip(names, rankdata([-entries[m] for m in names]), strict=True):
                ranks[name].append(float(rank))
                per_table[(name, table)].append(float(rank))
    return ranks, per_table


def _rows(out: Path) -> list[dict]:
    with open(out / "results.csv") as handle:
        rows = list(csv.DictReader(handle))
    for row in rows:
        for key in ("auroc", "auprc", "fit_seconds", "score_seconds"):
            row[key] = float(row[key])
        row["seed"], row["n_train"] = int(row["seed"]), int(row["n_train"])
    return rows


def _cell(values: list[float]) -> str:
    if not values:
        return "—"
    return f"{np.mean(values):.3f} ± {np.std(values):.3f}" if len(values) > 1 else f"{values[0]:.3f}"


def report(out: Path) -> dict:
    """Write README.md's tables, summary.csv and mean_rank.png in ``out``; returns the per-method summary."""
    rows = _rows(out)
    metric = defaultdict(list)  # (method, table, name) -> values over seeds
    for row in rows:
        for name in ("auroc", "auprc", "fit_seconds", "score_seconds"):
            metric[(row["method"], row["table"], name)].append(row[name])
    tables = sorted({r["table"] for r in rows}, key=str.lower)
    methods = sorted({r["method"] for r in rows}, key=lambda m: (not m.startswith("omasgan"), m.lower()))
    complete = [m for m in methods if all(metric[(m, t, "auroc")] for t in tables)]
    ranks, rank_per_table = _ranks(rows, tables, complete)
    # The no-boundary control is a variant of OMASGAN J, not a method a user picks: ranks without it too.
    ranks_without_control, _ = _ranks(rows, tables, [m for m in complete if m != CONTROL])
    summary = {}
    for m in methods:
        per_table = [np.mean(metric[(m, t, "auroc")]) for t in tables if metric[(m, t, "auroc")]]
        summary[m] = {
            "mean_auroc": float(np.mean(per_table)) if per_table else float("nan"),
            "sd_over_tables": float(np.std(per_table)) if per_table else float("nan"),
            "mean_auprc": float(np.mean([np.mean(metric[(m, t, "auprc")]) for t in tables if metric[(m, t, "auprc")]]))
            if per_table
            else float("nan"),
            "mean_rank": float(np.mean(ranks[m])) if ranks[m] else float("nan"),
            "mean_rank_without_control": float(np.mean(ranks_without_control[m]))
            if ranks_without_control[m]
            else float("nan"),
            "tables": len(per_table),
            "below_0.5": sum(v < 0.5 for v in per_table),
            "fit_seconds": float(np.mean([v for t in tables for v in metric[(m, t, "fit_seconds")]] or [np.nan])),
        }
    with open(out / "summary.csv", "w", newline="") as handle:
        fields = ["method", *next(iter(summary.values())).keys()]
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        for m, values in summary.items():
            writer.writerow({"method": m, **{k: round(v, 4) if isinstance(v, float) else v for k, v in values.items()}})

    order = sorted(methods, key=lambda m: (np.isnan(summary[m]["mean_rank"]), summary[m]["mean_rank"]))
    seeds = sorted({r["seed"] for r in rows})
    lines = [
        "# ADBench tables, novelty protocol: OMASGAN beside PyOD's detectors",
        "",
        "Written by `python -m benchmarks.tabular` (the numbers below come from `results.csv` beside this file).",
        f"Tables: {len(tables)}; seeds {seeds}; AUROC and AUPRC are mean ± SD over seeds; ranks are per (table, "
        "seed) among the methods that ran on every table (1 = best AUROC), then averaged.",
        "",
        "## Summary (ordered by mean rank)",
        "",
        "| method | mean AUROC (SD over tables) | mean AUPRC | mean rank | mean rank without the control "
        "| tables < 0.5 | mean fit s |",
        "|---|---|---|---|---|---|---|",
    ]
    for m in order:
        s = summary[m]
        lines.append(
            f"| {m} | {s['mean_auroc']:.3f} ({s['sd_over_tables']:.3f}) | {s['mean_auprc']:.3f} | "
            f"{s['mean_rank']:.2f} | {s['mean_rank_without_control']:.2f} | {s['below_0.5']} | "
            f"{s['fit_seconds']:.1f} |"
        )
    for name, title in (("auroc", "AUROC"), ("auprc", "AUPRC")):
        header = "| table | " + " | ".join(order) + " |"
        lines += ["", f"## {title} per table", "", header, "|---" * (len(order) + 1) + "|"]
        for t in tables:
            lines.append(f"| {t} | " + " | ".join(_cell(metric[(m, t, name)]) for m in order) + " |")
    lines += ["", "## Rank per table (mean over seeds)", "", "| table | " + " | ".join(order) + " |"]
    lines.append("|---" * (len(order) + 1) + "|")
    for t in tables:
        lines.append(
            f"| {t} | "
            + " | ".join(f"{np.mean(rank_per_table[(m, t)]):.1f}" if rank_per_table[(m, t)] else "—" for m in order)
            + " |"
        )
    lines += ["", "## Seconds per fit and per score call (mean over seeds)", "", "| table | n train | d | "]
    lines[-1] += " | ".join(f"{m} fit / score" for m in order) + " |"
    lines.append("|---" * (len(order) + 3) + "|")
    for t in tables:
        first = next(r for r in rows if r["table"] == t)
        cells = [
            f"{np.mean(metric[(m, t, 'fit_seconds')]):.1f} / {np.mean(metric[(m, t, 'score_seconds')]):.3f}"
            if metric[(m, t, "fit_seconds")]
            else "—"
            for m in order
        ]
        lines.append(f"| {t} | {first['n_train']} | {first['d']} | " + " | ".join(cells) + " |")
    (out / "tables.md").write_text("\n".join(lines) + "\n")
    _figure(out, order, ranks)
    return summary


def _figure(out: Path, order: list[str], ranks: dict[str, list[float]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = [m for m in order if ranks[m]]
    fig, ax = plt.subplots(figsize=(7, 0.35 * len(shown) + 1.2))
    ax.boxplot([ranks[m] for m in shown], vert=False, tick_labels=shown, showmeans=True)
    ax.invert_yaxis()
    ax.set_xlabel("rank per (table, seed), 1 = best AUROC; triangle = mean")
    ax.set_title("ADBench novelty protocol: rank of each method")
    fig.tight_layout()
    fig.savefig(out / "mean_rank.png", dpi=120)
    plt.close(fig)
