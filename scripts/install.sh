#!/usr/bin/env bash
# Install loa-agent on Raspberry Pi OS / Debian: apt dependencies, the `loa` user, a venv in
# /opt/loa-agent, /etc/loa-agent/agent.yaml (only if absent) and the systemd unit. Idempotent.
#
#   sudo scripts/install.sh                      # a real box
#   scripts/install.sh --prefix DIR --no-systemd --no-apt --system-site-packages   # a test install
set -euo pipefail

usage() {
    sed -n '2,6p' "$0" | sed 's/^# \{0,1\}//'
    cat <<USAGE
Options:
  --prefix DIR            install under DIR instead of / (venv in DIR/opt/loa-agent, config in DIR/etc/loa-agent)
  --no-systemd            no user creation, no chown, no systemctl (the unit file is still rendered)
  --no-apt                do not install Debian packages
  --system-site-packages  venv sees the system's packages; install the agent without downloads (tests)
  -h, --help              this text
USAGE
}

prefix=/ systemd=1 apt=1 site=0
while [ $# -gt 0 ]; do
    case "$1" in
        --prefix) prefix=${2:?--prefix needs a directory}; shift ;;
        --no-systemd) systemd=0 ;;
        --no-apt) apt=0 ;;
        --system-site-packages) site=1 ;;
        -h|--help) usage; exit 0 ;;
        *) echo "install.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
    esac
    shift
done

src=$(cd "$(dirname "$0")/.." && pwd)
prefix=$(mkdir -p "$prefix" && cd "$prefix" && pwd)
root=${prefix%/}
venv=$root/opt/loa-agent
etc=$root/etc/loa-agent
unit_dir=$root/etc/systemd/system
APT_PACKAGES="python3 python3-venv python3-pip python3-dev gcc mosquitto-clients pv espeak-ng ffmpeg vlc-bin
vlc-plugin-base portaudio19-dev fonts-noto-core"

step() { echo "loa-agent install: $*"; }

if [ "$apt" = 1 ]; then
    step "apt packages"
    apt-get update -qq
    # shellcheck disable=SC2086
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $APT_PACKAGES >/dev/null
fi

if [ "$systemd" = 1 ]; then
    step "user loa (groups audio, gpio)"
    getent group gpio >/dev/null || groupadd --system gpio
    id loa >/dev/null 2>&1 || useradd --system --home-dir /var/lib/loa-agent --shell /usr/sbin/nologin loa
    usermod -a -G audio,gpio loa
fi

step "venv $venv"
if [ ! -x "$venv/bin/python" ]; then
    if [ "$site" = 1 ]; then python3 -m venv --system-site-packages "$venv"; else python3 -m venv "$venv"; fi
fi
extras=""
grep -q "Raspberry Pi" /proc/device-tree/model 2>/dev/null && extras="[pi]"
if [ "$site" = 1 ]; then
    # Dependencies come from the system's site-packages; only the build backend may need fetching.
    "$venv/bin/python" -c "import setuptools, wheel" 2>/dev/null || "$venv/bin/pip" install -q setuptools wheel
    "$venv/bin/pip" install -q --no-deps --no-build-isolation "$src"
else
    "$venv/bin/pip" install -q --upgrade pip
    "$venv/bin/pip" install -q "$src$extras"
fi
cp "$src/README.md" "$venv/README.md"

step "config $etc/agent.yaml"
mkdir -p "$etc"
if [ ! -e "$etc/agent.yaml" ]; then
    install -m 0640 "$src/config/agent.example.yaml" "$etc/agent.yaml"
else
    step "  kept the existing agent.yaml"
fi
[ "$systemd" = 1 ] && chown root:loa "$etc" "$etc/agent.yaml" && chmod 0750 "$etc"

step "unit $unit_dir/loa-agent.service"
mkdir -p "$unit_dir"
sed -e "s#/opt/loa-agent/#$venv/#g" -e "s#/etc/loa-agent/#$etc/#g" \
    "$src/systemd/loa-agent.service" > "$unit_dir/loa-agent.service"

if [ "$systemd" = 1 ]; then
    step "systemctl enable --now loa-agent"
    systemctl daemon-reload
    systemctl enable --now loa-agent
    step "done: check with 'loa status' and 'journalctl -u loa-agent'"
    ln -sf "$venv/bin/loa" /usr/local/bin/loa
else
    step "done (no systemd): $venv/bin/loa-agent --config $etc/agent.yaml"
fi
