package conf

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/rs/zerolog"
)

// Redacted replaces a set secret wherever a configuration is printed,
// marshaled or logged.
const Redacted = "REDACTED"

// redact returns Redacted for a set secret and "" for an unset one, so
// that output still shows whether a secret is configured.
func redact(secret string) string {
	if secret == "" {
		return ""
	}
	return Redacted
}

// String describes the credentials with the secrets redacted.
func (c CHAP) String() string {
	s := fmt.Sprintf("CHAP{Username:%q Secret:%s", c.Username, redact(c.Secret))
	if c.MutualUsername != "" || c.MutualSecret != "" {
		s += fmt.Sprintf(" MutualUsername:%q MutualSecret:%s", c.MutualUsername, redact(c.MutualSecret))
	}
	return s + "}"
}

// GoString implements fmt.GoStringer with the secrets redacted.
func (c CHAP) GoString() string {
	return fmt.Sprintf("conf.CHAP{Username:%q, Secret:%q, MutualUsername:%q, MutualSecret:%q}",
		c.Username, redact(c.Secret), c.MutualUsername, redact(c.MutualSecret))
}

// chapJSON is the JSON form of CHAP.
type chapJSON struct {
	Username       string `json:"username"`
	Secret         string `json:"secret"`
	MutualUsername string `json:"mutual_username,omitempty"`
	MutualSecret   string `json:"mutual_secret,omitempty"`
}

// MarshalJSON implements json.Marshaler with the secrets redacted.
func (c CHAP) MarshalJSON() ([]byte, error) {
	return json.Marshal(chapJSON{
		Username:       c.Username,
		Secret:         redact(c.Secret),
		MutualUsername: c.MutualUsername,
		MutualSecret:   redact(c.MutualSecret),
	})
}

// MarshalZerologObject implements zerolog.LogObjectMarshaler: the user
// names and whether CHAP is mutual, never the secrets.
func (c *CHAP) MarshalZerologObject(e *zerolog.Event) {
	if c == nil {
		return
	}
	e.Str("username", c.Username).Bool("mutual", c.Mutual())
	if c.MutualUsername != "" {
		e.Str("mutual_username", c.MutualUsername)
	}
}

// configJSON has Config's fields without its methods, for encoding.
type configJSON Config

// MarshalJSON implements json.Marshaler; CHAP secrets are redacted and
// source ranges left out.
func (c Config) MarshalJSON() ([]byte, error) {
	return json.Marshal(configJSON(c))
}

// String returns the configuration as compact JSON with secrets redacted.
func (c Config) String() string {
	b, err := c.MarshalJSON()
	if err != nil {
		return fmt.Sprintf("conf.Config{%v}", err)
	}
	return string(b)
}

// GoString implements fmt.GoStringer; nested CHAP values print through
// their own redacting GoString.
func (c Config) GoString() string {
	return "conf.Config" + strings.TrimPrefix(fmt.Sprintf("%#v", configJSON(c)), "conf.configJSON")
}

// MarshalZerologObject implements zerolog.LogObjectMarshaler: the log
// level, portals, discovery, initiator groups, backends and targets as JSON
// with secrets redacted.
func (c *Config) MarshalZerologObject(e *zerolog.Event) {
	if c == nil {
		return
	}
	e.Str("log_level", c.LogLevel.String())
	for _, f := range []struct {
		key string
		v   any
	}{{"portals", c.Portals}, {"discovery", c.Discovery}, {"initiator_groups", c.InitiatorGroups}, {"backends", c.Backends}, {"targets", c.Targets}, {"cluster", c.Cluster}, {"metrics", c.Metrics}, {"isns", c.ISNS}} {
		b, err := json.Marshal(f.v)
		if err != nil {
			e.Str(f.key+"_error", err.Error())
			continue
		}
		e.RawJSON(f.key, b)
	}
}
