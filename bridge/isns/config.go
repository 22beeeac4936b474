package isns

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"

	"github.com/sanbridge/sanbridge/conf"
)

// OptionsFromConfig returns the client options of an isns block (the
// caller adds Log and, if it wants them, OnEvent).
func OptionsFromConfig(c *conf.ISNS) Options {
	return Options{Server: c.Server, ESIListen: c.ESIListen, ESIInterval: c.ESIInterval}
}

// Lookup resolves a host name to addresses (net.DefaultResolver's
// LookupNetIP("ip", host) when nil is passed to [RegistrationFromConfig]).
type Lookup func(ctx context.Context, host string) ([]netip.Addr, error)

// RegistrationFromConfig builds what the gateway registers: the entity
// (cfg.ISNS.EntityID, else the host name), one portal per address each
// configuration portal is reachable at, with the portal's group tag, and
// one node per target, reachable through its portals.
//
// A portal's addresses are its advertise address (a DNS name gives every
// address it resolves to), else the address it is bound to: bound[i] is
// the address portal cfg.Portals[i] listens on (bridge.Listen's result,
// in the same order), which matters when the configuration says port 0.
// A portal on a wildcard address without advertise cannot be registered
// (conf refuses it when an isns block is present).
func RegistrationFromConfig(ctx context.Context, cfg *conf.Config, bound []netip.AddrPort, lookup Lookup) (Registration, error) {
	var reg Registration
	if cfg.ISNS != nil {
		reg.EntityID = cfg.ISNS.EntityID
	}
	if reg.EntityID == "" {
		h, err := os.Hostname()
		if err != nil || h == "" {
			return reg, fmt.Errorf("isns: no entity_id and no host name: %w", err)
		}
		reg.EntityID = h
	}
	if lookup == nil {
		lookup = func(ctx context.Context, host string) ([]netip.Addr, error) {
			return net.DefaultResolver.LookupNetIP(ctx, "ip", host)
		}
	}
	byName := map[string][]netip.AddrPort{}
	seen := map[netip.AddrPort]bool{}
	for i, p := range cfg.Portals {
		addrs, err := portalAddrs(ctx, &p, i, bound, lookup)
		if err != nil {
			return reg, err
		}
		for _, a := range addrs {
			byName[p.Name] = append(byName[p.Name], a)
			if !seen[a] {
				seen[a] = true
				reg.Portals = append(reg.Portals, Portal{Addr: a, Group: p.Group})
			}
		}
	}
	for _, t := range cfg.Targets {
		n := Node{Name: t.Name, Alias: t.Alias, Portals: []netip.AddrPort{}}
		for _, name := range t.Portals {
			n.Portals = append(n.Portals, byName[name]...)
		}
		reg.Nodes = append(reg.Nodes, n)
	}
	return reg, reg.Validate()
}

// portalAddrs returns the addresses configuration portal p (index i) is
// reachable at.
func portalAddrs(ctx context.Context, p *conf.Portal, i int, bound []netip.AddrPort, lookup Lookup) ([]netip.AddrPort, error) {
	if p.Advertise != "" {
		host, port, err := net.SplitHostPort(p.Advertise)
		if err != nil {
			return nil, fmt.Errorf("isns: portal %q: advertise %q: %w", p.Name, p.Advertise, err)
		}
		n, err := strconv.ParseUint(port, 10, 16)
		if err != nil {
			return nil, fmt.Errorf("isns: portal %q: advertise %q: bad port", p.Name, p.Advertise)
		}
		if a, err := netip.ParseAddr(host); err == nil {
			return []netip.AddrPort{netip.AddrPortFrom(a.Unmap(), uint16(n))}, nil
		}
		ips, err := lookup(ctx, host)
		if err != nil {
			return nil, fmt.Errorf("isns: portal %q: resolve %s: %w", p.Name, host, err)
		}
		var out []netip.AddrPort
		for _, a := range ips {
			out = append(out, netip.AddrPortFrom(a.Unmap(), uint16(n)))
		}
		if len(out) == 0 {
			return nil, fmt.Errorf("isns: portal %q: %s resolves to no address", p.Name, host)
		}
		return out, nil
	}
	if i < len(bound) && bound[i].IsValid() && !bound[i].Addr().IsUnspecified() && bound[i].Port() != 0 {
		return []netip.AddrPort{netip.AddrPortFrom(bound[i].Addr().Unmap(), bound[i].Port())}, nil
	}
	return nil, fmt.Errorf("isns: portal %q listens on a wildcard address and has no advertise address to register", p.Name)
}
