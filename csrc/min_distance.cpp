// min_distance on the CPU: for each row of x, its nearest row of ref (exact Euclidean distance, argmin).
//
// Candidates come from SqDistTiler (a GEMM per tile for wide points, direct differences for narrow
// ones). Every column whose candidate value lies within the tile's error bound of the best is
// recomputed by direct differences in double, so the returned index is the exact argmin (lowest index
// on ties) and the distance is exact to the input precision.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include "min_distance.h"
#include "pairwise_cpu.h"

namespace omasgan {
namespace {

template <typename scalar_t>
void min_distance_cpu_kernel(const scalar_t* x,  // (N, D)
                             const scalar_t* ref,  // (Q, D)
                             int64_t N, int64_t Q, int64_t D,
                             scalar_t* dist,    // (N,)
                             int64_t* index) {  // (N,)
  const std::vector<double> centre =
      D > cpu::kDirectMaxDim ? cpu::column_mean(ref, Q, D) : std::vector<double>();
  const int64_t block = cpu::row_block_size(N);
  const int64_t n_blocks = (N + block - 1) / block;

  at::parallel_for(0, n_blocks, 1, [&](int64_t b_begin, int64_t b_end) {
    cpu::SqDistTiler<scalar_t> tiler(x, ref, D, &centre);
    const int64_t col_tile = tiler.col_tile();
    const auto dtype = c10::CppTypeToScalarType<scalar_t>::value;
    // gemm mode fills a (rows, tile) block per GEMM; direct mode works one row at a time.
    at::Tensor buffer = at::empty({tiler.direct() ? 1 : block, std::min(Q, col_tile)}, at::CPU(dtype));
    for (int64_t b = b_begin; b < b_end; ++b) {
      const int64_t r0 = b * block, r1 = std::min(N, r0 + block);
      tiler.set_rows(r0, r1);
      std::vector<double> best(r1 - r0, std::numeric_limits<double>::infinity());
      std::vector<int64_t> best_index(r1 - r0, 0);
      for (int64_t c0 = 0; c0 < Q; c0 += col_tile) {
        const int64_t c1 = std::min(Q, c0 + col_tile), nc = c1 - c0;
        tiler.set_cols(c0, c1);
        at::Tensor values;
        if (!tiler.direct()) {
          values = buffer.narrow(0, 0, r1 - r0).narrow(1, 0, nc);
          if (!values.is_contiguous()) {
            values = at::empty({r1 - r0, nc}, at::CPU(dtype));
          }
          tiler.approx(values);
        }
        for (int64_t i = 0; i < r1 - r0; ++i) {
          scalar_t* vi;
          double tile_min;
          if (tiler.direct()) {
            vi = buffer.data_ptr<scalar_t>();
            tile_min = static_cast<double>(tiler.approx_row(i, vi));
          } else {
            vi = values.data_ptr<scalar_t>() + i * nc;
            tile_min = static_cast<double>(cpu::min_value(vi, nc));
          }
          // Candidates: within twice the error bound of the tile's best, and able to beat the best so far.
          const double bound =
              tiler.direct() ? tiler.relative_error_bound() * tile_min * 2 : tiler.error_bound(i);
          const double limit = std::min(tile_min + 2 * bound, best[i] + bound);
          if (limit < tile_min) {
            continue;  // nothing in this tile can beat the best so far
          }
          // Round the limit up so the comparison in the input precision never drops a candidate.
          const scalar_t limit_cast =
              std::nextafter(static_cast<scalar_t>(limit), std::numeric_limits<scalar_t>::infinity());
          cpu::for_each_at_most(vi, nc, limit_cast, [&](int64_t j) {
            const double exact = tiler.exact(i, j);
            if (exact < best[i]) {
              best[i] = exact;
              best_index[i] = c0 + j;
            }
          });
        }
      }
      for (int64_t i = 0; i < r1 - r0; ++i) {
        dist[r0 + i] = static_cast<scalar_t>(std::sqrt(best[i]));
        index[r0 + i] = best_index[i];
      }
    }
  });
}

template <typename scalar_t>
void min_distance_backward_cpu_kernel(const scalar_t* grad_dist,  // (N,)
                                      const scalar_t* x,          // (N, D)
                                      const scalar_t* ref,        // (Q, D)
                                      const int64_t* index,       // (N,)
                                      const scalar_t* dist,       // (N,)
                                      int64_t N, int64_t D,
                                      scalar_t* grad_x,     // (N, D)
                                      scalar_t* grad_ref) {  // (Q, D), zero-initialised
  // d dist_i / d x_i = (x_i - ref_k) / dist_i, and the negative for ref_k; zero when dist_i == 0.
  at::parallel_for(0, N, 256, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const scalar_t scale = dist[i] > 0 ? grad_dist[i] / dist[i] : scalar_t(0);
      const scalar_t* xi = x + i * D;
      const scalar_t* rk = ref + index[i] * D;
      for (int64_t d = 0; d < D; ++d) {
        grad_x[i * D + d] = scale * (xi[d] - rk[d]);
      }
    }
  });
  // Serial in row order: deterministic sums when several rows share a neighbour.
  for (int64_t i = 0; i < N; ++i) {
    scalar_t* gk = grad_ref + index[i] * D;
    const scalar_t* gi = grad_x + i * D;
    for (int64_t d = 0; d < D; ++d) {
      gk[d] -= gi[d];
    }
  }
}

std::tuple<at::Tensor, at::Tensor> min_distance_cpu(const at::Tensor& x, const at::Tensor& ref) {
  check_min_distance_args(x, ref);
  TORCH_INTERNAL_ASSERT(x.device().is_cpu() && ref.device().is_cpu());
  const at::Tensor xc = x.contiguous(), rc = ref.contiguous();
  const int64_t N = xc.size(0), Q = rc.size(0), D = xc.size(1);
  at::Tensor dist = at::empty({N}, xc.options());
  at::Tensor index = at::empty({N}, xc.options().dtype(at::kLong));
  AT_DISPATCH_FLOATING_TYPES(xc.scalar_type(), "min_distance_cpu", [&] {
    min_distance_cpu_kernel<scalar_t>(xc.data_ptr<scalar_t>(), rc.data_ptr<scalar_t>(), N, Q, D,
                                      dist.data_ptr<scalar_t>(), index.data_ptr<int64_t>());
  });
  return {dist, index};
}

std::tuple<at::Tensor, at::Tensor> min_distance_backward_cpu(const at::Tensor& grad_dist, const at::Tensor& x,
                                                             const at::Tensor& ref, const at::Tensor& index,
                                                             const at::Tensor& dist) {
  check_min_distance_backward_args(grad_dist, x, ref, index, dist);
  TORCH_INTERNAL_ASSERT(x.device().is_cpu());
  const at::Tensor gc = grad_dist.contiguous(), xc = x.contiguous(), rc = ref.contiguous();
  const at::Tensor ic = index.contiguous(), dc = dist.contiguous();
  const int64_t N = xc.size(0), D = xc.size(1);
  at::Tensor grad_x = at::empty_like(xc);
  at::Tensor grad_ref = at::zeros_like(rc);
  AT_DISPATCH_FLOATING_TYPES(xc.scalar_type(), "min_distance_backward_cpu", [&] {
    min_distance_backward_cpu_kernel<scalar_t>(gc.data_ptr<scalar_t>(), xc.data_ptr<scalar_t>(),
                                               rc.data_ptr<scalar_t>(), ic.data_ptr<int64_t>(),
                                               dc.data_ptr<scalar_t>(), N, D, grad_x.data_ptr<scalar_t>(),
                                               grad_ref.data_ptr<scalar_t>());
  });
  return {grad_x, grad_ref};
}

}  // namespace

TORCH_LIBRARY_IMPL(omasgan, CPU, m) {
  m.impl("min_distance", &min_distance_cpu);
  m.impl("min_distance_backward", &min_distance_backward_cpu);
}

}  // namespace omasgan
