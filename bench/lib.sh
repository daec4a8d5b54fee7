# Shared helpers for the end-to-end benchmarks: free ports, a private Postfix
# instance, waiting for a port, measuring PSS/RSS. Sourced, not run.

bench_free_port() {
  /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

bench_wait_port() {  # host port [seconds]
  local deadline=$((SECONDS + ${3:-10}))
  until /usr/bin/python3 -c "import socket,sys; socket.create_connection(('$1',$2),1).close()" 2>/dev/null; do
    [ $SECONDS -lt $deadline ] || { echo "port $1:$2 never opened" >&2; return 1; }
    sleep 0.1
  done
}

# A private Postfix: its own config and queue under $1, smtpd on 127.0.0.1:$2,
# relaying everything to [127.0.0.1]:$3, or holding it when $3 is "hold"
# (accepted, fsynced into the hold queue, never delivered: pure acceptance).
# With $4 and $5 (a PEM certificate and its key), TLS both ways: smtpd offers
# STARTTLS with that certificate, and the smtp client uses STARTTLS when the
# next hop offers it (security level "may" on both sides), reusing TLS
# connections through tlsproxy and resuming sessions from a cache, which is
# how a bulk relay would be tuned (bench/tls.py). Lines in
# $POSTFIX_EXTRA_MAIN_CF are appended to main.cf before the start (the
# postfix_opendkim row's milter settings).
postfix_setup() {
  local dir=$1 port=$2 relay=$3 tls_cert=${4:-} tls_key=${5:-}
  rm -rf "$dir"
  mkdir -p "$dir/etc" "$dir/queue" "$dir/data"
  cp /etc/postfix/master.cf "$dir/etc/master.cf"
  cp -r /etc/postfix/dynamicmaps.cf* "$dir/etc/" 2>/dev/null || true
  # smtpd on our port, no chroot (the private queue has no chroot files).
  sed -i -E "s/^smtp( +)inet( +)n( +)-( +)y/127.0.0.1:$port inet  n       -       n/" "$dir/etc/master.cf"
  sed -i -E 's/^([a-z]+ +(unix|fifo|pass) +[n-] +[n-] +)y /\1n /' "$dir/etc/master.cf"
  local relay_conf
  if [ "$relay" = hold ]; then
    relay_conf="smtpd_data_restrictions = check_client_access static:HOLD"
  else
    relay_conf="relayhost = [127.0.0.1]:$relay"
  fi
  cat > "$dir/etc/main.cf" <<CONF
compatibility_level = 3.6
queue_directory = $dir/queue
data_directory = $dir/data
mail_owner = postfix
myhostname = postfix.bench.test
mydestination =
mynetworks = 127.0.0.0/8
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
smtpd_recipient_restrictions = permit_mynetworks, reject
smtpd_relay_restrictions = permit_mynetworks, reject
$relay_conf
disable_dns_lookups = yes
smtp_host_lookup = native
smtpd_peername_lookup = no
default_process_limit = 250
in_flow_delay = 0
initial_destination_concurrency = 20
default_destination_concurrency_limit = 100
smtp_connection_cache_on_demand = yes
qmgr_message_active_limit = 100000
maillog_file = $dir/maillog
maillog_file_prefixes = $dir
alias_maps =
alias_database =
local_recipient_maps =
smtpd_banner = \$myhostname ESMTP
CONF
  if [ -n "$tls_cert" ]; then
    # tlsproxy is commented out in Debian's master.cf; the client needs it
    # for smtp_tls_connection_reuse (without it every delivery is a new
    # connection and a new handshake).
    sed -i -E 's/^#(tlsproxy +unix +- +- +)[yn]/\1n/' "$dir/etc/master.cf"
    cat >> "$dir/etc/main.cf" <<CONF
smtpd_tls_cert_file = $tls_cert
smtpd_tls_key_file = $tls_key
smtpd_tls_security_level = may
smtpd_tls_session_cache_database = btree:$dir/data/smtpd_scache
smtp_tls_security_level = may
smtp_tls_connection_reuse = yes
smtp_tls_session_cache_database = btree:$dir/data/smtp_scache
CONF
  fi
  if [ -n "${POSTFIX_EXTRA_MAIN_CF:-}" ]; then
    printf '%s\n' "$POSTFIX_EXTRA_MAIN_CF" >> "$dir/etc/main.cf"
  fi
  chown postfix "$dir/data"
  # `postfix check` creates the queue directories with the right owners.
  postfix -c "$dir/etc" check >/dev/null 2>&1 || true
  postfix -c "$dir/etc" start >/dev/null 2>&1
}

postfix_stop() { postfix -c "$1/etc" stop >/dev/null 2>&1 || true; }

# Sum of PSS (KiB) of every process whose command line mentions $1.
pss_kib_matching() {
  local total=0 pid
  for pid in $(pgrep -f -- "$1"); do
    local v
    v=$(awk '/^Pss:/ {print $2}' "/proc/$pid/smaps_rollup" 2>/dev/null || echo 0)
    total=$((total + ${v:-0}))
  done
  echo "$total"
}
