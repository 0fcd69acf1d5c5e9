#!/usr/bin/env bash
# Builds rewardlens_<version>_<arch>.deb (app binary, desktop file, hicolor icons, man page, copyright) for Debian and Ubuntu.
#
#   [BIN=path/to/rewardlens] [PKG_DIR=target/packages] packaging/build-deb.sh    (prints the .deb's path)
#
# Without BIN it builds the release binary first (`cargo build --release --locked`). Needs dpkg-deb and
# rsvg-convert (librsvg2-bin) or ImageMagick with SVG support; dpkg-shlibdeps (dpkg-dev) when present.
set -euo pipefail
[ -z "${BIN:-}" ] || BIN=$(realpath "$BIN") # before the cd below
cd "$(dirname "$0")/.."
. packaging/common.sh

version=$(pkg_version)
deb_version=${version/-/\~} # 1.0.0-rc.1 sorts before 1.0.0 only as 1.0.0~rc.1
bin=$(pkg_main_bin)
arch=$(dpkg --print-architecture)
pkg_dir=${PKG_DIR:-target/packages}
SOURCE_DATE_EPOCH=$(pkg_epoch)
export SOURCE_DATE_EPOCH

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
root="$work/debian/rewardlens" # where dpkg-shlibdeps expects a package's files
install -d -m755 "$root" "$root/DEBIAN"
pkg_install_stripped "$bin" "$root/usr/bin/rewardlens"
pkg_install_share "$root/usr/share" "$version"
install -Dm644 packaging/copyright "$root/usr/share/doc/rewardlens/copyright"
pkg_changelog "$root/usr/share/doc/rewardlens" rewardlens "$deb_version"

# Libraries the binary links (libc, libm, libgcc_s): dpkg-shlibdeps gives the minimum versions.
if command -v dpkg-shlibdeps >/dev/null 2>&1; then
  install -d "$work/debian" && : > "$work/debian/control"
  linked=$(cd "$work" && dpkg-shlibdeps -O debian/rewardlens/usr/bin/rewardlens | sed -n 's/^shlibs:Depends=//p')
else
  glibc=$(objdump -T "$root/usr/bin/rewardlens" | grep -o 'GLIBC_[0-9.]*' | sed 's/GLIBC_//' | sort -V | tail -1)
  linked="libc6 (>= $glibc), libgcc-s1"
fi

# Libraries the binary loads with dlopen (winit, wgpu, fontconfig, rfd), which no tool can see:
# SONAME  PACKAGE  whether the window needs it (depends) or it only helps (recommends).
dlopened="
libX11.so.6            libx11-6            depends
libX11-xcb.so.1        libx11-xcb1         depends
libxcb.so.1            libxcb1             depends
libXcursor.so.1        libxcursor1         depends
libXrandr.so.2         libxrandr2          depends
libXi.so.6             libxi6              depends
libxkbcommon.so.0      libxkbcommon0       depends
libxkbcommon-x11.so.0  libxkbcommon-x11-0  depends
libfontconfig.so.1     libfontconfig1      depends
libEGL.so.1            libegl1             recommends
libvulkan.so.1         libvulkan1          recommends
libwayland-client.so.0 libwayland-client0  recommends
libwayland-egl.so.1    libwayland-egl1     recommends
libdbus-1.so.3         libdbus-1-3         recommends
"
# A library name in the binary that the table lacks may be a new dlopen: say so (the build goes on).
needed=$(readelf -d "$bin" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')
for soname in $(strings -n 8 "$bin" | grep -oE '^lib[A-Za-z0-9_+-]+\.so\.[0-9]+$' | sort -u); do
  if ! grep -q "^$soname " <<<"$dlopened" && ! grep -qx "$soname" <<<"$needed"; then
    echo "warning: the binary names $soname, which packaging/build-deb.sh does not map to a package" >&2
  fi
done
dlopen_deps=$(awk '$3 == "depends" {printf "%s, ", $2}' <<<"$dlopened")
dlopen_recs=$(awk '$3 == "recommends" {printf "%s, ", $2}' <<<"$dlopened")
# wgpu draws through EGL (Mesa's GL) or Vulkan: one of the two is needed.
depends="${linked}, ${dlopen_deps}libegl1 | libvulkan1"
recommends="${dlopen_recs}mesa-vulkan-drivers | vulkan-icd, xdg-desktop-portal | zenity"

installed_kib=$(du -sk --apparent-size --exclude=DEBIAN "$root" | cut -f1)
cat > "$root/DEBIAN/control" <<CONTROL
Package: rewardlens
Version: ${deb_version}
Architecture: ${arch}
Maintainer: ${MAINTAINER:-RewardLens developers}
Installed-Size: ${installed_kib}
Depends: ${depends}
Recommends: ${recommends}
Suggests: rewardlens-gpu
Section: graphics
Priority: optional
Description: rank AI-generated images the way people would (ImageReward)
 RewardLens scores images with ImageReward, a human-preference reward model
 trained on 137k expert comparisons, running natively (candle; no Python).
 .
 The desktop app shows folders of generated images as a grid ranked by
 reward, with per-prompt groups, a checkpoint leaderboard, reranking by any
 prompt and a full-resolution viewer; it reads the generation parameters that
 AUTOMATIC1111, ComfyUI, InvokeAI, NovelAI and others write into the files.
 The rewardlens command does the same work headless: score, meta, scan, list,
 groups, bench, model (find or download the model), export and cull.
 .
 The model weights are not included: \`rewardlens model download\` fetches
 them. The optional rewardlens-gpu package adds scoring on NVIDIA GPUs.
CONTROL

install -d "$pkg_dir"
deb="$pkg_dir/rewardlens_${deb_version}_${arch}.deb"
dpkg-deb --build --root-owner-group -Zxz "$root" "$deb" >/dev/null
echo "$deb"
