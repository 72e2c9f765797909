#!/usr/bin/env bash
# Builds the mx_dcn custom-operator package (custom_opp_*.run) for Atlas A2 with CANN.
#   source <CANN install>/set_env.sh   (sets ASCEND_HOME_PATH / ASCEND_TOOLKIT_HOME)
#   ./build.sh                         -> build_out/custom_opp_<os>_<arch>.run
# The CANN path comes from ASCEND_HOME_PATH (or ASCEND_TOOLKIT_HOME) when set, else from
# CMakePresets.json. Needs cmake >= 3.19.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
cann="${ASCEND_HOME_PATH:-${ASCEND_TOOLKIT_HOME:-}}"
extra=()
if [[ -n "$cann" ]]; then
  extra+=("-DASCEND_CANN_PACKAGE_PATH=$cann")
fi
cmake -S . -B build_out --preset=default "${extra[@]}"
cmake --build build_out --target binary package -j"${MAX_JOBS:-$(nproc)}"
ls -1 build_out/custom_opp_*.run
