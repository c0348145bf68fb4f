#!/usr/bin/env bash
# Installs the real syslog clients the end-to-end tests drive:
#   logger (util-linux / bsdutils), loggen (syslog-ng-core), and rsyslogd.
# rsyslog and syslog-ng conflict as Debian packages, so rsyslog is unpacked (not installed)
# under target/e2e-tools/rsyslog with the two libraries it needs; the tests find it there.
# Needs root for apt-get (Debian). Idempotent.
set -euo pipefail
cd "$(dirname "$0")/../.."
tools="$PWD/target/e2e-tools"
mkdir -p "$tools"

need_apt=()
command -v logger >/dev/null || need_apt+=(bsdutils)
command -v loggen >/dev/null || need_apt+=(syslog-ng-core)
if [ ! -x "$tools/rsyslog/usr/sbin/rsyslogd" ] || [ ${#need_apt[@]} -gt 0 ]; then
  apt-get update -qq
fi
if [ ${#need_apt[@]} -gt 0 ]; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
if [ ! -x "$tools/rsyslog/usr/sbin/rsyslogd" ]; then
  rm -rf "$tools/debs" && mkdir -p "$tools/debs"
  (cd "$tools/debs" && apt-get download -qq rsyslog rsyslog-gnutls libestr0 libfastjson4 2>/dev/null)
  for deb in "$tools"/debs/*.deb; do dpkg -x "$deb" "$tools/rsyslog"; done
fi

LD_LIBRARY_PATH="$tools/rsyslog/usr/lib/x86_64-linux-gnu" "$tools/rsyslog/usr/sbin/rsyslogd" -v | head -1
echo "test tools: $(logger --version | head -1); loggen $(command -v loggen); rsyslogd $tools/rsyslog/usr/sbin/rsyslogd"
