#!/bin/bash
# SPDX-License-Identifier: MIT
# A private, throwaway Postfix 3.7 instance with Dovecot as its SASL server, for the
# integration tests that need a real MTA (CHUNKING/BDAT, SMTPUTF8, DSN, STARTTLS, SMTPS,
# AUTH). Everything lives in DIR: it never reads or changes /etc/postfix/main.cf, the
# system queue or port 25, and it never starts or stops the system instance.
# Needs root (the master starts as root, its children run as "postfix") and the packages
# postfix and dovecot-core.
#
# usage: postfix_instance.sh start DIR [PORT=12528] [TLSPORT=12468] [SASL=1]
#        postfix_instance.sh stop  DIR
# start prints "READY postfix PORT TLSPORT master_pid=N" when both listeners answer.
#   PORT     127.0.0.1, plaintext with STARTTLS; AUTH only after TLS
#   TLSPORT  127.0.0.1, TLS from the first byte (smtpd_tls_wrappermode)
#   AUTH PLAIN LOGIN CRAM-MD5 SCRAM-SHA-1 SCRAM-SHA-256 XOAUTH2 OAUTHBEARER (Dovecot) for testuser@example.com / testpass,
#   bearer token test-oauth-token.
# Afterwards:
#   DIR/mail/capture/new/*   one Maildir file per (message, recipient), LF line endings,
#                            starting with Return-Path, X-Original-To, Delivered-To and a
#                            Received block, then the message as sent (dot-unstuffed);
#                            maildir_extract.py recovers the CRLF bytes and the envelope
#   DIR/maillog              Postfix's log (from=, to=, sasl_method=, sasl_username=)
#   DIR/pki/ca.crt           the CA to trust (server certificate for localhost/127.0.0.1)
# A watchdog stops the instance after LIFETIME seconds (default 600) if nobody did.
set -eu
CMD=${1:?start|stop}; D=$(realpath -m "${2:?DIR}")
PORT=${3:-12528}; TLSPORT=${4:-12468}; SASL=${5:-1}
HERE=$(cd "$(dirname "$0")" && pwd)

# alive PID: exists and is not a zombie waiting to be reaped
alive() { [ -r "/proc/$1/stat" ] && [ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" != Z ]; }

stop() {
  if [ -f "$D/watchdog.pid" ]; then
    kill "$(cat "$D/watchdog.pid")" 2>/dev/null || true
    rm -f "$D/watchdog.pid"
  fi
  [ -f "$D/etc/main.cf" ] && postfix -c "$D/etc" stop >/dev/null 2>&1 || true
  if [ -f "$D/dovecot.pid" ]; then
    dpid=$(cat "$D/dovecot.pid")
    kill "$dpid" 2>/dev/null || true
    for _ in $(seq 50); do alive "$dpid" || break; sleep 0.05; done
    rm -f "$D/dovecot.pid"
  fi
  # wait (bounded) for master to exit (a zombie waiting to be reaped counts as gone)
  for _ in $(seq 50); do
    [ -f "$D/spool/pid/master.pid" ] && alive "$(tr -d ' ' < "$D/spool/pid/master.pid")" || break
    sleep 0.1
  done
}
if [ "$CMD" = stop ]; then stop; exit 0; fi

mkdir -p "$D"/{etc,spool,data,mail,dovecot/run,dovecot/state}
chmod 755 "$D"            # user postfix must be able to traverse into it (mktemp -d gives 0700!)
"$HERE/gen_certs.sh" "$D/pki" >/dev/null
chown root:root "$D/pki/server.key"; chmod 600 "$D/pki/server.key"
chown nobody:nogroup "$D/mail"
mkdir -p "$D/spool/private"
chown postfix:root "$D/data" "$D/spool/private"; chmod 700 "$D/spool/private"
trap 'echo "start failed; stopping" >&2; stop' ERR

cat > "$D/etc/main.cf" <<EOF
compatibility_level = 3.6
queue_directory = $D/spool
data_directory = $D/data
mail_owner = postfix
setgid_group = postdrop
maillog_file = $D/maillog
maillog_file_prefixes = $D
myhostname = localhost
mydomain = localdomain
myorigin = \$myhostname
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.1/32
biff = no
alias_maps =
alias_database =
local_recipient_maps =
# --- do not alter what the client sent (no Date/Message-ID/From insertion, no canonicalisation)
local_header_rewrite_clients =
remote_header_rewrite_domain =
always_add_missing_headers = no
disable_mime_output_conversion = yes
# --- ESMTP features under test
smtputf8_enable = yes
message_size_limit = 10485760
smtpd_discard_ehlo_keywords =
# --- every recipient in every domain -> one catch-all Maildir (one file per recipient)
virtual_mailbox_domains = regexp:$D/etc/all
virtual_mailbox_maps = regexp:$D/etc/mbox
virtual_mailbox_base = $D/mail
virtual_uid_maps = static:65534
virtual_gid_maps = static:65534
virtual_mailbox_limit = 0
smtpd_relay_restrictions = permit_sasl_authenticated, reject_unauth_destination
smtpd_recipient_restrictions =
# --- TLS (STARTTLS offered, AUTH only after TLS)
smtpd_tls_chain_files = $D/pki/server.key, $D/pki/server-chain.pem
smtpd_tls_security_level = may
smtpd_tls_auth_only = yes
smtpd_tls_loglevel = 1
smtpd_tls_session_cache_database =
# --- SASL through Dovecot's auth socket (relative to queue_directory)
smtpd_sasl_auth_enable = $( [ "$SASL" = 1 ] && echo yes || echo no )
smtpd_sasl_type = dovecot
smtpd_sasl_path = private/auth
smtpd_sasl_security_options = noanonymous
smtpd_sasl_tls_security_options = noanonymous
broken_sasl_auth_clients = no
# --- fast, quiet test behaviour
smtpd_error_sleep_time = 0
smtpd_soft_error_limit = 100
smtpd_hard_error_limit = 1000
queue_run_delay = 10s
minimal_backoff_time = 10s
EOF
printf '/./ OK\n' > "$D/etc/all"
printf '/./ capture/\n' > "$D/etc/mbox"

cat > "$D/etc/master.cf" <<EOF
127.0.0.1:$PORT inet n - n - - smtpd
127.0.0.1:$TLSPORT inet n - n - - smtpd -o smtpd_tls_wrappermode=yes -o smtpd_tls_security_level=encrypt
cleanup   unix  n - n - 0 cleanup
qmgr      unix  n - n 300 1 qmgr
tlsmgr    unix  - - n 1000? 1 tlsmgr
rewrite   unix  - - n - - trivial-rewrite
bounce    unix  - - n - 0 bounce
defer     unix  - - n - 0 bounce
trace     unix  - - n - 0 bounce
verify    unix  - - n - 1 verify
flush     unix  n - n 1000? 0 flush
proxymap  unix  - - n - - proxymap
smtp      unix  - - n - - smtp
relay     unix  - - n - - smtp
showq     unix  n - n - - showq
error     unix  - - n - - error
retry     unix  - - n - - error
discard   unix  - - n - - discard
local     unix  - n n - - local
virtual   unix  - n n - - virtual
anvil     unix  - - n - 1 anvil
scache    unix  - - n - 1 scache
postlog   unix-dgram n - n - 1 postlogd
EOF

if [ "$SASL" = 1 ]; then
  # Dovecot used ONLY as SASL server (no IMAP/POP listeners), foreground, private config.
  printf 'testuser@example.com:{PLAIN}testpass\n' > "$D/dovecot/users"
  # XOAUTH2/OAUTHBEARER in Dovecot 2.3 hand the bearer token to the passdb as the password,
  # so a second passwd-file entry with the token as password makes XOAUTH2 work offline.
  printf 'testuser@example.com:{PLAIN}test-oauth-token\n' > "$D/dovecot/tokens"
  cat > "$D/dovecot/dovecot.conf" <<EOF
protocols =
base_dir = $D/dovecot/run
state_dir = $D/dovecot/state
log_path = $D/dovecot/dovecot.log
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login cram-md5 scram-sha-1 scram-sha-256 xoauth2 oauthbearer
auth_verbose = yes
auth_failure_delay = 0
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%u $D/dovecot/users
  mechanisms = plain login cram-md5 scram-sha-1 scram-sha-256
}
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%u $D/dovecot/tokens
  mechanisms = xoauth2 oauthbearer
}
userdb {
  driver = static
  args = uid=nobody gid=nogroup home=/nonexistent
}
service auth {
  unix_listener $D/spool/private/auth {
    mode = 0660
    user = postfix
    group = postfix
  }
}
service anvil {
  chroot =
}
EOF
  dovecot -F -c "$D/dovecot/dovecot.conf" >>"$D/dovecot/stdout.log" 2>&1 &
  echo $! > "$D/dovecot.pid"
  for _ in $(seq 100); do [ -S "$D/spool/private/auth" ] && break; sleep 0.05; done
  [ -S "$D/spool/private/auth" ] || { echo "dovecot auth socket missing" >&2; cat "$D/dovecot/"*.log >&2; exit 1; }
fi

# NB: postfix(1) prints errors on stderr only when stderr is a TTY, hence script(1);
# otherwise see $D/maillog. ("postfix start" runs its own configuration checks; a separate
# "postfix check" costs 1.6 s.)
if ! out=$(script -qec "postfix -c $D/etc start" /dev/null); then
  echo "postfix start failed: $out" >&2; tail "$D/maillog" >&2; exit 1
fi
"$HERE/wait_port.sh" "$PORT" 20
"$HERE/wait_tls_port.sh" "$TLSPORT" 20
trap - ERR
# Safety net: stop the instance after LIFETIME seconds (killed by "stop").
setsid bash -c 'trap "kill \$s 2>/dev/null; exit 0" TERM; sleep "$1" & s=$!; wait $s
                rm -f "$3/watchdog.pid"; exec "$2" stop "$3"' _ "${LIFETIME:-600}" "$HERE/postfix_instance.sh" "$D" \
  </dev/null >/dev/null 2>&1 &
echo $! > "$D/watchdog.pid"
echo "READY postfix $PORT $TLSPORT master_pid=$(tr -d ' ' < "$D/spool/pid/master.pid")"
