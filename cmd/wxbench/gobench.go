package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
)

// goBench is one line of `go test -bench -benchmem`.
type goBench struct {
	pkg, name          string
	nsPerOp            float64
	bytesPerOp, allocs int64
}

// goBenchPackages are the hot paths: the errcode scan, the token lookup,
// the upstream request rewrite, the inspector (hold back, scan, mask, pass)
// and, in clients mode, the gateway token's verification and the caller's
// authorization; and a whole call through the handler in both modes
// against its next handler alone (BenchmarkServeHTTP, and
// BenchmarkServeHTTPCold with the caches emptied first). They belong to the
// root module, not to wxbench's, so go test runs in the repository root
// (b.root) and names them relative to it.
var goBenchPackages = []string{"./module/internal/wxapi/", "./module/internal/token/", "./module/internal/clientauth/", "./module/"}

const goBenchPattern = "^(BenchmarkScanErrcode|BenchmarkTokenLookup|BenchmarkRequestRewrite|BenchmarkInspector|BenchmarkVerifyCached|BenchmarkAuthorizeClients|BenchmarkServeHTTP)$"

// coldBenchPattern empties the caches before every call, which takes far
// longer than the call: it runs after the others, for longer (-benchtime
// 3s), so that enough calls are timed.
const coldBenchPattern = "^BenchmarkServeHTTPCold$"

// runGoBench runs the Go benchmarks of the hot paths, before any server
// runs, and keeps their ns/op, B/op and allocs/op.
func (b *bench) runGoBench() error {
	logf("7. go test -bench of the hot paths")
	var out bytes.Buffer
	for _, args := range [][]string{
		append([]string{"test", "-run", "^$", "-bench", goBenchPattern, "-benchmem", "-count", "1"}, goBenchPackages...),
		{"test", "-run", "^$", "-bench", coldBenchPattern, "-benchtime", "3s", "-benchmem", "-count", "1", "./module/"},
	} {
		cmd := exec.Command("go", args...)
		cmd.Dir = b.root
		var run bytes.Buffer
		cmd.Stdout, cmd.Stderr = &run, &run
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("go %s: %w\n%s", strings.Join(args, " "), err, run.String())
		}
		out.Write(run.Bytes())
	}
	benches := parseGoBench(out.String())
	b.res.gobench = benches
	for _, g := range benches {
		logf("7. %s %s: %.1f ns/op, %d B/op, %d allocs/op", g.pkg, g.name, g.nsPerOp, g.bytesPerOp, g.allocs)
	}
	return nil
}

// parseGoBench reads the benchmark lines of go test's output, each with
// its package (from the "pkg:" line before it).
func parseGoBench(out string) []goBench {
	var list []goBench
	pkg := ""
	s := bufio.NewScanner(strings.NewReader(out))
	for s.Scan() {
		line := s.Text()
		if rest, ok := strings.CutPrefix(line, "pkg: "); ok {
			pkg = strings.TrimPrefix(rest, "github.com/wxgate/caddy-wechat/")
			continue
		}
		f := strings.Fields(line)
		if len(f) < 8 || !strings.HasPrefix(f[0], "Benchmark") {
			continue
		}
		g := goBench{pkg: pkg, name: f[0]}
		for i := 2; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				continue
			}
			switch f[i+1] {
			case "ns/op":
				g.nsPerOp = v
			case "B/op":
				g.bytesPerOp = int64(v)
			case "allocs/op":
				g.allocs = int64(v)
			}
		}
		list = append(list, g)
	}
	return list
}
