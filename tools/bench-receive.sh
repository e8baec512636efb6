#!/usr/bin/env bash
# The receive-path benchmark, side by side in one run, on loopback only: the same trap
# stream (trapblast, a v2c coldStart from 127.0.0.1) offered at a fixed rate to
#   - recvloop: the bare mio + recvmmsg loop (the floor),
#   - trapgate run (decode, classify, policy, latency histograms),
#   - net-snmp's snmptrapd with doNotRetainNotificationLogs (the tuned config),
# each measured for CPU per trap (user + sys from /proc/PID/stat) and loss.
# Usage: tools/bench-receive.sh [count] [rate...]   (defaults: 500000 traps at 50000/s)
set -euo pipefail
cd "$(dirname "$0")/.."
COUNT=${1:-500000}
shift || true
RATES=("${@:-50000}")
cargo build --release -q -p trapgate-tools --bin trapblast --bin recvloop
cargo build --release -q --bin trapgate
BIN=target/release
TCK=$(getconf CLK_TCK)
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"; pkill -P $$ 2>/dev/null || true' EXIT
sed 's/192.168.61.250/127.0.0.1/' src/config/default-site.toml > "$WORK/site.toml"
printf 'disableAuthorization yes\ndoNotRetainNotificationLogs yes\n' > "$WORK/snmptrapd.conf"

cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# measure NAME PORT RATE COMMAND...: prints "NAME rate sent received cpu_us_per_trap"
measure() {
  local name=$1 port=$2 rate=$3; shift 3
  "$@" > "$WORK/$name.out" 2> "$WORK/$name.err" &
  local pid=$!
  sleep 1
  local c0; c0=$(cpu "$pid")
  local sent
  sent=$("$BIN/trapblast" --to "127.0.0.1:$port" --count "$COUNT" --rate "$rate" --sources 4 | awk '{print $2}')
  sleep 1
  local c1; c1=$(cpu "$pid")
  kill -TERM "$pid"; wait "$pid" 2>/dev/null || true
  local received
  case $name in
    recvloop) received=$(awk '/^received/ {print $2}' "$WORK/$name.out") ;;
    trapgate) received=$(awk '/^-- / {print $2}' "$WORK/$name.err") ;;
    snmptrapd) received=$(grep -c '^TRAP$' "$WORK/snmptrapd.log" || true); rm -f "$WORK/snmptrapd.log" ;;
  esac
  local us
  us=$(awk -v t="$((c1 - c0))" -v hz="$TCK" -v n="${received:-0}" 'BEGIN { if (n > 0) printf "%.2f", t / hz * 1e6 / n; else print "n/a" }')
  printf '%-10s %8s/s  sent %8s  received %8s  lost %7s  CPU %6s us/trap\n' \
    "$name" "$rate" "$sent" "$received" "$((sent - received))" "$us"
  if [ "$name" = trapgate ]; then grep -E 'latency Informational' "$WORK/$name.err" || true; fi
}

echo "machine: $(nproc) cores; $COUNT traps per run"
for rate in "${RATES[@]}"; do
  measure recvloop 14162 "$rate" "$BIN/recvloop" 127.0.0.1:14162
  measure trapgate 14163 "$rate" "$BIN/trapgate" run --config "$WORK/site.toml" --listen 127.0.0.1:14163 --agent 127.0.0.1:0
  if command -v snmptrapd > /dev/null; then
    measure snmptrapd 14164 "$rate" snmptrapd -f -C -c "$WORK/snmptrapd.conf" -Lf "$WORK/snmptrapd.log" -F 'TRAP\n' udp:127.0.0.1:14164
  fi
done
