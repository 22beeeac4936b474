// Command tcpstream measures a raw TCP stream over loopback, the ceiling
// deploy/bench/bench.sh compares large iSCSI reads with: one connection,
// a sender writing -size byte buffers as fast as it can, a receiver
// reading them whole, for -secs seconds. It prints "MiB/s N".
package main

import (
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"time"
)

func main() {
	secs := flag.Int("secs", 5, "seconds to measure")
	size := flag.Int("size", 1<<20, "bytes per write and per read")
	flag.Parse()
	if err := run(time.Duration(*secs)*time.Second, *size); err != nil {
		fmt.Fprintln(os.Stderr, "tcpstream:", err)
		os.Exit(1)
	}
}

func run(d time.Duration, size int) error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		buf := make([]byte, size)
		for {
			if _, err := c.Write(buf); err != nil {
				return
			}
		}
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		return fmt.Errorf("dial: %w", err)
	}
	defer c.Close()
	buf := make([]byte, size)
	var n int64
	start := time.Now()
	for time.Since(start) < d {
		m, err := io.ReadFull(c, buf)
		n += int64(m)
		if err != nil {
			return fmt.Errorf("read: %w", err)
		}
	}
	fmt.Printf("MiB/s %.0f\n", float64(n)/time.Since(start).Seconds()/(1<<20))
	return nil
}
