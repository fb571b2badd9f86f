package main

import (
	"strings"
	"testing"
)

// TestServeHTTPRows: each whole-call benchmark is read against the next
// handler alone of its own family, warm against warm, cold against cold.
func TestServeHTTPRows(t *testing.T) {
	out := `pkg: github.com/wxgate/caddy-wechat/module
BenchmarkServeHTTP/next_only-2         	 2291774	       500.0 ns/op	     499 B/op	       9 allocs/op
BenchmarkServeHTTP/trusted-2           	  692962	      1500 ns/op	    1171 B/op	      11 allocs/op
BenchmarkServeHTTPCold/next_only-2     	   30000	       900.0 ns/op	     499 B/op	       9 allocs/op
BenchmarkServeHTTPCold/trusted-2       	   30000	      2700 ns/op	    1171 B/op	      11 allocs/op
`
	rows := results{gobench: parseGoBench(out)}.table()
	want := map[string]string{
		"BenchmarkServeHTTP/trusted-2":     "+1000 ns, +2 allocs",
		"BenchmarkServeHTTPCold/trusted-2": "+1800 ns, +2 allocs",
	}
	for _, r := range rows {
		name, _, _ := strings.Cut(r.measure, " ")
		if w, ok := want[name]; ok {
			if !strings.Contains(r.compare, w) {
				t.Errorf("%s: %q, want %q", name, r.compare, w)
			}
			delete(want, name)
		}
	}
	if len(want) > 0 {
		t.Errorf("no rows for %v", want)
	}
}
