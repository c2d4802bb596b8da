// min_distance on CUDA: one pass over ref per block of 64 query rows, exact squared distances by
// direct differences (pairwise_cuda.cuh), a running argmin per thread, then a block min-reduction.
// ref is split across gridDim.y so small N still fills the device; a second kernel reduces the
// splits in order, so ties resolve to the lowest index and results are deterministic.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <torch/library.h>

#include <limits>

#include "../min_distance.h"
#include "pairwise_cuda.cuh"

namespace omasgan {
namespace {

using cuda::kPer;
using cuda::kSide;
using cuda::kTile;

template <typename scalar_t, typename acc_t>
__global__ void min_distance_kernel(const scalar_t* __restrict__ x,    // (N, D)
                                    const scalar_t* __restrict__ ref,  // (Q, D)
                                    int64_t N, int64_t Q, int64_t D, int64_t q_per_split,
                                    acc_t* __restrict__ split_best,        // (S, N) squared distances
                                    int64_t* __restrict__ split_index) {  // (S, N)
  __shared__ cuda::Stage<acc_t> row_stage, col_stage;
  __shared__ acc_t reduce_best[kTile][kSide];
  __shared__ int64_t reduce_index[kTile][kSide];

  const int64_t r0 = static_cast<int64_t>(blockIdx.x) * kTile;
  const int64_t q_begin = static_cast<int64_t>(blockIdx.y) * q_per_split;
  const int64_t q_end = min(Q, q_begin + q_per_split);

  acc_t best[kPer];
  int64_t best_index[kPer];
#pragma unroll
  for (int i = 0; i < kPer; ++i) {
    best[i] = std::numeric_limits<acc_t>::infinity();
    best_index[i] = q_begin;
  }
  acc_t acc[kPer][kPer];
  for (int64_t c0 = q_begin; c0 < q_end; c0 += kTile) {
    cuda::tile_sqdist<scalar_t, acc_t>(x, N, r0, ref, q_end, c0, D, row_stage, col_stage, acc);
    // Columns are visited in increasing order and replaced only on "<": lowest index wins ties.
#pragma unroll
    for (int j = 0; j < kPer; ++j) {
      const int64_t col = c0 + threadIdx.x + j * kSide;
#pragma unroll
      for (int i = 0; i < kPer; ++i) {
        if (col < q_end && acc[i][j] < best[i]) {
          best[i] = acc[i][j];
          best_index[i] = col;
        }
      }
    }
  }
#pragma unroll
  for (int i = 0; i < kPer; ++i) {
    reduce_best[threadIdx.y + i * kSide][threadIdx.x] = best[i];
    reduce_index[threadIdx.y + i * kSide][threadIdx.x] = best_index[i];
  }
  __syncthreads();
  const int tid = threadIdx.y * kSide + threadIdx.x;
  if (tid < kTile && r0 + tid < N) {
    acc_t value = reduce_best[tid][0];
    int64_t index = reduce_index[tid][0];
    for (int t = 1; t < kSide; ++t) {
      const acc_t v = reduce_best[tid][t];
      const int64_t k = reduce_index[tid][t];
      if (v < value || (v == value && k < index)) {
        value = v;
        index = k;
      }
    }
    split_best[blockIdx.y * N + r0 + tid] = value;
    split_index[blockIdx.y * N + r0 + tid] = index;
  }
}

template <typename scalar_t, typename acc_t>
__global__ void min_distance_finish_kernel(const acc_t* __restrict__ split_best,      // (S, N)
                                           const int64_t* __restrict__ split_index,  // (S, N)
                                           int64_t S, int64_t N,
                                           scalar_t* __restrict__ dist,      // (N,)
                                           int64_t* __restrict__ index) {  // (N,)
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= N) {
    return;
  }
  acc_t value = split_best[i];
  int64_t k = split_index[i];
  for (int64_t s = 1; s < S; ++s) {  // splits hold increasing indices: "<" keeps the lowest on ties
    if (split_best[s * N + i] < value) {
      value = split_best[s * N + i];
      k = split_index[s * N + i];
    }
  }
  dist[i] = static_cast<scalar_t>(sqrt(value));
  index[i] = k;
}

template <typename scalar_t, typename acc_t>
__global__ void min_distance_backward_kernel(const scalar_t* __restrict__ grad_dist,  // (N,)
                                             const scalar_t* __restrict__ x,          // (N, D)
                                             const scalar_t* __restrict__ ref,        // (Q, D)
                                             const int64_t* __restrict__ index,       // (N,)
                                             const scalar_t* __restrict__ dist,       // (N,)
                                             int64_t N, int64_t D,
                                             scalar_t* __restrict__ grad_x) {  // (N, D)
  const int64_t total = N * D;
  for (int64_t e = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; e < total;
       e += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t i = e / D, d = e % D;
    const acc_t distance = static_cast<acc_t>(dist[i]);
    const acc_t scale = distance > acc_t(0) ? static_cast<acc_t>(grad_dist[i]) / distance : acc_t(0);
    const acc_t diff = static_cast<acc_t>(x[e]) - static_cast<acc_t>(ref[index[i] * D + d]);
    grad_x[e] = static_cast<scalar_t>(scale * diff);
  }
}

std::tuple<at::Tensor, at::Tensor> min_distance_cuda(const at::Tensor& x, const at::Tensor& ref) {
  check_min_distance_args(x, ref);
  TORCH_INTERNAL_ASSERT(x.is_cuda());
  const c10::cuda::CUDAGuard guard(x.device());
  const at::Tensor xc = x.contiguous(), rc = ref.contiguous();
  const int64_t N = xc.size(0), Q = rc.size(0), D = xc.size(1);
  at::Tensor dist = at::empty({N}, xc.options());
  at::Tensor index = at::empty({N}, xc.options().dtype(at::kLong));

  // Enough blocks to fill the device twice over, each split still at least one tile of ref.
  const int64_t row_blocks = cuda::ceil_div(N, kTile);
  const int64_t sms = cuda::multiprocessor_count();
  const int64_t splits = std::max<int64_t>(1, std::min(cuda::ceil_div(Q, kTile), cuda::ceil_div(2 * sms, row_blocks)));
  const int64_t q_per_split = cuda::ceil_div(cuda::ceil_div(Q, splits), kTile) * kTile;
  const int64_t used_splits = cuda::ceil_div(Q, q_per_split);
  const cudaStream_t stream = cuda::current_stream();

  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, xc.scalar_type(), "min_distance_cuda", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    at::Tensor split_best = at::empty({used_splits, N}, xc.options().dtype(c10::CppTypeToScalarType<acc_t>::value));
    at::Tensor split_index = at::empty({used_splits, N}, xc.options().dtype(at::kLong));
    const dim3 grid(static_cast<unsigned>(row_blocks), static_cast<unsigned>(used_splits));
    min_distance_kernel<scalar_t, acc_t><<<grid, cuda::block_dims(), 0, stream>>>(
        xc.data_ptr<scalar_t>(), rc.data_ptr<scalar_t>(), N, Q, D, q_per_split, split_best.data_ptr<acc_t>(),
        split_index.data_ptr<int64_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    constexpr int threads = 256;
    min_distance_finish_kernel<scalar_t, acc_t><<<cuda::ceil_div(N, threads), threads, 0, stream>>>(
        split_best.data_ptr<acc_t>(), split_index.data_ptr<int64_t>(), used_splits, N, dist.data_ptr<scalar_t>(),
        index.data_ptr<int64_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return {dist, index};
}

std::tuple<at::Tensor, at::Tensor> min_distance_backward_cuda(const at::Tensor& grad_dist, const at::Tensor& x,
                                                              const at::Tensor& ref, const at::Tensor& index,
                                                              const at::Tensor& dist) {
  check_min_distance_backward_args(grad_dist, x, ref, index, dist);
  TORCH_INTERNAL_ASSERT(x.is_cuda());
  const c10::cuda::CUDAGuard guard(x.device());
  const at::Tensor gc = grad_dist.contiguous(), xc = x.contiguous(), rc = ref.contiguous();
  const at::Tensor ic = index.contiguous(), dc = dist.contiguous();
  const int64_t N = xc.size(0), D = xc.size(1);
  at::Tensor grad_x = at::empty_like(xc);
  const cudaStream_t stream = cuda::current_stream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, xc.scalar_type(), "min_distance_backward_cuda", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    constexpr int threads = 256;
    const int64_t blocks = std::min<int64_t>(cuda::ceil_div(N * D, threads), 65535);
    min_distance_backward_kernel<scalar_t, acc_t><<<blocks, threads, 0, stream>>>(
        gc.data_ptr<scalar_t>(), xc.data_ptr<scalar_t>(), rc.data_ptr<scalar_t>(), ic.data_ptr<int64_t>(),
        dc.data_ptr<scalar_t>(), N, D, grad_x.data_ptr<scalar_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  // Rows sharing a neighbour add up; index_add_ honours torch.use_deterministic_algorithms.
  at::Tensor grad_ref = at::zeros_like(rc).index_add_(0, ic, grad_x, /*alpha=*/-1);
  return {grad_x, grad_ref};
}

}  // namespace

TORCH_LIBRARY_IMPL(omasgan, CUDA, m) {
  m.impl("min_distance", &min_distance_cuda);
  m.impl("min_distance_backward", &min_distance_backward_cuda);
}

}  // namespace omasgan
