# Rust CNI plugins: build, test, benchmark, demo.   `just --list` shows the recipes.

set shell := ["bash", "-euo", "pipefail", "-c"]

# The plugin binaries, named after their CNI type.
plugins := "bridge macvlan vxlan-overlay loopback portmap host-local dnsname cluster-ipam"
# The per-host daemon dnsname starts on demand: installed beside the plugins.
daemon := "cni-rs-daemon"
bin := "target/release"
target_bin := "target/x86_64-unknown-linux-gnu/release"

# List the recipes
default:
    @just --list

# Build every plugin and the benchmark (release: small, fast binaries in target/release/)
build:
    cargo build --release --workspace
    @# .cargo/config.toml builds for an explicit target (static binaries); the binaries are linked into
    @# target/release, where users and runtimes expect them (that folder also holds cargo's host artifacts)
    @mkdir -p target/release && for b in {{plugins}} {{daemon}} cnitool cni-bench; do ln -f "{{target_bin}}/$b" target/release/; done

# Build the plugins with test-only fault injection (CNI_RS_FAULT_AFTER) into their own folder, for the reliability tests
build-fault:
    cargo build --profile fault --workspace --bins --features cni-plugin/fault

# Install the Debian packages the demo and benchmark use (only those missing)
deps:
    #!/usr/bin/env bash
    set -euo pipefail
    need=()
    command -v ip        >/dev/null || need+=(iproute2)
    command -v nft       >/dev/null || need+=(nftables)
    command -v ping      >/dev/null || need+=(iputils-ping)
    command -v nsenter   >/dev/null || need+=(util-linux)
    command -v hyperfine >/dev/null || need+=(hyperfine)
    command -v ethtool   >/dev/null || need+=(ethtool)     # the overlay test reads checksum offload back
    [ -x /usr/lib/cni/loopback ]    || need+=(containernetworking-plugins)
    command -v dig       >/dev/null || need+=(bind9-dnsutils) # the demo and the dnsname tests ask names with dig
    command -v dnsmasq   >/dev/null || need+=(dnsmasq-base)   # containers/dnsname's resolver: a test upstream, a bench anchor
    command -v dnsperf   >/dev/null || need+=(dnsperf)        # the bench's DNS load generator
    [ -x /usr/lib/podman/aardvark-dns ] || need+=(aardvark-dns)   # netavark's resolver: a bench anchor
    command -v etcd      >/dev/null || need+=(etcd-server)    # the demo's cluster act and the cluster tests
    command -v etcdctl   >/dev/null || need+=(etcd-client)
    command -v openssl   >/dev/null || need+=(openssl)        # the cluster tests make a throw-away CA for etcd TLS
    command -v python3   >/dev/null || need+=(python3)        # the demo's task servers and their callers
    {{just_executable()}} _apt-install "${need[@]}"
    # containers/dnsname's Go plugin, for the bench only: unpacked into target/, never installed (in
    # /usr/lib/cni, podman would chain it into every network it creates). Best effort: the bench skips it.
    if [ ! -x target/go-dnsname/usr/lib/cni/dnsname ]; then
      tmp=$(mktemp -d)
      if (cd "$tmp" && apt-get download -qq golang-github-containernetworking-plugin-dnsname 2>/dev/null); then
        mkdir -p target/go-dnsname && dpkg -x "$tmp"/*.deb target/go-dnsname
      else
        echo "note: could not fetch containers/dnsname (golang-github-containernetworking-plugin-dnsname); the bench skips it"
      fi
      rm -rf "$tmp"
    fi

# Also what the client tests drive (integration/clients): Go libcni sources, containerd, podman, runc, busybox
deps-clients: deps
    #!/usr/bin/env bash
    set -euo pipefail
    need=()
    command -v go        >/dev/null || need+=(golang-go)
    [ -d /usr/share/gocode/src/github.com/containernetworking/cni/libcni ] || need+=(golang-github-appc-cni-dev)
    command -v containerd >/dev/null || need+=(containerd)
    [ -x /usr/sbin/runc ]           || need+=(runc)
    [ -x /usr/sbin/iptables ]       || need+=(iptables)   # the reference firewall and portmap in podman's chain
    command -v podman    >/dev/null || need+=(podman)
    dpkg -s busybox-static >/dev/null 2>&1 || need+=(busybox-static)   # static: copied into container root filesystems
    command -v jq        >/dev/null || need+=(jq)          # fuzz seeds from conf-examples
    {{just_executable()}} _apt-install "${need[@]}"

# apt-get update once, then install the given packages (none: nothing to do)
_apt-install *pkgs:
    #!/usr/bin/env bash
    set -euo pipefail
    [ -n "{{pkgs}}" ] || exit 0
    sudo=""; [ "$(id -u)" -eq 0 ] || sudo=sudo
    echo "installing: {{pkgs}}"
    $sudo apt-get update -qq
    # No recommends: podman's would pull buildah, crun, slirp4netns, fuse-overlayfs.
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends {{pkgs}} >/dev/null

# Copy the built plugins to dest, where runtimes look for them
install dest="/opt/cni/bin": build
    #!/usr/bin/env bash
    set -euo pipefail
    mkdir -p "{{dest}}"
    for p in {{plugins}} {{daemon}}; do
      if [ -x "{{bin}}/$p" ]; then
        install -m 0755 "{{bin}}/$p" "{{dest}}/$p" && echo "installed {{dest}}/$p"
      else
        echo "skipped $p (not built yet)"
      fi
    done

# Unit tests and the end-to-end tests in network namespaces (those need root)
test: deps-clients build build-fault
    #!/usr/bin/env bash
    set -euo pipefail
    if [ "$(id -u)" -eq 0 ]; then
      cargo test --workspace --no-fail-fast
    else
      echo "NOTE: not root: skipping the namespace tests (named root_*); run 'sudo just test' for all" >&2
      cargo test --workspace --no-fail-fast -- --skip root_
    fi
    {{just_executable()}} fuzz-smoke

# Fuzz every parser of untrusted input with cargo fuzz (libFuzzer, AddressSanitizer), `secs` seconds per target
fuzz secs="60":
    {{just_executable()}} _fuzz {{secs}} address

# A short fuzzing pass over every target, no sanitizer (`just test` runs it)
fuzz-smoke secs="10":
    {{just_executable()}} _fuzz {{secs}} none

# Build and run every fuzz target of fuzz/ for `secs` seconds; any crash fails
_fuzz secs sanitizer:
    #!/usr/bin/env bash
    set -euo pipefail
    command -v cargo-fuzz >/dev/null || cargo install --locked cargo-fuzz
    cd fuzz
    # cargo fuzz hands rustc -Z flags; the stable toolchain takes them with RUSTC_BOOTSTRAP.
    export RUSTC_BOOTSTRAP=1
    cargo fuzz build -O -s {{sanitizer}}
    # Seeds (the corpus is not committed): real configs, results, store and cache files.
    mkdir -p corpus/{netconf,runtime_config,prev_result,result_cache,host_local_store,cni_args,dns_query}
    for f in ../conf-examples/*; do
      cp "$f" corpus/netconf/
      jq -c '.plugins[0] + {cniVersion, name}' "$f" > corpus/netconf/plugin-$(basename "$f") 2>/dev/null || true
      { printf 'DEL\0ctr1\0eth0\0IgnoreUnknown=1;MAC=02:00:00:00:00:01\0'; cat corpus/netconf/plugin-$(basename "$f") 2>/dev/null || true; } > corpus/runtime_config/$(basename "$f")
    done
    res='{"cniVersion":"1.1.0","interfaces":[{"name":"eth0","mac":"02:00:00:00:00:01","sandbox":"/var/run/netns/x"}],"ips":[{"address":"10.1.0.5/24","gateway":"10.1.0.1","interface":0}],"routes":[{"dst":"0.0.0.0/0","gw":"10.1.0.1"}],"dns":{"nameservers":["10.1.0.1"]}}'
    printf '%s' "$res" > corpus/prev_result/v110
    printf '%s' '{"cniVersion":"0.2.0","ip4":{"ip":"10.1.0.5/24","gateway":"10.1.0.1"}}' > corpus/prev_result/v020
    printf '{"kind":"cniCacheV1","containerId":"c","config":"e30=","ifName":"eth0","networkName":"n","result":%s}' "$res" > corpus/result_cache/v1
    printf 'ctr1\r\neth0' > corpus/host_local_store/lease
    printf '10.1.0.5' > corpus/host_local_store/last
    printf '[{"ip":"10.1.0.5","id":"ctr1","ifname":"eth0"}]' > corpus/host_local_store/bucket
    printf 'IgnoreUnknown=1;IP=10.1.0.5;K8S_POD_NAME=a' > corpus/cni_args/k8s
    # A query for web.dns.podman (A), and a PTR query for 10.0.0.2 with EDNS.
    printf '\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x03web\x03dns\x06podman\x00\x00\x01\x00\x01' > corpus/dns_query/a
    printf '\x12\x35\x01\x00\x00\x01\x00\x00\x00\x00\x00\x01\x012\x010\x010\x0210\x07in-addr\x04arpa\x00\x00\x0c\x00\x01\x00\x00\x29\x04\xd0\x00\x00\x00\x00\x00\x00' > corpus/dns_query/ptr-edns
    total=0
    for t in $(cargo fuzz list); do
      if ! out=$(cargo fuzz run -O -s {{sanitizer}} "$t" "corpus/$t" -- \
            -max_total_time={{secs}} -max_len=65536 -print_final_stats=1 2>&1); then
        echo "$out" | tail -60
        echo "fuzz $t: CRASH (the input is in fuzz/artifacts/$t/)" >&2
        exit 1
      fi
      runs=$(echo "$out" | sed -n 's/^stat::number_of_executed_units: *//p' | tail -1)
      echo "fuzz $t: ${runs:-?} executions in {{secs}} s, no crash"
      total=$((total + ${runs:-0}))
    done
    echo "fuzz: $total executions in all, no crash"

# The cluster scale run (not in `just test`): 20 fake hosts, 1000 endpoints, one overlay; prints convergence time,
# entries per host, etcd keys, round trips and watch events per ADD, daemon memory (CLUSTER_SCALE_HOSTS/ENDPOINTS)
cluster-scale: build
    cargo test -p integration --test cluster_scale -- --ignored --nocapture

# Our plugins against the reference Go plugins (args: --iters N, --only NAME, --json FILE)
bench *args: deps build
    cargo run --release -q -p integration --bin cni-bench -- {{args}}

# Docker's network commands over CNI, in throw-away namespaces: bridge networks, isolation, none, macvlan, an overlay across two fake hosts
demo: deps build
    bash integration/demo/demo.sh

# Formatting and clippy, warnings are errors
lint:
    cargo fmt --all -- --check
    cargo clippy --workspace --all-targets -- -D warnings
