"""Builds mx_dcn._npu, the torch_npu glue of the AscendC custom operators (only where torch_npu and
CANN are installed and the mx_dcn custom-op package is installed -- see kernels_ascend/README.md).

    source <CANN>/set_env.sh
    python mx_dcn/csrc/npu/setup_npu.py build_ext --inplace     (from the repository root)
"""
import glob
import os

from setuptools import setup
from torch.utils.cpp_extension import BuildExtension, CppExtension

import torch_npu

here = os.path.dirname(os.path.abspath(__file__))
root = os.path.dirname(os.path.dirname(os.path.dirname(here)))
cann = os.environ.get("ASCEND_HOME_PATH") or os.environ.get("ASCEND_TOOLKIT_HOME")
if not cann:
    raise SystemExit("ASCEND_HOME_PATH is not set: source <CANN install>/set_env.sh first")
# The installed custom-op package (vendor mx_dcn): its generated aclnn headers and libcust_opapi.so.
candidates = [p for p in os.environ.get("ASCEND_CUSTOM_OPP_PATH", "").split(":") if "mx_dcn" in p]
candidates.append(os.path.join(os.environ.get("ASCEND_OPP_PATH", os.path.join(cann, "opp")), "vendors", "mx_dcn"))
package = next((p for p in candidates if glob.glob(os.path.join(p, "op_api", "include", "aclnn_mx_dcn_*.h"))), None)
if package is None:
    raise SystemExit("the mx_dcn custom-op package is not installed (kernels_ascend/build.sh, then its .run)")

torch_npu_dir = os.path.dirname(torch_npu.__file__)
setup(
    name="mx_dcn_npu",
    ext_modules=[CppExtension(
        "mx_dcn._npu",
        [os.path.join(here, "mx_dcn_npu.cpp")],
        include_dirs=[os.path.join(torch_npu_dir, "include"), os.path.join(cann, "include"),
                      os.path.join(package, "op_api", "include")],
        library_dirs=[os.path.join(torch_npu_dir, "lib"), os.path.join(cann, "lib64"),
                      os.path.join(package, "op_api", "lib")],
        libraries=["torch_npu", "ascendcl", "nnopbase", "cust_opapi"],
        extra_link_args=[f"-Wl,-rpath,{os.path.join(package, 'op_api', 'lib')}"],
    )],
    cmdclass={"build_ext": BuildExtension},
    package_dir={"": root},
)
