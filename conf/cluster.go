package conf

import (
	"encoding/json"
	"fmt"
	"net/url"
	"path/filepath"
	"strconv"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/rs/zerolog"
)

// Cluster settings: limits and defaults.
const (
	// DefaultLeaseTTL is the lease of a gateway's membership in etcd
	// without lease_ttl: a gateway cut off from etcd for longer stops
	// serving shared logical units.
	DefaultLeaseTTL = 10 * time.Second
	// MinLeaseTTL and MaxLeaseTTL bound lease_ttl.
	MinLeaseTTL = 2 * time.Second
	MaxLeaseTTL = 5 * time.Minute
	// DefaultClusterPrefix starts every key the cluster keeps in etcd.
	DefaultClusterPrefix = "/sanbridge/"
	// MaxPortGroup is the largest target port group id of a gateway: the
	// relative target port identifiers of its ports are port_group*256
	// plus 1 to [MaxClusterPorts], unique across the cluster.
	MaxPortGroup = 255
	// MaxClusterPorts is the number of target ports (target and portal
	// group pairs) a clustered gateway may have.
	MaxClusterPorts = 255
)

// ALUAMode says who changes the asymmetric access states of the target
// port groups (SPC-4 5.15.2.7).
type ALUAMode uint8

// ALUA modes.
const (
	// ALUAImplicit: the gateways set the states themselves (TPGS 01b);
	// SET TARGET PORT GROUPS is refused.
	ALUAImplicit ALUAMode = iota
	// ALUAExplicit: the states also follow SET TARGET PORT GROUPS from
	// the initiators (TPGS 11b).
	ALUAExplicit
)

// String returns the mode as the configuration spells it.
func (m ALUAMode) String() string {
	switch m {
	case ALUAImplicit:
		return "implicit"
	case ALUAExplicit:
		return "explicit"
	}
	return fmt.Sprintf("ALUAMode(%d)", uint8(m))
}

// MarshalJSON implements json.Marshaler.
func (m ALUAMode) MarshalJSON() ([]byte, error) { return json.Marshal(m.String()) }

// Cluster makes this gateway one of several in front of the same
// devices: the logical units of shared backends keep their persistent and
// SPC-2 reservations in etcd, every gateway answers for them as one SCSI
// target device (same designators, one reservation state, unit attentions
// reaching every host), and each gateway's ports form one target port
// group (ALUA). Password prints, marshals and logs redacted.
type Cluster struct {
	// NodeID names this gateway in the cluster, unique among its members.
	NodeID string `json:"node_id"`
	// PortGroup is the target port group identifier of this gateway's
	// ports, 1 to [MaxPortGroup], unique among the members. The relative
	// target port identifiers of its ports are PortGroup*256 plus 1, 2, ...
	PortGroup uint16 `json:"port_group"`
	// Endpoints are etcd's client URLs ("https://10.0.0.1:2379").
	Endpoints []string `json:"endpoints"`
	// TLS, when non-nil, configures TLS to etcd (https endpoints).
	TLS *ClusterTLS `json:"tls,omitempty"`
	// Username and Password authenticate to etcd; both or neither.
	Username string `json:"username,omitempty"`
	Password string `json:"-"`
	// LeaseTTL is the lease of the gateway's membership: a gateway that
	// could not renew it for this long has stopped serving shared logical
	// units, and the others count it out.
	LeaseTTL time.Duration `json:"lease_ttl"`
	// Prefix starts every key of this cluster in etcd (several clusters
	// may share one etcd); it starts and ends with '/'.
	Prefix string `json:"prefix"`
	// ALUA is the asymmetric access mode.
	ALUA ALUAMode `json:"alua"`
	// Preferred marks this gateway's port group preferred (PREF bit):
	// while any preferred group is healthy, the others are reported
	// active/non-optimized instead of active/optimized.
	Preferred bool `json:"preferred,omitempty"`

	// DeclRange is where the cluster block is defined.
	DeclRange hcl.Range `json:"-"`
}

// ClusterTLS configures TLS to etcd. Paths are absolute.
type ClusterTLS struct {
	// CAFile holds the certificates that sign etcd's server certificates;
	// empty means the system's roots.
	CAFile string `json:"ca_file,omitempty"`
	// CertFile and KeyFile are the client certificate and key, for etcd's
	// client certificate authentication; both or neither.
	CertFile string `json:"cert_file,omitempty"`
	KeyFile  string `json:"key_file,omitempty"`
	// ServerName overrides the name checked in etcd's certificates.
	ServerName string `json:"server_name,omitempty"`

	// DeclRange is where the tls block is defined.
	DeclRange hcl.Range `json:"-"`
}

// RelTargetPortID returns the relative target port identifier of the
// local target port with index i (0-based, in configuration order).
func (c *Cluster) RelTargetPortID(i int) uint16 {
	return c.PortGroup<<8 | uint16(i+1)
}

// String describes the cluster settings with the password redacted.
func (c Cluster) String() string {
	b, err := json.Marshal(c)
	if err != nil {
		return fmt.Sprintf("conf.Cluster{%v}", err)
	}
	return string(b)
}

// GoString implements fmt.GoStringer with the password redacted.
func (c Cluster) GoString() string {
	return fmt.Sprintf("conf.Cluster{NodeID:%q, PortGroup:%d, Endpoints:%q, Username:%q, Password:%q, LeaseTTL:%s, Prefix:%q, ALUA:%s, Preferred:%v}",
		c.NodeID, c.PortGroup, c.Endpoints, c.Username, redact(c.Password), c.LeaseTTL, c.Prefix, c.ALUA, c.Preferred)
}

// clusterJSON is Cluster's JSON form: the password redacted, the lease as
// a duration string.
type clusterJSON struct {
	NodeID    string      `json:"node_id"`
	PortGroup uint16      `json:"port_group"`
	Endpoints []string    `json:"endpoints"`
	TLS       *ClusterTLS `json:"tls,omitempty"`
	Username  string      `json:"username,omitempty"`
	Password  string      `json:"password,omitempty"`
	LeaseTTL  string      `json:"lease_ttl"`
	Prefix    string      `json:"prefix"`
	ALUA      ALUAMode    `json:"alua"`
	Preferred bool        `json:"preferred,omitempty"`
}

// MarshalJSON implements json.Marshaler with the password redacted.
func (c Cluster) MarshalJSON() ([]byte, error) {
	return json.Marshal(clusterJSON{
		NodeID: c.NodeID, PortGroup: c.PortGroup, Endpoints: c.Endpoints, TLS: c.TLS,
		Username: c.Username, Password: redact(c.Password), LeaseTTL: c.LeaseTTL.String(),
		Prefix: c.Prefix, ALUA: c.ALUA, Preferred: c.Preferred,
	})
}

// MarshalZerologObject implements zerolog.LogObjectMarshaler: never the
// password.
func (c *Cluster) MarshalZerologObject(e *zerolog.Event) {
	if c == nil {
		return
	}
	e.Str("node_id", c.NodeID).Uint16("port_group", c.PortGroup).Strs("endpoints", c.Endpoints).
		Str("username", c.Username).Bool("password", c.Password != "").Dur("lease_ttl", c.LeaseTTL).
		Str("prefix", c.Prefix).Stringer("alua", c.ALUA).Bool("tls", c.TLS != nil)
}

// SharedBackends returns the names of the backends shared with the other
// gateways, in configuration order.
func (c *Config) SharedBackends() []string {
	var out []string
	for i := range c.Backends {
		if c.Backends[i].Shared {
			out = append(out, c.Backends[i].Name)
		}
	}
	return out
}

// rawCluster is the cluster block's schema.
type rawCluster struct {
	NodeID    hcl.Expression `hcl:"node_id,optional"`
	PortGroup hcl.Expression `hcl:"port_group,optional"`
	Endpoints hcl.Expression `hcl:"endpoints,optional"`
	Username  hcl.Expression `hcl:"username,optional"`
	Password  hcl.Expression `hcl:"password,optional"`
	LeaseTTL  hcl.Expression `hcl:"lease_ttl,optional"`
	Prefix    hcl.Expression `hcl:"prefix,optional"`
	ALUA      hcl.Expression `hcl:"alua,optional"`
	Preferred hcl.Expression `hcl:"preferred,optional"`
	TLS       *rawClusterTLS `hcl:"tls,block"`
	DefRange  hcl.Range      `hcl:",def_range"`
}

type rawClusterTLS struct {
	CAFile     hcl.Expression `hcl:"ca_file,optional"`
	CertFile   hcl.Expression `hcl:"cert_file,optional"`
	KeyFile    hcl.Expression `hcl:"key_file,optional"`
	ServerName hcl.Expression `hcl:"server_name,optional"`
	DefRange   hcl.Range      `hcl:",def_range"`
}

// cluster resolves the cluster block (nil: none) and what depends on it:
// shared backends need one, and a clustered gateway has at most
// MaxClusterPorts target ports. It runs after backends and targets.
func (r *resolver) cluster(rc *rawCluster, shared map[string]hcl.Range) {
	if rc == nil {
		for name, rng := range shared {
			r.errorf(rng, "Shared backend without a cluster",
				"Backend %q is shared = true, but the file has no cluster block: only gateways that keep their reservations in etcd together can share a logical unit. Add a cluster block, or remove shared.", name)
		}
		return
	}
	c := &Cluster{LeaseTTL: DefaultLeaseTTL, Prefix: DefaultClusterPrefix, DeclRange: rc.DefRange}
	r.cfg.Cluster = c

	id, st := r.str(rc.NodeID, "node_id")
	switch {
	case st == attrAbsent:
		r.errorf(rc.DefRange, "Missing node_id",
			`Add node_id = "name" to the cluster block: this gateway's name among the cluster's members (letters, digits, '_' and '-', starting with a letter or digit).`)
	case st == attrOK && !isNodeID(id):
		r.errorf(rc.NodeID.Range(), "Invalid node_id",
			"node_id is made of letters, digits, '_' and '-', starts with a letter or digit and has at most 64 bytes; it is %q.", id)
	case st == attrOK:
		c.NodeID = id
	}

	if g, st := r.integer(rc.PortGroup, "port_group", 1, MaxPortGroup); st == attrOK {
		c.PortGroup = uint16(g)
	} else if st == attrAbsent {
		// A numeric node id names its port group.
		if n, err := strconv.ParseUint(c.NodeID, 10, 8); err == nil && n >= 1 {
			c.PortGroup = uint16(n)
		} else {
			r.errorf(rc.DefRange, "Missing port_group",
				"Add port_group = N (1 to %d) to the cluster block: the target port group of this gateway, different on every gateway of the cluster (a node_id that is such a number serves as its port group).", MaxPortGroup)
		}
	}

	r.clusterEndpoints(c, rc)

	user, ust := r.str(rc.Username, "username")
	pass, pst := r.str(rc.Password, "password")
	switch {
	case ust == attrOK && pst == attrOK:
		if user == "" || pass == "" {
			r.errorf(rc.DefRange, "Empty etcd credentials", "username and password must not be empty; remove both to connect without authentication.")
		}
		c.Username, c.Password = user, pass
	case ust == attrOK && pst == attrAbsent:
		r.errorf(rc.Username.Range(), "Missing password", "username is set but password is not; etcd authentication needs both.")
	case ust == attrAbsent && pst == attrOK:
		r.errorf(rc.Password.Range(), "Missing username", "password is set but username is not; etcd authentication needs both.")
	}

	if s, st := r.str(rc.LeaseTTL, "lease_ttl"); st == attrOK {
		d, err := time.ParseDuration(s)
		switch {
		case err != nil:
			r.errorf(rc.LeaseTTL.Range(), "Invalid lease_ttl", `lease_ttl is a duration such as "10s" or "1m": %v.`, err)
		case d < MinLeaseTTL || d > MaxLeaseTTL || d%time.Second != 0:
			r.errorf(rc.LeaseTTL.Range(), "Invalid lease_ttl", "lease_ttl must be a whole number of seconds from %s to %s; it is %s.", MinLeaseTTL, MaxLeaseTTL, d)
		default:
			c.LeaseTTL = d
		}
	}

	if p, st := r.str(rc.Prefix, "prefix"); st == attrOK {
		if len(p) < 2 || p[0] != '/' || p[len(p)-1] != '/' || !printableASCII(p) {
			r.errorf(rc.Prefix.Range(), "Invalid prefix", `prefix is the start of every key of this cluster in etcd: printable ASCII that starts and ends with '/', such as "/sanbridge/prod/"; it is %q.`, p)
		} else {
			c.Prefix = p
		}
	}

	if m, st := r.str(rc.ALUA, "alua"); st == attrOK {
		switch m {
		case "implicit":
			c.ALUA = ALUAImplicit
		case "explicit":
			c.ALUA = ALUAExplicit
		default:
			r.errorf(rc.ALUA.Range(), "Invalid alua", `alua is "implicit" (the gateways set the access states) or "explicit" (initiators may also set them with SET TARGET PORT GROUPS); it is %q.`, m)
		}
	}
	if b, st := r.boolean(rc.Preferred, "preferred"); st == attrOK {
		c.Preferred = b
	}

	if rc.TLS != nil {
		c.TLS = r.clusterTLS(rc.TLS)
	}
	if c.TLS == nil {
		for _, e := range c.Endpoints {
			if u, err := url.Parse(e); err == nil && u.Scheme == "https" {
				r.errorf(rc.Endpoints.Range(), "https endpoint without tls", "Endpoint %q uses https; add a tls block (an empty one uses the system's root certificates).", e)
				break
			}
		}
	}

	if len(shared) == 0 {
		r.warnf(rc.DefRange, "No shared backend",
			"The cluster block is set but no backend is shared = true, so this gateway shares nothing with the others. Mark the backends every gateway serves with shared = true.")
	}
	ports := 0
	for i := range r.cfg.Targets {
		ports += max(len(r.cfg.TargetGroups(&r.cfg.Targets[i])), 1)
	}
	if ports > MaxClusterPorts {
		r.errorf(rc.DefRange, "Too many target ports",
			"A clustered gateway numbers its target ports (each target in each of its portal groups) port_group*256 + 1 to %d; this file has %d. Use fewer targets or portal groups.", MaxClusterPorts, ports)
	}
}

// clusterEndpoints resolves endpoints: at least one http or https URL
// with a host and port.
func (r *resolver) clusterEndpoints(c *Cluster, rc *rawCluster) {
	elems, st := r.stringList(rc.Endpoints, "endpoints", "a list of URLs")
	if st == attrAbsent {
		r.errorf(rc.DefRange, "Missing endpoints",
			`Add endpoints = ["http://127.0.0.1:2379"] to the cluster block: etcd's client URLs (https with a tls block).`)
		return
	}
	if st != attrOK {
		return
	}
	if len(elems) == 0 {
		r.errorf(rc.Endpoints.Range(), "Missing endpoints", "endpoints must list at least one etcd client URL.")
	}
	seen := map[string]hcl.Range{}
	for _, e := range elems {
		if e.null {
			r.errorf(e.rng, "Invalid endpoint", "An endpoint must be a URL, not null.")
			continue
		}
		u, err := url.Parse(e.value)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Port() == "" ||
			(u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.User != nil {
			r.errorf(e.rng, "Invalid endpoint", `An endpoint is an etcd client URL, scheme, host and port only, such as "http://127.0.0.1:2379" or "https://etcd1.example.com:2379"; it is %q.`, e.value)
			continue
		}
		if prev, dup := seen[e.value]; dup {
			r.errorf(e.rng, "Duplicate endpoint", "%q is already listed at %s.", e.value, prev)
			continue
		}
		seen[e.value] = e.rng
		c.Endpoints = append(c.Endpoints, e.value)
	}
}

// clusterTLS resolves the tls block of the cluster block.
func (r *resolver) clusterTLS(rt *rawClusterTLS) *ClusterTLS {
	t := &ClusterTLS{DeclRange: rt.DefRange}
	path := func(expr hcl.Expression, name string) string {
		s, st := r.str(expr, name)
		if st != attrOK {
			return ""
		}
		if !filepath.IsAbs(s) {
			r.errorf(expr.Range(), "Invalid "+name, "%s must be an absolute path; it is %q.", name, s)
			return ""
		}
		return filepath.Clean(s)
	}
	t.CAFile = path(rt.CAFile, "ca_file")
	t.CertFile = path(rt.CertFile, "cert_file")
	t.KeyFile = path(rt.KeyFile, "key_file")
	if present(rt.CertFile) != present(rt.KeyFile) {
		r.errorf(rt.DefRange, "Incomplete client certificate", "cert_file and key_file go together: set both for client certificate authentication, or neither.")
	}
	if s, st := r.str(rt.ServerName, "server_name"); st == attrOK {
		if !isDNSName(s) {
			r.errorf(rt.ServerName.Range(), "Invalid server_name", "server_name is the DNS name to check in etcd's certificates; it is %q.", s)
		} else {
			t.ServerName = s
		}
	}
	return t
}

// isNodeID reports whether s can name a cluster member: 1 to 64 letters,
// digits, '_' and '-', starting with a letter or digit.
func isNodeID(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		alnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		if !alnum && (i == 0 || c != '_' && c != '-') {
			return false
		}
	}
	return true
}

// printableASCII reports whether s is printable ASCII without spaces.
func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] > '~' {
			return false
		}
	}
	return true
}

// clusterSettings resolves the shared attributes of the backend blocks
// and the cluster block.
func (r *resolver) clusterSettings(raw *rawFile) {
	shared := map[string]hcl.Range{}
	for _, rb := range raw.Backends {
		if rb == nil {
			continue
		}
		on, st := r.boolean(rb.Shared, "shared")
		if st != attrOK || !on {
			continue
		}
		for i := range r.cfg.Backends {
			b := &r.cfg.Backends[i]
			if b.Inline || b.Name != rb.Name || b.DeclRange != rb.DefRange {
				continue
			}
			b.Shared = true
			shared[b.Name] = rb.Shared.Range()
			if b.Emulated != nil && b.Emulated.File == "" {
				r.warnf(rb.Shared.Range(), "Shared disk in memory",
					"Backend %q is an emulated disk in memory: every gateway has its own copy, so initiators see different data through different gateways. Give it a file that every gateway opens (a shared file system), or use a device.", b.Name)
			}
		}
	}
	r.cluster(raw.Cluster, shared)
}
