#!/usr/bin/env bash
# Builds a Debian package of the release binary: packaging/build-deb.sh [VERSION]
set -euo pipefail
cd "$(dirname "$0")/.."
version="${1:-$(grep -m1 '^version' Cargo.toml | cut -d'"' -f2)}"
cargo build --release --locked
root="target/deb/rewardlens_${version}_amd64"
rm -rf "$root"
install -Dm755 target/release/rewardlens "$root/usr/bin/rewardlens"
install -Dm644 packaging/rewardlens.desktop "$root/usr/share/applications/rewardlens.desktop"
install -Dm644 assets/rewardlens.svg "$root/usr/share/icons/hicolor/scalable/apps/rewardlens.svg"
install -d "$root/DEBIAN"
cat > "$root/DEBIAN/control" <<CONTROL
Package: rewardlens
Version: ${version}
Architecture: amd64
Maintainer: RewardLens developers
Description: Rank AI-generated images the way people would (ImageReward)
CONTROL
dpkg-deb --build --root-owner-group "$root" >/dev/null
echo "$root.deb"
