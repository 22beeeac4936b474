portal "lo" {
  listen = "127.0.0.1:3260"
}

portal "any" { # ERROR: Portal without an address for iSNS
  listen = "0.0.0.0:3261"
}

metrics {
  listen = "127.0.0.1:3260" # ERROR: Metrics listen address taken
}

isns {
  server       = "isns.example.com:99999" # ERROR: Invalid server
  entity_id    = "gw a"                    # ERROR: Invalid entity_id
  esi_listen   = "localhost:3206"          # ERROR: Invalid esi_listen
  esi_interval = "1500ms"                  # ERROR: Invalid esi_interval
}

target "iqn.2026-11.io.sanbridge:s" { # WARNING: No CHAP on a non-loopback portal
  initiator "iqn.1994-05.com.redhat:h" {
  }
  lun "0" {
    emulated {
      size = "1MiB"
    }
  }
}
