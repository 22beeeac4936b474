package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/sanbridge/sanbridge/sgio/scsi"
)

// keepAlive renews the lease and asks the watch for progress four times
// per lease TTL, and re-joins when the lease was lost.
func (n *Node) keepAlive() {
	defer n.wg.Done()
	period := n.ttl / 4
	for {
		n.renew()
		n.requestProgress()
		n.recompute()
		select {
		case <-n.ctx.Done():
			return
		case <-time.After(period):
		}
	}
}

// renew sends one keep-alive; the lease is sure to live until its send
// time plus the TTL etcd answered, less the margin.
func (n *Node) renew() {
	ctx, cancel := context.WithTimeout(n.ctx, n.ttl/3)
	defer cancel()
	sent := n.mono()
	resp, err := n.cli.KeepAliveOnce(ctx, clientv3.LeaseID(n.lease.Load()))
	switch {
	case err == nil:
		n.leaseUntil.Store(sent + int64(time.Duration(resp.TTL)*time.Second-n.margin))
	case errors.Is(err, rpctypes.ErrLeaseNotFound):
		// The lease expired: the other nodes have counted this one out
		// (and it has refused commands since leaseUntil). Take a new
		// lease, register again and catch up before admitting anything.
		n.log.Warn().Msg("membership lease expired; re-joining")
		if err := n.rejoin(ctx); err != nil {
			n.log.Warn().Err(err).Msg("re-joining the cluster failed; will retry")
		}
	case n.ctx.Err() == nil:
		n.log.Warn().Err(err).Msg("lease keep-alive failed")
	}
}

// rejoin takes a new lease, publishes the alive and ack keys with it and
// reads the cluster's state again.
func (n *Node) rejoin(ctx context.Context) error {
	if err := n.grant(ctx); err != nil {
		return err
	}
	lease := clientv3.LeaseID(n.lease.Load())
	if _, err := n.cli.Put(ctx, n.key("alive", n.self.ID), "", clientv3.WithLease(lease)); err != nil {
		return err
	}
	_, err := n.sync(ctx)
	return err
}

// requestProgress asks the watch to confirm that it is current. The send
// time kept is that of the oldest unanswered request, so an answer never
// vouches for more than it may.
func (n *Node) requestProgress() {
	if n.progressAt.Load() == 0 {
		n.progressAt.Store(n.mono())
	}
	ctx, cancel := context.WithTimeout(n.wctx(), n.ttl/3)
	defer cancel()
	if err := n.cli.RequestProgress(ctx); err != nil && n.ctx.Err() == nil {
		n.log.Debug().Err(err).Msg("watch progress request failed")
	}
}

// wctx is the context of the watch and its progress requests: they must
// share the stream, and the stream requires a leader, so that a member
// cut off from the leader ends the watch instead of going silent.
func (n *Node) wctx() context.Context { return clientv3.WithRequireLeader(n.ctx) }

// watch applies every change under the prefix from revision rev+1 on,
// in order, and acknowledges what it applied for the logical units.
func (n *Node) watch(rev int64) {
	defer n.wg.Done()
	for n.ctx.Err() == nil {
		ch := n.cli.Watch(n.wctx(), n.prefix, clientv3.WithPrefix(), clientv3.WithRev(rev+1))
		resync := false
		for resp := range ch {
			if err := resp.Err(); err != nil {
				n.log.Warn().Err(err).Msg("watch ended")
				resync = resp.CompactRevision != 0
				break
			}
			if resp.IsProgressNotify() {
				if at := n.progressAt.Swap(0); at != 0 && resp.Header.Revision >= rev {
					n.watchUntil.Store(at + int64(n.ttl-n.margin))
				}
				continue
			}
			if len(resp.Events) == 0 {
				continue
			}
			// The header's revision may be newer than the events: only
			// the last event's revision is known applied.
			last := resp.Events[len(resp.Events)-1].Kv.ModRevision
			if n.apply(resp.Events) {
				if err := n.ack(n.ctx, last); err != nil && n.ctx.Err() == nil {
					n.log.Warn().Err(err).Msg("acknowledging applied events failed")
				}
			}
			rev = last
		}
		if n.ctx.Err() != nil {
			return
		}
		// Not vouching until a progress answer comes on the new watch.
		n.watchUntil.Store(0)
		n.progressAt.Store(0)
		if resync {
			ctx, cancel := context.WithTimeout(n.ctx, n.ttl)
			r, err := n.sync(ctx)
			cancel()
			if err != nil {
				n.log.Warn().Err(err).Msg("catching up after compaction failed; will retry")
				select {
				case <-n.ctx.Done():
				case <-time.After(n.ttl / 4):
				}
				continue
			}
			rev = r
		}
	}
}

// apply applies a batch of watched events and reports whether any of
// them concerned a logical unit (and must be acknowledged).
func (n *Node) apply(evs []*clientv3.Event) bool {
	lu := false
	members := false
	for _, ev := range evs {
		key := string(ev.Kv.Key)
		rest, _ := strings.CutPrefix(key, n.prefix)
		var value []byte
		if ev.Type == mvccpb.PUT {
			value = ev.Kv.Value
			if value == nil {
				value = []byte{}
			}
		}
		kind, sub, _ := strings.Cut(rest, "/")
		switch kind {
		case "alive":
			n.mu.Lock()
			if value != nil {
				n.alive[sub] = true
			} else {
				delete(n.alive, sub)
				n.left[sub] = ev.Kv.ModRevision
			}
			n.notify()
			n.mu.Unlock()
			members = true
		case "nodes":
			n.mu.Lock()
			n.applyMember(ev.Kv.Key, value)
			n.notify()
			n.mu.Unlock()
			members = true
		case "ack":
			n.mu.Lock()
			n.applyAck(ev.Kv.Key, value)
			n.notify()
			n.mu.Unlock()
		case "alua":
			n.mu.Lock()
			n.applyALUA(ev.Kv.Key, value)
			n.mu.Unlock()
			members = true
		case "lu":
			if n.applyLU(sub, value, ev.Kv.ModRevision) {
				lu = true
			}
		}
	}
	if members {
		n.recompute()
	}
	return lu
}

// applyLU applies a put or, with a nil value, a delete under lu/ at
// revision rev: a record changed (the cached copy is refreshed), the
// SPC-2 reservation changed, or another node published an event for the
// I_T nexuses here. It reports whether the change concerns a logical
// unit this node shares.
func (n *Node) applyLU(sub string, value []byte, rev int64) bool {
	esc, what, _ := strings.Cut(sub, "/")
	n.mu.Lock()
	var s *sharedLU
	for key, x := range n.lus {
		if luKey(key) == esc {
			s = x
		}
	}
	n.mu.Unlock()
	if s == nil {
		return false
	}
	switch {
	case what == "spc2":
		s.applySPC2(rev, value)
	case value == nil:
		// A deleted event, or a record deleted by hand: nothing to do.
	case what == "pr":
		ctx, cancel := context.WithTimeout(n.ctx, n.ttl)
		err := s.lu.RefreshReservations(ctx)
		cancel()
		if err != nil {
			// Not current: stop vouching until the next progress answer.
			n.watchUntil.Store(0)
			n.log.Warn().Err(err).Str("lu", s.key).Msg("refreshing persistent reservations failed")
		}
	case strings.HasPrefix(what, "ev/"):
		from, _, _ := strings.Cut(strings.TrimPrefix(what, "ev/"), "/")
		if from == n.self.ID {
			return true
		}
		var e event
		if err := json.Unmarshal(value, &e); err != nil {
			n.log.Warn().Err(err).Str("lu", s.key).Msg("undecodable event ignored")
			return true
		}
		switch e.Kind {
		case "ua":
			s.lu.ApplyUA(e.Nexus, scsi.ASC(e.ASC))
		case "abort":
			s.lu.ApplyAbort(e.Nexus)
		case "reset":
			s.lu.ApplyReset(scsi.ASC(e.ASC))
		}
	}
	return true
}

// publish stores an event for the other nodes under the node's lease.
func (s *sharedLU) publish(ctx context.Context, e event) {
	n := s.n
	b, err := json.Marshal(e)
	if err != nil {
		n.log.Error().Err(err).Msg("encoding an event")
		return
	}
	key := n.key("lu", luKey(s.key), "ev", n.self.ID, formatSeq(n.eventSeq.Add(1)))
	ctx, cancel := context.WithTimeout(ctx, n.ttl)
	defer cancel()
	resp, err := n.cli.Put(ctx, key, string(b), clientv3.WithLease(clientv3.LeaseID(n.lease.Load())))
	if err != nil {
		n.log.Warn().Err(err).Str("lu", s.key).Str("kind", e.Kind).Stringer("nexus", e.Nexus).Msg("publishing an event to the other gateways failed")
		return
	}
	n.noteWrite(resp.Header.Revision)
	n.mu.Lock()
	n.pending = append(n.pending, key)
	n.mu.Unlock()
}

// formatSeq formats an event number so that keys sort in order.
func formatSeq(n uint64) string {
	const digits = "0123456789"
	b := []byte("00000000000000000000")
	for i := len(b) - 1; n > 0; i-- {
		b[i] = digits[n%10]
		n /= 10
	}
	return string(b)
}

// Settle implements passthrough.Shared: it waits until every node that
// was live after this node's latest write and serves the logical unit has
// acknowledged that write, or has left, at most the lease TTL plus the
// margin (by then a node that did neither has stopped admitting
// commands); then it deletes the applied events. The live nodes are read
// from etcd, not from the watch, so that a node that joined a moment ago
// is waited for too.
func (s *sharedLU) Settle(ctx context.Context) error {
	n := s.n
	target := n.lastWrite.Load()
	ctx, cancel := context.WithTimeout(ctx, n.ttl+n.margin)
	defer cancel()
	required, at, err := n.serving(ctx, s.key)
	if err != nil {
		return errors.Join(ErrNotSettled, err)
	}
	for {
		n.mu.Lock()
		waiting := ""
		for _, id := range required {
			if n.acks[id] < target && n.left[id] <= at {
				waiting = id
				break
			}
		}
		ch := n.changed
		var done []string
		if waiting == "" {
			done, n.pending = n.pending, nil
		}
		n.mu.Unlock()
		if waiting == "" {
			s.dropEvents(done)
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return errors.Join(ErrNotSettled, errors.New("node "+waiting+" did not acknowledge"), ctx.Err())
		}
	}
}

// serving returns the other live nodes that serve logical unit key, as
// etcd has them now, and the revision read.
func (n *Node) serving(ctx context.Context, key string) ([]string, int64, error) {
	alive, err := n.cli.Get(ctx, n.key("alive")+"/", clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		return nil, 0, err
	}
	at := alive.Header.Revision
	nodes, err := n.cli.Get(ctx, n.key("nodes")+"/", clientv3.WithPrefix(), clientv3.WithRev(at))
	if err != nil {
		return nil, 0, err
	}
	live := map[string]bool{}
	for _, kv := range alive.Kvs {
		live[strings.TrimPrefix(string(kv.Key), n.key("alive")+"/")] = true
	}
	var out []string
	for _, kv := range nodes.Kvs {
		var m member
		if json.Unmarshal(kv.Value, &m) == nil && m.ID != n.self.ID && live[m.ID] && slices.Contains(m.LUs, key) {
			out = append(out, m.ID)
		}
	}
	return out, at, nil
}

// dropEvents deletes applied events.
func (s *sharedLU) dropEvents(keys []string) {
	if len(keys) == 0 {
		return
	}
	ops := make([]clientv3.Op, 0, len(keys))
	for _, k := range keys {
		ops = append(ops, clientv3.OpDelete(k))
	}
	ctx, cancel := context.WithTimeout(s.n.ctx, s.n.ttl)
	defer cancel()
	if _, err := s.n.cli.Txn(ctx).Then(ops...).Commit(); err != nil {
		s.n.log.Debug().Err(err).Msg("deleting applied events failed (they go with the lease)")
	}
}
