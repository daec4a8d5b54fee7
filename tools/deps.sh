#!/usr/bin/env bash
# Installs everything Sluice needs to build, test and benchmark on Debian 12,
# from Debian's archive only. Safe to run again. Postfix is preseeded to "No
# configuration" so installing it starts no system mail service; we only use
# its smtp-source/smtp-sink tools and private instances in benchmarks;
# gnuplot-nox draws the benchmark plot (bench/run) without X11 or Qt;
# libssl-dev is OpenSSL's libcrypto for DKIM signing; python3-dkim (with
# python3-nacl for Ed25519, python3-dnspython for the test DNS) and
# opendkim (its `opendkim -t` verifier, the daemon is never started) check
# the signatures in tests/integration/test_dkim.py.
set -euo pipefail
if [ "$(id -u)" -ne 0 ]; then
  echo "tools/deps.sh: run as root (it uses apt-get)" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
apt-get update -q
apt-get install -y -q --no-install-recommends \
  build-essential g++ clang libclang-rt-14-dev meson ninja-build pkg-config \
  liburing-dev libwolfssl-dev libssl-dev libc-ares-dev libabsl-dev libtomlplusplus-dev \
  libgtest-dev libgmock-dev libbenchmark-dev \
  python3 python3-pytest python3-aiosmtpd python3-dkim python3-nacl python3-dnspython \
  postfix swaks dnsmasq-base openssl jq procps iproute2 valgrind gnuplot-nox \
  opendkim opendkim-tools
