// Every omasgan operator schema, in one place (STYLE §1.1). Kernel files only add implementations.
#include <ATen/ATen.h>
#include <torch/extension.h>
#include <torch/library.h>

TORCH_LIBRARY(omasgan, m) {
  // Nearest neighbour of each row of x among the rows of ref: exact Euclidean distance and argmin.
  m.def("min_distance(Tensor x, Tensor ref) -> (Tensor, Tensor)");
  m.def(
      "min_distance_backward(Tensor grad_dist, Tensor x, Tensor ref, Tensor index, Tensor dist)"
      " -> (Tensor, Tensor)");
  // The k nearest rows of ref to each row of x: exact Euclidean distances (ascending) and indices, (N, k).
  m.def("knn(Tensor x, Tensor ref, int k) -> (Tensor, Tensor)");
  m.def("knn_backward(Tensor grad_dist, Tensor x, Tensor ref, Tensor index, Tensor dist) -> (Tensor, Tensor)");
  // s_i = 1/(N-1) sum_{j != i} ||z_i - z_j|| / (||x_i - x_j|| + eps).
  m.def("scattering(Tensor z, Tensor x, float eps) -> Tensor");
  m.def("scattering_backward(Tensor grad_s, Tensor z, Tensor x, float eps) -> (Tensor, Tensor)");
  // The same, also returning the (N, N) squared latent and sample distances asked for (an empty tensor
  // for a space not kept) for a backward that reads them instead of recomputing (the "pairs" strategy;
  // omasgan/ops/scattering.py chooses it, and what to keep, by a memory budget).
  m.def(
      "scattering_with_pairs(Tensor z, Tensor x, float eps, bool keep_latent, bool keep_data)"
      " -> (Tensor, Tensor, Tensor)");
  m.def(
      "scattering_backward_from_pairs(Tensor grad_s, Tensor z, Tensor x, Tensor latent_pairs, Tensor data_pairs,"
      " float eps) -> (Tensor, Tensor)");
}

// The Python module exists only to report how the extension was built; ops go through the dispatcher.
PYBIND11_MODULE(TORCH_EXTENSION_NAME, module) {
  module.def("build_info", []() {
    pybind11::dict info;
    info["torch_version"] = TORCH_VERSION;
#if defined(__clang__)
    info["compiler"] = std::string("clang ") + __clang_version__;
#elif defined(__GNUC__)
    info["compiler"] = std::string("gcc ") + __VERSION__;
#else
    info["compiler"] = std::string("unknown");
#endif
    info["openmp"] = at::get_parallel_info().find("OpenMP") != std::string::npos;
    return info;
  });
}
