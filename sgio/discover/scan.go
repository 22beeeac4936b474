package discover

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/sanbridge/sanbridge/sgio"
)

// DefaultCommandTimeout bounds each identification command.
const DefaultCommandTimeout = 10 * time.Second

// maxParallelQueries bounds how many devices are queried at once, so a
// slow device does not hold up the scan and many do not flood the HBAs.
const maxParallelQueries = 8

// Config says where to look and whether to ask the devices themselves.
// The zero value scans the running system's sysfs without opening any
// device.
type Config struct {
	// SysfsRoot is where sysfs is mounted; default "/sys".
	SysfsRoot string
	// ProcRoot is where procfs is mounted (for self/mountinfo and
	// swaps); default "/proc".
	ProcRoot string
	// DevRoot is the device directory the node names are built in and
	// the disk/by-id, by-path links are read from; default "/dev".
	DevRoot string
	// Open opens an sg node to send INQUIRY and READ CAPACITY to the
	// device. Nil means identity and capacity come from sysfs only.
	// [OpenSG] opens the real device.
	Open func(path string) (sgio.Device, error)
	// CommandTimeout bounds each command; default DefaultCommandTimeout.
	CommandTimeout time.Duration
	// Logger receives progress at debug level.
	Logger zerolog.Logger
}

// OpenSG opens path with the SG_IO backend, for [Config.Open].
func OpenSG(path string) (sgio.Device, error) {
	s, err := sgio.Open(path, sgio.WithQueueDepth(1))
	if err != nil {
		return nil, err
	}
	return s, nil
}

// Scan enumerates the SCSI devices. A system without SCSI devices (or
// without the SCSI midlayer) yields none and no error; an error means
// sysfs itself could not be read. Problems with single devices are
// recorded in their Problems and do not fail the scan.
func Scan(ctx context.Context, cfg Config) ([]Device, error) {
	if cfg.SysfsRoot == "" {
		cfg.SysfsRoot = "/sys"
	}
	if cfg.ProcRoot == "" {
		cfg.ProcRoot = "/proc"
	}
	if cfg.DevRoot == "" {
		cfg.DevRoot = "/dev"
	}
	if cfg.CommandTimeout <= 0 {
		cfg.CommandTimeout = DefaultCommandTimeout
	}
	sys := sysfs{root: cfg.SysfsRoot}
	sds, err := sys.listDevices()
	if err != nil {
		return nil, err
	}
	var mounts []Mount
	if b, err := os.ReadFile(filepath.Join(cfg.ProcRoot, "self", "mountinfo")); err == nil {
		mounts = ParseMountinfo(b)
	} else {
		cfg.Logger.Debug().Err(err).Msg("no mountinfo: mounts not checked")
	}
	var swaps []string
	if b, err := os.ReadFile(filepath.Join(cfg.ProcRoot, "swaps")); err == nil {
		swaps = ParseSwaps(b)
	}
	byID := links(filepath.Join(cfg.DevRoot, "disk", "by-id"))
	byPath := links(filepath.Join(cfg.DevRoot, "disk", "by-path"))
	tapeByID := links(filepath.Join(cfg.DevRoot, "tape", "by-id"))
	tapeByPath := links(filepath.Join(cfg.DevRoot, "tape", "by-path"))

	devs := make([]Device, len(sds))
	cached := make([]Identity, len(sds))
	for i := range sds {
		sd, d := &sds[i], &devs[i]
		sys.fromSysfs(sd, cfg.DevRoot, d, &cached[i])
		sys.transport(sd, d)
		d.Identity = cached[i]
		d.InUse = append(usesOf(blockNames(sd.dir, sd.block), mounts, swaps), sys.holders(sd.dir, sd.block)...)
		if sd.block != "" {
			d.ByID, d.ByPath = byID[sd.block], byPath[sd.block]
		}
		if d.Tape != "" {
			t := filepath.Base(d.Tape)
			d.ByID, d.ByPath = tapeByID[t], tapeByPath[t]
		}
	}

	if cfg.Open != nil {
		sem := make(chan struct{}, maxParallelQueries)
		var wg sync.WaitGroup
		for i := range devs {
			d := &devs[i]
			if d.SG == "" {
				d.Problems = append(d.Problems, "no sg node (sg driver not loaded?): identity from sysfs only")
				continue
			}
			if d.State != "" && d.State != "running" {
				d.Problems = append(d.Problems, "device state "+d.State+": not queried")
				continue
			}
			askVPD := d.Transport.Kind != TransportUSB || fileExists(filepath.Join(sds[i].dir, "vpd_pg0"))
			wg.Add(1)
			sem <- struct{}{}
			go func(d *Device, cached Identity) {
				defer wg.Done()
				defer func() { <-sem }()
				dev, err := cfg.Open(d.SG)
				if err != nil {
					d.Problems = append(d.Problems, err.Error())
					return
				}
				queryDevice(ctx, dev, cfg.CommandTimeout, d, cached, askVPD)
				if err := dev.Close(); err != nil {
					d.Problems = append(d.Problems, err.Error())
				}
				cfg.Logger.Debug().Str("sg", d.SG).Str("wwn", d.Identity.WWN).Msg("queried")
			}(d, cached[i])
		}
		wg.Wait()
	}
	for i := range devs {
		d := &devs[i]
		if d.Transport.Kind == TransportSAS && d.Transport.SASAddress == "" {
			// No sas_transport (RAID HBAs): the device's target port
			// designator may still carry its SAS address.
			if a := portAddress(d.Identity.Designators, ProtoSAS); a != "" {
				d.Transport.SASAddress = a
				d.Path = sasPath(&d.Transport, d.Address.LUN)
			}
		}
		d.finish()
	}
	return devs, ctx.Err()
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
