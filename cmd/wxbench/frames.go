package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// Who ran a CPU profile's samples. A sample belongs to the innermost of
// the gateway's handler and reverse_proxy on its stack, so that what each
// calls (the transport, writing the answer to the client, allocating)
// counts for it; a sample with neither is the collector's background work
// or the rest: Caddy's HTTP server, net/http reading and flushing, the
// scheduler, system calls.
const (
	ownerHandler = iota
	ownerProxy
	ownerGC
	ownerRest
	owners
)

// Frame prefixes that decide a sample's owner.
const (
	handlerFrames = "github.com/wxgate/caddy-wechat/"
	proxyFrames   = "github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy."
	gcFrame       = "runtime.gcBgMarkWorker"
)

// frameShares is one or more CPU profiles of a process divided among the
// owners, with the process's CPU per call over the runs they were taken in.
type frameShares struct {
	samples [owners]time.Duration
	cpu     time.Duration // the process's CPU over the profiled runs
	calls   int64         // the calls it served then
}

// add adds a profile (the pprof file at path) and the CPU and calls of the
// run it was taken in.
func (f *frameShares) add(path string, cpu time.Duration, calls int64) error {
	out, err := exec.Command("go", "tool", "pprof", "-traces", path).Output()
	if err != nil {
		return fmt.Errorf("go tool pprof -traces %s: %w", path, err)
	}
	s, err := parseTraces(out)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	for o := range s {
		f.samples[o] += s[o]
	}
	f.cpu += cpu
	f.calls += calls
	return nil
}

// perCall is the owner's CPU per call: its share of the samples times the
// process's CPU per call.
func (f *frameShares) perCall(owner int) time.Duration {
	total := f.total()
	if total == 0 || f.calls == 0 {
		return 0
	}
	return time.Duration(float64(f.samples[owner]) / float64(total) * float64(f.cpu) / float64(f.calls))
}

// cpuPerCall is the process's CPU per call over the profiled runs.
func (f *frameShares) cpuPerCall() time.Duration {
	if f.calls == 0 {
		return 0
	}
	return f.cpu / time.Duration(f.calls)
}

func (f *frameShares) total() time.Duration {
	var t time.Duration
	for _, s := range f.samples {
		t += s
	}
	return t
}

// nSamples is how many samples the profiles hold, at pprof's 100 Hz.
func (f *frameShares) nSamples() int64 { return int64(f.total() / (10 * time.Millisecond)) }

// parseTraces reads the output of `go tool pprof -traces`: samples
// separated by lines of dashes, each a value and the leaf function on its
// first line and the callers below, innermost first. It returns the
// sample time of each owner.
func parseTraces(out []byte) ([owners]time.Duration, error) {
	var sum [owners]time.Duration
	var value time.Duration
	owner, inSample := -1, false
	flush := func() {
		if !inSample {
			return
		}
		if owner < 0 {
			owner = ownerRest
		}
		sum[owner] += value
		inSample, owner = false, -1
	}
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "-----------+") {
			flush()
			continue
		}
		fields := strings.Fields(line)
		if len(fields) == 0 || !strings.HasPrefix(line, " ") {
			continue // the header (File:, Type:, Duration:) or a blank line
		}
		fn := fields[len(fields)-1]
		if !inSample && len(fields) >= 2 {
			v, err := parseSampleValue(fields[0])
			if err != nil {
				return sum, fmt.Errorf("sample line %q: %w", line, err)
			}
			value, inSample = v, true
			fn = fields[1]
		} else if !inSample {
			continue
		}
		if owner >= 0 {
			continue // its innermost owner is known
		}
		switch {
		case strings.HasPrefix(fn, handlerFrames):
			owner = ownerHandler
		case strings.HasPrefix(fn, proxyFrames):
			owner = ownerProxy
		case fn == gcFrame:
			owner = ownerGC
		}
	}
	flush()
	return sum, sc.Err()
}

// parseSampleValue reads a CPU sample's value as pprof prints it: 10ms,
// 1.50s, 250us.
func parseSampleValue(s string) (time.Duration, error) {
	if d, err := time.ParseDuration(s); err == nil {
		return d, nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0, err
	}
	return time.Duration(f), nil
}

// frameProfile is section 1's profile of the gateway's process at conns
// connections, for each of its sites.
type frameProfile struct {
	conns                   int
	plain, trusted, clients frameShares
}

// renderFrames renders the profile as a table: each owner's CPU per call
// on each site, the handler's direct cost over reverse_proxy alone, the
// throughput that cost allows (the floor) and the rest of the difference.
func (r results) renderFrames() string {
	fp := r.frames
	if fp.plain.calls == 0 {
		return ""
	}
	var plainPoint *jsonPoint
	for i := range r.json {
		if r.json[i].conns == fp.conns {
			plainPoint = &r.json[i]
		}
	}
	type site struct {
		name string
		f    *frameShares
		m    *measure
	}
	sites := []site{{"trusted", &fp.trusted, nil}, {"clients", &fp.clients, nil}}
	if plainPoint != nil {
		sites[0].m, sites[1].m = &plainPoint.gateway, &plainPoint.clients
	}
	if fp.clients.calls == 0 {
		sites = sites[:1]
	}
	var b strings.Builder
	fmt.Fprintf(&b, "| proxy CPU per call, %d conns | reverse_proxy alone, in the gateway's process |", fp.conns)
	for _, s := range sites {
		fmt.Fprintf(&b, " %s |", s.name)
	}
	b.WriteString("\n|---|---|")
	for range sites {
		b.WriteString("---|")
	}
	b.WriteString("\n")
	line := func(label string, cell func(f *frameShares) string) {
		fmt.Fprintf(&b, "| %s | %s |", label, cell(&fp.plain))
		for _, s := range sites {
			fmt.Fprintf(&b, " %s |", cell(s.f))
		}
		b.WriteString("\n")
	}
	owner := func(o int) func(f *frameShares) string {
		return func(f *frameShares) string {
			d := f.perCall(o) - fp.plain.perCall(o)
			if f == &fp.plain {
				return fmtUS(f.perCall(o))
			}
			return fmt.Sprintf("%s (%+.1f)", fmtUS(f.perCall(o)), float64(d)/1e3)
		}
	}
	line("the gateway's handler: its frames and what they call, but reverse_proxy", owner(ownerHandler))
	line("reverse_proxy: its frames and what they call (the transport, writing the answer)", owner(ownerProxy))
	line("the collector's background marking", owner(ownerGC))
	line("the rest: Caddy's server, net/http, the scheduler, system calls", owner(ownerRest))
	line("all (samples)", func(f *frameShares) string {
		return fmt.Sprintf("%s (%d)", fmtUS(f.cpuPerCall()), f.nSamples())
	})
	direct := func(f *frameShares) time.Duration {
		return f.perCall(ownerHandler) + f.perCall(ownerProxy) - fp.plain.perCall(ownerHandler) - fp.plain.perCall(ownerProxy)
	}
	cells := func(cell func(s site) string) string {
		var c strings.Builder
		for _, s := range sites {
			fmt.Fprintf(&c, " %s |", cell(s))
		}
		return c.String()
	}
	fmt.Fprintf(&b, "| the gateway's direct cost: handler and reverse_proxy over reverse_proxy alone | — |%s\n",
		cells(func(s site) string { return fmt.Sprintf("%+.1f µs", float64(direct(s.f))/1e3) }))
	fmt.Fprintf(&b, "| the rest of the difference: the collector, the rest, and the machine's drift between turns | — |%s\n",
		cells(func(s site) string {
			return fmt.Sprintf("%+.1f µs", float64(s.f.cpuPerCall()-fp.plain.cpuPerCall()-direct(s.f))/1e3)
		}))
	if plainPoint != nil && plainPoint.plain.requests > 0 {
		all := plainPoint.plain.totalCPUPerCall() // ns per call, proxy, simulator and wrk
		fmt.Fprintf(&b, "| the floor: throughput the direct cost allows, of the %.1f µs all processes take per call on reverse_proxy alone | — |%s\n",
			all/1e3, cells(func(s site) string { return fmt.Sprintf("%.3f×", all/(all+float64(direct(s.f)))) }))
		fmt.Fprintf(&b, "| measured (section 1, against reverse_proxy alone in the gateway's process): throughput; at equal CPU | — |%s\n",
			cells(func(s site) string {
				r, _, _ := pairedRatio(&plainPoint.plain, s.m, false)
				c, _, _ := cpuRatio(&plainPoint.plain, s.m)
				return fmt.Sprintf("%.3f×; %.3f×", r, c)
			}))
	}
	return b.String()
}

// framesIntro says how the profile table is made.
var framesIntro = fmt.Sprintf(`CPU profiles of the gateway's process (Caddy's pprof, 100 samples a second), taken while wrk loads each of its
three sites at 64 connections: `+"`reverse_proxy`"+` alone (the app's own token), trusted mode and clients mode, %d × %d s
each, the sites alternating. Each sample counts for the innermost of the gateway's handler and `+"`reverse_proxy`"+` on
its stack, so that what each calls counts for it: the gateway writes the answer it held to the client itself,
which `+"`reverse_proxy`"+` alone does inside its own frames. A row's figure per call is its share of the samples times
the process's CPU per call over the same runs (from `+"`/proc`"+`); in parentheses, the difference from `+"`reverse_proxy`"+`
alone. The direct cost is the work the gateway adds and `+"`reverse_proxy`"+` alone does not do; the floor is the
throughput that cost allows, were nothing else to change. A row holding n samples is good to about ±√n of them.
Reproduce: `+"`go -C cmd/wxbench run . -only json -profile /tmp/prof`"+`, then `+"`go tool pprof -top /tmp/prof/json.trusted.1.cpu.pprof`"+`.

`, profileRounds, profileSeconds)
