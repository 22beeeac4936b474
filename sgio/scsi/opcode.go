// Package scsi is the SCSI vocabulary shared by the emulated disk, the
// passthrough layer and device discovery: operation codes, sense keys and
// additional sense codes, sense data builders and a parser for both sense
// formats, and CDB decoding helpers.
//
// Everything here is pure data manipulation: no I/O, no state. Parsers
// accept arbitrary bytes and never panic.
//
// Fixed-format sense data (SPC-4 4.5.3), 18 bytes as built here:
//
//	byte  0     VALID(7) | RESPONSE CODE 70h/71h
//	byte  2     FILEMARK(7) EOM(6) ILI(5) | SENSE KEY(3-0)
//	bytes 3-6   INFORMATION
//	byte  7     ADDITIONAL SENSE LENGTH (n-7)
//	bytes 8-11  COMMAND-SPECIFIC INFORMATION
//	byte  12    ADDITIONAL SENSE CODE
//	byte  13    ADDITIONAL SENSE CODE QUALIFIER
//	byte  14    FIELD REPLACEABLE UNIT CODE
//	bytes 15-17 SKSV(7) | SENSE KEY SPECIFIC
//
// Descriptor-format sense data (SPC-4 4.5.2):
//
//	byte  0     RESPONSE CODE 72h/73h
//	byte  1     SENSE KEY(3-0)
//	byte  2     ADDITIONAL SENSE CODE
//	byte  3     ADDITIONAL SENSE CODE QUALIFIER
//	byte  7     ADDITIONAL SENSE LENGTH (n-7)
//	bytes 8-    sense data descriptors (type, additional length, ...)
package scsi

import "fmt"

// Opcode is a SCSI operation code, the first byte of a CDB (SPC-4 4.2.5).
type Opcode byte

// Operation codes of the SPC-4 and SBC-3 commands sanbridge knows by name.
const (
	OpTestUnitReady              Opcode = 0x00
	OpRequestSense               Opcode = 0x03
	OpFormatUnit                 Opcode = 0x04
	OpRead6                      Opcode = 0x08
	OpWrite6                     Opcode = 0x0a
	OpInquiry                    Opcode = 0x12
	OpModeSelect6                Opcode = 0x15
	OpReserve6                   Opcode = 0x16
	OpRelease6                   Opcode = 0x17
	OpModeSense6                 Opcode = 0x1a
	OpStartStopUnit              Opcode = 0x1b
	OpReceiveDiagnosticResults   Opcode = 0x1c
	OpSendDiagnostic             Opcode = 0x1d
	OpPreventAllowMediumRemoval  Opcode = 0x1e
	OpReadCapacity10             Opcode = 0x25
	OpRead10                     Opcode = 0x28
	OpWrite10                    Opcode = 0x2a
	OpWriteAndVerify10           Opcode = 0x2e
	OpVerify10                   Opcode = 0x2f
	OpPreFetch10                 Opcode = 0x34
	OpSynchronizeCache10         Opcode = 0x35
	OpReadDefectData10           Opcode = 0x37
	OpWriteBuffer                Opcode = 0x3b
	OpReadBuffer                 Opcode = 0x3c
	OpWriteSame10                Opcode = 0x41
	OpUnmap                      Opcode = 0x42
	OpSanitize                   Opcode = 0x48
	OpLogSelect                  Opcode = 0x4c
	OpLogSense                   Opcode = 0x4d
	OpModeSelect10               Opcode = 0x55
	OpReserve10                  Opcode = 0x56
	OpRelease10                  Opcode = 0x57
	OpModeSense10                Opcode = 0x5a
	OpPersistentReserveIn        Opcode = 0x5e
	OpPersistentReserveOut       Opcode = 0x5f
	OpVariableLength             Opcode = 0x7f
	OpExtendedCopy               Opcode = 0x83
	OpReceiveCopyResults         Opcode = 0x84
	OpATAPassThrough16           Opcode = 0x85
	OpRead16                     Opcode = 0x88
	OpCompareAndWrite            Opcode = 0x89
	OpWrite16                    Opcode = 0x8a
	OpORWrite16                  Opcode = 0x8b
	OpWriteAndVerify16           Opcode = 0x8e
	OpVerify16                   Opcode = 0x8f
	OpPreFetch16                 Opcode = 0x90
	OpSynchronizeCache16         Opcode = 0x91
	OpWriteSame16                Opcode = 0x93
	OpWriteAtomic16              Opcode = 0x9c
	OpServiceActionIn16          Opcode = 0x9e
	OpServiceActionOut16         Opcode = 0x9f
	OpReportLUNs                 Opcode = 0xa0
	OpATAPassThrough12           Opcode = 0xa1
	OpSecurityProtocolIn         Opcode = 0xa2
	OpMaintenanceIn              Opcode = 0xa3
	OpMaintenanceOut             Opcode = 0xa4
	OpRead12                     Opcode = 0xa8
	OpWrite12                    Opcode = 0xaa
	OpWriteAndVerify12           Opcode = 0xae
	OpVerify12                   Opcode = 0xaf
	OpSecurityProtocolOut        Opcode = 0xb5
	OpReadDefectData12           Opcode = 0xb7
	OpServiceActionBidirectional Opcode = 0x9d
)

// More SPC-4 and SBC-4 operation codes, and those of the ZBC, SSC-4
// (tape) and SMC-3 (changer) command sets, for transfer-length decoding
// ([DataTransfer]). Several share a value with an SBC code: the device
// type decides which one a CDB is.
const (
	OpReadAttribute         Opcode = 0x8c
	OpWriteAttribute        Opcode = 0x8d
	OpReadMediaSerialNumber Opcode = 0xab
	OpReadLong10            Opcode = 0x3e
	OpWriteLong10           Opcode = 0x3f
	OpSeek10                Opcode = 0x2b
	OpZBCOut                Opcode = 0x94
	OpZBCIn                 Opcode = 0x95

	OpRewind              Opcode = 0x01 // SSC
	OpFormatMedium        Opcode = 0x04 // SSC; FORMAT UNIT in SBC
	OpReadBlockLimits     Opcode = 0x05 // SSC
	OpSetCapacity         Opcode = 0x0b // SSC
	OpReadReverse6        Opcode = 0x0f // SSC
	OpWriteFilemarks6     Opcode = 0x10 // SSC
	OpSpace6              Opcode = 0x11 // SSC
	OpVerify6             Opcode = 0x13 // SSC
	OpRecoverBufferedData Opcode = 0x14 // SSC
	OpErase6              Opcode = 0x19 // SSC
	OpLocate10            Opcode = 0x2b // SSC; SEEK(10) in SBC
	OpReadPosition        Opcode = 0x34 // SSC; PRE-FETCH(10) in SBC
	OpReportDensity       Opcode = 0x44 // SSC: REPORT DENSITY SUPPORT
	OpWriteFilemarks16    Opcode = 0x80 // SSC
	OpAllowOverwrite      Opcode = 0x82 // SSC
	OpSpace16             Opcode = 0x91 // SSC; SYNCHRONIZE CACHE(16) in SBC
	OpLocate16            Opcode = 0x92 // SSC
	OpErase16             Opcode = 0x93 // SSC; WRITE SAME(16) in SBC

	OpInitializeElementStatus          Opcode = 0x07 // SMC
	OpPositionToElement                Opcode = 0x2b // SMC
	OpInitializeElementStatusWithRange Opcode = 0x37 // SMC; READ DEFECT DATA(10) in SBC
	OpMoveMedium                       Opcode = 0xa5 // SMC
	OpExchangeMedium                   Opcode = 0xa6 // SMC
	OpSendVolumeTag                    Opcode = 0xb6 // SMC
	OpReadElementStatus                Opcode = 0xb8 // SMC
)

var opcodeNames = map[Opcode]string{
	OpTestUnitReady:              "TEST UNIT READY",
	OpRequestSense:               "REQUEST SENSE",
	OpFormatUnit:                 "FORMAT UNIT",
	OpRead6:                      "READ(6)",
	OpWrite6:                     "WRITE(6)",
	OpInquiry:                    "INQUIRY",
	OpModeSelect6:                "MODE SELECT(6)",
	OpReserve6:                   "RESERVE(6)",
	OpRelease6:                   "RELEASE(6)",
	OpModeSense6:                 "MODE SENSE(6)",
	OpStartStopUnit:              "START STOP UNIT",
	OpReceiveDiagnosticResults:   "RECEIVE DIAGNOSTIC RESULTS",
	OpSendDiagnostic:             "SEND DIAGNOSTIC",
	OpPreventAllowMediumRemoval:  "PREVENT ALLOW MEDIUM REMOVAL",
	OpReadCapacity10:             "READ CAPACITY(10)",
	OpRead10:                     "READ(10)",
	OpWrite10:                    "WRITE(10)",
	OpWriteAndVerify10:           "WRITE AND VERIFY(10)",
	OpVerify10:                   "VERIFY(10)",
	OpPreFetch10:                 "PRE-FETCH(10)",
	OpSynchronizeCache10:         "SYNCHRONIZE CACHE(10)",
	OpReadDefectData10:           "READ DEFECT DATA(10)",
	OpWriteBuffer:                "WRITE BUFFER",
	OpReadBuffer:                 "READ BUFFER",
	OpWriteSame10:                "WRITE SAME(10)",
	OpUnmap:                      "UNMAP",
	OpSanitize:                   "SANITIZE",
	OpLogSelect:                  "LOG SELECT",
	OpLogSense:                   "LOG SENSE",
	OpModeSelect10:               "MODE SELECT(10)",
	OpReserve10:                  "RESERVE(10)",
	OpRelease10:                  "RELEASE(10)",
	OpModeSense10:                "MODE SENSE(10)",
	OpPersistentReserveIn:        "PERSISTENT RESERVE IN",
	OpPersistentReserveOut:       "PERSISTENT RESERVE OUT",
	OpVariableLength:             "VARIABLE LENGTH",
	OpExtendedCopy:               "EXTENDED COPY",
	OpReceiveCopyResults:         "RECEIVE COPY RESULTS",
	OpATAPassThrough16:           "ATA PASS-THROUGH(16)",
	OpRead16:                     "READ(16)",
	OpCompareAndWrite:            "COMPARE AND WRITE",
	OpWrite16:                    "WRITE(16)",
	OpORWrite16:                  "ORWRITE(16)",
	OpWriteAndVerify16:           "WRITE AND VERIFY(16)",
	OpVerify16:                   "VERIFY(16)",
	OpPreFetch16:                 "PRE-FETCH(16)",
	OpSynchronizeCache16:         "SYNCHRONIZE CACHE(16)",
	OpWriteSame16:                "WRITE SAME(16)",
	OpWriteAtomic16:              "WRITE ATOMIC(16)",
	OpServiceActionBidirectional: "SERVICE ACTION BIDIRECTIONAL",
	OpServiceActionIn16:          "SERVICE ACTION IN(16)",
	OpServiceActionOut16:         "SERVICE ACTION OUT(16)",
	OpReportLUNs:                 "REPORT LUNS",
	OpATAPassThrough12:           "ATA PASS-THROUGH(12)",
	OpSecurityProtocolIn:         "SECURITY PROTOCOL IN",
	OpMaintenanceIn:              "MAINTENANCE IN",
	OpMaintenanceOut:             "MAINTENANCE OUT",
	OpRead12:                     "READ(12)",
	OpWrite12:                    "WRITE(12)",
	OpWriteAndVerify12:           "WRITE AND VERIFY(12)",
	OpVerify12:                   "VERIFY(12)",
	OpSecurityProtocolOut:        "SECURITY PROTOCOL OUT",
	OpReadDefectData12:           "READ DEFECT DATA(12)",
	OpReadAttribute:              "READ ATTRIBUTE",
	OpWriteAttribute:             "WRITE ATTRIBUTE",
	OpReadMediaSerialNumber:      "READ MEDIA SERIAL NUMBER",
	OpReadLong10:                 "READ LONG(10)",
	OpWriteLong10:                "WRITE LONG(10)",
	OpSeek10:                     "SEEK(10)",
	OpZBCOut:                     "ZBC OUT",
	OpZBCIn:                      "ZBC IN",
}

// String returns the command's name as SPC/SBC spell it, or "Opcode(0xNN)".
func (op Opcode) String() string {
	if s, ok := opcodeNames[op]; ok {
		return s
	}
	return fmt.Sprintf("Opcode(0x%02x)", byte(op))
}

// Group is the command group code, the top three bits of the operation
// code, which fixes the CDB length (SPC-4 4.2.5.1).
func (op Opcode) Group() int { return int(op >> 5) }

// CDBLength returns the length of the CDB that op begins as fixed by its
// group code: 6, 10, 12 or 16 bytes. It returns 0 for the variable-length
// operation code 7Fh, whose length is in the CDB itself (see [CDBLen]),
// and for the reserved (group 3) and vendor-specific (groups 6 and 7)
// codes, whose length is not standardized.
func (op Opcode) CDBLength() int {
	switch op.Group() {
	case 0:
		return 6
	case 1, 2:
		return 10
	case 4:
		return 16
	case 5:
		return 12
	}
	return 0
}

// ServiceAction is the service action code of a command that has them
// (SERVICE ACTION IN(16), MAINTENANCE IN, variable-length commands, ...).
type ServiceAction uint16

// Service action codes, each meaningful only under its operation code.
const (
	// Under SERVICE ACTION IN(16) (9Eh).
	SAReadCapacity16  ServiceAction = 0x10
	SAGetLBAStatus    ServiceAction = 0x12
	SAReadLong16      ServiceAction = 0x11
	SAReportReferrals ServiceAction = 0x13
	// Under SERVICE ACTION OUT(16) (9Fh).
	SAWriteLong16 ServiceAction = 0x11
	// Under MAINTENANCE IN (A3h).
	SAReportTargetPortGroups ServiceAction = 0x0a
	SAReportSupportedOpcodes ServiceAction = 0x0c
	SAReportSupportedTMFs    ServiceAction = 0x0d
	SAReportTimestamp        ServiceAction = 0x0f
	SAReportIdentifyingInfo  ServiceAction = 0x05
	SAReportPriority         ServiceAction = 0x0e
	SAReportAliases          ServiceAction = 0x0b
	// Under the variable-length operation code (7Fh), SBC-3.
	SARead32           ServiceAction = 0x0009
	SAVerify32         ServiceAction = 0x000a
	SAWrite32          ServiceAction = 0x000b
	SAWriteAndVerify32 ServiceAction = 0x000c
	SAWriteSame32      ServiceAction = 0x000d
	SAORWrite32        ServiceAction = 0x000e
)

// String returns the service action code in hex; the name depends on the
// operation code, see [ServiceActionName].
func (sa ServiceAction) String() string { return fmt.Sprintf("SA(0x%02x)", uint16(sa)) }

// ServiceActionName names the service action sa of operation code op, or
// returns "" when sanbridge does not know it.
func ServiceActionName(op Opcode, sa ServiceAction) string {
	switch op {
	case OpServiceActionIn16:
		switch sa {
		case SAReadCapacity16:
			return "READ CAPACITY(16)"
		case SAGetLBAStatus:
			return "GET LBA STATUS"
		}
	case OpMaintenanceIn:
		switch sa {
		case SAReportTargetPortGroups:
			return "REPORT TARGET PORT GROUPS"
		case SAReportSupportedOpcodes:
			return "REPORT SUPPORTED OPERATION CODES"
		case SAReportSupportedTMFs:
			return "REPORT SUPPORTED TASK MANAGEMENT FUNCTIONS"
		case SAReportTimestamp:
			return "REPORT TIMESTAMP"
		case SAReportIdentifyingInfo:
			return "REPORT IDENTIFYING INFORMATION"
		case SAReportPriority:
			return "REPORT PRIORITY"
		case SAReportAliases:
			return "REPORT ALIASES"
		}
	case OpVariableLength:
		switch sa {
		case SARead32:
			return "READ(32)"
		case SAVerify32:
			return "VERIFY(32)"
		case SAWrite32:
			return "WRITE(32)"
		case SAWriteAndVerify32:
			return "WRITE AND VERIFY(32)"
		case SAWriteSame32:
			return "WRITE SAME(32)"
		case SAORWrite32:
			return "ORWRITE(32)"
		}
	}
	return ""
}

// HasServiceAction reports whether op is one of the operation codes whose
// CDB carries a service action field, and returns it from cdb. For 9Eh,
// 9Fh, A3h and A4h the service action is byte 1 bits 4-0; for 7Fh it is
// bytes 8-9. ok is false when op has no service action or cdb is too short.
func HasServiceAction(cdb []byte) (sa ServiceAction, ok bool) {
	if len(cdb) < 2 {
		return 0, false
	}
	switch Opcode(cdb[0]) {
	case OpServiceActionIn16, OpServiceActionOut16, OpMaintenanceIn, OpMaintenanceOut,
		OpPersistentReserveIn, OpPersistentReserveOut, OpServiceActionBidirectional:
		return ServiceAction(cdb[1] & 0x1f), true
	case OpVariableLength:
		if len(cdb) < 10 {
			return 0, false
		}
		return ServiceAction(uint16(cdb[8])<<8 | uint16(cdb[9])), true
	}
	return 0, false
}
