package fvtests

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/vishvananda/netns"
)

// nftMonitor is told by the kernel of every change to the host's
// nftables (NFNLGRP_NFTABLES, the events "nft monitor" prints), so the
// benchmark observes a rule or an element the moment its transaction
// commits, without polling and without adding work to the agent's.
type nftMonitor struct {
	mon *nftables.Monitor

	mu      sync.Mutex
	ports   map[uint16]time.Time     // a rule comparing a port with this one appeared
	members map[netip.Addr]time.Time // an element with this key appeared
	waiters []chan struct{}
	closed  sync.Once
}

func newNFTMonitor(nsName string) (*nftMonitor, error) {
	ns, err := netns.GetFromName(nsName)
	if err != nil {
		return nil, err
	}
	defer ns.Close()
	c, err := nftables.New(nftables.WithNetNSFd(int(ns)))
	if err != nil {
		return nil, err
	}
	m := &nftMonitor{mon: nftables.NewMonitor(nftables.WithMonitorAction(nftables.MonitorActionNew),
		nftables.WithMonitorObject(nftables.MonitorObjectRules|nftables.MonitorObjectElements), nftables.WithMonitorEventBuffer(4096)),
		ports: map[uint16]time.Time{}, members: map[netip.Addr]time.Time{}}
	events, err := c.AddMonitor(m.mon)
	if err != nil {
		return nil, fmt.Errorf("nft monitor: %w", err)
	}
	go m.run(events)
	return m, nil
}

// Close stops the monitor; it may be called more than once.
func (m *nftMonitor) Close() { m.closed.Do(func() { m.mon.Close() }) }

func (m *nftMonitor) run(events chan *nftables.MonitorEvent) {
	for ev := range events {
		now := time.Now()
		m.mu.Lock()
		switch ev.Type {
		case nftables.MonitorEventTypeNewRule:
			if r, ok := ev.Data.(*nftables.Rule); ok {
				for _, e := range r.Exprs {
					if c, ok := e.(*expr.Cmp); ok && len(c.Data) == 2 {
						p := binary.BigEndian.Uint16(c.Data)
						if _, seen := m.ports[p]; !seen {
							m.ports[p] = now
						}
					}
				}
			}
		case nftables.MonitorEventTypeNewSetElem:
			if es, ok := ev.Data.([]nftables.SetElement); ok {
				for _, e := range es {
					if a, ok := netip.AddrFromSlice(e.Key); ok && !e.IntervalEnd {
						if _, seen := m.members[a]; !seen {
							m.members[a] = now
						}
					}
				}
			}
		}
		for _, w := range m.waiters {
			close(w)
		}
		m.waiters = nil
		m.mu.Unlock()
	}
}

// wait blocks until cond holds on what was seen, or the deadline; it
// returns the time the kernel reported the change.
func (m *nftMonitor) wait(deadline time.Time, cond func() (time.Time, bool)) (time.Time, bool) {
	for {
		m.mu.Lock()
		at, ok := cond()
		w := make(chan struct{})
		if !ok {
			m.waiters = append(m.waiters, w)
		}
		m.mu.Unlock()
		if ok {
			return at, true
		}
		select {
		case <-w:
		case <-time.After(time.Until(deadline)):
			return time.Time{}, false
		}
	}
}

func (m *nftMonitor) rulePort(port uint16, deadline time.Time) (time.Time, bool) {
	return m.wait(deadline, func() (time.Time, bool) { at, ok := m.ports[port]; return at, ok })
}

func (m *nftMonitor) member(ip string, deadline time.Time) (time.Time, bool) {
	a := netip.MustParseAddr(ip)
	return m.wait(deadline, func() (time.Time, bool) { at, ok := m.members[a]; return at, ok })
}
