package passthrough

import (
	"context"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// waitQueued waits until key has n commands waiting in q.
func waitQueued(t *testing.T, q *fairQueue, key any, n int) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(100 * time.Microsecond) {
		q.mu.Lock()
		got := 0
		if l := q.lines[key]; l != nil {
			got = len(l.waiters)
		}
		q.mu.Unlock()
		if got == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%v has %d commands waiting, want %d", key, got, n)
		}
	}
}

// TestFairQueueRoundRobin: with the queue full, freed slots go to the
// waiting nexuses in turn, not in arrival order.
func TestFairQueueRoundRobin(t *testing.T) {
	q := newFairQueue(2)
	ctx := context.Background()
	for i := 0; i < 2; i++ {
		if !q.acquire(ctx, "A") {
			t.Fatal("free slot not granted")
		}
	}
	granted := make(chan string, 16)
	enqueue := func(key string, n int) {
		for i := 0; i < n; i++ {
			go func() {
				q.acquire(ctx, key)
				granted <- key
			}()
			waitQueued(t, q, key, i+1)
		}
	}
	enqueue("A", 5)
	enqueue("B", 2)
	enqueue("C", 1)
	var order []string
	for i := 0; i < 8; i++ {
		q.release()
		order = append(order, <-granted)
	}
	want := []string{"A", "B", "C", "A", "B", "A", "A", "A"}
	for i := range want {
		if order[i] != want[i] {
			t.Fatalf("grant order %v, want %v", order, want)
		}
	}
	// Everyone served (the releases above ended A's first two and six
	// of the granted ones): the last two slots go back to the free count.
	q.release()
	q.release()
	if q.free != 2 || len(q.ring) != 0 || len(q.lines) != 0 {
		t.Fatalf("free %d, %d lines left", q.free, len(q.ring))
	}
}

// TestFairQueueCancel: a waiting command whose context ends leaves its
// line holding nothing; the others keep their turns.
func TestFairQueueCancel(t *testing.T) {
	q := newFairQueue(1)
	if !q.acquire(context.Background(), "A") {
		t.Fatal("free slot not granted")
	}
	ctx, cancel := context.WithCancel(context.Background())
	res := make(chan bool, 1)
	go func() { res <- q.acquire(ctx, "B") }()
	waitQueued(t, q, "B", 1)
	got := make(chan bool, 1)
	go func() { got <- q.acquire(context.Background(), "C") }()
	waitQueued(t, q, "C", 1)
	cancel()
	if <-res {
		t.Fatal("cancelled acquire reported a slot")
	}
	q.release()
	if !<-got {
		t.Fatal("C not granted")
	}
	q.release()
	if q.free != 1 || len(q.ring) != 0 {
		t.Fatalf("free %d, %d lines", q.free, len(q.ring))
	}
}

// TestFairQueueLatency: nexus A keeps 128 commands queued on a logical
// unit of depth 4 while nexus B sends one at a time; B's waits stay in
// the order of one service time, where a first-come queue makes it wait
// behind A's backlog. The bound is generous; the values are logged.
func TestFairQueueLatency(t *testing.T) {
	const (
		depth = 4
		hold  = 200 * time.Microsecond
		bound = 2 * time.Second
	)
	run := func(acquire func(key string), release func()) (waits []time.Duration) {
		stop := make(chan struct{})
		var wg sync.WaitGroup
		var busy atomic.Int64
		for i := 0; i < 128; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					select {
					case <-stop:
						return
					default:
					}
					acquire("A")
					busy.Add(1)
					time.Sleep(hold)
					release()
				}
			}()
		}
		for busy.Load() < 256 {
			time.Sleep(time.Millisecond)
		}
		for i := 0; i < 50; i++ {
			t0 := time.Now()
			acquire("B")
			waits = append(waits, time.Since(t0))
			time.Sleep(hold)
			release()
		}
		close(stop)
		wg.Wait()
		sort.Slice(waits, func(i, j int) bool { return waits[i] < waits[j] })
		return waits
	}
	q := newFairQueue(depth)
	fair := run(func(key string) { q.acquire(context.Background(), key) }, q.release)
	sem := make(chan struct{}, depth)
	fifo := run(func(string) { sem <- struct{}{} }, func() { <-sem })
	t.Logf("B's wait for a slot next to A's 128 queued commands (depth %d, %v per command): round-robin p50 %v max %v; first-come p50 %v max %v",
		depth, hold, fair[len(fair)/2], fair[len(fair)-1], fifo[len(fifo)/2], fifo[len(fifo)-1])
	if fair[len(fair)-1] > bound {
		t.Errorf("B waited up to %v, beyond %v", fair[len(fair)-1], bound)
	}
}
