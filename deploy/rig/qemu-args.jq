# Turns deploy/rig/hardware.json into QEMU arguments, one per line.
# Usage: jq -r --arg disks DIR -f qemu-args.jq hardware.json
# DIR holds one raw backing file per drive, named ID.img.

# QEMU option values escape a comma by doubling it.
def q: tostring | gsub(","; ",,");
def prop($k; $v): if $v == null then empty else "\($k)=\($v | q)" end;

(.controllers[] | "-device", "\(.qemu),id=\(.id)"),
(.devices[] | select(.qemu != null) |
  . as $d |
  "-drive",
  ([ "if=none", "id=drv-\(.id)", "file=\($disks | q)/\(.id).img", "format=raw",
     (if .qemu == "scsi-cd" then "media=cdrom", "readonly=on" else empty end)
   ] | join(",")),
  "-device",
  (if .qemu == "usb-storage" then
     [ "usb-storage", "id=\(.id)", "bus=\(.controller).0", "drive=drv-\(.id)",
       prop("serial"; .usb_serial), (if .removable then "removable=on" else empty end)
     ]
   else
     [ .qemu, "id=\(.id)", "drive=drv-\(.id)", "bus=\(.controller).0",
       prop("channel"; .channel), prop("scsi-id"; .scsi_id), prop("lun"; .lun),
       prop("vendor"; .vendor), prop("product"; .product), prop("ver"; .revision),
       prop("serial"; .serial), prop("wwn"; .wwn),
       (if .qemu == "scsi-hd" then
          prop("logical_block_size"; .logical_block_size),
          prop("physical_block_size"; .physical_block_size),
          prop("rotation_rate"; .rotation_rate)
        else empty end)
     ]
   end | join(","))
)
