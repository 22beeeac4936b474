package sgio

import (
	"errors"
	"fmt"
	"time"

	"github.com/rs/zerolog"
)

// Defaults of the SG_IO backend.
const (
	// DefaultQueueDepth is how many commands an [SG] keeps in flight
	// unless [WithQueueDepth] says otherwise.
	DefaultQueueDepth = 32
	// DefaultTimeout bounds a command whose Request.Timeout is zero.
	DefaultTimeout = 60 * time.Second
	// MaxQueuePerFD is the sg driver's per-descriptor command limit
	// (SG_MAX_QUEUE in drivers/scsi/sg.c); one more write() fails with
	// EDOM. The backend opens ceil(depth/MaxQueuePerFD) descriptors.
	MaxQueuePerFD = 16
	// MaxQueueDepth caps [WithQueueDepth]: 16 descriptors of 16 commands.
	MaxQueueDepth = 256
	// DefaultPollWindow is how long a lone command's submitter waits
	// for the completion itself before handing it to the reaper (see
	// [WithPollWindow]).
	DefaultPollWindow = 250 * time.Microsecond
	// MaxPollWindow caps [WithPollWindow].
	MaxPollWindow = 2 * time.Millisecond
	// MinPollCanQueue is the smallest host queue (can_queue) on which
	// the polled path is used: on smaller hosts another user of the
	// host could hold every request, and the submitting write() would
	// sleep for one (see [WithPollWindow]).
	MinPollCanQueue = 8
)

// Option configures [Open].
type Option func(*sgOptions)

type sgOptions struct {
	depth     int
	timeout   time.Duration
	log       zerolog.Logger
	sysfsRoot string
	syncIO    bool
	poll      time.Duration
	solo      bool
}

func defaultOptions() sgOptions {
	return sgOptions{
		depth:     DefaultQueueDepth,
		timeout:   DefaultTimeout,
		log:       zerolog.Nop(),
		sysfsRoot: "/sys",
		poll:      DefaultPollWindow,
		solo:      true,
	}
}

// WithQueueDepth sets how many commands may be in flight at once
// (1 to [MaxQueueDepth]). Callers beyond it wait for a free slot; they
// never see EDOM.
func WithQueueDepth(n int) Option {
	return func(o *sgOptions) { o.depth = n }
}

// WithTimeout sets the timeout of requests whose Timeout is zero.
func WithTimeout(d time.Duration) Option {
	return func(o *sgOptions) { o.timeout = d }
}

// WithLogger sets the logger (default: none).
func WithLogger(l zerolog.Logger) Option {
	return func(o *sgOptions) { o.log = l }
}

// WithSysfsRoot sets where sysfs is mounted (default /sys); it is used
// to read queue limits and to map block and bsg nodes to their sg node.
func WithSysfsRoot(root string) Option {
	return func(o *sgOptions) { o.sysfsRoot = root }
}

// WithSyncIO makes the backend hold one OS thread per command in
// flight, blocked until the command completes, instead of using the sg
// driver's asynchronous interface: on sg nodes a write() followed by a
// blocking read() of that command, on block nodes the SG_IO ioctl. A
// cancelled context then does not end a Do whose command is already in
// the kernel. It is the only mode for block nodes without an sg node; on
// sg nodes it exists for comparison. (The sg driver's own SG_IO ioctl is
// not used: it waits interruptibly, and the kernel restarts it after a
// signal, sending the command a second time.)
func WithSyncIO() Option {
	return func(o *sgOptions) { o.syncIO = true }
}

// WithPollWindow sets the polled completion window (0 turns polling
// off; default [DefaultPollWindow], at most [MaxPollWindow]).
//
// A command submitted while nothing else is in flight on the device is
// waited for by its own goroutine: it is queued with write(), then the
// goroutine sleeps in ppoll(2) on the descriptor for at most the window
// and reads the completion itself. These three calls bypass the Go
// scheduler's system-call bookkeeping (raw system calls), so a lone
// command costs what it costs a C program calling SG_IO, instead of
// waking the reaper and, through the scheduler's system-call monitor,
// more threads. In exchange the goroutine keeps its scheduler slot (P)
// for the whole window, like a goroutine computing that long (a garbage
// collection's stop-the-world pause waits for it too); so the window is
// short and bounded, and a device whose commands miss it (a
// spinning disk) is not polled for a while: after each miss the next
// 16, 32, ... up to 16384 lone commands take the ordinary path, and one
// hit ends the back-off (the adaptive scheme of the kernel's own hybrid
// polling).
//
// The non-blocking write() of the sg driver does not wait for the
// device, but it does sleep for a free request when every request of
// the SCSI host (can_queue) is in use; the polled path is therefore
// used only on hosts with at least [MinPollCanQueue] requests, where
// the device's own lone command leaves them nearly all free.
func WithPollWindow(d time.Duration) Option {
	return func(o *sgOptions) { o.poll = d }
}

// WithSolo turns the solo descriptor on or off (default on). A data-in
// command submitted while nothing else is in flight then runs on a
// descriptor of its own whose sg reserved buffer (up to 256 KiB, within
// the device's transfer limit) is mapped into the process
// (SG_FLAG_MMAP_IO): the data is copied once, from that buffer into the
// caller's, instead of by the kernel into a bounce buffer and again from
// there. [Info].MappedReserve reports the mapped size.
func WithSolo(on bool) Option {
	return func(o *sgOptions) { o.solo = on }
}

func (o *sgOptions) validate() error {
	if o.poll < 0 || o.poll > MaxPollWindow {
		return fmt.Errorf("%w: poll window %v outside 0..%v", ErrBadRequest, o.poll, MaxPollWindow)
	}
	if o.depth < 1 || o.depth > MaxQueueDepth {
		return fmt.Errorf("%w: queue depth %d outside 1..%d", ErrBadRequest, o.depth, MaxQueueDepth)
	}
	if o.timeout <= 0 {
		return fmt.Errorf("%w: timeout %v must be positive", ErrBadRequest, o.timeout)
	}
	return nil
}

// OpError is the error of an operation on a device node: what was done,
// on which path, and why. Err wraps one of the package's sentinel errors
// (ErrGone, ErrQueueFull, ...) and, when the kernel refused, the errno,
// so both errors.Is(err, sgio.ErrQueueFull) and errors.Is(err,
// syscall.EDOM) hold.
type OpError struct {
	// Op is the operation: "open", "write", "read", "ioctl SG_IO", ...
	Op string
	// Path is the device node.
	Path string
	// Err is the cause.
	Err error
}

// Error implements error.
func (e *OpError) Error() string {
	return "sgio: " + e.Op + " " + e.Path + ": " + e.Err.Error()
}

// Unwrap returns the cause.
func (e *OpError) Unwrap() error { return e.Err }

// Timeout reports whether the command timed out in the driver.
func (e *OpError) Timeout() bool { return errors.Is(e.Err, ErrTimeout) }

// HCTL is a SCSI device address on Linux: host, channel (bus), target
// and LUN, written H:C:T:L.
type HCTL struct {
	Host, Channel, Target int
	LUN                   uint64
}

// String formats the address as H:C:T:L.
func (a HCTL) String() string {
	return fmt.Sprintf("%d:%d:%d:%d", a.Host, a.Channel, a.Target, a.LUN)
}

// Info describes an open SG device: what the driver reports about it
// and the raw values its [Limits] were computed from (zero when unknown).
type Info struct {
	// Path is the node that was opened; SGPath is the sg node actually
	// used (they differ when a block or bsg node was mapped to its sg).
	Path, SGPath string
	// Async reports whether the asynchronous write()/read() interface
	// is in use (false: one blocking call per command, see WithSyncIO).
	Async bool
	// Descriptors is the number of open descriptors.
	Descriptors int
	// Version is the sg driver version (SG_GET_VERSION_NUM, e.g. 30536).
	Version int
	// Address is the device's H:C:T:L (SG_GET_SCSI_ID; LUN truncated to
	// 32 bits by that ioctl).
	Address HCTL
	// PeripheralType is the device type from the kernel (0 disk, 1 tape...).
	PeripheralType int
	// DeviceQueueDepth is the queue depth the midlayer uses for the device.
	DeviceQueueDepth int
	// HostCanQueue is the number of requests the SCSI host accepts at
	// once (/sys/class/scsi_host/hostN/can_queue).
	HostCanQueue int
	// Polled reports whether lone commands use the polled completion
	// path (see [WithPollWindow]).
	Polled bool
	// ReservedSize is the sg reserved buffer size per descriptor.
	ReservedSize int
	// MappedReserve is the size of the reserved buffer mapped for lone
	// data-in commands (see [WithSolo]); 0 when there is none.
	MappedReserve int
	// SGTableSize is the host's scatter-gather table size (SG_GET_SG_TABLESIZE).
	SGTableSize int
	// MaxSectorsBytes is the queue's max_sectors in bytes (BLKSECTGET on sg).
	MaxSectorsBytes int
	// MaxSectorsKB, MaxHWSectorsKB and MaxSegments come from
	// /sys/block/X/queue when the device has a block node.
	MaxSectorsKB, MaxHWSectorsKB, MaxSegments int
}
