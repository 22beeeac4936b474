package bridge

import (
	"bufio"
	"bytes"
	"os"
	"strconv"
	"time"

	"github.com/sanbridge/sanbridge/conf"
	"github.com/sanbridge/sanbridge/iscsi"
	"github.com/sanbridge/sanbridge/passthrough"
	"github.com/sanbridge/sanbridge/sgio/scsi"
)

// Bounds of the machine-derived memory budget: a quarter of the
// machine's memory, within these.
const (
	minMemoryBudget = 64 << 20
	maxMemoryBudget = 4 << 30
)

// MemoryBudget returns the command data budget of a configuration: its
// limits.memory, else a quarter of the machine's physical memory within
// 64 MiB and 4 GiB (iscsi.DefaultMemoryBudget when the machine's memory
// cannot be read).
func MemoryBudget(l *conf.Limits) int64 {
	if l.Memory > 0 {
		return l.Memory
	}
	total, ok := physicalMemory()
	if !ok {
		return iscsi.DefaultMemoryBudget
	}
	return min(max(total/4, minMemoryBudget), maxMemoryBudget)
}

// GoMemoryLimit is the Go runtime's soft memory limit for a budget
// (runtime/debug.SetMemoryLimit): the budget, a quarter more for what
// the collector has not reclaimed yet, and 256 MiB for everything else
// (connections, sessions, device queues, the runtime), so that garbage
// is collected before it crowds the machine.
func GoMemoryLimit(budget int64) int64 {
	return budget + budget/4 + 256<<20
}

// physicalMemory reads MemTotal from /proc/meminfo.
func physicalMemory() (int64, bool) {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0, false
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := bytes.Fields(sc.Bytes())
		if len(f) >= 2 && string(f[0]) == "MemTotal:" {
			kib, err := strconv.ParseInt(string(f[1]), 10, 64)
			if err != nil || kib <= 0 {
				return 0, false
			}
			return kib << 10, true
		}
	}
	return 0, false
}

// engineLimits turns the limits block into the engine's limits and
// login timeout (zero values keep the engine's defaults).
func engineLimits(l *conf.Limits) (iscsi.Limits, time.Duration) {
	return iscsi.Limits{
		Memory:                    MemoryBudget(l),
		MaxTransfer:               uint32(l.MaxTransfer),
		MaxSessions:               l.MaxSessions,
		MaxSessionsPerInitiator:   l.MaxSessionsPerInitiator,
		MaxPendingLogins:          l.MaxPendingLogins,
		MaxPendingLoginsPerSource: l.MaxPendingLoginsPerSource,
		MaxTasksPerSession:        l.MaxTasksPerSession,
		MaxOutstandingR2T:         uint32(l.MaxOutstandingR2T),
		MaxPendingTMF:             l.MaxPendingTMF,
		MaxTextKeys:               l.MaxTextKeys,
		Auth: iscsi.AuthLimits{
			FreeFailures: l.AuthFreeFailures,
			Delay:        l.AuthDelay,
			MaxDelay:     l.AuthMaxDelay,
			LockoutAfter: l.AuthLockoutAfter,
			Lockout:      l.AuthLockout,
			Forget:       l.AuthForget,
			TableSize:    l.AuthTableSize,
		},
	}, l.LoginTimeout
}

// setGeometry gives a pass-through logical unit what device discovery
// knows of its device (type, block size, capacity), so that commands past
// its end are refused before anything is allocated, even before an
// initiator read the capacity. USB devices driven over the Bulk-Only
// transport, and devices discovery did not size, learn it from the
// READ CAPACITY answers that pass instead.
func (o *opener) setGeometry(lu *passthrough.LU, sel *conf.Device) {
	if sel == nil || sel.USB != nil {
		return
	}
	devs, err := o.inv.devices()
	if err != nil {
		return
	}
	d, err := resolveDevice(sel, devs)
	if err != nil || d.BlockSize == 0 {
		return
	}
	lu.SetGeometry(passthrough.Geometry{Type: scsi.DeviceType(d.Type), BlockSize: d.BlockSize, Blocks: d.Blocks})
}
