package conf

import (
	"encoding/json"
	"net"
	"net/netip"
	"strconv"
	"time"

	"github.com/hashicorp/hcl/v2"
)

// Service blocks: the Prometheus metrics listener and the iSNS
// registration.
//
//	metrics {
//	  listen = "127.0.0.1:9163"
//	}
//	isns {
//	  server       = "isns.example.com"   # host[:port], port 3205 by default
//	  entity_id    = "gw1.example.com"    # default: the host name
//	  esi_listen   = "0.0.0.0:3206"       # answer ESI here; absent: refresh instead
//	  esi_interval = "60s"
//	}

// Defaults and limits of the service blocks.
const (
	// DefaultISNSPort is the iSNS server port (RFC 4171 5.2).
	DefaultISNSPort = 3205
	// DefaultESIInterval is the ESI interval asked for without esi_interval.
	DefaultESIInterval = 60 * time.Second
	// MinESIInterval and MaxESIInterval bound esi_interval.
	MinESIInterval = time.Second
	MaxESIInterval = time.Hour
)

// Metrics configures the Prometheus metrics listener.
type Metrics struct {
	// Listen is the IP:port the HTTP listener binds ("127.0.0.1:9163");
	// port 0 picks a free one (tests). It serves /metrics, without
	// authentication: keep it on a management network.
	Listen string `json:"listen"`

	// DeclRange is where the metrics block is defined.
	DeclRange hcl.Range `json:"-"`
	// ListenRange is the listen attribute, for diagnostics at bind time.
	ListenRange hcl.Range `json:"-"`
}

// ISNS configures the registration of the gateway's targets and portals
// with an iSNS server (RFC 4171). Every portal must then have an address
// initiators can reach: a specific listen address or an advertise one.
type ISNS struct {
	// Server is the iSNS server, host:port (the port defaults to 3205).
	Server string `json:"server"`
	// EntityID is the Network Entity's identifier; empty means the host
	// name, decided when the gateway starts.
	EntityID string `json:"entity_id,omitempty"`
	// ESIListen, when set, is the IP:port the gateway answers the server's
	// Entity Status Inquiries on (port 0: a free port, registered as the
	// portals' ESI port). Empty: no ESI; the registration is refreshed
	// within the server's registration period instead.
	ESIListen string `json:"esi_listen,omitempty"`
	// ESIInterval is the ESI interval asked of the server.
	ESIInterval time.Duration `json:"esi_interval"`

	// DeclRange is where the isns block is defined.
	DeclRange hcl.Range `json:"-"`
}

// MarshalJSON implements json.Marshaler with esi_interval as a duration
// string ("60s").
func (n ISNS) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Server      string `json:"server"`
		EntityID    string `json:"entity_id,omitempty"`
		ESIListen   string `json:"esi_listen,omitempty"`
		ESIInterval string `json:"esi_interval"`
	}{n.Server, n.EntityID, n.ESIListen, n.ESIInterval.String()})
}

type rawMetrics struct {
	Listen   hcl.Expression `hcl:"listen,optional"`
	DefRange hcl.Range      `hcl:",def_range"`
}

type rawISNS struct {
	Server      hcl.Expression `hcl:"server,optional"`
	EntityID    hcl.Expression `hcl:"entity_id,optional"`
	ESIListen   hcl.Expression `hcl:"esi_listen,optional"`
	ESIInterval hcl.Expression `hcl:"esi_interval,optional"`
	DefRange    hcl.Range      `hcl:",def_range"`
}

// serviceSettings resolves the metrics and isns blocks. It runs after
// the portals.
func (r *resolver) serviceSettings(raw *rawFile) {
	if raw.Metrics != nil {
		r.metrics(raw.Metrics)
	}
	if raw.ISNS != nil {
		r.isns(raw.ISNS, raw.Portals)
	}
}

func (r *resolver) metrics(rm *rawMetrics) {
	m := &Metrics{DeclRange: rm.DefRange}
	r.cfg.Metrics = m
	listen, st := r.str(rm.Listen, "listen")
	switch st {
	case attrAbsent:
		r.errorf(rm.DefRange, "Missing listen address",
			`Add listen = "IP:port" to the metrics block, for example listen = "127.0.0.1:9163"; remove the block to serve no metrics.`)
	case attrOK:
		m.ListenRange = rm.Listen.Range()
		ap, err := netip.ParseAddrPort(listen)
		if err != nil {
			r.errorf(rm.Listen.Range(), "Invalid listen address",
				`listen must be an IP address and a port, such as "127.0.0.1:9163" or "[::1]:9163" (host names are not resolved): %v.`, err)
			return
		}
		m.Listen = ap.String()
		for i, p := range r.cfg.Portals {
			if lp, ok := r.listen[i]; ok && lp.Port() == ap.Port() && ap.Port() != 0 && (lp == ap || listenOverlaps(lp.Addr(), ap.Addr())) {
				r.errorf(rm.Listen.Range(), "Metrics listen address taken",
					"Portal %q already listens on %s (%s); give the metrics listener another port.", p.Name, lp, p.ListenRange)
			}
		}
	}
}

func (r *resolver) isns(ri *rawISNS, portals []*rawPortal) {
	n := &ISNS{ESIInterval: DefaultESIInterval, DeclRange: ri.DefRange}
	r.cfg.ISNS = n

	server, st := r.str(ri.Server, "server")
	switch st {
	case attrAbsent:
		r.errorf(ri.DefRange, "Missing server",
			`Add server = "host" or "host:port" to the isns block: the iSNS server to register with (port 3205 by default).`)
	case attrOK:
		if s, msg := isnsServer(server); msg != "" {
			r.errorf(ri.Server.Range(), "Invalid server", "%s", msg)
		} else {
			n.Server = s
		}
	}

	if id, st := r.str(ri.EntityID, "entity_id"); st == attrOK {
		if id == "" || len(id) > 255 || !printableASCII(id) {
			r.errorf(ri.EntityID.Range(), "Invalid entity_id",
				"entity_id names this gateway's Network Entity in iSNS: 1 to 255 printable ASCII characters without spaces, the same across restarts (the host's name, for example); it is %q.", id)
		} else {
			n.EntityID = id
		}
	}

	if l, st := r.str(ri.ESIListen, "esi_listen"); st == attrOK {
		ap, err := netip.ParseAddrPort(l)
		if err != nil {
			r.errorf(ri.ESIListen.Range(), "Invalid esi_listen",
				`esi_listen is the IP:port the iSNS server's status inquiries arrive on, such as "0.0.0.0:3206" (it must be reachable at every portal's address): %v.`, err)
		} else {
			n.ESIListen = ap.String()
		}
	}

	if s, st := r.str(ri.ESIInterval, "esi_interval"); st == attrOK {
		d, err := time.ParseDuration(s)
		switch {
		case err != nil:
			r.errorf(ri.ESIInterval.Range(), "Invalid esi_interval", `esi_interval is a duration such as "60s" or "5m": %v.`, err)
		case d < MinESIInterval || d > MaxESIInterval || d%time.Second != 0:
			r.errorf(ri.ESIInterval.Range(), "Invalid esi_interval", "esi_interval must be a whole number of seconds from %s to %s; it is %s.", MinESIInterval, MaxESIInterval, d)
		default:
			n.ESIInterval = d
			if !present(ri.ESIListen) {
				r.warnf(ri.ESIInterval.Range(), "esi_interval without esi_listen",
					"esi_interval has no effect without esi_listen: the registration is refreshed by queries instead of answering status inquiries.")
			}
		}
	}

	// iSNS publishes portal addresses: a portal on a wildcard address
	// without advertise has none to give.
	for i, p := range r.cfg.Portals {
		ap, ok := r.listen[i]
		if !ok || p.Advertise != "" || !ap.Addr().IsUnspecified() {
			continue
		}
		rng := p.DeclRange
		if i < len(portals) && portals[i] != nil {
			rng = portals[i].DefRange
		}
		r.errorf(rng, "Portal without an address for iSNS",
			"Portal %q listens on %s, which is not an address initiators can connect to, and the isns block registers every portal. Add advertise = \"host:port\" to the portal.", p.Name, ap)
	}
}

// isnsServer validates an iSNS server address, adds the default port, and
// returns it or what is wrong.
func isnsServer(s string) (string, string) {
	const how = `server is the iSNS server's host or host:port, such as "192.0.2.5", "isns.example.com:3205" or "[2001:db8::5]"`
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		host, port = s, strconv.Itoa(DefaultISNSPort)
		if a, err := netip.ParseAddr(s); err == nil && a.Is6() {
			host = a.String()
		}
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 {
		return "", how + "; the port " + strconv.Quote(port) + " is not a number from 1 to 65535."
	}
	if a, err := netip.ParseAddr(host); err == nil {
		if a.IsUnspecified() {
			return "", how + "; " + host + " is not an address to connect to."
		}
	} else if !isDNSName(host) {
		return "", how + "; " + strconv.Quote(host) + " is neither an IP address nor a DNS name."
	}
	return net.JoinHostPort(host, port), ""
}
