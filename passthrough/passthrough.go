// Package passthrough carries SCSI semantics between the iSCSI engine and
// the devices: it implements iscsi.Handler over sgio.Device and keeps
// what SCSI keeps per initiator, since every device behind the gateway
// sees a single initiator, the gateway itself; and it tells initiators
// the truth about what lies between them and the device.
//
//	Target    one iSCSI target: LU registry, views, TMF   target.go
//	View      LUN masking: LUN number -> LU, read-only    view.go
//	nexus     one I_T nexus from login to logout          nexus.go
//	LU        one logical unit, shared by its maps        lu.go
//	Execute   the per-command pipeline                    pipeline.go
//	          what the gateway learns of the device       devinfo.go
//	          device-type policy: refused opcodes,        policy.go
//	          write-class, timeouts, retries
//	          buffers from the CDB, residuals             exec.go
//	          splitting for the path                      split.go
//	          INQUIRY and VPD pages 00h, 83h, B0h         inquiry.go
//	          D_SENSE and WP in mode parameters           mode.go
//	          transport outcomes -> status and sense      sense.go
//	          SPC-2 RESERVE/RELEASE                       reserve.go
//	          persistent reservations                     pr.go, prstore.go
//	          unit attention queues (SAM-5 5.14)          ua.go
//	          buffer bounds before allocation             admit.go
//	          the device queue, fair between nexuses      fairq.go
//	          several gateways, ALUA                      alua.go
//
// RESERVE, RELEASE and PERSISTENT RESERVE IN/OUT are answered here and
// never reach a device.
package passthrough
