package main

import (
	"bufio"
	"bytes"
	_ "embed"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// wrk drives the sustained, closed-loop load of the throughput, latency,
// download and upload measurements. It is Debian's wrk: written in C, it
// needs the least CPU per request of the established generators, which
// matters on a 2-core machine where the generator shares the cores with the
// servers it measures. Its Lua hook (wrk/report.lua) prints the whole
// latency histogram, so that the rounds of one measurement merge into exact
// percentiles.

//go:embed wrk/report.lua
var reportLua string

//go:embed wrk/upload.lua
var uploadLua string

// ensureWrk returns the path of wrk, installing Debian's package with
// apt-get when it is missing.
func ensureWrk() (string, error) {
	if p, err := exec.LookPath("wrk"); err == nil {
		return p, nil
	}
	logf("wrk is not installed: installing Debian's wrk package with apt-get")
	var prefix []string
	if os.Geteuid() != 0 {
		prefix = []string{"sudo"}
	}
	for _, args := range [][]string{{"apt-get", "update", "-qq"}, {"apt-get", "install", "-y", "-qq", "wrk"}} {
		args = append(slices.Clone(prefix), args...)
		cmd := exec.Command(args[0], args[1:]...)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			return "", fmt.Errorf("%s: %w", strings.Join(args, " "), err)
		}
	}
	return exec.LookPath("wrk")
}

// wrkVersion returns the first line wrk prints of itself.
func wrkVersion(path string) string {
	out, _ := exec.Command(path, "-v").CombinedOutput()
	line, _, _ := strings.Cut(string(out), "\n")
	if v, _, ok := strings.Cut(line, " Copyright"); ok {
		line = v
	}
	return strings.TrimSpace(line)
}

// wrkRunner runs wrk with wxbench's Lua scripts.
type wrkRunner struct {
	path   string
	report string // report.lua
	upload string // upload.lua + report.lua
}

func newWrkRunner(path, dir string) (*wrkRunner, error) {
	w := &wrkRunner{path: path, report: filepath.Join(dir, "report.lua"), upload: filepath.Join(dir, "upload.lua")}
	if err := os.WriteFile(w.report, []byte(reportLua), 0o600); err != nil {
		return nil, err
	}
	if err := os.WriteFile(w.upload, []byte(uploadLua+"\n"+reportLua), 0o600); err != nil {
		return nil, err
	}
	return w, nil
}

// wrkJob is one wrk run.
type wrkJob struct {
	url      string
	conns    int
	duration time.Duration
	header   []string // "Name: value"
	// uploadBody, when set, makes the run POST that file (a multipart body
	// whose boundary is uploadBoundary) instead of GET.
	uploadBody, uploadBoundary string
}

// wrkResult is what report.lua prints.
type wrkResult struct {
	DurationUS int64 `json:"duration_us"`
	Requests   int64 `json:"requests"`
	Bytes      int64 `json:"bytes"`
	Errors     struct {
		Connect int64 `json:"connect"`
		Read    int64 `json:"read"`
		Write   int64 `json:"write"`
		Status  int64 `json:"status"`
		Timeout int64 `json:"timeout"`
	} `json:"errors"`
	// LatencyUS is wrk's histogram: [microseconds, count] pairs.
	LatencyUS [][2]int64 `json:"latency_us"`
	// cpu is the CPU time (user and system) wrk itself used.
	cpu time.Duration
}

func (r wrkResult) errors() int64 {
	e := r.Errors
	return e.Connect + e.Read + e.Write + e.Status + e.Timeout
}

// run runs wrk once and parses its report.
func (w *wrkRunner) run(j wrkJob) (wrkResult, error) {
	threads := min(2, j.conns)
	script := w.report
	if j.uploadBody != "" {
		script = w.upload
	}
	secs := max(1, int(j.duration.Round(time.Second)/time.Second))
	args := []string{"-t", strconv.Itoa(threads), "-c", strconv.Itoa(j.conns), "-d", strconv.Itoa(secs) + "s",
		"--timeout", "60s", "-s", script}
	for _, h := range j.header {
		args = append(args, "-H", h)
	}
	args = append(args, j.url)
	cmd := exec.Command(w.path, args...)
	cmd.Env = append(os.Environ(), "WXBENCH_BODY="+j.uploadBody, "WXBENCH_BOUNDARY="+j.uploadBoundary)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return wrkResult{}, fmt.Errorf("wrk %s: %w\n%s", strings.Join(args, " "), err, out.String())
	}
	s := bufio.NewScanner(&out)
	s.Buffer(make([]byte, 1<<20), 64<<20)
	for s.Scan() {
		if rest, ok := strings.CutPrefix(s.Text(), "WXBENCH "); ok {
			var r wrkResult
			if err := json.Unmarshal([]byte(rest), &r); err != nil {
				return r, fmt.Errorf("wrk report: %w", err)
			}
			r.cpu = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
			return r, nil
		}
	}
	return wrkResult{}, fmt.Errorf("wrk printed no report:\n%s", out.String())
}

// measure is the sum of the rounds of one measurement (one target at one
// concurrency): counters added up and latency histograms merged.
type measure struct {
	durationUS, requests, bytes, errors int64
	hist                                map[int64]int64 // microseconds -> count
	// cpu is the CPU time the proxy (baseline or gateway) used during the
	// rounds, simCPU the simulator's and loadCPU the load generator's.
	cpu, simCPU, loadCPU time.Duration
	// roundCPU is each round's CPU time per call of the three processes
	// together (proxy, simulator, wrk), in nanoseconds.
	roundCPU []float64
	// mallocs and allocBytes are what the proxy allocated during the rounds.
	mallocs, allocBytes uint64
	// rates and byteRates are each round's requests and bytes per second.
	rates, byteRates []float64
}

// pairedRatio compares two measurements taken in alternating rounds: the
// median, lowest and highest of the per-round ratios gateway/baseline
// (of bytes per second when bytes is set, else requests per second).
// Pairing the rounds cancels the machine's drift, and the median ignores
// a round that another process disturbed.
func pairedRatio(base, gw *measure, bytes bool) (median, lo, hi float64) {
	b, g := base.rates, gw.rates
	if bytes {
		b, g = base.byteRates, gw.byteRates
	}
	n := min(len(b), len(g))
	if n == 0 {
		return 0, 0, 0
	}
	ratios := make([]float64, n)
	for i := range n {
		ratios[i] = g[i] / b[i]
	}
	slices.Sort(ratios)
	median = ratios[n/2]
	if n%2 == 0 {
		median = (ratios[n/2-1] + ratios[n/2]) / 2
	}
	return median, ratios[0], ratios[n-1]
}

// cpuRatio compares two measurements by the CPU time all the processes of
// the machine (proxy, simulator, load generator) spent per call: the
// throughput ratio the two would have given the same CPU to run on. On
// a machine whose CPUs the load saturates, throughput is the CPU there is
// divided by the CPU a call takes; the CPU there is varies from run to
// run on a shared or virtual machine (steal, neighbours, frequency), the
// CPU a call takes far less. ratio is from the totals over the rounds, lo
// and hi the lowest and highest per-round ratios.
func cpuRatio(base, gw *measure) (ratio, lo, hi float64) {
	if base.requests == 0 || gw.requests == 0 {
		return 0, 0, 0
	}
	ratio = base.totalCPUPerCall() / gw.totalCPUPerCall()
	lo, hi = math.Inf(1), math.Inf(-1)
	for i := range min(len(base.roundCPU), len(gw.roundCPU)) {
		r := base.roundCPU[i] / gw.roundCPU[i]
		lo, hi = min(lo, r), max(hi, r)
	}
	return ratio, lo, hi
}

// totalCPUPerCall is the CPU time per call, in nanoseconds, of the proxy,
// the simulator and the load generator together.
func (m *measure) totalCPUPerCall() float64 {
	return float64(m.cpu+m.simCPU+m.loadCPU) / float64(m.requests)
}

// cpuPerCall is the proxy's CPU time per request.
func (m *measure) cpuPerCall() time.Duration {
	if m.requests == 0 {
		return 0
	}
	return m.cpu / time.Duration(m.requests)
}

func (m *measure) add(r wrkResult) {
	if r.DurationUS > 0 {
		secs := float64(r.DurationUS) / 1e6
		m.rates = append(m.rates, float64(r.Requests)/secs)
		m.byteRates = append(m.byteRates, float64(r.Bytes)/secs)
	}
	m.durationUS += r.DurationUS
	m.requests += r.Requests
	m.bytes += r.Bytes
	m.errors += r.errors()
	if m.hist == nil {
		m.hist = make(map[int64]int64)
	}
	for _, vc := range r.LatencyUS {
		m.hist[vc[0]] += vc[1]
	}
}

// allocsPerCall and bytesPerCall are the proxy's heap allocations per
// request.
func (m *measure) allocsPerCall() float64 {
	if m.requests == 0 {
		return 0
	}
	return float64(m.mallocs) / float64(m.requests)
}

func (m *measure) bytesPerCall() float64 {
	if m.requests == 0 {
		return 0
	}
	return float64(m.allocBytes) / float64(m.requests)
}

// cpuPerGiB is the proxy's CPU time per GiB moved.
func (m *measure) cpuPerGiB() time.Duration {
	if m.bytes == 0 {
		return 0
	}
	return time.Duration(float64(m.cpu) / (float64(m.bytes) / (1 << 30)))
}

// rate is requests per second over all rounds.
func (m *measure) rate() float64 {
	if m.durationUS == 0 {
		return 0
	}
	return float64(m.requests) / (float64(m.durationUS) / 1e6)
}

// byteRate is bytes per second over all rounds.
func (m *measure) byteRate() float64 {
	if m.durationUS == 0 {
		return 0
	}
	return float64(m.bytes) / (float64(m.durationUS) / 1e6)
}

// percentile returns the p-th percentile (0-100) of the merged latencies.
func (m *measure) percentile(p float64) time.Duration {
	return percentileOf(m.hist, p)
}

// percentileOf returns the p-th percentile of a histogram of microseconds:
// the smallest value with at least p% of the samples at or below it.
func percentileOf(hist map[int64]int64, p float64) time.Duration {
	var total int64
	values := make([]int64, 0, len(hist))
	for v, c := range hist {
		values = append(values, v)
		total += c
	}
	if total == 0 {
		return 0
	}
	slices.Sort(values)
	want := int64(math.Ceil(float64(total) * p / 100))
	want = max(want, 1)
	var seen int64
	for _, v := range values {
		seen += hist[v]
		if seen >= want {
			return time.Duration(v) * time.Microsecond
		}
	}
	return time.Duration(values[len(values)-1]) * time.Microsecond
}
