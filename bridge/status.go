package bridge

import (
	"cmp"
	"fmt"
	"slices"
	"time"

	"github.com/sanbridge/sanbridge/conf"
	"github.com/sanbridge/sanbridge/iscsi"
	"github.com/sanbridge/sanbridge/passthrough"
	"github.com/sanbridge/sanbridge/sgio/emul"
)

// Status is what the gateway is doing, for sanbridge status (its JSON is
// the admin endpoint's answer to GET /status).
type Status struct {
	Time time.Time `json:"time"`
	// Portals are the listening portals.
	Portals []PortalStatus `json:"portals"`
	// Sessions are the live sessions, by target, initiator and ISID.
	Sessions []SessionStatus `json:"sessions"`
	// Targets are the exported targets with their LUN maps.
	Targets []TargetStatus `json:"targets"`
	// LUs are the logical units (one per backend), by backend name.
	LUs []LUStatus `json:"lus"`
	// LastReload is what the last reload (or the first load) did.
	LastReload ReloadResult `json:"last_reload"`
	// WatchingDevices is set while device arrivals and removals are
	// followed.
	WatchingDevices bool `json:"watching_devices"`
}

// PortalStatus is one portal.
type PortalStatus struct {
	Listen    string `json:"listen"`
	Bound     string `json:"bound,omitempty"`
	Advertise string `json:"advertise,omitempty"`
	Group     uint16 `json:"group"`
}

// SessionStatus is one session.
type SessionStatus struct {
	Target    string `json:"target,omitempty"`
	Discovery bool   `json:"discovery,omitempty"`
	Initiator string `json:"initiator"`
	Alias     string `json:"initiator_alias,omitempty"`
	ISID      string `json:"isid"`
	TSIH      uint16 `json:"tsih"`
	Remote    string `json:"remote"`
	// Portal is the portal's listen address and group the session came
	// in through.
	Portal      string    `json:"portal"`
	PortalGroup uint16    `json:"portal_group"`
	LoginTime   time.Time `json:"login_time"`
	// InFlight counts the session's commands not yet answered.
	InFlight int `json:"commands_in_flight"`
	// Params are the negotiated operational parameters.
	Params          iscsi.Params `json:"params"`
	LogoutRequested *time.Time   `json:"logout_requested,omitempty"`
}

// TargetStatus is one target.
type TargetStatus struct {
	Name   string   `json:"name"`
	Alias  string   `json:"alias,omitempty"`
	Groups []uint16 `json:"portal_groups,omitempty"`
	// AutoExport names the auto_export block that made the target, if
	// one did.
	AutoExport string `json:"auto_export,omitempty"`
	// LUNs are the default map; Views the per-group maps.
	LUNs  []LUNStatus            `json:"luns"`
	Views map[string][]LUNStatus `json:"views,omitempty"`
}

// LUNStatus is one mapping.
type LUNStatus struct {
	LUN      uint64 `json:"lun"`
	Backend  string `json:"backend"`
	ReadOnly bool   `json:"read_only,omitempty"`
}

// LUStatus is one logical unit.
type LUStatus struct {
	Backend string `json:"backend"`
	// Key is the identity its persistent reservations are kept under.
	Key string `json:"key"`
	// Kind is "emulated", "device" (SG_IO pass-through) or "usb".
	Kind       string `json:"kind"`
	AutoExport string `json:"auto_export,omitempty"`
	// For a pass-through device: its identity, state ("present", "gone",
	// "reattached"), sg node and H:C:T:L, since when it is in that state,
	// and how often it came back.
	Identity string     `json:"identity,omitempty"`
	State    string     `json:"state"`
	SG       string     `json:"sg,omitempty"`
	HCTL     string     `json:"hctl,omitempty"`
	Since    *time.Time `json:"since,omitempty"`
	Returns  int        `json:"returns,omitempty"`
	// Reservations.
	SPC2Holder    string               `json:"spc2_reservation_holder,omitempty"`
	PRGeneration  uint32               `json:"pr_generation"`
	PRType        string               `json:"pr_type,omitempty"`
	PRHolders     []string             `json:"pr_holders,omitempty"`
	Registrations []RegistrationStatus `json:"pr_registrations,omitempty"`
}

// RegistrationStatus is one persistent reservation registration.
type RegistrationStatus struct {
	Key        string `json:"key"`
	Initiator  string `json:"initiator"`
	ISID       string `json:"isid,omitempty"`
	TargetPort string `json:"target_port"`
}

// Status returns what the gateway is doing now.
func (b *Bridge) Status() Status {
	b.mu.Lock()
	g := b.gen
	st := Status{Time: time.Now(), LastReload: b.last, WatchingDevices: b.seen.Load()}
	for _, p := range g.portals {
		ps := PortalStatus{Listen: p.Listen, Advertise: p.Advertise, Group: p.Group}
		if pl := b.listeners[p.Listen]; pl != nil {
			ps.Bound = pl.l.Addr().String()
		}
		st.Portals = append(st.Portals, ps)
	}
	b.mu.Unlock()

	for _, ts := range g.order {
		t := TargetStatus{Name: ts.conf.Name, Alias: ts.conf.Alias, Groups: ts.groups, LUNs: lunStatuses(ts.conf.LUNs)}
		if len(ts.conf.LUNs) > 0 {
			t.AutoExport = autoBlock(g.cfg, ts.conf.LUNs[0].Backend)
			for _, l := range ts.conf.LUNs {
				if autoBlock(g.cfg, l.Backend) == "" {
					t.AutoExport = ""
				}
			}
		}
		for _, v := range ts.conf.Views {
			if t.Views == nil {
				t.Views = map[string][]LUNStatus{}
			}
			t.Views[v.Group] = lunStatuses(v.LUNs)
		}
		st.Targets = append(st.Targets, t)
	}
	for name, ls := range g.lus {
		s := luStatus(ls)
		// A backend renamed by a reload keeps its logical unit: it is
		// listed under the name the configuration gives it now.
		s.Backend = name
		st.LUs = append(st.LUs, s)
	}
	slices.SortFunc(st.LUs, func(a, b LUStatus) int { return cmp.Compare(a.Backend, b.Backend) })
	if b.srv != nil {
		for _, d := range b.srv.SessionDetails() {
			s := SessionStatus{
				Target: d.Nexus.TargetName, Discovery: d.Discovery, Initiator: d.Nexus.InitiatorName,
				Alias: d.InitiatorAlias, ISID: d.Nexus.ISID.String(), TSIH: d.Nexus.TSIH, Remote: d.Remote,
				Portal: d.Portal.Listen, PortalGroup: d.Portal.Group, LoginTime: d.Started, InFlight: d.Tasks, Params: d.Params,
			}
			if !d.LogoutRequested.IsZero() {
				t := d.LogoutRequested
				s.LogoutRequested = &t
			}
			st.Sessions = append(st.Sessions, s)
		}
	}
	slices.SortFunc(st.Sessions, func(a, b SessionStatus) int {
		return cmp.Or(cmp.Compare(a.Target, b.Target), cmp.Compare(a.Initiator, b.Initiator), cmp.Compare(a.ISID, b.ISID))
	})
	return st
}

func lunStatuses(luns []conf.LUN) []LUNStatus {
	out := make([]LUNStatus, 0, len(luns))
	for _, l := range luns {
		out = append(out, LUNStatus{LUN: l.ID, Backend: l.Backend, ReadOnly: l.ReadOnly})
	}
	slices.SortFunc(out, func(a, b LUNStatus) int { return cmp.Compare(a.LUN, b.LUN) })
	return out
}

func luStatus(ls *luState) LUStatus {
	s := LUStatus{Backend: ls.backend, Key: ls.key, AutoExport: ls.auto, State: "present"}
	switch {
	case ls.hot != nil:
		s.Kind = "device"
		state, sg, hctl, since, returns := ls.hot.where()
		s.Identity, s.State, s.SG, s.HCTL, s.Returns = ls.hot.id, state.String(), sg, hctl, returns
		s.Since = &since
	default:
		if _, ok := ls.dev.(*emul.Disk); ok {
			s.Kind = "emulated"
		} else {
			s.Kind = "usb"
		}
	}
	rec, holder := ls.lu.Reservations()
	s.SPC2Holder = holder
	s.PRGeneration = rec.Generation
	if rec.Type != 0 {
		s.PRType = rec.Type.String()
	}
	for _, r := range rec.Registrations {
		port := r.InitiatorName
		if r.ISID != "" {
			port += ",i,0x" + r.ISID
		}
		s.Registrations = append(s.Registrations, RegistrationStatus{Key: fmt.Sprintf("%#x", r.Key), Initiator: r.InitiatorName, ISID: r.ISID, TargetPort: r.TargetPort})
		allRegistrants := rec.Type == passthrough.PRWriteExclusiveAllRegistrants || rec.Type == passthrough.PRExclusiveAccessAllRegistrants
		if r.Holder || allRegistrants {
			s.PRHolders = append(s.PRHolders, port+" via "+r.TargetPort)
		}
	}
	return s
}
