package discover

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/sanbridge/sanbridge/sgio"
	"github.com/sanbridge/sanbridge/sgio/emul"
	"github.com/sanbridge/sanbridge/sgio/scsi"
)

// faulty wraps a device and answers chosen commands with CHECK
// CONDITION, like devices that reject a VPD page.
type faulty struct {
	sgio.Device
	// reject maps command keys ("inq", "vpd80", "9e") to sense data.
	reject map[string][]byte
	// once lists rejections that happen on the first attempt only.
	once  map[string]bool
	calls []string
	mu    sync.Mutex
}

// key names a command: "inq" (standard INQUIRY), "vpdXX" or the opcode.
func key(cdb []byte) string {
	if cdb[0] == 0x12 {
		if cdb[1]&1 != 0 {
			return "vpd" + string(hexByte(cdb[2]))
		}
		return "inq"
	}
	return string(hexByte(cdb[0]))
}

func hexByte(b byte) []byte {
	const digits = "0123456789abcdef"
	return []byte{digits[b>>4], digits[b&15]}
}

func (f *faulty) Execute(ctx context.Context, req *sgio.Request, res *sgio.Result) error {
	k := key(req.CDB)
	f.mu.Lock()
	f.calls = append(f.calls, k)
	s, ok := f.reject[k]
	if f.once[k] {
		delete(f.reject, k)
	}
	f.mu.Unlock()
	if ok {
		*res = sgio.Result{Status: scsi.CheckCondition, DriverStatus: 0x08, Sense: s}
		return nil
	}
	return f.Device.Execute(ctx, req, res)
}

// TestQueryDevice scans the rig capture with every sg node answered by
// an emulated disk of a known identity: what the device says wins over
// the sysfs copy, and devices that refuse pages keep what sysfs has.
func TestQueryDevice(t *testing.T) {
	root := extractTarGz(t, "testdata/rig-capture/sysfs.tar.gz")
	var mu sync.Mutex
	opened := map[string]*faulty{}
	var nextSeq byte
	open := func(path string) (sgio.Device, error) {
		switch path {
		case "/dev/sg9":
			return nil, errors.New("open /dev/sg9: device busy")
		}
		mu.Lock()
		seq := nextSeq
		nextSeq++
		mu.Unlock()
		cfg := emul.Config{SizeBytes: 8 << 20, Vendor: "EMUL", Product: "DISK " + path[len("/dev/"):], Serial: "SN-" + path[len("/dev/"):],
			NAA: []byte{0x50, 0x01, 0x40, 0x50, 0, 0, 0, seq}}
		if path == "/dev/sg1" {
			cfg.BlockSize = 4096
		}
		d, err := emul.New(cfg)
		if err != nil {
			return nil, err
		}
		f := &faulty{Device: d, reject: map[string][]byte{}, once: map[string]bool{}}
		ua := scsi.FixedSense(scsi.SenseUnitAttention, scsi.ASCPowerOnOrReset)
		switch path {
		case "/dev/sg2": // like QEMU's scsi-cd: no serial page, no medium
			f.reject["vpd80"] = scsi.FixedSense(scsi.SenseIllegalRequest, scsi.ASCInvalidFieldInCDB)
			f.reject["9e"] = scsi.FixedSense(scsi.SenseNotReady, scsi.ASCMediumNotPresent)
		case "/dev/sg3": // standard INQUIRY meets unit attentions for ever
			f.reject["inq"] = ua
		case "/dev/sg5": // the first command meets a unit attention
			f.reject["inq"], f.once["inq"] = ua, true
		case "/dev/sg6": // no READ CAPACITY(16)
			f.reject["9e"] = scsi.FixedSense(scsi.SenseIllegalRequest, scsi.ASCInvalidOpcode)
		}
		mu.Lock()
		opened[path] = f
		mu.Unlock()
		return f, nil
	}
	devs, err := Scan(context.Background(), Config{SysfsRoot: root, ProcRoot: t.TempDir(), Open: open})
	if err != nil {
		t.Fatal(err)
	}
	sda := byHCTL(t, devs, "0:2:0:0")
	if sda.Vendor != "EMUL" || sda.Product != "DISK sg0" || sda.Identity.Serial != "SN-sg0" || sda.Identity.Source != "device" ||
		!strings.HasPrefix(sda.Identity.WWN, "naa.50014050") || sda.SizeBytes != 8<<20 || sda.BlockSize != 512 || len(sda.Problems) != 0 {
		t.Errorf("sg0 not read from the device: %+v", sda)
	}
	if byHCTL(t, devs, "0:2:1:0").BlockSize != 4096 {
		t.Error("sg1 block size not from READ CAPACITY")
	}
	cd := byHCTL(t, devs, "0:2:2:0")
	if cd.Identity.Serial != "" || cd.SizeBytes != 0 || !hasProblem(cd, "no medium") {
		t.Errorf("cd: serial %q size %d problems %q", cd.Identity.Serial, cd.SizeBytes, cd.Problems)
	}
	if !hasProblem(cd, "INQUIRY reports peripheral type 0 (disk), the kernel attached it as 5 (cdrom)") || cd.Type != TypeCDROM {
		t.Errorf("cd type %v problems %q", cd.Type, cd.Problems)
	}
	// The emulated disk lists page 80h as supported, so it was asked and refused.
	if !hasProblem(cd, "INQUIRY VPD 80h: CHECK CONDITION, ILLEGAL REQUEST: INVALID FIELD IN CDB") {
		t.Errorf("cd problems %q", cd.Problems)
	}
	if c := countCalls(opened["/dev/sg3"].calls, "inq"); c != 4 {
		t.Errorf("persistent unit attention: %d attempts, want 4", c)
	}
	v := byHCTL(t, devs, "1:0:0:0")
	if v.Vendor != "QEMU" || v.Identity.Source != "device" || v.Identity.Serial != "SN-sg3" || !hasProblem(v, "INQUIRY: CHECK CONDITION, UNIT ATTENTION") {
		t.Errorf("sg3 keeps the sysfs INQUIRY strings, reads VPD: %q %+v %q", v.Vendor, v.Identity, v.Problems)
	}
	if c := countCalls(opened["/dev/sg5"].calls, "inq"); c != 2 || byHCTL(t, devs, "3:0:0:0").Vendor != "EMUL" {
		t.Errorf("transient unit attention: %d attempts, want 2", c)
	}
	rc10 := byHCTL(t, devs, "3:0:0:1")
	if countCalls(opened["/dev/sg6"].calls, "25") != 1 || rc10.SizeBytes != 8<<20 || len(rc10.Problems) != 0 {
		t.Errorf("READ CAPACITY(10) fallback: calls %q, size %d, problems %q", opened["/dev/sg6"].calls, rc10.SizeBytes, rc10.Problems)
	}
	// usb-storage without VPD pages in sysfs: no VPD asked of the device.
	if calls := opened["/dev/sg4"].calls; countCalls(calls, "vpd00")+countCalls(calls, "vpd80")+countCalls(calls, "vpd83") != 0 {
		t.Errorf("usb-storage asked for VPD pages: %q", calls)
	}
	tape := byHCTL(t, devs, "4:0:0:0")
	if !hasProblem(tape, "device busy") || tape.Identity.Source != "sysfs" || tape.Identity.Serial != "10000" {
		t.Errorf("tape: %+v", tape)
	}
}

func hasProblem(d *Device, s string) bool {
	for _, p := range d.Problems {
		if strings.Contains(p, s) {
			return true
		}
	}
	return false
}

func countCalls(calls []string, k string) int {
	n := 0
	for _, c := range calls {
		if c == k {
			n++
		}
	}
	return n
}
