# The smtpuv addon: the library's own sources compiled against Node's
# headers (node-gyp rebuild --nodedir=/usr: /usr/include/node has node_api.h,
# uv.h and Node's OpenSSL headers). No -luv, no -lssl/-lcrypto: libuv and
# OpenSSL come from the node binary, which exports their symbols.
# check-links.sh verifies the result. The sources are listed explicitly.
{
  "targets": [
    {
      "target_name": "smtpuv",
      "sources": [
        "src/addon.c",
        "../../src/auth/auth.c",
        "../../src/auth/base64.c",
        "../../src/auth/cram_md5.c",
        "../../src/auth/login.c",
        "../../src/auth/oauthbearer.c",
        "../../src/auth/plain.c",
        "../../src/auth/scram.c",
        "../../src/auth/secret.c",
        "../../src/auth/select.c",
        "../../src/auth/session.c",
        "../../src/auth/xoauth2.c",
        "../../src/compose/buf.c",
        "../../src/compose/compose.c",
        "../../src/compose/encode.c",
        "../../src/compose/finish.c",
        "../../src/compose/header.c",
        "../../src/compose/helpers.c",
        "../../src/compose/output.c",
        "../../src/conv/conv.c",
        "../../src/conv/message.c",
        "../../src/conv/pump.c",
        "../../src/conv/retry.c",
        "../../src/conv/setup.c",
        "../../src/conv/trace.c",
        "../../src/conv/transaction.c",
        "../../src/protocol/address.c",
        "../../src/protocol/body.c",
        "../../src/protocol/commands.c",
        "../../src/protocol/common.c",
        "../../src/protocol/ehlo.c",
        "../../src/protocol/encoder.c",
        "../../src/protocol/headers.c",
        "../../src/protocol/outbuf.c",
        "../../src/protocol/reply.c",
        "../../src/protocol/session.c",
        "../../src/proxy/socks5.c",
        "../../src/uv/client.c",
        "../../src/uv/conn.c",
        "../../src/uv/headers.c",
        "../../src/uv/options.c",
        "../../src/uv/probe.c",
        "../../src/uv/sslshare.c",
        "../../src/uv/sync.c",
        "../../src/uv/tls.c",
        "../../src/uv/sync_session.c",
        "../../src/uv/threadsafe.c"
      ],
      "include_dirs": ["../../include", "../../src"],
      "defines": ["NAPI_VERSION=8", "_POSIX_C_SOURCE=200809L"],
      "cflags": ["-std=c11", "-Wall", "-Wextra", "-Werror",
                 "-fvisibility=hidden"],
      "cflags!": ["-fno-exceptions"],
      "ldflags": ["-Wl,--version-script=<(module_root_dir)/exports.map",
                  "-Wl,--no-undefined-version"]
    }
  ]
}
