#!/usr/bin/env bash
# One-shot GPU check: build the CUDA extension, run the CUDA tests and the ops benchmark on a GPU
# machine, and leave everything (logs, ops_cuda.{md,json}) in $OUT (default: benchmarks/results).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-benchmarks/results}"
mkdir -p "$OUT"
{
  nvidia-smi || true
  python -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.is_available())"
} > "$OUT/gpu_env.txt" 2>&1
# Build against the machine's CUDA torch; FORCE_CUDA makes a missing toolkit an error, not a CPU build.
FORCE_CUDA=1 python -m pip install --no-build-isolation -e . > "$OUT/gpu_build.log" 2>&1 || { echo "build failed"; tail -50 "$OUT/gpu_build.log"; exit 1; }
python -c "import omasgan.ops as o; print('backend', o.backend(), 'cuda kernels', o.cuda_built())" | tee -a "$OUT/gpu_env.txt"
python -m pytest -q tests/ops -k "cuda or forward or gradients or exact" > "$OUT/gpu_tests.log" 2>&1
echo "tests exit $?" | tee -a "$OUT/gpu_tests.log"
tail -5 "$OUT/gpu_tests.log"
OUT="$OUT" python -m benchmarks.bench_ops --device cuda --with-backward --min-run-time 0.2 --out "$OUT" > "$OUT/gpu_bench.log" 2>&1
echo "bench exit $?"
cat "$OUT/ops_cuda.md" 2>/dev/null
# Pipeline throughput on one GPU: fp32 vs bf16 vs compile (and all fast paths together).
python -m pytest -q tests/pipeline/test_runtime.py > "$OUT/gpu_runtime_tests.log" 2>&1; echo "runtime tests exit $?"
python -m benchmarks.bench_pipeline --device cuda --nproc 1 --runtime fp32,bf16,compile,bf16+compile+channels_last \
  --out "$OUT" > "$OUT/gpu_bench_pipeline.log" 2>&1
echo "pipeline bench exit $?"
cat "$OUT/pipeline_cuda.md" 2>/dev/null
