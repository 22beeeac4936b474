package cluster

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/sanbridge/sanbridge/bridge/cluster/etcdtest"
	"github.com/sanbridge/sanbridge/conf"
	"github.com/sanbridge/sanbridge/iscsi"
	"github.com/sanbridge/sanbridge/passthrough"
	"github.com/sanbridge/sanbridge/passthrough/testinit"
	"github.com/sanbridge/sanbridge/sgio"
	"github.com/sanbridge/sanbridge/sgio/emul"
	"github.com/sanbridge/sanbridge/sgio/scsi"
)

const (
	testTarget = "iqn.2026-11.io.sanbridge:shared"
	luKeyName  = "naa.5000c50015ea71a0"
	testTTL    = 2 * time.Second
)

// gateway is one gateway of a test cluster: a node and a target whose
// LUN 0 is the shared logical unit over a common device.
type gateway struct {
	node *Node
	tg   *passthrough.Target
	lu   *passthrough.LU
	tpgt uint16
}

// clusterConf returns the cluster block of gateway id (port group pg)
// talking to endpoints.
func clusterConf(id string, pg uint16, endpoints []string) *conf.Cluster {
	return &conf.Cluster{NodeID: id, PortGroup: pg, Endpoints: endpoints, LeaseTTL: testTTL, Prefix: "/sanbridge-test/", ALUA: conf.ALUAExplicit}
}

// startGateway joins a gateway with port group pg, whose target port is
// (testTarget, TPGT pg) with relative port pg<<8|1, serving dev.
func startGateway(t *testing.T, id string, pg uint16, endpoints []string, dev sgio.Device) *gateway {
	t.Helper()
	ctx := context.Background()
	log := zerolog.New(zerolog.NewTestWriter(t)).With().Str("gw", id).Logger()
	cc := clusterConf(id, pg, endpoints)
	rel := cc.RelTargetPortID(0)
	node, err := Join(ctx, Config{Cluster: cc, Ports: []passthrough.PRTargetPort{{Name: fmt.Sprintf("%s,t,0x%04x", testTarget, pg), RelTargetPortID: rel}}, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	lu, err := passthrough.NewLU(ctx, passthrough.LUConfig{Name: "shelf1", Key: luKeyName, Device: dev, PRStore: node.Store(), Log: log})
	if err != nil {
		t.Fatal(err)
	}
	v, err := passthrough.NewView(passthrough.Mapping{LUN: 0, LU: lu})
	if err != nil {
		t.Fatal(err)
	}
	tg, err := passthrough.NewTarget(passthrough.TargetConfig{Name: testTarget, Ports: map[uint16]uint16{pg: rel}, LUs: []*passthrough.LU{lu}, Views: passthrough.Everyone(v), Log: log})
	if err != nil {
		t.Fatal(err)
	}
	node.Share(lu)
	if err := node.Start(ctx); err != nil {
		t.Fatal(err)
	}
	g := &gateway{node: node, tg: tg, lu: lu, tpgt: pg}
	t.Cleanup(func() { g.stop(t) })
	return g
}

func (g *gateway) stop(t *testing.T) {
	if g.node == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := g.node.Close(ctx); err != nil {
		t.Logf("close %s: %v", g.node.self.ID, err)
	}
	g.node = nil
}

// twoGateways starts a 3-member etcd and gateways A and B on a common
// device, each talking to its own etcd member, with initiator h1 logged
// in through A and h2 through B.
func twoGateways(t *testing.T) (ec *etcdtest.Cluster, dev sgio.Device, a, b *gateway, h1, h2 *iscsi.Nexus) {
	t.Helper()
	ec = etcdtest.Start(t, 3)
	eps := ec.Endpoints()
	dev = newDevice(t)
	a = startGateway(t, "gw-a", 1, eps[:1], dev)
	b = startGateway(t, "gw-b", 2, eps[1:2], dev)
	waitGroups(t, 2, a, b)
	h1 = a.login(t, "iqn.2026-11.io.sanbridge:h1", 1)
	h2 = b.login(t, "iqn.2026-11.io.sanbridge:h2", 2)
	return ec, dev, a, b, h1, h2
}

// waitGroups waits until every gateway reports n port groups, so that
// the unit attentions of members joining are raised before any login.
func waitGroups(t *testing.T, n int, gws ...*gateway) {
	t.Helper()
	for _, g := range gws {
		waitFor(t, 10*time.Second, func() bool {
			gs := g.lu.Shared().PortGroups()
			for _, pg := range gs {
				if !pg.State.Active() {
					return false
				}
			}
			return len(gs) == n
		})
	}
}

// login attaches an I_T nexus of initiator name through g and clears
// its POWER ON unit attention.
func (g *gateway) login(t *testing.T, name string, isid byte) *iscsi.Nexus {
	t.Helper()
	in := &iscsi.Nexus{InitiatorName: name, ISID: iscsi.ISID{0x80, 0, 0, 0, 0, isid}, TargetName: testTarget, TPGT: g.tpgt}
	g.tg.Attach(in, nil)
	t.Cleanup(func() { g.tg.Detach(in) })
	r := g.run(in, testinit.TUR(), nil, 0)
	if s, _ := scsi.ParseSense(r.Sense); r.Status != scsi.CheckCondition || s.ASC != scsi.ASCPowerOnOrReset {
		t.Fatalf("first command: %v %v", r.Status, &s)
	}
	return in
}

func (g *gateway) run(in *iscsi.Nexus, cdb, wdata []byte, alloc int) iscsi.Response {
	cmd := &iscsi.Command{Nexus: in, LUN: iscsi.MakeLUN(0), CDB: cdb, Read: alloc > 0, ReadBuf: make([]byte, alloc), Write: wdata != nil, WriteData: wdata}
	return g.tg.Execute(context.Background(), cmd)
}

func (g *gateway) prOut(in *iscsi.Nexus, sa, typ byte, param []byte) iscsi.Response {
	return g.run(in, testinit.PersistentReserveOut(sa, typ, len(param)), param, 0)
}

func wantStatus(t *testing.T, what string, r iscsi.Response, st scsi.Status) {
	t.Helper()
	if r.Status != st {
		s, _ := scsi.ParseSense(r.Sense)
		t.Fatalf("%s: status %v (%v), want %v", what, r.Status, &s, st)
	}
}

func wantSense(t *testing.T, what string, r iscsi.Response, key scsi.SenseKey, asc scsi.ASC) {
	t.Helper()
	s, err := scsi.ParseSense(r.Sense)
	if r.Status != scsi.CheckCondition || err != nil || s.Key != key || s.ASC != asc {
		t.Fatalf("%s: status %v sense %v, want %v %v", what, r.Status, &s, key, asc)
	}
}

func newDevice(t *testing.T) sgio.Device {
	t.Helper()
	d, err := emul.New(emul.Config{SizeBytes: 1 << 20, BlockSize: 512, Serial: "shared"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

// TestStoreCompareAndSwap: two nodes' stores on one key: versions are
// ModRevisions, a stale version loses with ErrPRConflict, and PRs over
// both stores racing REGISTERs all end up registered.
func TestStoreCompareAndSwap(t *testing.T) {
	ec := etcdtest.Start(t, 3)
	ctx := context.Background()
	var stores []passthrough.PRStore
	for i, ep := range ec.Endpoints()[:2] {
		n, err := Join(ctx, Config{Cluster: clusterConf(fmt.Sprintf("n%d", i), uint16(i+1), []string{ep}), Log: zerolog.New(zerolog.NewTestWriter(t))})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { n.Close(ctx) })
		stores = append(stores, n.Store())
	}
	a, b := stores[0], stores[1]
	if !a.Durable() {
		t.Error("etcd store not durable")
	}
	rec, ver, err := a.Load(ctx, "k")
	if err != nil || ver != 0 || rec.Generation != 0 {
		t.Fatalf("empty load: %v %d %v", rec, ver, err)
	}
	v1, err := a.CompareAndSwap(ctx, "k", 0, passthrough.PRRecord{Generation: 1})
	if err != nil || v1 == 0 {
		t.Fatalf("first CAS: %d %v", v1, err)
	}
	if _, err := b.CompareAndSwap(ctx, "k", 0, passthrough.PRRecord{Generation: 7}); !errors.Is(err, passthrough.ErrPRConflict) {
		t.Fatalf("stale CAS from the other store: %v", err)
	}
	rec, ver, err = b.Load(ctx, "k")
	if err != nil || ver != v1 || rec.Generation != 1 {
		t.Fatalf("other store loads %v at %d (%v), want generation 1 at %d", rec, ver, err, v1)
	}
	v2, err := b.CompareAndSwap(ctx, "k", v1, passthrough.PRRecord{Generation: 2})
	if err != nil || v2 <= v1 {
		t.Fatalf("CAS at the current version: %d %v", v2, err)
	}
	if _, err := a.CompareAndSwap(ctx, "k", v1, passthrough.PRRecord{Generation: 3}); !errors.Is(err, passthrough.ErrPRConflict) {
		t.Fatalf("CAS at the old version: %v", err)
	}

	// Two PRs over the two stores register 16 I_T nexuses concurrently:
	// every REGISTER lands, whatever CAS rounds it lost.
	prs := make([]*passthrough.PR, 2)
	for i, s := range stores {
		if prs[i], err = passthrough.NewPR(ctx, s, "race", passthrough.PRHooks{}); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			nx := passthrough.PRNexus{InitiatorName: fmt.Sprintf("iqn.2026-11.io.sanbridge:h%d", i), ISID: "800000000001", TargetPort: testTarget + ",t,0x0001", RelTargetPortID: 1}
			st, sense := prs[i%2].Out(ctx, nx, testinit.PersistentReserveOut(0, 0, 24), testinit.PRParams(0, uint64(i+1), 0))
			if st != scsi.Good {
				t.Errorf("REGISTER %d: %v % x", i, st, sense)
			}
		}()
	}
	wg.Wait()
	rec, _, err = a.Load(ctx, "race")
	if err != nil || len(rec.Registrations) != 16 || rec.Generation != 16 {
		t.Fatalf("after the race: %d registrations, generation %d, %v", len(rec.Registrations), rec.Generation, err)
	}
}

// TestSharedPersistentReservations: a reservation made through gateway A
// is enforced on gateway B at once; unit attentions and PREEMPT AND ABORT
// cross gateways; REPORT TARGET PORT GROUPS is the same on both; the
// state survives a restart of both gateways (APTPL); the status shows
// the members and the holder.
func TestSharedPersistentReservations(t *testing.T) {
	ec, dev, a, b, h1, h2 := twoGateways(t)
	eps := ec.Endpoints()
	write := testinit.Write10(0, 1)
	block := make([]byte, 512)
	wantStatus(t, "write from h2 before any reservation", b.run(h2, write, block, 0), scsi.Good)

	// h1 registers with APTPL and takes Write Exclusive through A.
	wantStatus(t, "REGISTER h1", a.prOut(h1, 0, 0, testinit.PRParams(0, 0x11, 0x01)), scsi.Good)
	wantStatus(t, "RESERVE h1", a.prOut(h1, 1, byte(passthrough.PRWriteExclusive), testinit.PRParams(0x11, 0, 0)), scsi.Good)
	// B enforces it on its very next command: the PR OUT returned only
	// once B had applied it.
	wantStatus(t, "write from h2 through B", b.run(h2, write, block, 0), scsi.ReservationConflict)
	wantStatus(t, "read from h2 through B", b.run(h2, testinit.Read10(0, 1), nil, 512), scsi.Good)
	wantStatus(t, "write from h1 through A", a.run(h1, write, block, 0), scsi.Good)

	// h2 registers through B and preempts h1 with PREEMPT AND ABORT: h1,
	// on the other gateway, gets REGISTRATIONS PREEMPTED.
	wantStatus(t, "REGISTER h2", b.prOut(h2, 0, 0, testinit.PRParams(0, 0x22, 0x01)), scsi.Good)
	wantStatus(t, "PREEMPT AND ABORT h1", b.prOut(h2, 5, byte(passthrough.PRWriteExclusive), testinit.PRParams(0x22, 0x11, 0)), scsi.Good)
	wantSense(t, "h1 after the preemption", a.run(h1, testinit.TUR(), nil, 0), scsi.SenseUnitAttention, scsi.ASCRegistrationsPreempted)
	wantStatus(t, "write from h1 through A", a.run(h1, write, block, 0), scsi.ReservationConflict)
	wantStatus(t, "write from h2 through B", b.run(h2, write, block, 0), scsi.Good)

	// Both gateways give the same REPORT TARGET PORT GROUPS.
	rtpg := []byte{byte(scsi.OpMaintenanceIn), byte(scsi.SAReportTargetPortGroups), 0, 0, 0, 0, 0, 0, 1, 0, 0, 0}
	ra, rb := a.run(h1, rtpg, nil, 256), b.run(h2, rtpg, nil, 256)
	wantStatus(t, "RTPG through A", ra, scsi.Good)
	wantStatus(t, "RTPG through B", rb, scsi.Good)
	want := []byte{0, 0, 0, 24, 0, 0x8f, 0, 1, 0, 0, 0, 1, 0, 0, 1, 1, 0, 0x8f, 0, 2, 0, 0, 0, 1, 0, 0, 2, 1}
	if da, db := rtpgData(a, h1, rtpg), rtpgData(b, h2, rtpg); string(da) != string(want) || string(db) != string(want) {
		t.Fatalf("RTPG through A % x, through B % x, want % x", da, db, want)
	}

	st, err := a.node.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Members) != 2 || !st.Members[0].Alive || !st.Members[1].Alive || len(st.LUs) != 1 ||
		st.LUs[0].Key != luKeyName || len(st.LUs[0].Holders) != 1 || st.LUs[0].Type != "Write Exclusive" {
		t.Fatalf("status %+v", st)
	}
	t.Logf("status: %+v", st)

	// Both gateways restart: the reservation is still there (APTPL).
	a.stop(t)
	b.stop(t)
	a = startGateway(t, "gw-a", 1, eps[2:], dev)
	b = startGateway(t, "gw-b", 2, eps[:1], dev)
	waitGroups(t, 2, a, b)
	h1 = a.login(t, "iqn.2026-11.io.sanbridge:h1", 1)
	h2 = b.login(t, "iqn.2026-11.io.sanbridge:h2", 2)
	wantStatus(t, "write from h1 after the restart", a.run(h1, write, block, 0), scsi.ReservationConflict)
	wantStatus(t, "write from h2 after the restart", b.run(h2, write, block, 0), scsi.Good)
}

func rtpgData(g *gateway, in *iscsi.Nexus, cdb []byte) []byte {
	cmd := &iscsi.Command{Nexus: in, LUN: iscsi.MakeLUN(0), CDB: cdb, Read: true, ReadBuf: make([]byte, 256)}
	r := g.tg.Execute(context.Background(), cmd)
	return cmd.ReadBuf[:r.ReadLen]
}

// TestPartitionedGateway: a gateway whose etcd member dies stops
// admitting commands on the shared logical unit within its lease TTL
// (NOT READY, ASYMMETRIC ACCESS STATE TRANSITION); the other gateway
// reports its port group unavailable and raises ASYMMETRIC ACCESS STATE
// CHANGED; when etcd comes back the partitioned gateway catches up and
// admits commands again.
func TestPartitionedGateway(t *testing.T) {
	ec, _, a, b, h1, h2 := twoGateways(t)
	read := testinit.Read10(0, 1)
	wantStatus(t, "read through A", a.run(h1, read, nil, 512), scsi.Good)

	cut := time.Now()
	ec.Members[0].Kill()
	fenced := waitFor(t, 2*testTTL, func() bool { return a.lu.Shared().Access() == passthrough.AccessTransitioning })
	t.Logf("gateway A stopped admitting %v after its etcd member died (lease TTL %v)", fenced.Sub(cut), testTTL)
	if fenced.Sub(cut) > testTTL {
		t.Errorf("gateway A admitted commands for %v after losing etcd, more than the lease TTL %v", fenced.Sub(cut), testTTL)
	}
	wantSense(t, "read through the partitioned gateway", a.run(h1, read, nil, 512), scsi.SenseNotReady, scsi.NewASC(0x04, 0x0a))
	wantSense(t, "PR IN through the partitioned gateway", a.run(h1, testinit.PersistentReserveIn(0, 64), nil, 64), scsi.SenseNotReady, scsi.NewASC(0x04, 0x0a))

	// B sees A's lease expire: A's group is unavailable, and h2 is told.
	waitFor(t, 3*testTTL, func() bool {
		for _, g := range b.lu.Shared().PortGroups() {
			if g.ID == 1 {
				return g.State == passthrough.AccessUnavailable
			}
		}
		return false
	})
	wantSense(t, "h2 after A left", b.run(h2, read, nil, 512), scsi.SenseUnitAttention, scsi.NewASC(0x2a, 0x06))
	wantStatus(t, "read through B", b.run(h2, read, nil, 512), scsi.Good)
	// A PR OUT through B does not wait for the absent A.
	wantStatus(t, "REGISTER through B", b.prOut(h2, 0, 0, testinit.PRParams(0, 0x22, 0)), scsi.Good)

	ec.Members[0].Start()
	back := time.Now()
	waitFor(t, 30*time.Second, func() bool { return a.lu.Shared().Access().Active() })
	t.Logf("gateway A admits commands again %v after its etcd member came back", time.Since(back))
	// A caught up with what happened meanwhile.
	r := a.run(h1, testinit.PersistentReserveIn(0, 64), nil, 64)
	for r.Status == scsi.CheckCondition {
		r = a.run(h1, testinit.PersistentReserveIn(0, 64), nil, 64) // the unit attentions of the change
	}
	wantStatus(t, "PR IN through A", r, scsi.Good)
	keys := rtpgData(a, h1, testinit.PersistentReserveIn(0, 64))
	if len(keys) < 16 || keys[7] != 8 || keys[15] != 0x22 {
		t.Fatalf("READ KEYS through A after catching up: % x", keys)
	}
}

// waitFor polls cond until it holds and returns when it did; it fails the
// test after limit.
func waitFor(t *testing.T, limit time.Duration, cond func() bool) time.Time {
	t.Helper()
	end := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(end) {
			t.Fatalf("condition not reached within %v", limit)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return time.Now()
}

// TestPortConflicts: a gateway whose port group or ports a live member
// uses cannot start; one whose node id is live cannot either.
func TestPortConflicts(t *testing.T) {
	ec, dev, _, _, _, _ := twoGateways(t)
	ctx := context.Background()
	for _, c := range []struct {
		id   string
		pg   uint16
		port passthrough.PRTargetPort
	}{
		{"gw-c", 1, passthrough.PRTargetPort{Name: testTarget + ",t,0x0009", RelTargetPortID: 0x0901}},
		{"gw-c", 9, passthrough.PRTargetPort{Name: testTarget + ",t,0x0002", RelTargetPortID: 0x0901}},
		{"gw-c", 9, passthrough.PRTargetPort{Name: testTarget + ",t,0x0009", RelTargetPortID: 0x0201}},
		{"gw-a", 9, passthrough.PRTargetPort{Name: testTarget + ",t,0x0009", RelTargetPortID: 0x0901}},
	} {
		n, err := Join(ctx, Config{Cluster: clusterConf(c.id, c.pg, ec.Endpoints()), Ports: []passthrough.PRTargetPort{c.port}, Log: zerolog.New(zerolog.NewTestWriter(t))})
		if err != nil {
			t.Fatal(err)
		}
		err = n.Start(ctx)
		n.Close(ctx)
		if err == nil {
			t.Errorf("%s with port group %d and port %v started", c.id, c.pg, c.port)
		}
	}
	// A distinct one joins, and both others see its group.
	c := startGateway(t, "gw-c", 3, ec.Endpoints(), dev)
	waitGroups(t, 3, c)
}
