// Tests that keep the house rules of the tree: every package says what it
// is for, and dependencies point one way (cmd -> cli -> gateway -> guards,
// transport -> guard -> mcp).
package sluice_test

import (
	"go/build"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/sluicehq/sluice"

// packages returns the import paths and directories of the module's
// packages, skipping testdata and the installed-tools cache.
func packages(t *testing.T) map[string]string {
	t.Helper()
	pkgs := map[string]string{}
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			name := d.Name()
			if path != "." && (strings.HasPrefix(name, ".") || name == "testdata" || name == "node_modules") {
				return filepath.SkipDir
			}
			matches, _ := filepath.Glob(filepath.Join(path, "*.go"))
			for _, m := range matches {
				if !strings.HasSuffix(m, "_test.go") {
					imp := module
					if path != "." {
						imp += "/" + filepath.ToSlash(path)
					}
					pkgs[imp] = path
					break
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return pkgs
}

func TestPackageDocs(t *testing.T) {
	for imp, dir := range packages(t) {
		fset := token.NewFileSet()
		parsed, err := parser.ParseDir(fset, dir, func(fi fs.FileInfo) bool { return !strings.HasSuffix(fi.Name(), "_test.go") }, parser.ParseComments|parser.PackageClauseOnly)
		if err != nil {
			t.Fatalf("%s: %v", imp, err)
		}
		documented := false
		for _, p := range parsed {
			for _, f := range p.Files {
				if f.Doc != nil && strings.TrimSpace(f.Doc.Text()) != "" {
					documented = true
				}
			}
		}
		if !documented {
			t.Errorf("package %s has no package doc comment", imp)
		}
	}
}

// guardPackages are the guardrails plugged into the chain; they may import
// only the extension point, the wire layer and shared leaf packages.
var guardPackages = []string{"allowlist", "authn", "policy", "dlp", "minimize", "audit", "lineage", "scan", "ratelimit", "approval"}

func TestImportDirections(t *testing.T) {
	internal := module + "/internal/"
	rules := []struct {
		pkg       string // prefix of the importing package
		forbidden []string
	}{
		{internal + "mcp", []string{internal}},
		{internal + "guard", []string{internal + "gateway", internal + "cli", internal + "transport", internal + "config"}},
		{internal + "transport", []string{internal + "gateway", internal + "cli", internal + "guard"}},
		{internal + "config", []string{internal + "gateway", internal + "cli", internal + "transport", internal + "guard"}},
		{internal + "gateway", []string{internal + "cli"}},
	}
	for _, g := range guardPackages {
		var forbidden []string
		for _, other := range guardPackages {
			if other != g {
				forbidden = append(forbidden, internal+other)
			}
		}
		forbidden = append(forbidden, internal+"gateway", internal+"cli", internal+"transport")
		rules = append(rules, struct {
			pkg       string
			forbidden []string
		}{internal + g, forbidden})
	}
	pkgs := packages(t)
	checked := 0
	for imp, dir := range pkgs {
		bp, err := build.ImportDir(dir, 0)
		if err != nil {
			t.Fatalf("%s: %v", imp, err)
		}
		for _, r := range rules {
			if imp != r.pkg && !strings.HasPrefix(imp, r.pkg+"/") {
				continue
			}
			checked++
			for _, dep := range bp.Imports {
				if dep == imp || strings.HasPrefix(dep, r.pkg+"/") || dep == r.pkg {
					continue // a package may use its own subpackages
				}
				for _, f := range r.forbidden {
					if dep == strings.TrimSuffix(f, "/") || strings.HasPrefix(dep, strings.TrimSuffix(f, "/")+"/") {
						t.Errorf("%s imports %s, which its layer must not depend on", imp, dep)
					}
				}
			}
		}
	}
	if checked == 0 || !slices.ContainsFunc(keys(pkgs), func(p string) bool { return strings.HasSuffix(p, "/internal/gateway") }) {
		t.Fatal("no packages checked: the walk found nothing")
	}
}

func keys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}
