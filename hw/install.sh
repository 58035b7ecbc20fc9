#!/usr/bin/env bash
# timewatch appliance installer for Raspberry Pi OS Bookworm and Trixie. Idempotent: a second run
# changes nothing. Usage:
#   sudo hw/install.sh --profile adafruit-ultimate-gps|uputronics|ublox-usb [--dry-run]
#        [--root DIR] [--skip-venv] [--source DIR]
# --root installs into a fake root (tests); --dry-run prints what would change and changes nothing.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
SRC="$(dirname "$HERE")"
ROOT=/
PROFILE=""
DRY=0
SKIP_VENV=0
CHANGED=0

die() { echo "install.sh: error: $*" >&2; exit 2; }
say() { echo "install.sh: $*"; }

while [ $# -gt 0 ]; do
  case "$1" in
    --profile) PROFILE="${2:-}"; shift 2 ;;
    --root) ROOT="${2:-}"; shift 2 ;;
    --dry-run) DRY=1; shift ;;
    --skip-venv) SKIP_VENV=1; shift ;;
    --source) SRC="${2:-}"; shift 2 ;;
    -h|--help) sed -n '2,7p' "$0"; exit 0 ;;
    *) die "unknown argument $1 (see --help)" ;;
  esac
done
[ -n "$PROFILE" ] || die "--profile is required: $(cd "$HERE/profiles" && ls | sed 's/\.env$//' | tr '\n' ' ')"
[ -f "$HERE/profiles/$PROFILE.env" ] || die "no HAT profile '$PROFILE' in $HERE/profiles"
# shellcheck disable=SC1090
. "$HERE/profiles/$PROFILE.env"
ROOT="${ROOT%/}"
R() { echo "$ROOT$1"; }   # a path inside the target root
[ "$DRY" = 1 ] || [ "$(id -u)" = 0 ] || [ -n "$ROOT" ] || die "run as root (sudo)"

# --- OS layout: Bookworm and Trixie keep the firmware config in /boot/firmware ----------------
OS_ID=unknown
[ -f "$(R /etc/os-release)" ] && OS_ID="$(. "$(R /etc/os-release)" && echo "${VERSION_CODENAME:-unknown}")"
if [ -f "$(R /boot/firmware/config.txt)" ]; then BOOT=/boot/firmware
elif [ -f "$(R /boot/config.txt)" ]; then BOOT=/boot
else BOOT=""; fi
MODEL=""
[ -r "$(R /proc/device-tree/model)" ] && MODEL="$(tr -d '\0' < "$(R /proc/device-tree/model)")"
say "target ${ROOT:-/} (${OS_ID}; ${MODEL:-unknown model}); profile: $HAT_NAME"

# put_file DEST MODE < content: write only when the content differs (idempotence)
put_file() {
  local dest mode tmp
  dest="$(R "$1")"; mode="$2"; tmp="$(mktemp)"
  cat > "$tmp"
  if [ -f "$dest" ] && cmp -s "$tmp" "$dest"; then rm -f "$tmp"; return 0; fi
  CHANGED=1
  if [ "$DRY" = 1 ]; then say "would write $1"; rm -f "$tmp"; return 0; fi
  mkdir -p "$(dirname "$dest")"
  install -m "$mode" "$tmp" "$dest"; rm -f "$tmp"
  say "wrote $1"
}

run() {  # a command that changes the system
  CHANGED=1
  if [ "$DRY" = 1 ]; then say "would run: $*"; else "$@"; fi
}

# --- 1. venv under /opt/timewatch ------------------------------------------------------------
# pip compiles the engine with mypyc when gcc and the Python headers are there (setup.py), else
# installs pure Python; `timewatch --version` says which (a few minutes of gcc on a Pi 4).
if [ "$SKIP_VENV" = 0 ]; then
  if [ ! -x "$(R /opt/timewatch/bin/timewatch)" ]; then
    run python3 -m venv "$(R /opt/timewatch)"
    run "$(R /opt/timewatch/bin/pip)" install -q "$SRC"
    if [ "$DRY" = 0 ]; then
      say "installed: $("$(R /opt/timewatch/bin/timewatch)" --version)"
      if ! "$(R /opt/timewatch/bin/timewatch)" --version | grep -q "engine: compiled"; then
        say "for the compiled engine (replays about 2x faster): apt-get install gcc python3-dev,"
        say "  then $(R /opt/timewatch/bin/pip) install --force-reinstall --no-deps $SRC"
      fi
    fi
  fi
fi

# --- 2. system user in dialout and gpio ------------------------------------------------------
UA=(); [ -n "$ROOT" ] && UA=(--prefix "$ROOT")
has_group() { grep -q "^$1:" "$(R /etc/group)" 2>/dev/null; }
has_user() { grep -q "^$1:" "$(R /etc/passwd)" 2>/dev/null; }
for g in dialout gpio; do has_group "$g" || run groupadd "${UA[@]}" --system "$g"; done
if ! has_user timewatch; then
  run useradd "${UA[@]}" --system --home-dir /var/lib/timewatch --no-create-home \
      --shell /usr/sbin/nologin --user-group timewatch
fi
for g in dialout gpio; do
  if ! grep -qE "^$g:[^:]*:[^:]*:(.*,)?timewatch(,|$)" "$(R /etc/group)" 2>/dev/null; then
    run usermod "${UA[@]}" -aG "$g" timewatch
  fi
done

# --- 3. config from the template (never overwritten) and the state directory ------------------
if [ ! -f "$(R /etc/timewatch/timewatch.toml)" ]; then
  if [ -n "$PPS_GPIO" ]; then
    PPS_BLOCK=$'[[sources]]\nid = "pps0"\nkind = "pps"\ndevice = "/dev/pps0"\nlabel_from = "gnss0"\ngroup = "gnss"\n'
  else PPS_BLOCK="# no PPS line on this receiver"; fi
  python3 - "$HERE/timewatch.toml.in" "$HAT_NAME" "$GNSS_DEVICE" "$GNSS_BAUD" "$PPS_BLOCK" <<'PY' | put_file /etc/timewatch/timewatch.toml 0640
import sys
t = open(sys.argv[1]).read()
for k, v in zip(("@HAT_NAME@", "@GNSS_DEVICE@", "@GNSS_BAUD@", "@PPS_BLOCK@"), sys.argv[2:]):
    t = t.replace(k, v)
sys.stdout.write(t)
PY
fi
for d in /var/lib/timewatch /etc/timewatch; do
  [ -d "$(R $d)" ] || run mkdir -p "$(R $d)"
done
if [ -z "$ROOT" ] && [ "$DRY" = 0 ]; then
  chown -R timewatch:timewatch /var/lib/timewatch; chmod 0750 /var/lib/timewatch
  chgrp timewatch /etc/timewatch/timewatch.toml
fi

# --- 4. udev rules and the systemd unit ----------------------------------------------------------
put_file /etc/udev/rules.d/60-timewatch.rules 0644 < "$HERE/udev/60-timewatch.rules"
put_file /etc/systemd/system/timewatch.service 0644 < "$HERE/systemd/timewatch.service"

# --- 5. firmware config: UART, PPS overlay, Bluetooth off the PL011 ------------------------------
if [ "$USES_UART" = 1 ] || [ -n "$PPS_GPIO" ]; then
  [ -n "$BOOT" ] || die "no config.txt in $(R /boot/firmware) or $(R /boot): is this Raspberry Pi OS?"
  CFG="$BOOT/config.txt"
  BLOCK="# BEGIN timewatch ($HAT_NAME)"$'\n'
  [ "$USES_UART" = 1 ] && BLOCK+="enable_uart=1"$'\n'
  [ -n "$PPS_GPIO" ] && BLOCK+="dtoverlay=pps-gpio,gpiopin=$PPS_GPIO"$'\n'
  # Pi 3/4/Zero W give the full UART (PL011) to Bluetooth: move it off so the receiver gets it.
  case "$MODEL" in *"Pi 3"*|*"Pi 4"*|*"Pi Zero W"*|*"Pi Zero 2"*|*"Compute Module 4"*|*"Pi 400"*)
    [ "$USES_UART" = 1 ] && BLOCK+="dtoverlay=disable-bt"$'\n' ;; esac
  BLOCK+="# END timewatch"
  NEW="$(mktemp)"
  python3 - "$(R "$CFG")" "$BLOCK" > "$NEW" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
block = sys.argv[2]
pat = re.compile(r"# BEGIN timewatch.*?# END timewatch\n?", re.S)
text = pat.sub("", text) if pat.search(text) else text
if text and not text.endswith("\n"):
    text += "\n"
sys.stdout.write(text + block + "\n")
PY
  if ! cmp -s "$NEW" "$(R "$CFG")"; then
    if [ ! -f "$(R "$CFG").timewatch-backup" ]; then run cp -p "$(R "$CFG")" "$(R "$CFG").timewatch-backup"; fi
    put_file "$CFG" 0755 < "$NEW"
  fi
  rm -f "$NEW"
fi

# --- 6. serial console off the UART (raspi-config on a real system; cmdline.txt in a fake root) ---
if [ "$USES_UART" = 1 ]; then
  if [ -z "$ROOT" ] && command -v raspi-config >/dev/null; then
    if [ "$(raspi-config nonint get_serial_cons 2>/dev/null || echo 1)" = 0 ]; then
      run raspi-config nonint do_serial_cons 1
    fi
  elif [ -n "$BOOT" ] && [ -f "$(R "$BOOT/cmdline.txt")" ]; then
    cmdline="$(cat "$(R "$BOOT/cmdline.txt")")"
    stripped="$(echo "$cmdline" | sed -E 's/(^| )console=(serial0|ttyAMA0|ttyS0),[0-9]+//g; s/^ +//')"
    [ "$stripped" = "$cmdline" ] || echo "$stripped" | put_file "$BOOT/cmdline.txt" 0755
  fi
fi

# --- 7. enable the service (real system only) ----------------------------------------------------
if [ -z "$ROOT" ] && command -v systemctl >/dev/null; then
  if [ "$CHANGED" = 1 ] && [ "$DRY" = 0 ]; then systemctl daemon-reload; udevadm control --reload || true; fi
  systemctl is-enabled --quiet timewatch 2>/dev/null || run systemctl enable timewatch
fi

if [ "$CHANGED" = 0 ]; then say "nothing to change: already installed"
elif [ "$DRY" = 1 ]; then say "dry run: nothing was changed"
else say "done. Reboot if the firmware config changed, then: timewatch doctor -c /etc/timewatch/timewatch.toml"; fi
