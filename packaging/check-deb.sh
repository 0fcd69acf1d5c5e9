#!/usr/bin/env bash
# Checks a built rewardlens or rewardlens-gpu .deb: its fields and file list, desktop file, icons and man page, then installs it into a temporary root, runs it and removes it.
#
#   packaging/check-deb.sh target/packages/rewardlens_<version>_<arch>.deb [MAIN_DEB]
#
# For rewardlens-gpu, MAIN_DEB (the matching rewardlens .deb) is installed into the root first.
# Exits non-zero on the first failure. Uses desktop-file-validate and groff when installed.
set -euo pipefail
[ $# -ge 1 ] || { echo "usage: $0 DEB [MAIN_DEB]" >&2; exit 2; }
deb=$(realpath "$1")
main_deb=${2:+$(realpath "$2")}
cd "$(dirname "$0")/.."
. packaging/common.sh

fail() {
  echo "check-deb: FAIL: $*" >&2
  exit 1
}
field() { dpkg-deb --field "$deb" "$1"; }

package=$(field Package)
version=$(field Version)
echo "== $package $version ($(basename "$deb"), $(du -h "$deb" | cut -f1))"
for f in Package Version Architecture Maintainer Installed-Size Depends Section Priority Description; do
  [ -n "$(field "$f")" ] || fail "control field $f is missing or empty"
done
[ "$version" = "$(pkg_version | sed 's/-/~/')" ] || fail "version $version is not Cargo.toml's $(pkg_version)"

echo "== dpkg-deb -c"
listing=$(dpkg-deb -c "$deb")
echo "$listing"
paths=$(awk '{print $6}' <<<"$listing" | sed 's|^\./|/|')
case $package in
  rewardlens)
    bin=rewardlens
    required="/usr/bin/rewardlens /usr/share/applications/rewardlens.desktop /usr/share/man/man1/rewardlens.1.gz
      /usr/share/doc/rewardlens/copyright /usr/share/doc/rewardlens/changelog.gz /usr/share/icons/hicolor/scalable/apps/rewardlens.svg"
    for size in $PKG_ICON_SIZES; do required="$required /usr/share/icons/hicolor/${size}x${size}/apps/rewardlens.png"; done
    ;;
  rewardlens-gpu)
    bin=rewardlens-gpu
    required="/usr/bin/rewardlens-gpu /usr/share/doc/rewardlens-gpu/copyright /usr/share/doc/rewardlens-gpu/changelog.gz"
    grep -qF "rewardlens (= $version)" <<<"$(field Depends)" || fail "Depends lacks rewardlens (= $version)"
    ;;
  *) fail "unknown package $package" ;;
esac
for path in $required; do
  grep -qxF "$path" <<<"$paths" || fail "$path is not in the package"
done
grep -vE '^(/|/usr/|/usr/(bin|share)/.*)$' <<<"$paths" && fail "files outside /usr/bin and /usr/share"
echo "all $(wc -w <<<"$required") required paths present"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
dpkg-deb -x "$deb" "$tmp/x"

if [ "$package" = rewardlens ]; then
  echo "== desktop file, icons, man page"
  desktop="$tmp/x/usr/share/applications/rewardlens.desktop"
  if command -v desktop-file-validate >/dev/null 2>&1; then
    desktop-file-validate "$desktop" || fail "desktop-file-validate"
  else
    echo "(desktop-file-validate not installed: skipped)"
  fi
  # The window manager groups the window under this desktop file only if both name the same class.
  app_id=$(grep -ohE 'with_app_id\("[^"]+"\)' src/ui/*.rs | head -1 | cut -d'"' -f2)
  wm_class=$(sed -n 's/^StartupWMClass=//p' "$desktop")
  [ -n "$app_id" ] || fail "no with_app_id(...) found in src/ui"
  [ "$wm_class" = "$app_id" ] || fail "StartupWMClass=$wm_class but the window's app id is $app_id"
  grep -qx 'Icon=rewardlens' "$desktop" || fail "the desktop file's Icon is not rewardlens"
  for size in $PKG_ICON_SIZES; do
    png="$tmp/x/usr/share/icons/hicolor/${size}x${size}/apps/rewardlens.png"
    [ "$(pkg_png_size "$png")" = "${size}x${size}" ] || fail "$png is $(pkg_png_size "$png")"
  done
  man="$tmp/x/usr/share/man/man1/rewardlens.1.gz"
  gzip -t "$man" || fail "man page is not valid gzip"
  grep -q "^\.TH REWARDLENS 1 .*rewardlens $version" <<<"$(zcat "$man")" || fail "man page header lacks version $version"
  if command -v groff >/dev/null 2>&1; then
    warnings=$(zcat "$man" | groff -man -Tutf8 -ww -z 2>&1)
    [ -z "$warnings" ] || fail "groff: $warnings"
  fi
  echo "StartupWMClass=$wm_class = app id; ${PKG_ICON_SIZES// /, } px icons; man page ok"
fi

echo "== install into a temporary root"
root="$tmp/root"
install -d "$root/var/lib/dpkg/info" "$root/var/lib/dpkg/updates" "$root/var/lib/dpkg/triggers"
: > "$root/var/lib/dpkg/status"
: > "$root/var/lib/dpkg/available"
# Dependencies are the host's business, not this empty root's (--force-depends); dpkg's talk goes to a log.
dpkg_root() {
  dpkg --root="$root" --log=/dev/null --force-not-root --force-script-chrootless --force-depends "$@" >>"$tmp/dpkg.log" 2>&1 \
    || { cat "$tmp/dpkg.log" >&2; fail "dpkg $*"; }
}
[ -z "$main_deb" ] || dpkg_root -i "$main_deb"
dpkg_root -i "$deb"
grep -qx 'Status: install ok installed' <<<"$(dpkg --root="$root" -s "$package")" || fail "dpkg does not list $package as installed"
installed="$root/usr/bin/$bin"
[ -x "$installed" ] || fail "$installed is not executable"
ran="installed, ran, removed"
if [ "$package" = rewardlens-gpu ] && ldd "$installed" | grep -q 'not found'; then
  echo "(not run: this machine lacks$(ldd "$installed" | awk '/not found/ {printf " %s", $1}'))"
  ran="installed, removed; not run"
else
  out=$("$installed" --version) || fail "$installed --version exited $?"
  echo "$out"
  [ "$out" = "rewardlens $(pkg_version)" ] || fail "$installed --version printed '$out'"
  if [ "$package" = rewardlens ]; then
    help=$("$installed" --help) || fail "$installed --help exited $?"
    grep -q '^Usage: rewardlens' <<<"$help" || fail "$installed --help printed no usage"
  fi
fi
dpkg_root --purge "$package"
[ ! -e "$installed" ] || fail "$installed is still there after dpkg --purge"
echo "check-deb: $package $version ok ($ran)"
