#!/bin/bash
# SPDX-License-Identifier: MIT
# Private Exim 4.96 instance for integration tests, WITHOUT installing Exim as the system
# MTA (Debian's exim4-daemon-light conflicts with postfix via mail-transport-agent).
# Installed by scripts/install-deps.sh (root), which does:
#   apt-get download exim4-daemon-light && dpkg -x exim4-daemon-light_*.deb /opt/exim-x
#   apt-get install -y libgnutls-dane0 libidn12          # the only runtime libs missing here
#   groupadd --system Debian-exim; useradd --system -g Debian-exim -d /nonexistent -s /usr/sbin/nologin Debian-exim
# usage: exim_instance.sh start DIR [PORT=12529] [TLSPORT=12469]
#        exim_instance.sh stop DIR
# Capture: DIR/mail/capture/new/* (Maildir, one file per recipient; prepended
#   Return-path:, Envelope-to:, Received:), log: DIR/log/mainlog, pid: DIR/exim.pid
set -eu
EXIM=${EXIM:-/opt/exim-x/usr/sbin/exim4}
CMD=${1:?start|stop}; D=$(realpath -m "${2:?DIR}"); PORT=${3:-12529}; TLSPORT=${4:-12469}
HERE=$(cd "$(dirname "$0")" && pwd)
if [ "$CMD" = stop ]; then
  [ -f "$D/exim.pid" ] && kill "$(cat "$D/exim.pid")" 2>/dev/null || true
  for _ in $(seq 50); do [ -f "$D/exim.pid" ] && kill -0 "$(cat "$D/exim.pid")" 2>/dev/null || break; sleep 0.1; done
  exit 0
fi
mkdir -p "$D"/{spool,log,mail}; chmod 755 "$D"
"$HERE/gen_certs.sh" "$D/pki" >/dev/null
chown Debian-exim "$D/spool" "$D/log" "$D/pki/server.key"   # daemon reads key after dropping root
# With -C, Exim drops root for deliveries ("exim user lost privilege for using -C option"),
# so the transport must run as the exim user itself and own the Maildir.
chown Debian-exim:Debian-exim "$D/mail"
cat > "$D/exim.conf" <<EOF
primary_hostname = localhost
exim_path = $EXIM
spool_directory = $D/spool
log_file_path = $D/log/%slog
pid_file_path = $D/exim.pid
local_interfaces = 127.0.0.1
daemon_smtp_ports = $PORT : $TLSPORT
tls_on_connect_ports = $TLSPORT
keep_environment =
host_lookup =
rfc1413_hosts =
never_users = root
tls_certificate = $D/pki/server-chain.pem
tls_privatekey = $D/pki/server.key
tls_advertise_hosts = *
message_size_limit = 10M
smtputf8_advertise_hosts = *
chunking_advertise_hosts = *
pipelining_advertise_hosts = *
accept_8bitmime = true
smtp_accept_max = 100
queue_only = false
log_selector = +smtp_protocol_error +smtp_syntax_error +received_recipients +tls_cipher +smtp_confirmation
acl_smtp_rcpt = acl_rcpt
acl_smtp_data = acl_data

begin acl
acl_rcpt:
  accept
acl_data:
  accept

begin routers
capture:
  driver = accept
  transport = maildir_capture

begin transports
maildir_capture:
  driver = appendfile
  directory = $D/mail/capture
  maildir_format
  create_directory
  user = Debian-exim
  group = Debian-exim
  mode = 0644
  return_path_add
  envelope_to_add
  delivery_date_add = false

begin authenticators
plain:
  driver = plaintext
  public_name = PLAIN
  server_prompts = :
  server_condition = \${if and{{eq{\$auth2}{testuser@example.com}}{eq{\$auth3}{testpass}}}}
  server_set_id = \$auth2
  server_advertise_condition = \${if def:tls_in_cipher}
login:
  driver = plaintext
  public_name = LOGIN
  server_prompts = Username:: : Password::
  server_condition = \${if and{{eq{\$auth1}{testuser@example.com}}{eq{\$auth2}{testpass}}}}
  server_set_id = \$auth1
  server_advertise_condition = \${if def:tls_in_cipher}
cram:
  driver = cram_md5
  public_name = CRAM-MD5
  server_secret = \${if eq{\$auth1}{testuser@example.com}{testpass}fail}
  server_set_id = \$auth1
  server_advertise_condition = \${if def:tls_in_cipher}
# XOAUTH2 via the generic plaintext driver: \$auth1 = whole decoded initial response
xoauth2:
  driver = plaintext
  public_name = XOAUTH2
  server_prompts = :
  server_condition = \${if match{\$auth1}{\N^user=testuser@example\.com\x01auth=Bearer test-oauth-token\x01\x01\$\N}}
  server_set_id = testuser@example.com
  server_advertise_condition = \${if def:tls_in_cipher}
EOF
# -bdf: daemon in foreground (no -qNN queue runner: deliveries happen immediately)
"$EXIM" -C "$D/exim.conf" -bdf >"$D/log/stdout" 2>&1 &
echo $! > "$D/exim.launcher.pid"
"$HERE/wait_port.sh" "$PORT" 20
"$HERE/wait_tls_port.sh" "$TLSPORT" 20
echo "READY exim $PORT $TLSPORT pid=$(cat "$D/exim.pid")"
