package iscsi

import (
	"bytes"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"testing"
)

// TestCHAPResponseVector checks the MD5 response against a value computed
// independently: MD5(0x01 || "secret" || 0x00..0x0f).
func TestCHAPResponseVector(t *testing.T) {
	ch := make([]byte, 16)
	for i := range ch {
		ch[i] = byte(i)
	}
	want := md5.Sum(append(append([]byte{1}, "secret"...), ch...))
	if got := chapResponse(chapMD5, 1, "secret", ch); !bytes.Equal(got, want[:]) {
		t.Fatalf("MD5 response %x, want %x", got, want)
	}
	for _, a := range []chapAlgorithm{chapSHA256, chapSHA3_256} {
		r := chapResponse(a, 1, "secret", ch)
		if len(r) != 32 || bytes.Equal(r, chapResponse(chapSHA256+chapSHA3_256-a, 1, "secret", ch)) {
			t.Errorf("%v response %x", a, r)
		}
	}
}

func TestDecodeBinaryValue(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want string // hex, or "error"
	}{
		{"0x0102ff", "0102ff"}, {"0XABcd", "abcd"}, {"0x102", "0102"}, {"0x1", "01"},
		{"0bAQL/", "0102ff"}, {"0BAQI=", "0102"}, {"0bAQI", "0102"},
		{"0x", "error"}, {"0b", "error"}, {"0xzz", "error"}, {"0b!!", "error"},
		{"0102", "error"}, {"", "error"}, {"0y12", "error"}, {"0bAQ==x", "error"},
	} {
		b, err := decodeBinaryValue(tc.in)
		got := hex.EncodeToString(b)
		if err != nil {
			got = "error"
		}
		if got != tc.want {
			t.Errorf("decodeBinaryValue(%q) = %s, want %s", tc.in, got, tc.want)
		}
	}
}

// fixedRand is a deterministic "random" source for CHAP tests.
type fixedRand byte

func (f fixedRand) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(f) + byte(i)
	}
	return len(p), nil
}

func TestCHAPAuthSequence(t *testing.T) {
	creds := &CHAPSecret{Username: "u", Secret: "twelve-bytes-secret"}
	c := newCHAPAuth(creds, fixedRand(7))
	pairs, err := c.step(map[string]string{})
	if err != nil || pairs != nil || c.phase != chapWantAlgorithm {
		t.Fatalf("empty step: %v %v %v", pairs, err, c.phase)
	}
	pairs, err = c.step(map[string]string{keyCHAPA: "99,7"})
	if err != nil || len(pairs) != 3 {
		t.Fatalf("CHAP_A: %v %v", pairs, err)
	}
	if pairs[0].Value != "7" || pairs[1].Value != "7" || pairs[2].Value != "0x"+hex.EncodeToString(c.challenge) {
		t.Fatalf("challenge pairs %v", pairs)
	}
	r := chapResponse(chapSHA256, 7, creds.Secret, c.challenge)
	pairs, err = c.step(map[string]string{keyCHAPN: "u", keyCHAPR: encodeHexValue(r)})
	if err != nil || pairs != nil || c.phase != chapDone {
		t.Fatalf("response: %v %v %v", pairs, err, c.phase)
	}
	if _, err := c.step(map[string]string{keyCHAPN: "u"}); err == nil {
		t.Fatal("keys after done accepted")
	}
}

func TestCHAPEmptySecretRefused(t *testing.T) {
	c := newCHAPAuth(&CHAPSecret{Username: "u"}, fixedRand(1))
	if _, err := c.step(map[string]string{keyCHAPA: "5"}); err != nil {
		t.Fatal(err)
	}
	// Without a secret the expected response is computable by anyone.
	r := chapResponse(chapMD5, c.id, "", c.challenge)
	_, err := c.step(map[string]string{keyCHAPN: "u", keyCHAPR: encodeHexValue(r)})
	var cf *chapFailure
	if !errors.As(err, &cf) {
		t.Fatalf("empty secret: %v", err)
	}
}

func TestCHAPMutualSameSecretRefused(t *testing.T) {
	creds := &CHAPSecret{Username: "u", Secret: "same-secret-123", MutualUsername: "t", MutualSecret: "same-secret-123"}
	c := newCHAPAuth(creds, fixedRand(1))
	c.step(map[string]string{keyCHAPA: "5"})
	r := chapResponse(chapMD5, c.id, creds.Secret, c.challenge)
	_, err := c.step(map[string]string{keyCHAPN: "u", keyCHAPR: encodeHexValue(r), keyCHAPI: "3", keyCHAPC: "0x0102030405"})
	if err == nil {
		t.Fatal("mutual CHAP with the initiator's secret accepted")
	}
}

// FuzzCHAP decodes arbitrary CHAP values and runs the exchange with
// them: no panics, and only the correct response authenticates.
func FuzzCHAP(f *testing.F) {
	f.Add("5", "u", "0x00", "", "")
	f.Add("7,5", "u", "0bAAAA", "1", "0x0102")
	f.Add("8", "user", "0X"+string(make([]byte, 10)), "256", "0b")
	f.Add("0x5", "u", "0x", "0x01", "0x"+hex.EncodeToString(make([]byte, 1025)))
	f.Fuzz(func(t *testing.T, algs, name, resp, id, challenge string) {
		decodeBinaryValue(resp)
		decodeBinaryValue(challenge)
		creds := &CHAPSecret{Username: "u", Secret: "fuzz-secret-12", MutualUsername: "t", MutualSecret: "fuzz-mutual-12"}
		c := newCHAPAuth(creds, fixedRand(3))
		if _, err := c.step(map[string]string{keyCHAPA: algs}); err != nil {
			if c.phase != chapWantAlgorithm {
				t.Fatal("failed step advanced")
			}
			return
		}
		if !c.alg.supported() || len(c.challenge) != c.alg.challengeLen() {
			t.Fatalf("algorithm %v challenge %d", c.alg, len(c.challenge))
		}
		keys := map[string]string{keyCHAPN: name, keyCHAPR: resp}
		if id != "" || challenge != "" {
			keys[keyCHAPI], keys[keyCHAPC] = id, challenge
		}
		pairs, err := c.step(keys)
		if err != nil {
			return
		}
		want := chapResponse(c.alg, c.id, creds.Secret, c.challenge)
		got, _ := decodeBinaryValue(resp)
		if name != "u" || !bytes.Equal(got, want) {
			t.Fatalf("authenticated with CHAP_N=%q CHAP_R=%q", name, resp)
		}
		if len(pairs) != 2 || pairs[0].Value != "t" {
			t.Fatalf("mutual answer %v", pairs)
		}
	})
}
