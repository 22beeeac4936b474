# Turns deploy/rig/hardware.json into a shell fragment for the guest:
#   SCSI_DEBUG_PARAMS   module parameters for "modprobe scsi_debug"
#   SCSI_DEBUG_HOSTS    number of extra hosts
#   SCSI_DEBUG_HOST_<i> "attr=value ..." to set before the i-th add_host
# Usage: jq -r -f guest-env.jq hardware.json

def sh: tostring | "'" + gsub("'"; "'\\''") + "'";

"SCSI_DEBUG_PARAMS=" + ([.scsi_debug.params | to_entries[] | "\(.key)=\(.value)"] | join(" ") | sh),
"SCSI_DEBUG_HOSTS=\(.scsi_debug.extra_hosts | length)",
(.scsi_debug.extra_hosts | to_entries[] |
  "SCSI_DEBUG_HOST_\(.key)=" + ([.value.set | to_entries[] | "\(.key)=\(.value)"] | join(" ") | sh))
,
"SCSI_DEVICES_EXPECTED=\(([.devices[] | select(.qemu != null)] | length) + (.scsi_debug.devices | length))"
