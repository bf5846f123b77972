#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Install the Debian 12 packages smtpuv needs to build, test and demo.
# Idempotent: when every package is already installed it does no apt work at
# all (one dpkg-query), so calling it at the start of every script is cheap.
#
#   scripts/install-deps.sh          install what is missing
#   scripts/install-deps.sh --check  exit 1 (and list them) if any is missing
set -euo pipefail

PACKAGES=(
  build-essential cmake pkg-config      # toolchain
  libuv1-dev libssl-dev                 # library dependencies
  libcmocka-dev                         # unit tests
  clang libclang-rt-14-dev              # ASan/UBSan build and libFuzzer
  valgrind                              # leak checks
  python3 python3-aiosmtpd              # scripted test servers (/usr/bin/python3)
  postfix dovecot-core                  # real MTA + SASL for integration tests, smtp-sink
  swaks libnet-ssleay-perl              # reference SMTP client (its STARTTLS needs Net::SSLeay)
  openssl curl libcurl4-openssl-dev     # certificates, TLS probes, curl as a peer in benchmarks
  stunnel4                              # TLS front-end of smtp-sink in bench/compare_tls.sh
  dovecot-lmtpd                         # LMTP server for the LMTP tests (tests/servers/dovecot_lmtp.sh)
  dante-server                          # SOCKS5 proxy for the proxy tests (tests/servers/dante_socks.sh)
  msmtp                                 # smtpuv-send is compared with it (tests, bench/cli_stream.sh)
  time bc man-db                        # bench/cli_stream.sh (peak RSS, ratios); man page render check
  doxygen                               # API reference, ctest doxygen (undocumented symbols fail)
  abigail-tools                         # abidw/abidiff: ABI baseline check (scripts/abi-check.sh)
  libgnutls-dane0 libidn12              # runtime libraries of the unpacked Exim (below)
  nodejs                                # Node binding (bindings/node): node 20, npm, /usr/include/node
)

# Exim 4.96 for the integration tests (tests/servers/exim_instance.sh): its
# .deb is unpacked into /opt/exim-x, not installed, because installing
# exim4-daemon-light removes postfix (both provide mail-transport-agent).
# Deliveries run as the Debian-exim system user, created here.
EXIM_DIR=/opt/exim-x
exim_ready() { [[ -x $EXIM_DIR/usr/sbin/exim4 ]] && getent passwd Debian-exim >/dev/null; }
install_exim() {
  exim_ready && return 0
  if [[ ${1:-} == --check ]]; then
    echo "install-deps: missing: Exim unpacked in $EXIM_DIR" >&2
    return 1
  fi
  local sudo=()
  [[ $(id -u) -eq 0 ]] || sudo=(sudo)
  local tmp
  tmp=$(mktemp -d)
  chmod 755 "$tmp"
  if ! (cd "$tmp" && apt-get download exim4-daemon-light >/dev/null 2>&1); then
    "${sudo[@]}" apt-get update -q
    (cd "$tmp" && apt-get download exim4-daemon-light)
  fi
  "${sudo[@]}" mkdir -p "$EXIM_DIR"
  "${sudo[@]}" dpkg -x "$tmp"/exim4-daemon-light_*.deb "$EXIM_DIR"
  rm -rf "$tmp"
  getent group Debian-exim >/dev/null || "${sudo[@]}" groupadd --system Debian-exim
  getent passwd Debian-exim >/dev/null ||
    "${sudo[@]}" useradd --system -g Debian-exim -d /nonexistent -s /usr/sbin/nologin Debian-exim
  echo "install-deps: Exim unpacked in $EXIM_DIR"
}

missing=()
for p in "${PACKAGES[@]}"; do
  status=$(dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null || true)
  [[ $status == ii* ]] || missing+=("$p")
done

if [[ ${#missing[@]} -eq 0 ]]; then
  echo "install-deps: all ${#PACKAGES[@]} packages present"
  install_exim "${1:-}"
  exit $?
fi
if [[ ${1:-} == --check ]]; then
  echo "install-deps: missing: ${missing[*]}" >&2
  exit 1
fi

SUDO=()
if [[ $(id -u) -ne 0 ]]; then
  command -v sudo >/dev/null || { echo "install-deps: need root (or sudo) to install: ${missing[*]}" >&2; exit 1; }
  SUDO=(sudo)
fi

echo "install-deps: installing: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# Postfix must not ask questions nor configure a system MTA: the tests run
# private instances (tests/servers/postfix_instance.sh) and never use /etc/postfix.
echo "postfix postfix/main_mailer_type select No configuration" | "${SUDO[@]}" debconf-set-selections
echo "postfix postfix/mailname string localhost" | "${SUDO[@]}" debconf-set-selections

# Keep package scripts from starting system services (postfix, dovecot) on
# machines without a policy of their own; removed again afterwards.
policy_added=0
if [[ ! -e /usr/sbin/policy-rc.d ]]; then
  printf '#!/bin/sh\nexit 101\n' | "${SUDO[@]}" tee /usr/sbin/policy-rc.d >/dev/null
  "${SUDO[@]}" chmod 755 /usr/sbin/policy-rc.d
  policy_added=1
fi
cleanup() { if [[ $policy_added == 1 ]]; then "${SUDO[@]}" rm -f /usr/sbin/policy-rc.d; fi; }
trap cleanup EXIT

"${SUDO[@]}" apt-get update -q
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
  -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "${missing[@]}"
install_exim
echo "install-deps: done"
