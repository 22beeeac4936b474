package passthrough

// Reservations returns what the logical unit's reservations are, for
// status listings: the persistent reservation record (registrations,
// type, holder) and the initiator port holding an SPC-2 reservation (""
// when none does).
func (lu *LU) Reservations() (PRRecord, string) {
	holder := ""
	if n := lu.reserved.Load(); n != nil {
		holder = n.in.InitiatorPort()
	}
	return lu.pr.Snapshot(), holder
}
