package iscsi

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"io"
	"testing"
)

func mustHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// A SCSI Command (READ(10) of 8 blocks at LBA 0x20, ITT 0x11, CmdSN 5)
// as the Linux initiator sends it.
const goldenRead10 = "01c10000000000000000000000000000" +
	"0000001100001000000000050000000c" +
	"2800000000200000080000000000000000"

func TestSCSICommandDecodeGolden(t *testing.T) {
	raw := mustHex(t, goldenRead10)[:48]
	var b BHS
	copy(b[:], raw)
	var c SCSICommand
	if err := c.Decode(&b, nil); err != nil {
		t.Fatal(err)
	}
	if !c.Final || !c.Read || c.Write || c.Attr != AttrSimple || c.ITT != 0x11 ||
		c.ExpectedDataTransferLength != 4096 || c.CmdSN != 5 || c.ExpStatSN != 12 {
		t.Fatalf("decoded %+v", c)
	}
	if want := mustHex(t, "28000000002000000800000000000000"); !bytes.Equal(c.CDB, want) {
		t.Fatalf("CDB %x", c.CDB)
	}
	if n, ok := c.LUN.Number(); !ok || n != 0 {
		t.Fatalf("LUN %v", c.LUN)
	}
}

func TestSCSICommandExtendedCDBAndBidi(t *testing.T) {
	var b BHS
	b[0] = byte(OpSCSICommand)
	b[1] = finalBit | scsiCmdReadBit | scsiCmdWriteBit
	for i := 0; i < 16; i++ {
		b[32+i] = byte(i)
	}
	// Extended CDB AHS: 16 more bytes (AHSLength 17 incl. reserved byte),
	// padded to 20; then a bidirectional read length AHS.
	ahs := []byte{0, 17, ahsExtendedCDB, 0}
	for i := 16; i < 32; i++ {
		ahs = append(ahs, byte(i))
	}
	ahs = append(ahs, 0) // pad 3+17=20 -> 20
	ahs = ahs[:20]
	ahs = append(ahs, 0, 5, ahsBidiReadLen, 0, 0, 0, 0x10, 0)
	var c SCSICommand
	if err := c.Decode(&b, ahs); err != nil {
		t.Fatal(err)
	}
	if len(c.CDB) != 32 || c.CDB[31] != 31 || c.CDB[16] != 16 {
		t.Fatalf("CDB %x", c.CDB)
	}
	if !c.HasBidiReadLength || c.BidiReadLength != 0x1000 {
		t.Fatalf("bidi %v %d", c.HasBidiReadLength, c.BidiReadLength)
	}
	// A truncated AHS is malformed, not a panic.
	if err := c.Decode(&b, ahs[:10]); !errors.Is(err, ErrMalformed) {
		t.Fatalf("truncated AHS: %v", err)
	}
}

func TestOutgoingGolden(t *testing.T) {
	cases := []struct {
		name string
		p    Outgoing
		want string
	}{
		{"SCSIResponse", &SCSIResponse{
			seqNums: seqNums{StatSN: 0x10, ExpCmdSN: 0x20, MaxCmdSN: 0x9f}, Status: 2, ITT: 0x11,
			Underflow: true, ResidualCount: 512, ExpDataSN: 0, Data: []byte{0, 2, 0x70, 0},
		}, "21820002000000040000000000000000" + "000000110000000000000010000000200000009f" + "0000000000000000" + "00000200" + "00027000"},
		{"DataIn", &DataIn{
			seqNums: seqNums{StatSN: 3, ExpCmdSN: 4, MaxCmdSN: 5}, Final: true, HasStatus: true,
			ITT: 7, TTT: 0xffffffff, DataSN: 2, BufferOffset: 8192, Data: []byte{1, 2, 3},
		}, "25810000000000030000000000000000" + "00000007ffffffff0000000300000004" + "0000000500000002" + "0000200000000000" + "01020300"},
		{"R2T", &R2T{
			seqNums: seqNums{StatSN: 3, ExpCmdSN: 4, MaxCmdSN: 5}, LUN: MakeLUN(1), ITT: 7, TTT: 9,
			R2TSN: 1, BufferOffset: 4096, DesiredDataTransferLength: 65536,
		}, "31800000000000000001000000000000" + "00000007000000090000000300000004" + "0000000500000001" + "0000100000010000"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := AppendPDU(nil, tc.p)
			if want := mustHex(t, tc.want); !bytes.Equal(got, want) {
				t.Fatalf("got\n%x\nwant\n%x", got, want)
			}
		})
	}
}

func TestLUNEncoding(t *testing.T) {
	for _, n := range []uint64{0, 1, 255, 256, 1000, 16383} {
		l := MakeLUN(n)
		got, ok := l.Number()
		if !ok || got != n {
			t.Fatalf("LUN %d -> %x -> %d %v", n, l[:], got, ok)
		}
	}
	if l := MakeLUN(300); l[0] != 0x41 || l[1] != 0x2c {
		t.Fatalf("flat space encoding of 300: %x", l[:])
	}
	if _, ok := (LUN{0x00, 0x01, 0x40, 0x02}).Number(); ok {
		t.Fatal("multi-level LUN accepted")
	}
}

// frameBytes builds a wire PDU with optional digests.
func frameBytes(b BHS, ahs, data []byte, hd, dd bool) []byte {
	b[4] = byte(len(ahs) / 4)
	b.SetDataSegmentLength(uint32(len(data)))
	out := append(append([]byte(nil), b[:]...), ahs...)
	if hd {
		out = binary.LittleEndian.AppendUint32(out, crc32c(out))
	}
	seg := append(append([]byte(nil), data...), make([]byte, padLen(len(data)))...)
	out = append(out, seg...)
	if dd && len(data) > 0 {
		out = binary.LittleEndian.AppendUint32(out, crc32c(seg))
	}
	return out
}

func TestReaderDigests(t *testing.T) {
	var b BHS
	b[0] = byte(OpSCSIDataOut)
	data := []byte("hello, iscsi")
	raw := frameBytes(b, nil, data, true, true)
	r := NewReader(bytes.NewReader(raw))
	r.HeaderDigest, r.DataDigest = true, true
	var f Frame
	if err := r.Read(&f); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(f.Data, data) {
		t.Fatalf("data %q", f.Data)
	}
	// Flip a data byte: data digest error, PDU consumed.
	bad := append([]byte(nil), raw...)
	bad[48+4+1] ^= 1
	r = NewReader(bytes.NewReader(append(bad, raw...)))
	r.HeaderDigest, r.DataDigest = true, true
	if err := r.Read(&f); !errors.Is(err, ErrDataDigest) {
		t.Fatalf("got %v, want data digest error", err)
	}
	if err := r.Read(&f); err != nil {
		t.Fatalf("next PDU after a data digest error: %v", err)
	}
	// Flip a header byte: header digest error.
	bad = append([]byte(nil), raw...)
	bad[20] ^= 1
	r = NewReader(bytes.NewReader(bad))
	r.HeaderDigest = true
	if err := r.Read(&f); !errors.Is(err, ErrHeaderDigest) {
		t.Fatalf("got %v, want header digest error", err)
	}
}

func TestReaderOversizedSegment(t *testing.T) {
	var b BHS
	b[0] = byte(OpSCSICommand)
	big := make([]byte, 9000)
	next := frameBytes(BHS{byte(OpNOPOut)}, nil, nil, false, false)
	r := NewReader(bytes.NewReader(append(frameBytes(b, nil, big, false, false), next...)))
	var f Frame
	if err := r.Read(&f); !errors.Is(err, ErrPDUTooLarge) {
		t.Fatalf("got %v", err)
	}
	if f.BHS.Opcode() != OpSCSICommand {
		t.Fatal("BHS of the rejected PDU lost")
	}
	if err := r.Read(&f); err != nil || f.BHS.Opcode() != OpNOPOut {
		t.Fatalf("stream out of sync after skipping: %v %s", err, f.BHS.Opcode())
	}
}

func TestWriterDigestsRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	w := NewWriter(&buf)
	w.HeaderDigest, w.DataDigest = true, true
	p := &DataIn{ITT: 1, Data: []byte{1, 2, 3, 4, 5}}
	if err := w.Write(p); err != nil {
		t.Fatal(err)
	}
	w.Flush()
	r := NewReader(&buf)
	r.HeaderDigest, r.DataDigest = true, true
	var f Frame
	if err := r.Read(&f); err != nil {
		t.Fatal(err)
	}
	if f.BHS.Opcode() != OpSCSIDataIn || !bytes.Equal(f.Data, p.Data) {
		t.Fatalf("round trip: %s %x", f.BHS.Opcode(), f.Data)
	}
}

// FuzzReadPDU feeds arbitrary bytes to the frame reader and the decoders
// of every initiator PDU: nothing may panic, and a frame that reads must
// have a data segment within the limit.
func FuzzReadPDU(f *testing.F) {
	f.Add(mustHex(f, goldenRead10), false, false)
	f.Add(frameBytes(BHS{byte(OpSCSIDataOut), finalBit}, nil, []byte("abc"), true, true), true, true)
	f.Add(frameBytes(BHS{byte(OpSCSICommand), finalBit}, []byte{0, 17, 1, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 0, 0, 0}, nil, false, false), false, false)
	f.Add(frameBytes(BHS{byte(OpLoginReq) | 0x40, 0x87}, nil, []byte("InitiatorName=iqn.x\x00"), false, false), false, false)
	f.Fuzz(func(t *testing.T, raw []byte, hd, dd bool) {
		r := NewReader(bytes.NewReader(raw))
		r.HeaderDigest, r.DataDigest = hd, dd
		for i := 0; i < 4; i++ {
			var fr Frame
			err := r.Read(&fr)
			if err != nil && !errors.Is(err, ErrPDUTooLarge) && !errors.Is(err, ErrDataDigest) {
				return
			}
			if uint32(len(fr.Data)) > r.MaxRecvDataSegmentLength {
				t.Fatalf("segment of %d bytes passed the limit", len(fr.Data))
			}
			switch fr.BHS.Opcode() {
			case OpSCSICommand:
				var c SCSICommand
				if c.Decode(&fr.BHS, fr.AHS) == nil && len(c.CDB) > maxCDBLen {
					t.Fatalf("CDB of %d bytes", len(c.CDB))
				}
			case OpSCSIDataOut:
				var d DataOut
				d.Decode(&fr.BHS)
			case OpTaskMgmtReq:
				var m TaskMgmtRequest
				m.Decode(&fr.BHS)
			case OpLoginReq:
				var l LoginRequest
				l.Decode(&fr.BHS)
			case OpTextReq:
				var x TextRequest
				x.Decode(&fr.BHS)
			case OpLogoutReq:
				var l LogoutRequest
				l.Decode(&fr.BHS)
			case OpNOPOut:
				var n NOPOut
				n.Decode(&fr.BHS)
			}
			fr.BHS.LUN().Number()
		}
	})
}

// BenchmarkReadPDU measures decoding a 4 KiB Data-Out: no allocations.
func BenchmarkReadPDU(b *testing.B) {
	var h BHS
	h[0] = byte(OpSCSIDataOut)
	one := frameBytes(h, nil, make([]byte, 4096), true, true)
	src := &repeatReader{pdu: one}
	r := NewReader(src)
	r.HeaderDigest, r.DataDigest = true, true
	var f Frame
	b.SetBytes(int64(len(one)))
	b.ReportAllocs()
	for b.Loop() {
		if err := r.Read(&f); err != nil {
			b.Fatal(err)
		}
		var d DataOut
		d.Decode(&f.BHS)
	}
}

// BenchmarkWriteDataIn measures encoding 4 KiB Data-In with status and
// digests: no allocations.
func BenchmarkWriteDataIn(b *testing.B) {
	w := NewWriter(io.Discard)
	w.HeaderDigest, w.DataDigest = true, true
	data := make([]byte, 4096)
	var d DataIn
	b.SetBytes(4096 + 48)
	b.ReportAllocs()
	for b.Loop() {
		d = DataIn{Final: true, HasStatus: true, ITT: 1, Data: data}
		if err := w.Write(&d); err != nil {
			b.Fatal(err)
		}
	}
	w.Flush()
}

// BenchmarkSCSICommandDecode: decoding a command allocates nothing.
func BenchmarkSCSICommandDecode(b *testing.B) {
	var h BHS
	copy(h[:], mustHex(b, goldenRead10))
	var c SCSICommand
	b.ReportAllocs()
	for b.Loop() {
		if err := c.Decode(&h, nil); err != nil {
			b.Fatal(err)
		}
	}
}

type repeatReader struct {
	pdu []byte
	off int
}

func (r *repeatReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		c := copy(p[n:], r.pdu[r.off:])
		n += c
		r.off = (r.off + c) % len(r.pdu)
	}
	return n, nil
}
