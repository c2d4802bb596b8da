"""Speed, extra memory and accuracy of the compiled operators against the best torch composites.

Run from the repository root::

    python -m benchmarks.bench_ops --device cpu --with-backward

Every implementation is first checked against the float64 reference (``correctness``), then timed with
``torch.utils.benchmark.Timer`` (``timing``). Peak extra memory is measured in a fresh subprocess per
(implementation, shape) on CPU (growth of the peak resident set over the inputs) and with
``torch.cuda.max_memory_allocated`` on CUDA. Results go to ``benchmarks/results/ops_<device>.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.utils.benchmark as benchmark

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from omasgan import ops  # noqa: E402
from tests.ops.samples import near_duplicate_points  # noqa: E402

MIN_DISTANCE_SIZES = [(100, 4096, 2), (256, 1024, 784), (256, 1024, 3072), (1024, 8192, 784), (4096, 16384, 64)]
# (queries, stored, D): J's neighbour search (65,536 stored in 128 components), MNIST-sized pixel kNN,
# and 2-D points (direct differences).
KNN_SIZES = [(4096, 65536, 128), (10000, 60000, 784), (1024, 16384, 2)]
KNN_K = 10
# (8192, 784) is past what the CPU kernel keeps (omasgan.ops.scattering.PAIR_MATRIX_BUDGET_BYTES): it
# times the recompute strategy, whose memory stays O(N * tile).
SCATTERING_SIZES = [(n, d) for d in (2, 784, 3072) for n in (100, 256, 1024, 4096)] + [(8192, 784)]
NAIVE_LIMIT_BYTES = 6 << 30  # the broadcast (N, Q, D) difference tensor is only tried below this


def latent_dim(dim: int) -> int:
    """Latent size paired with a sample size in the scattering benchmark: 2 for 2-D data, 128 for images."""
    return 2 if dim <= 2 else 128


# --- min_distance implementations -------------------------------------------------------------------


def md_omasgan(x, ref):
    return ops.min_distance(x, ref)[0]


def md_naive(x, ref):
    return (x[:, None, :] - ref[None, :, :]).norm(dim=2).min(1).values


def md_cdist(x, ref):
    return torch.cdist(x, ref).min(1).values


def md_composite(x, ref):
    """The strongest composite: GEMM argmin (||r||^2 - 2 x.r), then the exact distance of the winner."""
    with torch.no_grad():
        index = torch.addmm((ref * ref).sum(1)[None, :], x, ref.t(), alpha=-2).argmin(1)
    return (x - ref[index]).norm(dim=1)


def md_gemm_floor(x, ref):
    return torch.mm(x, ref.t())


MIN_DISTANCE_IMPLS = {
    "omasgan": md_omasgan,
    "composite": md_composite,
    "cdist": md_cdist,
    "naive": md_naive,
    "gemm_floor": md_gemm_floor,
}

try:  # optional extra column
    import faiss  # type: ignore

    def faiss_distances(x, ref, k):
        """FAISS's exact flat index (forward only: it has no gradients)."""
        if x.requires_grad or ref.requires_grad:
            raise NotImplementedError("faiss has no gradients")
        index = faiss.IndexFlatL2(ref.shape[1])
        index.add(ref.detach().cpu().numpy())
        distances, _ = index.search(x.detach().cpu().numpy(), k)
        return torch.from_numpy(distances).clamp_min(0).sqrt()

    def md_faiss(x, ref):
        return faiss_distances(x, ref, 1)[:, 0]

    MIN_DISTANCE_IMPLS["faiss"] = md_faiss
except ImportError:
    pass


# --- knn implementations ----------------------------------------------------------------------------


def knn_omasgan(x, ref):
    return ops.knn(x, ref, KNN_K)[0]


def _exact_selected(x, ref, index):
    """Distances of the selected pairs by direct differences (differentiable), as a careful user adds."""
    return (x[:, None, :] - ref[index]).norm(dim=2)


def knn_composite(x, ref):
    """The torch composite: one GEMM-form distance matrix and topk, then exact distances of the winners."""
    with torch.no_grad():
        squared = torch.addmm((ref * ref).sum(1)[None, :], x, ref.t(), alpha=-2)
        index = squared.topk(KNN_K, dim=1, largest=False).indices
    return _exact_selected(x, ref, index)


def _nearest_by_gemm(ref_norms, part, ref):
    return torch.addmm(ref_norms, part, ref.t(), alpha=-2).topk(KNN_K, dim=1, largest=False).indices


def knn_composite_chunked(x, ref):
    """The composite over 1024 queries at a time (what J's neighbour head did before ops.knn)."""
    with torch.no_grad():
        norms = (ref * ref).sum(1)[None, :]
        index = torch.cat([_nearest_by_gemm(norms, part, ref) for part in x.split(1024)])
    return _exact_selected(x, ref, index)


KNN_IMPLS = {
    "omasgan": knn_omasgan,
    "composite": knn_composite,
    "composite_chunked": knn_composite_chunked,
    "gemm_floor": md_gemm_floor,
}

if "faiss" in MIN_DISTANCE_IMPLS:  # optional extra column, as for min_distance
    KNN_IMPLS["faiss"] = lambda x, ref: faiss_distances(x, ref, KNN_K)


# --- scattering implementations ---------------------------------------------------------------------


class _HandwrittenScattering(torch.autograd.Function):
    """Best pure-torch variant: GEMM-form pairwise distances, a hand-written backward that reuses them."""

    @staticmethod
    def forward(ctx, z, x, eps):
        n = x.shape[0]

        def pairwise(p):
            sq = (p * p).sum(1)
            return torch.addmm(sq[:, None] + sq[None, :], p, p.t(), alpha=-2).clamp_min_(0).sqrt_()

        a, b = pairwise(z), pairwise(x)
        ratio = a / (b + eps)
        ratio.fill_diagonal_(0)
        ctx.save_for_backward(z, x, a, b)
        ctx.eps = eps
        return ratio.sum(1) / (n - 1)

    @staticmethod
    def backward(ctx, grad_s):
        z, x, a, b = ctx.saved_tensors
        n = x.shape[0]
        w = (grad_s[:, None] + grad_s[None, :]) / (n - 1)
        b_eps = b + ctx.eps
        coef_x = torch.where(b > 0, -w * a / (b_eps * b_eps * b), 0.0)
        coef_z = torch.where(a > 0, w / (b_eps * a), 0.0)
        coef_x.fill_diagonal_(0)
        coef_z.fill_diagonal_(0)
        grad_x = x * coef_x.sum(1, keepdim=True) - coef_x @ x
        grad_z = z * coef_z.sum(1, keepdim=True) - coef_z @ z
        return grad_z, grad_x, None


def sc_omasgan(z, x):
    return ops.scattering(z, x)


def sc_handwritten(z, x):
    return _HandwrittenScattering.apply(z, x, 1e-8)


def sc_reference(z, x):
    return ops.scattering_reference(z, x)


def sc_gemm_floor(z, x):
    return torch.mm(x, x.t()), torch.mm(z, z.t())


SCATTERING_IMPLS = {
    "omasgan": sc_omasgan,
    "torch_handwritten": sc_handwritten,
    "reference": sc_reference,
    "gemm_floor": sc_gemm_floor,
}


# --- harness ----------------------------------------------------------------------------------------


def _inputs(kind, shape, device, requires_grad, seed=0):
    g = torch.Generator().manual_seed(seed)
    if kind in ("min_distance", "knn"):
        n, q, d = shape
        a, b = torch.randn(n, d, generator=g), torch.randn(q, d, generator=g)
    else:
        n, d = shape
        a, b = torch.randn(n, latent_dim(d), generator=g), torch.randn(n, d, generator=g)
    return tuple(t.to(device).requires_grad_(requires_grad) for t in (a, b))


def _fits(kind, impl, shape):
    if kind == "knn" and impl == "composite":
        n, q, d = shape
        return n * q * 4 * 2 <= NAIVE_LIMIT_BYTES
    if kind == "min_distance" and impl == "naive":
        n, q, d = shape
        return n * q * d * 4 * 3 <= NAIVE_LIMIT_BYTES
    if kind == "scattering" and impl == "reference":
        n, d = shape
        return n * n * (d + latent_dim(d)) * 4 * 3 <= NAIVE_LIMIT_BYTES
    return True


def _run_once(fn, args, backward):
    out = fn(*args)
    if backward:
        torch.autograd.grad(out.sum(), [a for a in args if a.requires_grad])
    return out


def timing(fn, args, backward, min_run_time):
    context = dict(run=_run_once, fn=fn, args=args, backward=backward)
    # Timer runs on one thread unless told otherwise; time with the threads the report states.
    timer = benchmark.Timer(stmt="run(fn, args, backward)", globals=context, num_threads=torch.get_num_threads())
    measurement = timer.blocked_autorange(min_run_time=min_run_time)
    return {"median_ms": measurement.median * 1e3, "iqr_ms": measurement.iqr * 1e3, "runs": len(measurement.times)}


def correctness(kind, impls, device):
    """Each implementation against float64 on a small random case and on the near-duplicate case."""
    report = {}
    if kind in ("min_distance", "knn"):
        x64, ref64 = near_duplicate_points(64, 256, 784, offset=1000.0, gap=1e-3)
        random64 = (torch.randn(50, 40, dtype=torch.float64), torch.randn(300, 40, dtype=torch.float64))
        if kind == "knn":
            # Every query also gets a second near-duplicate, so more than the first neighbour is hard.
            direction = torch.randn(x64.shape, dtype=torch.float64)
            ref64 = torch.cat([ref64, x64 + 2e-3 * direction / direction.norm(dim=1, keepdim=True)])
            oracle = lambda a, b: ops.knn_reference(a, b, KNN_K)[0]  # noqa: E731
        else:
            oracle = lambda a, b: ops.min_distance_reference(a, b)[0]  # noqa: E731
    else:
        x64, _ = near_duplicate_points(64, 64, 784, offset=1000.0, gap=1e-3)
        x64[1::2] = x64[0::2] + 1e-3 * torch.randn(32, 784, dtype=torch.float64)
        z64 = torch.randn(64, 128, dtype=torch.float64)
        x64, ref64 = z64, x64
        random64 = (torch.randn(40, 16, dtype=torch.float64), torch.randn(40, 50, dtype=torch.float64))
        oracle = ops.scattering_reference
    for name, fn in impls.items():
        if name == "gemm_floor":
            continue
        entry = {}
        for case, (a64, b64) in {"random": random64, "near_duplicates": (x64, ref64)}.items():
            a32, b32 = a64.float(), b64.float()
            expected = oracle(a32.double(), b32.double())  # float64 on the very float32 values tested
            got = fn(a32.to(device), b32.to(device)).double().cpu()
            entry[f"max_rel_err_{case}"] = ((got - expected).abs() / expected.abs().clamp_min(1e-30)).max().item()
        report[name] = entry
    return report


def peak_extra_memory_mb(kind, impl, shape, device, backward):
    if device == "cuda":
        args = _inputs(kind, shape, device, backward)
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        _run_once(IMPLS[kind][impl], args, backward)
        torch.cuda.synchronize()
        return (torch.cuda.max_memory_allocated() - base) / 2**20
    command = [sys.executable, "-m", "benchmarks.bench_ops", "--memory-probe", kind, impl, json.dumps(shape)]
    if backward:
        command.append("--with-backward")
    result = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=1800)
    if result.returncode != 0:
        return float("nan")
    return float(result.stdout.strip().splitlines()[-1])


def _status_kib(field):
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def memory_probe(kind, impl, shape, backward):
    """Subprocess body: peak resident memory during one run above the resident memory before it (MiB).

    Writing 5 to /proc/self/clear_refs resets the kernel's peak-RSS mark (VmHWM), so the peak is that of
    the run alone, not of the imports before it."""
    args = _inputs(kind, tuple(shape), "cpu", backward)
    _run_once(IMPLS[kind][impl], tuple(_inputs(kind, (16,) * len(shape), "cpu", backward)), backward)  # load kernels
    Path("/proc/self/clear_refs").write_text("5")
    before = _status_kib("VmRSS")
    _run_once(IMPLS[kind][impl], args, backward)
    print(max(0, _status_kib("VmHWM") - before) / 1024)


IMPLS = {"min_distance": MIN_DISTANCE_IMPLS, "knn": KNN_IMPLS, "scattering": SCATTERING_IMPLS}
SIZES = {"min_distance": MIN_DISTANCE_SIZES, "knn": KNN_SIZES, "scattering": SCATTERING_SIZES}
BEST_PEER = {"min_distance": "composite", "knn": "composite", "scattering": "torch_handwritten"}

# GEMM floor of a pass, in units of the forward floor (one torch.mm of the op's shape; for scattering the
# two products X X^T and Z Z^T). min_distance's backward is O(N D), so fwd+bwd needs the one GEMM;
# scattering's backward needs the weighted sums C X and E Z, a second GEMM set, when it can read the
# forward's distances (the hand-written variant, and the CPU kernel within its memory budget). Beyond
# the budget the kernel recomputes the distance GEMMs too: three sets, so its ratio there is >= 1.5x.
FLOOR_GEMMS = {
    ("min_distance", "fwd"): 1,
    ("min_distance", "fwd+bwd"): 1,
    ("knn", "fwd"): 1,
    ("knn", "fwd+bwd"): 1,
    ("scattering", "fwd"): 1,
    ("scattering", "fwd+bwd"): 2,
}


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []:
        if line.startswith("model name"):
            return f"{line.split(':', 1)[1].strip()} ({os.cpu_count()} cores)"
    return platform.processor() or platform.machine()


def run(device, backward_modes, min_run_time, kinds, quick):
    results = {
        "commit": subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True
        ).stdout.strip(),
        "torch": torch.__version__,
        "device": device if device == "cpu" else torch.cuda.get_device_name(),
        "cpu": _cpu_model(),
        "threads": torch.get_num_threads(),
        "dtype": "float32",
        "backend": ops.backend(),
        "date": time.strftime("%Y-%m-%d"),
        "rows": [],
        "accuracy": {},
    }
    for kind in kinds:
        results["accuracy"][kind] = correctness(kind, IMPLS[kind], device)
        sizes = SIZES[kind]
        if quick:
            sizes = sizes[:2]
        for shape in sizes:
            for backward in backward_modes:
                for name, fn in IMPLS[kind].items():
                    if name == "gemm_floor" and backward:
                        continue  # the fwd+bwd floor is derived from the forward one (see FLOOR_GEMMS)
                    row = {"op": kind, "shape": list(shape), "impl": name, "pass": "fwd+bwd" if backward else "fwd"}
                    if not _fits(kind, name, shape):
                        row.update(median_ms=math.inf, note="skipped: does not fit in memory")
                    else:
                        try:
                            row.update(timing(fn, _inputs(kind, shape, device, backward), backward, min_run_time))
                            row["extra_mb"] = peak_extra_memory_mb(kind, name, shape, device, backward)
                        except torch.OutOfMemoryError:
                            row.update(median_ms=math.inf, note="out of memory")
                        except NotImplementedError as exc:
                            row.update(median_ms=math.inf, note=str(exc))
                    results["rows"].append(row)
                    print(json.dumps(row), flush=True)
    return results


def _cell(rows, op, shape, impl, pass_):
    for row in rows:
        if row["op"] == op and row["shape"] == list(shape) and row["impl"] == impl and row["pass"] == pass_:
            return row
    return None


def markdown(results, command):
    lines = [
        f"# Operator benchmark: {results['device']}",
        "",
        f"Machine: {results.get('cpu', '?')}.",
        "",
        f"torch {results['torch']}, {results['threads']} threads, {results['dtype']}, backend {results['backend']}, "
        f"commit {results['commit']}, {results['date']}. Times are medians in ms (IQR in the JSON).",
        "",
        f"Reproduce: `{command}`",
        "",
    ]
    for op, impls in IMPLS.items():
        rows = [r for r in results["rows"] if r["op"] == op]
        if not rows:
            continue
        best = BEST_PEER[op]
        shapes = []
        for r in rows:
            if r["shape"] not in shapes:
                shapes.append(r["shape"])
        lines += [
            f"## {op}",
            "",
            f"gemm_floor: torch.mm of the op's shape, times the GEMM sets the pass needs "
            f"(fwd+bwd: {FLOOR_GEMMS[(op, 'fwd+bwd')]}). Extra MiB: peak resident memory above the inputs "
            "during one run, in a fresh process.",
            "",
        ]
        others = [i for i in impls if i != "omasgan"]
        header = (
            "| shape | pass | omasgan | "
            + " | ".join(others)
            + f" | {best} / omasgan | omasgan / gemm_floor | omasgan extra MiB | {best} extra MiB |"
        )
        lines += [header, "|" + "---|" * (header.count("|") - 1)]
        for shape in shapes:
            for pass_ in ("fwd", "fwd+bwd"):
                ours = _cell(rows, op, shape, "omasgan", pass_)
                if ours is None:
                    continue
                cells = [f"{ours['median_ms']:.3g}"]
                for impl in others:
                    c = _cell(rows, op, shape, impl, "fwd" if impl == "gemm_floor" else pass_)
                    if impl == "gemm_floor" and c is not None:
                        c = dict(c, median_ms=c["median_ms"] * FLOOR_GEMMS[(op, pass_)])
                    cells.append("—" if c is None or math.isinf(c["median_ms"]) else f"{c['median_ms']:.3g}")
                comp, floor = _cell(rows, op, shape, best, pass_), _cell(rows, op, shape, "gemm_floor", "fwd")
                speedup = comp["median_ms"] / ours["median_ms"] if comp else math.nan
                floor_ms = floor["median_ms"] * FLOOR_GEMMS[(op, pass_)] if floor else math.nan
                vs_floor = ours["median_ms"] / floor_ms
                lines.append(
                    f"| {tuple(shape)} | {pass_} | "
                    + " | ".join(cells)
                    + f" | {speedup:.2f}x | {vs_floor:.2f}x | {ours.get('extra_mb', math.nan):.1f} | "
                    f"{(comp or {}).get('extra_mb', math.nan):.1f} |"
                )
        lines += [
            "",
            "Max relative error against float64 (float32 inputs):",
            "",
            "| implementation | random | near-duplicates (1000 + N(0,1), gap 1e-3) |",
            "|---|---|---|",
        ]
        for impl, acc in results["accuracy"].get(op, {}).items():
            lines.append(f"| {impl} | {acc['max_rel_err_random']:.2e} | {acc['max_rel_err_near_duplicates']:.2e} |")
        lines.append("")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--with-backward", action="store_true", help="also time forward+backward")
    parser.add_argument("--ops", default="min_distance,knn,scattering")
    parser.add_argument("--min-run-time", type=float, default=0.5, help="seconds per timing")
    parser.add_argument("--quick", action="store_true", help="first two sizes only (smoke run)")
    parser.add_argument("--out", default=str(REPO_ROOT / "benchmarks" / "results"))
    parser.add_argument("--suffix", default="", help="write ops_<device><suffix>.{json,md} (a partial run)")
    parser.add_argument("--from-json", help="re-render the markdown of an earlier run's JSON")
    parser.add_argument("--memory-probe", nargs=3, metavar=("OP", "IMPL", "SHAPE"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.memory_probe:
        kind, impl, shape = args.memory_probe
        memory_probe(kind, impl, json.loads(shape), args.with_backward)
        return
    if args.from_json:
        results = json.loads(Path(args.from_json).read_text())
        command = results.get("command", "python -m benchmarks.bench_ops --device cpu --with-backward")
        Path(args.from_json).with_suffix(".md").write_text(markdown(results, command))
        return
    modes = [False, True] if args.with_backward else [False]
    results = run(args.device, modes, args.min_run_time, args.ops.split(","), args.quick)
    command = "python -m benchmarks.bench_ops " + " ".join(argv if argv is not None else sys.argv[1:])
    results["command"] = command
    out = Path(os.environ.get("OUT", args.out)) if args.device == "cuda" else Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"ops_{args.device}{args.suffix}.json").write_text(json.dumps(results, indent=1))
    (out / f"ops_{args.device}{args.suffix}.md").write_text(markdown(results, command))
    print(markdown(results, command))


if __name__ == "__main__":
    main()
