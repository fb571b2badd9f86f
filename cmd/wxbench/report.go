package main

import (
	_ "embed"
	"fmt"
	"slices"
	"strings"
	"time"
)

// results is everything one run measured.
type results struct {
	meta  meta
	quick bool

	json      []jsonPoint
	jsonCheck string

	download    *downloadResult
	upload      []uploadPoint
	uploadCheck string

	storms []stormResult

	day     []dayResult
	dayStep time.Duration

	// frames is section 1's profile of the gateway's process.
	frames frameProfile

	accounts *accountsResult
	gobench  []goBench

	// dashboard is the dashboard section's scrapes of /metrics.
	dashboard []sample

	// warnings are anomalies the run saw (failed calls, refused tokens).
	warnings []string
}

// row is one line of the table.
type row struct {
	section, measure, baseline, gateway, compare, target, result string
}

// Verdicts.
const (
	met    = "met"
	missed = "**missed**"
)

func verdict(ok bool) string {
	if ok {
		return met
	}
	return missed
}

// Targets: throughput and p99 against the plain reverse_proxy.
const (
	jsonThroughputTarget     = 0.98
	jsonP99RatioTarget       = 1.1
	downloadThroughputTarget = 0.99
	// downloadRSSSlack is how much more the gateway's peak RSS may be with
	// a 64 MiB file than with a 4 MiB one for its memory to count as
	// independent of the file's size.
	downloadRSSSlack = 8 << 20
)

// table turns the results into the rows of the table, in section order.
func (r results) table() []row {
	var rows []row
	add := func(x row) { rows = append(rows, x) }

	for _, p := range r.json {
		s := "1. small JSON: GET user/info"
		aa, aaLo, aaHi := pairedRatio(&p.base, &p.again, false)
		// control is a row of a site without the wechat handler, against
		// the baseline: what a part of the gateway's setting costs.
		control := func(m *measure, name, label, what string) {
			r, lo, hi := pairedRatio(&p.base, m, false)
			c, _, _ := cpuRatio(&p.base, m)
			add(row{section: s, measure: fmt.Sprintf("%s, %d conns: throughput; proxy CPU per call", name, p.conns),
				baseline: fmt.Sprintf("%.0f req/s; %s", p.base.rate(), fmtUS(p.base.cpuPerCall())),
				gateway:  fmt.Sprintf("%s: %.0f req/s; %s", label, m.rate(), fmtUS(m.cpuPerCall())),
				compare: fmt.Sprintf("%.3f× (rounds %.2f–%.2f), at equal CPU %.3f×; %+.1f µs: %s",
					r, lo, hi, c, float64(m.cpuPerCall()-p.base.cpuPerCall())/1e3, what)})
		}
		if len(p.noop.rates) > 0 {
			control(&p.noop, "no-op middleware (`vars`)", "no-op middleware", "what any handler in the route costs")
		}
		samePlain := len(p.plain.rates) > 0
		if samePlain {
			control(&p.plain, "reverse_proxy alone in the gateway's process", "gateway's process",
				"what the gateway's process costs before its handler runs")
		}
		for _, mode := range []struct {
			name   string
			gw     *measure
			frames *frameShares
		}{{"trusted", &p.gateway, &r.frames.trusted}, {"clients", &p.clients, &r.frames.clients}} {
			if len(mode.gw.rates) == 0 {
				continue
			}
			ratio, lo, hi := pairedRatio(&p.base, mode.gw, false)
			same := ""
			if samePlain {
				sr, sLo, sHi := pairedRatio(&p.plain, mode.gw, false)
				same = fmt.Sprintf("; to reverse_proxy alone in its process %.3f× (rounds %.2f–%.2f)", sr, sLo, sHi)
				if mode.frames.calls > 0 && r.frames.plain.calls > 0 && p.plain.requests > 0 {
					// The direct cost per call, measured at 64 connections,
					// against this concurrency's CPU per call.
					same += fmt.Sprintf("; floor from the profile %.3f×", r.frames.floor(p.plain.totalCPUPerCall(), mode.frames))
				}
			}
			add(row{section: s, measure: fmt.Sprintf("%s, %d conns: throughput", mode.name, p.conns),
				baseline: fmt.Sprintf("%.0f req/s", p.base.rate()), gateway: fmt.Sprintf("%.0f req/s", mode.gw.rate()),
				compare: fmt.Sprintf("%.3f× (rounds %.2f–%.2f); A/A %.3f× (%.2f–%.2f)%s", ratio, lo, hi, aa, aaLo, aaHi, same),
				target:  fmt.Sprintf("≥ %.2f×", jsonThroughputTarget), result: verdict(ratio >= jsonThroughputTarget)})
			cpuR, cpuLo, cpuHi := cpuRatio(&p.base, mode.gw)
			aaCPU, aaCPULo, aaCPUHi := cpuRatio(&p.base, &p.again)
			perCall := func(m *measure) string {
				n := time.Duration(m.requests)
				return fmt.Sprintf("%s per call (proxy %s, simulator %s, wrk %s)", fmtUS(time.Duration(m.totalCPUPerCall())),
					fmtUS(m.cpu/n), fmtUS(m.simCPU/n), fmtUS(m.loadCPU/n))
			}
			add(row{section: s, measure: fmt.Sprintf("%s, %d conns: throughput at equal CPU (CPU of all processes per call)", mode.name, p.conns),
				baseline: perCall(&p.base), gateway: perCall(mode.gw),
				compare: fmt.Sprintf("%.3f× (rounds %.2f–%.2f); A/A %.3f× (%.2f–%.2f)", cpuR, cpuLo, cpuHi, aaCPU, aaCPULo, aaCPUHi),
				target:  fmt.Sprintf("≥ %.2f×", jsonThroughputTarget), result: verdict(cpuR >= jsonThroughputTarget)})
			pcts := func(m *measure) string {
				return fmt.Sprintf("%s / %s", fmtMS(m.percentile(50)), fmtMS(m.percentile(99)))
			}
			p99 := float64(mode.gw.percentile(99)) / float64(max(p.base.percentile(99), 1))
			add(row{section: s, measure: fmt.Sprintf("%s, %d conns: p50 / p99", mode.name, p.conns),
				baseline: pcts(&p.base), gateway: pcts(mode.gw),
				compare: fmt.Sprintf("p99 %.2f× (A/A %.2f×)", p99, float64(p.again.percentile(99))/float64(max(p.base.percentile(99), 1))),
				target:  fmt.Sprintf("p99 ≤ %.1f×", jsonP99RatioTarget), result: verdict(p99 <= jsonP99RatioTarget)})
			cost := func(m *measure) string {
				return fmt.Sprintf("%s; %.0f allocs, %.1f KiB", fmtUS(m.cpuPerCall()), m.allocsPerCall(), m.bytesPerCall()/1024)
			}
			over := fmt.Sprintf("%+.1f µs over the no-op middleware", float64(mode.gw.cpuPerCall()-p.noop.cpuPerCall())/1e3)
			if samePlain {
				over += fmt.Sprintf(", %+.1f µs over reverse_proxy alone in its process", float64(mode.gw.cpuPerCall()-p.plain.cpuPerCall())/1e3)
			}
			add(row{section: s, measure: fmt.Sprintf("%s, %d conns: proxy CPU; heap allocations per call", mode.name, p.conns),
				baseline: cost(&p.base), gateway: cost(mode.gw),
				compare: fmt.Sprintf("%+.1f µs (%s); %+.0f allocs, %+.1f KiB",
					float64(mode.gw.cpuPerCall()-p.base.cpuPerCall())/1e3, over,
					mode.gw.allocsPerCall()-p.base.allocsPerCall(), (mode.gw.bytesPerCall()-p.base.bytesPerCall())/1024)})
		}
	}

	if d := r.download; d != nil {
		s := "2. binary download: 64 MiB media/get"
		ratio, lo, hi := pairedRatio(&d.base, &d.gateway, true)
		add(row{section: s, measure: fmt.Sprintf("%d conns: throughput; proxy CPU per GiB", d.conns),
			baseline: fmt.Sprintf("%s; %s", fmtRate(d.base.byteRate()), fmtMS(d.base.cpuPerGiB())),
			gateway:  fmt.Sprintf("%s; %s", fmtRate(d.gateway.byteRate()), fmtMS(d.gateway.cpuPerGiB())),
			compare: fmt.Sprintf("%.3f× (rounds %.2f–%.2f); %+.1f ms", ratio, lo, hi,
				float64(d.gateway.cpuPerGiB()-d.base.cpuPerGiB())/1e6),
			target: fmt.Sprintf("≥ %.2f×", downloadThroughputTarget),
			result: verdict(ratio >= downloadThroughputTarget)})
		add(row{section: s, measure: fmt.Sprintf("%d conns: RSS idle → peak", d.conns),
			baseline: fmt.Sprintf("%s → %s", mib(d.baseIdle), mib(d.basePeak)),
			gateway:  fmt.Sprintf("%s → %s", mib(d.gatewayIdle), mib(d.gatewayPeak)),
			compare: fmt.Sprintf("gateway growth: %s with 64 MiB files, %s with 4 MiB files",
				mib(d.gatewayPeak-d.gatewayIdle), mib(d.smallPeak-d.smallIdle)),
			target: "gateway RSS independent of file size",
			result: verdict((d.gatewayPeak-d.gatewayIdle)-(d.smallPeak-d.smallIdle) <= downloadRSSSlack)})
	}

	for _, u := range r.upload {
		s := "3. 10 MB multipart uploads"
		bp, gp := u.perUpload(u.basePeak, u.baseIdle), u.perUpload(u.gatewayPeak, u.gatewayIdle)
		add(row{section: s, measure: fmt.Sprintf("%d at once: peak RSS above idle per upload (uploads/s)", u.conns),
			baseline: fmt.Sprintf("%s (%.1f/s)", mib(bp), u.base.rate()),
			gateway:  fmt.Sprintf("%s (%.1f/s)", mib(gp), u.gateway.rate()),
			compare:  fmt.Sprintf("+%s per upload", mib(gp-bp))})
	}

	for _, st := range r.storms {
		s := "4. invalidation storm"
		add(row{section: s, measure: fmt.Sprintf("N=%d, %s: token fetches / failed / p50 / p99", st.n, st.endpoint),
			baseline: "—",
			gateway: fmt.Sprintf("%d / %d / %s / %s", st.fetches, st.burst.failed,
				fmtMS(st.burst.percentile(50)), fmtMS(st.burst.percentile(99))),
			compare: fmt.Sprintf("%d of %d calls refused upstream, replayed", st.rejected, st.n),
			target:  "1 fetch, 0 failed",
			result:  verdict(st.fetches == 1 && st.burst.failed == 0 && st.burst.sent == st.n)})
	}

	for _, d := range r.day {
		s := "5. token economy: a simulated day"
		target := fmt.Sprintf("≤ %d (minimum + 1)", d.minimum+1)
		res := verdict(d.fetches <= d.minimum+1 && d.failed == 0)
		if strings.HasPrefix(d.endpoint, "gettoken") {
			target += ", not an issue target"
		}
		add(row{section: s, measure: fmt.Sprintf("%s: token calls (tokens) per day; failed calls", d.endpoint),
			baseline: "—", gateway: fmt.Sprintf("%d (%d); %d of %d failed", d.fetches, d.issued, d.failed, d.calls),
			compare: fmt.Sprintf("physical minimum %d", d.minimum), target: target, result: res})
	}

	if a := r.accounts; a != nil {
		s := fmt.Sprintf("6. memory: %d accounts", a.accounts)
		add(row{section: s, measure: "RSS after a GC (Go heap in use)",
			baseline: fmt.Sprintf("no account: %s (%s)", mib(a.zeroRSS), mib(int64(a.zeroHeap))),
			gateway: fmt.Sprintf("configured: %s (%s); %d holding tokens: %s (%s)", mib(a.configuredRSS),
				mib(int64(a.configuredHeap)), a.holding, mib(a.tokensRSS), mib(int64(a.tokensHeap))),
			compare: fmt.Sprintf("%s RSS, %s heap per account (tokens: %s heap)",
				fmtBytes(a.rssPerAccount()), fmtBytes(a.heapPerAccount()), fmtBytes(a.tokenHeapPerAccount()))})
	}

	nextOnly := map[string]*goBench{} // BenchmarkServeHTTP's and BenchmarkServeHTTPCold's baselines: next alone
	for i, g := range r.gobench {
		if family, sub, ok := strings.Cut(g.name, "/"); ok && isServeHTTPBench(family) && strings.HasPrefix(sub, "next_only") {
			nextOnly[family] = &r.gobench[i]
		}
	}
	for _, g := range r.gobench {
		s := "7. Go benchmarks (hot paths)"
		x := row{section: s, measure: fmt.Sprintf("%s (%s)", g.name, g.pkg), baseline: "—",
			gateway: fmt.Sprintf("%.1f ns/op, %d B/op, %d allocs/op", g.nsPerOp, g.bytesPerOp, g.allocs)}
		family, _, _ := strings.Cut(g.name, "/")
		base := nextOnly[family]
		switch {
		case allocationFree(g.name):
			x.target, x.result = "allocation-free", verdict(g.allocs == 0)
		case base != nil && g.name == base.name:
			x.baseline, x.gateway = x.gateway, "—"
		case base != nil:
			x.baseline = fmt.Sprintf("next alone: %.1f ns/op, %d B/op, %d allocs/op", base.nsPerOp, base.bytesPerOp, base.allocs)
			x.compare = fmt.Sprintf("the gateway's work: %+.0f ns, %+d allocs, %+d B per call", g.nsPerOp-base.nsPerOp,
				g.allocs-base.allocs, g.bytesPerOp-base.bytesPerOp)
		}
		add(x)
	}
	return rows
}

// allocationFreeBenches are the hot paths that allocate nothing: the
// errcode scan, the token lookup, the inspector, and in clients mode the
// gateway token's check and the caller's authorization.
var allocationFreeBenches = []string{"BenchmarkScanErrcode", "BenchmarkTokenLookup", "BenchmarkInspector",
	"BenchmarkVerifyCached", "BenchmarkAuthorizeClients"}

func allocationFree(name string) bool {
	return slices.ContainsFunc(allocationFreeBenches, func(b string) bool {
		return name == b || strings.HasPrefix(name, b+"/") || strings.HasPrefix(name, b+"-")
	})
}

// isServeHTTPBench reports whether a benchmark measures a whole call
// through the handler (BenchmarkServeHTTP, and BenchmarkServeHTTPCold with
// the caches emptied before each call); their sub-benchmark next_only is
// the next handler alone.
func isServeHTTPBench(name string) bool {
	return name == "BenchmarkServeHTTP" || name == "BenchmarkServeHTTPCold"
}

// renderMarkdown renders the table as Markdown, one section label per
// group of rows.
func renderMarkdown(rows []row) string {
	var b strings.Builder
	b.WriteString("| | Measure | Baseline: reverse_proxy, app's own token | Gateway: wechat handler + reverse_proxy | Gateway vs baseline | Target | Result |\n")
	b.WriteString("|---|---|---|---|---|---|---|\n")
	last := ""
	for _, r := range rows {
		section := ""
		if r.section != last {
			section = "**" + r.section + "**"
			last = r.section
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s |\n", section, r.measure, r.baseline, r.gateway, r.compare, r.target, r.result)
	}
	return b.String()
}

// fmtMS formats a latency in milliseconds.
func fmtMS(d time.Duration) string {
	return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond))
}

// fmtAdded formats a latency difference with its sign.
func fmtAdded(d time.Duration) string {
	return fmt.Sprintf("%+.2f ms", float64(d)/float64(time.Millisecond))
}

func fmtDur(d time.Duration) string { return fmtMS(d) }

// fmtUS formats a duration in microseconds.
func fmtUS(d time.Duration) string { return fmt.Sprintf("%.1f µs", float64(d)/1e3) }

// fmtRate formats bytes per second as MiB/s.
func fmtRate(bps float64) string { return fmt.Sprintf("%.0f MiB/s", bps/(1<<20)) }

// fmtBytes formats a byte count for a per-account figure.
func fmtBytes(n int64) string {
	if n >= 10<<10 || n <= -10<<10 {
		return fmt.Sprintf("%.1f KiB", float64(n)/1024)
	}
	return fmt.Sprintf("%d B", n)
}

// targetSummary lists the targets with their results.
func (r results) targetSummary(rows []row) []string {
	var out []string
	for _, x := range rows {
		if x.target == "" || x.result == "" {
			continue
		}
		res := "met"
		if x.result != met {
			res = "MISSED"
		}
		detail := x.gateway
		if x.compare != "" {
			detail += "; " + x.compare
		}
		out = append(out, fmt.Sprintf("%s — %s — %s: %s (gateway %s)", res, x.section, x.measure, x.target, detail))
	}
	return out
}

//go:embed notes.md
var notesMD string

// renderBenchmarksMD renders BENCHMARKS.md: when, on what, the table, the
// method, and the profiling notes (cmd/wxbench/notes.md).
func renderBenchmarksMD(r results, rows []row) string {
	m := r.meta
	var b strings.Builder
	b.WriteString("# Benchmarks\n\n")
	b.WriteString("Written by `go -C cmd/wxbench run .` (see [cmd/wxbench](cmd/wxbench/main.go)); run it again to measure your machine.\n\n")
	commit := m.commit
	if m.dirty {
		commit += " (with uncommitted changes in the work tree)"
	}
	fmt.Fprintf(&b, "- **Date:** %s\n", m.date.Format("2006-01-02 15:04 UTC"))
	fmt.Fprintf(&b, "- **Machine:** %s, %d cores, %.1f GiB memory, Linux %s\n", m.cpu, m.cores, m.memGiB, m.kernel)
	fmt.Fprintf(&b, "- **Software:** %s, Caddy %s, commit %s\n", m.goVersion, m.caddy, commit)
	fmt.Fprintf(&b, "- **Load generators:** %s (sustained load: sections 1–3), vegeta %s library (bursts: sections 4 and 6)\n\n", m.wrk, m.vegeta)
	b.WriteString("![Latency percentiles, baseline vs gateway](cmd/wxbench/latency.png)\n\n")
	b.WriteString("## Results\n\n")
	b.WriteString(renderMarkdown(rows))
	b.WriteString("\n")
	if r.jsonCheck != "" || r.uploadCheck != "" {
		b.WriteString("Upstream check: ")
		parts := []string{}
		if r.jsonCheck != "" {
			parts = append(parts, "small JSON calls: "+r.jsonCheck)
		}
		if r.uploadCheck != "" {
			parts = append(parts, "uploads: "+r.uploadCheck)
		}
		b.WriteString(strings.Join(parts, "; ") + ".\n\n")
	}
	if len(r.warnings) > 0 {
		b.WriteString("**Anomalies seen during the run:**\n\n")
		for _, w := range r.warnings {
			b.WriteString("- " + w + "\n")
		}
		b.WriteString("\n")
	}
	if f := r.renderFrames(); f != "" {
		b.WriteString("## Where the CPU goes\n\n")
		b.WriteString(framesIntro)
		b.WriteString(f)
		b.WriteString("\n")
		b.WriteString(r.framesSummary())
		b.WriteString("\n")
	}
	b.WriteString("## Targets\n\n")
	for _, t := range r.targetSummary(rows) {
		b.WriteString("- " + t + "\n")
	}
	b.WriteString("\n")
	step := r.dayStep.String()
	if r.dayStep%time.Minute == 0 {
		step = fmt.Sprintf("%d-minute", r.dayStep/time.Minute)
	}
	b.WriteString(strings.ReplaceAll(notesMD, "{DAY_STEP}", step))
	return b.String()
}
