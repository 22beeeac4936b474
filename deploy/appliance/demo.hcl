# Configuration of `make demo` (deploy/rig/demo.sh), served inside the QEMU
# appliance. The guest listens on every address; the host reaches it through
# QEMU's restricted user-mode forward 127.0.0.1:PORT -> guest :3260, so
# SendTargets must advertise the host side of the forward, never the guest's
# 10.0.2.15. demo.sh replaces 127.0.0.1:3260 below with the forwarded port.
#
# Until the SG_IO backend exists the emulated disk stands in for the rig's
# real devices (megasas, virtio-scsi, USB, scsi_debug; see `sb-inventory`
# on the console).

log_level = "info"

portal "forward" {
  listen    = "0.0.0.0:3260"
  advertise = "127.0.0.1:3260"
}

target "iqn.2026-11.io.sanbridge:demo" {
  alias = "sanbridge demo disk"

  lun "0" {
    emulated {
      size = "64MiB"
    }
  }

  # The rig's virtio-scsi disk, passed through with SG_IO (selected by the
  # WWN that `sanbridge scan` shows). The megasas disks are not exported
  # here: QEMU 7.2's megasas-gen2 answers TEST UNIT READY with HARDWARE
  # ERROR (sg_turs on the guest shows the same), which initiators treat as
  # a broken LUN.
  lun "1" {
    device {
      wwn = "naa.6001405a1b2c3d4e"
    }
  }
}
