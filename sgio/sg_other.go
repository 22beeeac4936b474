//go:build !linux

package sgio

import (
	"context"
	"errors"
)

// SG is a SCSI device reached through the Linux sg driver. On this
// platform there is none: [Open] fails with errors.ErrUnsupported.
type SG struct{}

// Open fails with errors.ErrUnsupported: the sg driver exists only on Linux.
func Open(path string, opts ...Option) (*SG, error) {
	return nil, &OpError{Op: "open", Path: path, Err: errors.ErrUnsupported}
}

// Do fails with errors.ErrUnsupported.
func (s *SG) Do(ctx context.Context, req *Request) (*Result, error) {
	return nil, &OpError{Op: "submit", Err: errors.ErrUnsupported}
}

// Execute fails with errors.ErrUnsupported.
func (s *SG) Execute(ctx context.Context, req *Request, res *Result) error {
	*res = Result{}
	return &OpError{Op: "submit", Err: errors.ErrUnsupported}
}

// ExecuteLent fails with errors.ErrUnsupported.
func (s *SG) ExecuteLent(ctx context.Context, req *Request, res *Result) ([]byte, func(), error) {
	return nil, nil, s.Execute(ctx, req, res)
}

// Limits returns zero limits.
func (s *SG) Limits() Limits { return Limits{} }

// Info returns nothing.
func (s *SG) Info() Info { return Info{} }

// Close does nothing.
func (s *SG) Close() error { return nil }

var (
	_ Device = (*SG)(nil)
	_ Lender = (*SG)(nil)
)
