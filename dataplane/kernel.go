package dataplane

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/vishvananda/netlink"

	"ocelot/dataplane/conntrack"
	"ocelot/dataplane/droplog"
	"ocelot/dataplane/hostaddrs"
	"ocelot/dataplane/ifacemon"
	"ocelot/dataplane/ipsets"
	ipt "ocelot/dataplane/iptables"
	"ocelot/dataplane/livemigration"
	nft "ocelot/dataplane/nftables"
	"ocelot/dataplane/qos"
	"ocelot/dataplane/routing"
)

// kernel is every way the dataplane reaches the kernel: the seams between
// the managers' decisions and the system. realKernel is the host's; unit
// tests build one on dataplane/internal/fakekernel and run as a normal
// user.
type kernel struct {
	iptables func(family int) (ipt.Runner, error) // the chosen backend's save and restore
	// iptablesOf gives any backend's tools, and iptablesBackends the
	// backends that may hold rules here (legacy only when its modules are
	// loaded): a switch to nftables mode sweeps them all.
	iptablesOf       func(backend string, family int) (ipt.Runner, error)
	iptablesBackends func() []string
	nft              nft.Runner
	ipsets           ipsets.Runner
	ipsetsNL         ipsets.Netlink // nil: every set write goes through ipsets
	routes           routing.Netlink
	sysctls          sysctls
	conntrack        conntrack.Table
	peers            conntrack.Peers // nil: every conntrack pass walks the table
	watchIfaces      func(ctx context.Context, out chan<- ifacemon.Event)
	// listenPacket captures ARP and RARP frames on an interface (a
	// migrating VM's announcement); clock runs the migrations' timers.
	listenPacket func(iface string) (livemigration.Capture, error)
	clock        livemigration.Clock
	// tc is traffic control (and IFB devices) for bandwidth limits; tick
	// is the kernel's scheduler ticks per microsecond.
	tc        qos.Netlink
	tick      float64
	nflog     func(group uint16, size uint32) (droplog.Source, error)  // the drop log's NFLOG group
	ifName    func(index uint32) string                                // "" when there is none
	watchHost func(ctx context.Context, out chan<- hostaddrs.Snapshot) // the host's addresses and gateways, kept current
	// watchHostIfaces reports the host's other interfaces (host
	// endpoints; their addresses come with watchHost's snapshots).
	watchHostIfaces func(ctx context.Context, out chan<- ifacemon.Event)
}

// sysctls reads and writes kernel parameters by their path under
// /proc/sys ("net/ipv4/ip_forward").
type sysctls interface {
	ReadSysctl(path string) (string, error)
	WriteSysctl(path, value string) error
}

// realKernel is the host's kernel, with the iptables backend chosen as
// Felix chooses it (IptablesBackend, or what is in use already) when
// first asked for (nftables mode does not look). Every
// netlink request has the deadline NetlinkTimeout (the monitors'
// subscriptions, which wait for events, aside).
func realKernel(cfg Config, log *slog.Logger) (kernel, func() string, error) {
	backend := sync.OnceValue(func() string { return ipt.DetectBackend(cfg.Backend, log) })
	ifaces := workloadIfaces{prefixes: cfg.Rules.Prefixes, exclude: cfg.InterfaceExclude}
	mon := &ifacemon.Monitor{Wanted: ifaces.Ours, Resync: cfg.InterfaceRefresh, Timeout: cfg.NetlinkTimeout, Log: log}
	hostIfaces := &ifacemon.Monitor{Wanted: hostIfaceFilter(ifaces, log), Resync: cfg.InterfaceRefresh,
		Timeout: cfg.NetlinkTimeout, Log: log}
	hosts := &hostaddrs.Watcher{Resync: cfg.RouteRefresh, Timeout: cfg.NetlinkTimeout, Log: log}
	routes, err := routing.NewKernel(cfg.NetlinkTimeout)
	if err != nil {
		return kernel{}, nil, err
	}
	sets, err := ipsets.OpenNetlink(cfg.NetlinkTimeout)
	if err != nil {
		return kernel{}, nil, err
	}
	tc, err := qos.NewKernel(cfg.NetlinkTimeout)
	if err != nil {
		return kernel{}, nil, err
	}
	return kernel{
		iptables: func(family int) (ipt.Runner, error) {
			cmds, err := ipt.CommandsFor(backend(), family, cfg.LockProbe)
			if err != nil {
				return nil, err
			}
			return cmds.Runner(), nil
		},
		iptablesOf: func(b string, family int) (ipt.Runner, error) {
			cmds, err := ipt.CommandsFor(b, family, cfg.LockProbe)
			if err != nil {
				return nil, err
			}
			return cmds.Runner(), nil
		},
		iptablesBackends: func() []string {
			if ipt.LegacyLoaded() {
				return []string{ipt.Legacy, ipt.NFT}
			}
			return []string{ipt.NFT}
		},
		nft:             &nft.NetlinkRunner{},
		ipsets:          ipsets.Command{},
		ipsetsNL:        sets,
		routes:          routes,
		sysctls:         procSys{},
		conntrack:       conntrack.Netlink{Timeout: cfg.NetlinkTimeout},
		peers:           &conntrack.NftPeers{Prefixes: cfg.Rules.Prefixes, IPv6: cfg.IPv6},
		watchIfaces:     mon.Run,
		watchHostIfaces: hostIfaces.Run,
		listenPacket:    livemigration.ListenPacket,
		clock:           livemigration.RealClock{},
		tc:              tc,
		tick:            netlink.TickInUsec(),
		nflog: func(group uint16, size uint32) (droplog.Source, error) {
			return droplog.OpenNFLOG(group, size)
		},
		ifName: func(index uint32) string {
			if i, err := net.InterfaceByIndex(int(index)); err == nil {
				return i.Name
			}
			return ""
		},
		watchHost: hosts.Run,
	}, backend, nil
}

// procSys is /proc/sys.
type procSys struct{}

func (procSys) path(p string) (string, error) {
	clean := filepath.Clean("/proc/sys/" + p)
	if !strings.HasPrefix(clean, "/proc/sys/") {
		return "", fmt.Errorf("sysctl %q is outside /proc/sys", p)
	}
	return clean, nil
}

func (s procSys) ReadSysctl(p string) (string, error) {
	path, err := s.path(p)
	if err != nil {
		return "", err
	}
	v, err := os.ReadFile(path)
	return strings.TrimSpace(string(v)), err
}

func (s procSys) WriteSysctl(p, value string) error {
	path, err := s.path(p)
	if err != nil {
		return err
	}
	return os.WriteFile(path, []byte(value), 0o644)
}

// isNotExist reports a sysctl that does not exist (a module not loaded,
// an interface gone).
func isNotExist(err error) bool { return errors.Is(err, os.ErrNotExist) }

// never is a timer period long enough not to fire.
const never = 1000 * time.Hour
