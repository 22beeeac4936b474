# sanbridge on an appliance: listen on every IPv4 address, behind NAT.
#
# The "nat" portal listens on 0.0.0.0:3260, and initiators outside reach it
# through a port forward at san.example.com:13260, so SendTargets must
# advertise that address rather than the local one. The "lan" portal also
# listens on every address (port 3261) but sets no advertise: sanbridge
# then advertises the local address each discovery connection arrived on,
# which is right for initiators on the local networks.
#
# Targets reachable from a network should have an access list and CHAP;
# `sanbridge check` warns about targets that have neither.

log_level = "warn"

portal "nat" {
  listen    = "0.0.0.0:3260"
  advertise = "san.example.com:13260"
  group     = 1
}

portal "lan" {
  listen = "0.0.0.0:3261"
  group  = 2
}

discovery {
  chap {
    username = "discovery"
    secret   = "Appliance-Disc-01"
  }
}

target "iqn.2026-11.io.sanbridge:appliance:vol0" {
  alias = "appliance volume 0"

  chap {
    username        = "vol0"
    secret          = "vol0-Initiator-Key"
    mutual_username = "sanbridge-appliance"
    mutual_secret   = "vol0-Target-Key99"
  }

  initiator "iqn.1998-01.com.vmware:esx01-4d3c2b1a" {
  }

  initiator "iqn.1998-01.com.vmware:esx02-5e4d3c2b" {
  }

  lun "0" {
    emulated {
      size     = "16GiB"
      file     = "/var/lib/sanbridge/vol0.img"
      vendor   = "SANBRIDG"
      product  = "APPLIANCE VOL0"
      revision = "0001"
      serial   = "appliance-vol0"
    }
  }
}
