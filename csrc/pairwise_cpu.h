// Shared CPU machinery for the pairwise operators: squared Euclidean distances between a block of
// "row" points and a tile of "column" points, fast and exact where exactness matters.
//
// Two modes, chosen by the feature count:
//  - direct (dim <= kDirectMaxDim): sum of squared differences over a transposed column tile. The
//    inner loop runs over columns, so it vectorises; the values are accurate to a few ulp.
//  - gemm: ||r||^2 + ||c||^2 - 2 r.c with the dot products from one GEMM per tile, on points centred
//    by a common centre (centring removes the large-norm cancellation that breaks the textbook form).
//    The result is only a *candidate*: callers recompute by direct differences wherever the GEMM error
//    bound (error_bound) could change an answer.
#pragma once

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <limits>
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

template <typename scalar_t>
constexpr double unit_roundoff() {
  return std::numeric_limits<scalar_t>::epsilon() / 2;
}

// Exact squared distance between two rows by direct differences, accumulated in double.
template <typename scalar_t>
inline double exact_sqdist(const scalar_t* a, const scalar_t* b, int64_t dim) {
  double acc = 0;
  for (int64_t d = 0; d < dim; ++d) {
    const double diff = static_cast<double>(a[d]) - static_cast<double>(b[d]);
    acc += diff * diff;
  }
  return acc;
}

// Column mean of a (n, dim) matrix, in double; the common centre of the gemm mode.
template <typename scalar_t>
std::vector<double> column_mean(const scalar_t* a, int64_t n, int64_t dim) {
  std::vector<double> mean(dim, 0.0);
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t d = 0; d < dim; ++d) {
      mean[d] += static_cast<double>(a[i * dim + d]);
    }
  }
  for (auto& m : mean) {
    m /= static_cast<double>(n);
  }
  return mean;
}

// acc[j] += (value - column[j])^2 for j < count: the direct-mode inner loop.
template <typename scalar_t>
OMASGAN_HOT_LOOP void add_squared_differences(scalar_t* acc, const scalar_t* column, scalar_t value,
                                              int64_t count) {
  for (int64_t j = 0; j < count; ++j) {
    const scalar_t diff = value - column[j];
    acc[j] += diff * diff;
  }
}

// Smallest value of v[0:count) (first position on ties).
template <typename scalar_t>
OMASGAN_HOT_LOOP scalar_t min_value(const scalar_t* v, int64_t count) {
  scalar_t best = std::numeric_limits<scalar_t>::infinity();
  for (int64_t j = 0; j < count; ++j) {
    best = v[j] < best ? v[j] : best;
  }
  return best;
}

// Squared distances between a block of rows of `rows` (n_rows, dim) and a tile of rows of `cols`
// (n_cols, dim). One instance per thread; it owns tile-sized buffers only.
template <typename scalar_t>
class SqDistTiler {
 public:
  SqDistTiler(const scalar_t* rows, const scalar_t* cols, int64_t dim, const std::vector<double>* centre)
      : rows_(rows), cols_(cols), dim_(dim), direct_(dim <= kDirectMaxDim), centre_(centre) {}

  bool direct() const { return direct_; }
  int64_t dim() const { return dim_; }
  int64_t row_begin() const { return r0_; }
  int64_t col_begin() const { return c0_; }
  int64_t n_rows() const { return r1_ - r0_; }
  int64_t n_cols() const { return c1_ - c0_; }
  const scalar_t* row(int64_t i) const { return rows_ + (r0_ + i) * dim_; }   // original values
  const scalar_t* col(int64_t j) const { return cols_ + (c0_ + j) * dim_; }   // original values

  void set_rows(int64_t r0, int64_t r1) {
    r0_ = r0;
    r1_ = r1;
    if (!direct_) {
      centre_block(rows_, r0, r1, &row_centred_, &row_sqnorm_);
    }
  }

  void set_cols(int64_t c0, int64_t c1) {
    c0_ = c0;
    c1_ = c1;
    if (direct_) {
      // (dim, n_cols): columns contiguous per feature so the inner loop vectorises.
      col_transposed_.resize(dim_ * (c1 - c0));
      for (int64_t j = 0; j < c1 - c0; ++j) {
        for (int64_t d = 0; d < dim_; ++d) {
          col_transposed_[d * (c1 - c0) + j] = cols_[(c0 + j) * dim_ + d];
        }
      }
    } else {
      centre_block(cols_, c0, c1, &col_centred_, &col_sqnorm_);
      const double max_col_norm =
          std::sqrt(static_cast<double>(*std::max_element(col_sqnorm_.begin(), col_sqnorm_.end())));
      // Worst-case error of a candidate: (dim+8) u ||r|| ||c|| from the dot product plus the norms' own
      // rounding, i.e. at most (dim+8) u (||r|| + max ||c||)^2 for every column of the tile.
      row_error_bound_.resize(n_rows());
      for (int64_t i = 0; i < n_rows(); ++i) {
        const double root = std::sqrt(static_cast<double>(row_sqnorm_[i])) + max_col_norm;
        row_error_bound_[i] = static_cast<double>(dim_ + 8) * unit_roundoff<scalar_t>() * root * root;
      }
    }
  }

  // Candidate squared distances, (n_rows, n_cols) row-major into out (a tile-sized buffer).
  void approx(at::Tensor& out) {
    const int64_t nr = n_rows(), nc = n_cols();
    scalar_t* o = out.data_ptr<scalar_t>();
    if (direct_) {
      std::fill(o, o + nr * nc, scalar_t(0));
      for (int64_t i = 0; i < nr; ++i) {
        const scalar_t* r = row(i);
        for (int64_t d = 0; d < dim_; ++d) {
          add_squared_differences(o + i * nc, col_transposed_.data() + d * nc, r[d], nc);
        }
      }
      return;
    }
    at::mm_out(out, row_centred_, col_centred_.t());
    const scalar_t* cn = col_sqnorm_.data();
    for (int64_t i = 0; i < nr; ++i) {
      const scalar_t rn = row_sqnorm_[i];
      scalar_t* oi = o + i * nc;
      for (int64_t j = 0; j < nc; ++j) {
        oi[j] = rn + cn[j] - 2 * oi[j];
      }
    }
  }

  // Bound on |approx - exact| for row i against any column of the current tile (gemm mode only;
  // direct mode uses relative_error_bound).
  double error_bound(int64_t i) const { return direct_ ? 0.0 : row_error_bound_[i]; }

  // Relative error bound of an approx value (direct mode: a sum of dim squares).
  double relative_error_bound() const { return static_cast<double>(dim_ + 8) * unit_roundoff<scalar_t>(); }

  double row_sqnorm(int64_t i) const { return direct_ ? 0.0 : static_cast<double>(row_sqnorm_[i]); }
  double col_sqnorm(int64_t j) const { return direct_ ? 0.0 : static_cast<double>(col_sqnorm_[j]); }

  double exact(int64_t i, int64_t j) const { return exact_sqdist(row(i), col(j), dim_); }

  // grad_rows(i, :) += sum_j coef(i, j) * (row_i - col_j) over the tile, for coefficients (n_rows, n_cols).
  // gemm mode uses the centred identity  sum_j c_ij (r_i - c_j) = r_i sum_j c_ij - (C c)_i, so callers
  // must zero the coefficients of near pairs and add those exactly (add_exact_difference).
  void accumulate_weighted_differences(const at::Tensor& coef, at::Tensor& grad_rows) {
    const int64_t nr = n_rows(), nc = n_cols();
    const scalar_t* c = coef.data_ptr<scalar_t>();
    scalar_t* g = grad_rows.data_ptr<scalar_t>();
    if (direct_) {
      for (int64_t i = 0; i < nr; ++i) {
        const scalar_t* r = row(i);
        const scalar_t* ci = c + i * nc;
        for (int64_t d = 0; d < dim_; ++d) {
          const scalar_t* column = col_transposed_.data() + d * nc;
          scalar_t acc = 0;
          for (int64_t j = 0; j < nc; ++j) {
            acc += ci[j] * (r[d] - column[j]);
          }
          g[i * dim_ + d] += acc;
        }
      }
      return;
    }
    at::Tensor row_sums = coef.sum(1, /*keepdim=*/true);
    grad_rows.add_(row_centred_ * row_sums);
    grad_rows.sub_(at::mm(coef, col_centred_));
  }

  // grad_rows(i, :) += weight * (row_i - col_j), by direct differences.
  void add_exact_difference(int64_t i, int64_t j, double weight, at::Tensor& grad_rows) const {
    scalar_t* g = grad_rows.data_ptr<scalar_t>() + i * dim_;
    const scalar_t* r = row(i);
    const scalar_t* c = col(j);
    for (int64_t d = 0; d < dim_; ++d) {
      g[d] += static_cast<scalar_t>(weight * (static_cast<double>(r[d]) - static_cast<double>(c[d])));
    }
  }

 private:
  void centre_block(const scalar_t* data, int64_t b0, int64_t b1, at::Tensor* centred,
                    std::vector<scalar_t>* sqnorm) const {
    const int64_t n = b1 - b0;
    *centred = at::empty({n, dim_}, at::CPU(c10::CppTypeToScalarType<scalar_t>::value));
    scalar_t* out = centred->data_ptr<scalar_t>();
    sqnorm->assign(n, scalar_t(0));
    const double* mean = centre_->data();
    for (int64_t i = 0; i < n; ++i) {
      const scalar_t* src = data + (b0 + i) * dim_;
      double norm = 0;
      for (int64_t d = 0; d < dim_; ++d) {
        const scalar_t value = static_cast<scalar_t>(static_cast<double>(src[d]) - mean[d]);
        out[i * dim_ + d] = value;
        norm += static_cast<double>(value) * static_cast<double>(value);
      }
      (*sqnorm)[i] = static_cast<scalar_t>(norm);
    }
  }

  const scalar_t* rows_;
  const scalar_t* cols_;
  int64_t dim_;
  bool direct_;
  const std::vector<double>* centre_;
  int64_t r0_ = 0, r1_ = 0, c0_ = 0, c1_ = 0;
  at::Tensor row_centred_, col_centred_;        // gemm mode: (n_rows, dim), (n_cols, dim)
  std::vector<scalar_t> row_sqnorm_, col_sqnorm_;
  std::vector<double> row_error_bound_;
  std::vector<scalar_t> col_transposed_;        // direct mode: (dim, n_cols)
};

// Rows per parallel task: enough tasks for every thread, but blocks tall enough for an efficient GEMM.
inline int64_t row_block_size(int64_t n) {
  const int64_t threads = std::max<int64_t>(1, at::get_num_threads());
  const int64_t per_task = (n + 2 * threads - 1) / (2 * threads);
  return std::clamp<int64_t>(per_task, 8, 64);
}

constexpr int64_t kColTile = 512;

}  // namespace omasgan::cpu
