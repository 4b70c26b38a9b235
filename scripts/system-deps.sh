#!/usr/bin/env bash
# Installs the desktop packages the tests need: a virtual X server, xdotool, xterm, Qt's xcb
# libraries, Xephyr and openbox (the private desktop), a headless Wayland compositor (sway) with
# foot and wl-clipboard, and a headless GNOME (mutter, PipeWire, xdg-desktop-portal-gnome,
# GStreamer's pipewiresrc, AT-SPI for its dialog) and a headless KDE (kwin, its portal).
# As root on Debian/Ubuntu it runs apt-get; otherwise it prints the one command to run and fails.
set -eu
PKGS="xvfb xdotool x11-utils x11-xserver-utils xterm scrot libxcb-cursor0 libxkbcommon-x11-0 \
libxcb-icccm4 libxcb-keysyms1 libxcb-image0 libxcb-render-util0 libxcb-randr0 libxcb-shape0 \
libxcb-xkb1 libxcb-xfixes0 libxcb-sync1 libxcb-shm0 libxcb-util1 libx11-xcb1 libegl1 libgl1 \
libfontconfig1 libdbus-1-3 xserver-xephyr openbox sway foot wl-clipboard fonts-dejavu-core \
mutter gnome-shell-common xdg-desktop-portal xdg-desktop-portal-gnome pipewire wireplumber dbus \
gstreamer1.0-tools gstreamer1.0-pipewire python3-pyatspi at-spi2-core \
kwin-wayland xdg-desktop-portal-kde qtwayland5"
missing=""
for bin in Xvfb xdotool xterm xwininfo xrandr Xephyr openbox sway swaymsg foot wl-copy mutter \
  pipewire gst-launch-1.0 kwin_wayland; do
  command -v "$bin" >/dev/null 2>&1 || missing="$missing $bin"
done
gst-inspect-1.0 pipewiresrc >/dev/null 2>&1 || missing="$missing pipewiresrc"
[ -x /usr/libexec/xdg-desktop-portal-gnome ] || missing="$missing xdg-desktop-portal-gnome"
if [ -z "$missing" ] && ldconfig -p 2>/dev/null | grep -q libxcb-cursor.so.0; then
  exit 0
fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing X and Wayland test packages with apt-get ..."
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # shellcheck disable=SC2086
  apt-get install -y -qq --no-install-recommends $PKGS >/dev/null
  exit 0
fi
echo "The tests need X and Wayland servers and tools (missing:${missing:- Qt xcb libraries}). Run:" >&2
echo "  sudo apt-get install -y $PKGS" >&2
exit 1
