// Shared CPU machinery for the pairwise operators: squared Euclidean distances between a block of
// "row" points and a tile of "column" points, fast and exact where exactness matters.
//
// Two modes, chosen by the feature count:
//  - direct (dim <= kDirectMaxDim): sum of squared differences over a transposed column tile. The
//    inner loop runs over columns, so it vectorises; the values are accurate to a few ulp.
//  - gemm: ||r||^2 + ||c||^2 - 2 r.c with the dot products from one GEMM per tile, on points centred
//    by a common centre where their mean is far next to their spread (centring removes the large-norm
//    cancellation that breaks the textbook form; common_centre decides).
//    The result is only a *candidate*: callers recompute by direct differences wherever the GEMM error
//    bound could change an answer (refine_small, and the candidate scan of min_distance).
//  - gemm with bfloat16 candidates (knn and min_distance on float32, where the CPU multiplies bfloat16
//    natively): the same, with the GEMM on bfloat16 copies of the centred points at about twice the
//    float32 rate and an error bound widened to cover their rounding. Only searches whose every
//    possible winner is recomputed exactly may ask for it, so their results do not change.
//
// Hot loops carry `#pragma omp simd` (the extension builds with -fopenmp): it vectorises the float
// min/or reductions that gcc otherwise leaves scalar without -ffast-math.
#pragma once

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <ATen/cpu/Utils.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <type_traits>
#include <vector>

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
// One build runs well on every x86-64: gcc emits AVX-512, AVX2 and baseline clones of the hot loops
// and the loader picks one per machine.
#define OMASGAN_HOT_LOOP __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define OMASGAN_HOT_LOOP
#endif

namespace omasgan::cpu {

// Below this feature count a GEMM's inner dimension is too short to pay off.
constexpr int64_t kDirectMaxDim = 16;
// Columns per tile: a (rows, tile) candidate tile of a few hundred KiB; direct mode's per-row sweeps
// are cheap, so it takes longer tiles to amortise the per-tile work.
constexpr int64_t kColTile = 512;
constexpr int64_t kDirectColTile = 2048;
// Passes over a whole matrix split into parallel tasks of at least this many values.
constexpr int64_t kParallelGrainValues = 1 << 15;
// Candidate scans test this many columns with one vector "any" before looking at them one by one.
constexpr int64_t kScanBlock = 128;

template <typename scalar_t>
constexpr double unit_roundoff() {
  return std::numeric_limits<scalar_t>::epsilon() / 2;
}

// Added to the candidate error bound's factor on (||r|| + max ||c||)^2 when the GEMM runs in bfloat16
// (unit roundoff u = 2^-8). The inputs rounded to bfloat16 and the product rounded once to bfloat16
// after float32 accumulation (tests/ops/test_bf16_candidates.py checks that oneDNN does so) move a dot
// product by at most (3u + u^2) ||r|| ||c||, so a candidate by 2 (3u + u^2) ||r|| ||c|| <=
// 1.51u (||r|| + ||c||)^2; the accumulation's own error is the float32 factor's. 2u leaves a margin.
constexpr double kBf16CandidateBound = 2.0 / 256;
// bfloat16 candidates save about half the GEMM and cost an exact recompute (O(dim) in double) for each
// extra candidate their wider bound lets through. Where the distances crowd together (high-dimensional
// noise) that is many; past this share of the pairs seen, a tiler returns to the float32 GEMM.
constexpr int64_t kBf16MaxRecomputeShareInverse = 16;

// Whether the CPU multiplies bfloat16 natively (AVX512-BF16 or AMX-BF16, through oneDNN): only then is
// a bfloat16 GEMM faster than the float32 one.
inline bool native_bf16_gemm() {
  static const bool native = [] {
    if (!at::hasMKLDNN()) {
      return false;
    }
    const auto capabilities = at::cpu::get_cpu_capabilities();
    const auto has = [&](const char* name) {
      const auto it = capabilities.find(name);
      return it != capabilities.end() && it->second.isBool() && it->second.toBool();
    };
    return has("avx512_bf16") || has("amx_bf16");
  }();
  return native;
}

// bfloat16 candidates where the CPU has native bfloat16; OMASGAN_BF16_CANDIDATES=0 turns them off and
// =1 forces them on (slow without native support, but exact: tests use it to cover the path anywhere).
inline bool bf16_candidates_wanted() {
  const char* setting = std::getenv("OMASGAN_BF16_CANDIDATES");
  if (setting != nullptr && (setting[0] == '0' || setting[0] == '1')) {
    return setting[0] == '1';
  }
  return native_bf16_gemm();
}

// Exact squared distance between two rows by direct differences, accumulated in double (a vector
// reduction reorders the double sum: far below float's rounding).
template <typename scalar_t>
OMASGAN_HOT_LOOP double exact_sqdist(const scalar_t* __restrict__ a, const scalar_t* __restrict__ b, int64_t dim) {
  double acc = 0;
  if (dim <= kDirectMaxDim) {  // direct mode's few features: the vector loop's set-up would cost more
    for (int64_t d = 0; d < dim; ++d) {
      const double diff = static_cast<double>(a[d]) - static_cast<double>(b[d]);
      acc += diff * diff;
    }
    return acc;
  }
#pragma omp simd reduction(+ : acc)
  for (int64_t d = 0; d < dim; ++d) {
    const double diff = static_cast<double>(a[d]) - static_cast<double>(b[d]);
    acc += diff * diff;
  }
  return acc;
}

// sum[d] += row[d] and sum_sq[d] += row[d]^2 for one row (vectorised: one double lane per feature).
template <typename scalar_t>
OMASGAN_HOT_LOOP void add_row_moments(double* __restrict__ sum, double* __restrict__ sum_sq,
                                      const scalar_t* __restrict__ row, int64_t dim) {
#pragma omp simd
  for (int64_t d = 0; d < dim; ++d) {
    const double v = static_cast<double>(row[d]);
    sum[d] += v;
    sum_sq[d] += v * v;
  }
}

// Centring pays when the points' mean is far next to their spread: then ||r||^2 + ||c||^2 - 2 r.c
// cancels digits and the error bound lets many candidates through. Below this ratio of ||mean||^2 to
// the mean squared distance from the mean, the points are used as they are (no centred copy).
constexpr double kCentreOffsetRatio = 0.25;

// The common centre of the gemm mode for points (n, dim): their column mean in double, or empty where
// centring does not pay (kCentreOffsetRatio) and in direct mode, which needs none. Column ranges in
// parallel, each value summed in row order (deterministic).
template <typename scalar_t>
std::vector<double> common_centre(const scalar_t* points, int64_t n, int64_t dim) {
  if (dim <= kDirectMaxDim) {
    return {};
  }
  std::vector<double> mean(dim, 0.0), mean_sq(dim, 0.0);
  const int64_t grain = std::max<int64_t>(64, kParallelGrainValues / std::max<int64_t>(n, 1));
  at::parallel_for(0, dim, grain, [&](int64_t d0, int64_t d1) {
    for (int64_t i = 0; i < n; ++i) {
      add_row_moments(mean.data() + d0, mean_sq.data() + d0, points + i * dim + d0, d1 - d0);
    }
  });
  double offset = 0, spread = 0;  // ||mean||^2, mean_i ||p_i - mean||^2
  for (int64_t d = 0; d < dim; ++d) {
    mean[d] /= static_cast<double>(n);
    offset += mean[d] * mean[d];
    spread += mean_sq[d] / static_cast<double>(n) - mean[d] * mean[d];
  }
  if (offset <= kCentreOffsetRatio * spread) {
    return {};
  }
  return mean;
}

// out[j] = sum_d (row[d] - columns[d * stride + j])^2 over a transposed (dim, stride) tile, j < count;
// returns min_j out[j] (fused into the last pass, which saves min_distance a sweep).
template <typename scalar_t>
OMASGAN_HOT_LOOP scalar_t direct_sqdist_row(const scalar_t* __restrict__ row, const scalar_t* __restrict__ columns,
                                            int64_t dim, int64_t count, int64_t stride, scalar_t* __restrict__ out) {
  for (int64_t d = 0; d + 1 < dim; ++d) {
    const scalar_t value = row[d];
    const scalar_t* column = columns + d * stride;
    if (d == 0) {
#pragma omp simd
      for (int64_t j = 0; j < count; ++j) {
        const scalar_t diff = value - column[j];
        out[j] = diff * diff;
      }
    } else {
#pragma omp simd
      for (int64_t j = 0; j < count; ++j) {
        const scalar_t diff = value - column[j];
        out[j] += diff * diff;
      }
    }
  }
  const scalar_t value = row[dim - 1];
  const scalar_t* column = columns + (dim - 1) * stride;
  scalar_t best = std::numeric_limits<scalar_t>::infinity();
  if (dim == 1) {
#pragma omp simd reduction(min : best)
    for (int64_t j = 0; j < count; ++j) {
      const scalar_t diff = value - column[j];
      const scalar_t v = diff * diff;
      out[j] = v;
      best = v < best ? v : best;
    }
  } else {
#pragma omp simd reduction(min : best)
    for (int64_t j = 0; j < count; ++j) {
      const scalar_t diff = value - column[j];
      const scalar_t v = out[j] + diff * diff;
      out[j] = v;
      best = v < best ? v : best;
    }
  }
  return best;
}

// Columns of a transposed direct-mode tile come in whole vectors of this many bytes (the tile's stride is
// padded to it, the padding +inf), so that direct_sqdist_rows needs no remainder loop.
constexpr int64_t kDirectVectorBytes = 64;
// Rows that direct_sqdist_rows computes together: each column vector loaded serves them all, and their
// sums stay in registers across the features (one store per value instead of one per feature).
constexpr int64_t kDirectRowGroup = 4;
// direct_sqdist_rows also reports, per row, the minimum of each of disjoint sets of columns: lane w of
// each run of this many vectors (a by-product of its running minimum). A run whose set minima are all
// above a limit holds no value below it (collect_at_most_in_runs skips it), and their k-th smallest
// bounds the tile's k-th smallest value from above.
constexpr int64_t kDirectSetVectors = 8;

template <typename scalar_t>
constexpr int64_t direct_lanes() {
  return kDirectVectorBytes / static_cast<int64_t>(sizeof(scalar_t));
}

// The number of column sets of direct_sqdist_rows for a padded stride.
template <typename scalar_t>
constexpr int64_t direct_set_count(int64_t stride) {
  const int64_t vectors = stride / direct_lanes<scalar_t>();
  return (vectors + kDirectSetVectors - 1) / kDirectSetVectors * direct_lanes<scalar_t>();
}

// direct_sqdist_row for Rows rows at once (rows: (Rows, dim) contiguous) over a transposed tile padded as
// kDirectVectorBytes says: out[r * stride + j] for j < stride (the padding's values are +inf or NaN and
// never read), and set_mins[r * sets + s] the minimum of column set s (kDirectSetVectors; sets =
// direct_set_count(stride)), which the padding does not lower. The same sums in the same order as
// direct_sqdist_row.
template <typename scalar_t, int64_t Rows>
OMASGAN_HOT_LOOP void direct_sqdist_rows(const scalar_t* __restrict__ rows, const scalar_t* __restrict__ columns,
                                         int64_t dim, int64_t stride, scalar_t* __restrict__ out,
                                         scalar_t* __restrict__ set_mins) {
  constexpr int64_t lanes = direct_lanes<scalar_t>();
  typedef scalar_t vec __attribute__((vector_size(kDirectVectorBytes)));
  const vec infinity = vec{} + std::numeric_limits<scalar_t>::infinity();
  const int64_t sets = direct_set_count<scalar_t>(stride);
  vec best[Rows];
  for (int64_t r = 0; r < Rows; ++r) {
    best[r] = infinity;
  }
  for (int64_t j0 = 0, vector = 0; j0 < stride; j0 += lanes, ++vector) {
    vec acc[Rows];
    for (int64_t r = 0; r < Rows; ++r) {
      acc[r] = vec{};
    }
    for (int64_t d = 0; d < dim; ++d) {
      vec column;
      std::memcpy(&column, columns + d * stride + j0, sizeof(vec));
      for (int64_t r = 0; r < Rows; ++r) {
        const vec diff = rows[r * dim + d] - column;
        acc[r] += diff * diff;
      }
    }
    for (int64_t r = 0; r < Rows; ++r) {
      std::memcpy(out + r * stride + j0, &acc[r], sizeof(vec));
      best[r] = acc[r] < best[r] ? acc[r] : best[r];
    }
    if (vector % kDirectSetVectors == kDirectSetVectors - 1 || j0 + lanes >= stride) {
      const int64_t set0 = vector / kDirectSetVectors * lanes;
      for (int64_t r = 0; r < Rows; ++r) {
        std::memcpy(set_mins + r * sets + set0, &best[r], sizeof(vec));
        best[r] = infinity;
      }
    }
  }
}

// out[j] = row_sqnorm + col_sqnorm[j] - 2 out[j]: dot products to squared distances.
template <typename scalar_t>
OMASGAN_HOT_LOOP void dots_to_sqdist(scalar_t* __restrict__ out, const scalar_t* __restrict__ col_sqnorm,
                                     scalar_t row_sqnorm, int64_t count) {
#pragma omp simd
  for (int64_t j = 0; j < count; ++j) {
    out[j] = row_sqnorm + col_sqnorm[j] - 2 * out[j];
  }
}

template <typename scalar_t>
OMASGAN_HOT_LOOP scalar_t min_value(const scalar_t* __restrict__ v, int64_t count) {
  scalar_t best = std::numeric_limits<scalar_t>::infinity();
#pragma omp simd reduction(min : best)
  for (int64_t j = 0; j < count; ++j) {
    const scalar_t value = v[j];
    best = value < best ? value : best;  // not std::min: its reference return defeats vectorisation
  }
  return best;
}

// out = every j < count with v[j] <= limit, in increasing j; cheap when there are few: each block of
// kScanBlock values is tested with one vector compare-and-or before its values are looked at one by one.
template <typename scalar_t>
OMASGAN_HOT_LOOP void collect_at_most(const scalar_t* __restrict__ v, int64_t count, scalar_t limit,
                                      std::vector<int64_t>& out) {
  out.clear();
  for (int64_t j0 = 0; j0 < count; j0 += kScanBlock) {
    const int64_t j1 = std::min(count, j0 + kScanBlock);
    int any = 0;
#pragma omp simd reduction(| : any)
    for (int64_t j = j0; j < j1; ++j) {
      any |= v[j] <= limit;
    }
    for (int64_t j = j0; any && j < j1; ++j) {
      if (v[j] <= limit) {
        out.push_back(j);
      }
    }
  }
}

// collect_at_most over a row of direct_sqdist_rows's output v with its set minima: a run of
// kDirectSetVectors vectors is looked at only if one of its lanes' minima is at most limit.
template <typename scalar_t>
OMASGAN_HOT_LOOP void collect_at_most_in_runs(const scalar_t* __restrict__ v, int64_t count,
                                              const scalar_t* __restrict__ set_mins, scalar_t limit,
                                              std::vector<int64_t>& out) {
  constexpr int64_t lanes = direct_lanes<scalar_t>(), run = kDirectSetVectors * lanes;
  out.clear();
  for (int64_t j0 = 0, s0 = 0; j0 < count; j0 += run, s0 += lanes) {
    int any = 0;
#pragma omp simd reduction(| : any)
    for (int64_t w = 0; w < lanes; ++w) {
      any |= set_mins[s0 + w] <= limit;
    }
    for (int64_t j = j0, j1 = std::min(count, j0 + run); any && j < j1; j += lanes) {
      // One compare per vector, then its set bits (there are few).
      const int64_t n = std::min(lanes, j1 - j);
      uint32_t below = 0;
#pragma omp simd reduction(| : below)
      for (int64_t w = 0; w < n; ++w) {
        below |= static_cast<uint32_t>(v[j + w] <= limit) << w;
      }
      for (; below != 0; below &= below - 1) {
        out.push_back(j + __builtin_ctz(below));
      }
    }
  }
}

// sum_j coef[j] * (value - column[j])
template <typename scalar_t>
OMASGAN_HOT_LOOP scalar_t weighted_difference_sum(const scalar_t* __restrict__ coef,
                                                  const scalar_t* __restrict__ column, scalar_t value, int64_t count) {
  scalar_t acc = 0;
#pragma omp simd reduction(+ : acc)
  for (int64_t j = 0; j < count; ++j) {
    acc += coef[j] * (value - column[j]);
  }
  return acc;
}

// g += weight * (a - b), the difference taken in double.
template <typename scalar_t>
OMASGAN_HOT_LOOP void add_weighted_difference(scalar_t* __restrict__ g, const scalar_t* __restrict__ a,
                                              const scalar_t* __restrict__ b, double weight, int64_t dim) {
#pragma omp simd
  for (int64_t d = 0; d < dim; ++d) {
    g[d] += static_cast<scalar_t>(weight * (static_cast<double>(a[d]) - static_cast<double>(b[d])));
  }
}

// Whether every one of count values is finite: v * 0 is 0 for a finite v and NaN for NaN and +-inf, so
// one vectorised sum answers without a branch per value.
template <typename scalar_t>
OMASGAN_HOT_LOOP bool all_finite(const scalar_t* __restrict__ v, int64_t count) {
  scalar_t acc = 0;
#pragma omp simd reduction(+ : acc)
  for (int64_t j = 0; j < count; ++j) {
    acc += v[j] * scalar_t(0);
  }
  return acc == scalar_t(0);
}

// The first of rows (rows, dim) holding a NaN or an infinity, or -1 when every value is finite.
template <typename scalar_t>
int64_t first_nonfinite_row(const scalar_t* points, int64_t rows, int64_t dim) {
  if (all_finite(points, rows * dim)) {
    return -1;
  }
  for (int64_t i = 0; i < rows; ++i) {
    if (!all_finite(points + i * dim, dim)) {
      return i;
    }
  }
  return -1;
}

// sum_j v[j], accumulated in double.
template <typename scalar_t>
OMASGAN_HOT_LOOP scalar_t row_sum(const scalar_t* __restrict__ v, int64_t count) {
  double acc = 0;
#pragma omp simd reduction(+ : acc)
  for (int64_t j = 0; j < count; ++j) {
    acc += static_cast<double>(v[j]);
  }
  return static_cast<scalar_t>(acc);
}

// g += s * a
template <typename scalar_t>
OMASGAN_HOT_LOOP void add_scaled(scalar_t* __restrict__ g, const scalar_t* __restrict__ a, scalar_t s, int64_t dim) {
#pragma omp simd
  for (int64_t d = 0; d < dim; ++d) {
    g[d] += s * a[d];
  }
}

// g += s * (a - b) in the input precision.
template <typename scalar_t>
OMASGAN_HOT_LOOP void add_scaled_difference(scalar_t* __restrict__ g, const scalar_t* __restrict__ a,
                                            const scalar_t* __restrict__ b, scalar_t s, int64_t dim) {
#pragma omp simd
  for (int64_t d = 0; d < dim; ++d) {
    g[d] += s * (a[d] - b[d]);
  }
}

// ||v||^2
template <typename scalar_t>
OMASGAN_HOT_LOOP scalar_t squared_norm(const scalar_t* __restrict__ v, int64_t dim) {
  scalar_t norm = 0;
#pragma omp simd reduction(+ : norm)
  for (int64_t d = 0; d < dim; ++d) {
    norm += v[d] * v[d];
  }
  return norm;
}

// out = src - centre; returns ||out||^2.
template <typename scalar_t>
OMASGAN_HOT_LOOP scalar_t centre_row(const scalar_t* __restrict__ src, const scalar_t* __restrict__ centre,
                                     scalar_t* __restrict__ out, int64_t dim) {
  scalar_t norm = 0;
#pragma omp simd reduction(+ : norm)
  for (int64_t d = 0; d < dim; ++d) {
    const scalar_t value = src[d] - centre[d];
    out[d] = value;
    norm += value * value;
  }
  return norm;
}

// Squared distances between a block of rows of `rows` (n_rows, dim) and a tile of rows of `cols`
// (n_cols, dim). One instance per thread; it owns tile-sized buffers only.
template <typename scalar_t>
class SqDistTiler {
 public:
  // candidates_only: the caller recomputes exactly every candidate its error bound lets through (knn,
  // min_distance) and never reads a candidate value as a distance, so the GEMM may run in bfloat16.
  SqDistTiler(const scalar_t* rows, const scalar_t* cols, int64_t dim, const std::vector<double>* centre,
              bool candidates_only = false)
      : rows_(rows),
        cols_(cols),
        dim_(dim),
        direct_(dim <= kDirectMaxDim),
        bf16_(candidates_only && !direct_ && std::is_same_v<scalar_t, float> && bf16_candidates_wanted()) {
    if (!direct_) {
      centre_.assign(centre->begin(), centre->end());
    }
    centred_ = !centre_.empty();
  }

  bool direct() const { return direct_; }
  int64_t col_tile() const { return direct_ ? kDirectColTile : kColTile; }
  int64_t dim() const { return dim_; }
  int64_t n_rows() const { return r1_ - r0_; }
  int64_t n_cols() const { return c1_ - c0_; }
  const scalar_t* row(int64_t i) const { return rows_ + (r0_ + i) * dim_; }  // original values
  const scalar_t* col(int64_t j) const { return cols_ + (c0_ + j) * dim_; }  // original values

  void set_rows(int64_t r0, int64_t r1) {
    r0_ = r0;
    r1_ = r1;
    if (!direct_) {
      centre_block(rows_, r0, r1, &row_centred_, &row_sqnorm_);
      if (bf16_) {
        copy_to_bf16(row_centred_, row_bf16_);
      }
    }
  }

  void set_cols(int64_t c0, int64_t c1) {
    c0_ = c0;
    c1_ = c1;
    if (direct_) {
      transpose_cols();
      return;
    }
    centre_block(cols_, c0, c1, &col_centred_, &col_sqnorm_);
    if (bf16_) {
      copy_to_bf16(col_centred_, col_bf16_);
    }
    set_error_bounds();
  }

  // The columns are the current rows (a matrix against itself, rows_ == cols_): the centred rows are
  // shared instead of centred a second time.
  void set_cols_to_rows() {
    TORCH_INTERNAL_ASSERT(rows_ == cols_, "set_cols_to_rows needs one matrix as rows and columns");
    c0_ = r0_;
    c1_ = r1_;
    if (direct_) {
      transpose_cols();
      return;
    }
    TORCH_INTERNAL_ASSERT(!bf16_, "bfloat16 candidates are for searches of one matrix in another");
    col_centred_ = row_centred_;
    col_sqnorm_ = row_sqnorm_;
    set_error_bounds();
  }

  // The caller recomputed `recomputed` of the `pairs` candidates of the last tile exactly: bfloat16
  // candidates stop (from the next set_cols) once that share passes 1 / kBf16MaxRecomputeShareInverse.
  // Callers leave out a row block's first tile, whose window is wider (two bounds above the tile's own
  // k-th candidate, later ones one bound above the running k-th).
  void count_recomputed(int64_t recomputed, int64_t pairs) {
    if (!bf16_) {
      return;
    }
    recomputed_ += recomputed;
    pairs_seen_ += pairs;
    if (recomputed_ * kBf16MaxRecomputeShareInverse > pairs_seen_) {
      bf16_ = false;
    }
  }

  // Candidate squared distances, (n_rows, n_cols) row-major into a contiguous tile-sized buffer.
  void approx(at::Tensor& out) {
    gemm_dots(out);
    scalar_t* o = out.data_ptr<scalar_t>();
    for (int64_t i = 0; i < n_rows(); ++i) {
      finish_row(i, o + i * n_cols());
    }
  }

  // approx in two steps, so that callers can run the rows in parallel around one (BLAS-threaded) GEMM:
  // gemm_dots writes the dot products (gemm mode; nothing in direct mode), then finish_row turns row i
  // of them into candidate squared distances (direct mode: computes them). finish_row is thread-safe.
  void gemm_dots(at::Tensor& out) { gemm_dots_rows(0, n_rows(), out); }
  // gemm_dots for rows [b0, b1) of the current rows only, into a contiguous (b1 - b0, n_cols) out;
  // finish_row then takes those rows by their index in the current rows.
  void gemm_dots_rows(int64_t b0, int64_t b1, at::Tensor out) {
    if (direct_) {
      return;
    }
    if (bf16_) {
      if (!bf16_dots_.defined()) {
        bf16_dots_ = at::empty({b1 - b0, n_cols()}, at::kBFloat16);
      }
      bf16_dots_.resize_({b1 - b0, n_cols()});
      at::mm_out(bf16_dots_, row_bf16_.narrow(0, b0, b1 - b0), col_bf16_.t());
      out.copy_(bf16_dots_);
      return;
    }
    at::mm_out(out, row_centred_.narrow(0, b0, b1 - b0), col_centred_.t());
  }
  void finish_row(int64_t i, scalar_t* out_row) const {
    if (direct_) {
      direct_sqdist_row(row(i), col_transposed_.data(), dim_, n_cols(), col_stride_, out_row);
    } else {
      dots_to_sqdist(out_row, col_sqnorm_.data(), row_sqnorm_[i], n_cols());
    }
  }

  // Direct mode only: candidates of rows [i0, i1) (at most kDirectRowGroup) into out, row i0 + r at
  // out + r * col_stride() (col_stride() >= n_cols() values; the first n_cols() are the tile's), and the
  // minima of their column sets into set_mins, row i0 + r at set_mins + r * set_count().
  void approx_rows(int64_t i0, int64_t i1, scalar_t* out, scalar_t* set_mins) const {
    TORCH_INTERNAL_ASSERT(direct_ && i1 - i0 <= kDirectRowGroup);
    if (i1 - i0 == kDirectRowGroup) {
      direct_sqdist_rows<scalar_t, kDirectRowGroup>(row(i0), col_transposed_.data(), dim_, col_stride_, out, set_mins);
      return;
    }
    for (int64_t i = i0; i < i1; ++i) {
      direct_sqdist_rows<scalar_t, 1>(row(i), col_transposed_.data(), dim_, col_stride_, out + (i - i0) * col_stride_,
                                      set_mins + (i - i0) * set_count());
    }
  }
  // Direct mode: the row stride of approx_rows's output (n_cols() rounded up to whole vectors), and the
  // number of column sets per row (direct_set_count).
  int64_t col_stride() const { return col_stride_; }
  int64_t set_count() const { return direct_set_count<scalar_t>(col_stride_); }

  // Bound on |candidate - exact| for row i against any column of the current tile. gemm mode: absolute,
  // from the norms; direct mode: relative to the value itself (a sum of dim squares).
  double error_bound(int64_t i) const { return direct_ ? 0.0 : row_error_bound_[i]; }
  double relative_error_bound() const { return static_cast<double>(dim_ + 8) * unit_roundoff<scalar_t>(); }

  double exact(int64_t i, int64_t j) const { return exact_sqdist(row(i), col(j), dim_); }

  // gemm mode: replace the candidates of row i that are small next to the points' norms (there the
  // GEMM form loses digits: worst-case error above 1/4096 of the value) by exact values, and append
  // their columns to `near`. Pairs past the threshold keep the GEMM value, accurate in practice.
  template <typename Near>
  void refine_small(int64_t i, scalar_t* values_row, Near& near) const {
    if (direct_) {
      return;
    }
    const int64_t nc = n_cols();
    const scalar_t row_norm = row_sqnorm_[i];
    const scalar_t cap = static_cast<scalar_t>(4096 * row_error_bound_[i]);
    const scalar_t* col_norm = col_sqnorm_.data();
    const int64_t self = rows_ == cols_ ? r0_ + i - c0_ : -1;  // row i's own column, if in this tile
    for (int64_t j0 = 0; j0 < nc; j0 += kScanBlock) {
      const int64_t n = std::min(kScanBlock, nc - j0);
      int any = 0;
#pragma omp simd reduction(| : any)
      for (int64_t j = j0; j < j0 + n; ++j) {
        const scalar_t threshold = (row_norm + col_norm[j]) * scalar_t(0.0625);
        any |= values_row[j] <= (threshold < cap ? threshold : cap);
      }
      if (!any) {
        continue;
      }
      for (int64_t j = j0; j < j0 + n; ++j) {
        if (values_row[j] <= std::min((row_norm + col_norm[j]) * scalar_t(0.0625), cap)) {
          // A point's distance to itself is 0: no need to sum dim squared differences for it.
          values_row[j] = j == self ? scalar_t(0) : static_cast<scalar_t>(exact(i, j));
          near.push_back(j);
        }
      }
    }
  }

  // grad_rows(i, :) += sum_j coef(i, j) * (row_i - col_j) over the tile, for coefficients (n_rows, n_cols).
  // gemm mode uses the centred identity  sum_j c_ij (r_i - c_j) = r_i sum_j c_ij - (C c)_i, so callers
  // must zero the coefficients of near pairs and add those exactly (add_exact_difference).
  void accumulate_weighted_differences(const at::Tensor& coef, at::Tensor& grad_rows) {
    const int64_t nr = n_rows(), nc = n_cols();
    const scalar_t* c = coef.data_ptr<scalar_t>();
    scalar_t* g = grad_rows.data_ptr<scalar_t>();
    if (direct_) {
      // Rows in parallel (inline when called inside a parallel region): each writes its own gradient row.
      at::parallel_for(0, nr, 16, [&](int64_t i_begin, int64_t i_end) {
        for (int64_t i = i_begin; i < i_end; ++i) {
          add_direct_weighted_differences(i, c + i * nc, g + i * dim_);
        }
      });
      return;
    }
    at::parallel_for(0, nr, 16, [&](int64_t i_begin, int64_t i_end) {
      for (int64_t i = i_begin; i < i_end; ++i) {
        add_scaled(g + i * dim_, row_centred_.data_ptr<scalar_t>() + i * dim_, row_sum(c + i * nc, nc), dim_);
      }
    });
    grad_rows.addmm_(coef, col_centred_, /*beta=*/1, /*alpha=*/-1);
  }

  // accumulate_weighted_differences for rows [b0, b1) of the current rows against every column, with the
  // current columns the current rows (set_cols_to_rows): coef (b1 - b0, n_cols) with a zero diagonal
  // (the self pairs), overwritten; grad_block the gradient rows [b0, b1). gemm mode folds the row sums
  // into the diagonal, so the whole update is one GEMM:  g_i -= sum_j M_ij c_j,  M_ii = -sum_j c_ij.
  void accumulate_weighted_differences_rows(int64_t b0, int64_t b1, at::Tensor coef, at::Tensor grad_block) {
    TORCH_INTERNAL_ASSERT(rows_ == cols_ && r0_ == c0_ && r1_ == c1_, "needs set_cols_to_rows");
    const int64_t nb = b1 - b0, nc = n_cols();
    scalar_t* c = coef.data_ptr<scalar_t>();
    scalar_t* g = grad_block.data_ptr<scalar_t>();
    at::parallel_for(0, nb, 16, [&](int64_t i_begin, int64_t i_end) {
      for (int64_t i = i_begin; i < i_end; ++i) {
        scalar_t* ci = c + i * nc;
        if (direct_) {
          add_direct_weighted_differences(b0 + i, ci, g + i * dim_);
        } else {
          ci[b0 + i] = -row_sum(ci, nc);  // the columns are the rows: row b0 + i's self pair
        }
      }
    });
    if (!direct_) {
      grad_block.addmm_(coef, col_centred_, /*beta=*/1, /*alpha=*/-1);
    }
  }

  // grad_rows(i, :) += weight * (row_i - col_j), by direct differences.
  void add_exact_difference(int64_t i, int64_t j, double weight, at::Tensor& grad_rows) const {
    add_weighted_difference(grad_rows.data_ptr<scalar_t>() + i * dim_, row(i), col(j), weight, dim_);
  }

 private:
  // Direct mode: grad_row += sum_j coef_row[j] * (row_i - col_j) over the transposed tile.
  void add_direct_weighted_differences(int64_t i, const scalar_t* coef_row, scalar_t* grad_row) const {
    const scalar_t* r = row(i);
    for (int64_t d = 0; d < dim_; ++d) {
      grad_row[d] += weighted_difference_sum(coef_row, col_transposed_.data() + d * col_stride_, r[d], n_cols());
    }
  }

  // dst = src in bfloat16, into dst's own storage when it has room (tile after tile, no new pages).
  static void copy_to_bf16(const at::Tensor& src, at::Tensor& dst) {
    if (!dst.defined()) {
      dst = at::empty(src.sizes(), src.options().dtype(at::kBFloat16));
    } else {
      dst.resize_(src.sizes());
    }
    dst.copy_(src);
  }

  // (dim, col_stride_): columns contiguous per feature so direct mode's inner loop vectorises; the
  // stride padded to whole vectors with +inf (direct_sqdist_rows).
  void transpose_cols() {
    const int64_t nc = n_cols(), lanes = direct_lanes<scalar_t>();
    col_stride_ = (nc + lanes - 1) / lanes * lanes;
    col_transposed_.resize(dim_ * col_stride_);
    for (int64_t j = 0; j < nc; ++j) {
      for (int64_t d = 0; d < dim_; ++d) {
        col_transposed_[d * col_stride_ + j] = cols_[(c0_ + j) * dim_ + d];
      }
    }
    for (int64_t d = 0; d < dim_; ++d) {
      std::fill(col_transposed_.begin() + d * col_stride_ + nc, col_transposed_.begin() + (d + 1) * col_stride_,
                std::numeric_limits<scalar_t>::infinity());
    }
  }

  // Worst-case error of a candidate: (dim+8) u ||r|| ||c|| from the dot product plus the norms' own
  // rounding and the centring, i.e. at most (dim+8) u (||r|| + max ||c||)^2 for every column.
  void set_error_bounds() {
    const double max_col_norm =
        std::sqrt(static_cast<double>(*std::max_element(col_sqnorm_.begin(), col_sqnorm_.end())));
    const double factor =
        static_cast<double>(dim_ + 8) * unit_roundoff<scalar_t>() + (bf16_ ? kBf16CandidateBound : 0.0);
    row_error_bound_.resize(n_rows());
    for (int64_t i = 0; i < n_rows(); ++i) {
      const double root = std::sqrt(static_cast<double>(row_sqnorm_[i])) + max_col_norm;
      row_error_bound_[i] = factor * root * root;
    }
  }

  // Centre rows [b0, b1) by the common centre, in the input precision (vectorised); the rounding
  // this adds is covered by error_bound's (dim + 8) factor. Without a centre: a view of the rows (the
  // tiler only reads it) and their squared norms.
  void centre_block(const scalar_t* data, int64_t b0, int64_t b1, at::Tensor* centred,
                    std::vector<scalar_t>* sqnorm) const {
    const int64_t n = b1 - b0;
    const auto options = at::CPU(c10::CppTypeToScalarType<scalar_t>::value);
    *centred = centred_ ? at::empty({n, dim_}, options)
                        : at::from_blob(const_cast<scalar_t*>(data + b0 * dim_), {n, dim_}, options);
    scalar_t* out = centred->data_ptr<scalar_t>();
    sqnorm->resize(n);
    at::parallel_for(0, n, std::max<int64_t>(1, kParallelGrainValues / dim_), [&](int64_t i0, int64_t i1) {
      for (int64_t i = i0; i < i1; ++i) {
        (*sqnorm)[i] = centred_ ? centre_row(data + (b0 + i) * dim_, centre_.data(), out + i * dim_, dim_)
                                : squared_norm(out + i * dim_, dim_);
      }
    });
  }

  const scalar_t* rows_;
  const scalar_t* cols_;
  int64_t dim_;
  bool direct_;
  bool bf16_;                                   // gemm mode with bfloat16 candidates (count_recomputed may end it)
  int64_t recomputed_ = 0, pairs_seen_ = 0;     // count_recomputed's running totals
  std::vector<scalar_t> centre_;                // gemm mode: the common centre, in the input precision
  bool centred_ = false;                        // gemm mode with a centre (common_centre may give none)
  int64_t r0_ = 0, r1_ = 0, c0_ = 0, c1_ = 0;
  at::Tensor row_centred_, col_centred_;        // gemm mode: (n_rows, dim), (n_cols, dim)
  at::Tensor row_bf16_, col_bf16_;              // bfloat16 candidates: their bfloat16 copies
  at::Tensor bf16_dots_;                        // bfloat16 candidates: the GEMM's output tile
  std::vector<scalar_t> row_sqnorm_, col_sqnorm_;
  std::vector<double> row_error_bound_;
  std::vector<scalar_t> col_transposed_;        // direct mode: (dim, col_stride_)
  int64_t col_stride_ = 0;                      // direct mode: n_cols rounded up to whole vectors
};

// Rows per parallel task: one task per thread where possible (each task re-centres every column tile,
// so fewer, taller blocks waste less), capped so the (rows, kColTile) candidate tile stays in cache.
inline int64_t row_block_size(int64_t n) {
  const int64_t threads = std::max<int64_t>(1, at::get_num_threads());
  return std::clamp<int64_t>((n + threads - 1) / threads, 8, 256);
}

}  // namespace omasgan::cpu
