// Package passthrough carries SCSI semantics between the iSCSI engine and
// the devices: it implements iscsi.Handler over sgio.Device and keeps
// what SCSI keeps per initiator, since every device behind the gateway
// sees a single initiator, the gateway itself.
//
//	Target    one iSCSI target: LU registry, views, TMF   target.go
//	View      LUN masking: LUN number -> LU, read-only    view.go
//	nexus     one I_T nexus from login to logout          nexus.go
//	LU        one logical unit, shared by its maps        lu.go
//	Execute   the per-command pipeline                    pipeline.go
//	          SPC-2 RESERVE/RELEASE                       reserve.go
//	          persistent reservations                     pr.go, prstore.go
//	          unit attention queues (SAM-5 5.14)          ua.go
//	          write-class commands, WP                    policy.go
//	          transport outcomes -> status and sense      sense.go
//
// RESERVE, RELEASE and PERSISTENT RESERVE IN/OUT are answered here and
// never reach a device.
package passthrough
