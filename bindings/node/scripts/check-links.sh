#!/bin/sh
# SPDX-License-Identifier: MIT
# usage: check-links.sh ADDON.node
# Fails unless the addon links nothing but the C library class (libc, libm,
# libpthread, libdl, the dynamic loader, vdso) and defines no uv_* / OpenSSL
# symbol of its own: libuv and OpenSSL must be Node's (see README.md).
set -eu
F=${1:?usage: check-links.sh ADDON.node}
[ -f "$F" ] || { echo "check-links: $F: no such file" >&2; exit 1; }
bad=0
# 1. DT_NEEDED entries
needed=$(readelf -d "$F" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')
for lib in $needed; do
  case $lib in
    libc.so.*|libm.so.*|libpthread.so.*|libdl.so.*|ld-linux*.so.*) ;;
    *) echo "check-links: $F needs $lib (only libc-class libraries are allowed)" >&2; bad=1 ;;
  esac
done
# 2. what ldd resolves (catches indirect libuv/libssl)
if ldd "$F" 2>/dev/null | grep -Ei 'libuv|libssl|libcrypto' >&2; then
  echo "check-links: $F resolves a libuv/libssl/libcrypto of its own" >&2; bad=1
fi
# 3. no libuv/OpenSSL code inside: those symbols must stay undefined
#    (bound to the node binary at load time)
defined=$(nm -D --defined-only "$F" | awk '{print $3}')
for s in $defined; do
  case $s in
    napi_register_module_v1|node_api_module_get_api_version_v1) ;;
    *) echo "check-links: $F exports $s (only the N-API entry points may leave it)" >&2; bad=1 ;;
  esac
done
for s in uv_loop_init uv_tcp_connect SSL_new SSL_CTX_new EVP_sha256; do
  if ! nm -D --undefined-only "$F" | awk '{print $2}' | grep -qx "$s"; then
    echo "check-links: $F does not take $s from the host process" >&2; bad=1
  fi
done
[ $bad -eq 0 ] && echo "check-links: $F needs only: $needed; libuv and OpenSSL from node"
exit $bad
