package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Who ran a CPU profile's samples. A sample belongs to the innermost of
// the gateway's handler and reverse_proxy on its stack, so that what each
// calls (the transport, writing the answer to the client, allocating)
// counts for it; a sample with neither is the collector's background work
// or the rest: Caddy's HTTP server, net/http reading and flushing (the
// transport's own goroutines too), the scheduler, system calls. The handler's samples that are writing to the
// client (a client writer's frame between the leaf and the handler's
// frame) are apart, ownerWrite: reverse_proxy alone does that work inside
// its own frames, so it is not work the gateway adds.
const (
	ownerHandler = iota
	ownerWrite
	ownerProxy
	ownerGC
	ownerRest
	owners
)

// Frame prefixes that decide a sample's owner.
const (
	handlerFrames = "github.com/wxgate/caddy-wechat/"
	proxyFrames   = "github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy."
	caddyHTTP     = "github.com/caddyserver/caddy/v2/modules/caddyhttp."
)

// gcFrames are the collector's background goroutines: marking, sweeping,
// returning memory to the system.
var gcFrames = []string{"runtime.gcBgMarkWorker", "runtime.bgsweep", "runtime.bgscavenge"}

// clientWriter reports whether a frame writes to the client: net/http's
// response writers, and Caddy's wrappers around them.
func clientWriter(fn string) bool {
	for _, p := range []string{"net/http.(*response)", "net/http.(*http2responseWriter)", "net/http.(*ResponseController)"} {
		if strings.HasPrefix(fn, p) {
			return true
		}
	}
	return strings.HasPrefix(fn, caddyHTTP) &&
		(strings.Contains(fn, "Writer") || strings.Contains(fn, "Recorder") || strings.Contains(fn, "Deadline"))
}

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

// direct is a site's direct cost per call: the handler's own work, less
// what the handler's frames take on reverse_proxy alone (the gateway's
// background work, refreshes, which every site's samples hold).
func (fp *frameProfile) direct(f *frameShares) time.Duration {
	return max(f.perCall(ownerHandler)-fp.plain.perCall(ownerHandler), 0)
}

// floor is the best throughput ratio a site could have, were its calls to
// cost the machine only its direct cost more than all, the CPU all
// processes take per call on reverse_proxy alone.
func (fp *frameProfile) floor(all float64, f *frameShares) float64 {
	return all / (all + float64(fp.direct(f)))
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
	owner, inSample, writing := -1, false, false
	flush := func() {
		if !inSample {
			return
		}
		if owner < 0 {
			owner = ownerRest
		}
		sum[owner] += value
		inSample, owner, writing = false, -1, false
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
		if len(fields) == 0 || !strings.HasPrefix(line, " ") || strings.HasSuffix(fields[0], ":") {
			continue // the header (File:, Type:, Duration:), a blank line, a sample's label
		}
		fn := fields[0] // an inlined frame is followed by "(inline)"
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
		case strings.HasPrefix(fn, handlerFrames) && writing:
			owner = ownerWrite
		case strings.HasPrefix(fn, handlerFrames):
			owner = ownerHandler
		case clientWriter(fn):
			writing = true
		case strings.HasPrefix(fn, proxyFrames):
			owner = ownerProxy
		case slices.Contains(gcFrames, fn):
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
	plainPoint := r.framesPoint()
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
	line("the gateway's handler, its own work: its frames and what they call, but reverse_proxy and the client's writer", owner(ownerHandler))
	line("the gateway's handler, writing the answer it held to the client", owner(ownerWrite))
	line("reverse_proxy: its frames and what they call (the round trip; alone, writing the answer too)", owner(ownerProxy))
	line("the collector's background work: marking, sweeping", owner(ownerGC))
	line("the rest: Caddy's server, net/http (the transport's goroutines too), the scheduler, system calls", owner(ownerRest))
	line("all (samples)", func(f *frameShares) string {
		return fmt.Sprintf("%s (%d)", fmtUS(f.cpuPerCall()), f.nSamples())
	})
	cells := func(cell func(s site) string) string {
		var c strings.Builder
		for _, s := range sites {
			fmt.Fprintf(&c, " %s |", cell(s))
		}
		return c.String()
	}
	fmt.Fprintf(&b, "| the direct cost: the handler's own work, from each site's own profile, less its background work on reverse_proxy alone | — |%s\n",
		cells(func(s site) string {
			return fmt.Sprintf("%s (%.1f%% of the process's CPU)", fmtUS(fp.direct(s.f)), 100*float64(fp.direct(s.f))/float64(max(s.f.cpuPerCall(), 1)))
		}))
	fmt.Fprintf(&b, "| the rest of the difference from reverse_proxy alone: its other rows, and the machine's drift between turns | — |%s\n",
		cells(func(s site) string {
			return fmt.Sprintf("%+.1f µs", float64(s.f.cpuPerCall()-fp.plain.cpuPerCall()-fp.direct(s.f))/1e3)
		}))
	if plainPoint != nil {
		all := plainPoint.plain.totalCPUPerCall() // ns per call, proxy, simulator and wrk
		fmt.Fprintf(&b, "| the floor: the best throughput ratio the direct cost allows, with the %.1f µs all processes take per call on reverse_proxy alone (section 1) | — |%s\n",
			all/1e3, cells(func(s site) string { return fmt.Sprintf("%.3f×", fp.floor(all, s.f)) }))
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
sites at 64 connections: `+"`reverse_proxy`"+` alone (the app's own token), trusted mode and clients mode, %d × %d s
each, the sites alternating. Each sample counts for the innermost of the gateway's handler and `+"`reverse_proxy`"+` on
its stack, so that what each calls counts for it. The handler's samples that write to the client (net/http's response
writer or Caddy's wrappers of it below the handler's frame) are a row of their own: the gateway writes the answer it
held to the client itself, which `+"`reverse_proxy`"+` alone does inside its own frames, so that row is work moved, not
added. A row's figure per call is its share of the samples times the process's CPU per call over the same runs (from
`+"`/proc`"+`); in parentheses, the difference from `+"`reverse_proxy`"+` alone, which also holds the machine's drift
from one turn to the next. The direct cost is the handler's own work, read from each site's own samples, so no
drift enters it (less what the handler's frames take on `+"`reverse_proxy`"+` alone: the gateway's background work, such
as refreshes); the floor is the best throughput ratio that cost allows, were nothing else to change. A row holding n samples
is good to about ±√n of them. Reproduce: `+"`go -C cmd/wxbench run . -only json -profile /tmp/prof`"+`, then
`+"`go tool pprof -top /tmp/prof/json.trusted.1.cpu.pprof`"+`.

`, profileRounds, profileSeconds)

// framesPoint is section 1's measurement at the profile's concurrency,
// if it ran reverse_proxy alone in the gateway's process; nil otherwise.
func (r results) framesPoint() *jsonPoint {
	for i := range r.json {
		if p := &r.json[i]; p.conns == r.frames.conns && p.plain.requests > 0 {
			return p
		}
	}
	return nil
}

// framesSummary says, for this run, how many throughput cells met the
// target against the baseline, the A/A pair beside them, and how far each
// mode's measured ratio to reverse_proxy alone sits from its floor.
func (r results) framesSummary() string {
	if len(r.json) == 0 {
		return ""
	}
	modes := []struct {
		name string
		m    func(p *jsonPoint) *measure
		f    *frameShares
	}{{"trusted", func(p *jsonPoint) *measure { return &p.gateway }, &r.frames.trusted},
		{"clients", func(p *jsonPoint) *measure { return &p.clients }, &r.frames.clients}}
	met, cells := 0, 0
	var conns, aa []string
	ratios := make([][]string, len(modes))
	for i := range r.json {
		p := &r.json[i]
		conns = append(conns, fmt.Sprint(p.conns))
		a, _, _ := pairedRatio(&p.base, &p.again, false)
		aa = append(aa, fmt.Sprintf("%.3f", a))
		for k, mode := range modes {
			m := mode.m(p)
			if len(m.rates) == 0 {
				continue
			}
			x, _, _ := pairedRatio(&p.base, m, false)
			ratios[k] = append(ratios[k], fmt.Sprintf("%.3f", x))
			cells++
			if x >= jsonThroughputTarget {
				met++
			}
		}
	}
	var clauses []string
	for k, mode := range modes {
		if len(ratios[k]) > 0 {
			clauses = append(clauses, fmt.Sprintf("%s %s×", mode.name, strings.Join(ratios[k], " / ")))
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "In this run the gateway's throughput was at least %.2f× the baseline's in %d of %d throughput cells: at %s connections, %s, with the A/A pair at %s×.",
		jsonThroughputTarget, met, cells, strings.Join(conns, " / "), strings.Join(clauses, ", "), strings.Join(aa, " / "))
	pt := r.framesPoint()
	clauses = clauses[:0]
	if pt != nil && r.frames.plain.calls > 0 {
		all := pt.plain.totalCPUPerCall()
		for _, mode := range modes {
			m := mode.m(pt)
			if m.requests == 0 || mode.f.calls == 0 {
				continue
			}
			floor := r.frames.floor(all, mode.f)
			x, _, _ := pairedRatio(&pt.plain, m, false)
			clauses = append(clauses, fmt.Sprintf("%s mode measured %.3f× against a floor of %.3f× (%+.1f points)", mode.name, x, floor, 100*(x-floor)))
		}
	}
	if len(clauses) > 0 {
		fmt.Fprintf(&b, " Against `reverse_proxy` alone in the gateway's process, at %d connections, %s.", r.frames.conns, strings.Join(clauses, ", "))
		b.WriteString(" What a measured ratio has below its floor is CPU the gateway's calls cost outside the handler's own work," +
			" in the other rows, and the run's noise, which the A/A pair shows.")
	}
	return b.String() + "\n"
}
