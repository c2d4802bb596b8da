// Argument checks shared by the CPU and CUDA launchers of knn (STYLE §1.5, §7).
#pragma once

#include <ATen/ATen.h>

#include "min_distance.h"

namespace omasgan {

inline void check_knn_args(const at::Tensor& x, const at::Tensor& ref, int64_t k) {
  check_min_distance_args(x, ref);
  TORCH_CHECK(k >= 1 && k <= ref.size(0), "knn: k must be in [1, ", ref.size(0), "] (the rows of ref), got ", k,
              ".");
}

inline void check_knn_backward_args(const at::Tensor& grad_dist, const at::Tensor& x, const at::Tensor& ref,
                                    const at::Tensor& index, const at::Tensor& dist) {
  check_min_distance_args(x, ref);
  TORCH_CHECK(grad_dist.dim() == 2 && grad_dist.size(0) == x.size(0) && dist.sizes() == grad_dist.sizes() &&
                  index.sizes() == grad_dist.sizes(),
              "knn_backward: grad_dist, index and dist must have shape (", x.size(0), ", k), got ", grad_dist.sizes(),
              ", ", index.sizes(), " and ", dist.sizes(), ".");
  TORCH_CHECK(index.scalar_type() == at::kLong, "knn_backward: index must be int64, got ", index.scalar_type(), ".");
  TORCH_CHECK(grad_dist.scalar_type() == x.scalar_type() && dist.scalar_type() == x.scalar_type(),
              "knn_backward: grad_dist and dist must have x's dtype ", x.scalar_type(), ".");
}

// The CPU kernels (knn.cpp); min_distance.cpp runs them with k = 1. They apply the operators' rule for
// NaN and infinite coordinates themselves (omasgan/ops/_nonfinite.py applies it for the other backends):
// a query row holding one gets NaN distances and NaN gradients for itself and the rows it reports; one
// anywhere in ref makes every distance and every gradient NaN.
std::tuple<at::Tensor, at::Tensor> knn_cpu(const at::Tensor& x, const at::Tensor& ref, int64_t k);
// The search alone, for contiguous inputs whose ref is finite.
std::tuple<at::Tensor, at::Tensor> knn_search_cpu(const at::Tensor& x, const at::Tensor& ref, int64_t k);
// The first row of a contiguous (rows, D) CPU matrix holding a NaN or an infinity, or -1.
int64_t first_nonfinite_row_cpu(const at::Tensor& points);
std::tuple<at::Tensor, at::Tensor> knn_backward_cpu(const at::Tensor& grad_dist, const at::Tensor& x,
                                                    const at::Tensor& ref, const at::Tensor& index,
                                                    const at::Tensor& dist);

}  // namespace omasgan
