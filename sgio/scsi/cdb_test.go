package scsi

import (
	"bytes"
	"errors"
	"testing"
)

func TestCDBLen(t *testing.T) {
	tests := []struct {
		cdb  []byte
		want int
		err  error
	}{
		{[]byte{0x00, 0, 0, 0, 0, 0}, 6, nil},
		{make16(0x28), 10, nil},
		{make16(0x5a), 10, nil},
		{make16(0xa8), 12, nil},
		{make16(0x88), 16, nil},
		{[]byte{0x28, 0, 0}, 0, ErrShortCDB},
		{make16(0x60), 0, ErrCDBLength}, // group 3 reserved
		{make16(0xc0), 0, ErrCDBLength}, // vendor specific
		{nil, 0, ErrShortCDB},
		{cdb32(SARead32), 32, nil},
		{[]byte{0x7f, 0, 0, 0, 0, 0, 0, 0x18}, 0, ErrShortCDB},
		{[]byte{0x7f, 0, 0, 0, 0, 0, 0, 0x17, 0, 0}, 0, ErrCDBLength},
		{[]byte{0x7f, 0, 0}, 0, ErrShortCDB},
	}
	for _, tc := range tests {
		got, err := CDBLen(tc.cdb)
		if !errors.Is(err, tc.err) || got != tc.want {
			t.Errorf("CDBLen(% x) = %d, %v; want %d, %v", tc.cdb, got, err, tc.want, tc.err)
		}
	}
}

func make16(op byte) []byte {
	b := make([]byte, 16)
	b[0] = op
	return b
}

func cdb32(sa ServiceAction) []byte {
	b := make([]byte, 32)
	b[0] = 0x7f
	b[7] = 0x18
	b[8] = byte(sa >> 8)
	b[9] = byte(sa)
	return b
}

func TestDecodeRW(t *testing.T) {
	r32 := cdb32(SARead32)
	r32[10] = 0x18 // DPO FUA
	copy(r32[12:20], []byte{0, 0, 0, 1, 0, 0, 0, 2})
	copy(r32[28:32], []byte{0, 0, 1, 0})
	ws32 := cdb32(SAWriteSame32)
	ws32[10] = 0x09 // UNMAP NDOB
	ws32[31] = 7

	tests := []struct {
		name string
		cdb  []byte
		want RW
	}{
		{"read6 zero is 256", []byte{0x08, 0x1f, 0xff, 0xff, 0x00, 0x00},
			RW{Op: OpRead6, Kind: KindRead, CDBLen: 6, LBA: 0x1fffff, Blocks: 256}},
		{"write6 reserved bits masked", []byte{0x0a, 0xe1, 0x02, 0x03, 0x04, 0x00},
			RW{Op: OpWrite6, Kind: KindWrite, CDBLen: 6, LBA: 0x010203, Blocks: 4}},
		{"read10", []byte{0x28, 0xf8, 0xff, 0xff, 0xff, 0xff, 0x1f, 0x01, 0x00, 0x00},
			RW{Op: OpRead10, Kind: KindRead, CDBLen: 10, LBA: 0xffffffff, Blocks: 256, Protect: 7, DPO: true, FUA: true, Group: 0x1f}},
		{"write12", []byte{0xaa, 0x08, 0, 0, 0, 5, 0, 0, 1, 0, 3, 0},
			RW{Op: OpWrite12, Kind: KindWrite, CDBLen: 12, LBA: 5, Blocks: 256, FUA: true, Group: 3}},
		{"read16 max lba", []byte{0x88, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 1, 0, 0},
			RW{Op: OpRead16, Kind: KindRead, CDBLen: 16, LBA: ^uint64(0), Blocks: 1}},
		{"verify10 bytchk", []byte{0x2f, 0x12, 0, 0, 0, 1, 0, 0, 2, 0},
			RW{Op: OpVerify10, Kind: KindVerify, CDBLen: 10, LBA: 1, Blocks: 2, DPO: true, BytChk: 1}},
		{"write and verify16", []byte{0x8e, 0x22, 0, 0, 0, 0, 0, 0, 0, 9, 0, 0, 0, 3, 0, 0},
			RW{Op: OpWriteAndVerify16, Kind: KindWriteAndVerify, CDBLen: 16, LBA: 9, Blocks: 3, Protect: 1, BytChk: 1}},
		{"write same10 unmap anchor", []byte{0x41, 0x18, 0, 0, 0, 0, 0, 0, 0, 0},
			RW{Op: OpWriteSame10, Kind: KindWriteSame, CDBLen: 10, Anchor: true, Unmap: true}},
		{"write same16 ndob", []byte{0x93, 0x09, 0, 0, 0, 0, 0, 0, 0, 1, 0, 1, 0, 0, 0, 0},
			RW{Op: OpWriteSame16, Kind: KindWriteSame, CDBLen: 16, LBA: 1, Blocks: 65536, Unmap: true, NDOB: true}},
		{"sync cache16 immed", []byte{0x91, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
			RW{Op: OpSynchronizeCache16, Kind: KindSyncCache, CDBLen: 16, Immed: true}},
		{"prefetch10", []byte{0x34, 0x02, 0, 0, 0, 4, 0x03, 0, 8, 0},
			RW{Op: OpPreFetch10, Kind: KindPreFetch, CDBLen: 10, LBA: 4, Blocks: 8, Immed: true, Group: 3}},
		{"compare and write", []byte{0x89, 0x08, 0, 0, 0, 0, 0, 0, 0, 7, 0, 0, 0, 1, 0, 0},
			RW{Op: OpCompareAndWrite, Kind: KindCompareAndWrite, CDBLen: 16, LBA: 7, Blocks: 1, FUA: true}},
		{"write atomic16", []byte{0x9c, 0, 0, 0, 0, 0, 0, 0, 0, 7, 0, 0, 0, 4, 0, 0},
			RW{Op: OpWriteAtomic16, Kind: KindWriteAtomic, CDBLen: 16, LBA: 7, Blocks: 4}},
		{"read32", r32,
			RW{Op: OpVariableLength, SA: SARead32, Kind: KindRead, CDBLen: 32, LBA: 1<<32 | 2, Blocks: 256, DPO: true, FUA: true}},
		{"write same32", ws32,
			RW{Op: OpVariableLength, SA: SAWriteSame32, Kind: KindWriteSame, CDBLen: 32, Blocks: 7, Unmap: true, NDOB: true}},
	}
	for _, tc := range tests {
		got, err := DecodeRW(tc.cdb)
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if got != tc.want {
			t.Errorf("%s:\n got %+v\nwant %+v", tc.name, got, tc.want)
		}
		lba, n, ok := TransferInfo(tc.cdb)
		if !ok || lba != tc.want.LBA || n != tc.want.Blocks {
			t.Errorf("%s: TransferInfo = %d %d %v", tc.name, lba, n, ok)
		}
	}
}

func TestDecodeRWErrors(t *testing.T) {
	if _, err := DecodeRW([]byte{0x12, 0, 0, 0, 0, 0}); !errors.Is(err, ErrNotRW) {
		t.Errorf("INQUIRY: %v", err)
	}
	if _, err := DecodeRW([]byte{0x28, 0, 0}); !errors.Is(err, ErrShortCDB) {
		t.Errorf("short READ(10): %v", err)
	}
	if _, err := DecodeRW(cdb32(0x0001)); !errors.Is(err, ErrNotRW) {
		t.Errorf("unknown 32-byte service action: %v", err)
	}
	if _, err := DecodeRW(nil); err == nil {
		t.Error("nil CDB decoded")
	}
	if _, _, ok := TransferInfo([]byte{0x00, 0, 0, 0, 0, 0}); ok {
		t.Error("TEST UNIT READY has transfer info")
	}
}

func TestDataBlocks(t *testing.T) {
	tests := []struct {
		r    RW
		want uint64
	}{
		{RW{Kind: KindRead, Blocks: 8}, 8},
		{RW{Kind: KindCompareAndWrite, Blocks: 2}, 4},
		{RW{Kind: KindWriteSame, Blocks: 100}, 1},
		{RW{Kind: KindWriteSame, Blocks: 100, NDOB: true}, 0},
		{RW{Kind: KindVerify, Blocks: 5, BytChk: 0}, 0},
		{RW{Kind: KindVerify, Blocks: 5, BytChk: 1}, 5},
		{RW{Kind: KindVerify, Blocks: 5, BytChk: 3}, 1},
		{RW{Kind: KindSyncCache, Blocks: 5}, 0},
	}
	for _, tc := range tests {
		if got := tc.r.DataBlocks(); got != tc.want {
			t.Errorf("%v: DataBlocks = %d, want %d", tc.r.Kind, got, tc.want)
		}
	}
}

func TestHasServiceAction(t *testing.T) {
	sa, ok := HasServiceAction([]byte{0x9e, 0x10, 0, 0})
	if !ok || sa != SAReadCapacity16 {
		t.Errorf("9E/10: %v %v", sa, ok)
	}
	sa, ok = HasServiceAction(cdb32(SAWrite32))
	if !ok || sa != SAWrite32 {
		t.Errorf("7F: %v %v", sa, ok)
	}
	if _, ok := HasServiceAction([]byte{0x28, 0}); ok {
		t.Error("READ(10) has a service action")
	}
}

func FuzzDecodeRW(f *testing.F) {
	f.Add([]byte{0x28, 0, 0, 0, 0, 0, 0, 0, 1, 0})
	f.Add([]byte{0x08, 0x1f, 0xff, 0xff, 0x00, 0x00})
	f.Add([]byte{0x93, 0x09, 0, 0, 0, 0, 0, 0, 0, 1, 0, 1, 0, 0, 0, 0})
	f.Add(cdb32(SAWriteSame32))
	f.Add([]byte{0x7f, 0, 0, 0, 0, 0, 0, 0xfc})
	f.Fuzz(func(t *testing.T, cdb []byte) {
		n, lenErr := CDBLen(cdb)
		if lenErr == nil && (n < 6 || n > len(cdb) || n > MaxCDBLen) {
			t.Fatalf("CDBLen = %d for %d bytes", n, len(cdb))
		}
		r, err := DecodeRW(cdb)
		if err != nil {
			return
		}
		if lenErr != nil || r.CDBLen != n {
			t.Fatalf("decoded with CDBLen %d but CDBLen() = %d, %v", r.CDBLen, n, lenErr)
		}
		if r.Kind == 0 {
			t.Fatal("decoded without a kind")
		}
		if (r.Op == OpRead6 || r.Op == OpWrite6) && (r.Blocks == 0 || r.LBA > 0x1fffff) {
			t.Fatalf("6-byte decode out of range: %+v", r)
		}
		_ = r.DataBlocks()
		_ = r.Kind.String()
	})
}

func TestCDBBuilders(t *testing.T) {
	for _, tc := range []struct {
		name string
		got  []byte
		want []byte
	}{
		{"standard INQUIRY", InquiryCDB(false, 0, 96), []byte{0x12, 0, 0, 0, 96, 0}},
		{"VPD 83h", InquiryCDB(true, 0x83, 0x1234), []byte{0x12, 1, 0x83, 0x12, 0x34, 0}},
		{"READ CAPACITY(16)", ReadCapacity16CDB(32), []byte{0x9e, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 32, 0, 0}},
	} {
		if !bytes.Equal(tc.got, tc.want) {
			t.Errorf("%s: % x, want % x", tc.name, tc.got, tc.want)
		}
		if n, err := CDBLen(tc.got); err != nil || n != len(tc.got) {
			t.Errorf("%s: CDBLen %d, %v; want %d", tc.name, n, err, len(tc.got))
		}
	}
}
