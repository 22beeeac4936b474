package iscsi

// Params are a connection's and session's negotiated operational
// parameters (RFC 7143 13), as the target must apply them.
type Params struct {
	HeaderDigest bool
	DataDigest   bool
	// MaxConnections is the session's connection limit.
	MaxConnections uint16
	InitialR2T     bool
	ImmediateData  bool
	// MaxRecvDataSegmentLength is what the target declared: the largest
	// data segment it accepts from the initiator.
	MaxRecvDataSegmentLength uint32
	// MaxXmitDataSegmentLength is what the initiator declared: the
	// largest data segment the target may send it.
	MaxXmitDataSegmentLength uint32
	MaxBurstLength           uint32
	FirstBurstLength         uint32
	DefaultTime2Wait         uint16
	DefaultTime2Retain       uint16
	MaxOutstandingR2T        uint32
	DataPDUInOrder           bool
	DataSequenceInOrder      bool
	ErrorRecoveryLevel       uint8
}

// DefaultParams returns the RFC 7143 13 defaults, which apply to every
// key the initiator does not negotiate.
func DefaultParams() Params {
	return Params{
		MaxConnections:           1,
		InitialR2T:               true,
		ImmediateData:            true,
		MaxRecvDataSegmentLength: defaultMaxRecvDSL,
		MaxXmitDataSegmentLength: defaultMaxRecvDSL,
		MaxBurstLength:           262144,
		FirstBurstLength:         65536,
		DefaultTime2Wait:         2,
		DefaultTime2Retain:       20,
		MaxOutstandingR2T:        1,
		DataPDUInOrder:           true,
		DataSequenceInOrder:      true,
		ErrorRecoveryLevel:       0,
	}
}

// Preferences are what the target offers or accepts at most when it
// negotiates; the zero value of a field means "use the built-in default"
// (see DefaultPreferences).
type Preferences struct {
	// MaxRecvDataSegmentLength the target declares (512..16777215).
	MaxRecvDataSegmentLength uint32
	// MaxBurstLength and FirstBurstLength are the largest the target
	// accepts; the negotiated value is the minimum of both sides.
	MaxBurstLength   uint32
	FirstBurstLength uint32
	// MaxOutstandingR2T is the most R2Ts the target will have open per task.
	MaxOutstandingR2T uint32
	// InitialR2T: the target's wish (false lets unsolicited data flow;
	// the result is the OR of both sides).
	InitialR2T bool
	// ImmediateData: the target's wish (the result is the AND).
	ImmediateData bool
	// HeaderDigest and DataDigest allow CRC32C when the initiator offers it.
	HeaderDigest bool
	DataDigest   bool
	// MaxConnections the target allows per session.
	MaxConnections uint16
	// DefaultTime2Wait and DefaultTime2Retain the target offers.
	DefaultTime2Wait   uint16
	DefaultTime2Retain uint16
}

// DefaultPreferences are a performance-minded gateway's offers: large
// segments and bursts, immediate and unsolicited data, digests allowed.
func DefaultPreferences() Preferences {
	return Preferences{
		MaxRecvDataSegmentLength: 262144,
		MaxBurstLength:           16 << 20,
		FirstBurstLength:         262144,
		MaxOutstandingR2T:        16,
		InitialR2T:               false,
		ImmediateData:            true,
		HeaderDigest:             true,
		DataDigest:               true,
		MaxConnections:           1,
		DefaultTime2Wait:         2,
		DefaultTime2Retain:       0,
	}
}
