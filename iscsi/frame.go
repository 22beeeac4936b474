package iscsi

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"net"
)

// Protocol errors. What they kill is documented on each; callers match
// them with errors.Is.
var (
	// ErrMalformed: a PDU whose fields contradict its own layout. The
	// connection answers with Reject (protocol error / invalid PDU field).
	ErrMalformed = errors.New("iscsi: malformed PDU")
	// ErrPDUTooLarge: DataSegmentLength exceeds the negotiated
	// MaxRecvDataSegmentLength. The segment is skipped and the PDU rejected.
	ErrPDUTooLarge = errors.New("iscsi: data segment exceeds MaxRecvDataSegmentLength")
	// ErrHeaderDigest: the header CRC32C did not match. The length can't
	// be trusted, so the connection is dropped (RFC 7143 7.8).
	ErrHeaderDigest = errors.New("iscsi: header digest error")
	// ErrDataDigest: the data CRC32C did not match. The PDU is rejected
	// with reason "data digest error".
	ErrDataDigest = errors.New("iscsi: data digest error")
)

// castagnoli is the CRC32C table (immutable after init).
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// crc32c returns the iSCSI digest of p (RFC 7143 13.1: CRC32C, sent
// least significant byte first).
func crc32c(p []byte) uint32 { return crc32.Checksum(p, castagnoli) }

// Frame is one received PDU. AHS and Data alias the reader's buffer and
// are valid until the next Read.
type Frame struct {
	BHS  BHS
	AHS  []byte
	Data []byte
}

// Reader reads PDUs from a byte stream. It is owned by one goroutine.
type Reader struct {
	r *bufio.Reader
	// HeaderDigest and DataDigest enable CRC32C checking once negotiated.
	HeaderDigest, DataDigest bool
	// MaxRecvDataSegmentLength bounds incoming data segments; 8192 until
	// negotiated (RFC 7143 13.12).
	MaxRecvDataSegmentLength uint32
	buf                      []byte
	dig                      [4]byte
}

// NewReader returns a Reader with the pre-negotiation limits.
func NewReader(r io.Reader) *Reader {
	return &Reader{r: bufio.NewReaderSize(r, 64<<10), MaxRecvDataSegmentLength: defaultMaxRecvDSL}
}

// Read reads the next PDU into f. On ErrPDUTooLarge and ErrDataDigest the
// whole PDU has been consumed and f.BHS is valid, so the caller can answer
// with Reject and continue; any other error leaves the stream unusable.
func (r *Reader) Read(f *Frame) error {
	if _, err := io.ReadFull(r.r, f.BHS[:]); err != nil {
		return err
	}
	ahsLen := f.BHS.TotalAHSLength()
	dsl := f.BHS.DataSegmentLength()
	padded := int(dsl) + padLen(int(dsl))
	var hdrTail, dataTail int
	if r.HeaderDigest {
		hdrTail = 4
	}
	if r.DataDigest && dsl > 0 {
		dataTail = 4
	}
	// Read AHS + header digest first, checking the digest before trusting
	// DataSegmentLength.
	need := ahsLen + hdrTail
	if cap(r.buf) < need {
		r.buf = make([]byte, need, max(need, 4096))
	}
	hb := r.buf[:need]
	if _, err := io.ReadFull(r.r, hb); err != nil {
		return fmt.Errorf("iscsi: reading AHS: %w", noEOF(err))
	}
	if r.HeaderDigest {
		c := crc32.Update(crc32c(f.BHS[:]), castagnoli, hb[:ahsLen])
		if binary.LittleEndian.Uint32(hb[ahsLen:]) != c {
			return ErrHeaderDigest
		}
	}
	if dsl > r.MaxRecvDataSegmentLength {
		// RFC 7143 13.12: the limit is declared by the receiver; we skip
		// the segment to stay in sync and let the caller reject.
		if _, err := r.r.Discard(padded + dataTail); err != nil {
			return fmt.Errorf("iscsi: skipping oversized segment: %w", noEOF(err))
		}
		f.AHS, f.Data = nil, nil
		return fmt.Errorf("%w: %d > %d", ErrPDUTooLarge, dsl, r.MaxRecvDataSegmentLength)
	}
	total := need + padded + dataTail
	if cap(r.buf) < total {
		nb := make([]byte, total)
		copy(nb, hb)
		r.buf = nb
	}
	r.buf = r.buf[:total]
	f.AHS = r.buf[:ahsLen]
	seg := r.buf[need:total]
	if _, err := io.ReadFull(r.r, seg); err != nil {
		return fmt.Errorf("iscsi: reading data segment: %w", noEOF(err))
	}
	f.Data = seg[:dsl]
	if dataTail != 0 {
		if binary.LittleEndian.Uint32(seg[padded:]) != crc32c(seg[:padded]) {
			return ErrDataDigest
		}
	}
	return nil
}

// Buffered returns the number of bytes received and not yet read: a
// non-zero count means the next Read does not wait for the network.
func (r *Reader) Buffered() int { return r.r.Buffered() }

func noEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// Writer writes PDUs to a stream through its own buffer. Small PDUs are
// coalesced; a large data segment is not copied but sent with the bytes
// before it in one vectored write (writev on a TCP connection). It is
// owned by one goroutine; Flush pushes buffered bytes out.
type Writer struct {
	w io.Writer
	// HeaderDigest and DataDigest enable CRC32C once negotiated.
	HeaderDigest, DataDigest bool
	buf                      []byte
	vec                      [2][]byte
	bufs                     net.Buffers
	bhs                      BHS
	zero                     [4]byte // padding source (a field: no escape)
}

const (
	writerBuffer = 256 << 10 // flush when this much is pending
	directData   = 32 << 10  // segments this large are not copied
)

// NewWriter returns a Writer over w.
func NewWriter(w io.Writer) *Writer {
	return &Writer{w: w, buf: make([]byte, 0, writerBuffer+BHSLen+64)}
}

// Write encodes p and buffers it with padding and digests.
func (w *Writer) Write(p Outgoing) error {
	p.EncodeBHS(&w.bhs)
	return w.WriteRaw(&w.bhs, p.DataSegment())
}

// WriteRaw writes an encoded BHS and a data segment. data is not retained
// after WriteRaw returns.
func (w *Writer) WriteRaw(b *BHS, data []byte) error {
	w.buf = append(w.buf, b[:]...)
	if w.HeaderDigest {
		w.buf = binary.LittleEndian.AppendUint32(w.buf, crc32c(b[:]))
	}
	if len(data) > 0 {
		if len(data) >= directData {
			w.vec[0], w.vec[1] = w.buf, data
			w.bufs = w.vec[:]
			_, err := w.bufs.WriteTo(w.w)
			w.vec[0], w.vec[1] = nil, nil
			w.buf = w.buf[:0]
			if err != nil {
				return err
			}
		} else {
			w.buf = append(w.buf, data...)
		}
		pad := padLen(len(data))
		w.buf = append(w.buf, w.zero[:pad]...)
		if w.DataDigest {
			c := crc32.Update(crc32c(data), castagnoli, w.zero[:pad])
			w.buf = binary.LittleEndian.AppendUint32(w.buf, c)
		}
	}
	if len(w.buf) >= writerBuffer {
		return w.Flush()
	}
	return nil
}

// Buffered returns the number of bytes waiting for Flush.
func (w *Writer) Buffered() int { return len(w.buf) }

// Flush writes buffered bytes to the stream.
func (w *Writer) Flush() error {
	if len(w.buf) == 0 {
		return nil
	}
	_, err := w.w.Write(w.buf)
	w.buf = w.buf[:0]
	return err
}
