"""Throughput of J's neighbour head as the tuned image preset builds it, on MNIST leave-one-out shapes.

Run from the repository root (``OMASGAN_DATA`` pointing at the datasets)::

    python -m benchmarks.bench_neighbour_head

The critic is untrained (its weights do not change the cost): J stores up to 65,536 training images'
critic features in 128 principal components and scores by its local_k = 10 neighbours. Timed: the
initialisation (PCA and every stored sample's own 10 neighbours), scoring the 10,000 test images
end to end (critic features + head), and the head alone on precomputed features. One JSON line.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from omasgan.config import OMASGANConfig
from omasgan.data.protocols import leave_one_out
from omasgan.nets.assembly import config_nets, detector_network
from omasgan.nets.features import unit_features


def _seconds(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--anomaly-class", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3, help="scoring runs; the fastest is reported")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    config = OMASGANConfig.preset("tuned", "image")
    split = leave_one_out("mnist", args.anomaly_class)
    shape = tuple(split.train.shape[1:])
    _, critic, pixel_detector = config_nets(config, shape)
    detector = detector_network(critic, pixel_detector, config, shape).eval()
    train, calibration = torch.from_numpy(split.train), torch.from_numpy(split.validation)
    test = torch.from_numpy(split.test)
    with torch.no_grad():
        init_s = _seconds(lambda: detector.initialise(train, calibration))
        features = torch.cat([unit_features(detector.critic, part) for part in test.split(4096)])
        score_s = min(_seconds(lambda: torch.cat([detector(p) for p in test.split(1024)])) for _ in range(args.repeats))
        head_s = min(_seconds(lambda: detector.head(features)) for _ in range(args.repeats))
    print(
        json.dumps(
            {
                "stored": int(detector.head.memory.shape[0]),
                "test_images": len(test),
                "threads": torch.get_num_threads(),
                "initialise_s": round(init_s, 3),
                "score_images_per_s": round(len(test) / score_s, 1),
                "head_only_samples_per_s": round(len(test) / head_s, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
