// Argument checks shared by the CPU and CUDA launchers of min_distance (STYLE §1.5, §7).
#pragma once

#include <ATen/ATen.h>

namespace omasgan {

inline void check_min_distance_args(const at::Tensor& x, const at::Tensor& ref) {
  TORCH_CHECK(x.dim() == 2 && ref.dim() == 2, "min_distance: x and ref must be 2-D (N, D) and (Q, D), got ",
              x.sizes(), " and ", ref.sizes(), "; flatten images with .flatten(1).");
  TORCH_CHECK(x.size(1) == ref.size(1), "min_distance: x has ", x.size(1), " columns but ref has ", ref.size(1),
              "; flatten both to the same D.");
  TORCH_CHECK(x.size(0) > 0 && ref.size(0) > 0 && x.size(1) > 0,
              "min_distance: x and ref must be non-empty, got ", x.sizes(), " and ", ref.sizes(), ".");
  TORCH_CHECK(x.scalar_type() == ref.scalar_type(), "min_distance: x is ", x.scalar_type(), " but ref is ",
              ref.scalar_type(), "; cast both to one floating dtype.");
  TORCH_CHECK(x.device() == ref.device(), "min_distance: x is on ", x.device(), " but ref is on ", ref.device(),
              "; move both to one device.");
}

inline void check_min_distance_backward_args(const at::Tensor& grad_dist, const at::Tensor& x,
                                             const at::Tensor& ref, const at::Tensor& index,
                                             const at::Tensor& dist) {
  check_min_distance_args(x, ref);
  TORCH_CHECK(grad_dist.dim() == 1 && grad_dist.size(0) == x.size(0) && dist.sizes() == grad_dist.sizes() &&
                  index.sizes() == grad_dist.sizes(),
              "min_distance_backward: grad_dist, index and dist must have shape (", x.size(0), "), got ",
              grad_dist.sizes(), ", ", index.sizes(), " and ", dist.sizes(), ".");
  TORCH_CHECK(index.scalar_type() == at::kLong, "min_distance_backward: index must be int64, got ",
              index.scalar_type(), ".");
  TORCH_CHECK(grad_dist.scalar_type() == x.scalar_type() && dist.scalar_type() == x.scalar_type(),
              "min_distance_backward: grad_dist and dist must have x's dtype ", x.scalar_type(), ".");
}

}  // namespace omasgan
