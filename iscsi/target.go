package iscsi

// Portal is one network portal of the target: where it listens, what it
// advertises in SendTargets, and its portal group tag.
type Portal struct {
	// Listen is the host:port the server listens on.
	Listen string
	// Advertise is the TargetAddress given in SendTargets (host:port), for
	// NAT and port forwards. Empty means the connection's local address.
	Advertise string
	// Group is the target portal group tag (TPGT), 1..65535.
	Group uint16
}

// CHAPSecret holds the credentials of one CHAP exchange direction pair.
// It never prints its secrets.
type CHAPSecret struct {
	// Username and Secret authenticate the initiator to the target.
	Username string
	Secret   string
	// MutualUsername and MutualSecret, when set, authenticate the target
	// to the initiator (mutual CHAP).
	MutualUsername string
	MutualSecret   string
}

// String describes the credentials without secrets.
func (c *CHAPSecret) String() string {
	if c == nil {
		return "none"
	}
	if c.MutualUsername != "" {
		return "CHAP user=" + c.Username + " mutual user=" + c.MutualUsername
	}
	return "CHAP user=" + c.Username
}

// GoString implements fmt.GoStringer without secrets.
func (c *CHAPSecret) GoString() string { return c.String() }

// Access is what a target grants one initiator.
type Access struct {
	// Allowed is false when the initiator may neither log in nor see the
	// target in discovery.
	Allowed bool
	// CHAP, when non-nil, requires CHAP authentication with these
	// credentials; nil means AuthMethod=None is accepted.
	CHAP *CHAPSecret
}

// Target is an iSCSI target node the server exports.
type Target struct {
	// Name is the target's iSCSI name (normalized).
	Name string
	// Alias is the TargetAlias, may be empty.
	Alias string
	// Groups lists the portal group tags the target is reachable through;
	// empty means every portal.
	Groups []uint16
	// Access decides per initiator name; nil allows everyone without CHAP.
	Access func(initiatorName string) Access
	// Handler executes the target's SCSI commands.
	Handler Handler
	// MaxBurstLength, when non-zero, caps the MaxBurstLength (and hence
	// the largest single R2T/Data-In sequence) this target negotiates,
	// e.g. from the devices' transfer limits.
	MaxBurstLength uint32
}

// access returns what the target grants initiator.
func (t *Target) access(initiator string) Access {
	if t.Access == nil {
		return Access{Allowed: true}
	}
	return t.Access(initiator)
}

// onGroup reports whether the target is reachable through group.
func (t *Target) onGroup(group uint16) bool {
	if len(t.Groups) == 0 {
		return true
	}
	for _, g := range t.Groups {
		if g == group {
			return true
		}
	}
	return false
}

// Targets is the set of targets a server exports. The bridge swaps its
// contents on reload; lookups must be safe for concurrent use.
type Targets interface {
	// Target returns the target with the given (normalized) name.
	Target(name string) (*Target, bool)
	// All returns every target, in a stable order.
	All() []*Target
}

// StaticTargets is a fixed Targets set.
type StaticTargets []*Target

// Target implements Targets.
func (s StaticTargets) Target(name string) (*Target, bool) {
	for _, t := range s {
		if t.Name == name {
			return t, true
		}
	}
	return nil, false
}

// All implements Targets.
func (s StaticTargets) All() []*Target { return s }
