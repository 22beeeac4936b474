package passthrough

// Reservations returns what the logical unit's reservations are, for
// status listings: the persistent reservation record (registrations,
// type, holder) and the initiator port holding an SPC-2 reservation (""
// when none does; "another gateway" for a holder there).
func (lu *LU) Reservations() (PRRecord, string) {
	holder := ""
	switch n := lu.reserved.Load(); n {
	case nil:
	case remoteHolder:
		holder = "another gateway"
	default:
		holder = n.in.InitiatorPort()
	}
	return lu.pr.Snapshot(), holder
}
