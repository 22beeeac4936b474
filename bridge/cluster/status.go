package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/sanbridge/sanbridge/conf"
	"github.com/sanbridge/sanbridge/passthrough"
)

// Status is the cluster as `sanbridge status` shows it: its members with
// their port groups, and the reservation holders of the shared logical
// units.
type Status struct {
	// Revision is the etcd revision the status was read at.
	Revision int64 `json:"revision"`
	// Members are every node record, by ID.
	Members []MemberStatus `json:"members"`
	// LUs are the shared logical units that have a persistent
	// reservation record or an SPC-2 reservation, by key.
	LUs []LUStatus `json:"lus"`
}

// MemberStatus is one gateway of the cluster.
type MemberStatus struct {
	ID string `json:"id"`
	// Alive says whether its lease lives.
	Alive bool `json:"alive"`
	// PortGroup is its target port group, State that group's
	// asymmetric access state as every gateway reports it, Preferred its
	// PREF bit.
	PortGroup uint16 `json:"port_group"`
	State     string `json:"state"`
	Preferred bool   `json:"preferred,omitempty"`
	// Ports are its target ports.
	Ports []passthrough.PRTargetPort `json:"ports"`
	// LUs are the keys of the shared logical units it serves.
	LUs []string `json:"lus"`
	// Acked is the last revision it acknowledged having applied.
	Acked int64 `json:"acked,omitempty"`
}

// LUStatus is one shared logical unit's persistent reservation state.
type LUStatus struct {
	Key           string `json:"key"`
	Generation    uint32 `json:"generation"`
	APTPL         bool   `json:"aptpl,omitempty"`
	Registrations int    `json:"registrations"`
	// Type is the reservation type, "" when none.
	Type string `json:"type,omitempty"`
	// Holders are the I_T nexuses holding the reservation ("initiator
	// port via target port"): one, or every registrant for the all
	// registrants types.
	Holders []string `json:"holders,omitempty"`
	// SPC2Holder is the holder of the SPC-2 reservation ("I_T nexus on
	// node"), "" when none.
	SPC2Holder string `json:"spc2_holder,omitempty"`
}

// Status reads the cluster's status from etcd.
func (n *Node) Status(ctx context.Context) (Status, error) {
	return readStatus(ctx, n.cli, n.prefix)
}

// ReadStatus reads the status of the cluster cc describes, as a
// gateway that is not running (`sanbridge status`) sees it.
func ReadStatus(ctx context.Context, cc *conf.Cluster) (Status, error) {
	cli, err := newClient(cc)
	if err != nil {
		return Status{}, err
	}
	defer cli.Close()
	return readStatus(ctx, cli, cc.Prefix)
}

// readStatus reads the status under prefix at one revision. The states
// are those of implicit access (SET TARGET PORT GROUPS aside).
func readStatus(ctx context.Context, cli *clientv3.Client, prefix string) (Status, error) {
	resp, err := cli.Get(ctx, prefix, clientv3.WithPrefix())
	if err != nil {
		return Status{}, fmt.Errorf("cluster: read status: %w", err)
	}
	st := Status{Revision: resp.Header.Revision}
	members := map[string]*MemberStatus{}
	alive := map[string]bool{}
	acks := map[string]int64{}
	lus := map[string]*LUStatus{}
	lu := func(key string) *LUStatus {
		if lus[key] == nil {
			lus[key] = &LUStatus{Key: key}
		}
		return lus[key]
	}
	for _, kv := range resp.Kvs {
		rest := strings.TrimPrefix(string(kv.Key), prefix)
		kind, sub, _ := strings.Cut(rest, "/")
		switch kind {
		case "nodes":
			var m member
			if err := json.Unmarshal(kv.Value, &m); err != nil {
				return Status{}, fmt.Errorf("cluster: member record %s: %w", kv.Key, err)
			}
			members[m.ID] = &MemberStatus{ID: m.ID, PortGroup: m.PortGroup, Preferred: m.Preferred, Ports: m.Ports, LUs: m.LUs}
		case "alive":
			alive[sub] = true
		case "ack":
			var rev int64
			if _, err := fmt.Sscan(string(kv.Value), &rev); err == nil {
				acks[sub] = rev
			}
		case "lu":
			esc, what, _ := strings.Cut(sub, "/")
			key, err := url.PathUnescape(esc)
			if err != nil {
				key = esc
			}
			switch what {
			case "pr":
				var rec passthrough.PRRecord
				if err := json.Unmarshal(kv.Value, &rec); err != nil {
					return Status{}, fmt.Errorf("cluster: persistent reservations of %q: %w", key, err)
				}
				s := lu(key)
				*s = luStatus(key, &rec, s.SPC2Holder)
			case "spc2":
				var h spc2Holder
				if err := json.Unmarshal(kv.Value, &h); err != nil {
					return Status{}, fmt.Errorf("cluster: SPC-2 reservation of %q: %w", key, err)
				}
				lu(key).SPC2Holder = h.Nexus + " on " + h.Node
			}
		}
	}
	for _, s := range lus {
		st.LUs = append(st.LUs, *s)
	}
	preferredAlive := false
	for id, m := range members {
		m.Alive, m.Acked = alive[id], acks[id]
		preferredAlive = preferredAlive || m.Alive && m.Preferred
	}
	for _, m := range members {
		switch {
		case !m.Alive:
			m.State = passthrough.AccessUnavailable.String()
		case preferredAlive && !m.Preferred:
			m.State = passthrough.AccessActiveNonOptimized.String()
		default:
			m.State = passthrough.AccessActiveOptimized.String()
		}
		st.Members = append(st.Members, *m)
	}
	slices.SortFunc(st.Members, func(a, b MemberStatus) int { return strings.Compare(a.ID, b.ID) })
	slices.SortFunc(st.LUs, func(a, b LUStatus) int { return strings.Compare(a.Key, b.Key) })
	return st, nil
}

// luStatus summarizes a record; spc2 is the SPC-2 holder.
func luStatus(key string, rec *passthrough.PRRecord, spc2 string) LUStatus {
	s := LUStatus{Key: key, Generation: rec.Generation, APTPL: rec.APTPL, Registrations: len(rec.Registrations), SPC2Holder: spc2}
	if rec.Type == 0 {
		return s
	}
	s.Type = rec.Type.String()
	for _, r := range rec.Registrations {
		if r.Holder || rec.Type.AllRegistrants() {
			nx := passthrough.PRNexus{InitiatorName: r.InitiatorName, ISID: r.ISID, TargetPort: r.TargetPort}
			s.Holders = append(s.Holders, fmt.Sprintf("%s (key 0x%x)", nx, r.Key))
		}
	}
	return s
}
