package main

import (
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sanbridge/sanbridge/sgio"
	"github.com/sanbridge/sanbridge/sgio/bot"
	"github.com/sanbridge/sanbridge/sgio/discover"
	"github.com/sanbridge/sanbridge/sgio/scsi"
)

// runBench implements "sanbridge bench": sequential reads from a local
// SCSI device through the gateway's SG_IO backend, as the gateway issues
// them, with the rate, throughput and mean latency. It only reads.
func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, `usage: sanbridge bench [flags] DEVICE

Reads DEVICE (an sg, block or bsg node, or a /dev/disk/by-* link)
sequentially through the gateway's SG_IO backend, or, for DEVICE
usb:INTERFACE (as "sanbridge scan --usb" names it, e.g. usb:2-1:1.0), LUN 0
of that USB mass-storage interface through the Bulk-Only backend (which
detaches the kernel driver while it runs), with READ(16) commands
of --bs bytes from --qd goroutines at once, wrapping at the end of the
device, and prints IOPS, MB/s and the mean latency. It never writes.
The data of a lone command is lent from the backend's mapped buffer, as
the gateway sends it (--copy copies it into a buffer of the caller's).

flags:
`)
		fs.PrintDefaults()
	}
	qd := fs.Int("qd", 1, "commands in flight at once")
	count := fs.Int("count", 10000, "number of commands")
	bs := fs.Int("bs", 4096, "bytes per command (a multiple of the block size)")
	copied := fs.Bool("copy", false, "copy the data into the caller's buffer instead of lending it")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return fmt.Errorf("%w: one device expected", errUsage)
	}
	if *qd < 1 || *qd > sgio.MaxQueueDepth || *count < 1 || *bs < 1 {
		return fmt.Errorf("%w: --qd 1..%d, --count and --bs positive", errUsage, sgio.MaxQueueDepth)
	}
	dev, err := openBenchDevice(fs.Arg(0), *qd)
	if err != nil {
		return err
	}
	lender, lends := dev.(sgio.Lender)
	defer dev.Close()
	c, err := discover.ReadCapacity(ctx, dev, 0)
	if err != nil {
		return err
	}
	blocks, blockSize := c.Blocks(), int(c.BlockSize)
	if *bs%blockSize != 0 || *bs > dev.Limits().MaxTransferBytes {
		return fmt.Errorf("%w: --bs %d: not a multiple of the block size %d, or above the device's limit of %d bytes",
			errUsage, *bs, blockSize, dev.Limits().MaxTransferBytes)
	}
	per := uint64(*bs / blockSize)
	span := blocks / per
	if span == 0 {
		return fmt.Errorf("%s: %d blocks, fewer than one command's", fs.Arg(0), blocks)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, *qd)
	start := time.Now()
	for w := 0; w < *qd; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cdb := make([]byte, 16)
			cdb[0] = byte(scsi.OpRead16)
			binary.BigEndian.PutUint32(cdb[10:], uint32(per))
			req := &sgio.Request{CDB: cdb, Dir: sgio.DirFromDevice, Data: make([]byte, *bs)}
			var res sgio.Result
			for {
				i := next.Add(1) - 1
				if i >= int64(*count) {
					return
				}
				binary.BigEndian.PutUint64(cdb[2:], uint64(i)%span*per)
				var err error
				if *copied || !lends {
					err = dev.Execute(ctx, req, &res)
				} else {
					var release func()
					if _, release, err = lender.ExecuteLent(ctx, req, &res); release != nil {
						release()
					}
				}
				if err == nil && res.Status != scsi.Good {
					err = fmt.Errorf("READ(16): status %v, sense % x", res.Status, res.Sense)
				}
				if err != nil {
					errs <- err
					cancel()
					return
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	select {
	case err := <-errs:
		return err
	default:
	}
	iops := float64(*count) / elapsed.Seconds()
	fmt.Fprintf(stdout, "%s: %d reads of %d bytes at queue depth %d in %.3f s: %.0f IOPS, %.1f MB/s, mean latency %.1f µs\n",
		fs.Arg(0), *count, *bs, *qd, elapsed.Seconds(), iops, iops*float64(*bs)/1e6,
		elapsed.Seconds()*1e6*float64(*qd)/float64(*count))
	return nil
}

// openBenchDevice opens an sg, block or bsg node with the SG_IO backend,
// or "usb:INTERFACE" with the Bulk-Only backend (LUN 0; one command at a
// time, which is all BOT does).
func openBenchDevice(name string, qd int) (sgio.Device, error) {
	path, ok := strings.CutPrefix(name, "usb:")
	if !ok {
		return sgio.Open(name, sgio.WithQueueDepth(qd))
	}
	if qd != 1 {
		return nil, fmt.Errorf("%w: --qd %d: the Bulk-Only transport runs one command at a time", errUsage, qd)
	}
	return bot.OpenLUN(bot.Selector{BusPath: path}, 0)
}
