package scsi

import "fmt"

// Status is the SCSI status byte a command completes with (SAM-5 5.3.1,
// table 29). Bits 7-6 and 0 are reserved; the values are the full byte,
// not the shifted "masked status" of old Linux interfaces.
type Status byte

// SCSI status codes (SAM-5 table 29).
const (
	Good                Status = 0x00
	CheckCondition      Status = 0x02
	ConditionMet        Status = 0x04
	Busy                Status = 0x08
	ReservationConflict Status = 0x18
	TaskSetFull         Status = 0x28
	ACAActive           Status = 0x30
	TaskAborted         Status = 0x40
)

// String returns the status' name as SAM-5 spells it.
func (s Status) String() string {
	switch s {
	case Good:
		return "GOOD"
	case CheckCondition:
		return "CHECK CONDITION"
	case ConditionMet:
		return "CONDITION MET"
	case Busy:
		return "BUSY"
	case ReservationConflict:
		return "RESERVATION CONFLICT"
	case TaskSetFull:
		return "TASK SET FULL"
	case ACAActive:
		return "ACA ACTIVE"
	case TaskAborted:
		return "TASK ABORTED"
	}
	return fmt.Sprintf("Status(0x%02x)", byte(s))
}
