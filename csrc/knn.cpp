// knn on the CPU: for each row of x, its k nearest rows of ref (exact Euclidean distances, indices).
//
// The search of min_distance, with a running top-k in place of a running minimum. Candidates come from
// SqDistTiler (a GEMM per tile for wide points, direct differences for narrow ones); every column whose
// candidate value could place it among the k nearest, given the tile's error bound, is recomputed by
// direct differences in double. The k results are therefore the exact k nearest (lowest indices on
// ties), with distances exact to the input precision, and memory stays O(rows * tile + N * k).
// min_distance is its k = 1 case (min_distance.cpp).
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <limits>
#include <vector>

#include "knn.h"
#include "pairwise_cpu.h"

namespace omasgan {
namespace {

// The k smallest exact squared distances seen so far for one row, ascending, with their columns.
// Columns arrive in increasing order and an equal value goes after those already held, so ties keep
// the lowest index.
class RunningTopK {
 public:
  RunningTopK(double* values, int64_t* indices, int64_t k) : values_(values), indices_(indices), k_(k) {}

  bool full() const { return count_ == k_; }
  int64_t k() const { return k_; }
  double worst() const { return values_[count_ - 1]; }  // the k-th smallest so far; call when full()
  int64_t count() const { return count_; }

  void offer(double value, int64_t index) {
    if (full() && !(value < worst())) {
      return;
    }
    int64_t p = std::min(count_, k_ - 1);
    for (; p > 0 && values_[p - 1] > value; --p) {
      values_[p] = values_[p - 1];
      indices_[p] = indices_[p - 1];
    }
    values_[p] = value;
    indices_[p] = index;
    count_ = std::min(count_ + 1, k_);
  }

 private:
  double* values_;
  int64_t* indices_;
  int64_t k_;
  int64_t count_ = 0;
};

// Upper limit on the candidate values that can still enter a full running top-k: exact <= its worst, so
// candidate <= worst + bound. gemm mode's bound is absolute (error_bound), direct mode's relative to the
// value (2 rel v, generous).
double full_limit(const RunningTopK& top, double abs_bound, double rel_bound, bool direct) {
  const double worst = top.worst();
  return direct ? worst * (1 + 2 * rel_bound) : worst + abs_bound;
}

// gemm mode: upper limit on the candidate values of one row's tile that can still hold one of its k nearest.
//  - The running top-k is full: full_limit.
//  - Not yet: the tile's k smallest candidates have exact <= t_k + bound (t_k: the tile's k-th smallest
//    candidate), so no column with exact above that is among the k nearest, and candidate <= t_k + 2 bound.
template <typename scalar_t>
double candidate_limit(const RunningTopK& top, const scalar_t* values, int64_t count, int64_t k, double abs_bound,
                       std::vector<scalar_t>& scratch) {
  if (top.full()) {
    return full_limit(top, abs_bound, 0.0, /*direct=*/false);
  }
  if (count <= k) {
    return std::numeric_limits<double>::infinity();  // every column of the tile is a candidate
  }
  double t_k;
  if (k == 1) {
    t_k = static_cast<double>(cpu::min_value(values, count));
  } else {
    scratch.assign(values, values + count);
    std::nth_element(scratch.begin(), scratch.begin() + (k - 1), scratch.end());
    t_k = static_cast<double>(scratch[k - 1]);
  }
  return t_k + 2 * abs_bound;
}

// A limit in double rounded up to the input precision, so that comparing in it never drops a candidate.
template <typename scalar_t>
scalar_t rounded_up(double limit) {
  return std::nextafter(static_cast<scalar_t>(std::min<double>(limit, std::numeric_limits<scalar_t>::max())),
                        std::numeric_limits<scalar_t>::infinity());
}

// Direct mode: an upper limit on the candidates of a row's tile that can hold one of its k nearest, from
// the tile alone. Each column set's minimum is a different column, so k columns have candidates at most t,
// the k-th smallest set minimum; as in candidate_limit, no column above t (1 + 4 rel) can be among the k
// nearest. Infinite when the tile has fewer than k sets. t is selected among the set minima at most t0,
// the largest of k group minima (k sets at most t0, so t <= t0): fewer values than all of them.
template <typename scalar_t>
double direct_tile_limit(const scalar_t* set_mins, int64_t sets, int64_t k, double rel_bound,
                         std::vector<scalar_t>& scratch) {
  if (sets < k) {
    return std::numeric_limits<double>::infinity();
  }
  if (k == 1) {
    return static_cast<double>(cpu::min_value(set_mins, sets)) * (1 + 4 * rel_bound);
  }
  scalar_t t0 = 0;
  for (int64_t g = 0; g < k; ++g) {
    const int64_t s0 = g * sets / k, s1 = (g + 1) * sets / k;
    t0 = std::max(t0, cpu::min_value(set_mins + s0, s1 - s0));
  }
  scratch.clear();
  for (int64_t s = 0; s < sets; ++s) {
    if (set_mins[s] <= t0) {
      scratch.push_back(set_mins[s]);
    }
  }
  std::nth_element(scratch.begin(), scratch.begin() + (k - 1), scratch.end());
  return static_cast<double>(scratch[k - 1]) * (1 + 4 * rel_bound);
}

// Direct mode: an exact recompute costs O(dim <= 16), less than selecting the tile's k-th candidate
// (nth_element over 2048 values was most of knn's time at D = 2). The row scans its tile run by run
// (kDirectSetVectors vectors, skipped whole when its set minima say so) against the tile's own limit
// (direct_tile_limit) and, once its top-k is full, the limit of its k nearest so far, which only tightens.
template <typename scalar_t, typename Tiler>
void offer_below_limits(RunningTopK& top, const scalar_t* values, const scalar_t* set_mins, int64_t count,
                        int64_t c0, const Tiler& tiler, int64_t i, double tile_limit,
                        std::vector<int64_t>& candidates) {
  constexpr int64_t lanes = cpu::direct_lanes<scalar_t>();
  // k = 1 has nothing to tighten within a tile worth a call per run: one call for the whole row.
  const int64_t run = top.k() == 1 ? count : cpu::kDirectSetVectors * lanes;
  for (int64_t j0 = 0, s0 = 0; j0 < count; j0 += run, s0 += lanes) {  // lanes sets per run
    const double limit =
        top.full() ? std::min(tile_limit, full_limit(top, 0.0, tiler.relative_error_bound(), /*direct=*/true))
                   : tile_limit;
    cpu::collect_at_most_in_runs(values + j0, std::min(run, count - j0), set_mins + s0, rounded_up<scalar_t>(limit),
                                 candidates);
    for (const int64_t j : candidates) {
      top.offer(tiler.exact(i, j0 + j), c0 + j0 + j);
    }
  }
}

template <typename scalar_t>
void knn_cpu_kernel(const scalar_t* x,    // (N, D)
                    const scalar_t* ref,  // (Q, D)
                    int64_t N, int64_t Q, int64_t D, int64_t k,
                    scalar_t* dist,     // (N, k)
                    int64_t* index) {  // (N, k)
  const std::vector<double> centre = cpu::common_centre(ref, Q, D);
  const int64_t block = cpu::row_block_size(N);
  const int64_t n_blocks = (N + block - 1) / block;

  at::parallel_for(0, n_blocks, 1, [&](int64_t b_begin, int64_t b_end) {
    // Every candidate is recomputed exactly before it can be reported: the GEMM may run in bfloat16.
    cpu::SqDistTiler<scalar_t> tiler(x, ref, D, &centre, /*candidates_only=*/true);
    const int64_t col_tile = tiler.col_tile();
    const auto dtype = c10::CppTypeToScalarType<scalar_t>::value;
    at::Tensor buffer = at::empty({tiler.direct() ? 0 : block, std::min(Q, col_tile)}, at::CPU(dtype));
    // Direct mode: kDirectRowGroup rows' candidates at a time, each row padded to whole vectors, and the
    // minima of their column sets.
    const int64_t padded_tile = col_tile + cpu::direct_lanes<scalar_t>();
    std::vector<scalar_t> direct_values(tiler.direct() ? cpu::kDirectRowGroup * padded_tile : 0);
    std::vector<scalar_t> set_mins(tiler.direct() ? cpu::kDirectRowGroup * cpu::direct_set_count<scalar_t>(padded_tile)
                                                  : 0);
    std::vector<scalar_t> scratch;
    std::vector<int64_t> candidates;
    std::vector<double> best(block * k);
    std::vector<int64_t> best_index(block * k);
    for (int64_t b = b_begin; b < b_end; ++b) {
      const int64_t r0 = b * block, r1 = std::min(N, r0 + block);
      tiler.set_rows(r0, r1);
      std::vector<RunningTopK> tops;
      tops.reserve(r1 - r0);
      for (int64_t i = 0; i < r1 - r0; ++i) {
        tops.emplace_back(best.data() + i * k, best_index.data() + i * k, k);
      }
      for (int64_t c0 = 0; c0 < Q; c0 += col_tile) {
        const int64_t c1 = std::min(Q, c0 + col_tile), nc = c1 - c0;
        tiler.set_cols(c0, c1);
        if (tiler.direct()) {
          const int64_t stride = tiler.col_stride(), sets = tiler.set_count();
          for (int64_t g0 = 0; g0 < r1 - r0; g0 += cpu::kDirectRowGroup) {
            const int64_t g1 = std::min(r1 - r0, g0 + cpu::kDirectRowGroup);
            tiler.approx_rows(g0, g1, direct_values.data(), set_mins.data());
            for (int64_t i = g0; i < g1; ++i) {
              const scalar_t* vi = direct_values.data() + (i - g0) * stride;
              const scalar_t* mins_i = set_mins.data() + (i - g0) * sets;
              // Once a top-k (k > 1) is full, its own limit needs no selection (and is usually the tighter).
              const double tile_limit = tops[i].full() && k > 1
                                            ? std::numeric_limits<double>::infinity()
                                            : direct_tile_limit(mins_i, sets, k, tiler.relative_error_bound(), scratch);
              offer_below_limits(tops[i], vi, mins_i, nc, c0, tiler, i, tile_limit, candidates);
            }
          }
        } else {
          at::Tensor values = buffer.narrow(0, 0, r1 - r0).narrow(1, 0, nc);
          if (!values.is_contiguous()) {
            values = at::empty({r1 - r0, nc}, at::CPU(dtype));
          }
          tiler.approx(values);
          int64_t recomputed = 0;
          for (int64_t i = 0; i < r1 - r0; ++i) {
            const scalar_t* vi = values.data_ptr<scalar_t>() + i * nc;
            const double limit = candidate_limit(tops[i], vi, nc, k, tiler.error_bound(i), scratch);
            cpu::collect_at_most(vi, nc, rounded_up<scalar_t>(limit), candidates);
            for (const int64_t j : candidates) {
              tops[i].offer(tiler.exact(i, j), c0 + j);
            }
            recomputed += static_cast<int64_t>(candidates.size());
          }
          if (c0 > 0) {  // a block's first tile recomputes more (its rows hold no k nearest yet): not counted
            tiler.count_recomputed(recomputed, (r1 - r0) * nc);
          }
        }
      }
      for (int64_t i = 0; i < r1 - r0; ++i) {
        // A query with a NaN or infinite coordinate has no nearest rows: NaN at rows 0..k-1, the result the
        // Python front end gives such rows on every backend (so backward's gradients land where it says).
        const bool finite = cpu::all_finite(x + (r0 + i) * D, D);
        for (int64_t p = 0; p < k; ++p) {
          dist[(r0 + i) * k + p] = finite ? static_cast<scalar_t>(std::sqrt(best[i * k + p]))
                                          : std::numeric_limits<scalar_t>::quiet_NaN();
          index[(r0 + i) * k + p] = finite ? best_index[i * k + p] : p;
        }
      }
    }
  });
}

template <typename scalar_t>
void knn_backward_cpu_kernel(const scalar_t* grad_dist,  // (N, k)
                             const scalar_t* x,          // (N, D)
                             const scalar_t* ref,        // (Q, D)
                             const int64_t* index,       // (N, k)
                             const scalar_t* dist,       // (N, k)
                             int64_t N, int64_t D, int64_t k,
                             bool check_rows,      // whether any query row may hold a NaN or an infinity
                             scalar_t* grad_x,     // (N, D), uninitialised: each row is written here
                             scalar_t* grad_ref) {  // (Q, D), zero-initialised
  // d dist_ip / d x_i = (x_i - ref_j) / dist_ip with j = index_ip, and the negative for ref_j; zero when
  // dist_ip == 0.
  // A query row with a NaN or an infinity (the forward gave it NaN distances): NaN gradients for itself
  // and for the rows of ref it reports, whatever grad_dist holds (the front end's rule, STYLE §7).
  constexpr scalar_t nan = std::numeric_limits<scalar_t>::quiet_NaN();
  auto scale = [&](int64_t e) { return dist[e] > 0 ? grad_dist[e] / dist[e] : scalar_t(0); };
  // Tasks of at least kParallelGrainValues gradient values: small calls stay on one thread (waking the
  // pool costs more than they do).
  const int64_t grain = std::max<int64_t>(1, cpu::kParallelGrainValues / std::max<int64_t>(1, k * D));
  at::parallel_for(0, N, grain, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const scalar_t* xi = x + i * D;
      scalar_t* gi = grad_x + i * D;
      if (check_rows && !cpu::all_finite(xi, D)) {
        std::fill(gi, gi + D, nan);
        continue;
      }
      // Zeroed here rather than by zeros_like: one pass over a row in cache, by the thread that fills it.
      std::fill(gi, gi + D, scalar_t(0));
      for (int64_t p = 0; p < k; ++p) {
        cpu::add_scaled_difference(gi, xi, ref + index[i * k + p] * D, scale(i * k + p), D);
      }
    }
  });
  // Serial in (row, rank) order: deterministic sums when several rows share a neighbour.
  for (int64_t i = 0; i < N; ++i) {
    const scalar_t* xi = x + i * D;
    const bool finite = !check_rows || cpu::all_finite(xi, D);
    for (int64_t p = 0; p < k; ++p) {
      const int64_t j = index[i * k + p];
      if (finite) {
        cpu::add_scaled_difference(grad_ref + j * D, xi, ref + j * D, -scale(i * k + p), D);
      } else {
        std::fill(grad_ref + j * D, grad_ref + (j + 1) * D, nan);
      }
    }
  }
}

}  // namespace

std::tuple<at::Tensor, at::Tensor> knn_search_cpu(const at::Tensor& x, const at::Tensor& ref, int64_t k) {
  TORCH_INTERNAL_ASSERT(x.device().is_cpu() && ref.device().is_cpu() && x.is_contiguous() && ref.is_contiguous());
  const int64_t N = x.size(0), Q = ref.size(0), D = x.size(1);
  at::Tensor dist = at::empty({N, k}, x.options());
  at::Tensor index = at::empty({N, k}, x.options().dtype(at::kLong));
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "knn_cpu", [&] {
    knn_cpu_kernel<scalar_t>(x.data_ptr<scalar_t>(), ref.data_ptr<scalar_t>(), N, Q, D, k, dist.data_ptr<scalar_t>(),
                             index.data_ptr<int64_t>());
  });
  return {dist, index};
}

int64_t first_nonfinite_row_cpu(const at::Tensor& points) {
  TORCH_INTERNAL_ASSERT(points.device().is_cpu() && points.is_contiguous() && points.dim() == 2);
  int64_t row = -1;
  AT_DISPATCH_FLOATING_TYPES(points.scalar_type(), "first_nonfinite_row", [&] {
    row = cpu::first_nonfinite_row(points.data_ptr<scalar_t>(), points.size(0), points.size(1));
  });
  return row;
}

std::tuple<at::Tensor, at::Tensor> knn_cpu(const at::Tensor& x, const at::Tensor& ref, int64_t k) {
  check_knn_args(x, ref, k);
  TORCH_INTERNAL_ASSERT(x.device().is_cpu() && ref.device().is_cpu());
  const at::Tensor xc = x.contiguous(), rc = ref.contiguous();
  if (first_nonfinite_row_cpu(rc) >= 0) {
    // Any query could be nearest to a point with a NaN or an infinity: every distance NaN, indices 0..k-1.
    return {at::full({xc.size(0), k}, std::numeric_limits<double>::quiet_NaN(), xc.options()),
            at::arange(k, xc.options().dtype(at::kLong)).expand({xc.size(0), k}).contiguous()};
  }
  return knn_search_cpu(xc, rc, k);
}

std::tuple<at::Tensor, at::Tensor> knn_backward_cpu(const at::Tensor& grad_dist, const at::Tensor& x,
                                                    const at::Tensor& ref, const at::Tensor& index,
                                                    const at::Tensor& dist) {
  check_knn_backward_args(grad_dist, x, ref, index, dist);
  TORCH_INTERNAL_ASSERT(x.device().is_cpu());
  const at::Tensor gc = grad_dist.contiguous(), xc = x.contiguous(), rc = ref.contiguous();
  const at::Tensor ic = index.contiguous(), dc = dist.contiguous();
  const int64_t N = xc.size(0), D = xc.size(1), k = gc.size(1);
  // The forward's distances are NaN where a query row or ref holds a NaN or an infinity: when all are
  // finite there is nothing to check (no sweep of ref or x).
  bool all_distances_finite = true;
  AT_DISPATCH_FLOATING_TYPES(dc.scalar_type(), "knn_backward_cpu", [&] {
    all_distances_finite = cpu::all_finite(dc.data_ptr<scalar_t>(), dc.numel());
  });
  if (!all_distances_finite && first_nonfinite_row_cpu(rc) >= 0) {  // every distance depended on it (knn_cpu)
    return {at::full_like(xc, std::numeric_limits<double>::quiet_NaN()),
            at::full_like(rc, std::numeric_limits<double>::quiet_NaN())};
  }
  at::Tensor grad_x = at::empty_like(xc);
  at::Tensor grad_ref = at::zeros_like(rc);
  AT_DISPATCH_FLOATING_TYPES(xc.scalar_type(), "knn_backward_cpu", [&] {
    knn_backward_cpu_kernel<scalar_t>(gc.data_ptr<scalar_t>(), xc.data_ptr<scalar_t>(), rc.data_ptr<scalar_t>(),
                                      ic.data_ptr<int64_t>(), dc.data_ptr<scalar_t>(), N, D, k, !all_distances_finite,
                                      grad_x.data_ptr<scalar_t>(), grad_ref.data_ptr<scalar_t>());
  });
  return {grad_x, grad_ref};
}

TORCH_LIBRARY_IMPL(omasgan, CPU, m) {
  m.impl("knn", &knn_cpu);
  m.impl("knn_backward", &knn_backward_cpu);
}

}  // namespace omasgan
