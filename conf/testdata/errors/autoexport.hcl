portal "lo" {
  listen = "127.0.0.1:3260"
}

admin {
  socket = "admin.sock"     # ERROR: Invalid socket path
  listen = "10.1.2.3:9164"  # ERROR: Admin listener not on loopback
}

auto_export "disks" {
  target     = "iqn.2026-11.io.sanbridge:auto"
  portals    = ["lo", "wan"] # ERROR: Unknown portal
  transports = ["sas", "scsi"] # ERROR: Unknown name in transports
  types      = ["disk", "floppy"] # ERROR: Unknown name in types
  vendor     = ["SEAGATE", ""] # ERROR: Invalid pattern in vendor
}

auto_export "disks" { # ERROR: Duplicate auto_export
  target = "iqn.2026-11.io.sanbridge:auto" # ERROR: Target used by two auto_export blocks
}

auto_export "bad name" { # ERROR: Invalid auto_export name
  target = "not a name" # ERROR: Invalid target name
}

auto_export "none" { # ERROR: Missing target
  per_device = true
}
