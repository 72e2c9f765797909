// The autograd kernel of mx_dcn::deform_conv2d, for every device: the forward runs the device
// kernel below autograd, the backward calls mx_dcn::deform_conv2d_backward for the inputs that need
// a gradient. In C++ (as torchvision does) rather than registered from Python, so that an eager
// call does not pass through the Python interpreter between the dispatcher and the kernel.
#include <torch/autograd.h>
#include <torch/library.h>

namespace mx_dcn {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

at::Tensor call_forward(const at::Tensor& input, const at::Tensor& offset, const std::optional<at::Tensor>& mask,
                        const at::Tensor& weight, const std::optional<at::Tensor>& bias, c10::SymIntArrayRef stride,
                        c10::SymIntArrayRef padding, c10::SymIntArrayRef dilation, const c10::SymInt& groups,
                        const c10::SymInt& deformable_groups) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("mx_dcn::deform_conv2d", "")
                       .typed<at::Tensor(const at::Tensor&, const at::Tensor&, const std::optional<at::Tensor>&,
                                         const at::Tensor&, const std::optional<at::Tensor>&, c10::SymIntArrayRef,
                                         c10::SymIntArrayRef, c10::SymIntArrayRef, c10::SymInt, c10::SymInt)>();
  return op.call(input, offset, mask, weight, bias, stride, padding, dilation, groups, deformable_groups);
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> call_backward(
    const at::Tensor& grad_output, const at::Tensor& input, const at::Tensor& offset,
    const std::optional<at::Tensor>& mask, const at::Tensor& weight, const std::optional<at::Tensor>& bias,
    c10::SymIntArrayRef stride, c10::SymIntArrayRef padding, c10::SymIntArrayRef dilation, const c10::SymInt& groups,
    const c10::SymInt& deformable_groups, std::array<bool, 5> output_mask) {
  static auto op =
      c10::Dispatcher::singleton()
          .findSchemaOrThrow("mx_dcn::deform_conv2d_backward", "")
          .typed<std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor>(
              const at::Tensor&, const at::Tensor&, const at::Tensor&, const std::optional<at::Tensor>&,
              const at::Tensor&, const std::optional<at::Tensor>&, c10::SymIntArrayRef, c10::SymIntArrayRef,
              c10::SymIntArrayRef, c10::SymInt, c10::SymInt, std::array<bool, 5>)>();
  return op.call(grad_output, input, offset, mask, weight, bias, stride, padding, dilation, groups, deformable_groups,
                 output_mask);
}

std::optional<at::Tensor> optional_of(const at::Tensor& t) {
  return t.defined() ? std::optional<at::Tensor>(t) : std::nullopt;
}

class DeformConv2dFunction : public torch::autograd::Function<DeformConv2dFunction> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& input, const at::Tensor& offset,
                            const std::optional<at::Tensor>& mask, const at::Tensor& weight,
                            const std::optional<at::Tensor>& bias, c10::SymIntArrayRef stride,
                            c10::SymIntArrayRef padding, c10::SymIntArrayRef dilation, const c10::SymInt& groups,
                            const c10::SymInt& deformable_groups) {
    at::AutoDispatchBelowADInplaceOrView below_autograd;
    at::Tensor output =
        call_forward(input, offset, mask, weight, bias, stride, padding, dilation, groups, deformable_groups);
    // An absent mask or bias is saved as an undefined tensor.
    ctx->save_for_backward({input, offset, mask.value_or(at::Tensor()), weight, bias.value_or(at::Tensor())});
    ctx->saved_data["stride"] = c10::IValue(stride.vec());
    ctx->saved_data["padding"] = c10::IValue(padding.vec());
    ctx->saved_data["dilation"] = c10::IValue(dilation.vec());
    ctx->saved_data["groups"] = groups;
    ctx->saved_data["deformable_groups"] = deformable_groups;
    return output;
  }

  static variable_list backward(AutogradContext* ctx, const variable_list& grad_outputs) {
    const variable_list saved = ctx->get_saved_variables();
    const at::Tensor &input = saved[0], &offset = saved[1], &mask = saved[2], &weight = saved[3], &bias = saved[4];
    // needs_input_grad counts tensor inputs only: an absent mask or bias has no index.
    int64_t edge = 0;
    auto needs = [&](bool present) { return present && ctx->needs_input_grad(edge++); };
    const bool gx = needs(true), goff = needs(true), gmask = needs(mask.defined()), gw = needs(true),
               gb = needs(bias.defined());
    const std::array<bool, 5> output_mask = {gx, goff, gmask, gw, gb};
    const auto stride = ctx->saved_data["stride"].toSymIntVector();
    const auto padding = ctx->saved_data["padding"].toSymIntVector();
    const auto dilation = ctx->saved_data["dilation"].toSymIntVector();
    const auto grads = call_backward(grad_outputs[0], input, offset, optional_of(mask), weight, optional_of(bias),
                                     stride, padding, dilation, ctx->saved_data["groups"].toSymInt(),
                                     ctx->saved_data["deformable_groups"].toSymInt(), output_mask);
    auto wanted = [&](const at::Tensor& g, int i) { return output_mask[i] ? g : at::Tensor(); };
    return {wanted(std::get<0>(grads), 0), wanted(std::get<1>(grads), 1), wanted(std::get<2>(grads), 2),
            wanted(std::get<3>(grads), 3), wanted(std::get<4>(grads), 4), at::Tensor(), at::Tensor(), at::Tensor(),
            at::Tensor(), at::Tensor()};
  }
};

at::Tensor deform_conv2d_autograd(const at::Tensor& input, const at::Tensor& offset,
                                  const std::optional<at::Tensor>& mask, const at::Tensor& weight,
                                  const std::optional<at::Tensor>& bias, c10::SymIntArrayRef stride,
                                  c10::SymIntArrayRef padding, c10::SymIntArrayRef dilation, c10::SymInt groups,
                                  c10::SymInt deformable_groups) {
  return DeformConv2dFunction::apply(input, offset, mask, weight, bias, stride, padding, dilation, groups,
                                     deformable_groups);
}

}  // namespace
}  // namespace mx_dcn

TORCH_LIBRARY_IMPL(mx_dcn, Autograd, m) {
  m.impl("deform_conv2d", &mx_dcn::deform_conv2d_autograd);
}
