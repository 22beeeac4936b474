package passthrough

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"slices"

	"github.com/sanbridge/sanbridge/iscsi"
	"github.com/sanbridge/sanbridge/sgio/scsi"
)

// maxLUN bounds the LUN numbers a view may use: the single-level flat
// space addressing the engine encodes (SAM-5 4.7.7).
const maxLUN = 1<<14 - 1

// Mapping places one logical unit at a LUN number of a view.
type Mapping struct {
	// LUN is the number the initiator addresses the logical unit by.
	LUN uint64
	// LU is the logical unit.
	LU *LU
	// ReadOnly refuses write-class commands with DATA PROTECT, WRITE
	// PROTECTED and makes MODE SENSE report WP (SBC-3 6.4.3).
	ReadOnly bool
}

// View is what one initiator sees of a target (LUN masking): a set of
// mappings ordered by LUN number. A View is immutable; the zero View is
// empty, and an initiator with an empty view sees no logical unit.
type View struct {
	maps []Mapping
}

// NewView returns the view made of maps. A LUN number may appear once,
// and so may a logical unit (one I_T_L nexus per logical unit and
// initiator port).
func NewView(maps ...Mapping) (View, error) {
	ms := slices.Clone(maps)
	slices.SortFunc(ms, func(a, b Mapping) int { return cmp.Compare(a.LUN, b.LUN) })
	seen := make(map[*LU]uint64, len(ms))
	for i, m := range ms {
		if m.LU == nil {
			return View{}, fmt.Errorf("passthrough: LUN %d has no logical unit", m.LUN)
		}
		if m.LUN > maxLUN {
			return View{}, fmt.Errorf("passthrough: LUN %d is above %d", m.LUN, maxLUN)
		}
		if i > 0 && ms[i-1].LUN == m.LUN {
			return View{}, fmt.Errorf("passthrough: LUN %d mapped twice", m.LUN)
		}
		if prev, dup := seen[m.LU]; dup {
			return View{}, fmt.Errorf("passthrough: logical unit %s mapped at LUN %d and LUN %d", m.LU.name, prev, m.LUN)
		}
		seen[m.LU] = m.LUN
	}
	return View{maps: ms}, nil
}

// Len returns the number of mappings.
func (v View) Len() int { return len(v.maps) }

// Mappings returns a copy of the mappings, by LUN number.
func (v View) Mappings() []Mapping { return slices.Clone(v.maps) }

// Lookup returns the mapping at LUN number lun.
func (v View) Lookup(lun uint64) (Mapping, bool) {
	if i, ok := v.index(lun); ok {
		return v.maps[i], true
	}
	return Mapping{}, false
}

// index returns the position of LUN number lun.
func (v View) index(lun uint64) (int, bool) {
	// Views are small: a linear scan beats a binary search up to a few
	// dozen entries, and both allocate nothing.
	if len(v.maps) <= 16 {
		for i := range v.maps {
			if v.maps[i].LUN == lun {
				return i, true
			}
		}
		return 0, false
	}
	return slices.BinarySearchFunc(v.maps, lun, func(m Mapping, l uint64) int { return cmp.Compare(m.LUN, l) })
}

// Equal reports whether v and w map the same logical units at the same
// LUN numbers with the same access.
func (v View) Equal(w View) bool { return slices.Equal(v.maps, w.maps) }

// has reports whether lu is mapped in v.
func (v View) has(lu *LU) bool {
	for i := range v.maps {
		if v.maps[i].LU == lu {
			return true
		}
	}
	return false
}

// ViewFunc returns the view of the initiator with the given (normalized)
// iSCSI name. It must be safe for concurrent use and cheap: it runs at
// every login and view change.
type ViewFunc func(initiatorName string) View

// Everyone returns a ViewFunc that gives every initiator v.
func Everyone(v View) ViewFunc { return func(string) View { return v } }

// noSuchLUN answers a command addressed to a LUN number outside the
// initiator's view (SPC-4 4.6.3 and 6.6.1): INQUIRY reports peripheral
// qualifier 011b, REQUEST SENSE returns LOGICAL UNIT NOT SUPPORTED as
// data, anything else gets it as CHECK CONDITION.
func noSuchLUN(cmd *iscsi.Command) iscsi.Response {
	switch scsi.Opcode(cmd.CDB[0]) {
	case scsi.OpInquiry:
		if len(cmd.CDB) < 6 || cmd.CDB[1]&0x01 != 0 || cmd.CDB[2] != 0 {
			return checkCondition(scsi.SenseIllegalRequest, scsi.ASCLUNNotSupported)
		}
		var inq [36]byte
		inq[0] = 0x7f // qualifier 011b, type 1Fh: no LU here
		inq[2] = 0x06 // SPC-4
		inq[3] = 0x02
		inq[4] = 31
		copy(inq[8:], "SANBRIDG")
		copy(inq[16:], "NO LUN          ")
		copy(inq[32:], "0001")
		alloc := int(binary.BigEndian.Uint16(cmd.CDB[3:5]))
		n := copy(cmd.ReadBuf, inq[:min(alloc, len(inq))])
		return iscsi.Response{ReadLen: n, Wanted: min(alloc, len(inq))}
	case scsi.OpRequestSense:
		if len(cmd.CDB) < 6 {
			break
		}
		return senseAsData(cmd, scsi.NewSense(scsi.SenseIllegalRequest, scsi.ASCLUNNotSupported))
	}
	return checkCondition(scsi.SenseIllegalRequest, scsi.ASCLUNNotSupported)
}

// reportLUNs answers REPORT LUNS (SPC-4 6.33) from the view.
func reportLUNs(v View, cmd *iscsi.Command) iscsi.Response {
	cdb := cmd.CDB
	if len(cdb) < 12 {
		return iscsi.Response{Status: scsi.CheckCondition, Sense: scsi.InvalidFieldInCDB(0, 7)}
	}
	alloc := int(binary.BigEndian.Uint32(cdb[6:10]))
	if alloc < 16 {
		// SPC-4 6.33: an allocation length below 16 is an error.
		return iscsi.Response{Status: scsi.CheckCondition, Sense: scsi.InvalidFieldInCDB(6, 7)}
	}
	var maps []Mapping
	switch cdb[2] {
	case 0x00, 0x02: // all logical units (no well-known LUs exist)
		maps = v.maps
	case 0x01: // well-known only: none
	case 0x10, 0x11, 0x12:
		// Administrative/subsidiary LU selections: no conglomerates here.
	default:
		return iscsi.Response{Status: scsi.CheckCondition, Sense: scsi.InvalidFieldInCDB(2, 7)}
	}
	full := 8 + 8*len(maps)
	out := cmd.ReadBuf
	n := 0
	put := func(b []byte) {
		n += copy(out[min(n, len(out)):], b)
	}
	var hdr [8]byte
	binary.BigEndian.PutUint32(hdr[:4], uint32(8*len(maps)))
	put(hdr[:])
	for _, m := range maps {
		l := iscsi.MakeLUN(m.LUN)
		put(l[:])
	}
	return iscsi.Response{ReadLen: min(n, alloc), Wanted: min(full, alloc)}
}
