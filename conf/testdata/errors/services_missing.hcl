portal "lo" {
  listen = "127.0.0.1:3260"
}

metrics { # ERROR: Missing listen address
}

isns { # ERROR: Missing server
  esi_interval = "30s" # WARNING: esi_interval without esi_listen
}

target "iqn.2026-11.io.sanbridge:s" {
  initiator "iqn.1994-05.com.redhat:h" {
  }
  lun "0" {
    emulated {
      size = "1MiB"
    }
  }
}
