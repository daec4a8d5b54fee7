#!/usr/bin/env bash
# Installs everything Sluice needs to build, test and benchmark on Debian 12,
# from Debian's archive only. Safe to run again: it asks dpkg-query first and
# calls apt-get only for the packages that are missing (so a machine that has
# them all is not touched, and needs no network).
#
# Every package a test, tools/ or bench/ script runs is named here, because
# apt-get runs with --no-install-recommends: a "Recommends" is never enough
# (swaks only recommends libnet-ssleay-perl, without which its STARTTLS and
# AUTH tests fail with "TLS not available"). The list, by who needs it:
#   build:         build-essential g++ meson ninja-build pkg-config and the -dev libraries
#                  (libssl-dev: OpenSSL's libcrypto for DKIM signing)
#   fuzz/run.sh:   clang libclang-rt-14-dev (libFuzzer, ASan), util-linux (flock)
#   tests/:        python3 python3-pytest python3-aiosmtpd, python3-dkim python3-nacl
#                  python3-dnspython (DKIM verification; other modules are the
#                  standard library), opendkim opendkim-tools (`opendkim -t`, the
#                  daemon is never started), swaks libnet-ssleay-perl (its TLS),
#                  openssl (certificates), dnsmasq-base (test DNS), mount
#                  (tmpfs for the disk-full test), util-linux (setpriv, unshare),
#                  passwd (useradd), procps, iproute2, ca-certificates (the
#                  system trust store outbound verification loads), jq,
#                  prometheus (`promtool check metrics` in test_metrics.py; the
#                  package also installs a Prometheus server service, which
#                  systemd hosts start on :9090: the tests never use it),
#                  chromium chromium-driver python3-selenium (the status page
#                  in a real headless browser, test_status_page.py), strace
#                  (test_shard_syscalls.py: no blocking syscall on a shard
#                  thread; also bench/shard_syscalls.py, pickup_syscalls.py)
#   bench/:        postfix (smtp-source, smtp-sink, private instances), gnuplot-nox,
#                  git (the commit a result belongs to), valgrind
# Postfix is preseeded to "No configuration" so installing it starts no
# system mail service.
#
#   tools/deps.sh            install what is missing
#   tools/deps.sh --check    list what is missing; exit 1 if anything is
set -euo pipefail

packages=(
  build-essential g++ clang libclang-rt-14-dev meson ninja-build pkg-config
  liburing-dev libwolfssl-dev libssl-dev libc-ares-dev libabsl-dev libtomlplusplus-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  python3 python3-pytest python3-aiosmtpd python3-dkim python3-nacl python3-dnspython
  opendkim opendkim-tools
  swaks libnet-ssleay-perl openssl ca-certificates dnsmasq-base
  mount util-linux passwd procps iproute2 jq prometheus
  chromium chromium-driver python3-selenium strace
  postfix gnuplot-nox git valgrind
)

missing=()
for p in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
  [ "$status" = installed ] || missing+=("$p")
done

if [ "${1:-}" = --check ]; then
  if [ ${#missing[@]} -eq 0 ]; then
    echo "tools/deps.sh: all ${#packages[@]} packages installed"
    exit 0
  fi
  echo "tools/deps.sh: missing: ${missing[*]}"
  exit 1
fi
if [ ${#missing[@]} -eq 0 ]; then
  echo "tools/deps.sh: all ${#packages[@]} packages installed"
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "tools/deps.sh: missing ${missing[*]}; run as root to install them (it uses apt-get)" >&2
  exit 1
fi
echo "tools/deps.sh: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
apt-get update -q
apt-get install -y -q --no-install-recommends "${missing[@]}"
