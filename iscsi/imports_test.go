package iscsi

import (
	"go/parser"
	"go/token"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// TestImportDirection pins the layering: the engine imports nothing of
// the module but the SCSI vocabulary (sgio/scsi), which imports nothing
// of the module itself, so no device code reaches the engine.
func TestImportDirection(t *testing.T) {
	const module = "github.com/sanbridge/sanbridge/"
	for dir, allowed := range map[string][]string{
		".":             {module + "sgio/scsi"},
		"../sgio/scsi/": nil,
	} {
		files, err := filepath.Glob(filepath.Join(dir, "*.go"))
		if err != nil || len(files) == 0 {
			t.Fatalf("%s: %d files, %v", dir, len(files), err)
		}
		for _, name := range files {
			if strings.HasSuffix(name, "_test.go") {
				continue
			}
			f, err := parser.ParseFile(token.NewFileSet(), name, nil, parser.ImportsOnly)
			if err != nil {
				t.Fatal(err)
			}
			for _, imp := range f.Imports {
				path, err := strconv.Unquote(imp.Path.Value)
				if err != nil {
					t.Fatal(err)
				}
				if strings.HasPrefix(path, module) && !slices.Contains(allowed, path) {
					t.Errorf("%s imports %s", name, path)
				}
			}
		}
	}
}
