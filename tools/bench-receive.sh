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
#   3. latency at 10 %, 50 % and 90 % of trapgate's ceiling: trapgate's arrival →
#      decided (or counted, for what the policy ignores) beside the bare loop's kernel
#      receive → read at the same rate, p50 / p99 / p99.9, with the ratios;
#   4. the same stream as SNMPv3 authPriv (SHA, AES-128; `trapblast --v3`) to trapgate
#      and to snmptrapd with the same user: CPU per trap beside v2c, and each one's
#      lossless ceiling (V3=0 skips it).
# Environment: COUNT (500000), RATE (50000), LADDER ("50000 100000 200000 400000 0"),
# ADDRESSES (1: every trap from 127.0.0.1; N: from 127.0.1.1 … N consecutive
# addresses, each a UPS of the site), WORKERS (trapgate's --workers; default one per core but one),
# V3 (1), ROUNDS (3: parts 1 and 3 run the bare loop and trapgate by turns this many
# times and give each round's ratio and their median; the floor moves between runs,
# the paired ratio much less).
set -euo pipefail
cd "$(dirname "$0")/.."
source tools/bench-common.sh

run_recvloop() { measure recvloop 14162 "$1" "$BIN/recvloop" 127.0.0.1:14162; }
run_trapgate() {
  measure trapgate 14163 "$1" "$BIN/trapgate" run --config "$SITE" \
    --listen 127.0.0.1:14163 --agent 127.0.0.1:0 --workers "$WORKERS"
  grep -E 'listening|latency Informational counted' "$WORK/trapgate.err" | sed 's/^/   /' || true
}
run_snmptrapd() {
  measure snmptrapd 14164 "$1" snmptrapd -f -C -c "$TRAPD_CONF" -Lf "$WORK/snmptrapd.log" -F 'TRAP\n' udp:127.0.0.1:14164
}
have_snmptrapd() { command -v snmptrapd > /dev/null; }
# ratios FLOOR_P50 FLOOR_P99 FLOOR_P999 P50 P99 P999: trapgate's latency over the floor's.
ratios() {
  awk -v f50="$1" -v f99="$2" -v f999="$3" -v g50="$4" -v g99="$5" -v g999="$6" 'BEGIN {
    printf "latency trapgate / bare loop: p50 %s, p99 %s, p99.9 %s\n",
      (f50 > 0 ? sprintf("%.2fx", g50 / f50) : "n/a"),
      (f99 > 0 ? sprintf("%.2fx", g99 / f99) : "n/a"),
      (f999 > 0 ? sprintf("%.2fx", g999 / f999) : "n/a") }'
}

echo "machine: $(nproc) cores; $COUNT traps per run from $ADDRESSES source address(es)"
echo
# median X...: the middle one (the mean of the two middle ones for an even count).
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.3f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
# by_turns RATE: ROUNDS rounds of the bare loop then trapgate at RATE; prints each round's
# CPU and p99 ratios and sets CPU_RATIOS and P99_RATIOS (one per round), BARE and GATE
# (the median CPU per trap of each).
by_turns() {
  local rate=$1 round bares=() gates=()
  CPU_RATIOS=(); P99_RATIOS=()
  for round in $(seq 1 "$ROUNDS"); do
    run_recvloop "$rate"; bares+=("$US"); local floor=("$P50" "$P99" "$P999")
    run_trapgate "$rate"; gates+=("$US"); ratios "${floor[@]}" "$P50" "$P99" "$P999"
    CPU_RATIOS+=("$(awk -v b="${bares[-1]}" -v g="$US" 'BEGIN { printf "%.3f", g / b }')")
    P99_RATIOS+=("$(awk -v f="${floor[1]}" -v g="$P99" 'BEGIN { if (f > 0) printf "%.3f", g / f; else print "n/a" }')")
    echo "round $round: CPU trapgate / bare loop ${CPU_RATIOS[-1]}x, p99 ${P99_RATIOS[-1]}x"
  done
  BARE=$(median "${bares[@]}"); GATE=$(median "${gates[@]}")
}

echo "== 1. CPU per trap at $RATE/s, $ROUNDS round(s) by turns"
by_turns "$RATE"
if have_snmptrapd; then run_snmptrapd "$RATE"; tuned=$US; else tuned=n/a; fi
awk -v b="$BARE" -v g="$GATE" -v r="$(median "${CPU_RATIOS[@]}")" -v all="${CPU_RATIOS[*]}" -v s="$tuned" 'BEGIN {
  printf "CPU per trap, medians: bare loop %s us, trapgate %s us; trapgate / bare loop, median of the rounds %.2fx (%s)", b, g, r, all
  if (s != "n/a") printf "; snmptrapd (tuned) / trapgate: %.1fx", s / g
  print "" }'
gate=$GATE

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
echo "== 3. Latency at 10 %, 50 %, 90 % of ${ceiling}/s, beside the bare loop's"
for pct in 10 50 90; do
  rate=$((ceiling * pct / 100))
  [ "$rate" -gt 0 ] || continue
  echo "-- $pct %"
  by_turns "$rate"
  p99s=(); for r in "${P99_RATIOS[@]}"; do [ "$r" = n/a ] || p99s+=("$r"); done
  if [ "${#p99s[@]}" -gt 0 ]; then
    echo "p99 trapgate / bare loop at $pct %, median of the rounds: $(median "${p99s[@]}")x (${P99_RATIOS[*]})"
  fi
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
