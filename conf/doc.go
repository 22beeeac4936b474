// Package conf reads the sanbridge HCL configuration into plain Go values.
//
// A configuration is one HCL file (hashicorp/hcl/v2 native syntax):
//
//	log_level = "info"                       # trace|debug|info|warn|error
//
//	portal "lo" {                            # one listening socket
//	  listen    = "127.0.0.1:3260"           # IP:port, IPv6 as [::1]:3260
//	  advertise = "192.0.2.10:3260"          # optional SendTargets TargetAddress
//	  group     = 1                          # portal group tag, default 1
//	}
//
//	discovery {                              # optional
//	  chap { username = "disc" secret = "discovery-secret" }
//	}
//
//	initiator_group "esx" {                  # LUN masking: who sees which map
//	  initiators = ["iqn.1998-01.com.vmware:*", "iqn.1994-05.com.redhat:vc"]
//	}
//
//	backend "shelf1" {                       # a logical unit mapped by name
//	  device { wwn = "naa.5000c50015ea71a0" }
//	}
//
//	target "iqn.2026-11.io.sanbridge:demo" {
//	  alias   = "demo disk"
//	  portals = ["lo"]                       # default: every portal
//	  chap { username = "u" secret = "123456789012" }
//	  initiator "iqn.1994-05.com.redhat:host1" {   # ACL entry
//	    chap { username = "h1" secret = "host1-secret" }
//	  }
//	  lun "0" {                              # the default map; id as a quoted label
//	    emulated { size = "64MiB" }          # exactly one backend: inline block...
//	  }
//	  lun "1" {
//	    backend   = "shelf1"                 # ...or a backend by name
//	    read_only = true                     # this mapping only
//	  }
//	  view "esx" {                           # what group esx sees instead
//	    lun "3" { backend = "shelf1" }
//	  }
//	}
//
// deploy/examples/reference.hcl documents every block and attribute, and
// deploy/examples/masking.hcl shows LUN masking.
//
// LUN masking resolves in two pure steps, at every login and after every
// reload: [Config.GroupOf] puts an initiator name in at most one
// [InitiatorGroup] (an exact name beats a pattern; validation rejects
// ambiguity), and [Target.ViewFor] returns that group's [View] of the
// target, or the target's default map ([Target.LUNs]) for initiators in
// no group or in a group without a view there; [Config.LUNsFor] does
// both. Every [LUN] names its logical unit by [LUN.Backend], a key into
// [Config.Backends] that is stable across reloads: LUNs with the same key,
// in any maps and targets, are one logical unit.
//
// [Parse] and [LoadFile] decode with gohcl into unexported structs that keep
// the source ranges, then resolve and validate into [Config]: every problem
// becomes one [hcl.Diagnostic] with a Subject (file:line), a short Summary
// and a Detail that says what to change, and all problems are reported at
// once. Names of targets and initiators are stored normalized
// ([iscsi.NormalizeName]); defaults are filled in, so callers never
// re-derive them. A [Parser] keeps the source of every file it read, so
// [Parser.WriteDiagnostics] can print diagnostics with source snippets.
//
// Secrets never leave the package in printable form: [CHAP] and [Config]
// implement fmt.Stringer, fmt.GoStringer, json.Marshaler and
// zerolog.LogObjectMarshaler with secrets redacted.
package conf
