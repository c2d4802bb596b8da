// scattering on the CPU: s_i = 1/(N-1) sum_{j != i} ||z_i - z_j|| / (||x_i - x_j|| + eps).
//
// Parallel over row blocks; each task walks all column tiles, so it owns its rows of s and of the
// gradients (no atomics, deterministic). Pairwise distances come from SqDistTiler; in gemm mode every
// pair whose candidate distance is small next to the points' norms (where the GEMM form loses digits)
// is recomputed by direct differences, so near-duplicates are exact. Two strategies, chosen by the
// caller (omasgan/ops/scattering.py, by a memory budget):
//  - recompute (scattering, scattering_backward): column tiles of kColTile; backward recomputes every
//    pairwise tile. Memory O(N + tile).
//  - pairs (scattering_with_pairs, scattering_backward_from_pairs): every row against all N columns,
//    in row blocks of a few MiB, one GEMM per space and block (threaded by BLAS, the points centred
//    once where common_centre asks for it) with the rows in parallel around it. The forward returns the refined (N, N) squared
//    distances of the spaces the caller asks to keep, which backward reads instead of recomputing
//    their distance GEMMs; a space not kept is recomputed block by block. The same refinement makes
//    it as exact. Memory O(N^2) per kept space, O(N * block) otherwise.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <limits>

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
    latent.set_cols(c0, c1);
    data.set_cols(c0, c1);
    const auto options = at::CPU(c10::CppTypeToScalarType<scalar_t>::value);
    latent_sq = at::empty({latent.n_rows(), c1 - c0}, options);
    data_sq = at::empty({data.n_rows(), c1 - c0}, options);
    latent.approx(latent_sq);
    data.approx(data_sq);
  }

  // Every row against every column (the pairs strategy), centring each matrix once.
  void set_whole(int64_t N) {
    set_rows(0, N);
    latent.set_cols_to_rows();
    data.set_cols_to_rows();
  }

  cpu::SqDistTiler<scalar_t> latent;  // z: (N, L)
  cpu::SqDistTiler<scalar_t> data;    // x: (N, D)
  at::Tensor latent_sq, data_sq;      // recompute strategy: candidate squared distances of the current tile
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
                           scalar_t* s) {      // (N,)
  const auto geo = geometry(N, L, D);
  const auto cz = cpu::common_centre(z, N, L);
  const auto cx = cpu::common_centre(x, N, D);
  at::parallel_for(0, geo.n_blocks, 1, [&](int64_t b_begin, int64_t b_end) {
    ScatteringTiles<scalar_t> tiles(z, x, L, D, &cz, &cx);
    std::vector<int64_t> near;
    for (int64_t b = b_begin; b < b_end; ++b) {
      const int64_t r0 = b * geo.block, r1 = std::min(N, r0 + geo.block);
      tiles.set_rows(r0, r1);
      std::vector<double> sums(r1 - r0, 0.0);
      for (int64_t c0 = 0; c0 < N; c0 += cpu::kColTile) {
        const int64_t c1 = std::min(N, c0 + cpu::kColTile);
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

// Rows per parallel task of the pairs strategy's row loops (each row costs O(N)).
constexpr int64_t kPairRowGrain = 16;
// The pairs strategy walks row blocks of (rows, N) temporaries of about this many bytes each: tall
// enough that the block GEMMs run at full speed, small next to a kept (N, N) matrix.
constexpr int64_t kPairBlockBytes = 8 << 20;

int64_t pair_block_rows(int64_t N, int64_t element_size) {
  return std::min<int64_t>(N, std::max<int64_t>(64, kPairBlockBytes / (N * element_size)));
}

// Row block [r0, r1) of a matrix kept whole, or of a block-sized temporary where it is not kept.
at::Tensor block_of(const at::Tensor& kept, const at::Tensor& temporary, int64_t r0, int64_t r1) {
  return kept.numel() > 0 ? kept.narrow(0, r0, r1 - r0) : temporary.narrow(0, 0, r1 - r0);
}

// The pairs strategy's forward: s, and the refined (N, N) squared distances of the spaces asked for
// (self pairs included; an empty tensor asks for none), row block by row block around one BLAS-threaded
// GEMM per space; a space not kept is computed into a block temporary and dropped.
template <typename scalar_t>
void scattering_pairs_cpu_kernel(const scalar_t* z, const scalar_t* x, int64_t N, int64_t L, int64_t D, double eps,
                                 scalar_t* s, const at::Tensor& latent_pairs, const at::Tensor& data_pairs) {
  const auto cz = cpu::common_centre(z, N, L);
  const auto cx = cpu::common_centre(x, N, D);
  ScatteringTiles<scalar_t> tiles(z, x, L, D, &cz, &cx);
  tiles.set_whole(N);
  const int64_t rows = pair_block_rows(N, sizeof(scalar_t));
  const auto options = at::CPU(c10::CppTypeToScalarType<scalar_t>::value);
  const at::Tensor latent_block = latent_pairs.numel() > 0 ? at::Tensor() : at::empty({rows, N}, options);
  const at::Tensor data_block = data_pairs.numel() > 0 ? at::Tensor() : at::empty({rows, N}, options);
  const auto e = static_cast<scalar_t>(eps);
  for (int64_t r0 = 0; r0 < N; r0 += rows) {
    const int64_t r1 = std::min(N, r0 + rows);
    const at::Tensor a_block = block_of(latent_pairs, latent_block, r0, r1);
    const at::Tensor b_block = block_of(data_pairs, data_block, r0, r1);
    tiles.latent.gemm_dots_rows(r0, r1, a_block);
    tiles.data.gemm_dots_rows(r0, r1, b_block);
    scalar_t* a_sq = a_block.data_ptr<scalar_t>();
    scalar_t* b_sq = b_block.data_ptr<scalar_t>();
    at::parallel_for(r0, r1, kPairRowGrain, [&](int64_t begin, int64_t end) {
      std::vector<int64_t> near;
      for (int64_t i = begin; i < end; ++i) {
        scalar_t* a_row = a_sq + (i - r0) * N;
        scalar_t* b_row = b_sq + (i - r0) * N;
        tiles.latent.finish_row(i, a_row);
        tiles.data.finish_row(i, b_row);
        near.clear();
        tiles.latent.refine_small(i, a_row, near);
        tiles.data.refine_small(i, b_row, near);
        // The self pair is not a neighbour: sum around it (the kept matrices keep its entry).
        const double sum = static_cast<double>(ratio_sum(a_row, b_row, e, i)) +
                           static_cast<double>(ratio_sum(a_row + i + 1, b_row + i + 1, e, N - i - 1));
        s[i] = static_cast<scalar_t>(sum / static_cast<double>(N - 1));
      }
    });
  }
}

// Pair {i, j} enters s_i and s_j, so L = sum_{i<j} w_ij a_ij / (b_ij + eps), w_ij = (g_i + g_j)/(N-1):
//   dL/dx_i = sum_j cx_ij (x_i - x_j),  cx_ij = -w_ij a_ij / ((b_ij + eps)^2 b_ij)   (0 when b_ij = 0)
//   dL/dz_i = sum_j cz_ij (z_i - z_j),  cz_ij =  w_ij / ((b_ij + eps) a_ij)          (0 when a_ij = 0)
// One row of coefficients against columns [c0, c0 + nc) into cz_row and cx_row. Near pairs (a large
// coefficient on a tiny difference) are added to the gradient rows by exact differences here and their
// coefficients zeroed, so accumulate_weighted_differences takes only the rest.
template <typename scalar_t>
void row_coefficients(ScatteringTiles<scalar_t>& tiles, int64_t i, int64_t row, int64_t c0, int64_t nc,
                      scalar_t* a_row, scalar_t* b_row, const scalar_t* grad_s, scalar_t inv_pairs, double eps,
                      scalar_t* cz_row, scalar_t* cx_row, at::Tensor& grad_z_rows, at::Tensor& grad_x_rows,
                      std::vector<int64_t>& near_latent, std::vector<int64_t>& near_data) {
  near_latent.clear();
  near_data.clear();
  // Kept pairs are refined already; this finds the near pairs again (recomputing them costs little).
  tiles.latent.refine_small(i, a_row, near_latent);
  tiles.data.refine_small(i, b_row, near_data);
  exclude_self_pair(row, c0, c0 + nc, a_row, b_row);
  gradient_coefficients(a_row, b_row, grad_s[row], grad_s + c0, inv_pairs, static_cast<scalar_t>(eps), nc, cz_row,
                        cx_row);
  for (const int64_t j : near_data) {
    if (row != c0 + j) {
      tiles.data.add_exact_difference(i, j, cx_row[j], grad_x_rows);
    }
    cx_row[j] = 0;
  }
  for (const int64_t j : near_latent) {
    if (row != c0 + j) {
      tiles.latent.add_exact_difference(i, j, cz_row[j], grad_z_rows);
    }
    cz_row[j] = 0;
  }
}

// The recompute strategy's backward: row blocks in parallel, every pairwise tile recomputed.
template <typename scalar_t>
void scattering_backward_cpu_kernel(const scalar_t* grad_s,  // (N,)
                                    const scalar_t* z,       // (N, L)
                                    const scalar_t* x,       // (N, D)
                                    int64_t N, int64_t L, int64_t D, double eps,
                                    scalar_t* grad_z,    // (N, L)
                                    scalar_t* grad_x) {  // (N, D)
  const auto geo = geometry(N, L, D);
  const auto cz = cpu::common_centre(z, N, L);
  const auto cx = cpu::common_centre(x, N, D);
  const scalar_t inv_pairs = static_cast<scalar_t>(1.0 / static_cast<double>(N - 1));
  const auto options = at::CPU(c10::CppTypeToScalarType<scalar_t>::value);
  at::parallel_for(0, geo.n_blocks, 1, [&](int64_t b_begin, int64_t b_end) {
    ScatteringTiles<scalar_t> tiles(z, x, L, D, &cz, &cx);
    std::vector<int64_t> near_latent, near_data;
    for (int64_t b = b_begin; b < b_end; ++b) {
      const int64_t r0 = b * geo.block, r1 = std::min(N, r0 + geo.block), nr = r1 - r0;
      tiles.set_rows(r0, r1);
      at::Tensor grad_z_rows = at::zeros({nr, L}, options);
      at::Tensor grad_x_rows = at::zeros({nr, D}, options);
      for (int64_t c0 = 0; c0 < N; c0 += cpu::kColTile) {
        const int64_t c1 = std::min(N, c0 + cpu::kColTile), nc = c1 - c0;
        tiles.set_cols(c0, c1);
        scalar_t* a_sq = tiles.latent_sq.template data_ptr<scalar_t>();
        scalar_t* b_sq = tiles.data_sq.template data_ptr<scalar_t>();
        at::Tensor coef_z = at::empty({nr, nc}, options);
        at::Tensor coef_x = at::empty({nr, nc}, options);
        for (int64_t i = 0; i < nr; ++i) {
          row_coefficients(tiles, i, r0 + i, c0, nc, a_sq + i * nc, b_sq + i * nc, grad_s, inv_pairs, eps,
                           coef_z.data_ptr<scalar_t>() + i * nc, coef_x.data_ptr<scalar_t>() + i * nc, grad_z_rows,
                           grad_x_rows, near_latent, near_data);
        }
        tiles.latent.accumulate_weighted_differences(coef_z, grad_z_rows);
        tiles.data.accumulate_weighted_differences(coef_x, grad_x_rows);
      }
      std::copy_n(grad_z_rows.data_ptr<scalar_t>(), nr * L, grad_z + r0 * L);
      std::copy_n(grad_x_rows.data_ptr<scalar_t>(), nr * D, grad_x + r0 * D);
    }
  });
}

// The pairs strategy's backward, row block by row block: coefficient rows in parallel from the kept
// matrices (a space not kept is recomputed for the block), then one GEMM per space for the block's
// weighted differences.
template <typename scalar_t>
void scattering_backward_pairs_cpu_kernel(const scalar_t* grad_s, const scalar_t* z, const scalar_t* x, int64_t N,
                                          int64_t L, int64_t D, double eps, const at::Tensor& latent_pairs,
                                          const at::Tensor& data_pairs, at::Tensor& grad_z, at::Tensor& grad_x) {
  const auto cz = cpu::common_centre(z, N, L);
  const auto cx = cpu::common_centre(x, N, D);
  const scalar_t inv_pairs = static_cast<scalar_t>(1.0 / static_cast<double>(N - 1));
  const auto options = at::CPU(c10::CppTypeToScalarType<scalar_t>::value);
  ScatteringTiles<scalar_t> tiles(z, x, L, D, &cz, &cx);
  tiles.set_whole(N);
  const bool latent_kept = latent_pairs.numel() > 0, data_kept = data_pairs.numel() > 0;
  const int64_t rows = pair_block_rows(N, sizeof(scalar_t));
  const at::Tensor latent_block = latent_kept ? at::Tensor() : at::empty({rows, N}, options);
  const at::Tensor data_block = data_kept ? at::Tensor() : at::empty({rows, N}, options);
  const at::Tensor coef_z = at::empty({rows, N}, options);
  const at::Tensor coef_x = at::empty({rows, N}, options);
  for (int64_t r0 = 0; r0 < N; r0 += rows) {
    const int64_t r1 = std::min(N, r0 + rows), nr = r1 - r0;
    const at::Tensor a_block = block_of(latent_pairs, latent_block, r0, r1);
    const at::Tensor b_block = block_of(data_pairs, data_block, r0, r1);
    if (!latent_kept) {
      tiles.latent.gemm_dots_rows(r0, r1, a_block);
    }
    if (!data_kept) {
      tiles.data.gemm_dots_rows(r0, r1, b_block);
    }
    at::parallel_for(r0, r1, kPairRowGrain, [&](int64_t begin, int64_t end) {
      // Kept rows are read-only (refining writes): copy them; a recomputed block row is this task's own.
      std::vector<scalar_t> a_copy(latent_kept ? N : 0), b_copy(data_kept ? N : 0);
      std::vector<int64_t> near_latent, near_data;
      for (int64_t i = begin; i < end; ++i) {
        scalar_t* a_row = a_block.data_ptr<scalar_t>() + (i - r0) * N;
        scalar_t* b_row = b_block.data_ptr<scalar_t>() + (i - r0) * N;
        if (latent_kept) {
          a_row = std::copy_n(a_row, N, a_copy.data()) - N;
        } else {
          tiles.latent.finish_row(i, a_row);
        }
        if (data_kept) {
          b_row = std::copy_n(b_row, N, b_copy.data()) - N;
        } else {
          tiles.data.finish_row(i, b_row);
        }
        row_coefficients(tiles, i, i, 0, N, a_row, b_row, grad_s, inv_pairs, eps,
                         coef_z.data_ptr<scalar_t>() + (i - r0) * N, coef_x.data_ptr<scalar_t>() + (i - r0) * N,
                         grad_z, grad_x, near_latent, near_data);
      }
    });
    tiles.latent.accumulate_weighted_differences_rows(r0, r1, coef_z.narrow(0, 0, nr), grad_z.narrow(0, r0, nr));
    tiles.data.accumulate_weighted_differences_rows(r0, r1, coef_x.narrow(0, 0, nr), grad_x.narrow(0, r0, nr));
  }
}

// The rule for non-finite input (omasgan/ops/_nonfinite.py): one NaN or infinity anywhere in z or x
// reaches every s[i] and every gradient, so the kernels fill their outputs with NaN instead.
bool all_points_finite(const at::Tensor& z, const at::Tensor& x) {
  bool finite = true;
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "scattering_all_finite", [&] {
    finite = cpu::all_finite(z.data_ptr<scalar_t>(), z.numel()) && cpu::all_finite(x.data_ptr<scalar_t>(), x.numel());
  });
  return finite;
}

at::Tensor scattering_cpu(const at::Tensor& z, const at::Tensor& x, double eps) {
  check_scattering_args(z, x, eps);
  TORCH_INTERNAL_ASSERT(z.device().is_cpu() && x.device().is_cpu());
  const at::Tensor zc = z.contiguous(), xc = x.contiguous();
  const int64_t N = xc.size(0), L = zc.size(1), D = xc.size(1);
  if (!all_points_finite(zc, xc)) {
    return at::full({N}, std::numeric_limits<double>::quiet_NaN(), xc.options());
  }
  at::Tensor s = at::empty({N}, xc.options());
  AT_DISPATCH_FLOATING_TYPES(xc.scalar_type(), "scattering_cpu", [&] {
    scattering_cpu_kernel<scalar_t>(zc.data_ptr<scalar_t>(), xc.data_ptr<scalar_t>(), N, L, D, eps,
                                    s.data_ptr<scalar_t>());
  });
  return s;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> scattering_with_pairs_cpu(const at::Tensor& z, const at::Tensor& x,
                                                                         double eps, bool keep_latent,
                                                                         bool keep_data) {
  check_scattering_args(z, x, eps);
  TORCH_INTERNAL_ASSERT(z.device().is_cpu() && x.device().is_cpu());
  const at::Tensor zc = z.contiguous(), xc = x.contiguous();
  const int64_t N = xc.size(0), L = zc.size(1), D = xc.size(1);
  at::Tensor latent_pairs = keep_latent ? at::empty({N, N}, xc.options()) : at::empty({0}, xc.options());
  at::Tensor data_pairs = keep_data ? at::empty({N, N}, xc.options()) : at::empty({0}, xc.options());
  if (!all_points_finite(zc, xc)) {
    const double nan = std::numeric_limits<double>::quiet_NaN();
    latent_pairs.fill_(nan);
    data_pairs.fill_(nan);
    return {at::full({N}, nan, xc.options()), latent_pairs, data_pairs};
  }
  at::Tensor s = at::empty({N}, xc.options());
  AT_DISPATCH_FLOATING_TYPES(xc.scalar_type(), "scattering_with_pairs_cpu", [&] {
    scattering_pairs_cpu_kernel<scalar_t>(zc.data_ptr<scalar_t>(), xc.data_ptr<scalar_t>(), N, L, D, eps,
                                          s.data_ptr<scalar_t>(), latent_pairs, data_pairs);
  });
  return {s, latent_pairs, data_pairs};
}

std::tuple<at::Tensor, at::Tensor> scattering_backward_cpu(const at::Tensor& grad_s, const at::Tensor& z,
                                                           const at::Tensor& x, double eps) {
  check_scattering_backward_args(grad_s, z, x, eps);
  TORCH_INTERNAL_ASSERT(x.device().is_cpu());
  const at::Tensor gc = grad_s.contiguous(), zc = z.contiguous(), xc = x.contiguous();
  const int64_t N = xc.size(0), L = zc.size(1), D = xc.size(1);
  if (!all_points_finite(zc, xc)) {
    const double nan = std::numeric_limits<double>::quiet_NaN();
    return {at::full_like(zc, nan), at::full_like(xc, nan)};
  }
  at::Tensor grad_z = at::empty_like(zc);
  at::Tensor grad_x = at::empty_like(xc);
  AT_DISPATCH_FLOATING_TYPES(xc.scalar_type(), "scattering_backward_cpu", [&] {
    scattering_backward_cpu_kernel<scalar_t>(gc.data_ptr<scalar_t>(), zc.data_ptr<scalar_t>(),
                                             xc.data_ptr<scalar_t>(), N, L, D, eps, grad_z.data_ptr<scalar_t>(),
                                             grad_x.data_ptr<scalar_t>());
  });
  return {grad_z, grad_x};
}

// A kept matrix is (N, N) of x's dtype; an empty one means "not kept: recompute".
void check_kept_pairs(const char* name, const at::Tensor& pairs, const at::Tensor& x) {
  const int64_t N = x.size(0);
  TORCH_CHECK((pairs.numel() == 0 || pairs.sizes() == at::IntArrayRef({N, N})) &&
                  pairs.scalar_type() == x.scalar_type(),
              "scattering_backward_from_pairs: ", name, " must be (", N, ", ", N, ") or empty, of x's dtype, ",
              "as scattering_with_pairs returns it; got ", pairs.sizes(), " of ", pairs.scalar_type(), ".");
}

std::tuple<at::Tensor, at::Tensor> scattering_backward_from_pairs_cpu(const at::Tensor& grad_s, const at::Tensor& z,
                                                                      const at::Tensor& x,
                                                                      const at::Tensor& latent_pairs,
                                                                      const at::Tensor& data_pairs, double eps) {
  check_scattering_backward_args(grad_s, z, x, eps);
  check_kept_pairs("latent_pairs", latent_pairs, x);
  check_kept_pairs("data_pairs", data_pairs, x);
  TORCH_INTERNAL_ASSERT(x.device().is_cpu());
  const at::Tensor gc = grad_s.contiguous(), zc = z.contiguous(), xc = x.contiguous();
  if (!all_points_finite(zc, xc)) {
    const double nan = std::numeric_limits<double>::quiet_NaN();
    return {at::full_like(zc, nan), at::full_like(xc, nan)};
  }
  const int64_t N = xc.size(0), L = zc.size(1), D = xc.size(1);
  const at::Tensor lp = latent_pairs.contiguous(), dp = data_pairs.contiguous();
  at::Tensor grad_z = at::zeros_like(zc);
  at::Tensor grad_x = at::zeros_like(xc);
  AT_DISPATCH_FLOATING_TYPES(xc.scalar_type(), "scattering_backward_from_pairs_cpu", [&] {
    scattering_backward_pairs_cpu_kernel<scalar_t>(gc.data_ptr<scalar_t>(), zc.data_ptr<scalar_t>(),
                                                   xc.data_ptr<scalar_t>(), N, L, D, eps, lp, dp, grad_z, grad_x);
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
