// min_distance on the CPU: for each row of x, its nearest row of ref (exact Euclidean distance, argmin).
//
// The k = 1 case of knn's CPU kernels (knn.cpp): GEMM candidates per tile, every candidate that could
// win recomputed by direct differences in double, so the index is the exact argmin (lowest index on
// ties) and the distance exact to the input precision.
#include <ATen/ATen.h>
#include <torch/library.h>

#include <limits>

#include "knn.h"
#include "min_distance.h"

namespace omasgan {
namespace {

std::tuple<at::Tensor, at::Tensor> min_distance_cpu(const at::Tensor& x, const at::Tensor& ref) {
  check_min_distance_args(x, ref);
  const at::Tensor xc = x.contiguous(), rc = ref.contiguous();
  const int64_t bad_ref = first_nonfinite_row_cpu(rc);
  if (bad_ref >= 0) {
    // Every distance NaN, every index the first such row (as torch.cdist(x, ref).min(1) reports NaN).
    return {at::full({xc.size(0)}, std::numeric_limits<double>::quiet_NaN(), xc.options()),
            at::full({xc.size(0)}, bad_ref, xc.options().dtype(at::kLong))};
  }
  auto [dist, index] = knn_search_cpu(xc, rc, 1);
  return {dist.reshape({-1}), index.reshape({-1})};
}

std::tuple<at::Tensor, at::Tensor> min_distance_backward_cpu(const at::Tensor& grad_dist, const at::Tensor& x,
                                                             const at::Tensor& ref, const at::Tensor& index,
                                                             const at::Tensor& dist) {
  check_min_distance_backward_args(grad_dist, x, ref, index, dist);
  return knn_backward_cpu(grad_dist.unsqueeze(1), x, ref, index.unsqueeze(1), dist.unsqueeze(1));
}

}  // namespace

TORCH_LIBRARY_IMPL(omasgan, CPU, m) {
  m.impl("min_distance", &min_distance_cpu);
  m.impl("min_distance_backward", &min_distance_backward_cpu);
}

}  // namespace omasgan
