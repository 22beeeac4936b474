package discover

import (
	"archive/tar"
	"compress/gzip"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// extractTarGz unpacks a sysfs capture (regular files, directories and
// relative symlinks) into a temporary directory and returns it.
func extractTarGz(t testing.TB, archive string) string {
	t.Helper()
	f, err := os.Open(archive)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	dst := t.TempDir()
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		name := filepath.Clean(h.Name)
		if name == "." {
			continue
		}
		if filepath.IsAbs(name) || name == ".." || strings.HasPrefix(name, "../") {
			t.Fatalf("%s: unsafe path %q", archive, h.Name)
		}
		p := filepath.Join(dst, name)
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
		case tar.TypeReg:
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			b, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, b, 0o644); err != nil {
				t.Fatal(err)
			}
		case tar.TypeSymlink:
			if filepath.IsAbs(h.Linkname) {
				t.Fatalf("%s: absolute symlink %q -> %q", archive, h.Name, h.Linkname)
			}
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(h.Linkname, p); err != nil {
				t.Fatal(err)
			}
		}
	}
	return dst
}

// materialize builds a fixture tree from a hand-written archive in the
// txtar format: a comment, then files introduced by "-- NAME --" lines.
// "-- NAME -> TARGET --" makes a symlink; a NAME ending in ".hex" is
// written, without the suffix, as the bytes its hex digits spell.
func materialize(t testing.TB, archive string) string {
	t.Helper()
	b, err := os.ReadFile(archive)
	if err != nil {
		t.Fatal(err)
	}
	dst := t.TempDir()
	type entry struct {
		name, link string
		data       []byte
	}
	var ents []*entry
	var cur *entry
	for _, line := range strings.SplitAfter(string(b), "\n") {
		l := strings.TrimSuffix(line, "\n")
		if strings.HasPrefix(l, "-- ") && strings.HasSuffix(l, " --") && len(l) > 6 {
			h := strings.TrimSuffix(strings.TrimPrefix(l, "-- "), " --")
			e := &entry{name: h}
			if i := strings.Index(h, " -> "); i >= 0 {
				e.name, e.link = h[:i], h[i+4:]
			}
			ents = append(ents, e)
			cur = e
			continue
		}
		if cur != nil {
			cur.data = append(cur.data, line...)
		}
	}
	seen := map[string]bool{}
	for _, e := range ents {
		name := filepath.Clean(e.name)
		data := e.data
		if strings.HasSuffix(name, ".hex") && e.link == "" {
			name = strings.TrimSuffix(name, ".hex")
			data = unhex(t, string(data))
		}
		if filepath.IsAbs(name) || strings.HasPrefix(name, "..") || seen[name] {
			t.Fatalf("%s: bad or duplicate entry %q", archive, e.name)
		}
		seen[name] = true
		p := filepath.Join(dst, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if e.link != "" {
			err = os.Symlink(e.link, p)
		} else {
			err = os.WriteFile(p, data, 0o644)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

func mkdirs(p string) error { return os.MkdirAll(p, 0o755) }
