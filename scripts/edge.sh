#!/usr/bin/env bash
# An edge site on one machine, on loopback: the central cluster of scripts/cluster.sh
# (3 NATS nodes, streams and buckets with 3 replicas, fsync on every write, one
# api+writer, one central gateway) whose JetStream is named by the domain "hub" and
# which accepts leaf nodes, and one site: its own NATS leaf node (no JetStream) joined
# to the hub with the leaf identity, and a gateway that uses the hub's JetStream
# through the domain. A message crosses the leaf link once, whatever the number of
# gateways and sessions at the site; the site's gateways fan it out locally.
#
#   central  n1 n2 n3 (clients 4311-4313, routes 6311-6313, leaf ports 7411-7413)
#            api+writer http://127.0.0.1:8090   gateway ws://127.0.0.1:8091
#   site     leaf node nats://127.0.0.1:4320 → nats-leaf://127.0.0.1:7411,7412,7413
#            gateway ws://127.0.0.1:8092 (--nats-url the leaf node, --nats-js-domain hub)
#
# A site machine needs only server.json and leaf.nk (its leaf node) and gateway.nk (its
# gateways) from the credentials. With TLS, give the hub nodes and the leaf node
# --tls-cert/--tls-key/--tls-ca and the site's gateway --nats-tls-ca.
# Stop everything with Ctrl-C. Data goes to ./data/edge.
#
#   bash scripts/edge.sh                 # embedded store (one api process)
#   STORE=cql CQL_HOSTS=127.0.0.1:9042 bash scripts/edge.sh
set -euo pipefail
cd "$(dirname "$0")/.."
go build -o bin/guildhall ./cmd/guildhall
D=./data/edge
mkdir -p "$D"
[[ -f "$D/creds/server.json" ]] || bin/guildhall nats creds --out "$D/creds"
ROUTES=nats-route://127.0.0.1:6311,nats-route://127.0.0.1:6312,nats-route://127.0.0.1:6313
HUB=nats://127.0.0.1:4311,nats://127.0.0.1:4312,nats://127.0.0.1:4313
LEAF=nats-leaf://127.0.0.1:7411,nats-leaf://127.0.0.1:7412,nats-leaf://127.0.0.1:7413
SITE=nats://127.0.0.1:4320
pids=() nodes=()
# Stop the Guildhall processes first, then the NATS nodes they need to shut down.
trap 'kill "${pids[@]}" 2>/dev/null; wait "${pids[@]}" 2>/dev/null; kill "${nodes[@]}" 2>/dev/null; wait' EXIT INT TERM
for i in 1 2 3; do
  bin/guildhall nats --name "n$i" --port "431$i" --cluster-port "631$i" --routes "$ROUTES" \
    --js-domain hub --leaf-port "741$i" --data "$D/nats$i" --creds "$D/creds" --sync-always &
  nodes+=($!)
done
sleep 2
bin/guildhall serve --role api,writer --nats-url "$HUB" --nats-creds "$D/creds" --replicas 3 --addr 127.0.0.1:8090 \
  --public-url ws://127.0.0.1:8091 --data "$D/api" --store "${STORE:-bolt}" --cql-hosts "${CQL_HOSTS:-127.0.0.1:9042}" &
pids+=($!)
sleep 2
bin/guildhall serve --role gateway --nats-url "$HUB" --nats-creds "$D/creds" --addr 127.0.0.1:8091 --data "$D/gw" \
  --public-url ws://127.0.0.1:8091 &
pids+=($!)
# The site: a leaf node, then its gateway on it. One link to the hub, the three URLs
# being alternatives for it.
bin/guildhall nats --name site1 --port 4320 --leaf-remotes "$LEAF" --data "$D/site1" --creds "$D/creds" &
nodes+=($!)
sleep 1
bin/guildhall serve --role gateway --nats-url "$SITE" --nats-js-domain hub --nats-creds "$D/creds" --addr 127.0.0.1:8092 \
  --data "$D/site1-gw" --public-url ws://127.0.0.1:8092 &
pids+=($!)
echo "REST: http://127.0.0.1:8090/api/v10   central gateway: ws://127.0.0.1:8091   site gateway: ws://127.0.0.1:8092"
wait
