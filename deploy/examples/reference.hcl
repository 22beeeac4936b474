# sanbridge configuration reference: every block and attribute.
#
# The file is HCL (https://github.com/hashicorp/hcl) native syntax. Blocks
# are written over several lines: HCL allows a single-line block
# `name { a = 1 }` only with one attribute. Attributes take constant
# values (no variables or functions). `sanbridge check -config FILE`
# validates a file and prints every problem with its line.
#
# This file is itself a valid configuration (the tests parse it).

# log_level: optional, default "info". One of "trace", "debug", "info",
# "warn", "error".
log_level = "info"

# portal "<name>": one listening socket (a network portal). At least one is
# required. The name (a letter, then letters, digits, '_' or '-') is how
# targets refer to the portal.
portal "lo" {
  # listen: required. IP address and port, IPv6 in brackets
  # ("[::1]:3260"). Host names are not resolved. "0.0.0.0:3260" listens on
  # every IPv4 address, "[::]:3260" on every IPv4 and IPv6 address. Port 0
  # lets the kernel choose (tests). Two portals may not listen on the same
  # or an overlapping address and port.
  listen = "127.0.0.1:3260"

  # advertise: optional. The host:port given to initiators as
  # TargetAddress in SendTargets, for NAT and port forwards; an IP address
  # or a DNS name, with a port. Default: the listen address when it is a
  # specific address with a non-zero port; otherwise (0.0.0.0, [::], port 0)
  # the local address of the connection each discovery session arrived on.
  advertise = "127.0.0.1:3260"

  # group: optional, default 1. The target portal group tag, 1 to 65535.
  # Portals with the same tag form a portal group; a target is reachable
  # through whole portal groups, so a target's portals list must include
  # every portal of each group it uses.
  group = 1
}

# discovery: optional, at most one. Settings for discovery sessions
# (SendTargets).
discovery {
  # chap: optional. When present, every discovery session must
  # authenticate with CHAP. Same attributes as a target's chap block.
  chap {
    username = "discovery"
    secret   = "discovery-Secret1"
  }
}

# initiator_group "<name>": optional, any number. A named set of initiators
# for LUN masking: a target's view "<name>" block says which LUNs the
# group's members see in that target. The name is like a portal's (a
# letter, then letters, digits, '_' or '-'), unique among groups.
initiator_group "cluster" {
  # initiators: the members, a list of exact iSCSI names (compared in lower
  # case, like every iSCSI name) and name patterns. In a pattern '*'
  # matches any run of characters, also none; every other character
  # matches itself (there is no '?' and no [...]), and the text before the
  # first '*' must start like an iSCSI name ("iqn.", "eui." or "naa.").
  #
  # An initiator belongs to at most one group. An exact name listed in a
  # group puts the initiator in that group even if another group's
  # pattern matches it too; the same exact name in two groups is an error,
  # and so are patterns of two groups that some name could match (such as
  # "iqn.1998-01.com.vmware:*" and "*:esx*"; `sanbridge check` shows a
  # name that matches both). A group with no initiators, or with no view
  # in any target, is warned about.
  initiators = [
    "iqn.1998-01.com.vmware:*",
    "iqn.1994-05.com.redhat:reference-host",
  ]
}

# backend "<name>": optional, any number. A logical unit defined once and
# mapped by name (backend = "<name>") from any number of lun blocks, in
# any targets and views, at any LUN numbers: every such LUN is the same
# logical unit (the same data, reservations and unit attentions). The
# name is like a portal's, unique among backends. A backend holds exactly
# one emulated or device block, written as in a lun (below). A backend no
# lun maps is warned about.
#
# A lun may instead hold its emulated or device block itself (an inline
# backend), which only that lun maps. Each device and each backing file
# may be selected by one block only: two device blocks with the same wwn,
# serial or path, or two emulated blocks with the same file, are an error
# (define a backend and map it wherever it is needed).
backend "shelf1" {
  # shared: optional, default false; needs a cluster block (below). Every
  # gateway of the cluster serves this backend as one logical unit: the
  # same device (a dual-ported disk, an FC LUN seen by each gateway) or
  # the same file on a shared file system, with the same backend name on
  # every gateway. Its persistent and SPC-2 reservations live in etcd,
  # unit attentions and PREEMPT AND ABORT reach every gateway, and a
  # gateway that loses etcd stops admitting commands for it (NOT READY,
  # ASYMMETRIC ACCESS STATE TRANSITION, which initiators retry) until it
  # has caught up. Only backend blocks can be shared, not inline ones.
  shared = true

  device {
    wwn = "naa.5000c50015ea71b4"

    # read_only: optional, default false, in device and emulated blocks
    # alike. Write-protects the logical unit: every LUN that maps it is
    # read-only, whatever its lun block says.
    read_only = false
  }
}

# target "<iSCSI name>": one exported target. The name is an iSCSI name
# (iqn.YYYY-MM.reversed.domain[:anything], eui.<16 hex>, naa.<16 or 32
# hex>, ASCII only, at most 223 bytes); it is compared and reported in
# lower case. Target names must be unique.
target "iqn.2026-11.io.sanbridge:reference" {
  # alias: optional. The TargetAlias shown by initiators, at most 255
  # bytes of UTF-8 without control characters.
  alias = "reference disk"

  # portals: optional, default every portal. The names of the portals the
  # target is reachable through (whole portal groups, see portal.group).
  portals = ["lo"]

  # chap: optional. When present, initiators without a chap block of their
  # own must authenticate with these credentials.
  chap {
    # username, secret: required. The initiator's CHAP name (CHAP_N) and
    # secret. Secrets are 12 to 255 bytes (RFC 7143 12.1.3 asks for at
    # least 96 random bits; shorter secrets are refused when the file is
    # loaded). Prefer 12 to 16 random characters: some initiators accept no
    # more than 16.
    username = "reference-hosts"
    secret   = "reference-Secret1"

    # mutual_username, mutual_secret: optional, both or neither. With them
    # the target authenticates itself to the initiator (mutual CHAP). The
    # mutual secret must differ from every one-way secret in the file (RFC
    # 7143 12.1.3 forbids a secret in both directions).
    mutual_username = "sanbridge-reference"
    mutual_secret   = "reference-Target-2"
  }

  # initiator "<iSCSI name>": optional, any number. The access list: when a
  # target has at least one initiator block, only those initiators may log
  # in to it or see it in discovery. Without any, every initiator may
  # (`sanbridge check` warns about such open targets).
  initiator "iqn.1994-05.com.redhat:reference-host" {
    # chap: optional. Overrides the target's chap for this initiator.
    chap {
      username = "reference-host"
      secret   = "reference-Host-key"
    }
  }

  # lun "<id>": one LUN of the target's default map, which initiators in
  # no initiator group see, and those in a group without a view in this
  # target (see view below). The id is a quoted decimal label from 0 to
  # 16383 (0-255 use peripheral device addressing, 256-16383 flat space
  # addressing, SAM-5 4.7.7), unique within the map. Each lun has exactly
  # one backend: an emulated or device block (inline), or backend =
  # "<name>" naming a backend block.
  lun "0" {
    # emulated: an emulated SBC disk backed by memory or a file.
    emulated {
      # size: required. A positive multiple of block_size: a number of
      # bytes, or a string with a unit: B, KiB, MiB, GiB, TiB, PiB (powers
      # of 1024) or KB, MB, GB, TB, PB (powers of 1000), e.g. "64MiB".
      size = "64MiB"

      # block_size: optional, default 512. 512 or 4096.
      block_size = 512

      # file: optional. Absolute path of the backing file; without it the
      # disk lives in memory and is lost when sanbridge stops.
      file = "/var/lib/sanbridge/reference0.img"

      # read_only: optional, default false. Write-protects the disk.
      read_only = false

      # vendor (at most 8 bytes), product (16), revision (4): optional
      # INQUIRY identification, printable ASCII. serial: optional unit
      # serial number (VPD page 80h), at most 64 bytes of printable ASCII
      # without spaces, unique in the file. Empty or absent: the backend's
      # defaults.
      vendor   = "SANBRIDG"
      product  = "EMULATED DISK"
      revision = "0001"
      serial   = "reference-lun0"
    }
  }

  lun "1" {
    # device: a local SCSI device whose commands pass straight through
    # (SG_IO). Select it by stable identity as `sanbridge scan` shows it;
    # every selector given must match, and exactly one device must match.
    device {
      # wwn: the logical unit's preferred designator (VPD page 83h).
      wwn = "naa.5000c50015ea71a0"

      # serial: optional, the unit serial number (VPD page 80h).
      # serial = "Z1Z3R2K80000C4407QBT"

      # path: optional, a device node or udev link such as
      # "/dev/disk/by-path/pci-0000:00:04.0-scsi-0:2:0:0" (/dev/sgN works
      # but renumbers across reboots).
      # path = "/dev/disk/by-path/pci-0000:00:04.0-scsi-0:2:0:0"

      # allow_in_use: optional, default false. Devices that this host
      # mounts, swaps on, holds in md/dm/LVM, or that come over iSCSI
      # themselves are refused unless this is true.
      allow_in_use = false

      # read_only: optional, default false. See backend above.
      read_only = false

      # queue_depth: optional, default 32 (1-256). How many commands the
      # gateway keeps in flight to the device; initiators beyond it wait
      # their turn, round-robin.
      queue_depth = 32

      # allow_opcodes, deny_opcodes: optional operation code lists ("0x04",
      # "04h" or 4). The gateway refuses commands that erase or reflash a
      # device wholesale (FORMAT UNIT on disks and CD/DVD, SANITIZE, WRITE
      # BUFFER, SECURITY PROTOCOL OUT, ATA PASS-THROUGH) and vendor-specific
      # ones (C0h-FFh) with ILLEGAL REQUEST, INVALID COMMAND OPERATION CODE
      # unless allow_opcodes lists them; deny_opcodes refuses more.
      # allow_opcodes = ["0x04"]
      # deny_opcodes  = ["0x3c"]

      # timeout, long_timeout: optional durations (1s to 24h). timeout
      # bounds an ordinary command (default 60s for disks, 15m for tapes,
      # 5m for changers); long_timeout bounds the commands that may run for
      # hours: tape REWIND, ERASE, SPACE, LOCATE, LOAD, FORMAT MEDIUM and
      # tape reads and writes, changer MOVE MEDIUM and INITIALIZE ELEMENT
      # STATUS, FORMAT UNIT and SANITIZE (default 4h for tapes, 2h for
      # changers, 1h otherwise).
      # timeout      = "60s"
      # long_timeout = "4h"

      # usb: instead of wwn, serial and path, a logical unit of a USB
      # mass-storage device that sanbridge drives itself over the
      # Bulk-Only Transport, without the kernel's usb-storage/uas driver
      # (detached while sanbridge holds the device; needs a build with USB
      # support, see sanbridge scan --usb). Every selector given must
      # match, and exactly one interface must match them all.
      # usb {
      #   vid    = "0781"                 # idVendor, hex
      #   pid    = "5567"                 # idProduct, hex
      #   serial = "4C530001230913117134" # the device's serial string
      #   path   = "1-4.2:1.0"            # bus path of the interface or device
      #   lun    = 0                      # optional, default 0 (0-15)
      # }
    }
  }

  lun "2" {
    # backend: the name of a backend block; instead of an emulated or
    # device block.
    backend = "shelf1"

    # read_only: optional, default false. Initiators may read but not
    # write through this LUN; other LUNs that map the same backend are not
    # affected. It cannot make a read-only backend writable.
    read_only = true
  }

  # view "<group>": optional, at most one per initiator group. The LUN map
  # that the members of the initiator group "<group>" see in this target,
  # instead of the default map (lun blocks above). Its lun blocks are
  # written like the target's, with their own LUN numbers: the same
  # backend may be at a different LUN number here. A view without lun
  # blocks shows the group no LUN. When the target has initiator blocks, a
  # view for a group none of them belongs to is warned about (nobody who
  # may log in would see it).
  view "cluster" {
    lun "0" {
      backend = "shelf1"
    }

    lun "1" {
      emulated {
        size = "1GiB"
      }
    }
  }
}

# cluster: optional, at most one. Makes this gateway one of several in
# front of the same devices (dual-ported SAS disks, FC arrays with two
# controllers), so hosts can use multipath across the gateways: every
# gateway answers for the shared backends as one SCSI target device. The
# cluster's state is kept in etcd (v3 API, 3.4 or later).
cluster {
  # node_id: required. This gateway's name among the members: letters,
  # digits, '_' and '-', starting with a letter or digit, at most 64
  # bytes, unique in the cluster.
  node_id = "gw-a"

  # port_group: required unless node_id is a number from 1 to 255 (which
  # then serves as port_group). The target port group of this gateway's
  # ports (REPORT TARGET PORT GROUPS), 1 to 255, different on every
  # gateway. The relative target port identifiers of its ports are
  # port_group*256 + 1, + 2, ... (each target in each portal group it
  # uses, at most 255). Give each gateway's portals their own portal
  # group tags too (portal.group), so that target port names
  # ("target,t,0xTAG") differ between gateways: a gateway refuses to join
  # a cluster where another member uses one of its port names.
  port_group = 1

  # endpoints: required. etcd's client URLs, scheme, host and port only;
  # https needs a tls block.
  endpoints = ["https://10.0.0.1:2379", "https://10.0.0.2:2379", "https://10.0.0.3:2379"]

  # tls: optional. TLS to etcd; an empty block uses the system's root
  # certificates. Paths are absolute.
  tls {
    # ca_file: optional. The certificates that sign etcd's server
    # certificates.
    ca_file = "/etc/sanbridge/etcd-ca.pem"

    # cert_file, key_file: optional, both or neither. A client
    # certificate for etcd's client certificate authentication.
    cert_file = "/etc/sanbridge/etcd-client.pem"
    key_file  = "/etc/sanbridge/etcd-client-key.pem"

    # server_name: optional. The name checked in etcd's certificates
    # instead of the endpoint's host.
    # server_name = "etcd.example.com"
  }

  # username, password: optional, both or neither. etcd's user
  # authentication. The password never appears in logs or in
  # `sanbridge check` output.
  username = "sanbridge"
  password = "etcd-Password-1"

  # lease_ttl: optional, default "10s". A whole number of seconds from 2s
  # to 5m. The gateway renews its membership lease in etcd; when it could
  # not for this long it stops admitting commands on shared backends
  # (NOT READY, ASYMMETRIC ACCESS STATE TRANSITION) and the other gateways
  # report its port group unavailable. A PERSISTENT RESERVE OUT waits at
  # most this long for a gateway that does not confirm it.
  lease_ttl = "10s"

  # prefix: optional, default "/sanbridge/". The start of every key this
  # cluster keeps in etcd; clusters sharing one etcd need their own.
  prefix = "/sanbridge/"

  # alua: optional, default "implicit". "implicit": the gateways set the
  # asymmetric access states themselves (INQUIRY TPGS 01b): active/
  # optimized on every healthy gateway, unavailable or transitioning on
  # one that lost etcd. "explicit": initiators may also set them with SET
  # TARGET PORT GROUPS (TPGS 11b).
  alua = "implicit"

  # preferred: optional, default false. Marks this gateway's port group
  # preferred: while a preferred group is healthy the other groups are
  # reported active/non-optimized, so multipath sends I/O here.
  preferred = false
}

# metrics: optional, at most one. Serves Prometheus metrics over HTTP at
# /metrics: commands, bytes, latency and errors per LUN and per
# initiator, sessions, logins and their failures, device arrivals and
# removals, reloads, the memory budget. No authentication: keep it on a
# loopback or management address.
metrics {
  # listen: required. IP address and port, as for a portal; not one a
  # portal uses.
  listen = "127.0.0.1:9163"
}

# isns: optional, at most one. Registers the gateway with an iSNS server
# (RFC 4171) as one network entity holding every portal and target
# (portal groups from portal.group), replaces the registration after a
# reload and removes it at stop. Every portal must have an address
# initiators can reach: a specific listen address, or advertise.
isns {
  # server: required. The iSNS server's host or host:port; port 3205 by
  # default.
  server = "isns.example.com"

  # entity_id: optional, default the host name. The entity identifier:
  # keep it the same across restarts, so that a registration left by a
  # crash is replaced rather than duplicated.
  entity_id = "gw-a.example.com"

  # esi_listen: optional. IP address and port where the server's Entity
  # Status Inquiries are answered; registered as every portal's ESI port,
  # so it must be reachable at each portal's address ("0.0.0.0:3206").
  # Without it the gateway refreshes its registration with queries within
  # the server's registration period.
  esi_listen = "0.0.0.0:3206"

  # esi_interval: optional, default "60s". The ESI interval asked of the
  # server (which may adjust it), whole seconds from 1s to 1h.
  esi_interval = "60s"
}

# limits: optional, at most one. Bounds on what initiators can make the
# gateway hold, so that no initiator, careless or hostile, can take the
# appliance down for the others. Every attribute is optional; absent ones
# keep the defaults shown. When a limit bites the gateway logs it (at most
# once per limit every 10 s) and counts it.
limits {
  # memory: default a quarter of the machine's memory, at most 4 GiB and
  # at least 64 MiB. The most data (read and write buffers) all commands
  # in flight hold together, 16MiB to 1TiB, as a size. A command's
  # buffers are sized from what its CDB moves, never from the length the
  # initiator announces. When the budget is used up new commands get TASK
  # SET FULL; above three quarters of it, sessions holding more than their
  # share get no new CmdSN window (initiators slow down) and the rest is
  # kept for the others. The Go runtime's memory limit is set from it.
  memory = "1GiB"

  # max_transfer: default "16MiB". The most data one command may move, in
  # each direction, on logical units that have no limit of their own (a
  # pass-through device's and an emulated disk's own limit apply to
  # theirs); 64KiB to 4GiB-1, at most memory.
  max_transfer = "16MiB"

  # max_sessions: default 1024. Sessions (normal and discovery) of all
  # initiators together; a login beyond fails with "out of resources".
  max_sessions = 1024

  # max_sessions_per_initiator: default 64. Sessions of one initiator
  # name.
  max_sessions_per_initiator = 64

  # max_pending_logins: default 64. Connections that have not completed
  # their login; a connection beyond is closed at once.
  max_pending_logins = 64

  # max_pending_logins_per_source: default 8. The same, per source
  # address (IPv6: per /64), so that one host cannot use them all.
  max_pending_logins_per_source = 8

  # login_timeout: default "15s". How long a login phase may take, 1s to
  # 10m.
  login_timeout = "15s"

  # max_tasks_per_session: default 160 (the CmdSN window of 128 plus 32
  # immediate commands). Tasks one session may have; beyond, TASK SET
  # FULL.
  max_tasks_per_session = 160

  # max_outstanding_r2t: default 16. The most MaxOutstandingR2T the
  # gateway accepts, 1 to 16.
  max_outstanding_r2t = 16

  # max_pending_task_management: default 16. Task management requests of
  # one session still waiting for the tasks they abort; beyond, "function
  # rejected".
  max_pending_task_management = 16

  # max_text_keys: default 256. Keys in one login or text request, 32 to
  # 16384; beyond, the login fails or the request is rejected.
  max_text_keys = 256

  # CHAP guessing throttle. Failed CHAP authentications (target and
  # discovery CHAP, mutual CHAP too) are counted per source address and
  # per initiator name. After auth_free_failures of them, the answer to
  # the next attempt from that source or name waits auth_delay, doubling
  # per further failure up to auth_max_delay (at most half of
  # login_timeout); after auth_lockout_after failures that source and
  # name are locked out for auth_lockout (their logins fail, even with the
  # right secret). Counts are forgotten auth_forget after the last failure.
  # The table holds auth_table_size sources and names (the least recently
  # failed go first). Logins from other sources and names are never
  # delayed.
  auth_free_failures = 3
  auth_delay         = "250ms"
  auth_max_delay     = "4s"
  auth_lockout_after = 10
  auth_lockout       = "5m"
  auth_forget        = "15m"
  auth_table_size    = 4096
}

# auto_export "<name>": optional, any number. Exports every local SCSI
# device that matches a selector, without a lun block per device, and
# follows the devices as they come and go (hot-plug, sanbridge reload).
# The name is like a portal's; each device's LUN number is remembered
# under it in the state directory (serve --state-dir), by the device's
# identity (WWN, else serial number), so a device keeps its LUN across
# restarts and /dev/sgN renumbering; a new device takes the lowest free
# number. A device that goes away keeps its LUN (answering NOT READY)
# until it comes back. A device selected by a device block anywhere in
# the file is never auto-exported.
auto_export "shelf" {
  # target: required. The target the devices are exported through, one
  # LUN per device. A target block with the same name keeps its own LUNs
  # (and access list, CHAP, views); the devices take the numbers it does
  # not use. With per_device = true, target is a prefix instead: each
  # device gets a target of its own named prefix + "." + its identity
  # (lower case, characters outside [a-z0-9.-] replaced by '-'), LUN 0.
  target     = "iqn.2026-11.io.sanbridge:shelf"
  per_device = false

  # alias: optional TargetAlias.
  alias = "disk shelf"

  # portals: optional, default every portal.
  portals = ["lo"]

  # The selector: a device is exported when every list given has an
  # entry it matches. transports and types take the names `sanbridge
  # scan` shows (transports: sas, fc, spi, usb, iscsi, ata, virtual,
  # pseudo, srp, unknown; types: disk, tape, cdrom, changer, worm,
  # optical, enclosure, zbc, ...). vendor and product are patterns on
  # the INQUIRY strings, '*' for any run of characters, without case.
  transports = ["sas", "fc", "spi", "virtual"]
  types      = ["disk", "tape", "changer"]
  vendor     = ["*"]
  product    = ["*"]

  # include_in_use: default false. Also export devices this host uses
  # (mounted, swap, held by md/dm/LVM). include_iscsi: default false.
  # Also export devices that are themselves iSCSI LUNs (never this
  # gateway's own: an initiator on the appliance would loop).
  include_in_use = false
  include_iscsi  = false

  # read_only: default false. Every LUN of the block refuses writes.
  read_only = false
}

# admin: optional, at most one. The endpoint `sanbridge status` and
# `sanbridge reload` talk to: a unix socket (owner only), by default
# /run/sanbridge/admin.sock, or <state-dir>/admin.sock when /run/sanbridge
# cannot be made (serve --admin-socket overrides both).
admin {
  socket = "/run/sanbridge/admin.sock"

  # listen: optional. The same endpoint over HTTP on a loopback address
  # (anything else is refused: the endpoint has no authentication).
  listen = "127.0.0.1:9164"
}
