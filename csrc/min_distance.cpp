// min_distance on the CPU: for each row of x, its nearest row of ref (exact Euclidean distance, argmin).
//
// The k = 1 case of knn's CPU kernels (knn.cpp): GEMM candidates per tile, every candidate that could
// win recomputed by direct differences in double, so the index is the exact argmin (lowest index on
// ties) and the distance exact to the input precision.
#include <ATen/ATen.h>
#include <torch/library.h>

#include "knn.h"
#include "min_distance.h"

namespace omasgan {
namespace {

std::tuple<at::Tensor, at::Tensor> min_distance_cpu(const at::Tensor& x, const at::Tensor& ref) {
  auto [dist, index] = knn_cpu(x, ref, 1);  // checks x and ref as min_distance's arguments
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
