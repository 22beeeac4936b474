package passthrough

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/sanbridge/sanbridge/sgio/scsi"
)

// Wire values, spelled out here rather than taken from pr.go.
const (
	saRegister          = 0x00
	saReserve           = 0x01
	saRelease           = 0x02
	saClear             = 0x03
	saPreempt           = 0x04
	saPreemptAndAbort   = 0x05
	saRegisterAndIgnore = 0x06
	saRegisterAndMove   = 0x07

	saReadKeys           = 0x00
	saReadReservation    = 0x01
	saReportCapabilities = 0x02
	saReadFullStatus     = 0x03

	flagSpecIPT = 0x08
	flagAllTgPt = 0x04
	flagAPTPL   = 0x01
)

// The six types in SPC-4 order.
var prTypes = []PRType{1, 3, 5, 6, 7, 8}

var (
	port1 = PRTargetPort{Name: "iqn.2026-11.io.sanbridge:t1,t,0x0001", RelTargetPortID: 1}
	port2 = PRTargetPort{Name: "iqn.2026-11.io.sanbridge:t2,t,0x0001", RelTargetPortID: 2}

	hostA  = PRNexus{InitiatorName: "iqn.1994-05.com.redhat:a", ISID: "023d00000001", TargetPort: port1.Name, RelTargetPortID: 1}
	hostB  = PRNexus{InitiatorName: "iqn.1994-05.com.redhat:b", ISID: "023d00000001", TargetPort: port1.Name, RelTargetPortID: 1}
	hostC  = PRNexus{InitiatorName: "iqn.1994-05.com.redhat:c", ISID: "023d00000001", TargetPort: port1.Name, RelTargetPortID: 1}
	hostD  = PRNexus{InitiatorName: "iqn.1998-01.com.vmware:d", ISID: "400001370000", TargetPort: port1.Name, RelTargetPortID: 1}
	hostA2 = PRNexus{InitiatorName: hostA.InitiatorName, ISID: hostA.ISID, TargetPort: port2.Name, RelTargetPortID: 2}
	// hostA after a relogin with another ISID: another initiator port.
	hostAnew = PRNexus{InitiatorName: hostA.InitiatorName, ISID: "023d00000002", TargetPort: port1.Name, RelTargetPortID: 1}
)

// prHarness is a PR whose hooks record what they are asked to do.
type prHarness struct {
	t      *testing.T
	pr     *PR
	mu     sync.Mutex
	uas    []prUA
	aborts []PRNexus
	ctxs   []context.Context // the ctx each Abort got
}

func newPRHarness(t *testing.T, store PRStore, ports ...PRTargetPort) *prHarness {
	t.Helper()
	h := &prHarness{t: t}
	hooks := PRHooks{
		UA: func(n PRNexus, asc scsi.ASC) {
			h.mu.Lock()
			h.uas = append(h.uas, prUA{n: n, asc: asc})
			h.mu.Unlock()
		},
		Abort: func(ctx context.Context, n PRNexus) {
			h.mu.Lock()
			h.aborts = append(h.aborts, n)
			h.ctxs = append(h.ctxs, ctx)
			h.mu.Unlock()
		},
	}
	if len(ports) > 0 {
		hooks.Ports = func() []PRTargetPort { return ports }
	}
	pr, err := NewPR(t.Context(), store, "naa.5000c50015ea71a0", hooks)
	if err != nil {
		t.Fatal(err)
	}
	h.pr = pr
	return h
}

// proutCDB builds a PERSISTENT RESERVE OUT CDB.
func proutCDB(sa byte, scope byte, typ PRType, plen int) []byte {
	cdb := []byte{0x5f, sa, scope<<4 | byte(typ), 0, 0, 0, 0, 0, 0, 0}
	binary.BigEndian.PutUint32(cdb[5:9], uint32(plen))
	return cdb
}

// prinCDB builds a PERSISTENT RESERVE IN CDB.
func prinCDB(sa byte, alloc uint16) []byte {
	cdb := []byte{0x5e, sa, 0, 0, 0, 0, 0, 0, 0, 0}
	binary.BigEndian.PutUint16(cdb[7:9], alloc)
	return cdb
}

// basicParams builds the 24-byte PERSISTENT RESERVE OUT parameter list.
func basicParams(key, sark uint64, flags byte) []byte {
	p := make([]byte, 24)
	binary.BigEndian.PutUint64(p[0:], key)
	binary.BigEndian.PutUint64(p[8:], sark)
	p[20] = flags
	return p
}

// specParams builds a REGISTER parameter list with SPEC_I_PT and tids.
func specParams(key, sark uint64, flags byte, tids ...[]byte) []byte {
	p := basicParams(key, sark, flags|flagSpecIPT)
	all := bytes.Join(tids, nil)
	p = binary.BigEndian.AppendUint32(p, uint32(len(all)))
	return append(p, all...)
}

// moveParams builds a REGISTER AND MOVE parameter list.
func moveParams(key, sark uint64, unreg, aptpl bool, rtpi uint16, tid []byte) []byte {
	p := make([]byte, 24)
	binary.BigEndian.PutUint64(p[0:], key)
	binary.BigEndian.PutUint64(p[8:], sark)
	if unreg {
		p[17] |= 0x02
	}
	if aptpl {
		p[17] |= 0x01
	}
	binary.BigEndian.PutUint16(p[18:], rtpi)
	binary.BigEndian.PutUint32(p[20:], uint32(len(tid)))
	return append(p, tid...)
}

// wireTID builds an iSCSI TransportID by hand: format 01b with isid,
// 00b without, NUL-terminated, padded to a multiple of 4 (at least 24).
func wireTID(name, isid string) []byte {
	s, b0 := name, byte(0x05)
	if isid != "" {
		s, b0 = name+",i,0x"+isid, 0x45
	}
	n := len(s) + 1
	for n%4 != 0 || n < 20 {
		n++
	}
	b := []byte{b0, 0, byte(n >> 8), byte(n)}
	b = append(b, s...)
	return append(b, make([]byte, n-len(s))...)
}

func (h *prHarness) out(n PRNexus, sa byte, typ PRType, params []byte) (scsi.Status, []byte) {
	return h.pr.Out(h.t.Context(), n, proutCDB(sa, 0, typ, len(params)), params)
}

// good runs a PERSISTENT RESERVE OUT that must succeed.
func (h *prHarness) good(n PRNexus, sa byte, typ PRType, params []byte) {
	h.t.Helper()
	if st, sense := h.out(n, sa, typ, params); st != scsi.Good {
		h.t.Fatalf("PR OUT SA %d from %v: %v %s", sa, n, st, senseString(sense))
	}
}

// register registers n with key through REGISTER AND IGNORE EXISTING KEY.
func (h *prHarness) register(n PRNexus, key uint64) {
	h.t.Helper()
	h.good(n, saRegisterAndIgnore, 0, basicParams(0, key, 0))
}

// in runs a PERSISTENT RESERVE IN that must succeed, with the largest
// allocation length, and returns the parameter data.
func (h *prHarness) in(n PRNexus, sa byte) []byte {
	h.t.Helper()
	out := make([]byte, 0xffff)
	w, wanted, st, sense := h.pr.In(h.t.Context(), n, prinCDB(sa, 0xffff), out)
	if st != scsi.Good || w != wanted {
		h.t.Fatalf("PR IN SA %d: %v %s, %d of %d bytes", sa, st, senseString(sense), w, wanted)
	}
	return out[:w]
}

// readKeys returns PRGENERATION and the keys.
func (h *prHarness) readKeys() (uint32, []uint64) {
	h.t.Helper()
	b := h.in(hostA, saReadKeys)
	n := binary.BigEndian.Uint32(b[4:8])
	if int(n) != len(b)-8 || n%8 != 0 {
		h.t.Fatalf("READ KEYS: additional length %d with %d bytes", n, len(b))
	}
	var keys []uint64
	for off := 8; off < len(b); off += 8 {
		keys = append(keys, binary.BigEndian.Uint64(b[off:]))
	}
	return binary.BigEndian.Uint32(b), keys
}

// reservation returns READ RESERVATION's key and type, type 0 for none.
func (h *prHarness) reservation() (uint64, PRType) {
	h.t.Helper()
	b := h.in(hostA, saReadReservation)
	switch n := binary.BigEndian.Uint32(b[4:8]); {
	case n == 0 && len(b) == 8:
		return 0, 0
	case n != 16 || len(b) != 24:
		h.t.Fatalf("READ RESERVATION: additional length %d with %d bytes", n, len(b))
	}
	if b[21]>>4 != 0 {
		h.t.Fatalf("READ RESERVATION: scope %d", b[21]>>4)
	}
	return binary.BigEndian.Uint64(b[8:]), PRType(b[21] & 0x0f)
}

// takeUAs returns the unit attentions raised so far and forgets them.
func (h *prHarness) takeUAs() []prUA {
	h.mu.Lock()
	defer h.mu.Unlock()
	u := h.uas
	h.uas = nil
	return u
}

// takeAborts returns the aborts asked so far and forgets them.
func (h *prHarness) takeAborts() []PRNexus {
	h.mu.Lock()
	defer h.mu.Unlock()
	a := h.aborts
	h.aborts, h.ctxs = nil, nil
	return a
}

func senseString(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	s, err := scsi.ParseSense(b)
	if err != nil {
		return fmt.Sprintf("bad sense % x", b)
	}
	return s.String()
}

// wantSense checks a CHECK CONDITION with key and asc and, when off >= 0,
// a field pointer to byte off, bit bit, in the CDB or the parameter list.
func wantSense(t *testing.T, st scsi.Status, sense []byte, key scsi.SenseKey, asc scsi.ASC, inCDB bool, off, bit int) {
	t.Helper()
	if st != scsi.CheckCondition {
		t.Fatalf("status %v, want CHECK CONDITION %v", st, asc)
	}
	s, err := scsi.ParseSense(sense)
	if err != nil {
		t.Fatal(err)
	}
	if s.Key != key || s.ASC != asc {
		t.Fatalf("sense %v, want %v: %v", s, key, asc)
	}
	if off < 0 {
		return
	}
	c, o, b, ok := s.FieldPointer()
	if !ok || c != inCDB || o != off || b != bit {
		t.Fatalf("sense %v: field pointer cdb=%v byte %d bit %d (valid %v), want cdb=%v byte %d bit %d", s, c, o, b, ok, inCDB, off, bit)
	}
}

// outCheck checks the outcome of a PERSISTENT RESERVE OUT.
type outCheck func(t *testing.T, st scsi.Status, sense []byte)

var (
	isGood     outCheck = func(t *testing.T, st scsi.Status, s []byte) { t.Helper(); wantStatus(t, st, s, scsi.Good) }
	isConflict outCheck = func(t *testing.T, st scsi.Status, s []byte) {
		t.Helper()
		wantStatus(t, st, s, scsi.ReservationConflict)
	}
)

// isIllegal expects ILLEGAL REQUEST with asc, as [wantSense] checks it.
func isIllegal(asc scsi.ASC, inCDB bool, off, bit int) outCheck {
	return func(t *testing.T, st scsi.Status, s []byte) {
		t.Helper()
		wantSense(t, st, s, scsi.SenseIllegalRequest, asc, inCDB, off, bit)
	}
}

func wantStatus(t *testing.T, st scsi.Status, sense []byte, want scsi.Status) {
	t.Helper()
	if st != want {
		t.Fatalf("status %v %s, want %v", st, senseString(sense), want)
	}
}

func wantUAs(t *testing.T, got []prUA, want ...prUA) {
	t.Helper()
	key := func(u prUA) string { return u.n.String() + " " + u.asc.String() }
	g, w := make([]string, len(got)), make([]string, len(want))
	for i := range got {
		g[i] = key(got[i])
	}
	for i := range want {
		w[i] = key(want[i])
	}
	slices.Sort(g)
	slices.Sort(w)
	if !slices.Equal(g, w) {
		t.Fatalf("unit attentions\n got %q\nwant %q", g, w)
	}
}

func TestPRRegister(t *testing.T) {
	for _, tc := range []struct {
		name   string
		setup  func(h *prHarness)
		sa     byte
		params []byte
		plen   int // CDB PARAMETER LIST LENGTH when not len(params)
		check  outCheck
		keys   []uint64
		gen    uint32
	}{{
		name: "new registration", sa: saRegister, params: basicParams(0, 0x1111, 0),
		check: isGood,
		keys:  []uint64{0x1111}, gen: 1,
	}, {
		name: "unregistered with a key", sa: saRegister, params: basicParams(0x1111, 0x2222, 0),
		check: isConflict,
	}, {
		name: "unregistered, zero key: nothing but the generation", sa: saRegister, params: basicParams(0, 0, 0),
		check: isGood,
		gen:   1,
	}, {
		name: "reregister with the wrong key", setup: func(h *prHarness) { h.register(hostA, 0x1111) },
		sa: saRegister, params: basicParams(0, 0x1112, 0),
		check: isConflict,
		keys:  []uint64{0x1111}, gen: 1,
	}, {
		name: "change key", setup: func(h *prHarness) { h.register(hostA, 0x1111) },
		sa: saRegister, params: basicParams(0x1111, 0x3333, 0),
		check: isGood,
		keys:  []uint64{0x3333}, gen: 2,
	}, {
		name: "unregister", setup: func(h *prHarness) { h.register(hostA, 0x1111); h.register(hostB, 0x2222) },
		sa: saRegister, params: basicParams(0x1111, 0, 0),
		check: isGood,
		keys:  []uint64{0x2222}, gen: 3,
	}, {
		name: "register and ignore replaces any key", setup: func(h *prHarness) { h.register(hostA, 0x1111) },
		sa: saRegisterAndIgnore, params: basicParams(0xdead, 0x4444, 0),
		check: isGood,
		keys:  []uint64{0x4444}, gen: 2,
	}, {
		name: "register and ignore with zero key unregisters", setup: func(h *prHarness) { h.register(hostA, 0x1111) },
		sa: saRegisterAndIgnore, params: basicParams(0, 0, 0),
		check: isGood,
		gen:   2,
	}, {
		name: "SPEC_I_PT from a registered I_T nexus", setup: func(h *prHarness) { h.register(hostA, 0x1111) },
		sa: saRegister, params: specParams(0x1111, 0x2222, 0),
		check: isIllegal(scsi.ASCInvalidFieldInParamList, false, 20, 3),
		keys:  []uint64{0x1111}, gen: 1,
	}, {
		name: "SPEC_I_PT with REGISTER AND IGNORE EXISTING KEY", sa: saRegisterAndIgnore, params: specParams(0, 0x2222, 0),
		check: isIllegal(scsi.ASCInvalidFieldInParamList, false, 20, 3),
	}, {
		name: "APTPL without a durable store", sa: saRegister, params: basicParams(0, 0x1111, flagAPTPL),
		check: isIllegal(scsi.ASCInvalidFieldInParamList, false, 20, 0),
	}, {
		name: "parameter list of 25 bytes", sa: saRegister, params: append(basicParams(0, 0x1111, 0), 0),
		check: isIllegal(scsi.ASCParameterListLengthError, false, -1, 0),
	}, {
		name: "parameter list of 23 bytes", sa: saRegister, params: basicParams(0, 0x1111, 0)[:23],
		check: isIllegal(scsi.ASCParameterListLengthError, false, -1, 0),
	}, {
		name: "PARAMETER LIST LENGTH shorter than the data", sa: saRegister, params: basicParams(0, 0x1111, 0), plen: 16,
		check: isIllegal(scsi.ASCParameterListLengthError, false, -1, 0),
	}} {
		t.Run(tc.name, func(t *testing.T) {
			h := newPRHarness(t, nil)
			if tc.setup != nil {
				tc.setup(h)
			}
			plen := len(tc.params)
			if tc.plen != 0 {
				plen = tc.plen
			}
			st, sense := h.pr.Out(t.Context(), hostA, proutCDB(tc.sa, 0, 0, plen), tc.params)
			tc.check(t, st, sense)
			gen, keys := h.readKeys()
			if gen != tc.gen || !slices.Equal(keys, tc.keys) {
				t.Fatalf("generation %d keys %x, want %d %x", gen, keys, tc.gen, tc.keys)
			}
		})
	}
}

func TestPRInvalidServiceActions(t *testing.T) {
	h := newPRHarness(t, nil)
	for sa := byte(4); sa < 0x20; sa++ {
		w, wanted, st, sense := h.pr.In(t.Context(), hostA, prinCDB(sa, 512), make([]byte, 512))
		if w != 0 || wanted != 0 {
			t.Fatalf("PR IN SA 0x%02x moved %d/%d bytes", sa, w, wanted)
		}
		wantSense(t, st, sense, scsi.SenseIllegalRequest, scsi.ASCInvalidFieldInCDB, true, 1, 4)
	}
	for sa := byte(8); sa < 0x20; sa++ {
		st, sense := h.out(hostA, sa, 0, basicParams(0, 1, 0))
		wantSense(t, st, sense, scsi.SenseIllegalRequest, scsi.ASCInvalidFieldInCDB, true, 1, 4)
	}
	for _, typ := range []PRType{0, 2, 4, 9, 0xf} {
		for _, sa := range []byte{saReserve, saPreempt, saPreemptAndAbort} {
			st, sense := h.out(hostA, sa, typ, basicParams(0, 1, 0))
			wantSense(t, st, sense, scsi.SenseIllegalRequest, scsi.ASCInvalidFieldInCDB, true, 2, 3)
		}
	}
	st, sense := h.pr.Out(t.Context(), hostA, proutCDB(saReserve, 1, PRWriteExclusive, 24), basicParams(0, 1, 0))
	wantSense(t, st, sense, scsi.SenseIllegalRequest, scsi.ASCInvalidFieldInCDB, true, 2, 7)
	if gen, keys := h.readKeys(); gen != 0 || len(keys) != 0 {
		t.Fatalf("refused commands changed the state: generation %d keys %x", gen, keys)
	}
}

func TestPRReserveRelease(t *testing.T) {
	for _, typ := range prTypes {
		t.Run(typ.String(), func(t *testing.T) {
			h := newPRHarness(t, nil)
			h.register(hostA, 0xa)
			h.register(hostB, 0xb)
			h.register(hostC, 0xc)
			wantStatus(t, firstOf(h.out(hostD, saReserve, typ, basicParams(0, 0, 0))), nil, scsi.ReservationConflict)
			wantStatus(t, firstOf(h.out(hostA, saReserve, typ, basicParams(0xb, 0, 0))), nil, scsi.ReservationConflict)
			h.good(hostA, saReserve, typ, basicParams(0xa, 0, 0))
			wantKey := uint64(0xa)
			if typ.AllRegistrants() {
				wantKey = 0
			}
			if key, got := h.reservation(); key != wantKey || got != typ {
				t.Fatalf("READ RESERVATION key %x type %v, want %x %v", key, got, wantKey, typ)
			}
			// The holder reserving again with the same type changes nothing;
			// with another type, or from another I_T nexus, it conflicts
			// (with all registrants, B holds it too).
			h.good(hostA, saReserve, typ, basicParams(0xa, 0, 0))
			other := PRExclusiveAccess
			if typ == other {
				other = PRWriteExclusive
			}
			wantStatus(t, firstOf(h.out(hostA, saReserve, other, basicParams(0xa, 0, 0))), nil, scsi.ReservationConflict)
			if typ.AllRegistrants() {
				h.good(hostB, saReserve, typ, basicParams(0xb, 0, 0))
			} else {
				wantStatus(t, firstOf(h.out(hostB, saReserve, typ, basicParams(0xb, 0, 0))), nil, scsi.ReservationConflict)
			}
			// RELEASE of another type by a holder is refused.
			st, sense := h.out(hostA, saRelease, other, basicParams(0xa, 0, 0))
			wantSense(t, st, sense, scsi.SenseIllegalRequest, scsi.ASCInvalidReleaseOfPR, false, -1, 0)
			st, sense = h.pr.Out(t.Context(), hostA, proutCDB(saRelease, 2, typ, 24), basicParams(0xa, 0, 0))
			wantSense(t, st, sense, scsi.SenseIllegalRequest, scsi.ASCInvalidReleaseOfPR, false, -1, 0)
			// RELEASE from an unregistered I_T nexus or with the wrong key conflicts.
			wantStatus(t, firstOf(h.out(hostD, saRelease, typ, basicParams(0, 0, 0))), nil, scsi.ReservationConflict)
			wantStatus(t, firstOf(h.out(hostC, saRelease, typ, basicParams(0xa, 0, 0))), nil, scsi.ReservationConflict)
			if len(h.takeUAs()) != 0 {
				t.Fatal("unit attentions before the release")
			}
			// A registered non-holder's RELEASE is GOOD and does nothing;
			// with all registrants, C holds it and releases it for all.
			h.good(hostC, saRelease, typ, basicParams(0xc, 0, 0))
			releaser := hostA
			if typ.AllRegistrants() {
				releaser = hostC
				if _, got := h.reservation(); got != 0 {
					t.Fatalf("all registrants reservation still there after a registrant's RELEASE: %v", got)
				}
			} else {
				if _, got := h.reservation(); got != typ {
					t.Fatalf("a non-holder's RELEASE changed the reservation to %v", got)
				}
				h.good(hostA, saRelease, typ, basicParams(0xa, 0, 0))
			}
			if key, got := h.reservation(); key != 0 || got != 0 {
				t.Fatalf("after RELEASE: key %x type %v", key, got)
			}
			// RESERVATIONS RELEASED goes to the other registrants for the
			// registrants only and all registrants types only.
			var want []prUA
			if typ.registrantsOnly() || typ.AllRegistrants() {
				for _, n := range []PRNexus{hostA, hostB, hostC} {
					if n != releaser {
						want = append(want, prUA{n: n, asc: scsi.ASCReservationsReleased})
					}
				}
			}
			wantUAs(t, h.takeUAs(), want...)
			// RESERVE and RELEASE leave the generation alone; RELEASE
			// without a reservation is GOOD.
			h.good(hostB, saRelease, typ, basicParams(0xb, 0, 0))
			if gen, _ := h.readKeys(); gen != 3 {
				t.Fatalf("generation %d after three registrations, RESERVE and RELEASE", gen)
			}
		})
	}
}

// firstOf returns the status of a (status, sense) pair.
func firstOf(st scsi.Status, _ []byte) scsi.Status { return st }

func TestPRConflictMatrix(t *testing.T) {
	read10 := []byte{0x28, 0, 0, 0, 0, 0, 0, 0, 1, 0}
	write10 := []byte{0x2a, 0, 0, 0, 0, 0, 0, 0, 1, 0}
	read32 := make([]byte, 32)
	read32[0], read32[7], read32[9] = 0x7f, 0x18, 0x09
	write32 := slices.Clone(read32)
	write32[9] = 0x0b
	// Rows: per type (WE EA WE-RO EA-RO WE-AR EA-AR), the reservation
	// holder, a registered I_T nexus that does not hold it and an
	// unregistered one; '.' allowed, 'X' RESERVATION CONFLICT. From the
	// SPC-4 and SBC-3 tables of commands allowed in the presence of
	// persistent reservations.
	const (
		all   = "... ... ... ... ... ..."
		reads = "... .XX ... ..X ... ..X"
		write = ".XX .XX ..X ..X ..X ..X"
	)
	for _, tc := range []struct {
		name string
		cdb  []byte
		want string
	}{
		{"TEST UNIT READY", []byte{0x00, 0, 0, 0, 0, 0}, all},
		{"INQUIRY", []byte{0x12, 0, 0, 0, 36, 0}, all},
		{"REQUEST SENSE", []byte{0x03, 0, 0, 0, 18, 0}, all},
		{"REPORT LUNS", []byte{0xa0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0}, all},
		{"LOG SENSE", []byte{0x4d, 0, 0, 0, 0, 0, 0, 0, 0xff, 0}, all},
		{"READ CAPACITY(10)", []byte{0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0}, all},
		{"READ CAPACITY(16)", []byte{0x9e, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 32, 0, 0}, all},
		{"PERSISTENT RESERVE IN", prinCDB(saReadKeys, 8), all},
		{"PERSISTENT RESERVE OUT", proutCDB(saRegister, 0, 0, 24), all},
		{"REPORT TARGET PORT GROUPS", []byte{0xa3, 0x0a, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0}, all},
		{"START STOP UNIT start", []byte{0x1b, 0, 0, 0, 0x01, 0}, all},
		{"PREVENT ALLOW MEDIUM REMOVAL allow", []byte{0x1e, 0, 0, 0, 0, 0}, all},
		{"READ(10)", read10, reads},
		{"READ(32)", read32, reads},
		{"VERIFY(16)", []byte{0x8f, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0}, reads},
		{"PRE-FETCH(10)", []byte{0x34, 0, 0, 0, 0, 0, 0, 0, 1, 0}, reads},
		{"MODE SENSE(6)", []byte{0x1a, 0, 0x3f, 0, 0xff, 0}, reads},
		{"READ BUFFER", []byte{0x3c, 0x02, 0, 0, 0, 0, 0, 0, 0xff, 0}, reads},
		{"RECEIVE DIAGNOSTIC RESULTS", []byte{0x1c, 0, 0, 0, 0xff, 0}, reads},
		{"REPORT SUPPORTED OPERATION CODES", []byte{0xa3, 0x0c, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0}, reads},
		{"GET LBA STATUS", []byte{0x9e, 0x12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 32, 0, 0}, reads},
		{"READ DEFECT DATA(10)", []byte{0x37, 0, 0, 0, 0, 0, 0, 0, 4, 0}, reads},
		{"WRITE(10)", write10, write},
		{"WRITE(32)", write32, write},
		{"WRITE SAME(16)", []byte{0x93, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0}, write},
		{"COMPARE AND WRITE", []byte{0x89, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0}, write},
		{"UNMAP", []byte{0x42, 0, 0, 0, 0, 0, 0, 0, 24, 0}, write},
		{"SYNCHRONIZE CACHE(10)", []byte{0x35, 0, 0, 0, 0, 0, 0, 0, 0, 0}, write},
		{"MODE SELECT(10)", []byte{0x55, 0x10, 0, 0, 0, 0, 0, 0, 24, 0}, write},
		{"LOG SELECT", []byte{0x4c, 0, 0, 0, 0, 0, 0, 0, 0, 0}, write},
		{"WRITE BUFFER", []byte{0x3b, 0x02, 0, 0, 0, 0, 0, 0, 8, 0}, write},
		{"FORMAT UNIT", []byte{0x04, 0, 0, 0, 0, 0}, write},
		{"START STOP UNIT stop", []byte{0x1b, 0, 0, 0, 0x00, 0}, write},
		{"START STOP UNIT power condition", []byte{0x1b, 0, 0, 0, 0x31, 0}, write},
		{"PREVENT ALLOW MEDIUM REMOVAL prevent", []byte{0x1e, 0, 0, 0, 1, 0}, write},
		{"READ LONG(10)", []byte{0x3e, 0, 0, 0, 0, 0, 0, 2, 0, 0}, write},
		{"vendor specific", []byte{0xc0, 0, 0, 0, 0, 0}, write},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want := []byte(tc.want)
			for i, typ := range prTypes {
				h := newPRHarness(t, nil)
				h.register(hostA, 0xa)
				h.register(hostB, 0xb)
				h.good(hostA, saReserve, typ, basicParams(0xa, 0, 0))
				for j, n := range []PRNexus{hostA, hostB, hostC} {
					got := h.pr.Conflict(n, tc.cdb)
					if wantX := want[4*i+j] == 'X'; got != wantX {
						t.Errorf("%v, %s from %s: conflict %v, want %v", typ, tc.name, []string{"holder", "registered", "unregistered"}[j], got, wantX)
					}
				}
			}
		})
	}
}

func TestPRConflictWithoutReservation(t *testing.T) {
	h := newPRHarness(t, nil)
	write10 := []byte{0x2a, 0, 0, 0, 0, 0, 0, 0, 1, 0}
	reserve6 := []byte{0x16, 0, 0, 0, 0, 0}
	release10 := []byte{0x57, 0, 0, 0, 0, 0, 0, 0, 0, 0}
	if h.pr.Active() || h.pr.Conflict(hostC, reserve6) || h.pr.Conflict(hostC, write10) {
		t.Fatal("conflicts without registrations")
	}
	h.register(hostA, 0xa)
	// Registrations alone restrict nothing but SPC-2 RESERVE and RELEASE,
	// which conflict for everyone, the registrant too (CRH 0).
	if !h.pr.Active() {
		t.Fatal("Active false with a registration")
	}
	for _, n := range []PRNexus{hostA, hostC} {
		if h.pr.Conflict(n, write10) {
			t.Fatalf("WRITE from %v conflicts without a reservation", n)
		}
		if !h.pr.Conflict(n, reserve6) || !h.pr.Conflict(n, release10) {
			t.Fatalf("SPC-2 RESERVE/RELEASE from %v do not conflict with a registration", n)
		}
	}
	if h.pr.Conflict(hostA, nil) {
		t.Fatal("empty CDB conflicts")
	}
}

func TestPRUnregisterHolder(t *testing.T) {
	for _, typ := range prTypes {
		t.Run(typ.String(), func(t *testing.T) {
			h := newPRHarness(t, nil)
			h.register(hostA, 0xa)
			h.register(hostB, 0xb)
			h.register(hostC, 0xc)
			h.good(hostA, saReserve, typ, basicParams(0xa, 0, 0))
			h.good(hostA, saRegister, 0, basicParams(0xa, 0, 0))
			_, got := h.reservation()
			var want []prUA
			switch {
			case typ.AllRegistrants():
				// Still held by B and C, released with the last registration.
				if got != typ {
					t.Fatalf("reservation %v after a registrant left, want %v", got, typ)
				}
				h.good(hostB, saRegister, 0, basicParams(0xb, 0, 0))
				h.good(hostC, saRegisterAndIgnore, 0, basicParams(0, 0, 0))
				if _, got := h.reservation(); got != 0 {
					t.Fatalf("reservation %v without registrations", got)
				}
			case got != 0:
				t.Fatalf("reservation %v after its holder unregistered", got)
			case typ.registrantsOnly():
				want = []prUA{{hostB, scsi.ASCReservationsReleased}, {hostC, scsi.ASCReservationsReleased}}
			}
			wantUAs(t, h.takeUAs(), want...)
		})
	}
}

func TestPRClear(t *testing.T) {
	h := newPRHarness(t, nil)
	h.register(hostA, 0xa)
	h.register(hostB, 0xb)
	h.register(hostC, 0xc)
	h.good(hostB, saReserve, PRExclusiveAccess, basicParams(0xb, 0, 0))
	wantStatus(t, firstOf(h.out(hostD, saClear, 0, basicParams(0, 0, 0))), nil, scsi.ReservationConflict)
	wantStatus(t, firstOf(h.out(hostA, saClear, 0, basicParams(0xb, 0, 0))), nil, scsi.ReservationConflict)
	h.good(hostA, saClear, 0, basicParams(0xa, 0, 0))
	gen, keys := h.readKeys()
	if _, typ := h.reservation(); gen != 4 || len(keys) != 0 || typ != 0 {
		t.Fatalf("after CLEAR: generation %d keys %x reservation %v", gen, keys, typ)
	}
	wantUAs(t, h.takeUAs(), prUA{hostB, scsi.ASCReservationsPreempted}, prUA{hostC, scsi.ASCReservationsPreempted})
	if h.pr.Active() || h.pr.Conflict(hostC, []byte{0x2a, 0, 0, 0, 0, 0, 0, 0, 1, 0}) {
		t.Fatal("state left after CLEAR")
	}
}

// prState summarizes a PR for comparisons: keys in order, "*" after the
// holder's, and the reservation type.
func prState(h *prHarness) string {
	rec := h.pr.Snapshot()
	var b bytes.Buffer
	for _, r := range rec.Registrations {
		fmt.Fprintf(&b, "%x", r.Key)
		if rec.Type != 0 && (r.Holder || rec.Type.AllRegistrants()) {
			b.WriteByte('*')
		}
		b.WriteByte(' ')
	}
	fmt.Fprintf(&b, "type %d", rec.Type)
	return b.String()
}

func TestPRPreempt(t *testing.T) {
	type op struct {
		n      PRNexus
		sa     byte
		typ    PRType
		params []byte
	}
	for _, tc := range []struct {
		name   string
		setup  []op
		do     op
		check  outCheck
		state  string // after
		genInc uint32
		uas    []prUA
		aborts []PRNexus // for PREEMPT AND ABORT
	}{{
		name:  "registration without reservation",
		do:    op{hostA, saPreempt, PRExclusiveAccess, basicParams(0xa, 0xb, 0)},
		state: "a c type 0", genInc: 1,
		uas:    []prUA{{hostB, scsi.ASCRegistrationsPreempted}},
		aborts: []PRNexus{hostB},
	}, {
		name:  "key nobody has",
		do:    op{hostA, saPreempt, PRExclusiveAccess, basicParams(0xa, 0xee, 0)},
		check: isConflict,
		state: "a b c type 0",
	}, {
		name:  "zero key without all registrants reservation",
		do:    op{hostA, saPreempt, PRExclusiveAccess, basicParams(0xa, 0, 0)},
		check: isIllegal(scsi.ASCInvalidFieldInParamList, false, 8, -1),
		state: "a b c type 0",
	}, {
		name:  "unregistered",
		do:    op{hostD, saPreempt, PRExclusiveAccess, basicParams(0, 0xb, 0)},
		check: isConflict,
		state: "a b c type 0",
	}, {
		name:  "wrong key",
		do:    op{hostA, saPreempt, PRExclusiveAccess, basicParams(0xb, 0xb, 0)},
		check: isConflict,
		state: "a b c type 0",
	}, {
		name:  "holder, type changes",
		setup: []op{{hostB, saReserve, PRWriteExclusive, basicParams(0xb, 0, 0)}},
		do:    op{hostA, saPreempt, PRExclusiveAccess, basicParams(0xa, 0xb, 0)},
		state: "a* c type 3", genInc: 1,
		uas:    []prUA{{hostB, scsi.ASCRegistrationsPreempted}, {hostC, scsi.ASCReservationsReleased}},
		aborts: []PRNexus{hostB},
	}, {
		name:  "holder, same type",
		setup: []op{{hostB, saReserve, PRWriteExclusive, basicParams(0xb, 0, 0)}},
		do:    op{hostA, saPreempt, PRWriteExclusive, basicParams(0xa, 0xb, 0)},
		state: "a* c type 1", genInc: 1,
		uas:    []prUA{{hostB, scsi.ASCRegistrationsPreempted}},
		aborts: []PRNexus{hostB},
	}, {
		name:  "holder sharing its key with another registrant",
		setup: []op{{hostD, saRegisterAndIgnore, 0, basicParams(0, 0xb, 0)}, {hostB, saReserve, PRWriteExclusiveRegistrantsOnly, basicParams(0xb, 0, 0)}},
		do:    op{hostA, saPreempt, PRWriteExclusiveRegistrantsOnly, basicParams(0xa, 0xb, 0)},
		state: "a* c type 5", genInc: 1,
		uas:    []prUA{{hostB, scsi.ASCRegistrationsPreempted}, {hostD, scsi.ASCRegistrationsPreempted}},
		aborts: []PRNexus{hostB, hostD},
	}, {
		name:  "non-holder while a reservation exists",
		setup: []op{{hostB, saReserve, PRWriteExclusive, basicParams(0xb, 0, 0)}},
		do:    op{hostA, saPreempt, PRExclusiveAccess, basicParams(0xa, 0xc, 0)},
		state: "a b* type 1", genInc: 1,
		uas:    []prUA{{hostC, scsi.ASCRegistrationsPreempted}},
		aborts: []PRNexus{hostC},
	}, {
		name:  "zero key with a reservation that is not all registrants",
		setup: []op{{hostB, saReserve, PRWriteExclusive, basicParams(0xb, 0, 0)}},
		do:    op{hostA, saPreempt, PRExclusiveAccess, basicParams(0xa, 0, 0)},
		check: isIllegal(scsi.ASCInvalidFieldInParamList, false, 8, -1),
		state: "a b* c type 1",
	}, {
		name:  "own reservation, new type",
		setup: []op{{hostA, saReserve, PRWriteExclusive, basicParams(0xa, 0, 0)}},
		do:    op{hostA, saPreempt, PRExclusiveAccessRegistrantsOnly, basicParams(0xa, 0xa, 0)},
		state: "a* b c type 6", genInc: 1,
		uas:    []prUA{{hostB, scsi.ASCReservationsReleased}, {hostC, scsi.ASCReservationsReleased}},
		aborts: []PRNexus{hostA},
	}, {
		name:  "all registrants, zero key",
		setup: []op{{hostB, saReserve, PRWriteExclusiveAllRegistrants, basicParams(0xb, 0, 0)}},
		do:    op{hostA, saPreempt, PRExclusiveAccess, basicParams(0xa, 0, 0)},
		state: "a* type 3", genInc: 1,
		uas:    []prUA{{hostB, scsi.ASCRegistrationsPreempted}, {hostC, scsi.ASCRegistrationsPreempted}},
		aborts: []PRNexus{hostA, hostB, hostC},
	}, {
		name:  "all registrants, zero key, all registrants again",
		setup: []op{{hostB, saReserve, PRExclusiveAccessAllRegistrants, basicParams(0xb, 0, 0)}},
		do:    op{hostA, saPreempt, PRExclusiveAccessAllRegistrants, basicParams(0xa, 0, 0)},
		state: "a* type 8", genInc: 1,
		uas:    []prUA{{hostB, scsi.ASCRegistrationsPreempted}, {hostC, scsi.ASCRegistrationsPreempted}},
		aborts: []PRNexus{hostA, hostB, hostC},
	}, {
		name:  "all registrants, a key",
		setup: []op{{hostB, saReserve, PRWriteExclusiveAllRegistrants, basicParams(0xb, 0, 0)}},
		do:    op{hostA, saPreempt, PRExclusiveAccess, basicParams(0xa, 0xc, 0)},
		state: "a* b* type 7", genInc: 1,
		uas:    []prUA{{hostC, scsi.ASCRegistrationsPreempted}},
		aborts: []PRNexus{hostC},
	}, {
		name:  "own key without reservation",
		do:    op{hostA, saPreempt, PRExclusiveAccess, basicParams(0xa, 0xa, 0)},
		state: "b c type 0", genInc: 1,
		aborts: []PRNexus{hostA},
	}} {
		for _, abort := range []bool{false, true} {
			name := tc.name
			sa := tc.do.sa
			if abort {
				name += " and abort"
				sa = saPreemptAndAbort
			}
			t.Run(name, func(t *testing.T) {
				h := newPRHarness(t, nil)
				h.register(hostA, 0xa)
				h.register(hostB, 0xb)
				h.register(hostC, 0xc)
				for _, o := range tc.setup {
					h.good(o.n, o.sa, o.typ, o.params)
				}
				gen0, _ := h.readKeys()
				h.takeUAs()
				ctx := context.WithValue(t.Context(), taskKey{}, "the PR OUT's task")
				st, sense := h.pr.Out(ctx, tc.do.n, proutCDB(sa, 0, tc.do.typ, 24), tc.do.params)
				if tc.check != nil {
					tc.check(t, st, sense)
				} else {
					wantStatus(t, st, sense, scsi.Good)
				}
				if got := prState(h); got != tc.state {
					t.Fatalf("state %q, want %q", got, tc.state)
				}
				if gen, _ := h.readKeys(); gen != gen0+tc.genInc {
					t.Fatalf("generation %d, want %d", gen, gen0+tc.genInc)
				}
				wantUAs(t, h.takeUAs(), tc.uas...)
				h.mu.Lock()
				for _, c := range h.ctxs {
					if c.Value(taskKey{}) != "the PR OUT's task" {
						t.Error("Abort did not get Out's context")
					}
				}
				h.mu.Unlock()
				gotAborts := h.takeAborts()
				var want []PRNexus
				if abort {
					want = tc.aborts
				}
				if !sameNexuses(gotAborts, want) {
					t.Fatalf("aborted %v, want %v", gotAborts, want)
				}
			})
		}
	}
}

// taskKey marks the context of a PR OUT, as the engine's task would.
type taskKey struct{}

func sameNexuses(a, b []PRNexus) bool {
	s := func(ns []PRNexus) []string {
		out := make([]string, len(ns))
		for i, n := range ns {
			out[i] = n.String()
		}
		slices.Sort(out)
		return out
	}
	return slices.Equal(s(a), s(b))
}

func TestPRRegisterAndMove(t *testing.T) {
	tidB := wireTID(hostB.InitiatorName, hostB.ISID)
	for _, tc := range []struct {
		name   string
		typ    PRType // reservation A holds first; 0 for none
		by     PRNexus
		params []byte
		plen   int
		check  outCheck
		state  string
	}{{
		name: "to an unregistered I_T nexus through the other port", typ: PRWriteExclusive, by: hostA,
		params: moveParams(0xa, 0xbb, false, false, 2, tidB),
		state:  "a c bb* type 1",
	}, {
		name: "to a registered I_T nexus, unregistering the sender", typ: PRExclusiveAccessRegistrantsOnly, by: hostA,
		params: moveParams(0xa, 0xcc, true, false, 1, wireTID(hostC.InitiatorName, hostC.ISID)),
		state:  "cc* type 6",
	}, {
		name: "to a name-only TransportID", typ: PRWriteExclusive, by: hostA,
		params: moveParams(0xa, 0xdd, false, false, 1, wireTID(hostD.InitiatorName, "")),
		state:  "a c dd* type 1",
	}, {
		name: "without reservation", by: hostA, params: moveParams(0xa, 0xbb, false, false, 1, tidB),
		check: isIllegal(scsi.ASCInvalidFieldInCDB, true, 1, 4),
		state: "a c type 0",
	}, {
		name: "by a registrant that does not hold it", typ: PRWriteExclusive, by: hostC,
		params: moveParams(0xc, 0xbb, false, false, 1, tidB),
		check:  func(t *testing.T, st scsi.Status, s []byte) { wantStatus(t, st, s, scsi.ReservationConflict) },
		state:  "a* c type 1",
	}, {
		name: "all registrants reservation", typ: PRWriteExclusiveAllRegistrants, by: hostA,
		params: moveParams(0xa, 0xbb, false, false, 1, tidB),
		check:  func(t *testing.T, st scsi.Status, s []byte) { wantStatus(t, st, s, scsi.ReservationConflict) },
		state:  "a* c* type 7",
	}, {
		name: "by an unregistered I_T nexus", typ: PRWriteExclusive, by: hostB,
		params: moveParams(0, 0xbb, false, false, 1, wireTID(hostC.InitiatorName, hostC.ISID)),
		check:  func(t *testing.T, st scsi.Status, s []byte) { wantStatus(t, st, s, scsi.ReservationConflict) },
		state:  "a* c type 1",
	}, {
		name: "wrong key", typ: PRWriteExclusive, by: hostA,
		params: moveParams(0xc, 0xbb, false, false, 1, tidB),
		check:  func(t *testing.T, st scsi.Status, s []byte) { wantStatus(t, st, s, scsi.ReservationConflict) },
		state:  "a* c type 1",
	}, {
		name: "zero service action key", typ: PRWriteExclusive, by: hostA,
		params: moveParams(0xa, 0, false, false, 1, tidB),
		check:  isIllegal(scsi.ASCInvalidFieldInParamList, false, 8, -1),
		state:  "a* c type 1",
	}, {
		name: "unknown relative target port", typ: PRWriteExclusive, by: hostA,
		params: moveParams(0xa, 0xbb, false, false, 7, tidB),
		check:  isIllegal(scsi.ASCInvalidFieldInParamList, false, 18, -1),
		state:  "a* c type 1",
	}, {
		name: "to the sender's own initiator port", typ: PRWriteExclusive, by: hostA,
		params: moveParams(0xa, 0xbb, false, false, 2, wireTID(hostA.InitiatorName, hostA.ISID)),
		check:  isIllegal(scsi.ASCInvalidFieldInParamList, false, 24, -1),
		state:  "a* c type 1",
	}, {
		name: "APTPL without a durable store", typ: PRWriteExclusive, by: hostA,
		params: moveParams(0xa, 0xbb, false, true, 1, tidB),
		check:  isIllegal(scsi.ASCInvalidFieldInParamList, false, 17, 0),
		state:  "a* c type 1",
	}, {
		name: "TransportID past the parameter list", typ: PRWriteExclusive, by: hostA,
		params: moveParams(0xa, 0xbb, false, false, 1, tidB)[:40],
		check:  isIllegal(scsi.ASCParameterListLengthError, false, -1, 0),
		state:  "a* c type 1",
	}, {
		name: "TransportID longer than its data length", typ: PRWriteExclusive, by: hostA,
		params: func() []byte {
			p := moveParams(0xa, 0xbb, false, false, 1, tidB)
			binary.BigEndian.PutUint32(p[20:], 8)
			return p
		}(),
		check: isIllegal(scsi.ASCParameterListLengthError, false, -1, 0),
		state: "a* c type 1",
	}, {
		name: "Fibre Channel TransportID", typ: PRWriteExclusive, by: hostA,
		params: moveParams(0xa, 0xbb, false, false, 1, make([]byte, 24)),
		check:  isIllegal(scsi.ASCInvalidFieldInParamList, false, 24, 3),
		state:  "a* c type 1",
	}} {
		t.Run(tc.name, func(t *testing.T) {
			h := newPRHarness(t, nil, port1, port2)
			h.register(hostA, 0xa)
			h.register(hostC, 0xc)
			if tc.typ != 0 {
				h.good(hostA, saReserve, tc.typ, basicParams(0xa, 0, 0))
			}
			gen0, _ := h.readKeys()
			st, sense := h.pr.Out(t.Context(), tc.by, proutCDB(saRegisterAndMove, 0, 0, len(tc.params)), tc.params)
			gen, _ := h.readKeys()
			if tc.check != nil {
				tc.check(t, st, sense)
				if gen != gen0 {
					t.Fatalf("generation %d after a refused REGISTER AND MOVE, was %d", gen, gen0)
				}
			} else {
				wantStatus(t, st, sense, scsi.Good)
				if gen != gen0+1 {
					t.Fatalf("generation %d, want %d", gen, gen0+1)
				}
			}
			if got := prState(h); got != tc.state {
				t.Fatalf("state %q, want %q", got, tc.state)
			}
		})
	}
	// The moved reservation is enforced for the new holder's I_T nexus:
	// B through port 2 writes, A (still registered) does not.
	h := newPRHarness(t, nil, port1, port2)
	h.register(hostA, 0xa)
	h.good(hostA, saReserve, PRWriteExclusive, basicParams(0xa, 0, 0))
	h.good(hostA, saRegisterAndMove, 0, moveParams(0xa, 0xbb, false, false, 2, tidB))
	write10 := []byte{0x2a, 0, 0, 0, 0, 0, 0, 0, 1, 0}
	hostBviaPort2 := PRNexus{InitiatorName: hostB.InitiatorName, ISID: hostB.ISID, TargetPort: port2.Name, RelTargetPortID: 2}
	if h.pr.Conflict(hostBviaPort2, write10) || !h.pr.Conflict(hostA, write10) || !h.pr.Conflict(hostB, write10) {
		t.Fatal("WRITE access after REGISTER AND MOVE: want only B through port 2")
	}
	if key, typ := h.reservation(); key != 0xbb || typ != PRWriteExclusive {
		t.Fatalf("READ RESERVATION %x %v", key, typ)
	}
}

// fullStatus is one decoded READ FULL STATUS descriptor.
type fullStatus struct {
	key      uint64
	allTgPt  bool
	holder   bool
	scopeTyp byte
	rtpi     uint16
	tid      []byte
}

func decodeFullStatus(t *testing.T, b []byte) (uint32, []fullStatus) {
	t.Helper()
	if n := binary.BigEndian.Uint32(b[4:]); int(n) != len(b)-8 {
		t.Fatalf("READ FULL STATUS: additional length %d with %d bytes", n, len(b))
	}
	var ds []fullStatus
	for off := 8; off < len(b); {
		d := b[off:]
		n := int(binary.BigEndian.Uint32(d[20:]))
		ds = append(ds, fullStatus{
			key: binary.BigEndian.Uint64(d), allTgPt: d[12]&2 != 0, holder: d[12]&1 != 0,
			scopeTyp: d[13], rtpi: binary.BigEndian.Uint16(d[18:]), tid: d[24 : 24+n],
		})
		off += 24 + n
	}
	return binary.BigEndian.Uint32(b), ds
}

func TestPRReadFullStatus(t *testing.T) {
	h := newPRHarness(t, nil, port1, port2)
	h.good(hostA, saRegister, 0, specParams(0, 0xa, 0, wireTID(hostD.InitiatorName, "")))
	h.good(hostB, saRegister, 0, basicParams(0, 0xb, flagAllTgPt))
	h.good(hostA, saReserve, PRWriteExclusiveRegistrantsOnly, basicParams(0xa, 0, 0))
	gen, ds := decodeFullStatus(t, h.in(hostC, saReadFullStatus))
	want := []fullStatus{
		{key: 0xa, holder: true, scopeTyp: 0x05, rtpi: 1, tid: wireTID(hostA.InitiatorName, hostA.ISID)},
		{key: 0xa, rtpi: 1, tid: wireTID(hostD.InitiatorName, "")},
		{key: 0xb, allTgPt: true, rtpi: 1, tid: wireTID(hostB.InitiatorName, hostB.ISID)},
		{key: 0xb, allTgPt: true, rtpi: 2, tid: wireTID(hostB.InitiatorName, hostB.ISID)},
	}
	if gen != 2 || len(ds) != len(want) {
		t.Fatalf("generation %d, %d descriptors: %+v", gen, len(ds), ds)
	}
	for i := range want {
		if fmt.Sprint(ds[i]) != fmt.Sprint(want[i]) {
			t.Errorf("descriptor %d\n got %+v\nwant %+v", i, ds[i], want[i])
		}
	}
	// The TransportID bytes, spelled out: format 01b, iSCSI, additional
	// length 44: "iqn.1994-05.com.redhat:a,i,0x023d00000001" (41 bytes), NUL,
	// two bytes of padding.
	tidA := append([]byte{0x45, 0, 0, 44}, "iqn.1994-05.com.redhat:a,i,0x023d00000001"...)
	tidA = append(tidA, 0, 0, 0)
	if !bytes.Equal(ds[0].tid, tidA) {
		t.Fatalf("TransportID % x\nwant % x", ds[0].tid, tidA)
	}
	// An all registrants reservation: every descriptor is a holder.
	h.good(hostA, saPreempt, PRExclusiveAccessAllRegistrants, basicParams(0xa, 0xa, 0))
	_, ds = decodeFullStatus(t, h.in(hostC, saReadFullStatus))
	for i, d := range ds {
		if !d.holder || d.scopeTyp != 0x08 {
			t.Errorf("descriptor %d of an all registrants reservation: %+v", i, d)
		}
	}
}

func TestPRInAllocationLength(t *testing.T) {
	h := newPRHarness(t, nil)
	h.register(hostA, 0x1122334455667788)
	h.register(hostB, 0xb)
	h.good(hostA, saReserve, PRExclusiveAccess, basicParams(0x1122334455667788, 0, 0))
	for _, tc := range []struct {
		sa          byte
		alloc, room int
		written     int
		wanted      int
		want        []byte // the first bytes
	}{
		{saReadKeys, 8, 100, 8, 8, []byte{0, 0, 0, 2, 0, 0, 0, 16}},
		{saReadKeys, 12, 100, 12, 12, []byte{0, 0, 0, 2, 0, 0, 0, 16, 0x11, 0x22, 0x33, 0x44}},
		{saReadKeys, 100, 100, 24, 24, []byte{0, 0, 0, 2, 0, 0, 0, 16, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0, 0, 0, 0, 0, 0, 0, 0xb}},
		{saReadKeys, 100, 10, 10, 24, []byte{0, 0, 0, 2, 0, 0, 0, 16, 0x11, 0x22}},
		{saReadKeys, 0, 100, 0, 0, nil},
		{saReadReservation, 100, 100, 24, 24, []byte{0, 0, 0, 2, 0, 0, 0, 16, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0, 0, 0, 0, 0, 0x03, 0, 0}},
		{saReadReservation, 6, 100, 6, 6, []byte{0, 0, 0, 2, 0, 0}},
		{saReportCapabilities, 100, 100, 8, 8, []byte{0, 8, 0x0c, 0xb0, 0xea, 0x01, 0, 0}},
		{saReportCapabilities, 2, 100, 2, 2, []byte{0, 8}},
		{saReadFullStatus, 8, 100, 8, 8, []byte{0, 0, 0, 2, 0, 0, 0, 2 * (24 + 48)}},
	} {
		out := make([]byte, tc.room)
		w, wanted, st, sense := h.pr.In(t.Context(), hostC, prinCDB(tc.sa, uint16(tc.alloc)), out)
		wantStatus(t, st, sense, scsi.Good)
		if w != tc.written || wanted != tc.wanted || !bytes.Equal(out[:w], tc.want) {
			t.Errorf("SA %d alloc %d room %d: %d/%d bytes % x, want %d/%d % x", tc.sa, tc.alloc, tc.room, w, wanted, out[:w], tc.written, tc.wanted, tc.want)
		}
	}
	// No reservation: READ RESERVATION is the bare header.
	h.good(hostA, saRelease, PRExclusiveAccess, basicParams(0x1122334455667788, 0, 0))
	if b := h.in(hostA, saReadReservation); !bytes.Equal(b, []byte{0, 0, 0, 2, 0, 0, 0, 0}) {
		t.Fatalf("READ RESERVATION without reservation: % x", b)
	}
}

func TestPRSpecIPT(t *testing.T) {
	illegal := scsi.SenseIllegalRequest
	write10 := []byte{0x2a, 0, 0, 0, 0, 0, 0, 0, 1, 0}
	t.Run("registers the named I_T nexuses", func(t *testing.T) {
		h := newPRHarness(t, nil)
		h.good(hostA, saRegister, 0, specParams(0, 0xa, 0,
			wireTID(hostB.InitiatorName, hostB.ISID),
			wireTID(hostD.InitiatorName, ""),
			wireTID(hostA.InitiatorName, hostA.ISID))) // the sender again: no second registration
		if gen, keys := h.readKeys(); gen != 1 || !slices.Equal(keys, []uint64{0xa, 0xa, 0xa}) {
			t.Fatalf("generation %d keys %x", gen, keys)
		}
		h.register(hostC, 0xc)
		h.good(hostC, saReserve, PRWriteExclusiveRegistrantsOnly, basicParams(0xc, 0, 0))
		// The name-only registration covers every initiator port of D,
		// including one a relogin creates; B's covers only its ISID.
		hostDnew := hostD
		hostDnew.ISID = "400001370001"
		hostBnew := hostB
		hostBnew.ISID = "023d00000009"
		for n, conflict := range map[PRNexus]bool{hostA: false, hostB: false, hostD: false, hostDnew: false, hostBnew: true} {
			if got := h.pr.Conflict(n, write10); got != conflict {
				t.Errorf("WRITE from %v: conflict %v, want %v", n, got, conflict)
			}
		}
		// D's new initiator port can use the registration: key 0xa.
		h.good(hostDnew, saRegister, 0, basicParams(0xa, 0xd, 0))
		if _, keys := h.readKeys(); !slices.Equal(keys, []uint64{0xa, 0xa, 0xd, 0xc}) {
			t.Fatalf("keys %x after D changed its key", keys)
		}
	})
	t.Run("a name-only TransportID of the sender's name", func(t *testing.T) {
		h := newPRHarness(t, nil)
		h.good(hostA, saRegister, 0, specParams(0, 0xa, 0, wireTID(hostA.InitiatorName, "")))
		if _, ds := decodeFullStatus(t, h.in(hostA, saReadFullStatus)); len(ds) != 1 || !bytes.Equal(ds[0].tid, wireTID(hostA.InitiatorName, "")) {
			t.Fatalf("descriptors %+v", ds)
		}
		if rec := h.pr.Snapshot(); rec.find(hostAnew) != 0 {
			t.Fatal("A's new initiator port is not registered")
		}
	})
	for _, tc := range []struct {
		name   string
		params []byte
		off    int // field pointer, -1 for PARAMETER LIST LENGTH ERROR
		bit    int
	}{
		{"already registered", specParams(0, 0xa, 0, wireTID(hostC.InitiatorName, hostC.ISID)), 28, -1},
		{"name of a registered initiator port", specParams(0, 0xa, 0, wireTID(hostB.InitiatorName, hostB.ISID), wireTID(hostC.InitiatorName, "")), 28 + 48, -1},
		{"not iSCSI", specParams(0, 0xa, 0, make([]byte, 24)), 28, 3},
		{"reserved format", specParams(0, 0xa, 0, append([]byte{0x85}, wireTID(hostB.InitiatorName, "")[1:]...)), 28, 7},
		{"ISID not hex", specParams(0, 0xa, 0, wireTID(hostB.InitiatorName, "023d0000000g")), 32, -1},
		{"no ISID separator", specParams(0, 0xa, 0, append([]byte{0x45}, wireTID(hostB.InitiatorName, "")[1:]...)), 32, -1},
		{"empty name", specParams(0, 0xa, 0, []byte{0x05, 0, 0, 4, 0, 0, 0, 0}), 32, -1},
		{"TransportID past its data length", specParams(0, 0xa, 0, wireTID(hostB.InitiatorName, hostB.ISID)[:20]), -1, 0},
		{"data length past the list", specParams(0, 0xa, 0, wireTID(hostB.InitiatorName, hostB.ISID))[:40], -1, 0},
		{"no data length", basicParams(0, 0xa, flagSpecIPT), -1, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newPRHarness(t, nil)
			h.register(hostC, 0xc)
			st, sense := h.out(hostA, saRegister, 0, tc.params)
			if tc.off < 0 {
				wantSense(t, st, sense, illegal, scsi.ASCParameterListLengthError, false, -1, 0)
			} else {
				wantSense(t, st, sense, illegal, scsi.ASCInvalidFieldInParamList, false, tc.off, tc.bit)
			}
			if gen, keys := h.readKeys(); gen != 1 || !slices.Equal(keys, []uint64{0xc}) {
				t.Fatalf("refused SPEC_I_PT changed the state: generation %d keys %x", gen, keys)
			}
		})
	}
}

func TestPRAllTgPt(t *testing.T) {
	h := newPRHarness(t, nil, port1, port2)
	write10 := []byte{0x2a, 0, 0, 0, 0, 0, 0, 0, 1, 0}
	h.good(hostA, saRegisterAndIgnore, 0, basicParams(0, 0xa, flagAllTgPt))
	h.register(hostB, 0xb)
	h.good(hostB, saReserve, PRExclusiveAccessRegistrantsOnly, basicParams(0xb, 0, 0))
	// A is registered through both ports; its new ISID is not.
	for n, conflict := range map[PRNexus]bool{hostA: false, hostA2: false, hostAnew: true} {
		if got := h.pr.Conflict(n, write10); got != conflict {
			t.Errorf("WRITE from %v: conflict %v, want %v", n, got, conflict)
		}
	}
	if _, keys := h.readKeys(); !slices.Equal(keys, []uint64{0xa, 0xa, 0xb}) {
		t.Fatalf("keys %x", keys)
	}
	// A new key through port 2 applies to both registrations.
	h.good(hostA2, saRegister, 0, basicParams(0xa, 0xaa, 0))
	if _, keys := h.readKeys(); !slices.Equal(keys, []uint64{0xaa, 0xaa, 0xb}) {
		t.Fatalf("keys %x after the key change", keys)
	}
	// Unregistering through port 1 removes both.
	h.good(hostA, saRegister, 0, basicParams(0xaa, 0, 0))
	if _, keys := h.readKeys(); !slices.Equal(keys, []uint64{0xb}) {
		t.Fatalf("keys %x after unregistering", keys)
	}
	if !h.pr.Conflict(hostA2, write10) {
		t.Fatal("A through port 2 still registered")
	}
	// With ALL_TG_PT, an initiator port registered separately through the
	// other port keeps that registration.
	h.register(hostA2, 0x2)
	h.good(hostA, saRegister, 0, basicParams(0, 0x1, flagAllTgPt))
	if _, keys := h.readKeys(); !slices.Equal(keys, []uint64{0xb, 0x2, 0x1}) {
		t.Fatalf("keys %x", keys)
	}
}

func TestPRGeneration(t *testing.T) {
	h := newPRHarness(t, nil, port1, port2)
	tidB := wireTID(hostB.InitiatorName, hostB.ISID)
	for i, step := range []struct {
		n      PRNexus
		sa     byte
		typ    PRType
		params []byte
		st     scsi.Status
		gen    uint32
	}{
		{hostA, saRegister, 0, basicParams(0, 0xa, 0), scsi.Good, 1},
		{hostA, saRegister, 0, basicParams(0, 0xa, 0), scsi.ReservationConflict, 1},
		{hostC, saRegisterAndIgnore, 0, basicParams(0, 0xc, 0), scsi.Good, 2},
		{hostA, saReserve, PRWriteExclusive, basicParams(0xa, 0, 0), scsi.Good, 2},
		{hostC, saReserve, PRWriteExclusive, basicParams(0xc, 0, 0), scsi.ReservationConflict, 2},
		{hostA, saRelease, PRWriteExclusive, basicParams(0xa, 0, 0), scsi.Good, 2},
		{hostA, saReserve, PRWriteExclusive, basicParams(0xa, 0, 0), scsi.Good, 2},
		{hostA, saRegisterAndMove, 0, moveParams(0xa, 0xb, false, false, 1, tidB), scsi.Good, 3},
		{hostB, saPreempt, PRExclusiveAccess, basicParams(0xb, 0xc, 0), scsi.Good, 4},
		{hostB, saPreemptAndAbort, PRExclusiveAccess, basicParams(0xb, 0xa, 0), scsi.Good, 5},
		{hostB, saPreempt, PRExclusiveAccess, basicParams(0xb, 0xee, 0), scsi.ReservationConflict, 5},
		{hostB, saClear, 0, basicParams(0xb, 0, 0), scsi.Good, 6},
		{hostB, saClear, 0, basicParams(0xb, 0, 0), scsi.ReservationConflict, 6},
	} {
		st, sense := h.out(step.n, step.sa, step.typ, step.params)
		gen, _ := h.readKeys()
		if st != step.st || gen != step.gen {
			t.Fatalf("step %d (SA %d): %v %s generation %d, want %v %d", i, step.sa, st, senseString(sense), gen, step.st, step.gen)
		}
	}
}

func TestPRNexusCovers(t *testing.T) {
	upper := PRNexus{InitiatorName: "IQN.1994-05.COM.REDHAT:A", ISID: "023D00000001", TargetPort: "IQN.2026-11.IO.SANBRIDGE:T1,T,0X0001"}
	nameOnly := PRNexus{InitiatorName: hostA.InitiatorName, TargetPort: port1.Name}
	for _, tc := range []struct {
		n, m PRNexus
		want bool
	}{
		{hostA, hostA, true},
		{upper, hostA, true},
		{hostA, hostAnew, false},
		{hostA, hostA2, false},
		{hostA, hostB, false},
		{nameOnly, hostA, true},
		{nameOnly, hostAnew, true},
		{nameOnly, hostA2, false},
		{hostA, nameOnly, false},
	} {
		if got := tc.n.Covers(tc.m); got != tc.want {
			t.Errorf("%v covers %v: %v, want %v", tc.n, tc.m, got, tc.want)
		}
	}
}

func TestTransportIDRoundTrip(t *testing.T) {
	for _, tc := range []struct{ name, isid string }{
		{"iqn.1994-05.com.redhat:a", "023d00000001"},
		{"iqn.1994-05.com.redhat:a", ""},
		{"eui.0123456789abcdef", "400001370000"},
		{"naa.52004567ba64678d", ""},
	} {
		b := appendTransportID(nil, tc.name, tc.isid)
		if !bytes.Equal(b, wireTID(tc.name, tc.isid)) {
			t.Errorf("%s %s: % x\nwant % x", tc.name, tc.isid, b, wireTID(tc.name, tc.isid))
		}
		got, n, err := parseTransportID(append(b, 0xff, 0xff))
		if err != nil || n != len(b) || got.name != tc.name || got.isid != tc.isid {
			t.Errorf("%s %s: parsed %+v, %d bytes, %v", tc.name, tc.isid, got, n, err)
		}
	}
	// Upper case and an unpadded TransportID are accepted and normalized.
	raw := append([]byte{0x45, 0, 0, 0}, "IQN.X:Y,I,0X023D0000000A"...)
	raw[3] = byte(len(raw) - 4)
	got, _, err := parseTransportID(raw)
	if err != nil || got.name != "iqn.x:y" || got.isid != "023d0000000a" {
		t.Fatalf("parsed %+v, %v", got, err)
	}
}
