#!/bin/sh
# SPDX-License-Identifier: MIT
# A private, throwaway Dovecot 2.3 LMTP server (Debian dovecot-lmtpd) for the LMTP
# integration tests: it listens on a Unix socket AND on a loopback TCP port and
# delivers into Maildirs under DIR. Everything lives in DIR (own base_dir, state_dir,
# log; no system configuration is read, nothing of the system instance is touched).
# Needs root (Dovecot starts as root and delivers as the unprivileged user nobody).
#
# usage: dovecot_lmtp.sh start DIR [PORT=12424]
#        dovecot_lmtp.sh stop  DIR
#
# Users (userdb passwd-file DIR/users; anything else gets 550 5.1.1 at RCPT):
#   alice@example.org   quota 1 GiB: delivered
#   bob@example.org     quota 1 GiB: delivered
#   full@example.org    quota of 1 byte (quota plugin, maildir backend): accepted at
#                       RCPT, refused after the dot with
#                       "552 5.2.2 <full@example.org> Quota exceeded (mailbox for user is full)"
# Afterwards:
#   DIR/lmtp.sock                  the LMTP Unix socket (mode 0666)
#   DIR/mail/<local>/Maildir/new/  one file per delivered message, CRLF line endings
#                                  kept (mail_save_crlf); Dovecot prepends
#                                  Return-Path, Delivered-To and Received headers
#   DIR/dovecot.log                Dovecot's log ("saved mail to INBOX", quota refusals)
# Readiness: the script returns once the Unix socket exists and the TCP port accepts.
# A watchdog stops the instance after LIFETIME seconds (default 600) if nobody did.
set -eu
CMD=${1:?start|stop}; D=$(realpath -m "${2:?DIR}")
PORT=${3:-12424}
LIFETIME=${LIFETIME:-600}
HERE=$(cd "$(dirname "$0")" && pwd)

# alive PID: exists and is not a zombie waiting to be reaped
alive() { [ -r "/proc/$1/stat" ] && [ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" != Z ]; }

stop() {
  if [ -f "$D/watchdog.pid" ]; then
    kill "$(cat "$D/watchdog.pid")" 2>/dev/null || true
    rm -f "$D/watchdog.pid"
  fi
  if [ -f "$D/dovecot.pid" ]; then
    dpid=$(cat "$D/dovecot.pid")
    kill "$dpid" 2>/dev/null || true
    for _ in $(seq 100); do alive "$dpid" || break; sleep 0.05; done
    rm -f "$D/dovecot.pid"
  fi
}
if [ "$CMD" = stop ]; then stop; exit 0; fi
[ "$CMD" = start ] || { echo "usage: $0 start|stop DIR [PORT]" >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "dovecot_lmtp.sh: needs root" >&2; exit 1; }
command -v dovecot >/dev/null || { echo "dovecot not installed (dovecot-lmtpd)" >&2; exit 1; }
[ -x /usr/lib/dovecot/lmtp ] || { echo "dovecot-lmtpd not installed" >&2; exit 1; }

stop
mkdir -p "$D/run" "$D/state" "$D/mail"
chmod 755 "$D"                       # the delivering user must traverse it
chown nobody:nogroup "$D/mail"
uid=$(id -u nobody); gid=$(getent group nogroup | cut -d: -f3)
# passwd-file: user:password:uid:gid:gecos:home:shell:extra fields
{
  printf 'alice@example.org:{PLAIN}x:%s:%s::%s/mail/alice::\n' "$uid" "$gid" "$D"
  printf 'bob@example.org:{PLAIN}x:%s:%s::%s/mail/bob::\n' "$uid" "$gid" "$D"
  printf 'full@example.org:{PLAIN}x:%s:%s::%s/mail/full::userdb_quota_rule=*:storage=1B\n' \
    "$uid" "$gid" "$D"
} > "$D/users"

cat > "$D/dovecot.conf" <<EOF
protocols = lmtp
listen = 127.0.0.1
base_dir = $D/run
state_dir = $D/state
log_path = $D/dovecot.log
info_log_path = $D/dovecot.log
ssl = no
postmaster_address = postmaster@example.org
hostname = lmtp.example.org
mail_location = maildir:~/Maildir
mail_save_crlf = yes
mail_plugins = quota
first_valid_uid = 1
lmtp_rcpt_check_quota = no
plugin {
  quota = maildir:User quota
  quota_rule = *:storage=1G
}
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%u $D/users
}
userdb {
  driver = passwd-file
  args = username_format=%u $D/users
}
service lmtp {
  unix_listener $D/lmtp.sock {
    mode = 0666
  }
  inet_listener lmtp {
    address = 127.0.0.1
    port = $PORT
  }
}
service anvil {
  chroot =
}
service stats {
  unix_listener stats-reader {
    mode = 0600
  }
  unix_listener stats-writer {
    mode = 0666
  }
}
EOF

dovecot -F -c "$D/dovecot.conf" >>"$D/stdout.log" 2>&1 &
echo $! > "$D/dovecot.pid"
for _ in $(seq 200); do [ -S "$D/lmtp.sock" ] && break; sleep 0.05; done
[ -S "$D/lmtp.sock" ] || { echo "dovecot: no LMTP socket" >&2; cat "$D"/*.log >&2; stop; exit 1; }
"$HERE/wait_port.sh" "$PORT" 10 127.0.0.1 >/dev/null 2>&1 ||
  { echo "dovecot: LMTP port $PORT not listening" >&2; cat "$D"/*.log >&2; stop; exit 1; }

# watchdog: never outlive a crashed test run
( sleep "$LIFETIME"; kill "$(cat "$D/dovecot.pid" 2>/dev/null)" 2>/dev/null ) >/dev/null 2>&1 &
echo $! > "$D/watchdog.pid"
