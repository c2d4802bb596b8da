// knn on CUDA, in (row chunk x column tile) blocks so memory stays O(chunk * tile + N * k): exact
// squared distances by direct differences (pairwise_sqdist_kernel), then the tile's values appended to
// the running k best and a stable sort per row keeps the k smallest. The running best holds lower
// indices than the tile and the tile's columns ascend, so ties resolve to the lowest index and results
// are deterministic.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <torch/library.h>

#include "../knn.h"
#include "pairwise_cuda.cuh"

namespace omasgan {
namespace {

// Columns of ref per tile, and the element budget of one (rows, tile) block.
constexpr int64_t kColumnTile = 8192;
constexpr int64_t kBlockElements = int64_t{1} << 24;

std::tuple<at::Tensor, at::Tensor> knn_cuda(const at::Tensor& x, const at::Tensor& ref, int64_t k) {
  check_knn_args(x, ref, k);
  TORCH_INTERNAL_ASSERT(x.is_cuda());
  const c10::cuda::CUDAGuard guard(x.device());
  const at::Tensor xc = x.contiguous(), rc = ref.contiguous();
  const int64_t N = xc.size(0), Q = rc.size(0), D = xc.size(1);
  at::Tensor dist = at::empty({N, k}, xc.options());
  at::Tensor index = at::empty({N, k}, xc.options().dtype(at::kLong));
  const int64_t tile = std::min(Q, kColumnTile);
  const int64_t rows = std::max<int64_t>(cuda::kTile, kBlockElements / (tile + k) / cuda::kTile * cuda::kTile);
  const cudaStream_t stream = cuda::current_stream();

  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, xc.scalar_type(), "knn_cuda", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const auto acc_options = xc.options().dtype(c10::CppTypeToScalarType<acc_t>::value);
    for (int64_t r0 = 0; r0 < N; r0 += rows) {
      const int64_t nr = std::min(rows, N - r0);
      at::Tensor best, best_index;
      for (int64_t c0 = 0; c0 < Q; c0 += tile) {
        const int64_t nc = std::min(tile, Q - c0);
        at::Tensor block = at::empty({nr, nc}, acc_options);
        const dim3 grid(static_cast<unsigned>(cuda::ceil_div(nr, cuda::kTile)),
                        static_cast<unsigned>(cuda::ceil_div(nc, cuda::kTile)));
        cuda::pairwise_sqdist_kernel<scalar_t, acc_t><<<grid, cuda::block_dims(), 0, stream>>>(
            xc.data_ptr<scalar_t>() + r0 * D, rc.data_ptr<scalar_t>() + c0 * D, nr, nc, D, block.data_ptr<acc_t>());
        C10_CUDA_KERNEL_LAUNCH_CHECK();
        at::Tensor columns = at::arange(c0, c0 + nc, xc.options().dtype(at::kLong)).expand({nr, nc});
        at::Tensor values = best.defined() ? at::cat({best, block}, 1) : block;
        at::Tensor candidates = best.defined() ? at::cat({best_index, columns}, 1) : columns;
        auto [sorted, order] = values.sort(/*stable=*/true, /*dim=*/1, /*descending=*/false);
        const int64_t keep = std::min(k, sorted.size(1));
        best = sorted.narrow(1, 0, keep);
        best_index = candidates.gather(1, order.narrow(1, 0, keep));
      }
      dist.narrow(0, r0, nr).copy_(best.sqrt());
      index.narrow(0, r0, nr).copy_(best_index);
    }
  });
  return {dist, index};
}

std::tuple<at::Tensor, at::Tensor> knn_backward_cuda(const at::Tensor& grad_dist, const at::Tensor& x,
                                                     const at::Tensor& ref, const at::Tensor& index,
                                                     const at::Tensor& dist) {
  check_knn_backward_args(grad_dist, x, ref, index, dist);
  TORCH_INTERNAL_ASSERT(x.is_cuda());
  const c10::cuda::CUDAGuard guard(x.device());
  const int64_t N = x.size(0), D = x.size(1), k = index.size(1);
  const auto acc_type = at::toOpMathType(x.scalar_type());
  const at::Tensor xa = x.to(acc_type), ra = ref.to(acc_type), da = dist.to(acc_type);
  // d dist_ip / d x_i = (x_i - ref_j) / dist_ip (j = index_ip), the negative for ref_j; zero at distance 0.
  const at::Tensor scale = at::where(da > 0, grad_dist.to(acc_type) / da, at::zeros_like(da));
  at::Tensor grad_x = at::empty_like(xa);
  at::Tensor grad_ref = at::zeros_like(ra);
  // Row chunks bound the (rows, k, D) differences; index_add_ honours torch.use_deterministic_algorithms.
  const int64_t rows = std::max<int64_t>(1, kBlockElements / std::max<int64_t>(1, k * D));
  for (int64_t r0 = 0; r0 < N; r0 += rows) {
    const int64_t nr = std::min(rows, N - r0);
    const at::Tensor chunk_index = index.narrow(0, r0, nr).reshape({-1});
    const at::Tensor near = ra.index_select(0, chunk_index).view({nr, k, D});
    const at::Tensor terms = scale.narrow(0, r0, nr).unsqueeze(2) * (xa.narrow(0, r0, nr).unsqueeze(1) - near);
    grad_x.narrow(0, r0, nr).copy_(terms.sum(1));
    grad_ref.index_add_(0, chunk_index, terms.view({nr * k, D}), /*alpha=*/-1);
  }
  return {grad_x.to(x.scalar_type()), grad_ref.to(ref.scalar_type())};
}

}  // namespace

TORCH_LIBRARY_IMPL(omasgan, CUDA, m) {
  m.impl("knn", &knn_cuda);
  m.impl("knn_backward", &knn_backward_cuda);
}

}  // namespace omasgan
