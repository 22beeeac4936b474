package bridge

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/sanbridge/sanbridge/iscsi"
	"github.com/sanbridge/sanbridge/sgio/scsi"
)

// TestDeviceErrorLog: a device error is logged with the initiator, ISID,
// LUN and the CDB's operation name; repeats within the window are only
// counted, and the next log line after it says how many were left out.
func TestDeviceErrorLog(t *testing.T) {
	var buf bytes.Buffer
	log := zerolog.New(&buf)
	now := time.Unix(1000, 0)
	e := errorLog{now: func() time.Time { return now }}
	nexus := &iscsi.Nexus{InitiatorName: "iqn.2026-11.io.example:a", ISID: iscsi.ISID{0x80, 0, 0, 0, 0, 9}}
	cmd := &iscsi.Command{Nexus: nexus, LUN: iscsi.MakeLUN(3), CDB: []byte{byte(scsi.OpRead10), 0, 0, 0, 0, 0, 0, 0, 1, 0}}
	medium := scsi.NewSense(scsi.SenseMediumError, scsi.NewASC(0x11, 0x00))
	for range 5 {
		e.log(log, cmd, medium)
		now = now.Add(time.Second)
	}
	other := *cmd
	other.LUN = iscsi.MakeLUN(4)
	e.log(log, &other, medium) // another LUN: its own budget
	now = now.Add(errorLogEvery)
	e.log(log, cmd, medium)
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("%d log lines, want 3:\n%s", len(lines), buf.String())
	}
	var first, last map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &first); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(lines[2]), &last); err != nil {
		t.Fatal(err)
	}
	if first["initiator"] != "iqn.2026-11.io.example:a" || first["isid"] != "800000000009" || first["lun"] != float64(3) ||
		first["opcode"] != scsi.OpRead10.String() || first["sense_key"] != "MEDIUM ERROR" || first["suppressed"] != float64(0) {
		t.Fatalf("first line: %v", first)
	}
	if last["suppressed"] != float64(4) {
		t.Fatalf("the line after the window: %v, want suppressed 4", last)
	}
}
