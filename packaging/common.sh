# Shared by the packaging scripts (sourced, run from the repository root): version, binary, icons, man page.
# shellcheck shell=bash

# The crate's version, from Cargo.toml's [package] table.
pkg_version() {
  sed -n '/^\[package\]/,/^\[/s/^version *= *"\([^"]*\)".*/\1/p' Cargo.toml | head -1
}

# The app binary to package: $BIN, else a release build made now (path on stdout, cargo's talk on stderr).
pkg_main_bin() {
  if [ -n "${BIN:-}" ]; then
    [ -x "$BIN" ] || { echo "BIN=$BIN is not an executable file" >&2; return 1; }
    echo "$BIN"
    return
  fi
  cargo build --release --locked >&2
  echo "${CARGO_TARGET_DIR:-target}/release/rewardlens"
}

# Timestamps in archives and man pages: the last commit's, so two builds of one commit are identical.
pkg_epoch() {
  echo "${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}"
}

# A copy of a binary without its symbol table (a fifth smaller; panic messages keep their file and line).
pkg_install_stripped() {
  install -Dm755 "$1" "$2"
  strip --strip-unneeded --remove-section=.comment "$2"
}

# The icon sizes desktops look up in hicolor.
PKG_ICON_SIZES="16 32 48 64 128 256 512"

# Renders assets/rewardlens.svg to DIR/NxN/apps/rewardlens.png for each size (plus scalable/apps/rewardlens.svg).
pkg_render_icons() {
  local dir=$1 svg=assets/rewardlens.svg size out
  for size in $PKG_ICON_SIZES; do
    out="$dir/${size}x${size}/apps/rewardlens.png"
    install -d "$(dirname "$out")"
    if command -v rsvg-convert >/dev/null 2>&1; then
      rsvg-convert --width "$size" --height "$size" --format png --output "$out" "$svg"
    else
      # ImageMagick renders SVG only with its SVG coder or the rsvg-convert delegate installed.
      convert -background none -density 384 "$svg" -resize "${size}x${size}" "PNG32:$out" \
        || { echo "cannot render $svg: apt-get install librsvg2-bin" >&2; return 1; }
    fi
    [ "$(pkg_png_size "$out")" = "${size}x${size}" ] || { echo "$out is $(pkg_png_size "$out"), not ${size}x${size}" >&2; return 1; }
  done
  install -Dm644 "$svg" "$dir/scalable/apps/rewardlens.svg"
}

# WIDTHxHEIGHT of a PNG, read from its IHDR chunk.
pkg_png_size() {
  od -An -tu1 -j16 -N8 -v "$1" | awk '{print $1*16777216+$2*65536+$3*256+$4 "x" $5*16777216+$6*65536+$7*256+$8}'
}

# Installs the desktop file, icons and man page under SHARE (…/usr/share or a tarball's share/).
pkg_install_share() {
  local share=$1 version=$2
  install -Dm644 packaging/rewardlens.desktop "$share/applications/rewardlens.desktop"
  pkg_render_icons "$share/icons/hicolor"
  install -d "$share/man/man1"
  sed "s/@VERSION@/$version/" packaging/rewardlens.1 | gzip -9n > "$share/man/man1/rewardlens.1.gz"
  chmod 644 "$share/man/man1/rewardlens.1.gz"
}

# The Debian changelog every package carries (policy 12.7): one entry for this version, dated by the commit.
pkg_changelog() {
  local doc=$1 package=$2 deb_version=$3
  install -d "$doc"
  {
    echo "$package ($deb_version) unstable; urgency=medium"
    echo
    echo "  * Built from the RewardLens sources at version $deb_version; the history is in git."
    echo
    echo " -- ${MAINTAINER:-RewardLens developers}  $(LC_ALL=C date -u -R -d "@$(pkg_epoch)")"
  } | gzip -9n > "$doc/changelog.gz"
  chmod 644 "$doc/changelog.gz"
}
