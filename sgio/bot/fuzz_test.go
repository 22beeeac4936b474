package bot

import (
	"bytes"
	"errors"
	"testing"
)

// FuzzParseCSW: the CSW parser and its checks never panic; what they
// accept is exactly 13 bytes with the signature that re-encode to the
// input, a tag equal to the CBW's, and a residue within the transfer
// length unless the status is a phase error.
func FuzzParseCSW(f *testing.F) {
	f.Add(wireCSW(1, 0, CSWPassed), uint32(1), uint32(36))
	f.Add(wireCSW(7, 4096, CSWFailed), uint32(7), uint32(4096))
	f.Add(wireCSW(9, 0, CSWPhaseError), uint32(9), uint32(0))
	f.Add(wireCSW(3, 0, CSWPassed)[:12], uint32(3), uint32(0))
	f.Add(append(wireCSW(3, 0, CSWPassed), 0), uint32(3), uint32(0))
	f.Fuzz(func(t *testing.T, b []byte, tag, length uint32) {
		c, err := ParseCSW(b)
		if err != nil {
			if !errors.Is(err, ErrInvalidCSW) {
				t.Fatalf("error %v does not wrap ErrInvalidCSW", err)
			}
			return
		}
		re, _ := c.AppendBinary(nil)
		if !bytes.Equal(re, b) {
			t.Fatalf("re-encoded %x, parsed from %x", re, b)
		}
		cbw := CBW{Tag: tag, DataTransferLength: length, CDB: []byte{0}}
		if err := c.Check(&cbw); err != nil {
			if !errors.Is(err, ErrInvalidCSW) && !errors.Is(err, ErrMeaninglessCSW) {
				t.Fatalf("check error %v not classified", err)
			}
			return
		}
		if c.Tag != tag || c.Status > CSWPhaseError || (c.Status != CSWPhaseError && c.DataResidue > length) {
			t.Fatalf("accepted %+v for tag %d length %d", c, tag, length)
		}
		if r := resid(int(length%(1<<20)), int(length%(1<<20))/2, c.DataResidue); r < 0 || r > int(length%(1<<20)) {
			t.Fatalf("resid %d outside the buffer", r)
		}
	})
}

// FuzzParseCBW: the CBW decoder never panics and what it accepts
// re-encodes to the input.
func FuzzParseCBW(f *testing.F) {
	for _, c := range []CBW{
		{Tag: 1, DataTransferLength: 36, DataIn: true, CDB: []byte{0x12, 0, 0, 0, 36, 0}},
		{Tag: 2, DataTransferLength: 4096, LUN: 3, CDB: []byte{0x2a, 0, 0, 0, 0, 0, 0, 0, 8, 0}},
		{Tag: 3, CDB: make([]byte, 16)},
	} {
		b, _ := c.AppendBinary(nil)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseCBW(b)
		if err != nil {
			if !errors.Is(err, ErrInvalidCBW) {
				t.Fatalf("error %v does not wrap ErrInvalidCBW", err)
			}
			return
		}
		re, err := c.AppendBinary(nil)
		if err != nil {
			t.Fatalf("accepted %x but cannot encode it: %v", b, err)
		}
		// The CDB padding and a direction bit without data are not kept.
		if !bytes.Equal(re[:12], b[:12]) || !bytes.Equal(re[13:15+len(c.CDB)], b[13:15+len(c.CDB)]) {
			t.Fatalf("re-encoded %x from %x", re, b)
		}
	})
}
