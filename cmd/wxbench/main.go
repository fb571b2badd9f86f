// Command wxbench measures the price of the caddy-wechat gateway against a
// plain Caddy reverse_proxy whose app handles tokens itself, and the
// gateway's token economy, in one run on one machine:
//
//  1. small JSON calls (GET /cgi-bin/user/info) through the baseline and
//     through the gateway at several concurrencies: throughput and the
//     p50/p90/p99 latency the gateway adds;
//  2. a 64 MiB binary media download through both: throughput, and the
//     gateway's peak RSS (against a 4 MiB download, to show that it does
//     not grow with the file);
//  3. 10 MB multipart uploads: peak RSS per concurrent upload, the cost of
//     holding bodies for a replay;
//  4. invalidation storms: N concurrent requests (100, 1000, 5000) right
//     after WeChat revoked the token: token fetches, failed requests, p99;
//  5. a simulated day of steady traffic: token fetches per account against
//     the physical minimum, for stable_token, /cgi-bin/token and WeCom;
//  6. memory per account with 10,000 configured accounts;
//  7. Go benchmarks of the hot paths (errcode scan, token lookup, request
//     rewrite).
//
// wxbench is a module of its own (cmd/wxbench/go.mod), so that its load
// generator and chart libraries stay out of the plugin's go.mod. Run it
// from the repository root with
//
//	go -C cmd/wxbench run .          # the documented run (about 10 minutes)
//	go -C cmd/wxbench run . -quick   # a short run, for trying changes; writes nothing
//
// or with `go run .` in cmd/wxbench. It finds the repository root from its
// working folder up, and builds and tests the plugin's packages there, with
// the root module's go.mod. Relative paths given to -profile are relative
// to cmd/wxbench.
//
// It builds ./cmd/caddy-wechat, installs Debian's wrk with apt-get when it
// is missing, and runs the WeChat simulator, the baseline and the gateway as
// three separate Caddy processes (the load generator is a fourth), each
// with its own ports, admin API and XDG_DATA_HOME. Time moves through the
// gateway's test_clock and the simulator's control API, never by sleeping.
// It prints a table, writes it to BENCHMARKS.md with the date, machine and
// commit, and draws cmd/wxbench/latency.png and, from the dashboard
// section's scrapes of the gateway's /metrics over a simulated day, the
// picture of the Grafana dashboard (examples/grafana-dashboard.png).
package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// options are the command's flags.
type options struct {
	quick    bool
	write    bool
	rounds   int
	duration time.Duration
	only     map[string]bool
	profile  string
	keep     bool
}

// sections, in the order they run.
var sections = []string{"gobench", "json", "download", "upload", "storm", "day", "dashboard", "accounts"}

func main() {
	var o options
	var only string
	flag.BoolVar(&o.quick, "quick", false, "a short run (fewer rounds, concurrencies and accounts); writes no files unless -write is given")
	flag.BoolVar(&o.write, "write", true, "write BENCHMARKS.md and cmd/wxbench/latency.png (only after a run of every section)")
	flag.IntVar(&o.rounds, "rounds", 0, "rounds of each throughput measurement, baseline and gateway alternating (default 16, quick 1)")
	flag.DurationVar(&o.duration, "duration", 0, "length of one wrk run, whole seconds (default 2s, quick 1s)")
	flag.StringVar(&only, "only", "", "run only these sections, comma-separated: "+strings.Join(sections, ","))
	flag.StringVar(&o.profile, "profile", "", "keep the CPU profiles in this folder: section 1's of the gateway's process under each of its sites at 64 connections (taken in every run), section 2's of the baseline and the gateway")
	flag.BoolVar(&o.keep, "keep", false, "keep the temporary folder (configs and Caddy logs) for inspection")
	flag.Parse()
	if o.profile != "" {
		if err := os.MkdirAll(o.profile, 0o755); err != nil {
			fmt.Fprintln(os.Stderr, "wxbench:", err)
			os.Exit(2)
		}
	}

	writeSet := false
	flag.Visit(func(f *flag.Flag) { writeSet = writeSet || f.Name == "write" })
	if o.quick && !writeSet {
		o.write = false
	}
	if o.rounds <= 0 {
		o.rounds = 16
		if o.quick {
			o.rounds = 1
		}
	}
	if o.duration <= 0 {
		o.duration = 2 * time.Second
		if o.quick {
			o.duration = time.Second
		}
	}
	if only != "" {
		o.only = make(map[string]bool)
		for _, s := range strings.Split(only, ",") {
			s = strings.TrimSpace(s)
			if !contains(sections, s) {
				fmt.Fprintf(os.Stderr, "wxbench: unknown section %q (sections: %s)\n", s, strings.Join(sections, ","))
				os.Exit(2)
			}
			o.only[s] = true
		}
	}
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "wxbench:", err)
		os.Exit(1)
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// started is when the run began, for the progress log.
var started = time.Now()

// logf prints progress to stderr; the table goes to stdout.
func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "[%6.1fs] %s\n", time.Since(started).Seconds(), fmt.Sprintf(format, args...))
}

func run(o options) error {
	root, err := repoRoot()
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "wxbench-")
	if err != nil {
		return err
	}
	if o.keep {
		logf("temporary folder (kept): %s", tmp)
	} else {
		defer os.RemoveAll(tmp)
	}
	b := &bench{opts: o, root: root, tmp: tmp}
	defer b.stopAll()
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-sigs
		logf("interrupted: stopping the Caddy processes")
		b.stopAll()
		if !o.keep {
			os.RemoveAll(tmp)
		}
		os.Exit(130)
	}()

	logf("building ./cmd/caddy-wechat")
	if b.bin, err = buildGateway(root, tmp); err != nil {
		return err
	}
	wrkPath, err := ensureWrk()
	if err != nil {
		return err
	}
	if b.wrk, err = newWrkRunner(wrkPath, tmp); err != nil {
		return err
	}
	b.res.meta = collectMeta(root, wrkVersion(wrkPath))
	if v := caddyVersion(b.bin); v != "" {
		b.res.meta.caddy = v
	}
	b.res.quick = o.quick

	for _, s := range sections {
		if o.only != nil && !o.only[s] {
			continue
		}
		if err := b.runSection(s); err != nil {
			return fmt.Errorf("%s: %w", s, err)
		}
	}
	b.stopAll()

	table := b.res.table()
	fmt.Println()
	fmt.Println(renderMarkdown(table))
	if f := b.res.renderFrames(); f != "" {
		fmt.Println(f)
		fmt.Println(b.res.framesSummary())
	}
	for _, t := range b.res.targetSummary(table) {
		fmt.Println("- " + t)
	}
	for _, w := range b.res.warnings {
		fmt.Println("! " + w)
	}
	complete := o.only == nil
	if !o.write {
		logf("not writing BENCHMARKS.md (-quick or -write=false)")
		return nil
	}
	if len(b.res.dashboard) > 0 {
		pic := filepath.Join(root, "examples", "grafana-dashboard.png")
		if err := drawDashboard(b.res.dashboard, b.res.meta, pic); err != nil {
			return fmt.Errorf("dashboard: %w", err)
		}
		logf("wrote %s", pic)
	}
	if !complete {
		logf("not writing BENCHMARKS.md: only some sections ran")
		return nil
	}
	chart := filepath.Join(root, "cmd", "wxbench", "latency.png")
	if err := drawLatencyChart(b.res.json, b.res.meta, chart); err != nil {
		return fmt.Errorf("chart: %w", err)
	}
	logf("wrote %s", chart)
	md := filepath.Join(root, "BENCHMARKS.md")
	old, _ := os.ReadFile(md)
	if err := os.WriteFile(md, []byte(keepOthers(renderBenchmarksMD(b.res, table), old)), 0o644); err != nil {
		return err
	}
	logf("wrote %s", md)
	return nil
}

// keptMarker starts the part of BENCHMARKS.md that other commands write
// (their own figures, with the command that measured them): wxbench keeps
// it as it is.
const keptMarker = "<!-- measured by other commands: kept by wxbench -->"

// keepOthers appends to a newly rendered BENCHMARKS.md the part of the old
// one that follows keptMarker, if any.
func keepOthers(rendered string, old []byte) string {
	i := bytes.Index(old, []byte(keptMarker))
	if i < 0 {
		return rendered
	}
	return strings.TrimRight(rendered, "\n") + "\n\n" + string(old[i:])
}

// rootModule is the module path of the repository root's go.mod.
const rootModule = "github.com/wxgate/caddy-wechat"

// repoRoot finds the repository root: the nearest folder, from the working
// folder up, whose go.mod declares rootModule. wxbench's own go.mod (a
// nested module, github.com/wxgate/caddy-wechat/cmd/wxbench) is passed
// over on the way up.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && modulePath(b) == rootModule {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("run wxbench inside the caddy-wechat repository, e.g. go -C cmd/wxbench run . from its root (no go.mod of %s above %s)", rootModule, dir)
		}
		dir = parent
	}
}

// modulePath returns the path the module directive of a go.mod declares,
// or "" if it has none.
func modulePath(gomod []byte) string {
	for _, line := range strings.Split(string(gomod), "\n") {
		line, _, _ = strings.Cut(line, "//")
		f := strings.Fields(line)
		if len(f) == 2 && f[0] == "module" {
			return strings.Trim(f[1], "\"`")
		}
	}
	return ""
}
