portal "lo" {
  listen = "127.0.0.1:3260"
}

discovery {
  chap {
    username = "discovery"
    secret   = "short" # ERROR: CHAP secret too short
  }
}

target "iqn.2026-11.io.sanbridge:a" {
  chap { # ERROR: Missing CHAP username
    secret = "0123456789ab"
  }

  initiator "iqn.1994-05.com.redhat:nosecret" {
    chap { # ERROR: Missing CHAP secret
      username = "h1"
    }
  }

  initiator "iqn.1994-05.com.redhat:empty" {
    chap { # ERROR: Missing CHAP username # ERROR: Missing CHAP secret
    }
  }

  initiator "iqn.1994-05.com.redhat:mutualonly" {
    chap { # ERROR: Mutual CHAP without one-way CHAP
      mutual_username = "tgt"
      mutual_secret   = "abcdefghijkl"
    }
  }

  initiator "iqn.1994-05.com.redhat:halfmutual" {
    chap { # ERROR: Incomplete mutual CHAP
      username        = "h2"
      secret          = "0123456789ab"
      mutual_username = "tgt"
    }
  }

  initiator "iqn.1994-05.com.redhat:halfmutual2" {
    chap { # ERROR: Incomplete mutual CHAP
      username      = "h3"
      secret        = "0123456789ab"
      mutual_secret = "abcdefghijkl"
    }
  }

  initiator "iqn.1994-05.com.redhat:samesecret" {
    chap {
      username        = "h4"
      secret          = "same-secret-1"
      mutual_username = "tgt"
      mutual_secret   = "same-secret-1" # ERROR: Mutual CHAP secret equals secret
    }
  }

  initiator "iqn.1994-05.com.redhat:reused" {
    chap {
      username        = "h5"
      secret          = "h5-secret-xyz"
      mutual_username = "tgt"
      mutual_secret   = "0123456789ab" # ERROR: CHAP secret used in both directions
    }
  }

  initiator "iqn.1994-05.com.redhat:long" {
    chap {
      username = "h6"
      secret   = "01234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789" # ERROR: CHAP secret too long
    }
  }

  initiator "iqn.1994-05.com.redhat:shortmutual" {
    chap {
      username        = "h7"
      secret          = "h7-secret-xyz"
      mutual_username = "tgt"
      mutual_secret   = "tiny" # ERROR: CHAP secret too short
    }
  }

  initiator "iqn.1994-05.com.redhat:emptyname" {
    chap {
      username = "" # ERROR: Invalid CHAP username
      secret   = "h8-secret-xyz"
    }
  }

  initiator "iqn.1994-05.com.redhat:ctrl" {
    chap {
      username = "h9\tx" # ERROR: Invalid CHAP username
      secret   = "h9-secret\nxyz" # ERROR: Invalid CHAP secret
    }
  }

  initiator "iqn.1994-05.com.redhat:wrongtype" {
    chap {
      username = ["h10"] # ERROR: Invalid username
      secret   = "h10-secret-xyz"
    }
  }

  initiator "iqn.1994-05.com.redhat:twochap" {
    chap {
      username = "h11"
      secret   = "h11-secret-xyz"
    }
    chap { # ERROR: Duplicate chap block
      username = "h11"
      secret   = "h11-secret-xyz"
    }
  }

  initiator "iqn.1994-05.com.redhat:unknownattr" {
    chap {
      username = "h12"
      secret   = "h12-secret-xyz"
      password = "h12-secret-xyz" # ERROR: Unsupported argument
    }
  }

  lun "0" {
    emulated {
      size = "1MiB"
    }
  }
}
