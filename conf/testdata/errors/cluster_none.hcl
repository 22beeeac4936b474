portal "lo" {
  listen = "127.0.0.1:3260"
}

backend "shelf1" {
  shared = true # ERROR: Shared backend without a cluster
  device {
    wwn = "naa.5000c50015ea71a0"
  }
}

target "iqn.2026-11.io.sanbridge:c" {
  initiator "iqn.1994-05.com.redhat:h" {
  }
  lun "0" {
    backend = "shelf1"
  }
}
