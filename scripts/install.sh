#!/usr/bin/env bash
# Installs offbrand for systemd:
#   /usr/local/bin/offbrand                      the binary (stripped copy)
#   /etc/systemd/system/offbrand.service         the hardened service
#   /etc/systemd/system/offbrand-backup.{service,timer}  daily backups
#   /etc/offbrand/offbrand.env.example           every setting, commented
#   /etc/offbrand/stream_api_secret              created empty (0600) if absent
#   /usr/local/share/doc/offbrand/README.md      when the README exists
# Existing configuration (/etc/offbrand/offbrand.env) is never touched.
#
# Usage: scripts/install.sh [BINARY]   (default build/offbrand)
# DESTDIR=/some/root installs under that root (packaging; no systemctl).
set -euo pipefail

here="$(cd "$(dirname "$0")/.." && pwd)"
binary="${1:-build/offbrand}"
destdir="${DESTDIR:-}"
prefix="${PREFIX:-/usr/local}"

if [ ! -x "$binary" ]; then
  echo "error: no executable at $binary (build first: make build)" >&2
  exit 1
fi
if [ -z "$destdir" ] && [ "$(id -u)" -ne 0 ]; then
  echo "error: installing into / needs root (try: sudo $0 $binary, or set DESTDIR)" >&2
  exit 1
fi

install -d -m 0755 "$destdir$prefix/bin" "$destdir/etc/systemd/system" \
  "$destdir$prefix/share/doc/offbrand"
install -d -m 0755 "$destdir/etc/offbrand"
install -m 0755 "$binary" "$destdir$prefix/bin/offbrand"
if command -v strip >/dev/null; then strip "$destdir$prefix/bin/offbrand" 2>/dev/null || true; fi
# The units name /usr/local/bin/offbrand; follow PREFIX when it differs.
for unit in offbrand.service offbrand-backup.service offbrand-backup.timer; do
  sed "s#/usr/local/bin/offbrand#$prefix/bin/offbrand#g" "$here/systemd/$unit" \
    >"$destdir/etc/systemd/system/$unit"
  chmod 0644 "$destdir/etc/systemd/system/$unit"
done
install -m 0644 "$here/systemd/offbrand.env.example" "$destdir/etc/offbrand/offbrand.env.example"
# LoadCredential= needs the file to exist; empty means Stream is not
# configured yet. Never overwrite a secret that is there.
if [ ! -e "$destdir/etc/offbrand/stream_api_secret" ]; then
  install -m 0600 /dev/null "$destdir/etc/offbrand/stream_api_secret"
fi
if [ -f "$here/README.md" ]; then
  install -m 0644 "$here/README.md" "$destdir$prefix/share/doc/offbrand/README.md"
fi

echo "installed offbrand into ${destdir:-/}"
if [ -z "$destdir" ] && command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
  systemctl daemon-reload
  echo "next:"
  echo "  cp /etc/offbrand/offbrand.env.example /etc/offbrand/offbrand.env  # edit it"
  echo "  put the Stream API secret in /etc/offbrand/stream_api_secret (optional)"
  echo "  systemctl enable --now offbrand.service offbrand-backup.timer"
else
  echo "next (on the target machine): systemctl daemon-reload &&" \
    "systemctl enable --now offbrand.service offbrand-backup.timer"
fi
