package passthrough

import (
	"fmt"
	"strings"
	"sync/atomic"

	"github.com/sanbridge/sanbridge/iscsi"
	"github.com/sanbridge/sanbridge/sgio/scsi"
)

// nexus is the state of one I_T nexus, from Attach to Detach: the
// initiator's view of the target with the state of each I_T_L nexus in
// it, the nexus as persistent reservations name it, and the engine's
// control of its tasks.
type nexus struct {
	t    *Target
	in   *iscsi.Nexus
	ctl  iscsi.NexusControl // nil when the engine gave none
	pr   PRNexus
	view atomic.Pointer[nexusView]
}

// nexusView is a nexus' view with the I_T_L nexus of each mapping
// (itls[i] goes with the view's mapping i). It is replaced as a whole
// when the view changes; commands use the one they loaded.
type nexusView struct {
	View
	itls []*itl
}

// itl is one I_T_L nexus: what one initiator port, through one target
// port, keeps for one logical unit. It lives as long as the nexus sees
// the logical unit, whatever LUN number the view gives it.
type itl struct {
	n  *nexus
	lu *LU
	ua uaQueue
}

// newNexus returns the state of nexus in, attached to t.
func newNexus(t *Target, in *iscsi.Nexus, ctl iscsi.NexusControl) *nexus {
	return &nexus{
		t:   t,
		in:  in,
		ctl: ctl,
		pr: PRNexus{
			InitiatorName:   strings.ToLower(in.InitiatorName),
			ISID:            in.ISID.String(),
			TargetPort:      targetPortName(in.TargetName, in.TPGT),
			RelTargetPortID: t.relPort(in.TPGT),
		},
	}
}

// targetPortName returns the SCSI target port name of a target and
// portal group: "name,t,0x<TPGT>" (RFC 7143 10.1.1).
func targetPortName(target string, tpgt uint16) string {
	return fmt.Sprintf("%s,t,0x%04x", target, tpgt)
}

// setView installs v. The I_T_L nexuses of logical units in both the old
// and the new view keep their state (unit attentions, reservations); the
// new ones attach to their logical units with unit attention ua pending,
// and when all is set the kept ones get ua too. Those no longer visible
// detach, which ends an SPC-2 reservation they held. The caller
// serializes setView and close.
func (n *nexus) setView(v View, ua scsi.ASC, all bool) {
	old := n.view.Load()
	nv := &nexusView{View: v, itls: make([]*itl, len(v.maps))}
	for i, m := range v.maps {
		var x *itl
		if old != nil {
			x = old.itlOf(m.LU)
		}
		if x == nil {
			x = &itl{n: n, lu: m.LU}
			x.ua.add(ua)
			m.LU.attach(x)
		} else if all {
			x.ua.add(ua)
		}
		nv.itls[i] = x
	}
	n.view.Store(nv)
	if old == nil {
		return
	}
	for _, x := range old.itls {
		if !v.has(x.lu) {
			x.lu.detach(x)
		}
	}
}

// close detaches every I_T_L nexus: the nexus ended.
func (n *nexus) close() {
	nv := n.view.Swap(&nexusView{})
	if nv == nil {
		return
	}
	for _, x := range nv.itls {
		x.lu.detach(x)
	}
}

// itlOf returns the I_T_L nexus of lu in the view, or nil.
func (nv *nexusView) itlOf(lu *LU) *itl {
	for _, x := range nv.itls {
		if x.lu == lu {
			return x
		}
	}
	return nil
}

// lookup returns the mapping and I_T_L nexus of a command's LUN field.
func (nv *nexusView) lookup(l iscsi.LUN) (*Mapping, *itl, bool) {
	lun, ok := l.Number()
	if !ok {
		return nil, nil, false
	}
	i, ok := nv.index(lun)
	if !ok {
		return nil, nil, false
	}
	return &nv.maps[i], nv.itls[i], true
}

// lunOf returns the LUN number the nexus sees lu at.
func (n *nexus) lunOf(lu *LU) (uint64, bool) {
	nv := n.view.Load()
	if nv == nil {
		return 0, false
	}
	for i, x := range nv.itls {
		if x.lu == lu {
			return nv.maps[i].LUN, true
		}
	}
	return 0, false
}
