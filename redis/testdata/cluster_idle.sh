#!/bin/bash
# Idle cost of Baton on a 3-master Redis Cluster (docs/benchmarks.md, "On
# Redis Cluster"): 3 masters, 3 `baton serve` nodes (TTL 2 s), N topics with
# one item each, then INFO commandstats of every master over W seconds of
# idleness. A script counts as one operation. Needs redis-server, redis-cli,
# curl, python3, bc, and the binary at $D/baton:
#   go build -o DIR/baton ./cmd/baton && D=DIR N=1000 redis/testdata/cluster_idle.sh
set -u
D=${D:-$(mktemp -d)}; N=${N:-300}; B=${B:-16}; W=${W:-20}
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill -9 $p 2>/dev/null; done; wait 2>/dev/null; }
trap cleanup EXIT INT TERM
free() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
P=($(free) $(free) $(free)); HP=(x $(free) $(free) $(free))
for p in "${P[@]}"; do
  rm -rf $D/srv$p; mkdir -p $D/srv$p
  redis-server --port $p --cluster-port $(free) --cluster-enabled yes --cluster-config-file nodes.conf --dir $D/srv$p --save '' --appendonly no --daemonize no --logfile $D/srv$p/log &
  PIDS+=($!)
done
for p in "${P[@]}"; do for k in $(seq 50); do redis-cli -p $p ping 2>/dev/null | grep -q PONG && break; sleep 0.1; done; done
redis-cli --cluster create 127.0.0.1:${P[0]} 127.0.0.1:${P[1]} 127.0.0.1:${P[2]} --cluster-yes > $D/create.txt 2>&1 || { echo create failed; cat $D/create.txt; exit 1; }
for k in $(seq 100); do redis-cli -p ${P[0]} cluster info 2>/dev/null | grep -q cluster_state:ok && break; sleep 0.2; done
URL="redis+cluster://127.0.0.1:${P[0]},127.0.0.1:${P[1]},127.0.0.1:${P[2]}/?buckets=$B"
for i in 1 2 3; do
  $D/baton serve --store "$URL" --listen 127.0.0.1:${HP[$i]} --node n$i --log-level warn 2>$D/n$i.log &
  PIDS+=($!)
done
for i in 1 2 3; do for k in $(seq 100); do curl -sf http://127.0.0.1:${HP[$i]}/readyz >/dev/null && break; sleep 0.2; done; done
for t in $(seq 1 $N); do curl -s -o /dev/null -XPOST http://127.0.0.1:${HP[$(( t % 3 + 1 ))]}/v1/topics/t$t/items -d '{"id":"k","value":1}'; done
sleep 10
for p in "${P[@]}"; do redis-cli -p $p config resetstat >/dev/null; done
T0=$(date +%s.%N); sleep $W; T1=$(date +%s.%N)
TOT=0; SC=0
for p in "${P[@]}"; do
  S=$(redis-cli -p $p info commandstats | tr -d '\r' | grep '^cmdstat' | grep -v 'cmdstat_config' | sed 's/cmdstat_\([a-z|]*\):calls=\([0-9]*\).*/\1=\2/')
  E=$(echo "$S" | grep '^evalsha=' | cut -d= -f2); E=${E:-0}
  O=$(echo "$S" | grep -E '^(info|cluster\|slots|ping|smembers|publish|hello)=' | awk -F= '{s+=$2} END {print s+0}')
  SC=$((SC+E+O))
  echo "master $p: $(echo "scale=1; ($E+$O)/($T1-$T0)" | bc) operations/s ($(echo "scale=1; $E/($T1-$T0)" | bc) scripts): $(echo $S | tr '\n' ' ')"
done
echo "total: $(echo "scale=1; $SC/($T1-$T0)" | bc) operations/s (a script counts as one) over $(echo "$T1-$T0" | bc) s; N=$N topics, B=$B buckets"
ps -o pid,pcpu,etime,cmd -p $(pgrep -f "$D/baton serve" | tr '\n' ',' | sed 's/,$//') | cut -c1-60
