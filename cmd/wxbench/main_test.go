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

// TestOrder: every round runs each turn once; over rounds, with five turns
// (the small-JSON section), each turn runs right after each other turn
// equally often, and at every place.
func TestOrder(t *testing.T) {
	for _, n := range []int{1, 2, 4, 5} {
		turns := make([]turn, n)
		for i := range turns {
			turns[i].url = string(rune('a' + i))
		}
		after := map[[2]string]int{}
		place := map[[2]string]int{}
		rounds := 4 * n * n
		for round := range rounds {
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
		if n == 5 {
			for a := range n {
				for b := range n {
					if k := after[[2]string{turns[a].url, turns[b].url}]; a != b && k != rounds*(n-1)/(n*(n-1)) {
						t.Errorf("%s ran after %s %d times in %d rounds", turns[b].url, turns[a].url, k, rounds)
					}
				}
			}
		}
		for _, tu := range turns {
			for j := range n {
				if place[[2]string{tu.url, string(rune('0' + j))}] == 0 {
					t.Errorf("n=%d: %s never ran at place %d", n, tu.url, j)
				}
			}
		}
	}
}
