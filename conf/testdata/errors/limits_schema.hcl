portal "lo" {
  listen = "127.0.0.1:3260"
}

limits {
  memory = "64MiB"
}

limits { # ERROR: Duplicate limits block
  unknown = 1
}

target "iqn.2026-11.io.sanbridge:t" { # WARNING: Open target
  lun "0" {
    emulated {
      size = 4096
    }
  }
}
