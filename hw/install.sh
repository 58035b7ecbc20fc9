#!/usr/bin/env bash
# timewatch appliance installer for Raspberry Pi OS Bookworm and Trixie. Idempotent: a second run
# changes nothing. Usage:
#   sudo hw/install.sh --profile adafruit-ultimate-gps|uputronics|ublox-usb [--dry-run]
#        [--operator USER] [--root DIR] [--skip-venv] [--source DIR]
# --dry-run prints what would change (the lines for config.txt and cmdline.txt too) and changes
# nothing; --operator (default: the user who ran sudo) joins the group timewatch, which reads the
# config and the state; --root installs into a fake root (tests).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
SRC="$(dirname "$HERE")"
ROOT=/
PROFILE=""
DRY=0
SKIP_VENV=0
CHANGED=0
FIRMWARE=0   # config.txt or cmdline.txt changed: a reboot applies them
OPERATOR="${SUDO_USER:-}"; [ "$OPERATOR" = root ] && OPERATOR=""
# Debian packages the appliance needs besides Python: chronyd disciplines the clock (timewatch
# only watches it), pps-tools gives ppstest for the first-boot check.
PACKAGES="chrony pps-tools"

die() { echo "install.sh: error: $*" >&2; exit 2; }
say() { echo "install.sh: $*"; }

while [ $# -gt 0 ]; do
  case "$1" in
    --profile) PROFILE="${2:-}"; shift 2 ;;
    --root) ROOT="${2:-}"; shift 2 ;;
    --dry-run) DRY=1; shift ;;
    --skip-venv) SKIP_VENV=1; shift ;;
    --operator) OPERATOR="${2:-}"; shift 2 ;;
    --source) SRC="${2:-}"; shift 2 ;;
    -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
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
  if [ "$DRY" = 1 ]; then
    say "would write $1"
    if [ "${SHOW_DIFF:-0}" = 1 ]; then  # the firmware files: show the very lines
      diff -u --label "$1" --label "$1 (new)" "$( [ -f "$dest" ] && echo "$dest" || echo /dev/null)" "$tmp" \
        | sed -e '1,2d' -e '/^@@/d' -e 's/^/    /' || true
    fi
    rm -f "$tmp"; return 0
  fi
  mkdir -p "$(dirname "$dest")"
  install -m "$mode" "$tmp" "$dest"; rm -f "$tmp"
  say "wrote $1"
}

# Ids from the target root's own account files (a fake root has other ones than this machine).
uid_of() { awk -F: -v n="$1" '$1 == n {print $3}' "$(R /etc/passwd)" 2>/dev/null; }
gid_of() { awk -F: -v n="$1" '$1 == n {print $3}' "$(R /etc/group)" 2>/dev/null; }

# set_owner PATH OWNER GROUP MODE: ownership and mode, changed only when they differ
set_owner() {
  local path uid gid
  path="$(R "$1")"; uid="$(uid_of "$2")"; gid="$(gid_of "$3")"
  [ -e "$path" ] && [ -n "$uid" ] && [ -n "$gid" ] || return 0
  [ "$(stat -c '%u:%g %a' "$path")" = "$uid:$gid $4" ] && return 0
  CHANGED=1
  if [ "$DRY" = 1 ]; then say "would set $1 to $2:$3 mode $4"; return 0; fi
  chown "$uid:$gid" "$path"; chmod "$4" "$path"
  say "set $1 to $2:$3 mode $4"
}

installed() {  # is Debian package $1 installed in the target root?
  [ "$(dpkg-query --admindir="$(R /var/lib/dpkg)" -W -f='${db:Status-Status}' "$1" 2>/dev/null)" = installed ]
}

run() {  # a command that changes the system
  CHANGED=1
  if [ "$DRY" = 1 ]; then say "would run: $*"; else "$@"; fi
}

# --- 1. Debian packages, the venv under /opt/timewatch, `timewatch` on PATH ---------------------
# pip compiles the engine with mypyc when gcc and the Python headers are there (setup.py), else
# installs pure Python; `timewatch --version` says which (a few minutes of gcc on a Pi 4).
MISSING=""
for p in $PACKAGES; do installed "$p" || MISSING="$MISSING $p"; done
if [ -n "$MISSING" ]; then
  if [ -z "$ROOT" ] || [ "$DRY" = 1 ]; then
    run apt-get install -y --no-install-recommends$MISSING
  else  # a fake root has no package manager of its own
    say "note: not installed in $ROOT:$MISSING (install them in the image)"
  fi
fi
if [ "$SKIP_VENV" = 0 ]; then
  if [ ! -x "$(R /opt/timewatch/bin/timewatch)" ]; then
    run python3 -m venv "$(R /opt/timewatch)"
    run "$(R /opt/timewatch/bin/pip)" install -q "$SRC"
    if [ "$DRY" = 0 ]; then
      say "installed: $("$(R /opt/timewatch/bin/timewatch)" --version)"
      if ! "$(R /opt/timewatch/bin/timewatch)" --version | grep -q "engine: compiled"; then
        say "for the compiled engine (replays 2-4x faster): apt-get install gcc python3-dev,"
        say "  then $(R /opt/timewatch/bin/pip) install --force-reinstall --no-deps $SRC"
      fi
    fi
  fi
fi
if [ "$(readlink "$(R /usr/local/bin/timewatch)" 2>/dev/null)" != /opt/timewatch/bin/timewatch ]; then
  run mkdir -p "$(R /usr/local/bin)"
  run ln -sfn /opt/timewatch/bin/timewatch "$(R /usr/local/bin/timewatch)"
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
in_group() { grep -qE "^$1:[^:]*:[^:]*:(.*,)?$2(,|$)" "$(R /etc/group)" 2>/dev/null; }
for g in dialout gpio; do
  in_group "$g" timewatch || run usermod "${UA[@]}" -aG "$g" timewatch
done
# The operator reads the config and the state through the group timewatch (timewatch status,
# export, doctor without sudo).
if [ -n "$OPERATOR" ]; then
  if ! has_user "$OPERATOR"; then
    say "warning: no user '$OPERATOR' in $(R /etc/passwd): nobody added to the group timewatch"
  elif ! in_group timewatch "$OPERATOR"; then
    run usermod "${UA[@]}" -aG timewatch "$OPERATOR"
    say "$OPERATOR joins the group timewatch (reads the config and the state): log in again, or run: newgrp timewatch"
  fi
fi

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
# The evidence signing key (docs/evidence.md): made once, never replaced, 0600 from the start,
# owned by the service (set below).
KEY=/var/lib/timewatch/evidence.key
if [ ! -f "$(R $KEY)" ] && command -v openssl >/dev/null; then
  CHANGED=1
  if [ "$DRY" = 1 ]; then say "would make the evidence signing key $KEY"
  else
    (umask 077 && openssl genpkey -algorithm ed25519 -out "$(R $KEY)" 2>/dev/null)
    say "made the evidence signing key $KEY"
  fi
fi
if [ -f "$(R $KEY)" ] && command -v openssl >/dev/null; then
  say "evidence public key (keep a copy off this machine, for timewatch verify --pubkey):"
  say "  ed25519:$(openssl pkey -in "$(R $KEY)" -pubout -outform DER | tail -c 32 | base64)"
fi
# The service writes the state (the unit's UMask=0027 keeps what it writes group-readable); the
# group timewatch reads the state and the config.
set_owner /var/lib/timewatch timewatch timewatch 750
set_owner /etc/timewatch/timewatch.toml root timewatch 640
set_owner $KEY timewatch timewatch 600

# --- 4. udev rules and the systemd unit ----------------------------------------------------------
put_file /etc/udev/rules.d/60-timewatch.rules 0644 < "$HERE/udev/60-timewatch.rules"
put_file /etc/systemd/system/timewatch.service 0644 < "$HERE/systemd/timewatch.service"

# --- 5. firmware config: UART, PPS overlay, Bluetooth off the PL011 ------------------------------
if [ "$USES_UART" = 1 ] || [ -n "$PPS_GPIO" ]; then
  [ -n "$BOOT" ] || die "no config.txt in $(R /boot/firmware) or $(R /boot): is this Raspberry Pi OS?"
  CFG="$BOOT/config.txt"
  # [all]: config.txt may end inside a conditional section ([pi4], [cm4], ...); the block must
  # apply to every board.
  BLOCK="# BEGIN timewatch ($HAT_NAME)"$'\n'"[all]"$'\n'
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
    FIRMWARE=1
    if [ ! -f "$(R "$CFG").timewatch-backup" ]; then run cp -p "$(R "$CFG")" "$(R "$CFG").timewatch-backup"; fi
    SHOW_DIFF=1 put_file "$CFG" 0755 < "$NEW"
  fi
  rm -f "$NEW"
fi

# --- 6. serial console off the UART (raspi-config on a real system; cmdline.txt in a fake root) ---
if [ "$USES_UART" = 1 ]; then
  if [ -z "$ROOT" ] && command -v raspi-config >/dev/null; then
    if [ "$(raspi-config nonint get_serial_cons 2>/dev/null || echo 1)" = 0 ]; then
      FIRMWARE=1
      run raspi-config nonint do_serial_cons 1
    fi
  elif [ -n "$BOOT" ] && [ -f "$(R "$BOOT/cmdline.txt")" ]; then
    cmdline="$(cat "$(R "$BOOT/cmdline.txt")")"
    stripped="$(echo "$cmdline" | sed -E 's/(^| )console=(serial0|ttyAMA0|ttyS0),[0-9]+//g; s/^ +//')"
    if [ "$stripped" != "$cmdline" ]; then
      FIRMWARE=1
      echo "$stripped" | SHOW_DIFF=1 put_file "$BOOT/cmdline.txt" 0755
    fi
  fi
fi

# --- 7. enable the service; start it now unless the firmware changes wait for a reboot ---------
SC=(systemctl); [ -n "$ROOT" ] && SC+=(--root "$ROOT")
# A firmware change of an earlier run that no reboot has applied yet (config.txt newer than boot).
if [ -z "$ROOT" ] && [ -n "$BOOT" ] && [ -r /proc/uptime ] && grep -q "# BEGIN timewatch" "$BOOT/config.txt" 2>/dev/null; then
  booted=$(( $(date +%s) - $(cut -d. -f1 /proc/uptime) ))
  [ "$(stat -c %Y "$BOOT/config.txt")" -le "$booted" ] || FIRMWARE=1
fi
if command -v systemctl >/dev/null; then
  if [ -z "$ROOT" ] && [ "$CHANGED" = 1 ] && [ "$DRY" = 0 ]; then systemctl daemon-reload; udevadm control --reload || true; fi
  "${SC[@]}" is-enabled --quiet timewatch 2>/dev/null || run "${SC[@]}" enable timewatch
  if [ "$FIRMWARE" = 0 ] && [ -z "$ROOT" ]; then
    if [ "$CHANGED" = 1 ]; then run systemctl restart timewatch
    elif ! systemctl is-active --quiet timewatch; then run systemctl start timewatch; fi
  fi
fi

if [ "$FIRMWARE" = 1 ]; then
  NEXT="reboot to apply the firmware changes (config.txt, cmdline.txt): timewatch starts at boot"
elif [ -n "$ROOT" ]; then
  NEXT="no reboot needed: timewatch starts at the first boot of $ROOT"
else
  NEXT="no reboot needed: timewatch runs (timewatch status -c /etc/timewatch/timewatch.toml)"
fi
if [ "$CHANGED" = 0 ]; then say "nothing to change: already installed; $NEXT"
elif [ "$DRY" = 1 ]; then say "dry run: nothing was changed; $NEXT"
else say "done; $NEXT. Check it: timewatch doctor -c /etc/timewatch/timewatch.toml"; fi
