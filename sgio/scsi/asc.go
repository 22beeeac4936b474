package scsi

import "fmt"

// SenseKey is the sense key of sense data (SPC-4 4.5.6, table 48).
type SenseKey byte

// Sense keys.
const (
	SenseNoSense        SenseKey = 0x0
	SenseRecoveredError SenseKey = 0x1
	SenseNotReady       SenseKey = 0x2
	SenseMediumError    SenseKey = 0x3
	SenseHardwareError  SenseKey = 0x4
	SenseIllegalRequest SenseKey = 0x5
	SenseUnitAttention  SenseKey = 0x6
	SenseDataProtect    SenseKey = 0x7
	SenseBlankCheck     SenseKey = 0x8
	SenseVendorSpecific SenseKey = 0x9
	SenseCopyAborted    SenseKey = 0xa
	SenseAbortedCommand SenseKey = 0xb
	SenseVolumeOverflow SenseKey = 0xd
	SenseMiscompare     SenseKey = 0xe
	SenseCompleted      SenseKey = 0xf
)

// String returns the sense key's name as SPC-4 spells it.
func (k SenseKey) String() string {
	switch k {
	case SenseNoSense:
		return "NO SENSE"
	case SenseRecoveredError:
		return "RECOVERED ERROR"
	case SenseNotReady:
		return "NOT READY"
	case SenseMediumError:
		return "MEDIUM ERROR"
	case SenseHardwareError:
		return "HARDWARE ERROR"
	case SenseIllegalRequest:
		return "ILLEGAL REQUEST"
	case SenseUnitAttention:
		return "UNIT ATTENTION"
	case SenseDataProtect:
		return "DATA PROTECT"
	case SenseBlankCheck:
		return "BLANK CHECK"
	case SenseVendorSpecific:
		return "VENDOR SPECIFIC"
	case SenseCopyAborted:
		return "COPY ABORTED"
	case SenseAbortedCommand:
		return "ABORTED COMMAND"
	case SenseVolumeOverflow:
		return "VOLUME OVERFLOW"
	case SenseMiscompare:
		return "MISCOMPARE"
	case SenseCompleted:
		return "COMPLETED"
	}
	return fmt.Sprintf("SenseKey(0x%x)", byte(k))
}

// ASC is an additional sense code (high byte) and its qualifier (low
// byte), SPC-4 4.5.6 table 49: bytes 12-13 of fixed sense data, bytes 2-3
// of descriptor sense data. The numeric value is the one libiscsi and
// sg3_utils print ("ascq 0x2400").
type ASC uint16

// NewASC returns the ASC for an ADDITIONAL SENSE CODE and its QUALIFIER.
func NewASC(code, qualifier byte) ASC { return ASC(uint16(code)<<8 | uint16(qualifier)) }

// Code returns the ADDITIONAL SENSE CODE.
func (a ASC) Code() byte { return byte(a >> 8) }

// Qualifier returns the ADDITIONAL SENSE CODE QUALIFIER.
func (a ASC) Qualifier() byte { return byte(a) }

// Additional sense codes sanbridge builds or recognizes.
const (
	ASCNoAdditionalSense           ASC = 0x0000
	ASCNotReadyCauseNotReportable  ASC = 0x0400
	ASCNotReadyBecomingReady       ASC = 0x0401
	ASCNotReadyInitCommandRequired ASC = 0x0402
	ASCNotReadyManualIntervention  ASC = 0x0403
	ASCNotReadyFormatInProgress    ASC = 0x0404
	ASCNotReadySanitizeInProgress  ASC = 0x041b
	ASCLUCommunicationFailure      ASC = 0x0800
	ASCLUCommunicationTimeout      ASC = 0x0801
	ASCLUCommunicationParity       ASC = 0x0802
	ASCWriteError                  ASC = 0x0c00
	ASCInvalidFieldInIU            ASC = 0x0e03
	ASCUnrecoveredReadError        ASC = 0x1100
	ASCParameterListLengthError    ASC = 0x1a00
	ASCMiscompareDuringVerify      ASC = 0x1d00
	ASCMiscompareUnmappedLBA       ASC = 0x1d01
	ASCInvalidOpcode               ASC = 0x2000
	ASCLBAOutOfRange               ASC = 0x2100
	ASCInvalidFieldInCDB           ASC = 0x2400
	ASCLUNNotSupported             ASC = 0x2500
	ASCInvalidFieldInParamList     ASC = 0x2600
	ASCParameterNotSupported       ASC = 0x2601
	ASCParameterValueInvalid       ASC = 0x2602
	ASCInvalidReleaseOfPR          ASC = 0x2604
	ASCWriteProtected              ASC = 0x2700
	ASCHardwareWriteProtected      ASC = 0x2701
	ASCSoftwareWriteProtected      ASC = 0x2702
	ASCSpaceAllocFailedWP          ASC = 0x2707
	ASCNotReadyToReadyChange       ASC = 0x2800
	ASCPowerOnOrReset              ASC = 0x2900
	ASCPowerOnOccurred             ASC = 0x2901
	ASCBusResetOccurred            ASC = 0x2902
	ASCBusDeviceResetOccurred      ASC = 0x2903
	ASCDeviceInternalReset         ASC = 0x2904
	ASCITNexusLossOccurred         ASC = 0x2907
	ASCParametersChanged           ASC = 0x2a00
	ASCModeParametersChanged       ASC = 0x2a01
	ASCReservationsPreempted       ASC = 0x2a03
	ASCReservationsReleased        ASC = 0x2a04
	ASCRegistrationsPreempted      ASC = 0x2a05
	ASCCapacityDataChanged         ASC = 0x2a09
	ASCCommandsClearedByAnother    ASC = 0x2f00
	ASCSavingParamsNotSupported    ASC = 0x3900
	ASCMediumNotPresent            ASC = 0x3a00
	ASCMediumNotPresentTrayClosed  ASC = 0x3a01
	ASCMediumNotPresentTrayOpen    ASC = 0x3a02
	ASCLogicalUnitFailure          ASC = 0x3e01
	ASCInquiryDataChanged          ASC = 0x3f03
	ASCReportedLUNsDataChanged     ASC = 0x3f0e
	ASCInternalTargetFailure       ASC = 0x4400
	ASCSCSIParityError             ASC = 0x4700
	ASCProtocolServiceCRCError     ASC = 0x4705
	ASCInitiatorDetectedError      ASC = 0x4800
	ASCInvalidMessageError         ASC = 0x4900
	ASCDataPhaseError              ASC = 0x4b00
	ASCDataOffsetError             ASC = 0x4b05
	ASCOverlappedCommands          ASC = 0x4e00
	ASCMediumRemovalPrevented      ASC = 0x5302
	ASCInsufficientResources       ASC = 0x5503
	ASCInsufficientRegResources    ASC = 0x5504
)

var ascNames = map[ASC]string{
	ASCNoAdditionalSense:           "NO ADDITIONAL SENSE INFORMATION",
	ASCNotReadyCauseNotReportable:  "LOGICAL UNIT NOT READY, CAUSE NOT REPORTABLE",
	ASCNotReadyBecomingReady:       "LOGICAL UNIT IS IN PROCESS OF BECOMING READY",
	ASCNotReadyInitCommandRequired: "LOGICAL UNIT NOT READY, INITIALIZING COMMAND REQUIRED",
	ASCNotReadyManualIntervention:  "LOGICAL UNIT NOT READY, MANUAL INTERVENTION REQUIRED",
	ASCNotReadyFormatInProgress:    "LOGICAL UNIT NOT READY, FORMAT IN PROGRESS",
	ASCNotReadySanitizeInProgress:  "LOGICAL UNIT NOT READY, SANITIZE IN PROGRESS",
	ASCLUCommunicationFailure:      "LOGICAL UNIT COMMUNICATION FAILURE",
	ASCLUCommunicationTimeout:      "LOGICAL UNIT COMMUNICATION TIME-OUT",
	ASCLUCommunicationParity:       "LOGICAL UNIT COMMUNICATION PARITY ERROR",
	ASCWriteError:                  "WRITE ERROR",
	ASCInvalidFieldInIU:            "INVALID FIELD IN COMMAND INFORMATION UNIT",
	ASCUnrecoveredReadError:        "UNRECOVERED READ ERROR",
	ASCParameterListLengthError:    "PARAMETER LIST LENGTH ERROR",
	ASCMiscompareDuringVerify:      "MISCOMPARE DURING VERIFY OPERATION",
	ASCMiscompareUnmappedLBA:       "MISCOMPARE VERIFY OF UNMAPPED LBA",
	ASCInvalidOpcode:               "INVALID COMMAND OPERATION CODE",
	ASCLBAOutOfRange:               "LOGICAL BLOCK ADDRESS OUT OF RANGE",
	ASCInvalidFieldInCDB:           "INVALID FIELD IN CDB",
	ASCLUNNotSupported:             "LOGICAL UNIT NOT SUPPORTED",
	ASCInvalidFieldInParamList:     "INVALID FIELD IN PARAMETER LIST",
	ASCParameterNotSupported:       "PARAMETER NOT SUPPORTED",
	ASCParameterValueInvalid:       "PARAMETER VALUE INVALID",
	ASCInvalidReleaseOfPR:          "INVALID RELEASE OF PERSISTENT RESERVATION",
	ASCWriteProtected:              "WRITE PROTECTED",
	ASCHardwareWriteProtected:      "HARDWARE WRITE PROTECTED",
	ASCSoftwareWriteProtected:      "LOGICAL UNIT SOFTWARE WRITE PROTECTED",
	ASCSpaceAllocFailedWP:          "SPACE ALLOCATION FAILED WRITE PROTECT",
	ASCNotReadyToReadyChange:       "NOT READY TO READY CHANGE, MEDIUM MAY HAVE CHANGED",
	ASCPowerOnOrReset:              "POWER ON, RESET, OR BUS DEVICE RESET OCCURRED",
	ASCPowerOnOccurred:             "POWER ON OCCURRED",
	ASCBusResetOccurred:            "SCSI BUS RESET OCCURRED",
	ASCBusDeviceResetOccurred:      "BUS DEVICE RESET FUNCTION OCCURRED",
	ASCDeviceInternalReset:         "DEVICE INTERNAL RESET",
	ASCITNexusLossOccurred:         "I_T NEXUS LOSS OCCURRED",
	ASCParametersChanged:           "PARAMETERS CHANGED",
	ASCModeParametersChanged:       "MODE PARAMETERS CHANGED",
	ASCReservationsPreempted:       "RESERVATIONS PREEMPTED",
	ASCReservationsReleased:        "RESERVATIONS RELEASED",
	ASCRegistrationsPreempted:      "REGISTRATIONS PREEMPTED",
	ASCCapacityDataChanged:         "CAPACITY DATA HAS CHANGED",
	ASCCommandsClearedByAnother:    "COMMANDS CLEARED BY ANOTHER INITIATOR",
	ASCSavingParamsNotSupported:    "SAVING PARAMETERS NOT SUPPORTED",
	ASCMediumNotPresent:            "MEDIUM NOT PRESENT",
	ASCMediumNotPresentTrayClosed:  "MEDIUM NOT PRESENT - TRAY CLOSED",
	ASCMediumNotPresentTrayOpen:    "MEDIUM NOT PRESENT - TRAY OPEN",
	ASCLogicalUnitFailure:          "LOGICAL UNIT FAILURE",
	ASCInquiryDataChanged:          "INQUIRY DATA HAS CHANGED",
	ASCReportedLUNsDataChanged:     "REPORTED LUNS DATA HAS CHANGED",
	ASCInternalTargetFailure:       "INTERNAL TARGET FAILURE",
	ASCSCSIParityError:             "SCSI PARITY ERROR",
	ASCProtocolServiceCRCError:     "PROTOCOL SERVICE CRC ERROR",
	ASCInitiatorDetectedError:      "INITIATOR DETECTED ERROR MESSAGE RECEIVED",
	ASCInvalidMessageError:         "INVALID MESSAGE ERROR",
	ASCDataPhaseError:              "DATA PHASE ERROR",
	ASCDataOffsetError:             "DATA OFFSET ERROR",
	ASCOverlappedCommands:          "OVERLAPPED COMMANDS ATTEMPTED",
	ASCMediumRemovalPrevented:      "MEDIUM REMOVAL PREVENTED",
	ASCInsufficientResources:       "INSUFFICIENT RESOURCES",
	ASCInsufficientRegResources:    "INSUFFICIENT REGISTRATION RESOURCES",
}

// String returns the ASC/ASCQ's description from SPC-4 when sanbridge knows
// it, else "ASC 0xNN/0xNN".
func (a ASC) String() string {
	if s, ok := ascNames[a]; ok {
		return s
	}
	return fmt.Sprintf("ASC 0x%02x/0x%02x", a.Code(), a.Qualifier())
}
