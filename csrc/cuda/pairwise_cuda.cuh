// Shared CUDA machinery for the pairwise operators: a 64 x 64 tile of exact squared distances by
// direct differences (never the ||a||^2 + ||b||^2 - 2ab shortcut), staged through shared memory
// kDepth features at a time. 16 x 16 threads, each owning 4 x 4 outputs (rows ty + 16 i, columns
// tx + 16 j). Accumulation is in at::opmath_type (float for half, bfloat16 and float).
#pragma once

#include <ATen/ATen.h>
#include <ATen/OpMathType.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include <algorithm>

namespace omasgan::cuda {

constexpr int kTile = 64;                     // rows and columns per block
constexpr int kDepth = 16;                    // features per shared-memory stage
constexpr int kSide = 16;                     // threads per side of the block
constexpr int kPer = kTile / kSide;           // outputs per thread per side
constexpr int kBlockThreads = kSide * kSide;  // 256

// Shared-memory stage: [feature][point], padded by one so the transposing stores avoid bank conflicts.
template <typename acc_t>
using Stage = acc_t[kDepth][kTile + 1];

// Load features [d0, d0 + kDepth) of points [p0, p0 + kTile) of a (n, dim) matrix into a stage,
// zero-filled past the ends.
template <typename scalar_t, typename acc_t>
__device__ __forceinline__ void load_stage(const scalar_t* __restrict__ points,  // (n, dim)
                                           int64_t n, int64_t dim, int64_t p0, int64_t d0, Stage<acc_t>& stage) {
  const int tid = threadIdx.y * kSide + threadIdx.x;
  for (int e = tid; e < kTile * kDepth; e += kBlockThreads) {
    const int p = e / kDepth, d = e % kDepth;  // consecutive threads read consecutive features
    const int64_t gp = p0 + p, gd = d0 + d;
    stage[d][p] = (gp < n && gd < dim) ? static_cast<acc_t>(points[gp * dim + gd]) : acc_t(0);
  }
}

// acc[i][j] = ||rows[r0 + ty + 16 i] - cols[c0 + tx + 16 j]||^2 for this thread's 4 x 4 outputs.
// Every thread of the block must call it (it synchronises).
template <typename scalar_t, typename acc_t>
__device__ __forceinline__ void tile_sqdist(const scalar_t* __restrict__ rows,  // (n_rows, dim)
                                            int64_t n_rows, int64_t r0,
                                            const scalar_t* __restrict__ cols,  // (n_cols, dim)
                                            int64_t n_cols, int64_t c0, int64_t dim, Stage<acc_t>& row_stage,
                                            Stage<acc_t>& col_stage, acc_t (&acc)[kPer][kPer]) {
#pragma unroll
  for (int i = 0; i < kPer; ++i) {
#pragma unroll
    for (int j = 0; j < kPer; ++j) {
      acc[i][j] = acc_t(0);
    }
  }
  for (int64_t d0 = 0; d0 < dim; d0 += kDepth) {
    load_stage<scalar_t, acc_t>(rows, n_rows, dim, r0, d0, row_stage);
    load_stage<scalar_t, acc_t>(cols, n_cols, dim, c0, d0, col_stage);
    __syncthreads();
#pragma unroll
    for (int d = 0; d < kDepth; ++d) {
      acc_t r[kPer], c[kPer];
#pragma unroll
      for (int i = 0; i < kPer; ++i) {
        r[i] = row_stage[d][threadIdx.y + i * kSide];
        c[i] = col_stage[d][threadIdx.x + i * kSide];
      }
#pragma unroll
      for (int i = 0; i < kPer; ++i) {
#pragma unroll
        for (int j = 0; j < kPer; ++j) {
          const acc_t diff = r[i] - c[j];
          acc[i][j] += diff * diff;
        }
      }
    }
    __syncthreads();
  }
}

// out[(r0 + ty + 16 i) * ld + c0 + tx + 16 j] = acc[i][j] for the outputs inside (n_rows, n_cols).
template <typename acc_t>
__device__ __forceinline__ void store_tile(const acc_t (&acc)[kPer][kPer], int64_t r0, int64_t c0, int64_t n_rows,
                                           int64_t n_cols, int64_t ld, acc_t* __restrict__ out) {
#pragma unroll
  for (int i = 0; i < kPer; ++i) {
    const int64_t r = r0 + threadIdx.y + i * kSide;
#pragma unroll
    for (int j = 0; j < kPer; ++j) {
      const int64_t c = c0 + threadIdx.x + j * kSide;
      if (r < n_rows && c < n_cols) {
        out[r * ld + c] = acc[i][j];
      }
    }
  }
}

// out[r, c] = ||rows[r] - cols[c]||^2 for a (R, C) block; grid (ceil(R / 64), ceil(C / 64)).
template <typename scalar_t, typename acc_t>
__global__ void pairwise_sqdist_kernel(const scalar_t* __restrict__ rows,  // (R, dim)
                                       const scalar_t* __restrict__ cols,  // (C, dim)
                                       int64_t R, int64_t C, int64_t dim,
                                       acc_t* __restrict__ out) {  // (R, C)
  __shared__ Stage<acc_t> row_stage, col_stage;
  const int64_t r0 = static_cast<int64_t>(blockIdx.x) * kTile, c0 = static_cast<int64_t>(blockIdx.y) * kTile;
  acc_t acc[kPer][kPer];
  tile_sqdist<scalar_t, acc_t>(rows, R, r0, cols, C, c0, dim, row_stage, col_stage, acc);
  store_tile(acc, r0, c0, R, C, C, out);
}

inline dim3 block_dims() { return dim3(kSide, kSide); }

// Kernels launch on the current stream (STYLE §1.4). Only c10/cuda headers are used, so the kernels
// also compile against a bare toolkit without the cuBLAS/cuSPARSE headers ATen/cuda/CUDAContext.h needs.
inline cudaStream_t current_stream() { return c10::cuda::getCurrentCUDAStream().stream(); }

inline int64_t multiprocessor_count() {
  int device = 0, count = 0;
  C10_CUDA_CHECK(cudaGetDevice(&device));
  C10_CUDA_CHECK(cudaDeviceGetAttribute(&count, cudaDevAttrMultiProcessorCount, device));
  return count;
}

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Rows per chunk of the chunked pairwise launchers: keeps each (rows, N) buffer near 2^22 elements.
inline int64_t chunk_rows(int64_t n_cols) {
  const int64_t rows = (int64_t{1} << 22) / std::max<int64_t>(n_cols, 1);
  return std::max<int64_t>(kTile, rows / kTile * kTile);
}

}  // namespace omasgan::cuda
