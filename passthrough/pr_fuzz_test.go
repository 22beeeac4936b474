package passthrough

import (
	"encoding/binary"
	"fmt"
	"testing"

	"github.com/sanbridge/sanbridge/sgio/scsi"
)

// FuzzPROut sends one PERSISTENT RESERVE OUT (any CDB, any parameter
// list) from several I_T nexuses to a logical unit with registrations
// (plain, ALL_TG_PT, name-only) and a reservation, and checks that PR
// never panics and keeps its invariants: a valid record (a reservation
// only with a registered holder, no I_T nexus registered twice), a
// generation that never goes back and moves on no RESERVE or RELEASE,
// nothing changed by a command that did not end GOOD, and PERSISTENT
// RESERVE IN answers that agree with the record.
func FuzzPROut(f *testing.F) {
	f.Add(proutCDB(saRegister, 0, 0, 24), basicParams(0, 0x77, 0))
	f.Add(proutCDB(saReserve, 0, PRExclusiveAccess, 24), basicParams(0xa, 0, 0))
	f.Add(proutCDB(saPreemptAndAbort, 0, PRWriteExclusiveAllRegistrants, 24), basicParams(0xa, 0xb, 0))
	f.Add(proutCDB(saRegisterAndMove, 0, 0, 72), moveParams(0xa, 0x55, true, false, 2, wireTID(hostD.InitiatorName, "400001370000")))
	spec := specParams(0, 0x66, flagAllTgPt, wireTID("iqn.2026-01.io.example:e", ""), wireTID(hostC.InitiatorName, "023d0000000f"))
	f.Add(proutCDB(saRegister, 0, 0, len(spec)), spec)
	f.Fuzz(func(t *testing.T, cdb, param []byte) {
		h := newPRHarness(t, nil, port1, port2)
		h.register(hostA, 0xa)
		h.good(hostB, saRegisterAndIgnore, 0, basicParams(0, 0xb, flagAllTgPt))
		h.good(hostC, saRegister, 0, specParams(0, 0xc, 0, wireTID(hostD.InitiatorName, "")))
		h.good(hostA, saReserve, PRWriteExclusiveRegistrantsOnly, basicParams(0xa, 0, 0))
		for _, n := range []PRNexus{hostA, hostB, hostA2, hostC, hostAnew} {
			before := h.pr.Snapshot()
			st, sense := h.pr.Out(t.Context(), n, cdb, param)
			after := h.pr.Snapshot()
			if err := after.Validate(); err != nil {
				t.Fatalf("from %v: %v\n%+v", n, err, after)
			}
			switch {
			case after.Generation < before.Generation:
				t.Fatalf("generation went from %d to %d", before.Generation, after.Generation)
			case st != scsi.Good && fmt.Sprint(after) != fmt.Sprint(before):
				t.Fatalf("%v changed the state\n%+v\n%+v", st, before, after)
			case st == scsi.CheckCondition:
				if _, err := scsi.ParseSense(sense); err != nil {
					t.Fatalf("sense % x: %v", sense, err)
				}
			case st != scsi.Good && st != scsi.ReservationConflict:
				t.Fatalf("status %v", st)
			}
			if st == scsi.Good && len(cdb) > 1 && (cdb[1]&0x1f == saReserve || cdb[1]&0x1f == saRelease) && after.Generation != before.Generation {
				t.Fatalf("SA %d moved the generation", cdb[1]&0x1f)
			}
			h.takeUAs()
			h.takeAborts()
			h.pr.Conflict(n, cdb)
			checkPRIn(t, h, &after)
		}
	})
}

// checkPRIn checks every PERSISTENT RESERVE IN answer against rec.
func checkPRIn(t *testing.T, h *prHarness, rec *PRRecord) {
	t.Helper()
	for sa := range byte(4) {
		for _, alloc := range []int{0, 7, 8, 0xffff} {
			out := make([]byte, 4096)
			w, wanted, st, _ := h.pr.In(t.Context(), hostC, prinCDB(sa, uint16(alloc)), out)
			if st != scsi.Good || wanted > alloc || w != min(wanted, len(out)) {
				t.Fatalf("PR IN SA %d alloc %d: %v, %d/%d bytes", sa, alloc, st, w, wanted)
			}
			if w < 8 {
				continue
			}
			if gen := binary.BigEndian.Uint32(out); sa != saReportCapabilities && gen != rec.Generation {
				t.Fatalf("PR IN SA %d: generation %d, record %d", sa, gen, rec.Generation)
			}
			add := int(binary.BigEndian.Uint32(out[4:]))
			switch sa {
			case saReadKeys:
				if add != 8*len(rec.Registrations) {
					t.Fatalf("READ KEYS additional length %d for %d registrations", add, len(rec.Registrations))
				}
			case saReadReservation:
				if (add == 16) != (rec.Type != 0) {
					t.Fatalf("READ RESERVATION additional length %d for type %d", add, rec.Type)
				}
			}
		}
	}
}
