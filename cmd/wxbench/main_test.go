package main

import (
	"os"
	"path/filepath"
	"testing"
)

// go test runs in cmd/wxbench, inside wxbench's own module: repoRoot must
// pass over its go.mod and find the repository root two levels up.
func TestRepoRootFromNestedModule(t *testing.T) {
	root, err := repoRoot()
	if err != nil {
		t.Fatal(err)
	}
	want, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	if root != want {
		t.Fatalf("repoRoot() = %s, want %s", root, want)
	}
	if _, err := os.Stat(filepath.Join(root, "cmd", "caddy-wechat")); err != nil {
		t.Fatalf("no cmd/caddy-wechat in %s: %v", root, err)
	}
}

func TestModulePath(t *testing.T) {
	for gomod, want := range map[string]string{
		"module github.com/wxgate/caddy-wechat\n\ngo 1.26.8\n":              rootModule,
		"module github.com/wxgate/caddy-wechat/cmd/wxbench\n":               rootModule + "/cmd/wxbench",
		"// comment\nmodule \"github.com/wxgate/caddy-wechat\" // root\r\n": rootModule,
		"go 1.26.8\n": "",
	} {
		if got := modulePath([]byte(gomod)); got != want {
			t.Errorf("modulePath(%q) = %q, want %q", gomod, got, want)
		}
	}
}

func TestKeepOthers(t *testing.T) {
	old := []byte("# Benchmarks\nold figures\n\n" + keptMarker + "\n## Authorizers\nkept\n")
	got := keepOthers("# Benchmarks\nnew figures\n", old)
	if want := "# Benchmarks\nnew figures\n\n" + keptMarker + "\n## Authorizers\nkept\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	if got := keepOthers("# new\n", []byte("# old\n")); got != "# new\n" {
		t.Errorf("without the marker: %q", got)
	}
}
