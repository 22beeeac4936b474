package iscsi

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Text keys (RFC 7143 6.1). Login and Text PDUs carry key=value pairs in
// their data segment, each pair followed by one null byte:
//
//	HeaderDigest=CRC32C,None\0MaxRecvDataSegmentLength=65536\0
//
// A sequence of pairs may span several PDUs (the C bit); it is parsed only
// once complete, so a pair split across PDUs needs no special care.

// Limits on text (RFC 7143 6.1).
const (
	// textKeyMaxLen: "A standard-label ... MUST NOT exceed 63 characters."
	textKeyMaxLen = 63
	// textValueMaxLen bounds simple values: "the maximum length of an
	// individual value (not its encoded representation) is 255 bytes".
	textValueMaxLen = 255
	// textBinaryMaxLen bounds the encoded form of binary values (CHAP_C
	// and CHAP_R carry up to 1024 bytes, 2050 characters in hex) and of
	// values of keys we do not know.
	textBinaryMaxLen = 8192
	// textSeqMaxLen bounds the key data of one negotiation sequence (all
	// the PDUs of one request chained with the C bit). RFC 7143 6.1 asks
	// for at least 16384 bytes, 65536 with long authentication items.
	textSeqMaxLen = 64 << 10
	// textLoginMaxSegment is the largest login response data segment we
	// send before the initiator's declaration takes effect: the RFC 7143
	// 13.12 default MaxRecvDataSegmentLength.
	textLoginMaxSegment = defaultMaxRecvDSL
)

// Constant answers (RFC 7143 6.2).
const (
	textNotUnderstood = "NotUnderstood"
	textIrrelevant    = "Irrelevant"
	textReject        = "Reject"
	textYes           = "Yes"
	textNo            = "No"
	textNone          = "None"
)

// textPair is one key=value pair.
type textPair struct {
	Key, Value string
}

// textSyntaxError describes key=value text that breaks the syntax of
// RFC 7143 6.1. At login it fails the login with an initiator error; in
// full feature phase the Text Request is rejected.
type textSyntaxError struct {
	// Offset is the byte offset of the offending pair in the text.
	Offset int
	// Reason says what is wrong.
	Reason string
}

// Error implements error.
func (e *textSyntaxError) Error() string {
	return fmt.Sprintf("iscsi: malformed key=value text at byte %d: %s", e.Offset, e.Reason)
}

// textQuoteMax bounds how much of peer text an error message quotes.
const textQuoteMax = 64

// textQuote quotes s for an error message, truncated.
func textQuote(s string) string {
	if len(s) > textQuoteMax {
		return strconv.Quote(s[:textQuoteMax]) + "..."
	}
	return strconv.Quote(s)
}

// parseText splits a complete key=value text into pairs, in order.
// Empty items (runs of null bytes, as some initiators pad) are skipped.
func parseText(data []byte) ([]textPair, error) {
	var pairs []textPair
	for off := 0; off < len(data); {
		n := bytes.IndexByte(data[off:], 0)
		if n < 0 {
			// RFC 7143 6.1: "Every key=value pair, including the last or
			// only pair in a LTDS, MUST be followed by one null (0x00)
			// delimiter."
			return nil, &textSyntaxError{Offset: off, Reason: "key=value pair not terminated by a null byte"}
		}
		item := data[off : off+n]
		if n == 0 {
			off++
			continue
		}
		eq := bytes.IndexByte(item, '=')
		if eq < 0 {
			return nil, &textSyntaxError{Offset: off, Reason: "no '=' in " + textQuote(string(item))}
		}
		key, val := item[:eq], item[eq+1:]
		if err := textCheckKey(key); err != "" {
			return nil, &textSyntaxError{Offset: off, Reason: err}
		}
		if len(val) > textBinaryMaxLen {
			return nil, &textSyntaxError{Offset: off, Reason: fmt.Sprintf("value of %s is %d bytes long", key, len(val))}
		}
		if !utf8.Valid(val) {
			// RFC 7143 6.1: text values are UTF-8.
			return nil, &textSyntaxError{Offset: off, Reason: fmt.Sprintf("value of %s is not UTF-8", key)}
		}
		pairs = append(pairs, textPair{Key: string(key), Value: string(val)})
		off += n + 1
	}
	return pairs, nil
}

// textCheckKey checks a key name: 1 to 63 characters that may appear in a
// standard-label ("letters, digits, dot, minus, plus, commercial at, or
// underscore") or an extension key ("X-" and "X#" prefixes). A key that
// does not start with a capital letter is well formed enough to be
// answered NotUnderstood. It returns a reason, or "" when the key is fine.
func textCheckKey(key []byte) string {
	if len(key) == 0 {
		return "empty key name"
	}
	if len(key) > textKeyMaxLen {
		return fmt.Sprintf("key name of %d bytes (at most %d)", len(key), textKeyMaxLen)
	}
	for _, c := range key {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case c == '.', c == '-', c == '+', c == '@', c == '_', c == '#':
		default:
			return "invalid character in key name " + textQuote(string(key))
		}
	}
	return ""
}

// appendTextPair appends key=value and its null delimiter.
func appendTextPair(dst []byte, key, value string) []byte {
	dst = append(dst, key...)
	dst = append(dst, '=')
	dst = append(dst, value...)
	return append(dst, 0)
}

// isAnswerValue reports whether v is one of the constants a responder
// answers with. An initiator sends them only in answer to a key the
// target offered; they change nothing and need no answer.
func isAnswerValue(v string) bool {
	return v == textNotUnderstood || v == textIrrelevant || v == textReject
}

// parseTextNumber parses a numerical-value: a decimal-constant or a
// hex-constant ("0x" or "0X" and 1 to 16 hex digits), RFC 7143 6.1.
func parseTextNumber(s string) (uint64, bool) {
	if len(s) > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X') {
		h := s[2:]
		if len(h) > 16 {
			return 0, false
		}
		for i := 0; i < len(h); i++ {
			if !isHexDigit(h[i]) {
				return 0, false
			}
		}
		v, err := strconv.ParseUint(h, 16, 64)
		return v, err == nil
	}
	if s == "" || len(s) > 20 {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	v, err := strconv.ParseUint(s, 10, 64)
	return v, err == nil
}

func isHexDigit(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// parseTextBool parses a boolean-value: "Yes" or "No".
func parseTextBool(s string) (v, ok bool) {
	switch s {
	case textYes:
		return true, true
	case textNo:
		return false, true
	}
	return false, false
}

// formatTextBool formats a boolean-value.
func formatTextBool(b bool) string {
	if b {
		return textYes
	}
	return textNo
}

// parseTextList splits a list-of-values. ok is false when an item is
// empty or the value is too long.
func parseTextList(s string) ([]string, bool) {
	if s == "" || len(s) > textValueMaxLen {
		return nil, false
	}
	items := strings.Split(s, ",")
	for _, it := range items {
		if it == "" {
			return nil, false
		}
	}
	return items, true
}
