package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

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
		return passthrough.PRRecord{}, 0, fmt.Errorf("cluster: load persistent reservations of %q: %w", key, unavailable(ctx, err))
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
		return 0, fmt.Errorf("cluster: store persistent reservations of %q: %w", key, unavailable(ctx, err))
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

// unavailable marks err with passthrough.ErrPRUnavailable when etcd
// could not answer for now: a timeout (ours or the server's), no leader
// or a leader change, a member out of reach, too many requests, or the
// request's context (ctx, with its timeout) ending, whatever error that
// came back as (etcd may answer "code = Unknown desc = context deadline
// exceeded"). Other errors (permission denied, a request etcd refuses)
// are returned as they are.
func unavailable(ctx context.Context, err error) error {
	if ctx.Err() != nil || unreachable(err) {
		return fmt.Errorf("%w: %w", passthrough.ErrPRUnavailable, err)
	}
	return err
}

func unreachable(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return true
	}
	for _, e := range []error{rpctypes.ErrTimeout, rpctypes.ErrTimeoutDueToLeaderFail, rpctypes.ErrTimeoutDueToConnectionLost,
		rpctypes.ErrNoLeader, rpctypes.ErrLeaderChanged, rpctypes.ErrTooManyRequests, rpctypes.ErrStopped, rpctypes.ErrNotCapable} {
		if errors.Is(err, e) {
			return true
		}
	}
	var ee rpctypes.EtcdError
	if errors.As(err, &ee) {
		return transient(ee.Code())
	}
	if st, ok := status.FromError(err); ok {
		// The server ran out of the deadline the request carried, just
		// before the client did: it says so with code Unknown.
		if st.Code() == codes.Unknown && (st.Message() == context.DeadlineExceeded.Error() || st.Message() == context.Canceled.Error()) {
			return true
		}
		return transient(st.Code())
	}
	return false
}

// transient reports whether a gRPC code says the request may succeed
// when sent again later.
func transient(c codes.Code) bool {
	switch c {
	case codes.Unavailable, codes.DeadlineExceeded, codes.Canceled, codes.Aborted, codes.ResourceExhausted:
		return true
	}
	return false
}
