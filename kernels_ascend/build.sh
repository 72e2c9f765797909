#!/usr/bin/env bash
# Builds the mx_dcn custom-operator package (custom_opp_<os>_<arch>.run) for Atlas A2 with the CANN
# toolkit found here, in the project layout that toolkit supports:
#   asc      CANN 8.5 and 9.x: this directory's CMakeLists.txt with the ASC CMake modules the toolkit
#            ships (find_package(ASC), <CANN>/compiler/tikcpp/ascendc_kernel_cmake);
#   msopgen  older CANN 8.x (8.0 - 8.3): msOpGen generates a custom-op project from
#            msopgen/mx_dcn_ops.json, this directory's op_host/ and op_kernel/ sources replace its
#            generated ones, and the project's own build.sh (its cmake, from the toolkit) builds it.
#
#   source <CANN>/set_env.sh     (sets ASCEND_HOME_PATH)
#   kernels_ascend/build.sh      -> build_out/custom_opp_<os>_<arch>.run
#
# MX_DCN_OPP_LAYOUT=asc|msopgen forces a layout; MX_DCN_OPP_BUILD_DIR sets the output directory
# (default kernels_ascend/build_out); MAX_JOBS the parallel jobs. Needs cmake >= 3.19.
# `pip install --no-build-isolation .` runs this script and installs the package into mx_dcn/_opp.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cann="${ASCEND_HOME_PATH:-${ASCEND_TOOLKIT_HOME:-}}"
if [[ -z "$cann" || ! -d "$cann" ]]; then
  echo "build.sh: no CANN toolkit: source <CANN install>/set_env.sh first (ASCEND_HOME_PATH='${cann}')" >&2
  exit 1
fi
out="${MX_DCN_OPP_BUILD_DIR:-$here/build_out}"
jobs="${MAX_JOBS:-$(nproc)}"
layout="${MX_DCN_OPP_LAYOUT:-}"
asc_cmake="$cann/compiler/tikcpp/ascendc_kernel_cmake"
if [[ -z "$layout" ]]; then
  if [[ -f "$asc_cmake/asc-config.cmake" || -f "$asc_cmake/ASCConfig.cmake" ]]; then
    layout=asc
  else
    layout=msopgen
  fi
fi
version=$(sed -n 's/^version=//p' "$cann"/*-linux/ascend_toolkit_install.info 2>/dev/null | head -1)
echo "build.sh: CANN ${version:-(version unknown)} at $cann, project layout: $layout, output: $out"
mkdir -p "$out"

case "$layout" in
  asc)
    cmake -S "$here" -B "$out" --preset=default -DASCEND_CANN_PACKAGE_PATH="$cann"
    cmake --build "$out" --target binary package -j"$jobs"
    ;;
  msopgen)
    msopgen="$(command -v msopgen || true)"
    msopgen="${msopgen:-$cann/python/site-packages/bin/msopgen}"
    if [[ ! -x "$msopgen" ]]; then
      echo "build.sh: this toolkit has neither the ASC CMake modules ($asc_cmake) nor msopgen ($msopgen)" >&2
      exit 1
    fi
    project="$out/msopgen_project"
    rm -rf "$project"
    # ai_core-Ascend910B1: any Atlas A2 SoC selects the ascend910b compute unit of the project.
    "$msopgen" gen -i "$here/msopgen/mx_dcn_ops.json" -c ai_core-Ascend910B1 -lan cpp -out "$project"
    # Our sources replace the generated stubs (which would register the same ops a second time); the
    # generated CMakeLists.txt files stay: they are the msOpGen project's build.
    find "$project/op_host" "$project/op_kernel" -maxdepth 1 -type f ! -name CMakeLists.txt -delete
    cp "$here"/op_host/*.cpp "$here"/op_host/*.h "$project/op_host/"
    cp "$here"/op_kernel/*.cpp "$here"/op_kernel/*.h "$project/op_kernel/"
    # The vendor name (so the package installs as vendors/mx_dcn), the compute unit and the toolkit, as in
    # this directory's CMakePresets.json.
    python3 - "$project/CMakePresets.json" "$cann" <<'PY'
import json, sys
path = sys.argv[1]
with open(path) as f:
    presets = json.load(f)
for preset in presets["configurePresets"]:
    cache = preset.setdefault("cacheVariables", {})
    cache["vendor_name"] = {"type": "STRING", "value": "mx_dcn"}
    cache["ASCEND_COMPUTE_UNIT"] = {"type": "STRING", "value": "ascend910b"}
    cache["ASCEND_CANN_PACKAGE_PATH"] = {"type": "PATH", "value": sys.argv[2]}
with open(path, "w") as f:
    json.dump(presets, f, indent=4)
PY
    (cd "$project" && bash build.sh)
    cp "$project"/build_out/custom_opp_*.run "$out/"
    ;;
  *)
    echo "build.sh: MX_DCN_OPP_LAYOUT must be asc or msopgen, got '$layout'" >&2
    exit 1
    ;;
esac
ls -1 "$out"/custom_opp_*.run
