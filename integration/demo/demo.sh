#!/usr/bin/env bash
# The Docker-networks story over CNI, in throw-away namespaces: two fake
# hosts joined by a fake switch, user-defined bridge networks, isolation,
# name resolution between containers (and its isolation), a `none` sandbox,
# a macvlan network on a veth parent, an overlay across both hosts, services,
# and cluster scope: etcd on a third fake host, both hosts joined, one
# `network create` for an overlay on both, names across hosts, and the routing mesh (a service's
# tasks spread over both hosts, its port published on each, reached from outside). Each step prints the command a user would type, then its
# output. Nothing is installed and nothing touches this machine's network;
# everything is removed at the end, also when a step fails.
set -euo pipefail

BIN=${BIN:-$(cd "$(dirname "$0")/../.." && pwd)/target/release}
[ "$(id -u)" -eq 0 ] || { echo "the demo creates network namespaces: run it as root" >&2; exit 1; }
for b in cnitool bridge macvlan vxlan-overlay loopback host-local cluster-ipam dnsname cni-rs-daemon; do
  [ -x "$BIN/$b" ] || { echo "missing $BIN/$b: run 'just build' first" >&2; exit 1; }
done

TAG=$$
HOST_A=demo-host-a-$TAG HOST_B=demo-host-b-$TAG HOST_E=demo-etcd-$TAG SWITCH=demo-switch-$TAG
SANDBOXES="web api db lonely printer ovl-a ovl-b cl-a cl-b"
ETCD_PID=""
WORK=$(mktemp -d /tmp/cni-demo.XXXXXX)
bold=""; dim=""; off=""
if [ -t 1 ]; then bold=$'\033[1m'; dim=$'\033[2m'; off=$'\033[0m'; fi

for s in $SANDBOXES; do
  if [ -e "/var/run/netns/$s" ]; then
    echo "a network namespace named '$s' already exists; the demo needs that name (remove it with 'ip netns del $s')" >&2
    exit 1
  fi
  if [ -e "/etc/netns/$s" ]; then
    echo "/etc/netns/$s exists; the demo writes its sandbox's resolv.conf there (remove it first)" >&2
    exit 1
  fi
done
# Service tasks are named NAME.<slot>.<id>: the demo's services must be the only ones of these names.
if ls /var/run/netns 2>/dev/null | grep -qE '^(whoami|shop|hello)\.'; then
  echo "network namespaces named whoami.*, shop.* or hello.* exist; the demo's services need those names" >&2
  exit 1
fi
SERVER_PIDS="" SHOP=""

# The demo's service tasks (named at creation), for cleanup.
demo_tasks() { ls /var/run/netns 2>/dev/null | grep -E '^(whoami|shop|hello)\.' || true; }

cleanup() {
  set +e
  for p in $SERVER_PIDS; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
  for t in $(demo_tasks); do ip netns del "$t" 2>/dev/null; done
  if [ -n "${SHOP:-}" ]; then rm -f "/etc/netns/$SHOP/resolv.conf"; rmdir "/etc/netns/$SHOP" 2>/dev/null; fi
  for s in $SANDBOXES; do
    ip netns del "$s" 2>/dev/null
    rm -f "/etc/netns/$s/resolv.conf"; rmdir "/etc/netns/$s" 2>/dev/null
  done
  [ -n "$ETCD_PID" ] && kill "$ETCD_PID" 2>/dev/null && wait "$ETCD_PID" 2>/dev/null
  for n in $HOST_A $HOST_B $HOST_E $SWITCH; do ip netns del "$n" 2>/dev/null; done
  rm -rf "$WORK"
}
trap cleanup EXIT

say() { printf '\n%s# %s%s\n' "$dim" "$*" "$off"; }

# Run cnitool on a fake host, with that host's own config, cache, leases and
# resolver folder (its cni-rs-daemon exits once no name is left, or when the
# folder goes); the fake hosts have no way out, so no upstream resolver.
: > "$WORK/no-upstream.conf"
on() {
  local host=$1; shift
  printf '%s[%s]$ cnitool %s%s\n' "$bold" "${host%%-$TAG}" "$*" "$off"
  nsenter --net=/var/run/netns/"$host" env \
    NETCONFPATH="$WORK/$host/net.d" CNI_CACHE_DIR="$WORK/$host/cache" \
    CNI_IPAM_DATA_DIR="$WORK/$host/ipam" CNI_PATH="$BIN" \
    CNI_RS_DNS_DIR="$WORK/$host/dns" CNI_RS_DNS_RESOLV_CONF="$WORK/no-upstream.conf" \
    CNI_CLUSTER_CONF="$WORK/$host/cluster.json" \
    "$BIN/cnitool" "$@"
}

# A command a user would type, shown and run (it may fail on purpose).
show() {
  printf '%s$ %s%s\n' "$bold" "$*" "$off"
  bash -c "$*" || printf '%s(exit status %s)%s\n' "$dim" "$?" "$off"
}

say "Setting the stage: two fake hosts (and one for etcd) joined by a fake switch (192.0.2.0/24), all network namespaces."
ip netns add $SWITCH; ip netns add $HOST_A; ip netns add $HOST_B; ip netns add $HOST_E
ip -n $SWITCH link add sw type bridge; ip -n $SWITCH link set sw up
i=1
for h in $HOST_A $HOST_B $HOST_E; do
  ip -n $SWITCH link add port$i type veth peer name eth0 netns $h
  ip -n $SWITCH link set port$i master sw up
  ip -n $h link set lo up; ip -n $h link set eth0 up
  ip -n $h addr add 192.0.2.$i/24 dev eth0
  i=$((i + 1))
done

say "The pre-created networks, as 'docker network ls' shows them."
on $HOST_A network ls

say "Two user-defined bridge networks."
on $HOST_A network create --subnet 10.1.0.0/24 frontend
on $HOST_A network create --subnet 10.2.0.0/24 --label tier=data backend
on $HOST_A network ls --filter type=custom

say "Sandboxes (a container's network namespace), connected: web on frontend, db on backend, api on both; web and api share the alias 'app'."
for s in web api db; do on $HOST_A sandbox create $s; done
on $HOST_A network connect --alias app frontend web
on $HOST_A network connect --alias app frontend api
on $HOST_A network connect backend api
on $HOST_A network connect --ip 10.2.0.50 backend db
on $HOST_A sandbox ls
on $HOST_A network inspect frontend

say "Inside a network, containers talk; api reaches both networks."
show "ip -n web -br addr show eth0"
show "ip netns exec web ping -c1 -W1 10.1.0.3 | sed -n 2p"
show "ip netns exec api ping -c1 -W1 10.2.0.50 | sed -n 2p"

say "Across networks they do not (Docker's isolation): web cannot reach db."
show "ip netns exec web ping -c1 -W1 10.2.0.50 | tail -2"

say "Containers find each other by name, as with Docker's embedded DNS: a resolver at 127.0.0.11 in each sandbox."
show "cat /etc/netns/web/resolv.conf"
show "ip netns exec web ping -c1 -W1 api | sed -n 1,2p"

say "Names are per network too: web (frontend) cannot resolve db (backend); api, on both, can."
show "ip netns exec web ping -c1 -W1 db"
show "ip netns exec api ping -c1 -W1 db | sed -n 1,2p"

say "An alias shared by two sandboxes: every answer holds both, in a new order each time (DNS round robin)."
show "for i in 1 2 3 4 5 6; do ip netns exec api dig +short app | paste -sd' '; done"

say "A sandbox on the 'none' network has only loopback; 'host' needs no attachment."
on $HOST_A sandbox create lonely
on $HOST_A network connect none lonely
show "ip -n lonely -br addr"
on $HOST_A network connect host lonely

say "A macvlan network on host A's uplink: the sandbox gets its own MAC and an address on the wire."
on $HOST_A network create -d macvlan --subnet 192.0.2.0/24 --ip-range 192.0.2.64/26 -o parent=eth0 lan
on $HOST_A sandbox create printer
on $HOST_A network connect lan printer
show "ip -n printer -br link show eth0"
show "ip netns exec printer ping -c1 -W1 192.0.2.2 | sed -n 2p"

say "An overlay across both hosts: one subnet, a disjoint --ip-range per host, VXLAN VNI 4097 between them."
on $HOST_A network create -d overlay --subnet 10.50.0.0/24 --ip-range 10.50.0.0/25 -o vni=4097 -o peers=192.0.2.2 -o underlay=eth0 ovl
on $HOST_B network create -d overlay --subnet 10.50.0.0/24 --ip-range 10.50.0.128/25 -o vni=4097 -o peers=192.0.2.1 -o underlay=eth0 ovl
on $HOST_A sandbox create ovl-a
on $HOST_B sandbox create ovl-b
on $HOST_A network connect ovl ovl-a
on $HOST_B network connect ovl ovl-b
show "ip -n ovl-a -br addr show eth0; ip -n ovl-b -br addr show eth0"
show "ip netns exec ovl-a ping -c2 -W1 \$(ip -n ovl-b -4 -br addr show eth0 | awk '{print \$3}' | cut -d/ -f1) | tail -2"

say "Services: a name and one virtual IP in front of three tasks (sandboxes named as Docker names tasks), port 8080 published on host A."
on $HOST_A network create --subnet 10.3.0.0/24 apps
on $HOST_A service create whoami --network apps --replicas 3 -p 8080:80
on $HOST_A service ls
cat > "$WORK/whoami.py" <<'PY'
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 80)); s.listen(64)
while True:
    c, _ = s.accept(); c.sendall(sys.argv[1].encode() + b"\n"); c.close()
PY
cat > "$WORK/call.py" <<'PY'
import socket, sys
for _ in range(int(sys.argv[3])):
    with socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3) as c:
        print(c.makefile().readline().strip())
PY
say "Each task runs a tiny server that answers with its task name."
for t in $(ls /var/run/netns | grep -E '^whoami\.'); do
  ip netns exec "$t" python3 "$WORK/whoami.py" "$t" & SERVER_PIDS="$SERVER_PIDS $!"
done
sleep 0.5

say "A client service (one task) calls 'whoami' by name: the resolver answers the VIP, and the three tasks answer in turn."
on $HOST_A service create shop --network apps --replicas 1 --endpoint-mode dnsrr -d
SHOP=$(ls /var/run/netns | grep -E '^shop\.' | head -1)
mkdir -p "/etc/netns/$SHOP"; echo "nameserver 127.0.0.11" > "/etc/netns/$SHOP/resolv.conf"
show "ip netns exec $SHOP dig +short whoami"
show "ip netns exec $SHOP python3 $WORK/call.py whoami 80 6"

say "Host B stands for the outside load balancer: host A's published port 8080 reaches the tasks round robin."
ip netns exec $HOST_A sh -c 'echo 1 > /proc/sys/net/ipv4/ip_forward'
show "ip netns exec $HOST_B python3 $WORK/call.py 192.0.2.1 8080 3"
show "ip netns exec $HOST_A nft list chain inet cni_rs_nat services | grep -o 'dnat ip to numgen.*map @svc_[a-z0-9]*[:0-9]*'"

say "Scaling to one task: the rules follow in one transaction."
on $HOST_A service scale whoami=1 -d
show "ip netns exec $SHOP python3 $WORK/call.py whoami 80 3"
on $HOST_A service rm shop whoami
rm -f "/etc/netns/$SHOP/resolv.conf"; rmdir "/etc/netns/$SHOP"

say "Cluster scope: etcd on a third fake host (192.0.2.3), never on this machine's network."
ip netns exec $HOST_E etcd --name demo --data-dir "$WORK/etcd" \
  --listen-client-urls http://192.0.2.3:2379 --advertise-client-urls http://192.0.2.3:2379 \
  --listen-peer-urls http://192.0.2.3:2380 --initial-advertise-peer-urls http://192.0.2.3:2380 \
  --initial-cluster demo=http://192.0.2.3:2380 >"$WORK/etcd.log" 2>&1 &
ETCD_PID=$!
for _ in $(seq 100); do
  ip netns exec $HOST_E etcdctl --endpoints http://192.0.2.3:2379 endpoint health >/dev/null 2>&1 && break
  sleep 0.1
done

say "Both hosts join; the per-host daemon holds the membership (a lease it keeps alive) and watches the store."
on $HOST_A cluster init --store etcd://192.0.2.3:2379 --advertise eth0 --name host-a
on $HOST_B cluster join --store etcd://192.0.2.3:2379 --advertise eth0 --name host-b
on $HOST_A cluster ls

say "One 'network create' on host A: the cluster assigns the VXLAN ID, host B gets the network too (scope swarm)."
on $HOST_A network create -d overlay --subnet 10.60.0.0/24 swarm-net
for _ in $(seq 50); do [ -e "$WORK/$HOST_B/net.d/swarm-net.conflist" ] && break; sleep 0.1; done
on $HOST_B network ls --filter name=swarm-net

say "A sandbox on each host: addresses from one subnet with no --ip-range, names that resolve across hosts."
on $HOST_A sandbox create cl-a
on $HOST_B sandbox create cl-b
on $HOST_A network connect --alias alpha swarm-net cl-a
on $HOST_B network connect --alias beta swarm-net cl-b
show "ip -n cl-a -br addr show eth0; ip -n cl-b -br addr show eth0"
show "ip netns exec cl-a dig +short +time=1 @127.0.0.11 beta.dns.podman"
show "ip netns exec cl-a ping -c2 -W1 \$(ip netns exec cl-a dig +short +time=1 @127.0.0.11 beta.dns.podman) | tail -2"
on $HOST_A cluster ls

say "The routing mesh: a service on the cluster's network, from host A. Its three tasks are spread over both hosts; port 8080 is published on every host."
on $HOST_A service create hello --network swarm-net --replicas 3 -p 8080:80
on $HOST_B service ls
on $HOST_B service inspect hello | grep -E '"Name": "hello\.|"NodeID"'
for t in $(ls /var/run/netns | grep -E '^hello\.'); do
  ip netns exec "$t" python3 "$WORK/whoami.py" "$t" & SERVER_PIDS="$SERVER_PIDS $!"
done
sleep 0.5

say "cl-a calls 'hello' by name: the resolver answers its virtual IP, and the three tasks, on both hosts, answer in turn."
show "ip netns exec cl-a dig +short +time=1 @127.0.0.11 hello"
show "ip netns exec cl-a python3 $WORK/call.py \$(ip netns exec cl-a dig +short +time=1 @127.0.0.11 hello) 80 6"

say "The etcd host stands for the outside load balancer: port 8080 of either host reaches every task, wherever it runs."
show "ip netns exec $HOST_E python3 $WORK/call.py 192.0.2.1 8080 3"
show "ip netns exec $HOST_E python3 $WORK/call.py 192.0.2.2 8080 3"

say "How: each host holds a mesh address on the overlay's bridge (and the VIP), and what it sends to a task leaves from its mesh address, so replies come back through it."
show "ip -n $HOST_B -4 -br addr show type bridge"
show "ip netns exec $HOST_B nft list chain inet cni_rs_nat postrouting | grep -o 'oifname.*snat ip to [0-9.]*'"
on $HOST_B service rm hello

say "Leaving the cluster: the sandboxes go, the network goes cluster-wide, both hosts leave; etcd keeps nothing of them."
on $HOST_A sandbox rm cl-a
on $HOST_B sandbox rm cl-b
on $HOST_A network rm swarm-net
on $HOST_B cluster leave
on $HOST_A cluster leave
show "ip netns exec $HOST_E etcdctl --endpoints http://192.0.2.3:2379 get --prefix /cni-rs/ --keys-only"

say "A network with endpoints cannot be removed; the pre-created ones never can."
on $HOST_A network rm frontend || true
on $HOST_A network rm bridge || true

say "Cleaning up: removing sandboxes disconnects them; then the networks go."
on $HOST_A sandbox rm web api db lonely printer ovl-a
on $HOST_B sandbox rm ovl-b
on $HOST_A network rm frontend backend lan ovl apps
on $HOST_B network prune
on $HOST_A network ls
show "ip -n $HOST_A -br link"
show "ip netns exec $HOST_A nft list ruleset | wc -l"

say "With the last name gone, each host's resolver exits after its idle delay."
for h in $HOST_A $HOST_B; do
  for _ in $(seq 50); do [ -S "$WORK/$h/dns/daemon.sock" ] || break; sleep 0.1; done
  if [ -S "$WORK/$h/dns/daemon.sock" ]; then echo "resolver of ${h%-$TAG}: still running"; else echo "resolver of ${h%-$TAG}: gone"; fi
done
