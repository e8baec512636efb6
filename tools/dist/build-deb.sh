#!/usr/bin/env bash
# Builds target/debian/trapgate_VERSION_ARCH.deb with cargo-deb: the release binary,
# the systemd unit (tools/dist/trapgate.service), the site file template (the seed's
# site, a conffile: /etc/trapgate/site.toml), the manual pages and the completions.
set -euo pipefail
cd "$(dirname "$0")/../.."
CARGO_DEB_VERSION=3.8.0
if ! cargo deb --version 2>/dev/null | grep -q "$CARGO_DEB_VERSION"; then
  cargo install --locked --quiet cargo-deb --version "$CARGO_DEB_VERSION"
fi
cargo build --release --locked --quiet
bin="${CARGO_TARGET_DIR:-target}/release/trapgate"
rm -rf tools/dist/out
mkdir -p tools/dist/out/completions
"$bin" man --dir tools/dist/out/man >/dev/null
"$bin" completions bash > tools/dist/out/completions/trapgate.bash
"$bin" completions zsh > tools/dist/out/completions/_trapgate
"$bin" completions fish > tools/dist/out/completions/trapgate.fish
{
  echo "# /etc/trapgate/site.toml, as the Debian package installs it: the seed's site, a"
  echo "# template. Put your UPSes and recorders in, check it with"
  echo "# \`trapgate check-config /etc/trapgate/site.toml\`, then \`systemctl restart trapgate\`"
  echo "# (or \`systemctl reload trapgate\` once it runs). man trapgate-site.toml: every key."
  echo "#"
  cat src/engine/config/default-site.toml
  echo
  echo "# Pass the UPSes' traps and informs on to the network management system, their"
  echo "# origin kept (snmptrapd's forward with addForwarderInfo; man trapgate-site.toml):"
  echo "# [[forward]]"
  echo "# to = \"nms.example:162\""
  echo "# match = [\"default\"]"
  echo "# version = \"as-received\""
  echo "# community = \"public\""
} > tools/dist/out/site.toml
"$bin" check-config tools/dist/out/site.toml >/dev/null
cargo deb --no-build --locked -p trapgate --quiet
ls "${CARGO_TARGET_DIR:-target}"/debian/trapgate_*.deb
