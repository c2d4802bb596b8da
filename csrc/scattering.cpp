// scattering on the CPU: s_i = 1/(N-1) sum_{j != i} ||z_i - z_j|| / (||x_i - x_j|| + eps).
//
// Parallel over row blocks; each task walks all column tiles, so it owns its rows of s and of the
// gradients (no atomics, deterministic). Pairwise distances come from SqDistTiler; in gemm mode every
// pair whose candidate distance is small next to the points' norms (where the GEMM form loses digits)
// is recomputed by direct differences, so near-duplicates are exact. Two strategies, chosen by the
// caller (omasgan/ops/scattering.py, by a memory budget):
//  - recompute (scattering, scattering_backward): column tiles of kColTile; backward recomputes every
//    pairwise tile. Memory O(N + tile).
//  - pairs (scattering_with_pairs, scattering_backward_from_pairs): one column tile of all N, and the
//    forward returns the refined (N, N) squared-distance matrices, which backward reads instead of
//    recomputing the two distance GEMMs. Memory O(N^2). The same refinement makes it as exact.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include "pairwise_cpu.h"
#include "scattering.h"

namespace omasgan {
namespace {

// sum_j sqrt(a_sq[j]) / (sqrt(b_sq[j]) + eps) over one tile row (callers add tiles up in double).
template <typename scalar_t>
OMASGAN_HOT_LOOP scalar_t ratio_sum(const scalar_t* __restrict__ a_sq, const scalar_t* __restrict__ b_sq,
                                    scalar_t eps, int64_t count) {
  scalar_t acc = 0;
#pragma omp simd reduction(+ : acc)
  for (int64_t j = 0; j < count; ++j) {
    const scalar_t a = std::sqrt(a_sq[j] > 0 ? a_sq[j] : scalar_t(0));
    const scalar_t b = std::sqrt(b_sq[j] > 0 ? b_sq[j] : scalar_t(0));
    acc += a / (b + eps);
  }
  return acc;
}

// Gradient coefficients of one row against a tile (see scattering_backward_cpu_kernel):
// coef_x[j] = -w a / ((b + eps)^2 b) (0 when b = 0), coef_z[j] = w / ((b + eps) a) (0 when a = 0),
// with w = (g_row + g_cols[j]) * inv_pairs.
template <typename scalar_t>
OMASGAN_HOT_LOOP void gradient_coefficients(const scalar_t* __restrict__ a_sq, const scalar_t* __restrict__ b_sq,
                                            scalar_t g_row, const scalar_t* __restrict__ g_cols, scalar_t inv_pairs,
                                            scalar_t eps, int64_t count, scalar_t* __restrict__ coef_z,
                                            scalar_t* __restrict__ coef_x) {
#pragma omp simd
  for (int64_t j = 0; j < count; ++j) {
    const scalar_t a = std::sqrt(a_sq[j] > 0 ? a_sq[j] : scalar_t(0));
    const scalar_t b = std::sqrt(b_sq[j] > 0 ? b_sq[j] : scalar_t(0));
    const scalar_t w = (g_row + g_cols[j]) * inv_pairs;
    const scalar_t b_eps = b + eps;
    coef_x[j] = b > 0 ? -w * a / (b_eps * b_eps * b) : scalar_t(0);
    coef_z[j] = a > 0 ? w / (b_eps * a) : scalar_t(0);
  }
}

// A sample is not its own neighbour: make the (i, i) entry of a tile row contribute nothing
// (a = 0 gives a zero ratio and zero coefficients; b = 1 avoids 0/0 when eps = 0).
template <typename scalar_t>
void exclude_self_pair(int64_t row, int64_t c0, int64_t c1, scalar_t* a_sq_row, scalar_t* b_sq_row) {
  if (row >= c0 && row < c1) {
    a_sq_row[row - c0] = 0;
    b_sq_row[row - c0] = 1;
  }
}

template <typename scalar_t>
struct ScatteringTiles {
  ScatteringTiles(const scalar_t* z, const scalar_t* x, int64_t L, int64_t D, const std::vector<double>* cz,
                  const std::vector<double>* cx)
      : latent(z, z, L, cz), data(x, x, D, cx) {}

  void set_rows(int64_t r0, int64_t r1) {
    latent.set_rows(r0, r1);
    data.set_rows(r0, r1);
  }
  void set_cols(int64_t c0, int64_t c1) {
    place_cols(c0, c1);
    latent.approx(latent_sq);
    data.approx(data_sq);
  }

  // All N columns, with the squared distances of rows [r0, r0 + n_rows) read from the (N, N) matrices a
  // forward kept (already refined) instead of computed.
  void set_all_cols_from(const scalar_t* latent_pairs, const scalar_t* data_pairs, int64_t r0, int64_t N) {
    place_cols(0, N);
    std::copy_n(latent_pairs + r0 * N, latent.n_rows() * N, latent_sq.template data_ptr<scalar_t>());
    std::copy_n(data_pairs + r0 * N, data.n_rows() * N, data_sq.template data_ptr<scalar_t>());
  }

  void place_cols(int64_t c0, int64_t c1) {
    latent.set_cols(c0, c1);
    data.set_cols(c0, c1);
    const auto options = at::CPU(c10::CppTypeToScalarType<scalar_t>::value);
    latent_sq = at::empty({latent.n_rows(), c1 - c0}, options);
    data_sq = at::empty({data.n_rows(), c1 - c0}, options);
  }

  cpu::SqDistTiler<scalar_t> latent;  // z: (N, L)
  cpu::SqDistTiler<scalar_t> data;    // x: (N, D)
  at::Tensor latent_sq, data_sq;      // candidate squared distances of the current tile
};

struct ScatteringGeometry {
  int64_t N, L, D, block, n_blocks;
};

ScatteringGeometry geometry(int64_t N, int64_t L, int64_t D) {
  const int64_t block = cpu::row_block_size(N);
  return {N, L, D, block, (N + block - 1) / block};
}

template <typename scalar_t>
void scattering_cpu_kernel(const scalar_t* z,  // (N, L)
                           const scalar_t* x,  // (N, D)
                           int64_t N, int64_t L, int64_t D, double eps,
                           scalar_t* s,                // (N,)
                           scalar_t* latent_pairs,     // (N, N) or nullptr: keep the refined a^2 ...
                           scalar_t* data_pairs) {     // (N, N) or nullptr: ... and b^2 (pairs strategy)
  const bool keep = latent_pairs != nullptr;
  const int64_t col_tile = keep ? N : cpu::kColTile;
  const auto geo = geometry(N, L, D);
  const auto cz = L > cpu::kDirectMaxDim ? cpu::column_mean(z, N, L) : std::vector<double>();
  const auto cx = D > cpu::kDirectMaxDim ? cpu::column_mean(x, N, D) : std::vector<double>();
  at::parallel_for(0, geo.n_blocks, 1, [&](int64_t b_begin, int64_t b_end) {
    ScatteringTiles<scalar_t> tiles(z, x, L, D, &cz, &cx);
    std::vector<int64_t> near;
    for (int64_t b = b_begin; b < b_end; ++b) {
      const int64_t r0 = b * geo.block, r1 = std::min(N, r0 + geo.block);
      tiles.set_rows(r0, r1);
      std::vector<double> sums(r1 - r0, 0.0);
      for (int64_t c0 = 0; c0 < N; c0 += col_tile) {
        const int64_t c1 = std::min(N, c0 + col_tile);
        tiles.set_cols(c0, c1);
        scalar_t* a_sq = tiles.latent_sq.template data_ptr<scalar_t>();
        scalar_t* b_sq = tiles.data_sq.template data_ptr<scalar_t>();
        const int64_t nc = c1 - c0;
        for (int64_t i = 0; i < r1 - r0; ++i) {
          scalar_t* a_row = a_sq + i * nc;
          scalar_t* b_row = b_sq + i * nc;
          near.clear();
          tiles.latent.refine_small(i, a_row, near);
          tiles.data.refine_small(i, b_row, near);
          if (keep) {  // before the self pair is blanked: backward blanks it again
            std::copy_n(a_row, N, latent_pairs + (r0 + i) * N);
            std::copy_n(b_row, N, data_pairs + (r0 + i) * N);
          }
          exclude_self_pair(r0 + i, c0, c1, a_row, b_row);
          sums[i] += static_cast<double>(ratio_sum(a_row, b_row, static_cast<scalar_t>(eps), nc));
        }
      }
      for (int64_t i = 0; i < r1 - r0; ++i) {
        s[r0 + i] = static_cast<scalar_t>(sums[i] / static_cast<double>(N - 1));
      }
    }
  });
}

template <typename scalar_t>
void scattering_backward_cpu_kernel(const scalar_t* grad_s,  // (N,)
                                    const scalar_t* z,       // (N, L)
                                    const scalar_t* x,       // (N, D)
                                    int64_t N, int64_t L, int64_t D, double eps,
                                    const scalar_t* latent_pairs,  // (N, N) from the forward, or nullptr
                                    const scalar_t* data_pairs,    // (N, N) from the forward, or nullptr
                                    scalar_t* grad_z,    // (N, L)
                                    scalar_t* grad_x) {  // (N, D)
  // Pair {i, j} enters s_i and s_j, so L = sum_{i<j} w_ij a_ij / (b_ij + eps), w_ij = (g_i + g_j)/(N-1):
  //   dL/dx_i = sum_j cx_ij (x_i - x_j),  cx_ij = -w_ij a_ij / ((b_ij + eps)^2 b_ij)   (0 when b_ij = 0)
  //   dL/dz_i = sum_j cz_ij (z_i - z_j),  cz_ij =  w_ij / ((b_ij + eps) a_ij)          (0 when a_ij = 0)
  const auto geo = geometry(N, L, D);
  const auto cz = L > cpu::kDirectMaxDim ? cpu::column_mean(z, N, L) : std::vector<double>();
  const auto cx = D > cpu::kDirectMaxDim ? cpu::column_mean(x, N, D) : std::vector<double>();
  const scalar_t inv_pairs = static_cast<scalar_t>(1.0 / static_cast<double>(N - 1));
  const auto options = at::CPU(c10::CppTypeToScalarType<scalar_t>::value);
  const bool kept = latent_pairs != nullptr;
  const int64_t col_tile = kept ? N : cpu::kColTile;
  at::parallel_for(0, geo.n_blocks, 1, [&](int64_t b_begin, int64_t b_end) {
    ScatteringTiles<scalar_t> tiles(z, x, L, D, &cz, &cx);
    std::vector<int64_t> near_latent, near_data;
    for (int64_t b = b_begin; b < b_end; ++b) {
      const int64_t r0 = b * geo.block, r1 = std::min(N, r0 + geo.block), nr = r1 - r0;
      tiles.set_rows(r0, r1);
      at::Tensor grad_z_rows = at::zeros({nr, L}, options);
      at::Tensor grad_x_rows = at::zeros({nr, D}, options);
      for (int64_t c0 = 0; c0 < N; c0 += col_tile) {
        const int64_t c1 = std::min(N, c0 + col_tile), nc = c1 - c0;
        if (kept) {
          tiles.set_all_cols_from(latent_pairs, data_pairs, r0, N);
        } else {
          tiles.set_cols(c0, c1);
        }
        scalar_t* a_sq = tiles.latent_sq.template data_ptr<scalar_t>();
        scalar_t* b_sq = tiles.data_sq.template data_ptr<scalar_t>();
        at::Tensor coef_z = at::empty({nr, nc}, options);
        at::Tensor coef_x = at::empty({nr, nc}, options);
        for (int64_t i = 0; i < nr; ++i) {
          scalar_t* a_row = a_sq + i * nc;
          scalar_t* b_row = b_sq + i * nc;
          scalar_t* cz_row = coef_z.data_ptr<scalar_t>() + i * nc;
          scalar_t* cx_row = coef_x.data_ptr<scalar_t>() + i * nc;
          near_latent.clear();
          near_data.clear();
          // Kept pairs are refined already; this finds the near pairs again (recomputing them costs little).
          tiles.latent.refine_small(i, a_row, near_latent);
          tiles.data.refine_small(i, b_row, near_data);
          exclude_self_pair(r0 + i, c0, c1, a_row, b_row);
          gradient_coefficients(a_row, b_row, grad_s[r0 + i], grad_s + c0, inv_pairs, static_cast<scalar_t>(eps), nc,
                                cz_row, cx_row);
          // Near pairs: a large coefficient on a tiny difference, so take the difference exactly.
          for (const int64_t j : near_data) {
            if (r0 + i != c0 + j) {
              tiles.data.add_exact_difference(i, j, cx_row[j], grad_x_rows);
            }
            cx_row[j] = 0;
          }
          for (const int64_t j : near_latent) {
            if (r0 + i != c0 + j) {
              tiles.latent.add_exact_difference(i, j, cz_row[j], grad_z_rows);
            }
            cz_row[j] = 0;
          }
        }
        tiles.latent.accumulate_weighted_differences(coef_z, grad_z_rows);
        tiles.data.accumulate_weighted_differences(coef_x, grad_x_rows);
      }
      std::copy_n(grad_z_rows.data_ptr<scalar_t>(), nr * L, grad_z + r0 * L);
      std::copy_n(grad_x_rows.data_ptr<scalar_t>(), nr * D, grad_x + r0 * D);
    }
  });
}

at::Tensor scattering_cpu(const at::Tensor& z, const at::Tensor& x, double eps) {
  check_scattering_args(z, x, eps);
  TORCH_INTERNAL_ASSERT(z.device().is_cpu() && x.device().is_cpu());
  const at::Tensor zc = z.contiguous(), xc = x.contiguous();
  const int64_t N = xc.size(0), L = zc.size(1), D = xc.size(1);
  at::Tensor s = at::empty({N}, xc.options());
  AT_DISPATCH_FLOATING_TYPES(xc.scalar_type(), "scattering_cpu", [&] {
    scattering_cpu_kernel<scalar_t>(zc.data_ptr<scalar_t>(), xc.data_ptr<scalar_t>(), N, L, D, eps,
                                    s.data_ptr<scalar_t>(), nullptr, nullptr);
  });
  return s;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> scattering_with_pairs_cpu(const at::Tensor& z, const at::Tensor& x,
                                                                         double eps) {
  check_scattering_args(z, x, eps);
  TORCH_INTERNAL_ASSERT(z.device().is_cpu() && x.device().is_cpu());
  const at::Tensor zc = z.contiguous(), xc = x.contiguous();
  const int64_t N = xc.size(0), L = zc.size(1), D = xc.size(1);
  at::Tensor s = at::empty({N}, xc.options());
  at::Tensor latent_pairs = at::empty({N, N}, xc.options());
  at::Tensor data_pairs = at::empty({N, N}, xc.options());
  AT_DISPATCH_FLOATING_TYPES(xc.scalar_type(), "scattering_with_pairs_cpu", [&] {
    scattering_cpu_kernel<scalar_t>(zc.data_ptr<scalar_t>(), xc.data_ptr<scalar_t>(), N, L, D, eps,
                                    s.data_ptr<scalar_t>(), latent_pairs.data_ptr<scalar_t>(),
                                    data_pairs.data_ptr<scalar_t>());
  });
  return {s, latent_pairs, data_pairs};
}

std::tuple<at::Tensor, at::Tensor> scattering_backward_cpu(const at::Tensor& grad_s, const at::Tensor& z,
                                                           const at::Tensor& x, double eps) {
  check_scattering_backward_args(grad_s, z, x, eps);
  TORCH_INTERNAL_ASSERT(x.device().is_cpu());
  const at::Tensor gc = grad_s.contiguous(), zc = z.contiguous(), xc = x.contiguous();
  const int64_t N = xc.size(0), L = zc.size(1), D = xc.size(1);
  at::Tensor grad_z = at::empty_like(zc);
  at::Tensor grad_x = at::empty_like(xc);
  AT_DISPATCH_FLOATING_TYPES(xc.scalar_type(), "scattering_backward_cpu", [&] {
    scattering_backward_cpu_kernel<scalar_t>(gc.data_ptr<scalar_t>(), zc.data_ptr<scalar_t>(),
                                             xc.data_ptr<scalar_t>(), N, L, D, eps, nullptr, nullptr,
                                             grad_z.data_ptr<scalar_t>(), grad_x.data_ptr<scalar_t>());
  });
  return {grad_z, grad_x};
}

std::tuple<at::Tensor, at::Tensor> scattering_backward_from_pairs_cpu(const at::Tensor& grad_s, const at::Tensor& z,
                                                                      const at::Tensor& x,
                                                                      const at::Tensor& latent_pairs,
                                                                      const at::Tensor& data_pairs, double eps) {
  check_scattering_backward_args(grad_s, z, x, eps);
  const int64_t N = x.size(0), L = z.size(1), D = x.size(1);
  TORCH_CHECK(latent_pairs.sizes() == at::IntArrayRef({N, N}) && data_pairs.sizes() == at::IntArrayRef({N, N}) &&
                  latent_pairs.scalar_type() == x.scalar_type() && data_pairs.scalar_type() == x.scalar_type(),
              "scattering_backward_from_pairs: latent_pairs and data_pairs must be (", N, ", ", N, ") of x's dtype, ",
              "as scattering_with_pairs returns them; got ", latent_pairs.sizes(), " and ", data_pairs.sizes(), ".");
  TORCH_INTERNAL_ASSERT(x.device().is_cpu());
  const at::Tensor gc = grad_s.contiguous(), zc = z.contiguous(), xc = x.contiguous();
  const at::Tensor lp = latent_pairs.contiguous(), dp = data_pairs.contiguous();
  at::Tensor grad_z = at::empty_like(zc);
  at::Tensor grad_x = at::empty_like(xc);
  AT_DISPATCH_FLOATING_TYPES(xc.scalar_type(), "scattering_backward_from_pairs_cpu", [&] {
    scattering_backward_cpu_kernel<scalar_t>(gc.data_ptr<scalar_t>(), zc.data_ptr<scalar_t>(),
                                             xc.data_ptr<scalar_t>(), N, L, D, eps, lp.data_ptr<scalar_t>(),
                                             dp.data_ptr<scalar_t>(), grad_z.data_ptr<scalar_t>(),
                                             grad_x.data_ptr<scalar_t>());
  });
  return {grad_z, grad_x};
}

}  // namespace

TORCH_LIBRARY_IMPL(omasgan, CPU, m) {
  m.impl("scattering", &scattering_cpu);
  m.impl("scattering_backward", &scattering_backward_cpu);
  m.impl("scattering_with_pairs", &scattering_with_pairs_cpu);
  m.impl("scattering_backward_from_pairs", &scattering_backward_from_pairs_cpu);
}

}  // namespace omasgan
