package metrics

import (
	"context"
	"testing"
)

func TestLimitCounts(t *testing.T) {
	r := New("test")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	srv, err := r.Listen(ctx, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := scrape(t, srv.Addr().String())["sanbridge_limit_hits_total"]; ok {
		t.Fatal("limit family published before SetLimitCounts")
	}
	n := LimitCounts{MemoryFull: 3, AuthLockouts: 1}
	r.SetLimitCounts(func() LimitCounts { return n })
	r.SetLimitCounts(func() LimitCounts { return n }) // registered once
	fams := scrape(t, srv.Addr().String())
	for limit, want := range map[string]float64{"memory_full": 3, "auth_lockouts": 1, "task_table_full": 0} {
		if got := counter(t, fams, "sanbridge_limit_hits_total", map[string]string{"limit": limit}); got != want {
			t.Errorf("limit %s = %v, want %v", limit, got, want)
		}
	}
}
