"""``ops.knn`` forward times at direct-mode shapes, one line per process, for comparing two builds of the
extension process by process (this VM's spread between processes exceeds most kernel changes).

Put the other build's tree (its ``omasgan/`` with its ``_C*.so``) in a folder and alternate, from each::

    for i in 1 2 3 4 5; do
      (cd /work/main && PYTHONPATH=$PWD python -m benchmarks.knn_shapes --label new)
      (cd /tmp/old && PYTHONPATH=$PWD python -m benchmarks.knn_shapes --label old)
    done

``PYTHONPATH`` matters: without it an installed copy of omasgan may be the one imported.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from omasgan import ops

# (queries, stored, D, k): min_distance's shape, tabular J's neighbour head (k = 32), 2-D points.
SHAPES = [(100, 4096, 2, 1), (256, 4096, 2, 32), (256, 4096, 8, 32), (256, 4096, 16, 32), (1024, 16384, 2, 10),
          (1024, 8192, 8, 32)]


def median_microseconds(n: int, q: int, d: int, k: int, calls: int) -> float:
    x, ref = torch.randn(n, d), torch.randn(q, d)
    for _ in range(3):
        ops.knn(x, ref, k)
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        ops.knn(x, ref, k)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--label", default="", help="first word of the output line")
    parser.add_argument("--calls", type=int, default=15)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    times = [median_microseconds(*shape, args.calls) for shape in SHAPES]
    print(" ".join([args.label, *(f"{t:.1f}" for t in times)]).strip(), flush=True)


if __name__ == "__main__":
    main()
