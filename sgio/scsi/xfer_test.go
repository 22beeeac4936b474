package scsi

import (
	"encoding/binary"
	"testing"
)

// cdbOf builds a CDB of the length op's group gives (16 bytes for the
// groups CDBLen does not know, which then fail) with the bytes set.
func cdbOf(op Opcode, set map[int]byte) []byte {
	n := op.CDBLength()
	if n == 0 {
		n = 16
	}
	c := make([]byte, n)
	c[0] = byte(op)
	for i, b := range set {
		c[i] = b
	}
	return c
}

func TestDataTransfer(t *testing.T) {
	read16 := cdbOf(OpRead16, nil)
	binary.BigEndian.PutUint64(read16[2:], 100)
	binary.BigEndian.PutUint32(read16[10:], 0xffffffff)
	w32 := cdb32(SAWrite32)
	binary.BigEndian.PutUint32(w32[28:], 3)
	ws16ndob := cdbOf(OpWriteSame16, map[int]byte{1: 0x01, 13: 9})
	rc16 := ReadCapacity16CDB(32)
	tests := []struct {
		name  string
		cdb   []byte
		dt    DeviceType
		bs    uint32
		known bool
		in    uint64
		out   uint64
		block bool
		lba   uint64
		nblk  uint64
	}{
		{"TEST UNIT READY", cdbOf(OpTestUnitReady, nil), TypeDisk, 512, true, 0, 0, false, 0, 0},
		{"INQUIRY", InquiryCDB(true, 0x83, 0x1234), TypeDisk, 512, true, 0x1234, 0, false, 0, 0},
		{"INQUIRY on a tape", InquiryCDB(false, 0, 96), TypeTape, 0, true, 96, 0, false, 0, 0},
		{"REQUEST SENSE", cdbOf(OpRequestSense, map[int]byte{4: 252}), TypeDisk, 512, true, 252, 0, false, 0, 0},
		{"MODE SENSE(6)", cdbOf(OpModeSense6, map[int]byte{4: 0xff}), TypeDisk, 512, true, 255, 0, false, 0, 0},
		{"MODE SELECT(6)", cdbOf(OpModeSelect6, map[int]byte{4: 24}), TypeDisk, 512, true, 0, 24, false, 0, 0},
		{"MODE SENSE(10)", cdbOf(OpModeSense10, map[int]byte{7: 1, 8: 2}), TypeDisk, 512, true, 258, 0, false, 0, 0},
		{"MODE SELECT(10)", cdbOf(OpModeSelect10, map[int]byte{7: 1, 8: 0}), TypeDisk, 512, true, 0, 256, false, 0, 0},
		{"LOG SENSE", cdbOf(OpLogSense, map[int]byte{7: 0x10, 8: 0}), TypeDisk, 512, true, 4096, 0, false, 0, 0},
		{"LOG SELECT", cdbOf(OpLogSelect, map[int]byte{8: 12}), TypeDisk, 512, true, 0, 12, false, 0, 0},
		{"RECEIVE DIAGNOSTIC RESULTS", cdbOf(OpReceiveDiagnosticResults, map[int]byte{3: 1, 4: 0}), TypeDisk, 512, true, 256, 0, false, 0, 0},
		{"SEND DIAGNOSTIC", cdbOf(OpSendDiagnostic, map[int]byte{4: 8}), TypeDisk, 512, true, 0, 8, false, 0, 0},
		{"REPORT LUNS", cdbOf(OpReportLUNs, map[int]byte{6: 0xff, 7: 0xff, 8: 0xff, 9: 0xff}), TypeDisk, 512, true, 0xffffffff, 0, false, 0, 0},
		{"PERSISTENT RESERVE IN", cdbOf(OpPersistentReserveIn, map[int]byte{7: 0x20}), TypeDisk, 512, true, 0x2000, 0, false, 0, 0},
		{"PERSISTENT RESERVE OUT", cdbOf(OpPersistentReserveOut, map[int]byte{8: 24}), TypeDisk, 512, true, 0, 24, false, 0, 0},
		{"READ CAPACITY(10)", cdbOf(OpReadCapacity10, nil), TypeDisk, 512, true, 8, 0, false, 0, 0},
		{"READ CAPACITY(16)", rc16, TypeDisk, 512, true, 32, 0, false, 0, 0},
		{"GET LBA STATUS", cdbOf(OpServiceActionIn16, map[int]byte{1: byte(SAGetLBAStatus), 12: 1}), TypeDisk, 512, true, 256, 0, false, 0, 0},
		{"unknown SERVICE ACTION IN", cdbOf(OpServiceActionIn16, map[int]byte{1: 0x1f}), TypeDisk, 512, false, 0, 0, false, 0, 0},
		{"REPORT SUPPORTED OPCODES", cdbOf(OpMaintenanceIn, map[int]byte{1: byte(SAReportSupportedOpcodes), 8: 2}), TypeDisk, 512, true, 512, 0, false, 0, 0},
		{"UNMAP", cdbOf(OpUnmap, map[int]byte{8: 24}), TypeDisk, 512, true, 0, 24, false, 0, 0},
		{"READ BUFFER", cdbOf(OpReadBuffer, map[int]byte{6: 1, 7: 0, 8: 0}), TypeDisk, 512, true, 65536, 0, false, 0, 0},
		{"WRITE BUFFER", cdbOf(OpWriteBuffer, map[int]byte{6: 0xff, 7: 0xff, 8: 0xff}), TypeTape, 0, true, 0, 0xffffff, false, 0, 0},
		{"EXTENDED COPY", cdbOf(OpExtendedCopy, map[int]byte{12: 1}), TypeDisk, 512, true, 0, 256, false, 0, 0},
		{"RECEIVE COPY RESULTS", cdbOf(OpReceiveCopyResults, map[int]byte{13: 60}), TypeDisk, 512, true, 60, 0, false, 0, 0},
		{"SECURITY PROTOCOL IN INC_512", cdbOf(OpSecurityProtocolIn, map[int]byte{4: 0x80, 9: 2}), TypeDisk, 512, true, 1024, 0, false, 0, 0},
		{"FORMAT UNIT without data", cdbOf(OpFormatUnit, nil), TypeDisk, 512, true, 0, 0, false, 0, 0},
		{"FORMAT UNIT with FMTDATA", cdbOf(OpFormatUnit, map[int]byte{1: 0x10}), TypeDisk, 512, false, 0, 0, false, 0, 0},
		// SBC block commands.
		{"READ(6) 0 = 256 blocks", cdbOf(OpRead6, map[int]byte{3: 5}), TypeDisk, 512, true, 256 * 512, 0, true, 5, 256},
		{"READ(16) 4G blocks", read16, TypeDisk, 4096, true, 0xffffffff * 4096, 0, true, 100, 0xffffffff},
		{"READ(10) without block size", cdbOf(OpRead10, map[int]byte{8: 1}), TypeDisk, 0, false, 0, 0, true, 0, 1},
		{"WRITE(32)", w32, TypeDisk, 512, true, 0, 3 * 512, true, 0, 3},
		{"WRITE SAME(10)", cdbOf(OpWriteSame10, map[int]byte{8: 100}), TypeDisk, 512, true, 0, 512, true, 0, 100},
		{"WRITE SAME(16) NDOB", ws16ndob, TypeDisk, 512, true, 0, 0, true, 0, 9},
		{"COMPARE AND WRITE", cdbOf(OpCompareAndWrite, map[int]byte{13: 4}), TypeDisk, 512, true, 0, 8 * 512, true, 0, 4},
		{"VERIFY(10) BYTCHK=0", cdbOf(OpVerify10, map[int]byte{8: 8}), TypeDisk, 512, true, 0, 0, true, 0, 8},
		{"VERIFY(10) BYTCHK=1", cdbOf(OpVerify10, map[int]byte{1: 0x02, 8: 8}), TypeDisk, 512, true, 0, 8 * 512, true, 0, 8},
		{"VERIFY(16) BYTCHK=3", cdbOf(OpVerify16, map[int]byte{1: 0x06, 13: 8}), TypeDisk, 512, true, 0, 512, true, 0, 8},
		{"WRITE AND VERIFY(12)", cdbOf(OpWriteAndVerify12, map[int]byte{9: 2}), TypeDisk, 4096, true, 0, 8192, true, 0, 2},
		{"ORWRITE(16)", cdbOf(OpORWrite16, map[int]byte{13: 1}), TypeDisk, 512, true, 0, 512, true, 0, 1},
		{"SYNCHRONIZE CACHE(10)", cdbOf(OpSynchronizeCache10, nil), TypeDisk, 512, true, 0, 0, true, 0, 0},
		{"READ(10) on a CD", cdbOf(OpRead10, map[int]byte{8: 2}), TypeCDROM, 2048, true, 4096, 0, true, 0, 2},
		{"UNMAP opcode on a CD", cdbOf(OpUnmap, map[int]byte{8: 24}), TypeCDROM, 2048, false, 0, 0, false, 0, 0},
		// SSC: FIXED bit.
		{"tape READ(6) fixed", cdbOf(OpRead6, map[int]byte{1: 1, 4: 10}), TypeTape, 1024, true, 10240, 0, false, 0, 0},
		{"tape READ(6) variable", cdbOf(OpRead6, map[int]byte{2: 1, 3: 0, 4: 0}), TypeTape, 1024, true, 65536, 0, false, 0, 0},
		{"tape READ(6) fixed, variable mode", cdbOf(OpRead6, map[int]byte{1: 1, 4: 10}), TypeTape, 0, false, 0, 0, false, 0, 0},
		{"tape WRITE(6) fixed", cdbOf(OpWrite6, map[int]byte{1: 1, 4: 3}), TypeTape, 512, true, 0, 1536, false, 0, 0},
		{"tape WRITE(16) variable", cdbOf(OpWrite16, map[int]byte{12: 1, 13: 0, 14: 0}), TypeTape, 512, true, 0, 65536, false, 0, 0},
		{"tape READ BLOCK LIMITS", cdbOf(OpReadBlockLimits, nil), TypeTape, 0, true, 6, 0, false, 0, 0},
		{"tape READ POSITION long", cdbOf(OpReadPosition, map[int]byte{1: 6}), TypeTape, 0, true, 32, 0, false, 0, 0},
		{"tape SPACE", cdbOf(OpSpace6, nil), TypeTape, 0, true, 0, 0, false, 0, 0},
		{"tape VERIFY(6) BYTCMP", cdbOf(OpVerify6, map[int]byte{1: 2, 4: 100}), TypeTape, 0, true, 0, 100, false, 0, 0},
		// SMC.
		{"READ ELEMENT STATUS", cdbOf(OpReadElementStatus, map[int]byte{7: 1, 8: 0, 9: 0}), TypeChanger, 0, true, 65536, 0, false, 0, 0},
		{"MOVE MEDIUM", cdbOf(OpMoveMedium, nil), TypeChanger, 0, true, 0, 0, false, 0, 0},
		// Not known.
		{"vendor specific", cdbOf(0xc0, nil), TypeDisk, 512, false, 0, 0, false, 0, 0},
		{"READ(10) on an enclosure", cdbOf(OpRead10, map[int]byte{8: 1}), TypeEnclosure, 512, false, 0, 0, false, 0, 0},
		{"short CDB", []byte{0x28, 0, 0}, TypeDisk, 512, false, 0, 0, false, 0, 0},
		{"empty CDB", nil, TypeDisk, 512, false, 0, 0, false, 0, 0},
		{"ATA PASS-THROUGH", cdbOf(OpATAPassThrough16, nil), TypeDisk, 512, false, 0, 0, false, 0, 0},
	}
	for _, tc := range tests {
		got := DataTransfer(tc.cdb, tc.dt, tc.bs)
		want := Transfer{Known: tc.known, In: tc.in, Out: tc.out, Block: tc.block, LBA: tc.lba, Blocks: tc.nblk}
		if got != want {
			t.Errorf("%s: DataTransfer(% x, %v, %d) = %+v, want %+v", tc.name, tc.cdb, tc.dt, tc.bs, got, want)
		}
	}
}

func TestTransferInRange(t *testing.T) {
	for _, tc := range []struct {
		lba, n, capacity uint64
		block, want      bool
	}{
		{0, 8, 8, true, true},
		{1, 8, 8, true, false},
		{8, 0, 8, true, true}, // no blocks at the end: not an error (SBC-4 5.x TRANSFER LENGTH 0)
		{9, 0, 8, true, false},
		{^uint64(0), 2, 8, true, false}, // LBA + n would wrap
		{100, 100, 8, false, true},      // not a block command
	} {
		tr := Transfer{Block: tc.block, LBA: tc.lba, Blocks: tc.n}
		if got := tr.InRange(tc.capacity); got != tc.want {
			t.Errorf("%+v.InRange(%d) = %v, want %v", tr, tc.capacity, got, tc.want)
		}
	}
}

func FuzzDataTransfer(f *testing.F) {
	f.Add([]byte{0x28, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0}, uint8(0), uint32(512))
	f.Add([]byte{0x88, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0, 0}, uint8(0), uint32(4096))
	f.Add([]byte{0x08, 0x01, 0xff, 0xff, 0xff, 0}, uint8(1), uint32(65536))
	f.Add([]byte{0x12, 1, 0x83, 0xff, 0xff, 0}, uint8(5), uint32(2048))
	f.Add([]byte{0xb8, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0, 0}, uint8(8), uint32(0))
	f.Add(cdb32(SAWriteSame32), uint8(0x14), uint32(512))
	f.Add([]byte{0xa2, 0, 0, 0, 0x80, 0, 0xff, 0xff, 0xff, 0xff, 0, 0}, uint8(0), uint32(0))
	f.Fuzz(func(t *testing.T, cdb []byte, dt uint8, bs uint32) {
		got := DataTransfer(cdb, DeviceType(dt&0x1f), bs)
		if !got.Known && (got.In != 0 || got.Out != 0) {
			t.Fatalf("unknown transfer with lengths: %+v", got)
		}
		if got.In != 0 && got.Out != 0 {
			t.Fatalf("both directions: %+v", got)
		}
		// The longest length field is 4 bytes; times a block size or
		// 512 (INC_512), or twice for COMPARE AND WRITE.
		if limit := uint64(0xffffffff) * uint64(max(bs, 512)) * 2; got.In > limit || got.Out > limit {
			t.Fatalf("length beyond any field: %+v", got)
		}
		n, err := CDBLen(cdb)
		if err != nil {
			if got != (Transfer{}) {
				t.Fatalf("decoded a CDB CDBLen rejects (%v): %+v", err, got)
			}
			return
		}
		// Only the CDB's own bytes count.
		if again := DataTransfer(append(cdb[:n:n], 0xff, 0xff), DeviceType(dt&0x1f), bs); again != got {
			t.Fatalf("trailing bytes changed the result: %+v then %+v", got, again)
		}
		if r, err := DecodeRW(cdb); err == nil && DeviceType(dt&0x1f).blockAddressed() && bs != 0 && got.Known {
			if got.In+got.Out != r.DataBlocks()*uint64(bs) {
				t.Fatalf("%+v disagrees with DecodeRW's %d data blocks", got, r.DataBlocks())
			}
		}
	})
}
