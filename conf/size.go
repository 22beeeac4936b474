package conf

import (
	"errors"
	"fmt"
	"math"
	"math/big"
	"strconv"
	"strings"

	"github.com/zclconf/go-cty/cty"
)

// sizeUnit returns the multiplier of a lower-cased unit suffix. "K", "M"
// and so on are deliberately unknown: they are ambiguous.
func sizeUnit(unit string) (int64, bool) {
	switch unit {
	case "", "b":
		return 1, true
	case "kib":
		return 1 << 10, true
	case "mib":
		return 1 << 20, true
	case "gib":
		return 1 << 30, true
	case "tib":
		return 1 << 40, true
	case "pib":
		return 1 << 50, true
	case "kb":
		return 1e3, true
	case "mb":
		return 1e6, true
	case "gb":
		return 1e9, true
	case "tb":
		return 1e12, true
	case "pb":
		return 1e15, true
	}
	return 0, false
}

// sizeSyntax is the Detail text for a malformed size.
const sizeSyntax = `size is a whole number of bytes, or a string with a whole number and a unit: B, KiB, MiB, GiB, TiB, PiB (powers of 1024) or KB, MB, GB, TB, PB (powers of 1000), for example size = "64MiB"`

// errSize marks size syntax errors.
var errSize = errors.New("invalid size")

// ParseSize parses a size string such as "64MiB", "1 GB", "4096" or
// "512B" into bytes. Units are case-insensitive; the number is a
// non-negative whole decimal number.
func ParseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	i := 0
	for i < len(t) && t[i] >= '0' && t[i] <= '9' {
		i++
	}
	if i == 0 {
		return 0, fmt.Errorf("%w %q: no leading whole number", errSize, s)
	}
	if i < len(t) && (t[i] == '.' || t[i] == ',') {
		return 0, fmt.Errorf("%w %q: fractions are not supported; use a smaller unit (1536MiB, not 1.5GiB)", errSize, s)
	}
	unit := strings.ToLower(strings.TrimSpace(t[i:]))
	mult, ok := sizeUnit(unit)
	if !ok {
		return 0, fmt.Errorf("%w %q: unknown unit %q", errSize, s, strings.TrimSpace(t[i:]))
	}
	n, err := strconv.ParseUint(t[:i], 10, 63)
	if err != nil || n > uint64(math.MaxInt64/mult) {
		return 0, fmt.Errorf("%w %q: larger than %d bytes", errSize, s, int64(math.MaxInt64))
	}
	return int64(n) * mult, nil
}

// sizeValue turns a size attribute's value (string or number) into bytes.
func sizeValue(v cty.Value) (int64, error) {
	switch v.Type() {
	case cty.String:
		return ParseSize(v.AsString())
	case cty.Number:
		bf := v.AsBigFloat()
		if !bf.IsInt() || bf.Sign() < 0 {
			return 0, fmt.Errorf("%w: %s is not a whole number of bytes", errSize, bf.Text('g', 20))
		}
		if bf.Cmp(new(big.Float).SetInt64(math.MaxInt64)) > 0 {
			return 0, fmt.Errorf("%w: %s is larger than %d bytes", errSize, bf.Text('g', 20), int64(math.MaxInt64))
		}
		n, _ := bf.Int64()
		return n, nil
	}
	return 0, fmt.Errorf("%w: a %s is neither a number nor a string", errSize, v.Type().FriendlyName())
}

// formatSize renders bytes with the largest binary unit that divides them.
func formatSize(n int64) string {
	for _, u := range []struct {
		name string
		mult int64
	}{{"PiB", 1 << 50}, {"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n != 0 && n%u.mult == 0 {
			return strconv.FormatInt(n/u.mult, 10) + u.name
		}
	}
	return strconv.FormatInt(n, 10)
}

// sizeHint renders bytes as "1024 (1KiB)", or just "512" when no binary
// unit divides them.
func sizeHint(n int64) string {
	d := strconv.FormatInt(n, 10)
	if f := formatSize(n); f != d {
		return d + " (" + f + ")"
	}
	return d
}
