#!/usr/bin/env bash
# Builds rewardlens-gpu_<version>_<arch>.deb, the optional CUDA helper the app starts for GPU scoring, recommending the CUDA libraries it links.
#
#   [BIN=target-cuda/release/rewardlens-gpu] [PKG_DIR=target/packages] packaging/build-gpu-deb.sh   (prints the .deb's path)
#
# Make BIN first with `packaging/cuda-build.sh '' --release`. The helper links the CUDA libraries and the
# driver's libcuda.so.1 at load time; they come from NVIDIA's apt repository or driver (Debian main has no
# CUDA 13), or a toolkit installed by hand, so they are Recommends, not Depends: without them the helper
# does not start and the app scores on the CPU, saying why. A BIN that links no CUDA library is refused
# unless ALLOW_NO_CUDA=1 (to test this script with an ordinary build). Needs dpkg-deb, gcc, dpkg-shlibdeps.
set -euo pipefail
[ -z "${BIN:-}" ] || BIN=$(realpath "$BIN") # before the cd below
cd "$(dirname "$0")/.."
. packaging/common.sh

version=$(pkg_version)
deb_version=${version/-/\~}
bin=${BIN:-target-cuda/release/rewardlens-gpu}
[ -x "$bin" ] || { echo "$bin not found: build it with packaging/cuda-build.sh '' --release, or set BIN" >&2; exit 1; }
arch=$(dpkg --print-architecture)
pkg_dir=${PKG_DIR:-target/packages}
SOURCE_DATE_EPOCH=$(pkg_epoch)
export SOURCE_DATE_EPOCH

# What each CUDA library the helper may link comes in: SONAME, then a Debian package relation.
# Package names are those of NVIDIA's CUDA 13.0 apt repository (cuda-build.sh builds with 13.0, and a
# 13.x library serves any 13.x build); libcuda.so.1 is the driver's (580 or newer runs CUDA 13.0).
cuda_packages="
libcuda.so.1       libcuda1 (>= 580) | libnvidia-compute-580
libcudart.so.13    cuda-cudart-13-0
libcublas.so.13    libcublas-13-0
libcublasLt.so.13  libcublas-13-0
libcurand.so.10    libcurand-13-0
libnvrtc.so.13     cuda-nvrtc-13-0
"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
root="$work/debian/rewardlens-gpu"
install -d -m755 "$root" "$root/DEBIAN"
pkg_install_stripped "$bin" "$root/usr/bin/rewardlens-gpu"
# Its man page is the app's (same program, same options).
install -d "$root/usr/share/man/man1" && ln -s rewardlens.1.gz "$root/usr/share/man/man1/rewardlens-gpu.1.gz"

needed=$(readelf -d "$bin" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')
cuda_needed=$(grep -E '^lib(cuda|cudart|cublas|cublasLt|curand|nvrtc|cudnn|nccl|cufft|cusparse|cusolver)\.so' <<<"$needed" || true)
if [ -z "$cuda_needed" ] && [ "${ALLOW_NO_CUDA:-0}" != 1 ]; then
  echo "$bin links no CUDA library: is it the --features cuda build? (ALLOW_NO_CUDA=1 packages it anyway)" >&2
  exit 1
fi
recommends=""
for soname in $cuda_needed; do
  relation=$(awk -v s="$soname" '$1 == s {$1 = ""; sub(/^ /, ""); print}' <<<"$cuda_packages")
  [ -n "$relation" ] || { echo "$bin links $soname, which build-gpu-deb.sh does not map to a package" >&2; exit 1; }
  grep -qxF "$relation" <<<"$(tr ',' '\n' <<<"$recommends" | sed 's/^ //')" || recommends="${recommends:+$recommends, }$relation"
done

# The other linked libraries (libc, libstdc++, …) and their minimum versions: dpkg-shlibdeps, given empty
# stand-ins for the CUDA libraries, which no package on the build machine provides.
install -d "$work/stubs" && : > "$work/debian/control" && : > "$work/empty.c"
for soname in $cuda_needed; do gcc -shared -fPIC -Wl,-soname,"$soname" -o "$work/stubs/$soname" "$work/empty.c"; done
linked=$(cd "$work" && dpkg-shlibdeps --warnings=0 --ignore-missing-info -l"$work/stubs" \
  -O debian/rewardlens-gpu/usr/bin/rewardlens-gpu | sed -n 's/^shlibs:Depends=//p')

sonames_text=$(tr '\n' ' ' <<<"$cuda_needed" | sed 's/ $//')
install -Dm644 packaging/copyright "$root/usr/share/doc/rewardlens-gpu/copyright"
pkg_changelog "$root/usr/share/doc/rewardlens-gpu" rewardlens-gpu "$deb_version"
cat > "$root/usr/share/doc/rewardlens-gpu/README.Debian" <<README
rewardlens-gpu: the CUDA build of rewardlens, which the app starts as \`rewardlens-gpu gpu-serve\`
(found next to /usr/bin/rewardlens) to score on an NVIDIA GPU.

It needs, at load time: ${sonames_text:-(no CUDA library: this package was built from an ordinary binary)}.
libcuda.so.1 comes with the NVIDIA driver (580 or newer for CUDA 13.0); the others with CUDA 13
(NVIDIA's apt repository: cuda-cudart-13-0 libcublas-13-0 libcurand-13-0, or a toolkit installed by
hand, found through ldconfig or LD_LIBRARY_PATH). To see what is missing:

    ldd /usr/bin/rewardlens-gpu | grep 'not found'

When any is missing the helper does not start and rewardlens scores on the CPU, printing the reason.
README
chmod 644 "$root/usr/share/doc/rewardlens-gpu/README.Debian"

installed_kib=$(du -sk --apparent-size --exclude=DEBIAN "$root" | cut -f1)
{
  echo "Package: rewardlens-gpu"
  echo "Version: ${deb_version}"
  echo "Architecture: ${arch}"
  echo "Maintainer: ${MAINTAINER:-RewardLens developers}"
  echo "Installed-Size: ${installed_kib}"
  echo "Depends: rewardlens (= ${deb_version})${linked:+, $linked}"
  [ -z "$recommends" ] || echo "Recommends: ${recommends}"
  echo "Section: contrib/graphics"
  echo "Priority: optional"
  cat <<DESCRIPTION
Description: NVIDIA GPU scoring for RewardLens (CUDA helper)
 The CUDA build of rewardlens. When a GPU is wanted, the rewardlens app and
 commands start it as a child process and send it the scoring work; if it
 cannot start (no NVIDIA driver or CUDA libraries), cannot use the GPU, or
 crashes, scoring goes on on the CPU and the reason is shown.
 .
DESCRIPTION
  echo "It links ${sonames_text:-no CUDA library}. libcuda.so.1 comes with the NVIDIA driver (580 or newer);" \
    "the CUDA 13 libraries with NVIDIA's packages (cuda-cudart-13-0, libcublas-13-0, libcurand-13-0)" \
    "or a toolkit installed by hand." | fold -s -w 75 | sed 's/ *$//; s/^/ /'
} > "$root/DEBIAN/control"

install -d "$pkg_dir"
deb="$pkg_dir/rewardlens-gpu_${deb_version}_${arch}.deb"
dpkg-deb --build --root-owner-group -Zxz "$root" "$deb" >/dev/null
echo "$deb"
