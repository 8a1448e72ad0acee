#!/bin/sh
# Installs the Debian packages the test suite drives for real: Chromium (web monitor tests) and
# a JACK server with its tools (MIDI tests; jackd2 also brings the libjack and libasound that
# python-rtmidi loads).
# Runs apt-get only when something is missing and we are root or have passwordless sudo.
set -u
missing=""
command -v chromium >/dev/null 2>&1 || missing="$missing chromium"
command -v unshare >/dev/null 2>&1 || missing="$missing util-linux"  # NDI test: loopback-only netns
{ command -v jackd && command -v jack_wait && command -v jack_lsp; } >/dev/null 2>&1 || missing="$missing jackd2 libjack-jackd2-0"
[ -z "$missing" ] && exit 0
if [ "$(id -u)" = 0 ]; then SUDO=""; elif sudo -n true 2>/dev/null; then SUDO="sudo -n"; else
  echo "system-deps: missing:$missing (install them with apt-get; the tests that need them will skip)" >&2
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "system-deps: missing:$missing and no apt-get here; the tests that need them will skip" >&2
  exit 0
fi
echo "system-deps: installing$missing"
$SUDO apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null \
  || echo "system-deps: apt-get install$missing failed; the tests that need them will skip" >&2
exit 0
