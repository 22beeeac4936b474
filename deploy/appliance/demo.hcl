# Configuration of `make demo` (deploy/rig/demo.sh), served inside the QEMU
# appliance. The guest listens on every address; the host reaches it through
# QEMU's restricted user-mode forward 127.0.0.1:PORT -> guest :3260, so
# SendTargets must advertise the host side of the forward, never the guest's
# 10.0.2.15. demo.sh replaces 127.0.0.1:3260 below with the forwarded port.
#
# LUN 0 is an emulated disk; auto_export adds every device of the rig (the
# megasas SAS disks and CD-ROM, the virtio-scsi disk, the USB stick through
# its sg node, the scsi_debug disks and tape) as the next LUNs of the same
# target, each answering with its own identity (INQUIRY, VPD pages), and
# follows devices that come and go. `sb-inventory` on the console lists
# them; `sanbridge status` in the guest shows which LUN each one got.

log_level = "info"

portal "forward" {
  listen    = "0.0.0.0:3260"
  advertise = "127.0.0.1:3260"
}

target "iqn.2026-11.io.sanbridge:demo" {
  alias = "sanbridge demo"

  lun "0" {
    emulated {
      size = "64MiB"
    }
  }
}

auto_export "rig" {
  target = "iqn.2026-11.io.sanbridge:demo"
}
