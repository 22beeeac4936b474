package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
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

	spc2mu  sync.Mutex
	spc2Rev int64 // revision of the SPC-2 reservation state last applied
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

// Reset implements passthrough.SharedReset: the other gateways abort
// their tasks and raise asc when they apply the event; Settle waits for
// it.
func (s *sharedLU) Reset(ctx context.Context, asc scsi.ASC) {
	s.publish(ctx, event{Kind: "reset", ASC: uint16(asc)})
	if err := s.Settle(ctx); err != nil {
		s.n.log.Warn().Err(err).Str("lu", s.key).Msg("task management not confirmed by every gateway")
	}
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

// spc2Holder is the record of a logical unit's SPC-2 reservation under
// lu/<key>/spc2, kept under the holder's gateway's lease: the
// reservation ends with the gateway's membership.
type spc2Holder struct {
	Node  string `json:"node"`
	Nexus string `json:"nexus"` // passthrough.PRNexus.String()
}

// spc2Key returns the etcd key of the logical unit's SPC-2 reservation.
func (s *sharedLU) spc2Key() string { return s.n.key("lu", luKey(s.key), "spc2") }

// Reserve implements passthrough.SharedReserve: the record is created
// only if none exists, in one transaction.
func (s *sharedLU) Reserve(ctx context.Context, holder string) (bool, error) {
	n := s.n
	b, err := json.Marshal(spc2Holder{Node: n.self.ID, Nexus: holder})
	if err != nil {
		return false, fmt.Errorf("cluster: encode SPC-2 reservation: %w", err)
	}
	k := s.spc2Key()
	ctx, cancel := context.WithTimeout(ctx, n.ttl)
	defer cancel()
	resp, err := n.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(k), "=", 0)).
		Then(clientv3.OpPut(k, string(b), clientv3.WithLease(clientv3.LeaseID(n.lease.Load())))).
		Else(clientv3.OpGet(k)).
		Commit()
	if errors.Is(err, rpctypes.ErrLeaseNotFound) {
		// The lease expired: this gateway is fenced until it re-joins.
		err = fmt.Errorf("%w: %w", passthrough.ErrPRUnavailable, err)
	}
	if err != nil {
		return false, fmt.Errorf("cluster: SPC-2 reservation of %q: %w", s.key, unavailable(ctx, err))
	}
	if resp.Succeeded {
		n.noteWrite(resp.Header.Revision)
		s.applySPC2(resp.Header.Revision, b)
		return true, nil
	}
	rr := resp.Responses[0].GetResponseRange()
	if rr == nil || len(rr.Kvs) == 0 {
		return false, fmt.Errorf("cluster: SPC-2 reservation of %q: %w: record vanished within a transaction", s.key, passthrough.ErrPRUnavailable)
	}
	kv := rr.Kvs[0]
	s.applySPC2(kv.ModRevision, kv.Value)
	var h spc2Holder
	return json.Unmarshal(kv.Value, &h) == nil && h.Node == n.self.ID && h.Nexus == holder, nil
}

// Release implements passthrough.SharedReserve.
func (s *sharedLU) Release(ctx context.Context, holder string) error {
	n := s.n
	k := s.spc2Key()
	var cmps []clientv3.Cmp
	if holder != "" {
		b, err := json.Marshal(spc2Holder{Node: n.self.ID, Nexus: holder})
		if err != nil {
			return fmt.Errorf("cluster: encode SPC-2 reservation: %w", err)
		}
		cmps = append(cmps, clientv3.Compare(clientv3.Value(k), "=", string(b)))
	}
	ctx, cancel := context.WithTimeout(ctx, n.ttl)
	defer cancel()
	resp, err := n.cli.Txn(ctx).If(cmps...).Then(clientv3.OpDelete(k)).Commit()
	if err != nil {
		return fmt.Errorf("cluster: SPC-2 release of %q: %w", s.key, unavailable(ctx, err))
	}
	if resp.Succeeded {
		n.noteWrite(resp.Header.Revision)
		s.applySPC2(resp.Header.Revision, nil)
	}
	return nil
}

// applySPC2 applies the SPC-2 reservation record value (nil: none) as of
// revision rev to the logical unit, unless a newer state was applied.
// A record naming a nexus of this gateway that is not attached is
// stale (the gateway restarted within its old lease's life) and is
// deleted.
func (s *sharedLU) applySPC2(rev int64, value []byte) {
	s.spc2mu.Lock()
	defer s.spc2mu.Unlock()
	if rev <= s.spc2Rev {
		return
	}
	s.spc2Rev = rev
	if value == nil {
		s.lu.ApplyReservation("", false)
		return
	}
	var h spc2Holder
	if err := json.Unmarshal(value, &h); err != nil {
		// Someone holds it; whom is unknown: nobody here.
		s.n.log.Warn().Err(err).Str("lu", s.key).Msg("undecodable SPC-2 reservation record")
		s.lu.ApplyReservation("", true)
		return
	}
	if h.Node != s.n.self.ID {
		s.lu.ApplyReservation("", true)
		return
	}
	if !s.lu.ApplyReservation(h.Nexus, false) {
		s.n.log.Info().Str("lu", s.key).Str("holder", h.Nexus).Msg("dropping a stale SPC-2 reservation of this gateway")
		go func() {
			ctx, cancel := context.WithTimeout(s.n.ctx, s.n.ttl)
			defer cancel()
			if err := s.Release(ctx, h.Nexus); err != nil {
				s.n.log.Warn().Err(err).Str("lu", s.key).Msg("dropping a stale SPC-2 reservation failed")
			}
		}()
	}
}
