// scattering on CUDA, in row chunks so memory stays O(N * chunk): exact pairwise distances of the
// chunk's rows against all rows (pairwise_sqdist_kernel), the ratios and their gradient coefficients
// as ATen elementwise ops on the current stream, and the gradient sums
// sum_j c_ij (p_i - p_j) by direct differences (weighted_difference_sum_kernel), never as
// p_i sum_j c_ij - (C P)_i, which cancels catastrophically for near-duplicates.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <torch/library.h>

#include "../scattering.h"
#include "pairwise_cuda.cuh"

namespace omasgan {
namespace {

using cuda::kDepth;
using cuda::kPer;
using cuda::kSide;
using cuda::kTile;

// out[i, d] = sum_j coef[i, j] * (rows[i, d] - cols[j, d]). Block: 64 rows x 64 features, j staged
// kDepth at a time through shared memory.
template <typename scalar_t, typename acc_t>
__global__ void weighted_difference_sum_kernel(const acc_t* __restrict__ coef,     // (R, C)
                                               const scalar_t* __restrict__ rows,  // (R, dim)
                                               const scalar_t* __restrict__ cols,  // (C, dim)
                                               int64_t R, int64_t C, int64_t dim,
                                               acc_t* __restrict__ out) {  // (R, dim)
  __shared__ acc_t coef_stage[kDepth][kTile + 1];  // [j][row]
  __shared__ acc_t col_stage[kDepth][kTile + 1];   // [j][feature]
  const int64_t r0 = static_cast<int64_t>(blockIdx.x) * kTile, d0 = static_cast<int64_t>(blockIdx.y) * kTile;
  const int tid = threadIdx.y * kSide + threadIdx.x;

  acc_t own[kPer][kPer], acc[kPer][kPer];
#pragma unroll
  for (int i = 0; i < kPer; ++i) {
    const int64_t r = r0 + threadIdx.y + i * kSide;
#pragma unroll
    for (int k = 0; k < kPer; ++k) {
      const int64_t d = d0 + threadIdx.x + k * kSide;
      own[i][k] = (r < R && d < dim) ? static_cast<acc_t>(rows[r * dim + d]) : acc_t(0);
      acc[i][k] = acc_t(0);
    }
  }
  for (int64_t j0 = 0; j0 < C; j0 += kDepth) {
    for (int e = tid; e < kTile * kDepth; e += cuda::kBlockThreads) {
      const int row = e / kDepth, j = e % kDepth;  // coef is row-major (R, C): consecutive j
      const int64_t gr = r0 + row, gj = j0 + j;
      coef_stage[j][row] = (gr < R && gj < C) ? coef[gr * C + gj] : acc_t(0);
      const int feature = e % kTile, jj = e / kTile;  // cols is row-major (C, dim): consecutive features
      const int64_t gd = d0 + feature, gjj = j0 + jj;
      col_stage[jj][feature] = (gjj < C && gd < dim) ? static_cast<acc_t>(cols[gjj * dim + gd]) : acc_t(0);
    }
    __syncthreads();
#pragma unroll
    for (int j = 0; j < kDepth; ++j) {
      acc_t c[kPer], p[kPer];
#pragma unroll
      for (int i = 0; i < kPer; ++i) {
        c[i] = coef_stage[j][threadIdx.y + i * kSide];
        p[i] = col_stage[j][threadIdx.x + i * kSide];
      }
#pragma unroll
      for (int i = 0; i < kPer; ++i) {
#pragma unroll
        for (int k = 0; k < kPer; ++k) {
          acc[i][k] += c[i] * (own[i][k] - p[k]);
        }
      }
    }
    __syncthreads();
  }
  cuda::store_tile(acc, r0, d0, R, dim, dim, out);
}

// Squared distances (R, C) between rows [r0, r0 + R) of `rows_all` and every row of `cols`, in acc dtype.
at::Tensor pairwise_sqdist(const at::Tensor& rows_all, int64_t r0, int64_t R, const at::Tensor& cols) {
  const int64_t C = cols.size(0), dim = cols.size(1);
  at::Tensor out;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, cols.scalar_type(), "pairwise_sqdist_cuda", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    out = at::empty({R, C}, cols.options().dtype(c10::CppTypeToScalarType<acc_t>::value));
    const dim3 grid(static_cast<unsigned>(cuda::ceil_div(R, kTile)), static_cast<unsigned>(cuda::ceil_div(C, kTile)));
    cuda::pairwise_sqdist_kernel<scalar_t, acc_t><<<grid, cuda::block_dims(), 0, cuda::current_stream()>>>(
        rows_all.data_ptr<scalar_t>() + r0 * dim, cols.data_ptr<scalar_t>(), R, C, dim, out.data_ptr<acc_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return out;
}

// sum_j coef[i, j] (points[r0 + i] - points[j]) for i < R, in acc dtype (R, dim).
at::Tensor weighted_difference_sum(const at::Tensor& coef, const at::Tensor& points, int64_t r0) {
  const int64_t R = coef.size(0), C = points.size(0), dim = points.size(1);
  at::Tensor out;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, points.scalar_type(), "weighted_difference_sum", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    out = at::empty({R, dim}, coef.options());
    const dim3 grid(static_cast<unsigned>(cuda::ceil_div(R, kTile)), static_cast<unsigned>(cuda::ceil_div(dim, kTile)));
    weighted_difference_sum_kernel<scalar_t, acc_t>
        <<<grid, cuda::block_dims(), 0, cuda::current_stream()>>>(
            coef.data_ptr<acc_t>(), points.data_ptr<scalar_t>() + r0 * dim, points.data_ptr<scalar_t>(), R, C, dim,
            out.data_ptr<acc_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return out;
}

// Zero the entries (i, r0 + i) of a chunk: a sample is not its own neighbour.
void zero_self_pairs(at::Tensor& chunk, int64_t r0) { chunk.diagonal(r0).zero_(); }

at::Tensor scattering_cuda(const at::Tensor& z, const at::Tensor& x, double eps) {
  check_scattering_args(z, x, eps);
  TORCH_INTERNAL_ASSERT(x.is_cuda());
  const c10::cuda::CUDAGuard guard(x.device());
  const at::Tensor zc = z.contiguous(), xc = x.contiguous();
  const int64_t N = xc.size(0);
  const auto acc_dtype = at::toOpMathType(xc.scalar_type());
  at::Tensor s = at::empty({N}, xc.options().dtype(acc_dtype));
  const int64_t chunk = cuda::chunk_rows(N);
  for (int64_t r0 = 0; r0 < N; r0 += chunk) {
    const int64_t R = std::min(chunk, N - r0);
    at::Tensor ratio = pairwise_sqdist(zc, r0, R, zc).sqrt_().div_(pairwise_sqdist(xc, r0, R, xc).sqrt_().add_(eps));
    zero_self_pairs(ratio, r0);
    s.narrow(0, r0, R).copy_(ratio.sum(1));
  }
  return s.div_(static_cast<double>(N - 1)).to(xc.scalar_type());
}

std::tuple<at::Tensor, at::Tensor> scattering_backward_cuda(const at::Tensor& grad_s, const at::Tensor& z,
                                                            const at::Tensor& x, double eps) {
  // With w_ij = (g_i + g_j) / (N-1), a = ||z_i - z_j||, b = ||x_i - x_j||:
  //   dL/dx_i = sum_j -w a / ((b + eps)^2 b) (x_i - x_j),   dL/dz_i = sum_j w / ((b + eps) a) (z_i - z_j),
  // with the coefficient 0 where its distance is 0.
  check_scattering_backward_args(grad_s, z, x, eps);
  TORCH_INTERNAL_ASSERT(x.is_cuda());
  const c10::cuda::CUDAGuard guard(x.device());
  const at::Tensor zc = z.contiguous(), xc = x.contiguous();
  const int64_t N = xc.size(0);
  const auto acc_dtype = at::toOpMathType(xc.scalar_type());
  const at::Tensor g = grad_s.to(acc_dtype).div(static_cast<double>(N - 1));
  at::Tensor grad_z = at::empty({N, zc.size(1)}, xc.options().dtype(acc_dtype));
  at::Tensor grad_x = at::empty({N, xc.size(1)}, xc.options().dtype(acc_dtype));
  const int64_t chunk = cuda::chunk_rows(N);
  for (int64_t r0 = 0; r0 < N; r0 += chunk) {
    const int64_t R = std::min(chunk, N - r0);
    const at::Tensor a = pairwise_sqdist(zc, r0, R, zc).sqrt_();
    const at::Tensor b = pairwise_sqdist(xc, r0, R, xc).sqrt_();
    const at::Tensor w = g.narrow(0, r0, R).unsqueeze(1) + g.unsqueeze(0);
    const at::Tensor b_eps = b + eps;
    at::Tensor coef_x = at::where(b > 0, -w * a / (b_eps * b_eps * b), at::zeros({}, b.options()));
    at::Tensor coef_z = at::where(a > 0, w / (b_eps * a), at::zeros({}, a.options()));
    zero_self_pairs(coef_x, r0);
    zero_self_pairs(coef_z, r0);
    grad_x.narrow(0, r0, R).copy_(weighted_difference_sum(coef_x, xc, r0));
    grad_z.narrow(0, r0, R).copy_(weighted_difference_sum(coef_z, zc, r0));
  }
  return {grad_z.to(zc.scalar_type()), grad_x.to(xc.scalar_type())};
}

}  // namespace

TORCH_LIBRARY_IMPL(omasgan, CUDA, m) {
  m.impl("scattering", &scattering_cuda);
  m.impl("scattering_backward", &scattering_backward_cuda);
}

}  // namespace omasgan
