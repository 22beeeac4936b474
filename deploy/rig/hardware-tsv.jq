# Turns deploy/rig/hardware.json into a tab-separated table for the guest's
# shell tests, one device per line:
#   id host_driver host_index target lun peripheral_type vendor product revision
#   serial wwn size_bytes logical_block_size
# host_driver is the SCSI host's proc_name; host_index numbers the hosts of
# that driver in the order the guest creates them; "-" marks an unknown value.
# Usage: jq -r -f hardware-tsv.jq hardware.json

def v: if . == null then "-" else tostring end;
(.controllers | map({key: .id, value: .}) | from_entries) as $ctl |
( .devices[] |
  [ .id,
    ({"megasas-gen2": "megaraid_sas", "virtio-scsi-pci": "virtio_scsi", "qemu-xhci": "usb-storage"}[$ctl[.controller].qemu]),
    0, (.scsi_id // 0), (.lun // 0), .peripheral_type, .vendor, .product, .revision,
    .serial, .wwn, .size_bytes, .logical_block_size ] ),
( .scsi_debug as $sd | $sd.devices[] |
  [ .id, "scsi_debug", .host, .target, .lun, .peripheral_type,
    $sd.params.inq_vendor, $sd.params.inq_product, $sd.params.inq_rev,
    null, null, .size_bytes, (if .peripheral_type == 0 then $sd.params.sector_size else null end) ] )
| map(v) | join("\t")
