package bridge

import (
	"github.com/sanbridge/sanbridge/conf"
	"github.com/sanbridge/sanbridge/passthrough"
)

// luPolicy returns what a device block's configuration changes in its
// logical unit's device-type policy, and its queue depth (zero values
// keep the defaults; emulated backends have none).
func luPolicy(d *conf.Device) (passthrough.PolicyConfig, int) {
	if d == nil {
		return passthrough.PolicyConfig{}, 0
	}
	p := passthrough.PolicyConfig{Timeout: d.Timeout, LongTimeout: d.LongTimeout}
	for _, op := range d.AllowOpcodes {
		p.Allow = append(p.Allow, byte(op))
	}
	for _, op := range d.DenyOpcodes {
		p.Deny = append(p.Deny, byte(op))
	}
	return p, d.QueueDepth
}
