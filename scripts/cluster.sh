#!/usr/bin/env bash
# Scale-out Guildhall on one machine, on loopback: a 3-node NATS cluster (streams and
# buckets with 3 replicas, fsync on every write), one api+writer, and two gateways.
# Stop everything with Ctrl-C. Data goes to ./data/cluster, the bus credentials to
# ./data/cluster/creds (created on the first run; every process signs in with its
# role's, and the nodes' routes with the route secret).
#
#   bash scripts/cluster.sh                 # embedded store (one api process)
#   STORE=cql CQL_HOSTS=127.0.0.1:9042 bash scripts/cluster.sh
set -euo pipefail
cd "$(dirname "$0")/.."
go build -o bin/guildhall ./cmd/guildhall
D=./data/cluster
mkdir -p "$D"
[[ -f "$D/creds/server.json" ]] || bin/guildhall nats creds --out "$D/creds"
ROUTES=nats-route://127.0.0.1:6301,nats-route://127.0.0.1:6302,nats-route://127.0.0.1:6303
NATS=nats://127.0.0.1:4301,nats://127.0.0.1:4302,nats://127.0.0.1:4303
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; wait' EXIT INT TERM
for i in 1 2 3; do
  bin/guildhall nats --name "n$i" --port "430$i" --cluster-port "630$i" --routes "$ROUTES" \
    --data "$D/nats$i" --creds "$D/creds" --sync-always &
  pids+=($!)
done
sleep 2
bin/guildhall serve --role api,writer --nats-url "$NATS" --nats-creds "$D/creds" --replicas 3 --addr 127.0.0.1:8080 \
  --public-url ws://127.0.0.1:8081 --data "$D/api" --store "${STORE:-bolt}" --cql-hosts "${CQL_HOSTS:-127.0.0.1:9042}" &
pids+=($!)
sleep 2
bin/guildhall serve --role gateway --nats-url "$NATS" --nats-creds "$D/creds" --addr 127.0.0.1:8081 --data "$D/gw1" \
  --public-url ws://127.0.0.1:8081 &
pids+=($!)
bin/guildhall serve --role gateway --nats-url "$NATS" --nats-creds "$D/creds" --addr 127.0.0.1:8082 --data "$D/gw2" \
  --public-url ws://127.0.0.1:8082 &
pids+=($!)
echo "REST: http://127.0.0.1:8080/api/v10   gateways: ws://127.0.0.1:8081  ws://127.0.0.1:8082"
echo "bots: bin/guildhall token create --bot NAME --nats-url $NATS --nats-creds $D/creds"
wait
