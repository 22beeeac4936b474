portal "lo" {
  listen = "127.0.0.1:3260"
}

cluster { # ERROR: Missing node_id # ERROR: Missing port_group # ERROR: Missing endpoints # WARNING: No shared backend
  password = "etcd-password" # ERROR: Missing username
}

target "iqn.2026-11.io.sanbridge:c" {
  initiator "iqn.1994-05.com.redhat:h" {
  }
  lun "0" {
    emulated {
      size = "1MiB"
    }
  }
}
