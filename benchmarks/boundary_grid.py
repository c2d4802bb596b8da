"""G(z) above B(z) for the same latents, from completed run directories: what Task 2 made of each G sample.

Run from the repository root::

    python -m benchmarks.boundary_grid runs/ablation_detector/mnist-loo-1_seed1/chosen_default out.png --columns 12

Rows alternate G and B on one block of latents each (seeded, so reruns draw the same z).
"""

from __future__ import annotations

import argparse

import torch

from omasgan.models import OMASGANModels
from omasgan.plots import sample_grid


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir")
    parser.add_argument("out")
    parser.add_argument("--columns", type=int, default=12)
    parser.add_argument("--blocks", type=int, default=2, help="pairs of G / B rows")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    models, _ = OMASGANModels.load_run(args.run_dir)
    n = args.columns * args.blocks
    samples = {
        key: models.sample(key, n, torch.Generator().manual_seed(args.seed)).numpy()
        for key in ("generator", "boundary")
    }
    rows = {}
    for block in range(args.blocks):
        cut = slice(block * args.columns, (block + 1) * args.columns)
        rows[f"G(z), z {cut.start + 1}-{cut.stop}"] = samples["generator"][cut]
        rows[f"B(z), z {cut.start + 1}-{cut.stop}"] = samples["boundary"][cut]
    print(sample_grid(rows, args.out, n=args.columns))


if __name__ == "__main__":
    main()
