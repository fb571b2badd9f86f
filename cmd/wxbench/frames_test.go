package main

import (
	"strings"
	"testing"
	"time"
)

// tracesSample is `go tool pprof -traces` output in its real shape: the
// header, then samples innermost frame first.
const tracesSample = `File: caddy-wechat
Build ID: 0123
Type: cpu
Time: 2026-12-02 15:00:00 UTC
Duration: 8s, Total samples = 160ms ( 2.00%)
-----------+-------------------------------------------------------
      site:  [trusted]
      30ms   runtime.memmove
             net/http.(*response).Write
             github.com/wxgate/caddy-wechat/module.(*inspector).pass (inline)
             github.com/caddyserver/caddy/v2/modules/caddyhttp.wrapMiddleware.func1.1
-----------+-------------------------------------------------------
      20ms   syscall.Syscall
             net/http.(*persistConn).roundTrip
             github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy.(*Handler).reverseProxy
             github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy.(*Handler).ServeHTTP
             github.com/wxgate/caddy-wechat/module.sendUpstream
             github.com/wxgate/caddy-wechat/module.(*Handler).ServeHTTP
-----------+-------------------------------------------------------
      10ms   github.com/wxgate/caddy-wechat/module.(*inspector).Write
             github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy.(*Handler).copyBuffer
             github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy.(*Handler).ServeHTTP
-----------+-------------------------------------------------------
      10ms   github.com/caddyserver/caddy/v2/modules/caddyhttp.(*Route).ProvisionHandlers.wrapMiddleware.func1.1
             github.com/wxgate/caddy-wechat/module.sendUpstream
-----------+-------------------------------------------------------
      10ms   time.Now
             github.com/caddyserver/caddy/v2/modules/caddyhttp.(*IdleTimeoutWriter).resetDeadline
             github.com/wxgate/caddy-wechat/module.(*inspector).stream
-----------+-------------------------------------------------------
      40ms   runtime.scanobject
             runtime.gcDrain
             runtime.gcBgMarkWorker.func2
             runtime.systemstack
             runtime.gcBgMarkWorker
-----------+-------------------------------------------------------
      20ms   syscall.Syscall6
             net/http.(*conn).serve
-----------+-------------------------------------------------------
`

// TestParseTraces checks that each sample counts for the innermost of the
// handler and reverse_proxy on its stack, the collector's for the
// collector, and the rest for the rest.
func TestParseTraces(t *testing.T) {
	got, err := parseTraces([]byte(tracesSample))
	if err != nil {
		t.Fatal(err)
	}
	want := [owners]time.Duration{
		ownerWrite:   40 * time.Millisecond, // pass's write to the client, stream's through Caddy's writer
		ownerHandler: 20 * time.Millisecond, // the inspector's Write under reverse_proxy, the route's glue to next
		ownerProxy:   20 * time.Millisecond, // the round trip under the handler
		ownerGC:      40 * time.Millisecond,
		ownerRest:    20 * time.Millisecond,
	}
	if got != want {
		t.Errorf("parseTraces = %v, want %v", got, want)
	}
	if _, err := parseTraces([]byte(strings.Replace(tracesSample, "30ms", "thirty", 1))); err == nil {
		t.Error("a sample value that is not a duration was read without error")
	}
}

// TestFramesPerCall checks the arithmetic: a share of the samples times
// the process's CPU per call.
func TestFramesPerCall(t *testing.T) {
	f := frameShares{cpu: 100 * time.Millisecond, calls: 1000}
	f.samples[ownerHandler] = 10 * time.Millisecond
	f.samples[ownerRest] = 30 * time.Millisecond
	if got, want := f.cpuPerCall(), 100*time.Microsecond; got != want {
		t.Errorf("cpuPerCall = %v, want %v", got, want)
	}
	if got, want := f.perCall(ownerHandler), 25*time.Microsecond; got != want {
		t.Errorf("perCall(handler) = %v, want %v", got, want)
	}
	if got := (&frameShares{}).perCall(ownerHandler); got != 0 {
		t.Errorf("perCall of no profile = %v, want 0", got)
	}
}

// TestRenderFrames checks the floor the table derives: the direct cost (the
// handler's own work, its writes to the client apart) against the CPU all
// processes take per call on reverse_proxy alone.
func TestRenderFrames(t *testing.T) {
	shares := func(handler, write, proxy, rest time.Duration) frameShares {
		f := frameShares{cpu: (handler + write + proxy + rest) * 1000, calls: 1000}
		f.samples[ownerHandler], f.samples[ownerWrite], f.samples[ownerProxy], f.samples[ownerRest] = handler, write, proxy, rest
		return f
	}
	var r results
	r.frames = frameProfile{conns: 64,
		plain:   shares(0, 0, 30*time.Microsecond, 30*time.Microsecond),
		trusted: shares(1*time.Microsecond, 2*time.Microsecond, 28*time.Microsecond, 31*time.Microsecond),
		clients: shares(2*time.Microsecond, 2*time.Microsecond, 28*time.Microsecond, 31*time.Microsecond),
	}
	pt := jsonPoint{conns: 64}
	for _, m := range []*measure{&pt.base, &pt.again, &pt.plain, &pt.gateway, &pt.clients} {
		m.requests, m.cpu, m.simCPU, m.loadCPU = 1000, 60*time.Millisecond, 30*time.Millisecond, 10*time.Millisecond
		m.rates = []float64{100}
		m.roundCPU = []float64{1e5}
	}
	r.json = []jsonPoint{pt}
	out := r.renderFrames()
	for _, want := range []string{
		"| the direct cost: the handler's own work, from each site's own profile, less its background work on reverse_proxy alone | — | 1.0 µs (1.6% of the process's CPU) | 2.0 µs (3.2% of the process's CPU) |",
		"with the 100.0 µs all processes take per call on reverse_proxy alone (section 1) | — | 0.990× | 0.980× |",
		"| the rest of the difference from reverse_proxy alone: its other rows, and the machine's drift between turns | — | +1.0 µs | +1.0 µs |",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("renderFrames lacks %q; got\n%s", want, out)
		}
	}
	floors := map[string]string{}
	for _, x := range r.table() {
		if i := strings.Index(x.compare, "floor from the profile"); i >= 0 {
			floors[x.measure] = x.compare[i:]
		}
	}
	if got := floors["trusted, 64 conns: throughput"]; got != "floor from the profile 0.990×" {
		t.Errorf("the trusted throughput row gives %q, want its floor", got)
	}
	if got := floors["clients, 64 conns: throughput"]; got != "floor from the profile 0.980×" {
		t.Errorf("the clients throughput row gives %q, want its floor", got)
	}
	summaryHas(t, r,
		"at least 0.98× the baseline's in 2 of 2 throughput cells: at 64 connections, trusted 1.000×, clients 1.000×, with the A/A pair at 1.000×.",
		"trusted mode measured 1.000× against a floor of 0.990× (+1.0 points), clients mode measured 1.000× against a floor of 0.980× (+2.0 points).")
}

// summaryHas checks that the run's summary holds each of want.
func summaryHas(t *testing.T, r results, want ...string) {
	t.Helper()
	summary := r.framesSummary()
	for _, w := range want {
		if !strings.Contains(summary, w) {
			t.Errorf("framesSummary lacks %q; got\n%s", w, summary)
		}
	}
}

// TestFramesSummaryOneMode checks the summary of a run without clients
// mode (no -trusted gateway token): one clause, a sentence that ends; and
// that the handler's background work on reverse_proxy alone (token
// refreshes) is not counted in a site's direct cost.
func TestFramesSummaryOneMode(t *testing.T) {
	var r results
	plain := frameShares{cpu: 60 * time.Millisecond, calls: 1000}
	plain.samples[ownerHandler], plain.samples[ownerRest] = 1*time.Millisecond, 59*time.Millisecond
	trusted := frameShares{cpu: 62 * time.Millisecond, calls: 1000}
	trusted.samples[ownerHandler], trusted.samples[ownerRest] = 2*time.Millisecond, 60*time.Millisecond
	r.frames = frameProfile{conns: 64, plain: plain, trusted: trusted}
	pt := jsonPoint{conns: 64}
	for _, m := range []*measure{&pt.base, &pt.again, &pt.plain, &pt.gateway} {
		m.requests, m.cpu, m.simCPU, m.loadCPU = 1000, 60*time.Millisecond, 30*time.Millisecond, 10*time.Millisecond
		m.rates = []float64{100}
		m.roundCPU = []float64{1e5}
	}
	r.json = []jsonPoint{pt}
	if got, want := r.frames.direct(&r.frames.trusted), time.Microsecond; got != want {
		t.Errorf("direct = %v, want %v (2 µs of handler frames, 1 µs of them there on reverse_proxy alone too)", got, want)
	}
	summaryHas(t, r,
		"in 1 of 1 throughput cells: at 64 connections, trusted 1.000×, with the A/A pair at 1.000×.",
		"at 64 connections, trusted mode measured 1.000× against a floor of 0.990× (+1.0 points). What a measured ratio")
	if strings.Contains(r.renderFrames(), "clients") {
		t.Errorf("a run without clients mode has a clients column:\n%s", r.renderFrames())
	}
}
