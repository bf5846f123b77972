#!/bin/sh
# SPDX-License-Identifier: MIT
# usage: gen_certs.sh DIR
# Throwaway test PKI (valid 2 days, EC P-256; KEYTYPE=rsa gives RSA-2048 leaf keys):
#   DIR/ca.crt ca.key                  the CA clients must trust ("smtpuv-test-CA")
#   DIR/server.crt server.key          CN=localhost, SAN DNS:localhost, IP:127.0.0.1 (signed by ca)
#   DIR/server-chain.pem               server.crt + ca.crt
#   DIR/server-combined.pem            server.key + server.crt
#   DIR/wrong.crt wrong.key            CN/SAN wrong.example, signed by the good CA (name mismatch)
#   DIR/untrusted-ca.crt untrusted-ca.key   an unrelated CA nobody trusts
#   DIR/untrusted.crt untrusted.key    CN=localhost (same SANs) signed by the untrusted CA
# Takes ~0.1 s.
set -eu
D=${1:?usage: gen_certs.sh DIR}
if [ "${KEYTYPE:-ec}" = rsa ]; then KA="-newkey rsa:2048"; else KA="-newkey ec -pkeyopt ec_paramgen_curve:P-256"; fi
mkdir -p "$D"
cd "$D"

ca() { # ca NAME CN
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout "$1.key" -out "$1.crt" -days 2 -subj "/CN=$2" \
    -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
}
leaf() { # leaf NAME CN SAN CA
  # shellcheck disable=SC2086
  openssl req $KA -nodes -keyout "$1.key" -out "$1.csr" -subj "/CN=$2" 2>/dev/null
  printf 'subjectAltName=%s\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n' "$3" > "$1.ext"
  openssl x509 -req -in "$1.csr" -CA "$4.crt" -CAkey "$4.key" -CAcreateserial \
    -out "$1.crt" -days 2 -extfile "$1.ext" 2>/dev/null
  rm -f "$1.csr" "$1.ext" "$4.srl"
}

ca ca smtpuv-test-CA
ca untrusted-ca smtpuv-untrusted-CA
leaf server localhost "DNS:localhost,IP:127.0.0.1" ca
leaf wrong wrong.example "DNS:wrong.example" ca
leaf untrusted localhost "DNS:localhost,IP:127.0.0.1" untrusted-ca
cat server.crt ca.crt > server-chain.pem
cat server.key server.crt > server-combined.pem
chmod 600 ./*.key server-combined.pem
chmod 644 ./*.crt server-chain.pem
