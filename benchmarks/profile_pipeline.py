"""Where a training run's time goes: per task, the share of CPU time in each kind of work.

Run from the repository root::

    python -m benchmarks.profile_pipeline --device cpu

One short run per workload and preset under torch.profiler (the workloads and step counts of
bench_pipeline: "vector" = 2-D data, "image" = 28x28 data; the quick and the paper preset's sizes, which
differ in batch, reference pool and network sizes: images N = 256, Q = 1024; 2-D N = 100, Q = 4096). Each operator
event's *self* time is charged to the task whose ``omasgan.<task>`` range holds it (the pipeline
names them) and to the first category its own name or an enclosing event's name matches, innermost
first: omasgan's operators (min_distance, knn, scattering, by name, backward included), networks'
convolutions and matrix products, the optimiser step, data movement (copies, indexing,
concatenation), everything else. Results go to ``benchmarks/results/profile_<device>.md``.
"""

from __future__ import annotations

import argparse
import collections
import sys
import time
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from benchmarks.bench_pipeline import STEPS, TASKS, _data  # noqa: E402

# (category, name fragments), tried in order on an event and then on its enclosing events.
CATEGORIES = [
    ("ops.min_distance", ("omasgan::min_distance",)),
    ("ops.knn", ("omasgan::knn",)),
    ("ops.scattering", ("omasgan::scattering",)),
    ("optimiser", ("Optimizer.step", "Optimizer.zero_grad")),
    ("networks: conv", ("convolution", "conv2d", "conv_transpose", "Convolution")),
    ("networks: matmul", ("aten::mm", "aten::addmm", "aten::bmm", "aten::matmul", "aten::linear", "MmBackward",
                          "AddmmBackward")),
    ("data movement", ("aten::copy_", "aten::to", "aten::index", "aten::cat", "aten::stack", "aten::contiguous",
                       "aten::clone", "aten::randperm", "aten::gather", "aten::scatter")),
]


def _category(event) -> str:
    current = event
    while current is not None:
        for name, fragments in CATEGORIES:
            if any(fragment in current.name for fragment in fragments):
                return name
        current = current.cpu_parent
    return "other"


def _task(event) -> str | None:
    current = event
    while current is not None:
        if current.name.startswith("omasgan.") and current.name[len("omasgan."):] in TASKS:
            return current.name[len("omasgan."):]
        current = current.cpu_parent
    return None


def profile_workload(workload: str, device: str, preset: str = "quick") -> tuple[dict, dict]:
    from omasgan.config import OMASGANConfig
    from omasgan.pipeline import OMASGAN

    kind = "vector" if workload == "vector" else "image"
    config = OMASGANConfig.preset(preset, kind).with_overrides({**STEPS[workload], "log_every": 10})
    x = _data(workload)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device == "cuda" else [])
    start = time.perf_counter()
    with profile(activities=activities) as prof:
        OMASGAN(config, device=device, verbose=0).fit(x)
    wall = time.perf_counter() - start
    shares: dict = collections.defaultdict(lambda: collections.defaultdict(float))
    for event in prof.events():
        task = _task(event)
        if task is not None and not event.name.startswith("omasgan."):
            shares[task][_category(event)] += event.self_cpu_time_total / 1e6
    return shares, {"wall_s": wall, "workload": workload, "preset": preset}


def markdown(results: dict, device: str) -> str:
    names = [name for name, _ in CATEGORIES] + ["other"]
    lines = [
        f"# Where training time goes: {device}",
        "",
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, {time.strftime('%Y-%m-%d')}. Share of each "
        "task's profiled CPU self time (operator events inside the task's `omasgan.<task>` range; threads "
        "summed, so the shares, not the seconds, compare across tasks). Reproduce: "
        f"`python -m benchmarks.profile_pipeline --device {device}`.",
        "",
    ]
    for shares, info in results.values():
        workload = info["workload"]
        lines += [
            f"## {workload} ({info['preset']} preset, {', '.join(f'{t} {s}' for t, s in STEPS[workload].items())}; "
            f"wall {info['wall_s']:.1f} s under the profiler)",
            "",
            "| task | profiled s | " + " | ".join(names) + " |",
            "|---" * (len(names) + 2) + "|",
        ]
        for task in TASKS:
            row = shares.get(task, {})
            total = sum(row.values())
            cells = [f"{100 * row.get(n, 0.0) / total:.1f}%" if total else "—" for n in names]
            lines.append(f"| {task} | {total:.2f} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--workloads", default="vector,image")
    parser.add_argument("--presets", default="quick,paper")
    parser.add_argument("--out", default=str(REPO_ROOT / "benchmarks" / "results"))
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    results = {
        (w, p): profile_workload(w, args.device, p) for p in args.presets.split(",") for w in args.workloads.split(",")
    }
    text = markdown(results, args.device)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / f"profile_{args.device}.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
