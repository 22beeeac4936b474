package isns

import (
	"bytes"
	"testing"
)

// FuzzDecodeMessage: any bytes either fail to decode with an error or
// decode to a message that encodes and decodes back to itself; the
// attribute accessors never panic.
func FuzzDecodeMessage(f *testing.F) {
	f.Add([]byte{})
	m, _, err := DecodeMessage(mustHex(esiGolden), 0)
	if err != nil {
		f.Fatal(err)
	}
	b, _ := m.AppendBinary(nil, 16)
	f.Add(b)
	f.Fuzz(func(t *testing.T, in []byte) {
		m, n, err := DecodeMessage(in, 1<<16)
		if err != nil {
			return
		}
		if n > len(in) {
			t.Fatalf("consumed %d of %d bytes", n, len(in))
		}
		for _, a := range m.Attrs {
			a.Str()
			a.Uint32()
			a.Uint64()
			a.IP()
			a.Port()
			_ = a.Tag.String()
		}
		_ = m.Function.String() + m.Flags.String() + m.Status.String()
		SplitDelimited(m.Attrs)
		for _, max := range []int{0, 16, 100} {
			enc, err := m.AppendBinary(nil, max)
			if err != nil {
				t.Fatalf("encode: %v", err)
			}
			back, k, err := DecodeMessage(enc, 1<<20)
			if err != nil || k != len(enc) {
				t.Fatalf("re-decode (max %d): %v (%d of %d bytes)", max, err, k, len(enc))
			}
			if back.Function != m.Function || back.Flags != m.Flags || back.XID != m.XID || back.Status != m.Status || len(back.Attrs) != len(m.Attrs) {
				t.Fatalf("round trip: %+v vs %+v", back, m)
			}
			for i := range m.Attrs {
				if back.Attrs[i].Tag != m.Attrs[i].Tag || !bytes.Equal(back.Attrs[i].Value, m.Attrs[i].Value) {
					t.Fatalf("attr %d: %v vs %v", i, back.Attrs[i], m.Attrs[i])
				}
			}
		}
	})
}
