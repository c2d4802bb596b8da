"""Training throughput of each task: samples per second, for 1 and 2 processes and the fast paths.

Run from the repository root::

    python -m benchmarks.bench_pipeline --device cpu --nproc 1,2
    python -m benchmarks.bench_pipeline --device cuda --nproc 1 --runtime fp32,bf16,compile,bf16+compile+channels_last

Each (workload, processes, runtime) cell is one short training run in a fresh process (``torchrun`` when
processes > 1, gloo on CPU, nccl on CUDA). Samples per second of a task = rows of its update batch (the
``batch_size`` of that task) x steps x processes / seconds, measured between the task's first and last
logged step, so start-up and compilation are left out. Workloads: "vector" is the 2-D demo data with the
quick vector preset; "image" is 28x28 single-channel data with the quick image preset (DCGAN-like nets).
Results go to ``benchmarks/results/pipeline_<device>.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO_ROOT = Path(__file__).resolve().parent.parent
TASKS = ("task1", "task2", "task3", "detector")
STEPS = {
    "vector": {"task1.steps": 400, "task2.steps": 200, "task3.steps": 200, "detector.steps": 200},
    "image": {"task1.steps": 120, "task2.steps": 60, "task3.steps": 60, "detector.steps": 60},
}


def _data(workload: str) -> torch.Tensor:
    from omasgan.data import bimodal

    if workload == "vector":
        return torch.from_numpy(bimodal(4000, random_state=0))
    generator = torch.Generator().manual_seed(0)
    return torch.rand(4000, 1, 28, 28, generator=generator) * 2 - 1


def _runtime(name: str) -> dict:
    parts = set(name.split("+"))
    return {
        "precision": "bf16" if "bf16" in parts else "fp32",
        "compile": "compile" in parts,
        "channels_last": "channels_last" in parts,
    }


def worker(workload: str, runtime: str, device: str, out: Path) -> None:
    """One timed training run (every rank runs it; rank 0 writes the figures)."""
    from omasgan.config import OMASGANConfig
    from omasgan.distributed import session
    from omasgan.pipeline import OMASGAN
    from omasgan.runtime import resolve_device

    kind = "vector" if workload == "vector" else "image"
    config = OMASGANConfig.preset("quick", kind).with_overrides({**STEPS[workload], "log_every": 10})
    stamps: dict[str, list[tuple[int, float]]] = {task: [] for task in TASKS}

    def clock(task, step, metrics):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        stamps[task].append((step, time.perf_counter()))

    with session(resolve_device(device)) as context:
        OMASGAN(config, device=device, verbose=0, callbacks=[clock], runtime=_runtime(runtime)).fit(_data(workload))
        if context.is_main:
            result = {}
            for task in TASKS:
                (first_step, first_time), (last_step, last_time) = stamps[task][0], stamps[task][-1]
                batch = getattr(config, task).batch_size
                rows = (last_step - first_step) * batch * context.world_size
                result[task] = rows / (last_time - first_time)
            out.write_text(json.dumps(result))


def run_cell(workload: str, nproc: int, runtime: str, device: str) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "result.json"
        args = ["--worker", "--workload", workload, "--runtime", runtime, "--device", device, "--result", str(out)]
        script = [str(Path(__file__).resolve()), *args]
        if nproc > 1:
            launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}"]
            command = [*launcher, *script]
        else:
            command = [sys.executable, *script]
        env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))  # one process: torch's default threads; torchrun: 1 each
        subprocess.run(command, env=env, check=True, cwd=REPO_ROOT, capture_output=True)
        return json.loads(out.read_text())


def to_markdown(rows: list[dict], meta: dict) -> str:
    lines = [
        f"# Pipeline training throughput ({meta['device']})",
        "",
        f"{meta['machine']}; torch {meta['torch']}; ops backend {meta['backend']}; {meta['date']}.",
        "Samples/s = update-batch rows x steps x processes / seconds between a task's first and last logged step.",
        "Reproduce: `" + meta["command"] + "`",
        "",
        "| workload | processes | runtime | task1 | task2 | task3 | detector | vs 1 process (task1) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    base = {(r["workload"], r["runtime"]): r["task1"] for r in rows if r["nproc"] == 1}
    for r in rows:
        single = base.get((r["workload"], r["runtime"]), float("nan"))
        ratio = r["task1"] / single
        cells = " | ".join(f"{r[t]:,.0f}" for t in TASKS)
        lines.append(f"| {r['workload']} | {r['nproc']} | {r['runtime']} | {cells} | {ratio:.2f}x |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--nproc", default="1,2")
    parser.add_argument("--runtime", default="fp32", help="comma-separated: fp32, bf16, compile, channels_last, a+b")
    parser.add_argument("--workloads", default="vector,image")
    parser.add_argument("--out", default=str(REPO_ROOT / "benchmarks" / "results"))
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--workload", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.workload, args.runtime, args.device, Path(args.result))
        return
    rows = []
    for workload in args.workloads.split(","):
        for nproc in (int(n) for n in args.nproc.split(",")):
            for runtime in args.runtime.split(","):
                result = run_cell(workload, nproc, runtime, args.device)
                rows.append({"workload": workload, "nproc": nproc, "runtime": runtime, **result})
                print(json.dumps(rows[-1]), flush=True)
    import omasgan.ops

    meta = {
        "device": args.device if args.device == "cpu" else torch.cuda.get_device_name(0),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "torch": torch.__version__,
        "backend": omasgan.ops.backend(),
        "date": time.strftime("%Y-%m-%d"),
        "command": "python -m benchmarks.bench_pipeline " + " ".join(sys.argv[1:]),
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = out / f"pipeline_{'cpu' if args.device == 'cpu' else 'cuda'}"
    stem.with_suffix(".json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    stem.with_suffix(".md").write_text(to_markdown(rows, meta))
    print(to_markdown(rows, meta))


if __name__ == "__main__":
    main()
