#!/usr/bin/env bash
# The receive-path benchmark, side by side in one run, on loopback only. The same trap
# stream (trapblast: v2c coldStart traps, Informational) is offered to
#   - recvloop: the bare mio + recvmmsg loop (the floor),
#   - trapgate run (receive workers, decode, classify, policy, latency histograms),
#   - net-snmp's snmptrapd with doNotRetainNotificationLogs (the tuned config),
# each measured for CPU per trap (user + sys from /proc/PID/stat) and loss. Three parts:
#   1. CPU per trap at a fixed rate (RATE), with the ratios;
#   2. the lossless ceiling: COUNT traps offered at each rate of LADDER (0: flat out),
#      trapgate and snmptrapd, zero loss or not;
#   3. trapgate's arrival → decision latency at 10 %, 50 % and 90 % of its ceiling;
#   4. the same stream as SNMPv3 authPriv (SHA, AES-128; `trapblast --v3`) to trapgate
#      and to snmptrapd with the same user: CPU per trap beside v2c, and each one's
#      lossless ceiling (V3=0 skips it).
# Environment: COUNT (500000), RATE (50000), LADDER ("50000 100000 200000 400000 0"),
# ADDRESSES (1: every trap from 127.0.0.1; N: from 127.0.1.1 … N consecutive
# addresses, each a UPS of the site), WORKERS (trapgate's --workers; default per core),
# V3 (1).
set -euo pipefail
cd "$(dirname "$0")/.."
COUNT=${COUNT:-500000}
RATE=${RATE:-50000}
LADDER=${LADDER:-"50000 100000 200000 400000 0"}
ADDRESSES=${ADDRESSES:-1}
WORKERS=${WORKERS:-0}
V3=${V3:-1}
BLAST=()
cargo build --release -q -p trapgate-tools --bin trapblast --bin recvloop
cargo build --release -q --bin trapgate
BIN=target/release
TCK=$(getconf CLK_TCK)
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"; pkill -P $$ 2>/dev/null || true' EXIT
sed -e 's/192.168.61.250/127.0.0.1/' -e 's/192.168.61\./127.0.0./' src/engine/config/default-site.toml > "$WORK/site.toml"
FROM=(--sources 4)
if [ "$ADDRESSES" -gt 1 ]; then
  FROM=(--from 127.0.1.1 --addresses "$ADDRESSES" --sources 1)
  for i in $(seq 1 "$ADDRESSES"); do
    printf '\n[[ups]]\nname = "ups-%d"\naddress = "127.0.%d.%d"\ncommunity = "public"\nvendor = "apc"\noutlet_off_delay = "3m"\n' \
      "$i" $((1 + (i - 1) / 254)) $((1 + (i - 1) % 254)) >> "$WORK/site.toml"
  done
fi
printf 'disableAuthorization yes\ndoNotRetainNotificationLogs yes\n' > "$WORK/snmptrapd.conf"
# The v3 site: one user for every UPS (trapblast --v3's), and snmptrapd's createUser for
# trapblast's engine.
{
  printf '[[usm_user]]\nname = "upsv3user"\nauth_protocol = "SHA"\nauth_passphrase = "authpass123"\npriv_protocol = "AES"\npriv_passphrase = "privpass123"\n\n'
  awk '{ print } /^\[\[ups\]\]$/ { print "version = \"3\""; print "user = \"upsv3user\"" }' "$WORK/site.toml"
} > "$WORK/site-v3.toml"
cp "$WORK/snmptrapd.conf" "$WORK/snmptrapd-v3.conf"
printf 'createUser -e 0x8000137005626c6173742d3031 upsv3user SHA authpass123 AES privpass123\n' >> "$WORK/snmptrapd-v3.conf"
SITE=$WORK/site.toml
TRAPD_CONF=$WORK/snmptrapd.conf

cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# measure NAME PORT RATE COMMAND...: runs COMMAND, offers COUNT traps at RATE, prints
# one line and sets SENT, LOST, OFFERED (the rate trapblast reached) and US (CPU per trap).
measure() {
  local name=$1 port=$2 rate=$3; shift 3
  "$@" > "$WORK/$name.out" 2> "$WORK/$name.err" &
  local pid=$!
  sleep 1
  local c0; c0=$(cpu "$pid")
  local said
  said=$("$BIN/trapblast" --to "127.0.0.1:$port" --count "$COUNT" --rate "$rate" "${FROM[@]}" ${BLAST[@]+"${BLAST[@]}"})
  SENT=$(awk '{print $2}' <<< "$said")
  OFFERED=$(sed -E 's/.*: ([0-9]+)\/s.*/\1/' <<< "$said")
  sleep 1
  local c1; c1=$(cpu "$pid")
  kill -TERM "$pid"; wait "$pid" 2>/dev/null || true
  local received
  case $name in
    recvloop) received=$(awk '/^received/ {print $2}' "$WORK/$name.out") ;;
    trapgate) received=$(awk '/^-- / {print $2}' "$WORK/$name.err") ;;
    snmptrapd) received=$(grep -c '^TRAP$' "$WORK/snmptrapd.log" || true); rm -f "$WORK/snmptrapd.log" ;;
  esac
  LOST=$((SENT - ${received:-0}))
  US=$(awk -v t="$((c1 - c0))" -v hz="$TCK" -v n="${received:-0}" 'BEGIN { if (n > 0) printf "%.2f", t / hz * 1e6 / n; else print "n/a" }')
  printf '%-10s offered %7s/s (asked %7s)  sent %8s  lost %7s  CPU %6s us/trap\n' \
    "$name" "$OFFERED" "$rate" "$SENT" "$LOST" "$US"
}

run_recvloop() { measure recvloop 14162 "$1" "$BIN/recvloop" 127.0.0.1:14162; }
run_trapgate() {
  measure trapgate 14163 "$1" "$BIN/trapgate" run --config "$SITE" \
    --listen 127.0.0.1:14163 --agent 127.0.0.1:0 --workers "$WORKERS"
  grep -E 'listening|latency Informational' "$WORK/trapgate.err" | sed 's/^/   /' || true
}
run_snmptrapd() {
  measure snmptrapd 14164 "$1" snmptrapd -f -C -c "$TRAPD_CONF" -Lf "$WORK/snmptrapd.log" -F 'TRAP\n' udp:127.0.0.1:14164
}
have_snmptrapd() { command -v snmptrapd > /dev/null; }

echo "machine: $(nproc) cores; $COUNT traps per run from $ADDRESSES source address(es)"
echo
echo "== 1. CPU per trap at $RATE/s"
run_recvloop "$RATE"; bare=$US
run_trapgate "$RATE"; gate=$US
if have_snmptrapd; then run_snmptrapd "$RATE"; tuned=$US; else tuned=n/a; fi
awk -v b="$bare" -v g="$gate" -v s="$tuned" 'BEGIN {
  printf "trapgate / bare loop: %.2fx", g / b
  if (s != "n/a") printf "; snmptrapd (tuned) / trapgate: %.1fx", s / g
  print "" }'

echo
echo "== 2. Lossless ceiling ($COUNT traps per rate; 0 = flat out)"
ceiling=0; snmp_ceiling=0; snmp_done=$(have_snmptrapd && echo no || echo yes)
for rate in $LADDER; do
  run_trapgate "$rate"
  if [ "$LOST" -eq 0 ] && [ "$OFFERED" -gt "$ceiling" ]; then ceiling=$OFFERED; fi
  if [ "$snmp_done" = no ]; then
    run_snmptrapd "$rate"
    if [ "$LOST" -eq 0 ]; then snmp_ceiling=$OFFERED; else snmp_done=yes; fi
  fi
done
echo "lossless up to: trapgate ${ceiling}/s; snmptrapd (tuned) ${snmp_ceiling}/s (highest rate offered with zero loss)"

echo
echo "== 3. trapgate's latency at 10 %, 50 %, 90 % of ${ceiling}/s"
for pct in 10 50 90; do
  rate=$((ceiling * pct / 100))
  [ "$rate" -gt 0 ] || continue
  echo "-- $pct %"
  run_trapgate "$rate"
done

[ "$V3" = 1 ] || exit 0
echo
echo "== 4. SNMPv3 authPriv (SHA, AES-128), the same stream: CPU per trap at $RATE/s"
SITE=$WORK/site-v3.toml; TRAPD_CONF=$WORK/snmptrapd-v3.conf; BLAST=(--v3)
run_trapgate "$RATE"; gate3=$US
if have_snmptrapd; then run_snmptrapd "$RATE"; tuned3=$US; else tuned3=n/a; fi
awk -v g="$gate" -v g3="$gate3" -v s="$tuned3" 'BEGIN {
  printf "trapgate v3 − v2c: %+.2f us/trap", g3 - g
  if (s != "n/a") printf "; snmptrapd v3 / trapgate v3: %.1fx", s / g3
  print "" }'
echo "-- lossless ceiling, v3 ($COUNT traps per rate; 0 = flat out)"
ceiling3=0; snmp_ceiling3=0; snmp_done=$(have_snmptrapd && echo no || echo yes)
for rate in $LADDER; do
  run_trapgate "$rate"
  if [ "$LOST" -eq 0 ] && [ "$OFFERED" -gt "$ceiling3" ]; then ceiling3=$OFFERED; fi
  if [ "$snmp_done" = no ]; then
    run_snmptrapd "$rate"
    if [ "$LOST" -eq 0 ]; then snmp_ceiling3=$OFFERED; else snmp_done=yes; fi
  fi
done
echo "v3 lossless up to: trapgate ${ceiling3}/s; snmptrapd (tuned) ${snmp_ceiling3}/s"
