#!/usr/bin/env bash
# Builds target/debian/trapgate_VERSION_ARCH.deb with cargo-deb: the release binary,
# the systemd unit (tools/dist/trapgate.service, not enabled), the site file template
# (a conffile: /etc/trapgate/site.toml, refused until edited), the manual pages and the completions.
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
# The site file the package installs is a template that does not pass check-config:
# its UPS and recorders are the seed's (192.168.61.x, a network that may be real where it
# is installed), commented out. Nothing starts the unit (not enabled at install), and
# its ExecStartPre would refuse the template.
{
  echo "# /etc/trapgate/site.toml, as the Debian package installs it: a template, which"
  echo "# trapgate refuses until it lists the site's own UPSes and recorders. Write a"
  echo "# [[ups]] for each UPS and a [[recorder]] for each recorder it feeds (the seed's"
  echo "# site below, commented out, shows the keys), check it with"
  echo "# \`trapgate check-config /etc/trapgate/site.toml\`, then"
  echo "# \`systemctl enable --now trapgate\` (\`systemctl reload trapgate\` once it runs)."
  echo "# man trapgate-site.toml: every key."
  echo "#"
  awk '/^\[\[ups\]\]/ { out = 1 } { if (out && $0 != "" && $0 !~ /^#/) print "# " $0; else print }' \
    src/engine/config/default-site.toml
  echo
  echo "# Pass the UPSes' traps and informs on to the network management system, their"
  echo "# origin kept (snmptrapd's forward with addForwarderInfo; man trapgate-site.toml):"
  echo "# [[forward]]"
  echo "# to = \"nms.example:162\""
  echo "# match = [\"default\"]"
  echo "# version = \"as-received\""
  echo "# community = \"public\""
} > tools/dist/out/site.toml
# The template must be refused, with the sentence that says what to write.
if said=$("$bin" check-config tools/dist/out/site.toml 2>&1); then
  echo "build-deb.sh: the package's site template passes check-config; it must not" >&2
  exit 1
fi
if ! grep -q "the site has no \[\[ups\]\]" <<<"$said"; then
  echo "build-deb.sh: check-config refuses the template for another reason: $said" >&2
  exit 1
fi
cargo deb --no-build --locked -p trapgate --quiet
ls "${CARGO_TARGET_DIR:-target}"/debian/trapgate_*.deb
