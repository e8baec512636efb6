#!/usr/bin/env bash
# The cost of forwarding (`[[forward]]`), side by side in one run, on loopback only:
# the same trap stream (trapblast: v2c coldStart traps from the site's UPS) offered to
# `trapgate run` forwarding to no target, to one, and to three (each a recvloop sink on
# 127.0.0.2x that counts what it receives):
#   1. CPU per trap (the whole trapgate process: receive workers, decision thread,
#      forward thread) at RATE, each run RUNS times in turn; what forwarding adds per
#      trap, beside what receiving costs;
#   2. the lossless ceiling of each: COUNT traps offered at each rate of LADDER
#      (0: flat out), the highest with zero loss at the gateway and, forwarding, every
#      trap sent to every target (none failed or dropped; what the sinks, on the same
#      two cores, did not read in time is shown beside it);
#   3. the same ceilings with sinks that read nothing (`recvloop --discard`: the kernel
#      drops what arrives at a full buffer, and counts it): targets that cost this
#      machine nothing, as an NMS on a host of its own, every arrival still counted.
# Environment as tools/bench-receive.sh (COUNT, RATE, LADDER, WORKERS), and RUNS (3).
set -euo pipefail
cd "$(dirname "$0")/.."
V3=0
source tools/bench-common.sh
RUNS=${RUNS:-3}

for n in 1 3; do
  cp "$SITE" "$WORK/site-$n.toml"
  for k in $(seq 1 "$n"); do
    printf '\n[[forward]]\nto = "127.0.0.2%d:1417%d"\nmatch = ["*"]\ncommunity = "nms"\n' "$k" "$k" >> "$WORK/site-$n.toml"
  done
done
cp "$SITE" "$WORK/site-0.toml"

# run_forwarding N RATE: trapgate forwarding to N targets; sets US, US_SYS, LOST,
# NOT_SENT (what trapgate did not send of what it received, times N: its own
# failed and dropped) and AT_SINKS (what the targets did not receive of that).
run_forwarding() {
  local n=$1 rate=$2 sinks=()
  for k in $(seq 1 "$n"); do
    [ "$n" -gt 0 ] || break
    "$BIN/recvloop" ${DISCARD:+--discard} "127.0.0.2$k:1417$k" > "$WORK/sink-$k.out" 2> /dev/null &
    sinks+=($!)
  done
  sleep 0.3
  measure "trapgate-f$n" 14163 "$rate" "$BIN/trapgate" run --config "$WORK/site-$n.toml" \
    --listen 127.0.0.1:14163 --agent 127.0.0.1:0 --workers "$WORKERS"
  sleep 0.3
  local got=0
  for k in "${!sinks[@]}"; do
    kill -TERM "${sinks[$k]}"; wait "${sinks[$k]}" 2> /dev/null || true
    got=$((got + $(awk '/^received/ {print $2}' "$WORK/sink-$((k + 1)).out")))
  done
  local heard sent
  heard=$(awk '/^-- / {print $2}' "$WORK/trapgate-f$n.err")
  sent=$(awk '/forwarded to/ { gsub(",", "", $5); s += $5 } END { print s + 0 }' "$WORK/trapgate-f$n.err")
  NOT_SENT=$((heard * n - sent))
  AT_SINKS=$((sent - got))
  echo "   CPU in the kernel: $US_SYS us/trap; the sender's kernel CPU per trap sent: $BLAST_SYS us"
  [ "$n" -eq 0 ] || echo "   forwarded: $sent sent of $((heard * n)) ($NOT_SENT not: failed or dropped); $got received by the $n sink(s)"
}

echo "machine: $(nproc) cores; $COUNT traps per run"
echo
echo "== 1. CPU per trap at $RATE/s, forwarding to 0, 1 and 3 targets ($RUNS rounds)"
declare -A cpu sys blast
for round in $(seq 1 "$RUNS"); do
  for n in 0 1 3; do
    run_forwarding "$n" "$RATE"
    cpu[$n]="${cpu[$n]:-} $US"
    sys[$n]="${sys[$n]:-} $US_SYS"
    blast[$n]="${blast[$n]:-} $BLAST_SYS"
  done
done
median() { tr ' ' '\n' <<< "$1" | grep -v '^$' | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
m0=$(median "${cpu[0]}"); m1=$(median "${cpu[1]}"); m3=$(median "${cpu[3]}")
awk -v a="$m0" -v b="$m1" -v c="$m3" 'BEGIN {
  printf "median CPU per trap: no forwarding %.2f us; 1 target %.2f us; 3 targets %.2f us\n", a, b, c
  printf "forwarding adds: %.2f us per trap to 1 target (%.2fx receiving), %.2f us to 3 (%.2fx receiving, %.2fx per target)\n", b - a, (b - a) / a, c - a, (c - a) / a, (c - a) / a / 3 }'
s0=$(median "${sys[0]}"); s1=$(median "${sys[1]}"); s3=$(median "${sys[3]}"); k=$(median "${blast[0]} ${blast[1]} ${blast[3]}")
awk -v a="$m0" -v b="$m1" -v c="$m3" -v x="$s0" -v y="$s1" -v z="$s3" -v k="$k" 'BEGIN {
  printf "of which in the kernel: %.2f us to 1 target, %.2f us to 3; the sender'"'"'s kernel CPU per datagram sent: %.2f us\n", y - x, z - x, k
  printf "forwarding'"'"'s own (user) CPU: %.2f us per trap to 1 target (%.2fx receiving), %.2f us to 3 (%.2fx)\n", (b - a) - (y - x), ((b - a) - (y - x)) / a, (c - a) - (z - x), ((c - a) - (z - x)) / a }'

ceilings() {
for n in 0 1 3; do
  best=0
  for rate in $LADDER; do
    run_forwarding "$n" "$rate"
    if [ "$LOST" -eq 0 ] && [ "${NOT_SENT:-0}" -eq 0 ] && [ "${AT_SINKS:-0}" -eq 0 ] && [ "$OFFERED" -gt "$best" ]; then best=$OFFERED; fi
  done
  echo "lossless up to, forwarding to $n target(s): ${best}/s"
  eval "ceiling_$n=$best"
done
awk -v a="$ceiling_0" -v b="$ceiling_1" -v c="$ceiling_3" 'BEGIN {
  if (a > 0) printf "ceiling with forwarding / without: 1 target %.2f, 3 targets %.2f\n", b / a, c / a }'
}

echo
echo "== 2. Lossless ceiling ($COUNT traps per rate; 0 = flat out)"
ceilings
echo
echo "== 3. Lossless ceiling, sinks that read nothing (recvloop --discard)"
DISCARD=1
ceilings
