//go:build !linux

package emul

import (
	"errors"
	"io/fs"
	"os"
)

// punchHole is not supported here: ranges are zeroed by writing.
func punchHole(*os.File, int64, int64) error { return errors.ErrUnsupported }

// fileExtent is not supported here: everything reads as mapped.
func fileExtent(*os.File, int64, int64) (bool, int64, error) {
	return false, 0, errors.ErrUnsupported
}

// fsBlockSize is 4096: the file system's block size is not looked up here.
func fsBlockSize(fs.FileInfo) int64 { return 4096 }
