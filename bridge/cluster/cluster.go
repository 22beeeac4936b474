// Package cluster makes several gateways in front of the same devices
// answer as one SCSI target device: the logical units of shared backends
// keep their persistent reservations in etcd, unit attentions and
// PREEMPT AND ABORT reach every gateway, each gateway's target ports form
// one target port group whose asymmetric access state every gateway
// reports alike, and a gateway that cannot vouch for the cluster's state
// stops admitting commands on shared logical units until it can.
//
// Keys, under the cluster's prefix P (conf.Cluster.Prefix):
//
//	P nodes/<id>            member record (JSON): port group, target ports,
//	                        shared logical units; kept while the node is away
//	P alive/<id>            present while the node's lease lives
//	P ack/<id>              the revision the node's watch has applied (lease)
//	P lu/<key>/pr           a logical unit's passthrough.PRRecord (JSON); its
//	                        ModRevision is the PRStore version
//	P lu/<key>/spc2         the holder of its SPC-2 reservation (JSON: node
//	                        and I_T nexus; the holder's node's lease)
//	P lu/<key>/ev/<id>/<n>  an event node <id> published for the logical
//	                        unit's I_T nexuses elsewhere: a unit attention,
//	                        an abort, or a task set clear or reset (lease;
//	                        deleted once applied)
//	P alua/<tpg>            an access state set by SET TARGET PORT GROUPS
//
// Fence. A node vouches for the cluster's state until validUntil: the
// send time of the last keep-alive etcd answered, and of the last watch
// progress request the watch answered (every event up to then was
// applied), whichever is older, plus the lease TTL less a margin. Past it,
// every shared logical unit reports its local ports transitioning and
// refuses commands with NOT READY, ASYMMETRIC ACCESS STATE TRANSITION
// (passthrough's access stage), so it answers nothing from stale state;
// the other nodes see its lease expire and report its group unavailable.
//
// A PERSISTENT RESERVE OUT completes when its record is committed (a
// compare-and-swap on the key's ModRevision in a transaction), its events
// are published, and every other live node has acknowledged a revision
// at least as new, which it does only after applying them (refreshing
// its cached record, raising the unit attentions, aborting the tasks);
// a node that does not acknowledge in time has fenced itself by then.
package cluster

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/sanbridge/sanbridge/conf"
	"github.com/sanbridge/sanbridge/passthrough"
)

// Config describes this gateway for [Join].
type Config struct {
	// Cluster is the configuration's cluster block.
	Cluster *conf.Cluster
	// Ports are this gateway's target ports.
	Ports []passthrough.PRTargetPort
	// Log receives the cluster's logs.
	Log zerolog.Logger
}

// member is what a node publishes about itself under nodes/<id>.
type member struct {
	ID        string                     `json:"id"`
	PortGroup uint16                     `json:"port_group"`
	Preferred bool                       `json:"preferred,omitempty"`
	Ports     []passthrough.PRTargetPort `json:"ports"`
	LUs       []string                   `json:"lus"`
}

// event is a unit attention or an abort for the I_T nexuses of other
// gateways, under lu/<key>/ev/<node>/<n>.
type event struct {
	Kind  string              `json:"kind"` // "ua", "abort" (Nexus' tasks) or "reset" (every task, and ASC for every nexus)
	Nexus passthrough.PRNexus `json:"nexus"`
	ASC   uint16              `json:"asc,omitempty"`
}

// Node is this gateway's membership in the cluster. Its methods are safe
// for concurrent use.
type Node struct {
	cfg    *conf.Cluster
	self   member
	log    zerolog.Logger
	cli    *clientv3.Client
	prefix string
	ttl    time.Duration
	margin time.Duration
	epoch  time.Time // base of the monotonic clock readings below

	ctx    context.Context // ends at Close
	cancel context.CancelFunc
	wg     sync.WaitGroup

	lease      atomic.Int64 // clientv3.LeaseID
	leaseUntil atomic.Int64 // ns since epoch: the lease surely lives until then
	watchUntil atomic.Int64 // ns since epoch: the watch was current then, plus the lease's span
	progressAt atomic.Int64 // ns since epoch: when the last progress request was sent
	started    atomic.Bool
	local      atomic.Uint32 // passthrough.AccessState of this node's group while vouching
	lastWrite  atomic.Int64  // highest revision this node wrote
	eventSeq   atomic.Uint64

	mu      sync.Mutex
	lus     map[string]*sharedLU // by logical unit key
	members map[string]member    // every node record, by id
	alive   map[string]bool      // nodes whose alive key exists
	acks    map[string]int64     // acknowledged revision per node
	left    map[string]int64     // revision at which each node's alive key was last deleted
	explict map[uint16]passthrough.AccessState
	changed chan struct{} // closed and replaced when acks or members change
	groups  map[string][]passthrough.PortGroup
	pending []string // event keys this node published and has not deleted
}

// Errors.
var (
	// ErrPortConflict: a live member uses this gateway's port group, a
	// target port name or a relative target port identifier.
	ErrPortConflict = errors.New("cluster: target ports conflict with another member")
	// ErrNotSettled: some gateway did not confirm a change in time.
	ErrNotSettled = errors.New("cluster: change not confirmed by every gateway")
)

// Join connects to etcd and takes a lease. The node admits nothing until
// [Node.Start].
func Join(ctx context.Context, c Config) (*Node, error) {
	cc := c.Cluster
	if cc == nil {
		return nil, errors.New("cluster: no cluster configuration")
	}
	cli, err := newClient(cc)
	if err != nil {
		return nil, err
	}
	nctx, cancel := context.WithCancel(context.Background())
	n := &Node{
		cfg:     cc,
		self:    member{ID: cc.NodeID, PortGroup: cc.PortGroup, Preferred: cc.Preferred, Ports: slices.Clone(c.Ports)},
		log:     c.Log.With().Str("node", cc.NodeID).Logger(),
		cli:     cli,
		prefix:  cc.Prefix,
		ttl:     cc.LeaseTTL,
		margin:  max(cc.LeaseTTL/5, 500*time.Millisecond),
		epoch:   time.Now(),
		ctx:     nctx,
		cancel:  cancel,
		lus:     make(map[string]*sharedLU),
		members: make(map[string]member),
		alive:   make(map[string]bool),
		acks:    make(map[string]int64),
		left:    make(map[string]int64),
		explict: make(map[uint16]passthrough.AccessState),
		changed: make(chan struct{}),
	}
	if err := n.grant(ctx); err != nil {
		cancel()
		cli.Close()
		return nil, err
	}
	return n, nil
}

// newClient returns an etcd client for cc.
func newClient(cc *conf.Cluster) (*clientv3.Client, error) {
	ecfg := clientv3.Config{
		Endpoints:            cc.Endpoints,
		DialTimeout:          cc.LeaseTTL / 2,
		DialKeepAliveTime:    cc.LeaseTTL / 3,
		DialKeepAliveTimeout: cc.LeaseTTL / 3,
		Username:             cc.Username,
		Password:             cc.Password,
		Logger:               zap.NewNop(),
	}
	if cc.TLS != nil {
		tc, err := tlsConfig(cc)
		if err != nil {
			return nil, err
		}
		ecfg.TLS = tc
	}
	cli, err := clientv3.New(ecfg)
	if err != nil {
		return nil, fmt.Errorf("cluster: etcd client: %w", err)
	}
	return cli, nil
}

// tlsConfig builds the TLS configuration for etcd.
func tlsConfig(cc *conf.Cluster) (*tls.Config, error) {
	t := cc.TLS
	tc := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: t.ServerName}
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("cluster: etcd CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("cluster: etcd CA %s: no PEM certificate", t.CAFile)
		}
		tc.RootCAs = pool
	}
	if t.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("cluster: etcd client certificate: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

// mono returns the monotonic time since the node's epoch.
func (n *Node) mono() int64 { return int64(time.Since(n.epoch)) }

// key returns P + parts joined.
func (n *Node) key(parts ...string) string { return n.prefix + strings.Join(parts, "/") }

// luKey returns the etcd key part of a logical unit key.
func luKey(key string) string { return url.PathEscape(key) }

// checkMembers checks that no live member uses this node's id, port
// group or ports; the record of an absent member that does is removed.
func (n *Node) checkMembers(ctx context.Context) error {
	resp, err := n.cli.Get(ctx, n.key("nodes")+"/", clientv3.WithPrefix())
	if err != nil {
		return fmt.Errorf("cluster: read members: %w", err)
	}
	alive, err := n.cli.Get(ctx, n.key("alive")+"/", clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		return fmt.Errorf("cluster: read members: %w", err)
	}
	live := map[string]bool{}
	for _, kv := range alive.Kvs {
		live[strings.TrimPrefix(string(kv.Key), n.key("alive")+"/")] = true
	}
	for _, kv := range resp.Kvs {
		var m member
		if err := json.Unmarshal(kv.Value, &m); err != nil {
			return fmt.Errorf("cluster: member record %s: %w", kv.Key, err)
		}
		if m.ID == n.self.ID {
			if live[m.ID] {
				return fmt.Errorf("cluster: node %s is already a live member (another gateway with the same node_id?)", m.ID)
			}
			continue
		}
		if why := portConflict(n.self, m); why != "" {
			if live[m.ID] {
				return fmt.Errorf("%w: node %s: %s", ErrPortConflict, m.ID, why)
			}
			n.log.Warn().Str("member", m.ID).Str("conflict", why).Msg("removing the record of an absent member whose ports this gateway takes")
			if _, err := n.cli.Delete(ctx, string(kv.Key)); err != nil {
				return fmt.Errorf("cluster: remove stale member %s: %w", m.ID, err)
			}
		}
	}
	return nil
}

// portConflict says what a and b share that must be unique, or "".
func portConflict(a, b member) string {
	if a.PortGroup == b.PortGroup {
		return fmt.Sprintf("port group %d", a.PortGroup)
	}
	for _, p := range a.Ports {
		for _, q := range b.Ports {
			switch {
			case strings.EqualFold(p.Name, q.Name):
				return fmt.Sprintf("target port %s", p.Name)
			case p.RelTargetPortID == q.RelTargetPortID:
				return fmt.Sprintf("relative target port identifier %d", p.RelTargetPortID)
			}
		}
	}
	return ""
}

// grant takes a new lease.
func (n *Node) grant(ctx context.Context) error {
	sent := n.mono()
	lr, err := n.cli.Grant(ctx, int64(n.ttl/time.Second))
	if err != nil {
		return fmt.Errorf("cluster: etcd lease: %w", err)
	}
	n.lease.Store(int64(lr.ID))
	n.leaseUntil.Store(sent + int64(time.Duration(lr.TTL)*time.Second-n.margin))
	return nil
}

// Store returns the persistent reservation store of shared logical units.
func (n *Node) Store() passthrough.PRStore { return &Store{n: n} }

// AddPort adds a target port of this gateway (before Start).
func (n *Node) AddPort(p passthrough.PRTargetPort) {
	n.mu.Lock()
	n.self.Ports = append(n.self.Ports, p)
	n.mu.Unlock()
}

// Share makes lu one of the cluster's shared logical units. Call it for
// each before Start.
func (n *Node) Share(lu *passthrough.LU) {
	s := &sharedLU{n: n, lu: lu, key: lu.Key()}
	n.mu.Lock()
	n.lus[s.key] = s
	n.self.LUs = append(n.self.LUs, s.key)
	slices.Sort(n.self.LUs)
	n.mu.Unlock()
	lu.SetShared(s)
}

// Start checks that no live member uses this gateway's node id, port
// group or ports (a stale record of an absent member that does is
// removed), publishes the member record, catches up with every shared
// logical unit's state and starts the lease keep-alive and the watch;
// from then on the shared logical units admit commands while the node
// vouches for the cluster's state.
func (n *Node) Start(ctx context.Context) error {
	if err := n.checkMembers(ctx); err != nil {
		return err
	}
	n.mu.Lock()
	rec, err := json.Marshal(n.self)
	n.mu.Unlock()
	if err != nil {
		return fmt.Errorf("cluster: member record: %w", err)
	}
	lease := clientv3.LeaseID(n.lease.Load())
	_, err = n.cli.Txn(ctx).Then(
		clientv3.OpPut(n.key("nodes", n.self.ID), string(rec)),
		clientv3.OpPut(n.key("alive", n.self.ID), "", clientv3.WithLease(lease)),
	).Commit()
	if err != nil {
		return fmt.Errorf("cluster: register: %w", err)
	}
	read := n.mono()
	rev, err := n.sync(ctx)
	if err != nil {
		return err
	}
	// The state read is current as of read; the watch goes on from it.
	n.watchUntil.Store(read + int64(n.ttl-n.margin))
	n.started.Store(true)
	n.recompute()
	n.wg.Add(2)
	go n.keepAlive()
	go n.watch(rev)
	n.log.Info().Uint16("port_group", n.self.PortGroup).Strs("lus", n.self.LUs).Msg("joined the cluster")
	return nil
}

// sync reads the members and refreshes every shared logical unit's
// record; it returns the revision the state was read at, which it
// acknowledges.
func (n *Node) sync(ctx context.Context) (int64, error) {
	resp, err := n.cli.Get(ctx, n.prefix, clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		return 0, fmt.Errorf("cluster: read state: %w", err)
	}
	rev := resp.Header.Revision
	nodes, err := n.cli.Get(ctx, n.key("nodes")+"/", clientv3.WithPrefix(), clientv3.WithRev(rev))
	if err != nil {
		return 0, fmt.Errorf("cluster: read members: %w", err)
	}
	acks, err := n.cli.Get(ctx, n.key("ack")+"/", clientv3.WithPrefix(), clientv3.WithRev(rev))
	if err != nil {
		return 0, fmt.Errorf("cluster: read members: %w", err)
	}
	alua, err := n.cli.Get(ctx, n.key("alua")+"/", clientv3.WithPrefix(), clientv3.WithRev(rev))
	if err != nil {
		return 0, fmt.Errorf("cluster: read access states: %w", err)
	}
	n.mu.Lock()
	clear(n.members)
	clear(n.alive)
	clear(n.acks)
	clear(n.explict)
	for _, kv := range resp.Kvs {
		if id, ok := strings.CutPrefix(string(kv.Key), n.key("alive")+"/"); ok {
			n.alive[id] = true
		}
	}
	for _, kv := range nodes.Kvs {
		n.applyMember(kv.Key, kv.Value)
	}
	for _, kv := range acks.Kvs {
		n.applyAck(kv.Key, kv.Value)
	}
	for _, kv := range alua.Kvs {
		n.applyALUA(kv.Key, kv.Value)
	}
	lus := n.sharedLUs()
	n.mu.Unlock()
	for _, s := range lus {
		if err := s.lu.RefreshReservations(ctx); err != nil {
			return 0, fmt.Errorf("cluster: %w", err)
		}
		spc2, err := n.cli.Get(ctx, s.spc2Key(), clientv3.WithRev(rev))
		if err != nil {
			return 0, fmt.Errorf("cluster: read SPC-2 reservation of %q: %w", s.key, err)
		}
		var value []byte
		if len(spc2.Kvs) > 0 {
			value = spc2.Kvs[0].Value
		}
		s.applySPC2(rev, value)
	}
	if err := n.ack(ctx, rev); err != nil {
		return 0, err
	}
	n.recompute()
	return rev, nil
}

// sharedLUs returns the shared logical units. n.mu is held.
func (n *Node) sharedLUs() []*sharedLU {
	out := make([]*sharedLU, 0, len(n.lus))
	for _, s := range n.lus {
		out = append(out, s)
	}
	return out
}

// ack publishes that every event up to rev was applied.
func (n *Node) ack(ctx context.Context, rev int64) error {
	lease := clientv3.LeaseID(n.lease.Load())
	if _, err := n.cli.Put(ctx, n.key("ack", n.self.ID), fmt.Sprint(rev), clientv3.WithLease(lease)); err != nil {
		return fmt.Errorf("cluster: acknowledge revision %d: %w", rev, err)
	}
	return nil
}

// applyMember, applyAck and applyALUA update the view of the cluster
// from a key and value (nil value: deleted). n.mu is held.
func (n *Node) applyMember(key, value []byte) {
	id := strings.TrimPrefix(string(key), n.key("nodes")+"/")
	if value == nil {
		delete(n.members, id)
		return
	}
	var m member
	if err := json.Unmarshal(value, &m); err != nil {
		n.log.Warn().Err(err).Str("key", string(key)).Msg("undecodable member record ignored")
		return
	}
	n.members[id] = m
}

func (n *Node) applyAck(key, value []byte) {
	id := strings.TrimPrefix(string(key), n.key("ack")+"/")
	if value == nil {
		delete(n.acks, id)
		return
	}
	var rev int64
	if _, err := fmt.Sscan(string(value), &rev); err == nil {
		n.acks[id] = rev
	}
}

func (n *Node) applyALUA(key, value []byte) {
	var tpg uint16
	if _, err := fmt.Sscan(strings.TrimPrefix(string(key), n.key("alua")+"/"), &tpg); err != nil {
		return
	}
	if value == nil {
		delete(n.explict, tpg)
		return
	}
	var st uint8
	if _, err := fmt.Sscan(string(value), &st); err == nil {
		n.explict[tpg] = passthrough.AccessState(st)
	}
}

// notify wakes whoever waits for acknowledgements or members. n.mu is
// held.
func (n *Node) notify() {
	close(n.changed)
	n.changed = make(chan struct{})
}

// noteWrite records a revision this node wrote.
func (n *Node) noteWrite(rev int64) {
	for {
		cur := n.lastWrite.Load()
		if rev <= cur || n.lastWrite.CompareAndSwap(cur, rev) {
			return
		}
	}
}

// vouching reports whether the node can vouch for the cluster's state
// now: started, lease and watch current.
func (n *Node) vouching() bool {
	if !n.started.Load() || n.ctx.Err() != nil {
		return false
	}
	now := n.mono()
	return now < n.leaseUntil.Load() && now < n.watchUntil.Load()
}

// groupState is the access state of a member's port group. n.mu is
// held.
func (n *Node) groupState(id string, tpg uint16, preferred, alive bool) passthrough.AccessState {
	if !alive {
		return passthrough.AccessUnavailable
	}
	if st, ok := n.explict[tpg]; ok && n.cfg.ALUA == conf.ALUAExplicit {
		return st
	}
	if preferred {
		return passthrough.AccessActiveOptimized
	}
	for oid, m := range n.members {
		if m.Preferred && (n.alive[oid] || oid == n.self.ID) {
			return passthrough.AccessActiveNonOptimized
		}
	}
	return passthrough.AccessActiveOptimized
}

// portGroups returns every member's target port group for logical unit
// key, ordered by ID.
func (n *Node) portGroups(key string) []passthrough.PortGroup {
	vouch := n.vouching()
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.portGroupsLocked(key, vouch)
}

func (n *Node) portGroupsLocked(key string, vouch bool) []passthrough.PortGroup {
	var out []passthrough.PortGroup
	add := func(m member, alive bool) {
		g := passthrough.PortGroup{ID: m.PortGroup, Preferred: m.Preferred}
		for _, p := range m.Ports {
			g.Ports = append(g.Ports, p.RelTargetPortID)
		}
		g.State = n.groupState(m.ID, m.PortGroup, m.Preferred, alive)
		if _, ok := n.explict[m.PortGroup]; ok && n.cfg.ALUA == conf.ALUAExplicit && alive {
			g.Status = passthrough.PortGroupStatusSet
		} else if g.State != passthrough.AccessActiveOptimized {
			g.Status = passthrough.PortGroupStatusImplicit
		}
		if m.ID == n.self.ID && !vouch {
			g.State, g.Status = passthrough.AccessTransitioning, passthrough.PortGroupStatusImplicit
		}
		out = append(out, g)
	}
	add(n.self, true)
	for id, m := range n.members {
		if id != n.self.ID && slices.Contains(m.LUs, key) {
			add(m, n.alive[id])
		}
	}
	slices.SortFunc(out, func(a, b passthrough.PortGroup) int { return int(a.ID) - int(b.ID) })
	return out
}

// recompute raises ASYMMETRIC ACCESS STATE CHANGED on every shared
// logical unit whose port groups' states changed since last time.
func (n *Node) recompute() {
	vouch := n.vouching()
	n.mu.Lock()
	if n.groups == nil {
		n.groups = make(map[string][]passthrough.PortGroup)
	}
	n.local.Store(uint32(n.groupState(n.self.ID, n.self.PortGroup, n.self.Preferred, true)))
	var changed []*sharedLU
	for key, s := range n.lus {
		g := n.portGroupsLocked(key, vouch)
		if prev, ok := n.groups[key]; ok && !sameStates(prev, g) {
			changed = append(changed, s)
		}
		n.groups[key] = g
	}
	n.mu.Unlock()
	for _, s := range changed {
		n.log.Info().Str("lu", s.key).Msg("asymmetric access states changed")
		s.lu.AccessChanged()
	}
}

// sameStates reports whether a and b list the same groups in the same
// states.
func sameStates(a, b []passthrough.PortGroup) bool {
	return slices.EqualFunc(a, b, func(x, y passthrough.PortGroup) bool {
		return x.ID == y.ID && x.State == y.State && x.Preferred == y.Preferred
	})
}

// Close leaves the cluster: the lease is revoked (the other nodes see
// this one go at once), the loops stop and the client closes.
func (n *Node) Close(ctx context.Context) error {
	n.started.Store(false)
	n.cancel()
	n.wg.Wait()
	_, err := n.cli.Revoke(ctx, clientv3.LeaseID(n.lease.Load()))
	if err != nil && !errors.Is(err, rpctypes.ErrLeaseNotFound) {
		err = fmt.Errorf("cluster: revoke lease: %w", err)
	} else {
		err = nil
	}
	if cerr := n.cli.Close(); err == nil && cerr != nil && !errors.Is(cerr, context.Canceled) {
		err = fmt.Errorf("cluster: close etcd client: %w", cerr)
	}
	return err
}
