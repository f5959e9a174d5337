# Rust CNI plugins: build, test, benchmark, demo.   `just --list` shows the recipes.

set shell := ["bash", "-euo", "pipefail", "-c"]

# The plugin binaries, named after their CNI type.
plugins := "bridge macvlan vxlan-overlay loopback host-local"
bin := "target/release"

# List the recipes
default:
    @just --list

# Build every plugin and the benchmark (release: small, fast binaries in target/release/)
build:
    cargo build --release --workspace

# Install the Debian packages the tests, demo and benchmark use (only those missing)
deps:
    #!/usr/bin/env bash
    set -euo pipefail
    need=()
    command -v ip        >/dev/null || need+=(iproute2)
    command -v nft       >/dev/null || need+=(nftables)
    command -v ping      >/dev/null || need+=(iputils-ping)
    command -v hyperfine >/dev/null || need+=(hyperfine)
    [ -x /usr/lib/cni/loopback ]    || need+=(containernetworking-plugins)
    [ ${#need[@]} -eq 0 ] && exit 0
    sudo=""; [ "$(id -u)" -eq 0 ] || sudo=sudo
    echo "installing: ${need[*]}"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null

# Copy the built plugins to dest, where runtimes look for them
install dest="/opt/cni/bin": build
    #!/usr/bin/env bash
    set -euo pipefail
    mkdir -p "{{dest}}"
    for p in {{plugins}}; do
      if [ -x "{{bin}}/$p" ]; then
        install -m 0755 "{{bin}}/$p" "{{dest}}/$p" && echo "installed {{dest}}/$p"
      else
        echo "skipped $p (not built yet)"
      fi
    done

# Unit tests and the end-to-end tests in network namespaces (those need root)
test: deps build
    #!/usr/bin/env bash
    set -euo pipefail
    if [ "$(id -u)" -eq 0 ]; then
      cargo test --workspace --no-fail-fast
    else
      echo "NOTE: not root: skipping the namespace tests (named root_*); run 'sudo just test' for all" >&2
      cargo test --workspace --no-fail-fast -- --skip root_
    fi

# Our plugins against the reference Go plugins (args: --iters N, --only NAME, --json FILE)
bench *args: deps build
    cargo run --release -q -p integration --bin cni-bench -- {{args}}

# Show a plugin at work: a fake host and a container namespace, loopback ADD, then DEL
demo: deps build
    #!/usr/bin/env bash
    set -euo pipefail
    [ "$(id -u)" -eq 0 ] || { echo "the demo creates network namespaces: run it as root (sudo just demo)" >&2; exit 1; }
    host=cni-demo-host ctr=cni-demo-ctr
    b=""; n=""; [ -t 1 ] && b=$'\033[1m' n=$'\033[0m'
    show() { printf '\n%s$ %s%s\n' "$b" "$*" "$n"; bash -c "$*"; }
    cleanup() { ip netns del $host 2>/dev/null || true; ip netns del $ctr 2>/dev/null || true; }
    cleanup; trap cleanup EXIT
    echo "# A fake host (plugins run in it, so nothing touches this machine's network) and a container."
    show "ip netns add $host && ip netns add $ctr && ip -n $host link set lo up"
    show "ip -n $ctr addr show lo"
    echo; echo "# ADD: the runtime passes the container in CNI_* variables and the network config on stdin."
    show "echo '{\"cniVersion\":\"1.1.0\",\"name\":\"demo\",\"type\":\"loopback\"}' | ip netns exec $host env CNI_COMMAND=ADD CNI_CONTAINERID=demo1 CNI_NETNS=/var/run/netns/$ctr CNI_IFNAME=lo CNI_PATH={{bin}} {{bin}}/loopback"
    show "ip -n $ctr addr show lo"
    show "ip netns exec $ctr ping -c1 -W1 127.0.0.1 | head -2"
    echo; echo "# DEL: lo goes down again; DEL prints nothing on success."
    show "echo '{\"cniVersion\":\"1.1.0\",\"name\":\"demo\",\"type\":\"loopback\"}' | ip netns exec $host env CNI_COMMAND=DEL CNI_CONTAINERID=demo1 CNI_NETNS=/var/run/netns/$ctr CNI_IFNAME=lo CNI_PATH={{bin}} {{bin}}/loopback"
    show "ip -n $ctr link show lo"
    show "ip netns del $ctr && ip netns del $host"

# Formatting and clippy, warnings are errors
lint:
    cargo fmt --all -- --check
    cargo clippy --workspace --all-targets -- -D warnings
