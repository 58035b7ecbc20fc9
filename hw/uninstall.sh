#!/usr/bin/env bash
# Removes what hw/install.sh installed. Keeps /etc/timewatch and /var/lib/timewatch (the config and
# the recorded history) unless --purge. Usage: sudo hw/uninstall.sh [--purge] [--root DIR] [--dry-run]
set -euo pipefail
ROOT=/; PURGE=0; DRY=0
while [ $# -gt 0 ]; do
  case "$1" in
    --purge) PURGE=1; shift ;;
    --root) ROOT="${2:-}"; shift 2 ;;
    --dry-run) DRY=1; shift ;;
    -h|--help) sed -n '2,4p' "$0"; exit 0 ;;
    *) echo "uninstall.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
ROOT="${ROOT%/}"
R() { echo "$ROOT$1"; }
say() { echo "uninstall.sh: $*"; }
run() { if [ "$DRY" = 1 ]; then say "would run: $*"; else "$@"; fi; }

if command -v systemctl >/dev/null; then
  if [ -z "$ROOT" ]; then systemctl disable --now timewatch 2>/dev/null || true
  elif [ -e "$(R /etc/systemd/system/timewatch.service)" ]; then
    run systemctl --root "$ROOT" disable timewatch 2>/dev/null || true
  fi
fi
if [ "$(readlink "$(R /usr/local/bin/timewatch)" 2>/dev/null)" = /opt/timewatch/bin/timewatch ]; then
  run rm -f "$(R /usr/local/bin/timewatch)" && say "removed /usr/local/bin/timewatch"
fi
for f in /etc/systemd/system/timewatch.service /etc/udev/rules.d/60-timewatch.rules; do
  [ -e "$(R $f)" ] && run rm -f "$(R $f)" && say "removed $f"
done
for cfg in /boot/firmware/config.txt /boot/config.txt; do
  if [ -f "$(R $cfg)" ] && grep -q "# BEGIN timewatch" "$(R $cfg)"; then
    if [ "$DRY" = 1 ]; then say "would remove the timewatch block from $cfg"; else
      python3 - "$(R $cfg)" <<'PY'
import re, sys
p = sys.argv[1]
t = open(p).read()
open(p, "w").write(re.sub(r"# BEGIN timewatch.*?# END timewatch\n?", "", t, flags=re.S))
PY
      say "removed the timewatch block from $cfg (the serial console stays off: re-enable it with raspi-config if wanted)"
    fi
  fi
done
[ -d "$(R /opt/timewatch)" ] && run rm -rf "$(R /opt/timewatch)" && say "removed /opt/timewatch"
if [ "$PURGE" = 1 ]; then
  run rm -rf "$(R /etc/timewatch)" "$(R /var/lib/timewatch)"
  UA=(); [ -n "$ROOT" ] && UA=(--prefix "$ROOT")
  grep -q '^timewatch:' "$(R /etc/passwd)" && run userdel "${UA[@]}" timewatch
  say "purged config, state and the timewatch user"
else
  say "kept /etc/timewatch and /var/lib/timewatch (use --purge to remove them)"
fi
[ -z "$ROOT" ] && command -v systemctl >/dev/null && systemctl daemon-reload || true
