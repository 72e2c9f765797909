// The sampling kernels compiled for the base instruction set (see kernels_impl.inc).
#include <cmath>
#include <algorithm>
#include <cstring>
#include <memory>
#include <type_traits>
#include <cstdint>

#include "cpu/kernels.h"



namespace {
#include "cpu/kernels_impl.inc"
}  // namespace

namespace mx_dcn {
namespace cpu {

const KernelSet& kernels_base() {
  static const KernelSet set{"base", make_table<float>(), make_table<double>()};
  return set;
}

}  // namespace cpu
}  // namespace mx_dcn
