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

// TestOrder: every round runs each turn once; over 2n rounds, each turn
// runs at every place, and right after each other turn, exactly twice.
func TestOrder(t *testing.T) {
	for n := 1; n <= 8; n++ {
		turns := make([]turn, n)
		for i := range turns {
			turns[i].url = string(rune('a' + i))
		}
		after := map[[2]string]int{}
		place := map[[2]string]int{}
		for round := range 2 * n {
			got := order(turns, round)
			seen := map[string]bool{}
			for j, tu := range got {
				if seen[tu.url] {
					t.Fatalf("n=%d round %d: %s twice", n, round, tu.url)
				}
				seen[tu.url] = true
				place[[2]string{tu.url, string(rune('0' + j))}]++
				if j > 0 {
					after[[2]string{got[j-1].url, tu.url}]++
				}
			}
			if len(seen) != n {
				t.Fatalf("n=%d round %d: %d turns", n, round, len(seen))
			}
		}
		for _, a := range turns {
			for j := range n {
				if k := place[[2]string{a.url, string(rune('0' + j))}]; k != 2 {
					t.Errorf("n=%d: %s ran at place %d %d times in %d rounds, want 2", n, a.url, j, k, 2*n)
				}
			}
			for _, b := range turns {
				if k := after[[2]string{a.url, b.url}]; a != b && k != 2 {
					t.Errorf("n=%d: %s ran right after %s %d times in %d rounds, want 2", n, b.url, a.url, k, 2*n)
				}
			}
		}
	}
}
