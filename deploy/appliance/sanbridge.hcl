# Default configuration of the sanbridge appliance image
# (/etc/sanbridge/sanbridge.hcl): every local SCSI device that is not in
# use (disks, tapes, changers, CD/DVD drives, USB storage through its sg
# node) is exported on every IPv4 address, as one target with a LUN per
# device; devices that appear later are exported as they come. Each
# device keeps its LUN number across restarts (by WWN or serial number,
# in /var/lib/sanbridge). Boot with sanbridge.config=PATH (or put
# sanbridge.hcl on the 9p share) for a real deployment with access lists
# and CHAP; see deploy/examples/.

log_level = "info"

portal "any" {
  listen = "0.0.0.0:3260"
}

auto_export "local" {
  target = "iqn.2026-11.io.sanbridge:appliance"
  alias  = "sanbridge appliance"
}
