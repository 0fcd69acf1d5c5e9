#!/usr/bin/env bash
# Builds the NVIDIA package's two binaries on a machine without an NVIDIA toolkit or driver:
#   target-cuda/<profile>/rewardlens      the app, without CUDA (starts everywhere)
#   target-cuda/<profile>/rewardlens-gpu  the GPU helper: the same crate with `--features cuda`,
#                                         started by the app only where it can run (see README)
# The helper is built with the CUDA 13.0 compiler and libraries published on PyPI plus a link-time
# stub of libcuda (the real one comes with the user's driver).
#
#   packaging/cuda-build.sh [CUDA_DIR] [cargo build args...]
#
# CUDA_COMPUTE_CAP=90 (Hopper) by default; set 80 for Ampere, 89 for Ada, etc. Keep nvcc at the
# driver's CUDA version: a 13.0 driver rejects PTX from nvcc 13.1 and newer.
set -euo pipefail
cd "$(dirname "$0")/.."
T="${1:-$PWD/target-cuda/toolkit}"
shift || true
C="$T/nvidia/cu13"
if [ ! -x "$C/bin/nvcc" ]; then
  python3 -m pip install -q --no-deps --target "$T" \
    nvidia-cuda-nvcc==13.0.88 nvidia-nvvm==13.0.88 nvidia-cuda-crt==13.0.88 nvidia-cuda-runtime==13.0.96 \
    nvidia-cuda-nvrtc==13.0.88 nvidia-cuda-cccl==13.0.85 nvidia-cublas==13.1.0.3 nvidia-curand==10.4.0.35
fi
# Unversioned names for the linker (the wheels ship only libX.so.13 / .so.10).
(cd "$C/lib" && for l in cublas cublasLt cudart nvrtc; do ln -sf "lib$l.so.13" "lib$l.so"; done \
  && ln -sf libcurand.so.10 libcurand.so)
# Link-time stub of the driver API: every entry point cudarc declares, each returning CUDA_ERROR_UNKNOWN.
if [ ! -f "$C/lib/libcuda.so" ]; then
  cudarc=$(find "${CARGO_HOME:-$HOME/.cargo}/registry/src" -maxdepth 2 -type d -name 'cudarc-*' | sort -V | tail -1)
  if [ -z "$cudarc" ]; then cargo fetch --locked; cudarc=$(find "${CARGO_HOME:-$HOME/.cargo}/registry/src" -maxdepth 2 -type d -name 'cudarc-*' | sort -V | tail -1); fi
  grep -ohE 'pub unsafe fn (cu[A-Za-z0-9_]+)\(' "$cudarc/src/driver/sys/mod.rs" \
    | sed -E 's/pub unsafe fn (cu[A-Za-z0-9_]+)\(/\1/' | sort -u \
    | awk '{print "int " $1 "(void){return 999;}"}' > "$T/libcuda_stub.c"
  gcc -shared -fPIC -Wl,-soname,libcuda.so.1 -o "$C/lib/libcuda.so" "$T/libcuda_stub.c"
fi
export CUDA_ROOT="$C" PATH="$C/bin:$PATH" CUDA_COMPUTE_CAP="${CUDA_COMPUTE_CAP:-90}"
CARGO_TARGET_DIR="$PWD/target-cuda" cargo build --locked --features cuda "$@"
profile=debug
for a in "$@"; do [ "$a" = "--release" ] && profile=release; done
cp "target-cuda/$profile/rewardlens" "target-cuda/$profile/rewardlens-gpu"
# The app itself, without CUDA (a separate cargo invocation, so features do not unify).
CARGO_TARGET_DIR="$PWD/target-cuda" cargo build --locked "$@"
echo "built target-cuda/$profile/rewardlens and target-cuda/$profile/rewardlens-gpu"
