"""Paired speed ratios of an operator against its best peer, robust to a noisy machine.

bench_ops times each implementation in its own block, so a slow phase of a shared VM (the same torch.mm
varies by 1.5x here from minute to minute) lands on one side of a ratio. This alternates the two calls
(omasgan, peer, omasgan, peer, ...) and reports the median and quartiles of the per-pair ratios
peer / omasgan, so both sides of each ratio ran in the same few milliseconds (below 1: omasgan is slower;
against ``--peer gemm_floor`` the ratio is the floor's share, the inverse of bench_ops's omasgan / floor).
From the repository root::

    python -m benchmarks.paired_ratio --op scattering --shapes 256x784,1024x3072 --pairs 60
    python -m benchmarks.paired_ratio --op min_distance --shapes 256x1024x784 --peer gemm_floor
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from benchmarks.bench_ops import BEST_PEER, FLOOR_GEMMS, IMPLS, _inputs, _run_once


def paired_ratios(
    kind: str, shape: tuple[int, ...], backward: bool, pairs: int, peer_name: str, warmup: int = 3
) -> np.ndarray:
    """peer time / omasgan time for ``pairs`` back-to-back pairs (inputs made once). The gemm_floor peer
    runs forward only and counts FLOOR_GEMMS times, as bench_ops's floor column does."""
    ours = IMPLS[kind]["omasgan"]
    floor = peer_name == "gemm_floor"
    peer_backward = backward and not floor
    scale = FLOOR_GEMMS[(kind, "fwd+bwd" if backward else "fwd")] if floor else 1

    def peer(*args):
        return IMPLS[kind][peer_name](*(a.detach() for a in args) if floor else args)

    args = _inputs(kind, shape, "cpu", backward)
    for _ in range(warmup):
        _run_once(ours, args, backward)
        _run_once(peer, args, peer_backward)
    ratios = np.empty(pairs)
    for p in range(pairs):
        # Alternate which goes first, so neither side always follows the other's cache footprint.
        first, second = (ours, peer) if p % 2 == 0 else (peer, ours)
        t0 = time.perf_counter()
        _run_once(first, args, backward if first is ours else peer_backward)
        t1 = time.perf_counter()
        _run_once(second, args, backward if second is ours else peer_backward)
        t2 = time.perf_counter()
        ours_s, peer_s = (t1 - t0, t2 - t1) if first is ours else (t2 - t1, t1 - t0)
        ratios[p] = scale * peer_s / ours_s
    return ratios


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--op", default="scattering", choices=list(IMPLS))
    parser.add_argument("--shapes", required=True, help="comma-separated, e.g. 256x784 or 100x4096x2")
    parser.add_argument("--pairs", type=int, default=60)
    parser.add_argument("--peer", help="default: the op's best peer (bench_ops.BEST_PEER); or gemm_floor")
    parser.add_argument("--forward-only", action="store_true", help="time forward alone (default: fwd+bwd)")
    args = parser.parse_args(argv)
    backward = not args.forward_only
    peer = args.peer or BEST_PEER[args.op]
    print(
        f"{args.op}, {'fwd+bwd' if backward else 'fwd'}, {torch.get_num_threads()} threads, float32; "
        f"{peer} / omasgan over {args.pairs} alternating pairs\n"
    )
    print("| shape | median | quartiles |\n|---|---|---|")
    for text in args.shapes.split(","):
        shape = tuple(int(v) for v in text.split("x"))
        ratios = paired_ratios(args.op, shape, backward, args.pairs, peer)
        q1, median, q3 = np.percentile(ratios, [25, 50, 75])
        print(f"| {shape} | {median:.2f}x | {q1:.2f}-{q3:.2f} |", flush=True)


if __name__ == "__main__":
    main()
