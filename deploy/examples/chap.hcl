# sanbridge with access lists and CHAP.
#
# - Discovery sessions must authenticate with CHAP (discovery block).
# - Target "db" admits two initiators only. db1 uses the target's one-way
#   CHAP; db2 has its own credentials with mutual CHAP, so it also checks
#   the target's identity.
# - Target "scratch" admits one initiator with one-way CHAP of its own.
#
# Secrets here are examples: generate your own, 12 to 16 random characters
# (e.g. `openssl rand -base64 12`), and never use a secret for both
# directions (RFC 7143 12.1.3; sanbridge refuses such configurations).
#
# On a Linux initiator (open-iscsi) the matching settings for db2 are, in
# /etc/iscsi/iscsid.conf or per node with `iscsiadm -m node -o update`:
#   discovery.sendtargets.auth.authmethod = CHAP
#   discovery.sendtargets.auth.username   = discovery
#   discovery.sendtargets.auth.password   = disc0very-Secret
#   node.session.auth.authmethod = CHAP
#   node.session.auth.username    = db2
#   node.session.auth.password    = db2-initiator-Secret
#   node.session.auth.username_in = sanbridge-db
#   node.session.auth.password_in = db-target-Secret9

log_level = "info"

portal "lo" {
  listen = "127.0.0.1:3260"
}

portal "lo6" {
  listen = "[::1]:3260"
  group  = 2
}

discovery {
  chap {
    username = "discovery"
    secret   = "disc0very-Secret"
  }
}

target "iqn.2026-11.io.sanbridge:db" {
  alias   = "database volumes"
  portals = ["lo", "lo6"]

  # One-way CHAP for initiators in the list without their own chap block.
  chap {
    username = "db-hosts"
    secret   = "db-hosts-Secret1"
  }

  initiator "iqn.1994-05.com.redhat:db1" {
  }

  initiator "iqn.1994-05.com.redhat:db2" {
    chap {
      username        = "db2"
      secret          = "db2-initiator-Secret"
      mutual_username = "sanbridge-db"
      mutual_secret   = "db-target-Secret9"
    }
  }

  lun "0" {
    emulated {
      size   = "1GiB"
      file   = "/var/lib/sanbridge/db0.img"
      serial = "db0"
    }
  }

  lun "1" {
    emulated {
      size       = "256MiB"
      block_size = 4096
      read_only  = true
      serial     = "db1-ro"
    }
  }
}

target "iqn.2026-11.io.sanbridge:scratch" {
  portals = ["lo"]

  initiator "iqn.1991-05.com.microsoft:win-build01" {
    chap {
      username = "win-build01"
      secret   = "scratch-Secret42"
    }
  }

  lun "0" {
    emulated {
      size = "128MiB"
    }
  }
}
