package scsi

import (
	"bytes"
	"errors"
	"testing"
)

func TestFixedSenseGolden(t *testing.T) {
	got := FixedSense(SenseIllegalRequest, ASCInvalidOpcode)
	want := []byte{0x70, 0, 0x05, 0, 0, 0, 0, 0x0a, 0, 0, 0, 0, 0x20, 0x00, 0, 0, 0, 0}
	if !bytes.Equal(got, want) {
		t.Fatalf("FixedSense = % x, want % x", got, want)
	}
}

func TestInvalidFieldInCDBGolden(t *testing.T) {
	tests := []struct {
		off, bit int
		sks      []byte
	}{
		{1, 7, []byte{0xc0 | 0x08 | 7, 0x00, 0x01}},
		{2, -1, []byte{0xc0, 0x00, 0x02}},
		{9, 0, []byte{0xc8, 0x00, 0x09}},
		{300, 3, []byte{0xcb, 0x01, 0x2c}},
	}
	for _, tc := range tests {
		got := InvalidFieldInCDB(tc.off, tc.bit)
		if len(got) != FixedSenseLen || got[0] != 0x70 || got[2] != 0x05 || got[12] != 0x24 || got[13] != 0 {
			t.Fatalf("InvalidFieldInCDB(%d,%d) header = % x", tc.off, tc.bit, got)
		}
		if !bytes.Equal(got[15:18], tc.sks) {
			t.Errorf("InvalidFieldInCDB(%d,%d) SKS = % x, want % x", tc.off, tc.bit, got[15:18], tc.sks)
		}
		s, err := ParseSense(got)
		if err != nil {
			t.Fatal(err)
		}
		inCDB, off, bit, ok := s.FieldPointer()
		if !ok || !inCDB || off != tc.off || bit != tc.bit {
			t.Errorf("FieldPointer = %v %d %d %v, want true %d %d true", inCDB, off, bit, ok, tc.off, tc.bit)
		}
	}
}

func TestInvalidFieldInParamList(t *testing.T) {
	got := InvalidFieldInParamList(8, -1)
	want := []byte{0x70, 0, 0x05, 0, 0, 0, 0, 0x0a, 0, 0, 0, 0, 0x26, 0x00, 0, 0x80, 0x00, 0x08}
	if !bytes.Equal(got, want) {
		t.Fatalf("got % x, want % x", got, want)
	}
}

func TestDescriptorSenseGolden(t *testing.T) {
	s := FieldPointerSense(ASCInvalidFieldInCDB, true, 1, 4)
	s.InfoValid = true
	s.Info = 0x0102030405060708
	got := s.AppendDescriptor(nil)
	want := []byte{
		0x72, 0x05, 0x24, 0x00, 0, 0, 0, 20,
		0x00, 0x0a, 0x80, 0, 1, 2, 3, 4, 5, 6, 7, 8,
		0x02, 0x06, 0, 0, 0x80 | 0x40 | 0x08 | 4, 0x00, 0x01, 0,
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("got  % x\nwant % x", got, want)
	}
	p, err := ParseSense(got)
	if err != nil {
		t.Fatal(err)
	}
	s.Descriptor = true
	if p != s {
		t.Fatalf("round trip: got %+v, want %+v", p, s)
	}
}

func TestSenseRoundTrip(t *testing.T) {
	cases := []Sense{
		{},
		NewSense(SenseNotReady, ASCMediumNotPresent),
		{Key: SenseMiscompare, ASC: ASCMiscompareDuringVerify, InfoValid: true, Info: 4097},
		{Key: SenseMediumError, ASC: ASCUnrecoveredReadError, Deferred: true, FRU: 3, CommandInfo: 7},
		{Key: SenseNoSense, ILI: true, InfoValid: true, Info: 12},
		{Key: SenseNoSense, Filemark: true, EOM: true},
		FieldPointerSense(ASCInvalidFieldInParamList, false, 24, -1),
	}
	for _, s := range cases {
		for _, desc := range []bool{false, true} {
			in := s
			in.Descriptor = desc
			b := in.Bytes()
			out, err := ParseSense(b)
			if err != nil {
				t.Fatalf("%v: %v", in, err)
			}
			if out != in {
				t.Errorf("desc=%v round trip\n got %+v\nwant %+v\nbytes % x", desc, out, in, b)
			}
		}
	}
}

func TestFixedInfoTooWide(t *testing.T) {
	s := Sense{Key: SenseMediumError, InfoValid: true, Info: 1 << 40}
	b := s.AppendFixed(nil)
	if b[0]&0x80 != 0 {
		t.Fatalf("VALID set for a 41-bit information field: % x", b)
	}
	p, _ := ParseSense(b)
	if p.InfoValid {
		t.Fatal("parsed VALID")
	}
}

func TestParseSenseErrors(t *testing.T) {
	for _, b := range [][]byte{nil, {0x70}, {0x70, 0}, {0x72}} {
		if _, err := ParseSense(b); !errors.Is(err, ErrShortSense) {
			t.Errorf("ParseSense(% x) err = %v, want ErrShortSense", b, err)
		}
	}
	if _, err := ParseSense([]byte{0x7f, 0, 5}); !errors.Is(err, ErrSenseFormat) {
		t.Errorf("err = %v, want ErrSenseFormat", err)
	}
}

func TestParseSenseTruncated(t *testing.T) {
	full := FixedSense(SenseIllegalRequest, ASCLBAOutOfRange)
	s, err := ParseSense(full[:14])
	if err != nil || s.Key != SenseIllegalRequest || s.ASC != ASCLBAOutOfRange {
		t.Fatalf("14 bytes: %+v %v", s, err)
	}
	s, err = ParseSense(full[:8])
	if err != nil || s.Key != SenseIllegalRequest || s.ASC != 0 {
		t.Fatalf("8 bytes: %+v %v", s, err)
	}
	// ADDITIONAL SENSE LENGTH shorter than the buffer: trailing bytes ignored.
	short := append([]byte(nil), full...)
	short[7] = 4 // covers bytes 8-11 only: no ASC
	s, err = ParseSense(short)
	if err != nil || s.ASC != 0 {
		t.Fatalf("short additional length: %+v %v", s, err)
	}
	// Descriptor with a truncated descriptor: header fields still parsed.
	d := []byte{0x72, 0x03, 0x11, 0x00, 0, 0, 0, 12, 0x00, 0x0a, 0x80, 0, 1, 2}
	s, err = ParseSense(d)
	if err != nil || s.Key != SenseMediumError || s.ASC != ASCUnrecoveredReadError || s.InfoValid {
		t.Fatalf("truncated descriptor: %+v %v", s, err)
	}
}

func TestStrings(t *testing.T) {
	if got := SenseIllegalRequest.String(); got != "ILLEGAL REQUEST" {
		t.Errorf("got %q", got)
	}
	if got := SenseKey(0xc).String(); got != "SenseKey(0xc)" {
		t.Errorf("got %q", got)
	}
	if got := ASCInvalidFieldInCDB.String(); got != "INVALID FIELD IN CDB" {
		t.Errorf("got %q", got)
	}
	if got := NewASC(0x99, 0x01).String(); got != "ASC 0x99/0x01" {
		t.Errorf("got %q", got)
	}
	s := FieldPointerSense(ASCInvalidFieldInCDB, true, 1, 7)
	if got := s.String(); got != "ILLEGAL REQUEST: INVALID FIELD IN CDB (CDB byte 1 bit 7)" {
		t.Errorf("got %q", got)
	}
	if got := OpRead10.String(); got != "READ(10)" {
		t.Errorf("got %q", got)
	}
	if got := Opcode(0xff).String(); got != "Opcode(0xff)" {
		t.Errorf("got %q", got)
	}
	if got := ServiceActionName(OpServiceActionIn16, SAReadCapacity16); got != "READ CAPACITY(16)" {
		t.Errorf("got %q", got)
	}
}

func FuzzParseSense(f *testing.F) {
	f.Add(FixedSense(SenseIllegalRequest, ASCInvalidOpcode))
	f.Add(InvalidFieldInCDB(1, 7))
	f.Add(DescriptorSense(SenseNotReady, ASCMediumNotPresent))
	s := FieldPointerSense(ASCInvalidFieldInCDB, true, 2, 5)
	s.InfoValid, s.Info, s.ILI, s.FRU, s.CommandInfo = true, 1<<40, true, 9, 3
	f.Add(s.AppendDescriptor(nil))
	f.Add([]byte{0x72, 0x05, 0x24, 0x00, 0, 0, 0, 0xff, 0x02, 0xff})
	f.Add([]byte{0xf0, 0, 0x03, 1, 2, 3, 4, 0x0a})
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := ParseSense(b)
		if err != nil {
			return
		}
		// Re-encoding in the parsed format and parsing again is stable.
		again, err := ParseSense(s.Bytes())
		if err != nil {
			t.Fatalf("re-parse of % x: %v", s.Bytes(), err)
		}
		if !s.Descriptor && s.Info > 0xffffffff {
			t.Fatalf("fixed format yielded a 64-bit info")
		}
		if again != s {
			t.Fatalf("unstable:\n first %+v\nsecond %+v\n input % x", s, again, b)
		}
		_ = s.String()
	})
}

// TestConvertSenseRoundTrip: fixed -> descriptor -> fixed and descriptor
// -> fixed -> descriptor keep every field both formats carry.
func TestConvertSenseRoundTrip(t *testing.T) {
	cases := []Sense{
		NewSense(SenseNotReady, ASCMediumNotPresent),
		{Key: SenseMiscompare, ASC: ASCMiscompareDuringVerify, InfoValid: true, Info: 4097},
		{Key: SenseMediumError, ASC: ASCUnrecoveredReadError, Deferred: true, FRU: 3, CommandInfo: 7, InfoValid: true, Info: 0xfffffffe},
		{Key: SenseNoSense, ILI: true, InfoValid: true, Info: 12},
		{Key: SenseNoSense, Filemark: true, InfoValid: true, Info: 1},
		{Key: SenseMediumError, EOM: true, ILI: true, InfoValid: true, Info: 3, ASC: NewASC(0x00, 0x02)},
		{Key: SenseBlankCheck, EOM: true, ASC: NewASC(0x00, 0x05)},
		FieldPointerSense(ASCInvalidFieldInParamList, false, 24, -1),
		FieldPointerSense(ASCInvalidFieldInCDB, true, 2, 5),
		{Key: SenseNotReady, ASC: ASCNotReadyFormatInProgress, SKSV: true, SKS: [3]byte{0, 0x80, 0}},
		{Key: SenseRecoveredError, ASC: NewASC(0x17, 0x01), InfoValid: false, Info: 77},
	}
	for _, s := range cases {
		for _, stream := range []bool{false, true} {
			fixed := s.AppendFixed(nil)
			desc := ConvertSense(fixed, true, stream)
			if !IsDescriptorSense(desc) {
				t.Fatalf("%v: not descriptor: % x", s, desc)
			}
			d, err := ParseSense(desc)
			if err != nil {
				t.Fatal(err)
			}
			want := s
			want.Descriptor = true
			if d != want {
				t.Errorf("fixed->descriptor (stream %v)\n got %+v\nwant %+v\nbytes % x", stream, d, want, desc)
			}
			if stream && s.ILI && !s.Filemark && !s.EOM {
				// SSC-4: ILI in the stream commands descriptor.
				if !bytes.Contains(desc[8:], []byte{0x04, 0x02, 0, 0x20}) {
					t.Errorf("stream ILI not in a stream commands descriptor: % x", desc)
				}
			}
			back := ConvertSense(desc, false, stream)
			if !bytes.Equal(back, fixed) {
				t.Errorf("descriptor->fixed\n got % x\nwant % x", back, fixed)
			}
		}
	}
}

// TestConvertSenseLimits: what fixed format cannot carry, and inputs
// returned untouched.
func TestConvertSenseLimits(t *testing.T) {
	wide := Sense{Key: SenseMediumError, ASC: ASCUnrecoveredReadError, InfoValid: true, Info: 1 << 40}
	f, err := ParseSense(ConvertSense(wide.AppendDescriptor(nil), false, false))
	if err != nil || f.InfoValid || f.Key != SenseMediumError || f.ASC != ASCUnrecoveredReadError {
		t.Fatalf("64-bit information in fixed format: %+v %v", f, err)
	}
	same := FixedSense(SenseIllegalRequest, ASCInvalidOpcode)
	if got := ConvertSense(same, false, false); &got[0] != &same[0] {
		t.Fatal("fixed to fixed copied")
	}
	bad := []byte{0x7e, 1, 2}
	if got := ConvertSense(bad, true, false); &got[0] != &bad[0] {
		t.Fatal("unknown format converted")
	}
	if got := ConvertSense(nil, true, false); got != nil {
		t.Fatal("nil converted")
	}
}
