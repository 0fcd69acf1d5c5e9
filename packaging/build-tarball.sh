#!/usr/bin/env bash
# Builds rewardlens-<version>-<arch>-linux.tar.gz, a portable copy for any glibc Linux, with an install.sh that puts it under ~/.local or $PREFIX.
#
#   [BIN=path/to/rewardlens] [PKG_DIR=target/packages] packaging/build-tarball.sh    (prints the archive's path)
#
# Without BIN it builds the release binary first (`cargo build --release --locked`). Needs rsvg-convert
# (librsvg2-bin) or ImageMagick with SVG support, GNU tar and gzip.
set -euo pipefail
[ -z "${BIN:-}" ] || BIN=$(realpath "$BIN") # before the cd below
cd "$(dirname "$0")/.."
. packaging/common.sh

version=$(pkg_version)
bin=$(pkg_main_bin)
name="rewardlens-${version}-$(uname -m)-linux"
pkg_dir=${PKG_DIR:-target/packages}
SOURCE_DATE_EPOCH=$(pkg_epoch)

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
top="$work/$name"
install -d -m755 "$top"
pkg_install_stripped "$bin" "$top/bin/rewardlens"
pkg_install_share "$top/share" "$version"
install -Dm644 packaging/copyright "$top/share/doc/rewardlens/copyright"
for doc in README.md LICENSE LICENSE-MIT LICENSE-APACHE; do
  [ ! -f "$doc" ] || install -m644 "$doc" "$top/$doc"
done

cat > "$top/install.sh" <<'INSTALL'
#!/usr/bin/env bash
# Installs this RewardLens copy under ${PREFIX:-$HOME/.local} (bin, desktop file, icons, man page); --uninstall removes it.
#
#   ./install.sh        sudo PREFIX=/usr/local ./install.sh        ./install.sh --uninstall
#
# A rewardlens-gpu placed in bin/ beside rewardlens before installing is installed too (the app starts it for CUDA).
set -euo pipefail
cd "$(dirname "$0")"
prefix=${PREFIX:-$HOME/.local}
files=$(find bin share -type f | sort)
if [ "${1:-}" = --uninstall ]; then
  for f in $files; do rm -f "$prefix/$f"; done
  echo "removed RewardLens from $prefix"
else
  for f in $files; do
    case $f in bin/*) mode=755 ;; *) mode=644 ;; esac
    install -Dm"$mode" "$f" "$prefix/$f"
  done
  # The desktop file names the binary by its full path: $prefix/bin need not be on the session's PATH.
  sed -i -e "s|^Exec=rewardlens|Exec=$prefix/bin/rewardlens|" -e "s|^TryExec=rewardlens|TryExec=$prefix/bin/rewardlens|" \
    "$prefix/share/applications/rewardlens.desktop"
  echo "installed RewardLens in $prefix (run $prefix/bin/rewardlens, or find RewardLens in the desktop's menu)"
  case ":$PATH:" in *":$prefix/bin:"*) ;; *) echo "note: $prefix/bin is not on PATH" ;; esac
fi
# Let the desktop see the change now rather than at the next login (these tools may be absent).
command -v update-desktop-database >/dev/null 2>&1 && update-desktop-database -q "$prefix/share/applications" || true
command -v gtk-update-icon-cache >/dev/null 2>&1 && [ -f "$prefix/share/icons/hicolor/index.theme" ] \
  && gtk-update-icon-cache -q -t "$prefix/share/icons/hicolor" || true
INSTALL
chmod 755 "$top/install.sh"

install -d "$pkg_dir"
tarball="$pkg_dir/$name.tar.gz"
tar --sort=name --owner=0 --group=0 --numeric-owner --mtime="@$SOURCE_DATE_EPOCH" -C "$work" -cf - "$name" \
  | gzip -9n > "$tarball"
echo "$tarball"
