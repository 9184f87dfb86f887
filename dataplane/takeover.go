package dataplane

import (
	"context"
	"errors"
	"fmt"

	"ocelot/dataplane/ipsets"
	ipt "ocelot/dataplane/iptables"
	nft "ocelot/dataplane/nftables"
)

// retireOther removes what the backend not in use left on the host: ours
// from a run in the other mode, or Felix's from a takeover. It runs after
// the first complete apply, so the backend in use enforces everything
// before the other stops: a packet meets both for a moment, never
// neither.
//
// In nftables mode: every iptables backend that may hold rules (legacy,
// when its modules are loaded, and nft) loses our chains and the hooks in
// the kernel's chains, exactly what the iptables driver owns; then the IP
// sets (cali4*, cali6*), which no rule uses any more. In iptables mode:
// the calico nftables table of each family.
func (d *Dataplane) retireOther(ctx context.Context) error {
	var errs []error
	if !d.cfg.nftables {
		for _, f := range d.families {
			if gone, err := nft.Remove(d.kernel.nft, f.v); err != nil {
				errs = append(errs, fmt.Errorf("removing the nftables table (IPv%d): %w", f.v, err))
			} else if gone {
				d.log.Info("removed the calico nftables table: iptables mode is in force", "ip_version", f.v)
			}
		}
		return errors.Join(errs...)
	}
	if d.kernel.iptablesOf == nil {
		return nil
	}
	for _, backend := range d.kernel.iptablesBackends() {
		for _, f := range d.families {
			runner, err := d.kernel.iptablesOf(backend, f.v)
			if err != nil {
				continue // that backend's tools are not installed: nothing of ours there
			}
			// A driver that wants nothing removes everything it owns.
			empty := ipt.NewTables(f.v, runner, ipt.Options{InsertMode: true, Log: d.log})
			wrote, err := empty.Apply(ctx)
			if err != nil {
				errs = append(errs, fmt.Errorf("removing iptables-%s rules (IPv%d): %w", backend, f.v, err))
			} else if wrote {
				d.log.Info("removed iptables rules: nftables mode is in force", "iptables_backend", backend, "ip_version", f.v)
			}
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...) // sets stay until no rule can use them
	}
	for _, f := range d.families {
		sets := ipsets.New(f.v, ipsets.Options{Runner: d.kernel.ipsets, Log: d.log})
		if err := sets.Read(ctx); err != nil {
			errs = append(errs, fmt.Errorf("reading IP sets (IPv%d): %w", f.v, err))
			continue
		}
		if err := sets.ApplyDeletions(ctx); err != nil {
			errs = append(errs, fmt.Errorf("removing IP sets (IPv%d): %w", f.v, err))
		}
	}
	return errors.Join(errs...)
}
