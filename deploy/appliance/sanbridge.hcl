# Default configuration of the sanbridge appliance image
# (/etc/sanbridge/sanbridge.hcl): one 64 MiB memory disk on every IPv4 address.
# Boot with sanbridge.config=PATH (or put sanbridge.hcl on the 9p share) for a
# real deployment; see deploy/examples/.

log_level = "info"

portal "any" {
  listen = "0.0.0.0:3260"
}

target "iqn.2026-11.io.sanbridge:appliance" {
  alias = "sanbridge appliance disk"

  lun "0" {
    emulated {
      size = "64MiB"
    }
  }
}
