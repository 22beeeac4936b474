package iscsi

import (
	"errors"
	"fmt"
	"strings"
)

// iSCSI names (RFC 7143 4.2.7, RFC 3720 3.2.6, RFC 3721, RFC 3980 for naa.,
// RFC 3722 for the stringprep profile):
//
//	iqn.YYYY-MM.reversed.domain[:anything]   iqn.2001-04.com.example:storage.disk1
//	eui.<16 hex digits>                      eui.02004567a425678d
//	naa.<16 or 32 hex digits>                naa.52004567ba64678d
//
// An iSCSI name is at most 223 bytes of UTF-8 (RFC 7143 4.2.7.1). Names are
// compared after the RFC 3722 stringprep profile, whose effect on ASCII is to
// fold upper case to lower case and to prohibit every ASCII character other
// than letters, digits, '-', '.' and ':' (RFC 3722 section 6). The profile
// also admits many non-ASCII characters after Unicode normalization (NFKC);
// this implementation does not carry the Unicode tables and rejects
// non-ASCII names with an error that says so.

// nameMaxBytes is the longest iSCSI name in bytes, UTF-8 encoded
// (RFC 7143 4.2.7.1, RFC 3720 3.2.6.1).
const nameMaxBytes = 223

// nameShownMax bounds how much of an invalid name an error message quotes,
// so that a peer cannot make us log kilobytes of garbage.
const nameShownMax = 255

// ErrInvalidName is the sentinel every [*NameError] matches with
// [errors.Is].
var ErrInvalidName = errors.New("iscsi: invalid iSCSI name")

// NameError describes why a string is not a valid iSCSI name. It matches
// [ErrInvalidName] with [errors.Is].
type NameError struct {
	// Name is the rejected name as given.
	Name string
	// Offset is the byte offset of the offending character in Name, or -1
	// when the problem is not at one character (length, missing part).
	Offset int
	// Reason says what is wrong and, where it helps, what a valid name
	// looks like.
	Reason string
}

// Error returns "invalid iSCSI name "...": reason".
func (e *NameError) Error() string {
	shown := e.Name
	if len(shown) > nameShownMax {
		shown = shown[:nameShownMax] + "..."
	}
	return fmt.Sprintf("invalid iSCSI name %q: %s", shown, e.Reason)
}

// Is reports whether target is [ErrInvalidName].
func (e *NameError) Is(target error) bool { return target == ErrInvalidName }

// ValidateName reports whether name is a valid iSCSI name: an iqn., eui. or
// naa. name of at most 223 bytes made of ASCII letters, digits, '-', '.'
// and ':'. Upper-case letters are accepted because the RFC 3722 profile
// folds them; compare names with [NormalizeName]. The error is a
// [*NameError].
func ValidateName(name string) error {
	_, err := NormalizeName(name)
	return err
}

// NormalizeName validates name like [ValidateName] and returns its
// normalized form (RFC 3722 stringprep restricted to ASCII: letters folded
// to lower case). Two names denote the same node if and only if their
// normalized forms are equal byte for byte (RFC 7143 4.2.7.1). The error is
// a [*NameError].
func NormalizeName(name string) (string, error) {
	fail := func(off int, format string, args ...any) (string, error) {
		return "", &NameError{Name: name, Offset: off, Reason: fmt.Sprintf(format, args...)}
	}
	if name == "" {
		return fail(-1, "empty name; use iqn.YYYY-MM.reversed.domain[:unique], eui.<16 hex digits> or naa.<16 or 32 hex digits>")
	}
	if len(name) > nameMaxBytes {
		return fail(-1, "%d bytes long; iSCSI names are at most %d bytes (RFC 7143 4.2.7.1)", len(name), nameMaxBytes)
	}
	var b strings.Builder
	b.Grow(len(name))
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '-', c == '.', c == ':':
			b.WriteByte(c)
		case c >= 'A' && c <= 'Z':
			b.WriteByte(c + ('a' - 'A'))
		case c >= 0x80:
			return fail(i, "non-ASCII byte 0x%02x at offset %d: internationalized iSCSI names (RFC 3722 stringprep with Unicode) are not supported; use ASCII letters, digits, '-', '.' and ':'", c, i)
		default:
			return fail(i, "character %q at offset %d is not allowed; iSCSI names contain only ASCII letters, digits, '-', '.' and ':' (RFC 3722 section 6)", rune(c), i)
		}
	}
	norm := b.String()
	var err error
	switch {
	case strings.HasPrefix(norm, "iqn."):
		err = nameCheckIQN(norm)
	case strings.HasPrefix(norm, "eui."):
		err = nameCheckHex(norm, "eui", 16)
	case strings.HasPrefix(norm, "naa."):
		err = nameCheckHex(norm, "naa", 16, 32)
	default:
		return fail(0, "unknown name type; an iSCSI name starts with \"iqn.\", \"eui.\" or \"naa.\" (RFC 7143 4.2.7.2)")
	}
	if err != nil {
		var ne *NameError
		if errors.As(err, &ne) {
			ne.Name = name
		}
		return "", err
	}
	return norm, nil
}

// nameCheckIQN checks a normalized "iqn." name: a date YYYY-MM, a '.', a
// reversed domain name of non-empty labels, and optionally ':' followed by
// a non-empty string chosen by the naming authority (RFC 7143 4.2.7.2).
func nameCheckIQN(s string) error {
	fail := func(off int, format string, args ...any) error {
		if off >= len(s) {
			off = -1 // the name ends before the missing part
		}
		return &NameError{Name: s, Offset: off, Reason: fmt.Sprintf(format, args...)}
	}
	const example = " (example: iqn.2001-04.com.example:storage.disk1)"
	rest := s[4:]
	// Date: exactly "YYYY-MM" followed by '.'.
	if len(rest) < 8 || !nameIsDigits(rest[0:4]) || rest[4] != '-' || !nameIsDigits(rest[5:7]) || rest[7] != '.' {
		return fail(4, "an iqn name continues with the date YYYY-MM and a '.' after \"iqn.\""+example)
	}
	month := int(rest[5]-'0')*10 + int(rest[6]-'0')
	if month < 1 || month > 12 {
		return fail(9, "month %s is not 01-12"+example, rest[5:7])
	}
	rest = rest[8:]
	off := 12
	authority, unique, hasColon := strings.Cut(rest, ":")
	if authority == "" {
		return fail(off, "missing naming authority (a reversed domain name such as com.example) after the date"+example)
	}
	for label := range strings.SplitSeq(authority, ".") {
		if label == "" {
			return fail(off, "empty label in naming authority %q; the reversed domain name needs labels between the dots"+example, authority)
		}
		off += len(label) + 1
	}
	if hasColon && unique == "" {
		return fail(len(s)-1, "nothing follows ':'; either remove the ':' or add a unique string after it"+example)
	}
	return nil
}

// nameCheckHex checks a normalized "eui." or "naa." name: the prefix and
// one of the allowed numbers of hexadecimal digits.
func nameCheckHex(s, kind string, digits ...int) error {
	hex := s[4:]
	ok := false
	for _, d := range digits {
		if len(hex) == d {
			ok = true
		}
	}
	want := fmt.Sprint(digits[0])
	if len(digits) > 1 {
		want = fmt.Sprintf("%d or %d", digits[0], digits[1])
	}
	for i := 0; i < len(hex); i++ {
		c := hex[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return &NameError{Name: s, Offset: 4 + i, Reason: fmt.Sprintf("%q at offset %d is not a hexadecimal digit; an %s name has %s hexadecimal digits after %q", rune(c), 4+i, kind, want, kind+".")}
		}
	}
	if !ok {
		return &NameError{Name: s, Offset: -1, Reason: fmt.Sprintf("an %s name has %s hexadecimal digits after %q, not %d", kind, want, kind+".", len(hex))}
	}
	return nil
}

// nameIsDigits reports whether s is non-empty and all ASCII digits.
func nameIsDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
