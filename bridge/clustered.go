package bridge

import (
	"context"
	"fmt"
	"time"

	"github.com/sanbridge/sanbridge/bridge/cluster"
	"github.com/sanbridge/sanbridge/conf"
	"github.com/sanbridge/sanbridge/passthrough"
)

// A clustered gateway (conf.Cluster) keeps the reservations of its shared
// backends in etcd and answers for them with the other gateways as one
// SCSI target device (bridge/cluster). Its relative target port
// identifiers are port_group*256 + 1, + 2, ... so that they are unique
// across the cluster.

// joinCluster joins the configuration's cluster, if any.
func joinCluster(cfg *conf.Config, b *Bridge) error {
	if cfg.Cluster == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), cfg.Cluster.LeaseTTL)
	defer cancel()
	node, err := cluster.Join(ctx, cluster.Config{Cluster: cfg.Cluster, Log: b.log.With().Str("component", "cluster").Logger()})
	if err != nil {
		return fmt.Errorf("%s: %w", cfg.Cluster.DeclRange, err)
	}
	b.node = node
	return nil
}

// relPort returns the relative target port identifier of the gateway's
// i-th target port (1-based).
func relPort(cfg *conf.Config, i uint16) uint16 {
	if cfg.Cluster == nil {
		return i
	}
	return cfg.Cluster.RelTargetPortID(int(i) - 1)
}

// addClusterPort tells the cluster about a target port.
func (b *Bridge) addClusterPort(target string, tpgt, rel uint16) {
	if b.node != nil {
		b.node.AddPort(passthrough.PRTargetPort{Name: fmt.Sprintf("%s,t,0x%04x", target, tpgt), RelTargetPortID: rel})
	}
}

// storeFor returns the persistent reservation store of a backend: etcd
// for a shared one.
func (o *opener) storeFor(backend string) passthrough.PRStore {
	if o.node != nil && o.cfg.Backend(backend) != nil && o.cfg.Backend(backend).Shared {
		return o.node.Store()
	}
	return o.store
}

// share makes a shared backend's logical unit one of the cluster's.
func (o *opener) share(backend string, lu *passthrough.LU) {
	if o.node != nil && o.cfg.Backend(backend) != nil && o.cfg.Backend(backend).Shared {
		o.node.Share(lu)
	}
}

// startCluster registers the gateway as a member and starts serving its
// shared logical units.
func (b *Bridge) startCluster() error {
	if b.node == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*b.cfg.Cluster.LeaseTTL)
	defer cancel()
	if err := b.node.Start(ctx); err != nil {
		return fmt.Errorf("%s: %w", b.cfg.Cluster.DeclRange, err)
	}
	return nil
}

// leaveCluster leaves the cluster: the other gateways see this one go.
func (b *Bridge) leaveCluster() {
	if b.node == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := b.node.Close(ctx); err != nil {
		b.log.Warn().Err(err).Msg("leaving the cluster")
	}
	b.node = nil
}

// Cluster returns the gateway's cluster membership, nil when it is not
// clustered (for sanbridge status: Node.Status).
func (b *Bridge) Cluster() *cluster.Node { return b.node }
