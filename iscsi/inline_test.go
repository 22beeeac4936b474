package iscsi

import (
	"bytes"
	"context"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
)

// inlineHandler is memHandler with Inliner: READ(10) and WRITE(10) may
// run on the reader, anything else (0xC0 waits) may not. It counts the
// commands Execute ran on the connection's reader goroutine.
type inlineHandler struct {
	*memHandler
	asked    atomic.Int32 // Inline calls
	onReader atomic.Int32 // READ/WRITE executions seen on the reader
	onWorker atomic.Int32 // READ/WRITE executions seen elsewhere
}

func (h *inlineHandler) Inline(cmd *Command) bool {
	h.asked.Add(1)
	return cmd.CDB[0] == 0x28 || cmd.CDB[0] == 0x2a
}

func (h *inlineHandler) Execute(ctx context.Context, cmd *Command) Response {
	if cmd.CDB[0] == 0x28 || cmd.CDB[0] == 0x2a {
		var buf [16 << 10]byte
		if strings.Contains(string(buf[:runtime.Stack(buf[:], false)]), "(*conn).readLoop") {
			h.onReader.Add(1)
		} else {
			h.onWorker.Add(1)
		}
	}
	return h.memHandler.Execute(ctx, cmd)
}

func newInlineTarget(t *testing.T) (*testTarget, *inlineHandler) {
	var ih *inlineHandler
	tt := newTestTarget(t, func(c *Config) {
		tg := c.Targets.(StaticTargets)[0]
		ih = &inlineHandler{memHandler: tg.Handler.(*memHandler)}
		tg.Handler = ih
	})
	return tt, ih
}

// TestInlineQD1: one command at a time, reads and writes the handler
// admits run on the reader and move the right data.
func TestInlineQD1(t *testing.T) {
	tt, h := newInlineTarget(t)
	in := tt.dial()
	in.login(1, "ImmediateData=Yes", "InitialR2T=No", "FirstBurstLength=65536")
	const n = 20
	for i := 0; i < n; i++ {
		data := pattern(8*512, byte(i))
		itt := in.scsi(write10(uint32(i*8), 8), false, true, uint32(len(data)), true, data, false)
		if _, st, _ := in.readAll(itt, 1<<20); st != 0 {
			t.Fatalf("write %d: status %#x", i, st)
		}
		itt = in.scsi(read10(uint32(i*8), 8), true, false, uint32(len(data)), true, nil, false)
		got, st, _ := in.readAll(itt, 1<<20)
		if st != 0 || !bytes.Equal(got, data) {
			t.Fatalf("read %d: status %#x, data equal %v", i, st, bytes.Equal(got, data))
		}
	}
	if r, w := h.onReader.Load(), h.onWorker.Load(); r != 2*n || w != 0 {
		t.Fatalf("%d commands ran on the reader and %d on workers, want %d and 0", r, w, 2*n)
	}
	// A read larger than inlineMaxRead runs on a worker: the reader
	// would otherwise write all of it to the socket itself.
	const big = inlineMaxRead/512 + 32
	itt := in.scsi(read10(0, big), true, false, big*512, true, nil, false)
	if got, st, _ := in.readAll(itt, 1<<20); st != 0 || !bytes.Equal(got, tt.h.data[:big*512]) {
		t.Fatalf("large read: status %#x", st)
	}
	if r, w := h.onReader.Load(), h.onWorker.Load(); r != 2*n || w != 1 {
		t.Fatalf("%d commands ran on the reader and %d on workers, want %d and 1", r, w, 2*n)
	}
}

// TestInlineRefusedDoesNotStall: a command the handler does not admit
// runs on a worker, and while it waits the connection still answers a
// NOP-Out and a READ (which then runs on a worker too: another task is
// running).
func TestInlineRefusedDoesNotStall(t *testing.T) {
	tt, h := newInlineTarget(t)
	copy(tt.h.data, pattern(len(tt.h.data), 9))
	in := tt.dial()
	in.login(1)
	blocked := in.scsi([]byte{0xc0, 0, 0, 0, 0, 0}, false, false, 0, true, nil, false)
	<-tt.h.started
	var b BHS
	b[0] = byte(OpNOPOut) | immediateBit
	b[1] = finalBit
	b.put32(16, 0x500)
	b.put32(20, reservedTag)
	b.put32(24, in.cmdSN)
	in.sendRaw(&b, nil)
	if f := in.read(); f.BHS.Opcode() != OpNOPIn || f.BHS.ITT() != 0x500 {
		t.Fatalf("got %s for ITT %#x, want the NOP-In", f.BHS.Opcode(), f.BHS.ITT())
	}
	itt := in.scsi(read10(4, 2), true, false, 1024, true, nil, false)
	got, st, _ := in.readAll(itt, 1<<20)
	if st != 0 || !bytes.Equal(got, tt.h.data[4*512:6*512]) {
		t.Fatalf("read beside a waiting task: status %#x", st)
	}
	tt.h.release <- struct{}{}
	if f := in.read(); f.BHS.Opcode() != OpSCSIResponse || f.BHS.ITT() != blocked {
		t.Fatalf("got %s for ITT %#x, want the waiting task's response", f.BHS.Opcode(), f.BHS.ITT())
	}
	if r, w := h.onReader.Load(), h.onWorker.Load(); r != 0 || w != 1 {
		t.Fatalf("%d reads ran on the reader and %d on workers, want 0 and 1", r, w)
	}
	if h.asked.Load() == 0 {
		t.Fatal("Inline never asked")
	}
}

// inlineReads lets READ(10)s run on the reader.
type inlineReads struct{ *memHandler }

func (inlineReads) Inline(cmd *Command) bool { return cmd.CDB[0] == 0x28 }
