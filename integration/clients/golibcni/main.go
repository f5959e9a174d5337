// golibcni drives a network config list through Go's libcni, the library
// containerd, CRI-O and podman's CNI backend are built on. It is built from
// Debian's golang-github-appc-cni-dev sources (GOPATH mode, no network).
//
//	golibcni add|check|del|cached CONFDIR NETNAME NETNS
//
// Environment: CNI_PATH (plugin dirs, colon separated), CNI_CACHE_DIR
// (libcni's cache dir), CNI_IFNAME (default eth0), CNI_CONTAINERID (default:
// as upstream cnitool, "cnitool-" + hex(sha512(NETNS)[:10]), so a cache
// entry written here is the one cnitool reads for the same NETNS).
//
// add prints the result (converted to the list's cniVersion) as JSON;
// cached prints the cached result; check and del print nothing. Errors go
// to stderr with exit status 1.
package main

import (
	"context"
	"crypto/sha512"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/containernetworking/cni/libcni"
)

func main() {
	if len(os.Args) != 5 {
		fail(fmt.Errorf("usage: %s add|check|del|cached CONFDIR NETNAME NETNS", os.Args[0]))
	}
	verb, confDir, netName, netns := os.Args[1], os.Args[2], os.Args[3], os.Args[4]

	list, err := libcni.LoadConfList(confDir, netName)
	if err != nil {
		fail(fmt.Errorf("loading %s from %s: %w", netName, confDir, err))
	}

	cni := libcni.NewCNIConfigWithCacheDir(
		filepath.SplitList(os.Getenv("CNI_PATH")), os.Getenv("CNI_CACHE_DIR"), nil)

	rt := &libcni.RuntimeConf{
		ContainerID: envOr("CNI_CONTAINERID", cnitoolID(netns)),
		NetNS:       netns,
		IfName:      envOr("CNI_IFNAME", "eth0"),
	}

	ctx := context.Background()
	switch verb {
	case "add":
		res, err := cni.AddNetworkList(ctx, list, rt)
		if err != nil {
			fail(fmt.Errorf("AddNetworkList: %w", err))
		}
		printJSON(res)
	case "check":
		if err := cni.CheckNetworkList(ctx, list, rt); err != nil {
			fail(fmt.Errorf("CheckNetworkList: %w", err))
		}
	case "del":
		if err := cni.DelNetworkList(ctx, list, rt); err != nil {
			fail(fmt.Errorf("DelNetworkList: %w", err))
		}
	case "cached":
		res, err := cni.GetNetworkListCachedResult(list, rt)
		if err != nil {
			fail(fmt.Errorf("GetNetworkListCachedResult: %w", err))
		}
		if res == nil {
			fail(fmt.Errorf("no cached result"))
		}
		printJSON(res)
	default:
		fail(fmt.Errorf("unknown verb %q", verb))
	}
}

// cnitoolID is upstream cnitool's container ID for a netns path.
func cnitoolID(netns string) string {
	sum := sha512.Sum512([]byte(netns))
	return fmt.Sprintf("cnitool-%x", sum[:10])
}

func envOr(key, def string) string {
	if v := strings.TrimSpace(os.Getenv(key)); v != "" {
		return v
	}
	return def
}

func printJSON(v interface{}) {
	b, err := json.Marshal(v)
	if err != nil {
		fail(err)
	}
	fmt.Println(string(b))
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "golibcni:", err)
	os.Exit(1)
}
