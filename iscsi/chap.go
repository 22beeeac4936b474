package iscsi

import (
	"crypto/md5"
	"crypto/sha256"
	"crypto/sha3"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"strconv"
)

// CHAP in the security stage (RFC 7143 12.1.3, RFC 1994):
//
//	I->T  AuthMethod=CHAP,None
//	T->I  AuthMethod=CHAP
//	I->T  CHAP_A=<A1,A2,...>
//	T->I  CHAP_A=<A> CHAP_I=<I> CHAP_C=<C>
//	I->T  CHAP_N=<N> CHAP_R=<R> [CHAP_I=<I'> CHAP_C=<C'>]   (mutual)
//	T->I  [CHAP_N=<N'> CHAP_R=<R'>]                          (mutual)
//
// R = H(I || secret || C) with H the algorithm A. C and R are binary
// values: "0x" hex or "0b" base64.

// chapAlgorithm is a CHAP_A value: an IANA PPP authentication algorithm
// number (RFC 7143 12.1.3 requires 5; Linux offers 7 and 8 as well).
type chapAlgorithm uint8

// CHAP algorithms this target implements.
const (
	chapMD5      chapAlgorithm = 5
	chapSHA256   chapAlgorithm = 7
	chapSHA3_256 chapAlgorithm = 8
)

// String names the algorithm.
func (a chapAlgorithm) String() string {
	switch a {
	case chapMD5:
		return "MD5"
	case chapSHA256:
		return "SHA-256"
	case chapSHA3_256:
		return "SHA3-256"
	}
	return fmt.Sprintf("chapAlgorithm(%d)", uint8(a))
}

// supported reports whether the target implements a.
func (a chapAlgorithm) supported() bool {
	return a == chapMD5 || a == chapSHA256 || a == chapSHA3_256
}

// newHash returns the algorithm's hash.
func (a chapAlgorithm) newHash() hash.Hash {
	switch a {
	case chapSHA256:
		return sha256.New()
	case chapSHA3_256:
		return sha3.New256()
	}
	return md5.New()
}

// challengeLen is the length of the challenges the target sends: 16
// bytes for MD5 (RFC 1994 suggests at least the hash size) and the
// 32-byte digest size for the SHA algorithms.
func (a chapAlgorithm) challengeLen() int {
	if a == chapMD5 {
		return md5.Size
	}
	return 32
}

// chapResponse computes the CHAP response H(id || secret || challenge)
// (RFC 1994 4.1).
func chapResponse(a chapAlgorithm, id byte, secret string, challenge []byte) []byte {
	h := a.newHash()
	h.Write([]byte{id})
	io.WriteString(h, secret)
	h.Write(challenge)
	return h.Sum(nil)
}

// chapMaxBinary bounds CHAP_C and CHAP_R: "Their binary length (not the
// length of the character string that represents them in encoded form)
// MUST NOT exceed 1024 bytes" (RFC 7143 12.1.3).
const chapMaxBinary = 1024

// errBinaryValue is returned for a malformed binary-value.
var errBinaryValue = errors.New("malformed binary value")

// decodeBinaryValue decodes a binary-value (RFC 7143 6.1): a hex-constant
// ("0x" or "0X", hex digits; an odd count gets a leading zero) or a
// base64-constant ("0b" or "0B", RFC 4648 base64 with or without padding).
func decodeBinaryValue(s string) ([]byte, error) {
	if len(s) < 3 || s[0] != '0' {
		return nil, errBinaryValue
	}
	body := s[2:]
	switch s[1] {
	case 'x', 'X':
		if len(body)%2 == 1 {
			body = "0" + body
		}
		b, err := hex.DecodeString(body)
		if err != nil {
			return nil, errBinaryValue
		}
		return b, nil
	case 'b', 'B':
		b, err := base64.StdEncoding.Strict().DecodeString(body)
		if err != nil {
			b, err = base64.RawStdEncoding.Strict().DecodeString(body)
		}
		if err != nil {
			return nil, errBinaryValue
		}
		return b, nil
	}
	return nil, errBinaryValue
}

// encodeHexValue encodes b as a hex-constant, the encoding every
// initiator reads.
func encodeHexValue(b []byte) string { return "0x" + hex.EncodeToString(b) }

// chapPhase is where the target's side of a CHAP exchange stands.
type chapPhase uint8

// CHAP phases.
const (
	chapWantAlgorithm chapPhase = iota
	chapWantResponse
	chapDone
)

// String names the phase.
func (p chapPhase) String() string {
	switch p {
	case chapWantAlgorithm:
		return "waiting for CHAP_A"
	case chapWantResponse:
		return "waiting for CHAP_N and CHAP_R"
	case chapDone:
		return "done"
	}
	return fmt.Sprintf("chapPhase(%d)", uint8(p))
}

// chapFailure is why a CHAP exchange failed. The reason is logged and
// never sent; it holds no secrets, challenges or responses.
type chapFailure struct {
	reason string
	// guess: the initiator's name or response was wrong (what an online
	// guessing attack produces), not the exchange's form.
	guess bool
}

func (e *chapFailure) Error() string { return "CHAP: " + e.reason }

func chapFail(format string, args ...any) *chapFailure {
	return &chapFailure{reason: fmt.Sprintf(format, args...)}
}

// chapAuth is the target side of one CHAP exchange.
type chapAuth struct {
	creds     *CHAPSecret
	rand      io.Reader
	phase     chapPhase
	alg       chapAlgorithm
	id        byte
	challenge []byte
}

func newCHAPAuth(creds *CHAPSecret, rand io.Reader) *chapAuth {
	return &chapAuth{creds: creds, rand: rand}
}

// mutualConfigured reports whether the target has credentials to
// authenticate itself.
func (c *chapAuth) mutualConfigured() bool {
	return c.creds.MutualUsername != "" && c.creds.MutualSecret != ""
}

// step consumes the CHAP keys of one request (keys holds only CHAP_*
// keys, each at most once) and returns the pairs to answer.
func (c *chapAuth) step(keys map[string]string) ([]textPair, error) {
	switch c.phase {
	case chapWantAlgorithm:
		return c.selectAlgorithm(keys)
	case chapWantResponse:
		return c.verify(keys)
	}
	return nil, chapFail("CHAP keys after the exchange completed")
}

// selectAlgorithm answers CHAP_A with the algorithm, identifier and
// challenge.
func (c *chapAuth) selectAlgorithm(keys map[string]string) ([]textPair, error) {
	offer, ok := keys[keyCHAPA]
	if !ok {
		if len(keys) == 0 {
			return nil, nil // nothing yet
		}
		return nil, chapFail("expected CHAP_A first")
	}
	if len(keys) != 1 {
		return nil, chapFail("unexpected keys along with CHAP_A")
	}
	items, ok := parseTextList(offer)
	if !ok {
		return nil, chapFail("malformed CHAP_A %s", textQuote(offer))
	}
	// RFC 7143 12.1.3: "A is one of A1,A2... that were proposed by the
	// initiator"; we take the first we implement, in the initiator's order
	// of preference.
	for _, it := range items {
		n, ok := parseTextNumber(it)
		if !ok || n > 255 || !chapAlgorithm(n).supported() {
			continue
		}
		c.alg = chapAlgorithm(n)
		break
	}
	if c.alg == 0 {
		return nil, chapFail("no supported algorithm in CHAP_A %s", textQuote(offer))
	}
	var idb [1]byte
	c.challenge = make([]byte, c.alg.challengeLen())
	if _, err := io.ReadFull(c.rand, idb[:]); err != nil {
		return nil, fmt.Errorf("CHAP: random identifier: %w", err)
	}
	if _, err := io.ReadFull(c.rand, c.challenge); err != nil {
		return nil, fmt.Errorf("CHAP: random challenge: %w", err)
	}
	c.id = idb[0]
	c.phase = chapWantResponse
	return []textPair{
		{keyCHAPA, strconv.Itoa(int(c.alg))},
		{keyCHAPI, strconv.Itoa(int(c.id))},
		{keyCHAPC, encodeHexValue(c.challenge)},
	}, nil
}

// verify checks CHAP_N and CHAP_R and answers a mutual challenge.
func (c *chapAuth) verify(keys map[string]string) ([]textPair, error) {
	if len(keys) == 0 {
		return nil, nil // an empty request while we wait
	}
	name, okN := keys[keyCHAPN]
	resp, okR := keys[keyCHAPR]
	if !okN || !okR {
		return nil, chapFail("CHAP_N and CHAP_R must come together")
	}
	if _, ok := keys[keyCHAPA]; ok {
		return nil, chapFail("CHAP_A sent twice")
	}
	mi, okI := keys[keyCHAPI]
	mc, okC := keys[keyCHAPC]
	if okI != okC {
		return nil, chapFail("CHAP_I and CHAP_C must come together")
	}
	if c.creds.Secret == "" {
		return nil, chapFail("no CHAP secret configured for user %s", textQuote(c.creds.Username))
	}
	got, err := decodeBinaryValue(resp)
	if err != nil {
		f := chapFail("malformed CHAP_R")
		f.guess = true
		return nil, f
	}
	want := chapResponse(c.alg, c.id, c.creds.Secret, c.challenge)
	// Compare name and response without early exit, so that timing tells
	// nothing about which one was wrong.
	nameOK := subtle.ConstantTimeCompare([]byte(name), []byte(c.creds.Username))
	respOK := subtle.ConstantTimeCompare(got, want)
	if nameOK&respOK != 1 {
		f := chapFail("wrong CHAP_R for user %s", textQuote(name))
		if nameOK != 1 {
			f = chapFail("unknown CHAP_N %s", textQuote(name))
		}
		f.guess = true
		return nil, f
	}
	if !okI {
		if c.mutualConfigured() {
			// The target is configured to prove itself: an initiator
			// that does not ask is not talking to us the way the admin
			// set up, so the login fails.
			return nil, chapFail("mutual CHAP is configured but the initiator sent no CHAP_I/CHAP_C")
		}
		c.phase = chapDone
		return nil, nil
	}
	if !c.mutualConfigured() {
		return nil, chapFail("initiator asked for mutual CHAP, none is configured")
	}
	if c.creds.MutualSecret == c.creds.Secret {
		// RFC 7143 9.2.1: "Any CHAP secret used for initiator
		// authentication MUST NOT be configured for authentication of any
		// target".
		return nil, chapFail("mutual CHAP secret equals the initiator secret; refusing to use it")
	}
	id, ok := parseTextNumber(mi)
	if !ok || id > 255 {
		return nil, chapFail("malformed CHAP_I")
	}
	ch, err := decodeBinaryValue(mc)
	if err != nil || len(ch) == 0 || len(ch) > chapMaxBinary {
		return nil, chapFail("malformed CHAP_C")
	}
	// RFC 7143 9.2.1: "Originators MUST NOT reuse the CHAP challenge sent
	// by the Responder for the other direction of a bidirectional
	// authentication. Responders MUST check for this condition and close
	// the iSCSI TCP connection if it occurs."
	if subtle.ConstantTimeCompare(ch, c.challenge) == 1 {
		return nil, chapFail("initiator reflected the target's challenge")
	}
	c.phase = chapDone
	return []textPair{
		{keyCHAPN, c.creds.MutualUsername},
		{keyCHAPR, encodeHexValue(chapResponse(c.alg, byte(id), c.creds.MutualSecret, ch))},
	}, nil
}
