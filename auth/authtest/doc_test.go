package authtest

import (
	"go/parser"
	"go/token"
	"os"
	"strings"
	"testing"
)

// TestPackageDoc checks that exactly one file, doc.go, carries the package
// doc comment (STYLE rule 5).
func TestPackageDoc(t *testing.T) {
	entries, err := os.ReadDir(".")
	if err != nil {
		t.Fatal(err)
	}
	var docs []string
	fset := token.NewFileSet()
	for _, e := range entries {
		name := e.Name()
		if !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, parser.PackageClauseOnly|parser.ParseComments)
		if err != nil {
			t.Fatal(err)
		}
		if f.Doc != nil {
			docs = append(docs, name)
		}
	}
	if len(docs) != 1 || docs[0] != "doc.go" {
		t.Errorf("package doc comments in %v, want only in doc.go", docs)
	}
}
