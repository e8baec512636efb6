# Shared by the receive-path benchmarks (tools/bench-receive.sh, tools/bench-forward.sh),
# sourced from the repository's top: the settings from the environment, the release
# binaries, the loopback site, and `measure`, which offers a trap stream to a receiver
# and prints its CPU per trap and its loss.
COUNT=${COUNT:-500000}
RATE=${RATE:-50000}
LADDER=${LADDER:-"50000 100000 200000 400000 0"}
ADDRESSES=${ADDRESSES:-1}
WORKERS=${WORKERS:-0}
V3=${V3:-1}
ROUNDS=${ROUNDS:-3}
BLAST=()
cargo build --release -q -p trapgate-tools --bin trapblast --bin recvloop
cargo build --release -q --bin trapgate
BIN=${CARGO_TARGET_DIR:-target}/release
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

# cpu_ns PID: the CPU time of all the process's threads, in nanoseconds (each thread's
# time on a core from /proc/PID/task/*/schedstat: exact, not the 10 ms ticks of
# /proc/PID/stat). Its threads live as long as it does, so none is missed.
cpu_ns() { cat /proc/"$1"/task/*/schedstat 2> /dev/null | awk '{ t += $1 } END { printf "%d", t }'; }
sys_ticks() { awk '{print $15}' "/proc/$1/stat"; }

# measure NAME PORT RATE COMMAND...: runs COMMAND, offers COUNT traps at RATE, prints
# one line and sets SENT, LOST, OFFERED (the rate trapblast reached), US (CPU per trap, from each
# thread's exact time on a core), US_SYS (its kernel part, in 10 ms ticks), P50 / P99 / P999 (kernel receive → read for recvloop,
# arrival → decided or counted for trapgate, microseconds; n/a for snmptrapd) and BLAST_SYS (the sender's kernel CPU per trap sent: what
# sending one datagram over loopback costs, its delivery included).
measure() {
  local name=$1 port=$2 rate=$3; shift 3
  "$@" > "$WORK/$name.out" 2> "$WORK/$name.err" &
  local pid=$!
  sleep 1
  local c0; c0=$(cpu_ns "$pid")
  local s0; s0=$(sys_ticks "$pid")
  local said
  said=$( { TIMEFORMAT='%S'; time "$BIN/trapblast" --to "127.0.0.1:$port" --count "$COUNT" --rate "$rate" "${FROM[@]}" ${BLAST[@]+"${BLAST[@]}"}; } 2> "$WORK/blast.time")
  SENT=$(awk '{print $2}' <<< "$said")
  OFFERED=$(sed -E 's/.*: ([0-9]+)\/s.*/\1/' <<< "$said")
  sleep 1
  local c1; c1=$(cpu_ns "$pid")
  local s1; s1=$(sys_ticks "$pid")
  kill -TERM "$pid"; wait "$pid" 2>/dev/null || true
  local received
  case $name in
    recvloop) received=$(awk '/^received/ {print $2}' "$WORK/$name.out") ;;
    trapgate*) received=$(awk '/^-- / {print $2}' "$WORK/$name.err") ;;
    snmptrapd) received=$(grep -c '^TRAP$' "$WORK/snmptrapd.log" || true); rm -f "$WORK/snmptrapd.log" ;;
  esac
  LOST=$((SENT - ${received:-0}))
  local lat=/dev/null pattern='^latency'
  case $name in
    recvloop) lat=$WORK/$name.out ;;
    trapgate*) lat=$WORK/$name.err; pattern='latency Informational counted' ;;
  esac
  read -r P50 P99 P999 < <(awk -v pattern="$pattern" '$0 ~ pattern && !done {
      for (i = 1; i < NF; i++) {
        if ($i == "p50") a = $(i + 1); if ($i == "p99") b = $(i + 1); if ($i == "p99.9") c = $(i + 1)
      }
      if (a != "") done = 1 }
    END { if (done) print a, b, c; else print "n/a n/a n/a" }' "$lat")
  US=$(awk -v t="$((c1 - c0))" -v n="${received:-0}" 'BEGIN { if (n > 0) printf "%.3f", t / 1e3 / n; else print "n/a" }')
  US_SYS=$(awk -v t="$((s1 - s0))" -v hz="$TCK" -v n="${received:-0}" 'BEGIN { if (n > 0) printf "%.2f", t / hz * 1e6 / n; else print "n/a" }')
  BLAST_SYS=$(awk -v t="$(tail -1 "$WORK/blast.time")" -v n="$SENT" 'BEGIN { if (n > 0) printf "%.2f", t * 1e6 / n; else print "n/a" }')
  printf '%-10s offered %7s/s (asked %7s)  sent %8s  lost %7s  CPU %6s us/trap  latency p50 %s p99 %s p99.9 %s us\n' \
    "$name" "$OFFERED" "$rate" "$SENT" "$LOST" "$US" "$P50" "$P99" "$P999"
}

