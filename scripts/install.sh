#!/usr/bin/env bash
# Install loa-agent on Raspberry Pi OS / Debian: apt dependencies, the `loa` user, this checkout as release
# <version> (its own venv in /opt/loa-agent/releases/<version>, made current), the loa-boot start wrapper,
# /etc/loa-agent/agent.yaml (only if absent) and the systemd unit. Idempotent; migrates a single-venv install.
#
#   sudo scripts/install.sh                      # a real box
#   scripts/install.sh --prefix DIR --no-systemd --no-apt --system-site-packages   # a test install
set -euo pipefail

# python3-dev and gcc build PyAudio where no wheel exists; python3-wheel and python3-babel (which compiles the
# message catalogues of `loa`) let a --system-site-packages venv on Debian's python3 build the agent offline.
APT_PACKAGES="python3 python3-venv python3-pip python3-dev python3-wheel python3-babel gcc mosquitto-clients pv espeak-ng ffmpeg
vlc-bin vlc-plugin-base portaudio19-dev fonts-noto-core"
# 32-bit ARM (armhf: Raspberry Pi OS, Pi Zero 2 W..4): PyPI has no armv7l wheel of Pillow, cffi, PyNaCl nor PyYAML,
# so pip builds them here: Pillow needs zlib, libjpeg and FreeType (the e-board's text) headers, cffi libffi's, and
# PyNaCl compiles the libsodium it carries (make; not Debian's: bookworm's 1.0.18 lacks what PyNaCl 1.6 binds, so
# SODIUM_INSTALL=system builds a module that fails to import). scripts/arm-check, docs/platforms.md. amd64 and
# arm64 get wheels for all four.
APT_PACKAGES_BUILD_ARMHF="zlib1g-dev libjpeg-dev libfreetype-dev libffi-dev make"
LIBSODIUM_MAKE_ARGS="-j$(nproc)"
export LIBSODIUM_MAKE_ARGS

usage() {
    sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//'
    cat <<USAGE
Options:
  --prefix DIR            install under DIR instead of / (releases in DIR/opt/loa-agent, config in
                          DIR/etc/loa-agent, unit in DIR/etc/systemd/system with its paths rewritten to DIR)
  --no-systemd            no user creation, no chown, no systemctl (the unit file is still rendered)
  --no-apt                do not install Debian packages
  --pi                    install the Raspberry Pi extra (RPi.GPIO) even where /proc/device-tree does not name a
                          Raspberry Pi (an SD-card image prepared in a chroot; scripts/arm-check)
  --system-site-packages  the release's venv sees the system's packages; the agent alone is built
                          (--no-deps --no-build-isolation) and installed, so nothing is downloaded (tests)
  -h, --help              this text
Environment:
  PYTHON                  interpreter whose base makes the venvs and runs loa-boot (default python3)
USAGE
}

die() { echo "install.sh: $*" >&2; exit 2; }
step() { echo "loa-agent install: $*"; }

prefix=/ systemd=1 apt=1 site=0 pi=0
while [ $# -gt 0 ]; do
    case "$1" in
        --prefix) [ $# -ge 2 ] || die "--prefix needs a directory"; prefix=$2; shift ;;
        --prefix=*) prefix=${1#--prefix=} ;;
        --no-systemd) systemd=0 ;;
        --no-apt) apt=0 ;;
        --system-site-packages) site=1 ;;
        --pi) pi=1 ;;
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
home=$root/opt/loa-agent  # the release layout: agent/releases.py's docstring, docs/updates.md
etc=$root/etc/loa-agent
unit_dir=$root/etc/systemd/system
python=${PYTHON:-python3}
version=$(sed -n 's/^__version__ = "\([^"]*\)"$/\1/p' "$src/agent/__init__.py")
[ -n "$version" ] || die "no __version__ = \"...\" line in $src/agent/__init__.py"
# Before the release layout, /opt/loa-agent was itself the venv: it is replaced once the new release is in.
legacy=0
if [ -f "$home/pyvenv.cfg" ] || { [ -d "$home/bin" ] && [ ! -L "$home/bin" ]; }; then legacy=1; fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

if [ "$apt" = 1 ]; then
    case $(dpkg --print-architecture) in armhf|armel) APT_PACKAGES="$APT_PACKAGES $APT_PACKAGES_BUILD_ARMHF" ;; esac
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

step "release $version in $home/releases/$version"
# Build from a clean copy: setuptools builds in ./build, where modules deleted since the last build would linger
# and end up installed, and two installs at once would share it. console/ is the provincial console, its own
# distribution for the server side: a box does not carry it.
mkdir -p "$tmp/src" "$tmp/wheels"
for entry in "$src"/*; do
    case ${entry##*/} in build|dist|*.egg-info|console) continue ;; esac
    cp -a "$entry" "$tmp/src/"
done
extras=""
if [ "$pi" = 1 ] || grep -qs "Raspberry Pi" /proc/device-tree/model; then extras="[pi]"; fi
# A complete release of this version is kept as it is, so nothing to build (agent/releases.py's rule: a venv is
# never rebuilt in place, it may be the one running).
if [ -f "$home/releases/$version/.complete" ]; then
    :  # kept as it is: nothing to build
elif [ "$site" = 1 ]; then
    step "  wheel of the agent alone (pip wheel --no-deps; dependencies come from the system's site-packages)"
    # No build isolation: $python's own setuptools builds the wheel, and setuptools < 70.1 needs the `wheel`
    # package for that. Debian's python3-wheel is pure Python: lend it to this build only.
    build_path=${PYTHONPATH:-}
    if ! "$python" -c "import setuptools, wheel" 2>/dev/null \
        && ! "$python" -c "import setuptools.command.bdist_wheel" 2>/dev/null; then
        deb=/usr/lib/python3/dist-packages
        if ! "$python" -c "import setuptools" 2>/dev/null || [ ! -d "$deb/wheel" ]; then
            die "--system-site-packages builds offline with $python's setuptools and wheel: install them" \
                "(apt-get install python3-setuptools python3-wheel)"
        fi
        mkdir "$tmp/.wheel"
        ln -s "$deb/wheel" "$tmp/.wheel/"
        for meta in "$deb"/wheel-*.egg-info "$deb"/wheel-*.dist-info; do
            if [ -e "$meta" ]; then ln -s "$meta" "$tmp/.wheel/"; fi
        done
        build_path=$tmp/.wheel${build_path:+:$build_path}
    fi
    PYTHONPATH=$build_path "$python" -m pip wheel -q --disable-pip-version-check --no-deps --no-build-isolation \
        --wheel-dir "$tmp/wheels" "$tmp/src"
else
    step "  wheels of the agent and every dependency (pip wheel, in a throwaway build venv)"
    "$python" -m venv "$tmp/build"
    "$tmp/build/bin/pip" install -q --upgrade pip
    "$tmp/build/bin/pip" wheel -q --wheel-dir "$tmp/wheels" "$tmp/src$extras"
fi
# The same code as an update over the air (agent/releases.py): a venv at releases/<v>, `pip install --no-index`
# from the wheels, release.json and .complete; then current -> it (previous := the old current), update.json's
# committed/highest, and releases that are neither current nor previous removed.
site_option=()
[ "$site" = 1 ] && site_option=(--system-site-packages)
PYTHONPATH=$tmp/src "$python" -m agent.releases install --root "$home" --version "$version" \
    --wheels "$tmp/wheels" --requirement "loa-agent$extras==$version" "${site_option[@]}" \
    | while IFS= read -r line; do step "  $line"; done

step "start wrapper $home/loa-boot"
# Its interpreter is the one that made the venvs (the base one, not a venv's): loa-boot must run when every
# release is broken.
base_python=$("$python" -c 'import sys; print(getattr(sys, "_base_executable", None) or sys.executable)')
{ printf '#!%s\n' "$base_python"; tail -n +2 "$src/scripts/loa-boot"; } > "$tmp/loa-boot"
install -m 0755 "$tmp/loa-boot" "$home/loa-boot"
cp "$src/README.md" "$home/README.md"  # the unit's Documentation=
if [ "$legacy" = 0 ]; then
    ln -sfn current/bin "$home/bin"  # <root>/bin/loa follows the current release
fi

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
    # Every /opt/loa-agent, with or without a slash after it (ExecStart=.../loa-boot, ReadWritePaths=...).
    sed -e "s#/opt/loa-agent#$(sed_repl "$home")#g" -e "s#/etc/loa-agent/#$(sed_repl "$etc")/#g" \
        "$src/systemd/loa-agent.service" > "$tmp/loa-agent.service"
else
    cp "$src/systemd/loa-agent.service" "$tmp/loa-agent.service"
fi
install -m 0644 "$tmp/loa-agent.service" "$unit_dir/loa-agent.service"

if [ "$systemd" = 1 ]; then
    step "technician CLI $root/usr/local/bin/loa"
    mkdir -p "$root/usr/local/bin"
    ln -sfn "$home/bin/loa" "$root/usr/local/bin/loa"
    step "ownership: $home root:loa 1775, releases, links and update.json loa's, loa-boot root's"
    # The agent (user loa) installs releases, moves the links and writes update.json. The directory is root's and
    # sticky: loa may create entries and replace its own, but not rename or delete loa-boot (owning the directory
    # would let it), so the agent cannot rewrite its own boot wrapper.
    chown root:loa "$home"
    chmod 1775 "$home"
    chown -R loa:loa "$home/releases"
    for entry in current previous update.json; do
        if [ -e "$home/$entry" ] || [ -L "$home/$entry" ]; then chown -h loa:loa "$home/$entry"; fi
    done
    chown root:root "$home/loa-boot"
    was_active=0
    systemctl is-active --quiet loa-agent && was_active=1
    step "systemctl daemon-reload && systemctl enable --now loa-agent"
    systemctl daemon-reload
    systemctl enable --now loa-agent
    if [ "$was_active" = 1 ]; then
        step "systemctl restart loa-agent (it was running the previous install)"
        systemctl restart loa-agent
    fi
fi

if [ "$legacy" = 1 ]; then
    # Only now: a running old agent kept its files until the restart above.
    step "migration: removed the old venv's pyvenv.cfg bin lib lib64 include from $home; bin -> current/bin"
    rm -rf "${home:?}/pyvenv.cfg" "${home:?}/bin" "${home:?}/lib" "${home:?}/lib64" "${home:?}/include"
    ln -s current/bin "$home/bin"
fi

if [ "$systemd" = 1 ]; then
    step "done: check with 'loa status' and 'journalctl -u loa-agent'"
else
    step "done (no systemd): $home/loa-boot --config $etc/agent.yaml"
fi
