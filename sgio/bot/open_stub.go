//go:build !cgo || nousb

package bot

import "github.com/sanbridge/sanbridge/sgio"

// BuiltIn reports whether this binary can drive USB devices ([Open]
// works): built with cgo and without the nousb tag.
const BuiltIn = false

// Open fails with [ErrNotBuiltIn]: this binary was built without USB
// support (the nousb tag, or no cgo).
func Open(sel Selector, opts ...Option) (*Transport, error) {
	return nil, &sgio.OpError{Op: "open", Path: "usb " + sel.String(), Err: ErrNotBuiltIn}
}
