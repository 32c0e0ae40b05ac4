package main

import (
	"bytes"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/stoa-rtc/stoa"

// TestDeps enforces the import rules of STYLE.md §1: cmd -> signalling ->
// {sfu, auth}; sfu and auth never import each other; media never sees
// Matrix or HTTP, Matrix never sees RTP. It checks transitive imports, as
// tailscale's cmd/tailscaled/deps_test.go does.
func TestDeps(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is needed to list imports: %v", err)
	}
	rules := []struct {
		pkgs string   // go list pattern
		bad  []string // forbidden packages; a trailing "/" forbids a whole prefix
		why  string
	}{
		{
			pkgs: module + "/sfu/...",
			bad: []string{
				module + "/signalling", module + "/auth", module + "/web", module + "/cmd",
				"net/http", "maunium.net/go/mautrix",
			},
			why: "sfu is the media plane: no signalling, no Matrix, no HTTP",
		},
		{
			pkgs: module + "/auth/...",
			bad:  []string{module + "/sfu", module + "/signalling", module + "/cmd", "github.com/pion/"},
			why:  "auth is the Matrix side: it never sees RTP",
		},
		{
			pkgs: module + "/signalling/...",
			bad:  []string{module + "/cmd"},
			why:  "signalling is a library that cmd wires",
		},
	}
	for _, r := range rules {
		t.Run(strings.TrimPrefix(r.pkgs, module+"/"), func(t *testing.T) {
			roots, graph := listDeps(t, goTool, r.pkgs)
			if len(roots) == 0 {
				t.Logf("%s matches no packages yet", r.pkgs)
				return
			}
			for bad, chain := range reach(roots, graph, func(p string) bool { return matchesAny(p, r.bad) }) {
				t.Errorf("%s imports %s (%s): %s", chain[0], bad, r.why, strings.Join(chain, " -> "))
			}
		})
	}
}

// listDeps returns the packages of this module that pattern matches and
// the import graph of them and their dependencies. Packages that do not
// compile are listed too: the rules hold while others edit.
func listDeps(t *testing.T, goTool, pattern string) (roots []string, graph map[string][]string) {
	t.Helper()
	list := func(args ...string) []string {
		t.Helper()
		cmd := exec.Command(goTool, append([]string{"list", "-e"}, args...)...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("go list %q: %v\n%s", args, err, stderr.Bytes())
		}
		return strings.Split(strings.TrimSpace(string(out)), "\n")
	}
	for _, p := range list("-f", "{{if .GoFiles}}{{.ImportPath}}{{end}}", pattern) {
		if p != "" {
			roots = append(roots, p)
		}
	}
	graph = make(map[string][]string)
	for _, line := range list("-deps", "-f", "{{.ImportPath}}{{range .Imports}} {{.}}{{end}}", pattern) {
		f := strings.Fields(line)
		if len(f) > 0 {
			graph[f[0]] = f[1:]
		}
	}
	return roots, graph
}

// reach returns each package for which bad is true that roots import,
// directly or not, with the shortest import chain to it.
func reach(roots []string, graph map[string][]string, bad func(string) bool) map[string][]string {
	parent := make(map[string]string)
	seen := make(map[string]bool)
	queue := slices.Clone(roots)
	for _, r := range roots {
		seen[r] = true
	}
	found := make(map[string][]string)
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		if bad(p) {
			var chain []string
			for q := p; q != ""; q = parent[q] {
				chain = append(chain, q)
			}
			slices.Reverse(chain)
			found[p] = chain
			continue // one report per forbidden package is enough
		}
		for _, imp := range graph[p] {
			if !seen[imp] {
				seen[imp] = true
				parent[imp] = p
				queue = append(queue, imp)
			}
		}
	}
	return found
}

func matchesAny(pkg string, bad []string) bool {
	for _, b := range bad {
		if strings.HasSuffix(b, "/") {
			if strings.HasPrefix(pkg, b) {
				return true
			}
		} else if pkg == b || strings.HasPrefix(pkg, b+"/") {
			return true
		}
	}
	return false
}

func TestReach(t *testing.T) {
	graph := map[string][]string{
		"a": {"b", "c"},
		"b": {"net/http/httptest"},
		"c": {"d"},
		"d": {"github.com/pion/rtp"},
	}
	got := reach([]string{"a"}, graph, func(p string) bool { return matchesAny(p, []string{"net/http", "github.com/pion/"}) })
	want := map[string][]string{
		"net/http/httptest":   {"a", "b", "net/http/httptest"},
		"github.com/pion/rtp": {"a", "c", "d", "github.com/pion/rtp"},
	}
	if len(got) != len(want) {
		t.Fatalf("got %q, want %q", got, want)
	}
	for k, v := range want {
		if !slices.Equal(got[k], v) {
			t.Errorf("chain to %s = %q, want %q", k, got[k], v)
		}
	}
	if matchesAny("net/httpx", []string{"net/http"}) {
		t.Error(`"net/httpx" matches "net/http"`)
	}
}
