package conf

import "github.com/hashicorp/hcl/v2"

// The raw* structs are the gohcl schema. Attributes are hcl.Expression so
// that validation evaluates and converts them itself: one clear diagnostic
// per problem, no cascade from a failed conversion, and "absent" and
// "null" mean the same thing. Blocks that may appear once are pointers
// (gohcl reports duplicates, naming the first definition), except LUN
// backends, which are counted together.

type rawFile struct {
	LogLevel  hcl.Expression   `hcl:"log_level,optional"`
	Portals   []*rawPortal     `hcl:"portal,block"`
	Discovery *rawDiscovery    `hcl:"discovery,block"`
	Groups    []*rawGroup      `hcl:"initiator_group,block"`
	Backends  []*rawBackend    `hcl:"backend,block"`
	Targets   []*rawTarget     `hcl:"target,block"`
	Cluster   *rawCluster      `hcl:"cluster,block"`
	Metrics   *rawMetrics      `hcl:"metrics,block"`
	ISNS      *rawISNS         `hcl:"isns,block"`
	Limits    *rawLimits       `hcl:"limits,block"`
	Auto      []*rawAutoExport `hcl:"auto_export,block"`
	Admin     *rawAdmin        `hcl:"admin,block"`
}

type rawGroup struct {
	Name       string         `hcl:"name,label"`
	NameRange  hcl.Range      `hcl:"name,label_range"`
	Initiators hcl.Expression `hcl:"initiators,optional"`
	DefRange   hcl.Range      `hcl:",def_range"`
}

type rawBackend struct {
	Name      string         `hcl:"name,label"`
	NameRange hcl.Range      `hcl:"name,label_range"`
	Emulated  []*rawEmulated `hcl:"emulated,block"`
	Device    []*rawDevice   `hcl:"device,block"`
	Shared    hcl.Expression `hcl:"shared,optional"`
	DefRange  hcl.Range      `hcl:",def_range"`
}

type rawPortal struct {
	Name      string         `hcl:"name,label"`
	NameRange hcl.Range      `hcl:"name,label_range"`
	Listen    hcl.Expression `hcl:"listen,optional"`
	Advertise hcl.Expression `hcl:"advertise,optional"`
	Group     hcl.Expression `hcl:"group,optional"`
	DefRange  hcl.Range      `hcl:",def_range"`
}

type rawDiscovery struct {
	CHAP     *rawCHAP  `hcl:"chap,block"`
	DefRange hcl.Range `hcl:",def_range"`
}

type rawCHAP struct {
	Username       hcl.Expression `hcl:"username,optional"`
	Secret         hcl.Expression `hcl:"secret,optional"`
	MutualUsername hcl.Expression `hcl:"mutual_username,optional"`
	MutualSecret   hcl.Expression `hcl:"mutual_secret,optional"`
	DefRange       hcl.Range      `hcl:",def_range"`
}

type rawTarget struct {
	Name       string          `hcl:"name,label"`
	NameRange  hcl.Range       `hcl:"name,label_range"`
	Alias      hcl.Expression  `hcl:"alias,optional"`
	Portals    hcl.Expression  `hcl:"portals,optional"`
	CHAP       *rawCHAP        `hcl:"chap,block"`
	Initiators []*rawInitiator `hcl:"initiator,block"`
	LUNs       []*rawLUN       `hcl:"lun,block"`
	Views      []*rawView      `hcl:"view,block"`
	DefRange   hcl.Range       `hcl:",def_range"`
}

type rawView struct {
	Group      string    `hcl:"group,label"`
	GroupRange hcl.Range `hcl:"group,label_range"`
	LUNs       []*rawLUN `hcl:"lun,block"`
	DefRange   hcl.Range `hcl:",def_range"`
}

type rawInitiator struct {
	Name      string    `hcl:"name,label"`
	NameRange hcl.Range `hcl:"name,label_range"`
	CHAP      *rawCHAP  `hcl:"chap,block"`
	DefRange  hcl.Range `hcl:",def_range"`
}

type rawLUN struct {
	ID       string         `hcl:"id,label"`
	IDRange  hcl.Range      `hcl:"id,label_range"`
	Backend  hcl.Expression `hcl:"backend,optional"`
	ReadOnly hcl.Expression `hcl:"read_only,optional"`
	Emulated []*rawEmulated `hcl:"emulated,block"`
	Device   []*rawDevice   `hcl:"device,block"`
	DefRange hcl.Range      `hcl:",def_range"`
}

type rawDevice struct {
	WWN        hcl.Expression `hcl:"wwn,optional"`
	Serial     hcl.Expression `hcl:"serial,optional"`
	Path       hcl.Expression `hcl:"path,optional"`
	AllowInUse hcl.Expression `hcl:"allow_in_use,optional"`
	ReadOnly   hcl.Expression `hcl:"read_only,optional"`
	QueueDepth hcl.Expression `hcl:"queue_depth,optional"`
	Allow      hcl.Expression `hcl:"allow_opcodes,optional"`
	Deny       hcl.Expression `hcl:"deny_opcodes,optional"`
	Timeout    hcl.Expression `hcl:"timeout,optional"`
	LongTime   hcl.Expression `hcl:"long_timeout,optional"`
	USB        []*rawUSB      `hcl:"usb,block"`
	DefRange   hcl.Range      `hcl:",def_range"`
}

type rawUSB struct {
	VID      hcl.Expression `hcl:"vid,optional"`
	PID      hcl.Expression `hcl:"pid,optional"`
	Serial   hcl.Expression `hcl:"serial,optional"`
	Path     hcl.Expression `hcl:"path,optional"`
	LUN      hcl.Expression `hcl:"lun,optional"`
	DefRange hcl.Range      `hcl:",def_range"`
}

type rawEmulated struct {
	Size      hcl.Expression `hcl:"size,optional"`
	BlockSize hcl.Expression `hcl:"block_size,optional"`
	File      hcl.Expression `hcl:"file,optional"`
	ReadOnly  hcl.Expression `hcl:"read_only,optional"`
	Vendor    hcl.Expression `hcl:"vendor,optional"`
	Product   hcl.Expression `hcl:"product,optional"`
	Revision  hcl.Expression `hcl:"revision,optional"`
	Serial    hcl.Expression `hcl:"serial,optional"`
	DefRange  hcl.Range      `hcl:",def_range"`
}
