"""Helpers for the tests of the NPU install and environment (no tests here): fake CANN toolkit layouts
and a stand-in torch_npu package, as files on disk. Nothing in them runs: the build decision and the
ascendc backend's availability read files only, and these give them files to read.

A "bare" layout is what acceptance asks for: the directory structure and the version file. A
"complete" one adds empty files where the real toolkit has the headers, libraries and project tools
the decision looks for, so the decision says what it would build."""
from __future__ import annotations

import os
from typing import Optional

ARCH_DIR = "x86_64-linux"

# Where CANN installs by default, per line (toolkit.py DEFAULT_ROOTS), relative to a fake /usr/local/Ascend.
LAYOUTS = {
    "8.x": dict(root="ascend-toolkit/latest", version="8.0.0",
                tool=os.path.join("python", "site-packages", "bin", "msopgen")),
    "9.x": dict(root="cann", version="9.0.0",
                tool=os.path.join("compiler", "tikcpp", "ascendc_kernel_cmake", "asc-config.cmake")),
}
GLUE_FILES = [os.path.join("include", "acl", "acl.h"), os.path.join("include", "aclnn", "acl_meta.h"),
              os.path.join("lib64", "libascendcl.so"), os.path.join("lib64", "libnnopbase.so")]


def touch(path: str, text: str = "") -> str:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)
    return path


def fake_cann(base: str, line: str, complete: bool = False, version: Optional[str] = None,
              compiler: Optional[str] = None) -> str:
    """A fake toolkit of `line` ("8.x" or "9.x") under base/Ascend; returns its root."""
    spec = LAYOUTS[line]
    root = os.path.join(base, "Ascend", spec["root"])
    touch(os.path.join(root, ARCH_DIR, "ascend_toolkit_install.info"),
          f"package_name=Ascend-cann-toolkit\nversion={version or spec['version']}\narch=x86_64\nos=linux\n")
    if complete:
        for rel in GLUE_FILES + [spec["tool"]]:
            touch(os.path.join(root, rel))
    if compiler:
        touch(os.path.join(root, "compiler", "version.info"), f"Version={compiler}\n")
    return root


def stand_in_torch_npu(site: str, version: str = "2.6.0.post1", complete: bool = False,
                       importable: bool = False) -> str:
    """A torch_npu package in `site` with a version.py. Unless `importable`, importing it fails (the
    build must not import torch_npu); importable, it is an empty module (no device, no ops).
    `complete` adds the glue's headers and library as empty files."""
    pkg = os.path.join(site, "torch_npu")
    touch(os.path.join(pkg, "__init__.py"), "" if importable else
          "raise ImportError('stand-in torch_npu of the mx_dcn tests: the build must not import it')\n")
    touch(os.path.join(pkg, "version.py"), f"__version__ = '{version}'\n")
    if complete:
        for rel in (os.path.join("include", "torch_npu", "csrc", "framework", "OpCommand.h"),
                    os.path.join("include", "torch_npu", "csrc", "framework", "utils", "OpPreparation.h"),
                    os.path.join("lib", "libtorch_npu.so")):
            touch(os.path.join(pkg, rel))
    return pkg


def fake_op_package(base: str, compiler: Optional[str]) -> str:
    """An mx_dcn vendor directory whose aclnn library is an empty file (it cannot load)."""
    vendor = os.path.join(base, "vendors", "mx_dcn")
    touch(os.path.join(vendor, "op_api", "lib", "libcust_opapi.so"))
    if compiler:
        touch(os.path.join(vendor, "version.info"), f"custom_opp_compiler_version={compiler}\n")
    return vendor
