package cluster

import (
	"context"
	"encoding/json"
	"fmt"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/sanbridge/sanbridge/passthrough"
)

// Store is the passthrough.PRStore of shared logical units: one etcd key
// per logical unit holding its record as JSON, versioned by the key's
// ModRevision and replaced by compare-and-swap in a transaction. Records
// live in etcd, so APTPL is supported (Durable).
type Store struct {
	n *Node
}

// prKey returns the etcd key of a logical unit's record.
func (s *Store) prKey(key string) string { return s.n.key("lu", luKey(key), "pr") }

// Load implements passthrough.PRStore with a linearizable read.
func (s *Store) Load(ctx context.Context, key string) (passthrough.PRRecord, uint64, error) {
	ctx, cancel := context.WithTimeout(ctx, s.n.ttl)
	defer cancel()
	resp, err := s.n.cli.Get(ctx, s.prKey(key))
	if err != nil {
		return passthrough.PRRecord{}, 0, fmt.Errorf("cluster: load persistent reservations of %q: %w", key, err)
	}
	if len(resp.Kvs) == 0 {
		return passthrough.PRRecord{}, 0, nil
	}
	kv := resp.Kvs[0]
	var rec passthrough.PRRecord
	if err := json.Unmarshal(kv.Value, &rec); err != nil {
		return passthrough.PRRecord{}, 0, fmt.Errorf("cluster: decode persistent reservations of %q: %w", key, err)
	}
	return rec, uint64(kv.ModRevision), nil
}

// CompareAndSwap implements passthrough.PRStore: the record is committed
// by etcd (a quorum has it) when it returns.
func (s *Store) CompareAndSwap(ctx context.Context, key string, version uint64, rec passthrough.PRRecord) (uint64, error) {
	b, err := json.Marshal(rec)
	if err != nil {
		return 0, fmt.Errorf("cluster: encode persistent reservations of %q: %w", key, err)
	}
	k := s.prKey(key)
	ctx, cancel := context.WithTimeout(ctx, s.n.ttl)
	defer cancel()
	resp, err := s.n.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.ModRevision(k), "=", int64(version))).
		Then(clientv3.OpPut(k, string(b))).
		Else(clientv3.OpGet(k, clientv3.WithKeysOnly())).
		Commit()
	if err != nil {
		return 0, fmt.Errorf("cluster: store persistent reservations of %q: %w", key, err)
	}
	if !resp.Succeeded {
		var cur int64
		if rr := resp.Responses[0].GetResponseRange(); rr != nil && len(rr.Kvs) > 0 {
			cur = rr.Kvs[0].ModRevision
		}
		return uint64(cur), fmt.Errorf("%w: %q is at revision %d, not %d", passthrough.ErrPRConflict, key, cur, version)
	}
	s.n.noteWrite(resp.Header.Revision)
	return uint64(resp.Header.Revision), nil
}

// Durable implements passthrough.PRStore: records are kept by etcd.
func (*Store) Durable() bool { return true }
