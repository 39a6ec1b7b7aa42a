#!/usr/bin/env bash
# Install loa-agent on Raspberry Pi OS / Debian: apt dependencies, the `loa` user, a venv in
# /opt/loa-agent, /etc/loa-agent/agent.yaml (only if absent) and the systemd unit. Idempotent.
#
#   sudo scripts/install.sh                      # a real box
#   scripts/install.sh --prefix DIR --no-systemd --no-apt --system-site-packages   # a test install
set -euo pipefail

# python3-dev and gcc build PyAudio where no wheel exists; python3-wheel lets a --system-site-packages
# venv on Debian's python3 build the agent offline.
APT_PACKAGES="python3 python3-venv python3-pip python3-dev python3-wheel gcc mosquitto-clients pv espeak-ng ffmpeg
vlc-bin vlc-plugin-base portaudio19-dev fonts-noto-core"

usage() {
    sed -n '2,6p' "$0" | sed 's/^# \{0,1\}//'
    cat <<USAGE
Options:
  --prefix DIR            install under DIR instead of / (venv in DIR/opt/loa-agent, config in DIR/etc/loa-agent,
                          unit in DIR/etc/systemd/system with its paths rewritten to DIR)
  --no-systemd            no user creation, no chown, no systemctl (the unit file is still rendered)
  --no-apt                do not install Debian packages
  --system-site-packages  the venv sees the system's packages; the agent is installed with --no-deps
                          --no-build-isolation, so nothing is downloaded (tests)
  -h, --help              this text
Environment:
  PYTHON                  interpreter that creates the venv (default python3)
USAGE
}

die() { echo "install.sh: $*" >&2; exit 2; }
step() { echo "loa-agent install: $*"; }

prefix=/ systemd=1 apt=1 site=0
while [ $# -gt 0 ]; do
    case "$1" in
        --prefix) [ $# -ge 2 ] || die "--prefix needs a directory"; prefix=$2; shift ;;
        --prefix=*) prefix=${1#--prefix=} ;;
        --no-systemd) systemd=0 ;;
        --no-apt) apt=0 ;;
        --system-site-packages) site=1 ;;
        -h|--help) usage; exit 0 ;;
        *) usage >&2; die "unknown option $1" ;;
    esac
    shift
done
if { [ "$apt" = 1 ] || [ "$systemd" = 1 ]; } && [ "$(id -u)" -ne 0 ]; then
    die "apt and systemd steps need root (run with sudo, or pass --no-apt --no-systemd)"
fi

src=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
[ -f "$src/setup.py" ] || die "no setup.py in $src: run the script from a loa-agent checkout"
[ -f "$src/config/agent.example.yaml" ] || die "missing $src/config/agent.example.yaml"
case $prefix in *[[:space:]]*) die "the prefix goes into the unit's ExecStart=, which splits on spaces: $prefix" ;; esac
prefix=$(mkdir -p "$prefix" && cd "$prefix" && pwd)
root=${prefix%/}  # "" for /, so every path below is "$root/..."
venv=$root/opt/loa-agent
etc=$root/etc/loa-agent
unit_dir=$root/etc/systemd/system
python=${PYTHON:-python3}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

if [ "$apt" = 1 ]; then
    step "apt packages: $(echo "$APT_PACKAGES" | tr '\n' ' ')"
    apt-get update -qq
    # shellcheck disable=SC2086  # word splitting of the list is intended
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $APT_PACKAGES >/dev/null
fi

if [ "$systemd" = 1 ]; then
    step "system user loa (groups audio, gpio)"
    getent group gpio >/dev/null || groupadd --system gpio
    if ! id loa >/dev/null 2>&1; then
        # Home is the state directory: ALSA and libVLC look for their per-user files there.
        useradd --system --user-group --home-dir /var/lib/loa-agent --no-create-home --shell /usr/sbin/nologin loa
    fi
    usermod -a -G audio,gpio loa
fi

step "venv $venv"
if [ ! -x "$venv/bin/python" ]; then
    if [ "$site" = 1 ]; then
        "$python" -m venv --system-site-packages "$venv"
    else
        "$python" -m venv "$venv"
    fi
fi

step "pip install the agent from $src"
# Build from a clean copy: setuptools builds in ./build, where modules deleted since the last build would linger
# and end up installed, and two installs at once would share it. console/ is the provincial console, its own
# distribution for the server side: a box does not carry it.
for entry in "$src"/*; do
    case ${entry##*/} in build|dist|*.egg-info|console) continue ;; esac
    cp -a "$entry" "$tmp/"
done
extras=""
grep -qs "Raspberry Pi" /proc/device-tree/model && extras="[pi]"
if [ "$site" = 1 ]; then
    # No build isolation: the venv's own setuptools builds the wheel, and setuptools < 70.1 needs the `wheel`
    # package for that. Debian's python3-wheel is pure Python: lend it to this build only, not to the venv.
    build_path=${PYTHONPATH:-}
    if ! "$venv/bin/python" -c "import setuptools, wheel" 2>/dev/null \
        && ! "$venv/bin/python" -c "import setuptools.command.bdist_wheel" 2>/dev/null; then
        deb=/usr/lib/python3/dist-packages
        if "$venv/bin/python" -c "import setuptools" 2>/dev/null && [ -d "$deb/wheel" ]; then
            mkdir "$tmp/.wheel"
            ln -s "$deb/wheel" "$tmp/.wheel/"
            for meta in "$deb"/wheel-*.egg-info "$deb"/wheel-*.dist-info; do
                if [ -e "$meta" ]; then ln -s "$meta" "$tmp/.wheel/"; fi
            done
            build_path=$tmp/.wheel${build_path:+:$build_path}
        else
            step "  setuptools/wheel missing from the system's site-packages: fetching them"
            "$venv/bin/pip" install -q setuptools wheel
        fi
    fi
    PYTHONPATH=$build_path "$venv/bin/pip" install -q --no-deps --no-build-isolation "$tmp"
else
    "$venv/bin/pip" install -q --upgrade pip
    "$venv/bin/pip" install -q "$tmp$extras"
fi
cp "$src/README.md" "$venv/README.md"  # the unit's Documentation=

step "config $etc/agent.yaml"
mkdir -p "$etc"
chmod 0750 "$etc"
if [ ! -e "$etc/agent.yaml" ]; then
    install -m 0640 "$src/config/agent.example.yaml" "$etc/agent.yaml"
else
    step "  kept the existing agent.yaml"
fi
if [ "$systemd" = 1 ]; then
    # The agent (group loa) reads its config; only root writes it.
    chown root:loa "$etc" "$etc/agent.yaml"
fi

step "unit $unit_dir/loa-agent.service"
mkdir -p "$unit_dir"
if [ -n "$root" ]; then
    sed_repl() { printf '%s' "$1" | sed 's/[\\&#]/\\&/g'; }  # escape for the replacement side of s###
    sed -e "s#/opt/loa-agent/#$(sed_repl "$venv")/#g" -e "s#/etc/loa-agent/#$(sed_repl "$etc")/#g" \
        "$src/systemd/loa-agent.service" > "$tmp/loa-agent.service"
else
    cp "$src/systemd/loa-agent.service" "$tmp/loa-agent.service"
fi
install -m 0644 "$tmp/loa-agent.service" "$unit_dir/loa-agent.service"

if [ "$systemd" = 1 ]; then
    step "technician CLI $root/usr/local/bin/loa"
    mkdir -p "$root/usr/local/bin"
    ln -sfn "$venv/bin/loa" "$root/usr/local/bin/loa"
    was_active=0
    systemctl is-active --quiet loa-agent && was_active=1
    step "systemctl daemon-reload && systemctl enable --now loa-agent"
    systemctl daemon-reload
    systemctl enable --now loa-agent
    if [ "$was_active" = 1 ]; then
        step "systemctl restart loa-agent (it was running the previous install)"
        systemctl restart loa-agent
    fi
    step "done: check with 'loa status' and 'journalctl -u loa-agent'"
else
    step "done (no systemd): $venv/bin/loa-agent --config $etc/agent.yaml"
fi
