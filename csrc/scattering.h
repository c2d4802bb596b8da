// Argument checks shared by the CPU and CUDA launchers of scattering (STYLE §1.5, §7).
#pragma once

#include <ATen/ATen.h>

namespace omasgan {

inline void check_scattering_args(const at::Tensor& z, const at::Tensor& x, double eps) {
  TORCH_CHECK(z.dim() == 2 && x.dim() == 2, "scattering: z and x must be 2-D (N, L) and (N, D), got ",
              z.sizes(), " and ", x.sizes(), "; flatten images with .flatten(1).");
  TORCH_CHECK(z.size(0) == x.size(0), "scattering: z has ", z.size(0), " rows but x has ", x.size(0),
              "; pass the latents that produced x.");
  TORCH_CHECK(x.size(0) >= 2, "scattering: needs at least 2 samples (it averages over the other N-1), got N=",
              x.size(0), ".");
  TORCH_CHECK(z.size(1) > 0 && x.size(1) > 0, "scattering: z and x need at least one column, got ", z.sizes(),
              " and ", x.sizes(), ".");
  TORCH_CHECK(z.scalar_type() == x.scalar_type(), "scattering: z is ", z.scalar_type(), " but x is ",
              x.scalar_type(), "; cast both to one floating dtype.");
  TORCH_CHECK(z.device() == x.device(), "scattering: z is on ", z.device(), " but x is on ", x.device(),
              "; move both to one device.");
  TORCH_CHECK(eps >= 0, "scattering: eps must be >= 0, got ", eps, ".");
}

inline void check_scattering_backward_args(const at::Tensor& grad_s, const at::Tensor& z, const at::Tensor& x,
                                           double eps) {
  check_scattering_args(z, x, eps);
  TORCH_CHECK(grad_s.dim() == 1 && grad_s.size(0) == x.size(0), "scattering_backward: grad_s must have shape (",
              x.size(0), "), got ", grad_s.sizes(), ".");
  TORCH_CHECK(grad_s.scalar_type() == x.scalar_type(), "scattering_backward: grad_s must have x's dtype ",
              x.scalar_type(), ".");
}

}  // namespace omasgan
