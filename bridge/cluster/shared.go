package cluster

import (
	"context"
	"fmt"
	"slices"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/sanbridge/sanbridge/conf"
	"github.com/sanbridge/sanbridge/passthrough"
	"github.com/sanbridge/sanbridge/sgio/scsi"
)

// sharedLU is a shared logical unit's side of the cluster
// (passthrough.Shared).
type sharedLU struct {
	n   *Node
	lu  *passthrough.LU
	key string
}

// Access implements passthrough.Shared.
func (s *sharedLU) Access() passthrough.AccessState {
	if !s.n.vouching() {
		return passthrough.AccessTransitioning
	}
	return passthrough.AccessState(s.n.local.Load())
}

// Mode implements passthrough.Shared.
func (s *sharedLU) Mode() passthrough.ALUAMode {
	if s.n.cfg.ALUA == conf.ALUAExplicit {
		return passthrough.ALUABoth
	}
	return passthrough.ALUAImplicit
}

// PortGroups implements passthrough.Shared.
func (s *sharedLU) PortGroups() []passthrough.PortGroup { return s.n.portGroups(s.key) }

// SetPortGroups implements passthrough.Shared: the states are stored for
// every gateway to apply (and applied here at once).
func (s *sharedLU) SetPortGroups(ctx context.Context, states map[uint16]passthrough.AccessState) (scsi.Status, []byte) {
	n := s.n
	ops := make([]clientv3.Op, 0, len(states))
	for tpg, st := range states {
		ops = append(ops, clientv3.OpPut(n.key("alua", fmt.Sprint(tpg)), fmt.Sprint(uint8(st))))
	}
	ctx, cancel := context.WithTimeout(ctx, n.ttl)
	defer cancel()
	resp, err := n.cli.Txn(ctx).Then(ops...).Commit()
	if err != nil {
		n.log.Warn().Err(err).Msg("SET TARGET PORT GROUPS not stored")
		return scsi.CheckCondition, scsi.FixedSense(scsi.SenseNotReady, scsi.NewASC(0x04, 0x0a))
	}
	n.noteWrite(resp.Header.Revision)
	n.mu.Lock()
	for tpg, st := range states {
		n.explict[tpg] = st
	}
	n.mu.Unlock()
	n.recompute()
	return scsi.Good, nil
}

// UA implements passthrough.Shared.
func (s *sharedLU) UA(nx passthrough.PRNexus, asc scsi.ASC) {
	s.publish(s.n.ctx, event{Kind: "ua", Nexus: nx, ASC: uint16(asc)})
}

// Abort implements passthrough.Shared: the other gateways abort the
// tasks when they apply the event; Settle waits for it.
func (s *sharedLU) Abort(ctx context.Context, nx passthrough.PRNexus) {
	s.publish(ctx, event{Kind: "abort", Nexus: nx})
}

// Ports implements passthrough.Shared: the target ports of the other
// members that serve the logical unit, live or not (they are ports of
// the same SCSI target device).
func (s *sharedLU) Ports() []passthrough.PRTargetPort {
	n := s.n
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []passthrough.PRTargetPort
	for id, m := range n.members {
		if id != n.self.ID && slices.Contains(m.LUs, s.key) {
			out = append(out, m.Ports...)
		}
	}
	return out
}
