package testinit

import (
	"encoding/binary"
	"fmt"

	"github.com/sanbridge/sanbridge/iscsi"
	"github.com/sanbridge/sanbridge/sgio/scsi"
)

// CDBs of the commands the gateway's tests send.

// TUR is TEST UNIT READY.
func TUR() []byte { return make([]byte, 6) }

// Inquiry is a standard INQUIRY.
func Inquiry(alloc uint16) []byte {
	return []byte{byte(scsi.OpInquiry), 0, 0, byte(alloc >> 8), byte(alloc), 0}
}

// RequestSense is REQUEST SENSE in fixed format.
func RequestSense(alloc byte) []byte { return []byte{byte(scsi.OpRequestSense), 0, 0, 0, alloc, 0} }

// ReportLUNs is REPORT LUNS, SELECT REPORT 0.
func ReportLUNs(alloc uint32) []byte {
	c := make([]byte, 12)
	c[0] = byte(scsi.OpReportLUNs)
	binary.BigEndian.PutUint32(c[6:], alloc)
	return c
}

// Read10 and Write10 move blocks 512-byte blocks at lba.
func Read10(lba uint32, blocks uint16) []byte  { return rw10(scsi.OpRead10, lba, blocks) }
func Write10(lba uint32, blocks uint16) []byte { return rw10(scsi.OpWrite10, lba, blocks) }

func rw10(op scsi.Opcode, lba uint32, blocks uint16) []byte {
	c := make([]byte, 10)
	c[0] = byte(op)
	binary.BigEndian.PutUint32(c[2:], lba)
	binary.BigEndian.PutUint16(c[7:], blocks)
	return c
}

// Reserve6 and Release6 are the SPC-2 logical unit reservation commands.
func Reserve6() []byte { return []byte{byte(scsi.OpReserve6), 0, 0, 0, 0, 0} }
func Release6() []byte { return []byte{byte(scsi.OpRelease6), 0, 0, 0, 0, 0} }

// ModeSense6 and ModeSense10 ask for every mode page.
func ModeSense6(alloc byte) []byte { return []byte{byte(scsi.OpModeSense6), 0, 0x3f, 0, alloc, 0} }
func ModeSense10(alloc uint16) []byte {
	return []byte{byte(scsi.OpModeSense10), 0, 0x3f, 0, 0, 0, 0, byte(alloc >> 8), byte(alloc), 0}
}

// LUNs decodes REPORT LUNS parameter data.
func LUNs(data []byte) ([]uint64, error) {
	if len(data) < 8 {
		return nil, fmt.Errorf("testinit: REPORT LUNS data of %d bytes", len(data))
	}
	n := int(binary.BigEndian.Uint32(data))
	var out []uint64
	for i := 8; i < 8+n && i+8 <= len(data); i += 8 {
		var l iscsi.LUN
		copy(l[:], data[i:])
		v, ok := l.Number()
		if !ok {
			return nil, fmt.Errorf("testinit: LUN %x has no number", l)
		}
		out = append(out, v)
	}
	return out, nil
}

// PersistentReserveOut is PERSISTENT RESERVE OUT with service action sa,
// reservation type typ (scope LU) and a parameter list of plen bytes.
func PersistentReserveOut(sa, typ byte, plen int) []byte {
	c := []byte{byte(scsi.OpPersistentReserveOut), sa, typ, 0, 0, 0, 0, 0, 0, 0}
	binary.BigEndian.PutUint32(c[5:9], uint32(plen))
	return c
}

// PersistentReserveIn is PERSISTENT RESERVE IN with service action sa.
func PersistentReserveIn(sa byte, alloc uint16) []byte {
	c := []byte{byte(scsi.OpPersistentReserveIn), sa, 0, 0, 0, 0, 0, 0, 0, 0}
	binary.BigEndian.PutUint16(c[7:9], alloc)
	return c
}

// PRParams is the basic 24-byte PERSISTENT RESERVE OUT parameter list:
// RESERVATION KEY, SERVICE ACTION RESERVATION KEY and the byte of
// SPEC_I_PT (08h), ALL_TG_PT (04h) and APTPL (01h).
func PRParams(key, saKey uint64, flags byte) []byte {
	p := make([]byte, 24)
	binary.BigEndian.PutUint64(p[0:], key)
	binary.BigEndian.PutUint64(p[8:], saKey)
	p[20] = flags
	return p
}
