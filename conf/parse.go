package conf

import (
	"bytes"
	"cmp"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/gohcl"
	"github.com/hashicorp/hcl/v2/hclparse"
)

// MaxFileSize is the largest configuration file LoadFile reads.
const MaxFileSize = 4 << 20

// DefaultFilename is the name diagnostics give the embedded demo
// configuration ([Default], [DefaultSource]).
const DefaultFilename = "demo.hcl"

// defaultSource is a copy of deploy/examples/demo.hcl (a test keeps the
// two identical).
//
//go:embed demo.hcl
var defaultSource []byte

// DefaultSource returns the embedded demo configuration (a copy of
// deploy/examples/demo.hcl): one 64 MiB memory-backed disk, LUN 0 of the
// open target iqn.2026-11.io.sanbridge:demo, on 127.0.0.1:3260.
func DefaultSource() []byte { return bytes.Clone(defaultSource) }

// Default parses [DefaultSource]. The diagnostics hold the demo's expected
// warnings (an open target) and never an error.
func Default() (*Config, hcl.Diagnostics) {
	return NewParser().Parse(defaultSource, DefaultFilename)
}

// Parse parses and validates one configuration. See [Parser.Parse].
func Parse(src []byte, filename string) (*Config, hcl.Diagnostics) {
	return NewParser().Parse(src, filename)
}

// LoadFile reads, parses and validates one configuration file. See
// [Parser.LoadFile].
func LoadFile(path string) (*Config, hcl.Diagnostics) {
	return NewParser().LoadFile(path)
}

// Parser parses configurations and keeps the source of every file it has
// read, so that [Parser.WriteDiagnostics] can show source snippets. A
// Parser is not safe for concurrent use.
type Parser struct {
	p *hclparse.Parser
}

// NewParser returns an empty Parser.
func NewParser() *Parser {
	return &Parser{p: hclparse.NewParser()}
}

// Files returns the files read so far, by filename, as
// hcl.NewDiagnosticTextWriter wants them.
func (p *Parser) Files() map[string]*hcl.File { return p.p.Files() }

// Parse parses src as HCL native syntax under the given filename (used in
// diagnostics), decodes it and validates it. The Config is non-nil if and
// only if the diagnostics contain no error; warnings may accompany it.
// Diagnostics are sorted by position.
//
// A Parser reads each filename once: parsing the same filename again with
// the same bytes decodes the earlier parse, with different bytes it is an
// error (use a new Parser).
func (p *Parser) Parse(src []byte, filename string) (*Config, hcl.Diagnostics) {
	if prev, ok := p.p.Files()[filename]; ok && !bytes.Equal(prev.Bytes, src) {
		return nil, hcl.Diagnostics{{
			Severity: hcl.DiagError,
			Summary:  "File already parsed",
			Detail:   fmt.Sprintf("This parser already read a different %s; use a new conf.Parser for each version of a file.", filename),
		}}
	}
	f, diags := p.p.ParseHCL(src, filename)
	if diags.HasErrors() || f == nil {
		// Decoding a body with syntax errors only adds noise.
		return nil, sortDiagnostics(diags)
	}
	return p.decode(f, diags)
}

// LoadFile reads the file at path (at most [MaxFileSize] bytes) and parses
// it like [Parser.Parse], with path as the filename.
func (p *Parser) LoadFile(path string) (*Config, hcl.Diagnostics) {
	src, err := readLimited(path, MaxFileSize)
	if err != nil {
		return nil, hcl.Diagnostics{{
			Severity: hcl.DiagError,
			Summary:  "Failed to read configuration file",
			Detail:   fmt.Sprintf("%v.", err),
		}}
	}
	return p.Parse(src, path)
}

// errTooLarge is returned by readLimited for oversized files.
var errTooLarge = errors.New("file too large")

// readLimited reads at most limit bytes of the file at path and fails if
// there are more.
func readLimited(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	src, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if int64(len(src)) > limit {
		return nil, fmt.Errorf("%s: %w: a configuration is at most %d bytes", path, errTooLarge, limit)
	}
	return src, nil
}

// decode decodes a parsed file and validates it.
func (p *Parser) decode(f *hcl.File, diags hcl.Diagnostics) (*Config, hcl.Diagnostics) {
	var raw rawFile
	diags = append(diags, gohcl.DecodeBody(f.Body, nil, &raw)...)
	r := resolver{body: f.Body}
	cfg := r.resolve(&raw)
	diags = sortDiagnostics(append(diags, r.diags...))
	if diags.HasErrors() {
		return nil, diags
	}
	return cfg, diags
}

// sortDiagnostics orders diagnostics by file and position; those without
// a subject go last. The sort is stable.
func sortDiagnostics(diags hcl.Diagnostics) hcl.Diagnostics {
	slices.SortStableFunc(diags, func(a, b *hcl.Diagnostic) int {
		switch {
		case a.Subject == nil && b.Subject == nil:
			return 0
		case a.Subject == nil:
			return 1
		case b.Subject == nil:
			return -1
		}
		if c := cmp.Compare(a.Subject.Filename, b.Subject.Filename); c != 0 {
			return c
		}
		return a.Subject.Start.Byte - b.Subject.Start.Byte
	})
	return diags
}

// WriteDiagnostics renders diags to w as text with source snippets from the
// files this Parser read, with terminal colors when color is set.
func (p *Parser) WriteDiagnostics(w io.Writer, diags hcl.Diagnostics, color bool) error {
	return hcl.NewDiagnosticTextWriter(w, p.p.Files(), 0, color).WriteDiagnostics(diags)
}
