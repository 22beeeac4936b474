package isns

import (
	"errors"
	"fmt"
	"net/netip"
	"time"
)

// Registration is what the gateway publishes: one Network Entity (RFC
// 4171 3.1) with its portals and iSCSI target nodes.
type Registration struct {
	// EntityID is the Entity Identifier (EID): stable across restarts so
	// that a registration left by a crash is replaced, not duplicated (for
	// example the host name, or a name from the configuration).
	EntityID string
	// Portals are the addresses initiators reach the targets at, each
	// with its Target Portal Group Tag. Addresses must be specific (not
	// 0.0.0.0 or ::) with a non-zero port.
	Portals []Portal
	// Nodes are the iSCSI targets.
	Nodes []Node
}

// Portal is one iSCSI portal (IP address and TCP port) and its target
// portal group tag.
type Portal struct {
	Addr netip.AddrPort
	// Group is the Target Portal Group Tag (RFC 7143 4.4.1), 0-65535.
	Group uint16
}

// Node is one iSCSI target node.
type Node struct {
	// Name is the target's iSCSI name.
	Name string
	// Alias is its TargetAlias; may be empty.
	Alias string
	// Portals are the addresses (of Registration.Portals) the target is
	// reachable through; nil means every portal.
	Portals []netip.AddrPort
}

// ErrInvalid marks a Registration that cannot be sent.
var ErrInvalid = errors.New("isns: invalid registration")

// Validate checks the registration: an EID, specific and distinct
// portal addresses, distinct non-empty node names, and node portals
// that are registered portals.
func (r *Registration) Validate() error {
	if r.EntityID == "" {
		return fmt.Errorf("%w: empty entity identifier", ErrInvalid)
	}
	seen := map[netip.AddrPort]bool{}
	for _, p := range r.Portals {
		if !p.Addr.IsValid() || p.Addr.Addr().IsUnspecified() || p.Addr.Port() == 0 {
			return fmt.Errorf("%w: portal %v: need a specific address and a port", ErrInvalid, p.Addr)
		}
		if seen[p.Addr] {
			return fmt.Errorf("%w: portal %v listed twice", ErrInvalid, p.Addr)
		}
		seen[p.Addr] = true
	}
	names := map[string]bool{}
	for _, n := range r.Nodes {
		if n.Name == "" {
			return fmt.Errorf("%w: node with an empty iSCSI name", ErrInvalid)
		}
		if names[n.Name] {
			return fmt.Errorf("%w: node %s listed twice", ErrInvalid, n.Name)
		}
		names[n.Name] = true
		for _, a := range n.Portals {
			if !seen[a] {
				return fmt.Errorf("%w: node %s: portal %v is not among the registration's portals", ErrInvalid, n.Name, a)
			}
		}
	}
	return nil
}

// equal reports whether two registrations publish the same objects.
func (r *Registration) equal(o *Registration) bool {
	if r.EntityID != o.EntityID || len(r.Portals) != len(o.Portals) || len(r.Nodes) != len(o.Nodes) {
		return false
	}
	for i := range r.Portals {
		if r.Portals[i] != o.Portals[i] {
			return false
		}
	}
	for i := range r.Nodes {
		a, b := r.Nodes[i], o.Nodes[i]
		if a.Name != b.Name || a.Alias != b.Alias || len(a.Portals) != len(b.Portals) || (a.Portals == nil) != (b.Portals == nil) {
			return false
		}
		for j := range a.Portals {
			if a.Portals[j] != b.Portals[j] {
				return false
			}
		}
	}
	return true
}

// clone returns a deep copy.
func (r *Registration) clone() *Registration {
	c := &Registration{EntityID: r.EntityID, Portals: append([]Portal(nil), r.Portals...)}
	for _, n := range r.Nodes {
		if n.Portals != nil {
			n.Portals = append([]netip.AddrPort{}, n.Portals...)
		}
		c.Nodes = append(c.Nodes, n)
	}
	return c
}

// uses reports whether node n is reachable through portal a.
func (n *Node) uses(a netip.AddrPort) bool {
	if n.Portals == nil {
		return true
	}
	for _, p := range n.Portals {
		if p == a {
			return true
		}
	}
	return false
}

// esiSettings are the ESI attributes added to each portal.
type esiSettings struct {
	port     uint16
	interval time.Duration
}

// source is the Source attribute of the registration's messages: the
// first node (RFC 4171 5.6.1: a Storage Node of the entity).
func (r *Registration) source() Attr { return String(TagISCSIName, r.Nodes[0].Name) }

// attrsLen is the encoded size of attrs.
func attrsLen(attrs []Attr) int {
	n := 0
	for _, a := range attrs {
		n += a.wireLen()
	}
	return n
}

// regBatches returns the operating attributes of the DevAttrReg messages
// that register r (RFC 4171 5.6.5.1), each batch encoding (with the
// source, the EID key and the delimiter) to at most limit bytes where
// possible. The first batch holds the entity, its portals (with ESI port
// and interval when esi is non-nil) and as many nodes as fit; the others
// add the remaining nodes to the entity. Each node is followed by one
// Portal Group object per portal of the entity, with the portal's tag
// when the node uses the portal and a NIL tag ("no relationship", RFC
// 4171 3.4) otherwise, so that the server creates no default PGT-1 group
// for a portal the target does not use.
//
// Several messages rather than one multi-PDU message: open-isns (0.101 to
// 0.103) never completes the reassembly of a message of more than one
// PDU.
func (r *Registration) regBatches(esi *esiSettings, limit int) [][]Attr {
	eid := String(TagEntityID, r.EntityID)
	// The request's fixed part: source, key, delimiter.
	fixed := r.source().wireLen() + eid.wireLen() + 8
	head := []Attr{eid, Uint32(TagEntityProtocol, EntityProtocolISCSI)}
	for _, p := range r.Portals {
		head = append(head, IP(TagPortalIPAddress, p.Addr.Addr()), Port(TagPortalPort, p.Addr.Port(), false))
		if esi != nil {
			head = append(head,
				Uint32(TagESIInterval, uint32(max(esi.interval/time.Second, 1))),
				Port(TagESIPort, esi.port, false))
		}
	}
	batches := [][]Attr{head}
	size := fixed + attrsLen(head)
	for _, n := range r.Nodes {
		na := []Attr{String(TagISCSIName, n.Name), Uint32(TagISCSINodeType, uint32(NodeTarget))}
		if n.Alias != "" {
			na = append(na, String(TagISCSIAlias, n.Alias))
		}
		for _, p := range r.Portals {
			pgt := Nil(TagPGTag)
			if n.uses(p.Addr) {
				pgt = Uint32(TagPGTag, uint32(p.Group))
			}
			na = append(na,
				String(TagPGISCSIName, n.Name),
				IP(TagPGPortalIPAddress, p.Addr.Addr()),
				Port(TagPGPortalPort, p.Addr.Port(), false),
				pgt)
		}
		last := &batches[len(batches)-1]
		if l := attrsLen(na); size+l > limit && len(*last) > 1 {
			// A new message that adds nodes to the entity.
			batches = append(batches, []Attr{eid})
			last = &batches[len(batches)-1]
			size = fixed + eid.wireLen()
		}
		*last = append(*last, na...)
		size += attrsLen(na)
	}
	return batches
}
