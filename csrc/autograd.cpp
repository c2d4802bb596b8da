// Autograd kernels of the operators (min_distance, knn, scattering), registered with the dispatcher
// in C++ as torchvision registers its ops' backward, so that a differentiable call costs no Python (on
// small inputs that glue was a large share of the call). Forward and backward dispatch to the device
// kernels (CPU, CUDA) below autograd; omasgan/ops/*.py keep the fake kernels, which torch.compile and
// opcheck use.
#include <ATen/ATen.h>
#include <torch/autograd.h>
#include <torch/library.h>

#include <tuple>

namespace omasgan {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;
using NearestPair = std::tuple<at::Tensor, at::Tensor>;
// "<op>_backward"(grad_dist, x, ref, index, dist) -> (grad_x, grad_ref), the same for both operators.
using BackwardSchema = NearestPair(const at::Tensor&, const at::Tensor&, const at::Tensor&, const at::Tensor&,
                                   const at::Tensor&);

template <typename Schema>
c10::TypedOperatorHandle<Schema> find_op(const char* name) {
  return c10::Dispatcher::singleton().findSchemaOrThrow(name, "").typed<Schema>();
}

// Saves what the backward reads; the index is an output without a gradient.
variable_list save_nearest(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& ref,
                           const NearestPair& out) {
  const auto& [dist, index] = out;
  ctx->mark_non_differentiable({index});
  ctx->save_for_backward({x, ref, index, dist});
  return {dist, index};
}

// grad_x, grad_ref (undefined where not needed), then one undefined gradient per non-tensor input.
variable_list nearest_backward(const c10::TypedOperatorHandle<BackwardSchema>& op, AutogradContext* ctx,
                               const at::Tensor& grad_dist, size_t extra_inputs) {
  variable_list grads(2 + extra_inputs);
  const bool want_x = ctx->needs_input_grad(0), want_ref = ctx->needs_input_grad(1);
  if (!want_x && !want_ref) {
    return grads;
  }
  const auto saved = ctx->get_saved_variables();
  auto [grad_x, grad_ref] = op.call(grad_dist, saved[0], saved[1], saved[2], saved[3]);
  grads[0] = want_x ? grad_x : at::Tensor();
  grads[1] = want_ref ? grad_ref : at::Tensor();
  return grads;
}

class MinDistanceFunction : public torch::autograd::Function<MinDistanceFunction> {
 public:
  static variable_list forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& ref) {
    at::AutoDispatchBelowADInplaceOrView below_autograd;
    static const auto op = find_op<NearestPair(const at::Tensor&, const at::Tensor&)>("omasgan::min_distance");
    return save_nearest(ctx, x, ref, op.call(x, ref));
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    static const auto op = find_op<BackwardSchema>("omasgan::min_distance_backward");
    return nearest_backward(op, ctx, grads[0], 0);
  }
};

class KnnFunction : public torch::autograd::Function<KnnFunction> {
 public:
  static variable_list forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& ref, int64_t k) {
    at::AutoDispatchBelowADInplaceOrView below_autograd;
    static const auto op = find_op<NearestPair(const at::Tensor&, const at::Tensor&, int64_t)>("omasgan::knn");
    return save_nearest(ctx, x, ref, op.call(x, ref, k));
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    static const auto op = find_op<BackwardSchema>("omasgan::knn_backward");
    return nearest_backward(op, ctx, grads[0], 1);
  }
};

class ScatteringFunction : public torch::autograd::Function<ScatteringFunction> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& z, const at::Tensor& x, double eps) {
    at::AutoDispatchBelowADInplaceOrView below_autograd;
    static const auto op = find_op<at::Tensor(const at::Tensor&, const at::Tensor&, double)>("omasgan::scattering");
    ctx->saved_data["eps"] = eps;
    ctx->save_for_backward({z, x});
    return op.call(z, x, eps);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    static const auto op =
        find_op<NearestPair(const at::Tensor&, const at::Tensor&, const at::Tensor&, double)>(
            "omasgan::scattering_backward");
    variable_list out(3);
    if (!ctx->needs_input_grad(0) && !ctx->needs_input_grad(1)) {
      return out;
    }
    const auto saved = ctx->get_saved_variables();
    auto [grad_z, grad_x] = op.call(grads[0], saved[0], saved[1], ctx->saved_data["eps"].toDouble());
    out[0] = ctx->needs_input_grad(0) ? grad_z : at::Tensor();
    out[1] = ctx->needs_input_grad(1) ? grad_x : at::Tensor();
    return out;
  }
};

using ScatteringPairs = std::tuple<at::Tensor, at::Tensor, at::Tensor>;

class ScatteringWithPairsFunction : public torch::autograd::Function<ScatteringWithPairsFunction> {
 public:
  static variable_list forward(AutogradContext* ctx, const at::Tensor& z, const at::Tensor& x, double eps,
                               bool keep_latent, bool keep_data) {
    at::AutoDispatchBelowADInplaceOrView below_autograd;
    static const auto op = find_op<ScatteringPairs(const at::Tensor&, const at::Tensor&, double, bool, bool)>(
        "omasgan::scattering_with_pairs");
    auto [s, latent_pairs, data_pairs] = op.call(z, x, eps, keep_latent, keep_data);
    ctx->mark_non_differentiable({latent_pairs, data_pairs});
    ctx->saved_data["eps"] = eps;
    ctx->save_for_backward({z, x, latent_pairs, data_pairs});
    return {s, latent_pairs, data_pairs};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    static const auto op = find_op<NearestPair(const at::Tensor&, const at::Tensor&, const at::Tensor&,
                                               const at::Tensor&, const at::Tensor&, double)>(
        "omasgan::scattering_backward_from_pairs");
    variable_list out(5);
    if (!ctx->needs_input_grad(0) && !ctx->needs_input_grad(1)) {
      return out;
    }
    const auto saved = ctx->get_saved_variables();
    auto [grad_z, grad_x] =
        op.call(grads[0], saved[0], saved[1], saved[2], saved[3], ctx->saved_data["eps"].toDouble());
    out[0] = ctx->needs_input_grad(0) ? grad_z : at::Tensor();
    out[1] = ctx->needs_input_grad(1) ? grad_x : at::Tensor();
    return out;
  }
};

NearestPair min_distance_autograd(const at::Tensor& x, const at::Tensor& ref) {
  auto out = MinDistanceFunction::apply(x, ref);
  return {out[0], out[1]};
}

NearestPair knn_autograd(const at::Tensor& x, const at::Tensor& ref, int64_t k) {
  auto out = KnnFunction::apply(x, ref, k);
  return {out[0], out[1]};
}

at::Tensor scattering_autograd(const at::Tensor& z, const at::Tensor& x, double eps) {
  return ScatteringFunction::apply(z, x, eps);
}

ScatteringPairs scattering_with_pairs_autograd(const at::Tensor& z, const at::Tensor& x, double eps,
                                               bool keep_latent, bool keep_data) {
  auto out = ScatteringWithPairsFunction::apply(z, x, eps, keep_latent, keep_data);
  return {out[0], out[1], out[2]};
}

}  // namespace

TORCH_LIBRARY_IMPL(omasgan, Autograd, m) {
  m.impl("min_distance", &min_distance_autograd);
  m.impl("knn", &knn_autograd);
  m.impl("scattering", &scattering_autograd);
  m.impl("scattering_with_pairs", &scattering_with_pairs_autograd);
}

}  // namespace omasgan
