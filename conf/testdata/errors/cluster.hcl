portal "lo" {
  listen = "127.0.0.1:3260"
}

backend "shelf1" {
  shared = true
  device {
    wwn = "naa.5000c50015ea71a0"
  }
}

backend "memdisk" {
  shared = true # WARNING: Shared disk in memory
  emulated {
    size = "1MiB"
  }
}

backend "notshared" {
  shared = "yes please" # ERROR: Invalid shared
  emulated {
    size = "1MiB"
  }
}

cluster {
  node_id    = "-gw" # ERROR: Invalid node_id
  port_group = 256   # ERROR: Invalid port_group
  endpoints = [
    "http://127.0.0.1:2379",
    "etcd1:2379",            # ERROR: Invalid endpoint
    "http://127.0.0.1:2379", # ERROR: Duplicate endpoint
    "http://127.0.0.1:2380/v3",   # ERROR: Invalid endpoint
  ]
  username  = "sanbridge" # ERROR: Missing password
  lease_ttl = "500ms"     # ERROR: Invalid lease_ttl
  prefix    = "sanbridge" # ERROR: Invalid prefix
  alua      = "manual"    # ERROR: Invalid alua
  tls { # ERROR: Incomplete client certificate
    ca_file     = "ca.pem"         # ERROR: Invalid ca_file
    cert_file   = "/etc/sanbridge/client.pem"
    server_name = "not a name"     # ERROR: Invalid server_name
  } # no key_file
}

target "iqn.2026-11.io.sanbridge:c" {
  initiator "iqn.1994-05.com.redhat:h" {
  }
  lun "0" {
    backend = "shelf1"
  }
  lun "1" {
    backend = "memdisk"
  }
  lun "2" {
    backend = "notshared"
  }
}
