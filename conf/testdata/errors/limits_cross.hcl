portal "lo" {
  listen = "127.0.0.1:3260"
}

limits {
  memory                     = "64MiB"
  max_transfer               = "128MiB" # ERROR: max_transfer exceeds memory
  max_sessions               = 10
  max_sessions_per_initiator = 20 # WARNING: Per-initiator limit above the total
  login_timeout              = "4s"
  auth_max_delay             = "3s" # ERROR: auth_max_delay too long for the login timeout
}

target "iqn.2026-11.io.sanbridge:t" { # WARNING: Open target
  lun "0" {
    emulated {
      size = 4096
    }
  }
}
