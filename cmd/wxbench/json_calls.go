package main

import (
	"fmt"
	"math"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// jsonPoint is the small-JSON measurement at one concurrency: the
// baseline twice (base and again, an A/A pair that shows the noise), the
// baseline behind a no-op handler (noop: the cost of any middleware), the
// gateway in trusted mode, and in clients mode (a gateway token to verify
// on every call).
type jsonPoint struct {
	conns                               int
	base, again, noop, gateway, clients measure
	// plain is the baseline's site served by the gateway's process:
	// reverse_proxy alone, the app sending its own token.
	plain measure
}

// jsonConcurrencies are the connection counts of section 1; the targets
// are judged at 64.
func (b *bench) jsonConcurrencies() []int {
	if b.opts.quick {
		return []int{16, 64}
	}
	return []int{16, 64, 256}
}

// targetConns is the concurrency at which the small-JSON targets apply.
const targetConns = 64

// runJSON measures GET /cgi-bin/user/info through the baseline (with the
// app's own token) and through the gateway (with none), at each
// concurrency, in rounds that alternate which of the two goes first, and
// checks in the simulator's counters that every call succeeded upstream.
func (b *bench) runJSON() error {
	gwURL := b.gw.url(userInfoPath)
	baseURL := b.base.url(userInfoPath + "&access_token=" + b.baseToken)
	noopURL := fmt.Sprintf("http://127.0.0.1:%d%s&access_token=%s", b.noopPort, userInfoPath, b.baseToken)
	plainURL := fmt.Sprintf("http://127.0.0.1:%d%s&access_token=%s", b.plainPort, userInfoPath, b.baseToken)
	clientsURL := ""
	if b.gwToken != "" {
		clientsURL = b.gw3URL(userInfoPath + "&access_token=" + b.gwToken)
	}
	logf("1. small JSON calls: warming up")
	for _, u := range []string{baseURL, noopURL, plainURL, gwURL, clientsURL} {
		if u == "" {
			continue
		}
		if _, err := b.wrk.run(wrkJob{url: u, conns: targetConns, duration: time.Second}); err != nil {
			return err
		}
	}
	before, err := b.simc.counters()
	if err != nil {
		return err
	}
	concs := b.jsonConcurrencies()
	points := make([]jsonPoint, len(concs))
	for round := 0; round < b.opts.rounds; round++ {
		for i, c := range concs {
			points[i].conns = c
			turns := []turn{{p: b.base, url: baseURL, m: &points[i].base}, {p: b.gw, url: gwURL, m: &points[i].gateway},
				{p: b.base, url: baseURL, m: &points[i].again}, {p: b.base, url: noopURL, m: &points[i].noop},
				{p: b.gw, url: plainURL, m: &points[i].plain}}
			if clientsURL != "" {
				turns = append(turns, turn{p: b.gw, url: clientsURL, m: &points[i].clients})
			}
			for _, run := range order(turns, round+i) {
				mem0, err := run.p.memNow()
				if err != nil {
					return err
				}
				cpu0, sim0 := run.p.cpuTime(), b.sim.cpuTime()
				r, err := b.wrk.run(wrkJob{url: run.url, conns: c, duration: b.opts.duration})
				if err != nil {
					return err
				}
				proxyCPU, simCPU := run.p.cpuTime()-cpu0, b.sim.cpuTime()-sim0
				run.m.cpu += proxyCPU
				run.m.simCPU += simCPU
				run.m.loadCPU += r.cpu
				if r.Requests > 0 {
					run.m.roundCPU = append(run.m.roundCPU, float64(proxyCPU+simCPU+r.cpu)/float64(r.Requests))
				}
				mem1, err := run.p.memNow()
				if err != nil {
					return err
				}
				run.m.mallocs += mem1.Mallocs - mem0.Mallocs
				run.m.allocBytes += mem1.TotalAlloc - mem0.TotalAlloc
				run.m.add(r)
			}
			p := &points[i]
			logf("1. round %d/%d, %3d connections: baseline %.0f (again %.0f, no-op middleware %.0f, in the gateway's process %.0f), trusted %.0f, clients %.0f req/s so far",
				round+1, b.opts.rounds, c, p.base.rate(), p.again.rate(), p.noop.rate(), p.plain.rate(), p.gateway.rate(), p.clients.rate())
		}
	}
	for _, p := range points {
		logf("1. %3d connections, per-round ratios to the baseline: trusted %s; clients %s; A/A %s",
			p.conns, fmtRatios(&p.base, &p.gateway), fmtRatios(&p.base, &p.clients), fmtRatios(&p.base, &p.again))
		logf("1. %3d connections, proxy CPU per call: baseline %s (again %s, no-op middleware %s), trusted %s, clients %s", p.conns,
			fmtUS(p.base.cpuPerCall()), fmtUS(p.again.cpuPerCall()), fmtUS(p.noop.cpuPerCall()), fmtUS(p.gateway.cpuPerCall()), fmtUS(p.clients.cpuPerCall()))
		logf("1. %3d connections, ratios at equal CPU (CPU per call of all processes): trusted %s; clients %s; A/A %s",
			p.conns, fmtCPURatio(&p.base, &p.gateway), fmtCPURatio(&p.base, &p.clients), fmtCPURatio(&p.base, &p.again))
		logf("1. %3d connections, per-round ratios of the no-op middleware to the baseline: %s; at equal CPU %s",
			p.conns, fmtRatios(&p.base, &p.noop), fmtCPURatio(&p.base, &p.noop))
		logf("1. %3d connections, per-round ratios to reverse_proxy alone in the gateway's process: trusted %s; clients %s; that site to the baseline %s",
			p.conns, fmtRatios(&p.plain, &p.gateway), fmtRatios(&p.plain, &p.clients), fmtRatios(&p.base, &p.plain))
	}
	after, err := b.simc.counters()
	if err != nil {
		return err
	}
	const p = "/cgi-bin/user/info" // baseline, trusted and clients-mode calls all reach it
	calls := after.Paths[p].Calls - before.Paths[p].Calls
	ok := after.Paths[p].OK - before.Paths[p].OK
	rejected := after.AppTokenRejections - before.AppTokenRejections
	b.res.jsonCheck = fmt.Sprintf("the simulator answered %d of %d user/info calls with success, refused %d tokens", ok, calls, rejected)
	if calls != ok || rejected != 0 {
		b.res.warnings = append(b.res.warnings, "small JSON calls: "+b.res.jsonCheck)
	}
	b.res.json = points
	if err := b.profileFrames(plainURL, gwURL, clientsURL); err != nil {
		// The measurements stand without it: say so on the page.
		b.res.frames = frameProfile{}
		b.res.warnings = append(b.res.warnings, "small JSON calls: no profile of where the CPU goes: "+err.Error())
		logf("1. profiling failed: %v", err)
	}
	return nil
}

// profileRounds and profileSeconds: the frame profiles of section 1 take
// each site profileRounds times for profileSeconds, alternating, so that
// the machine's drift spreads over all of them.
const (
	profileRounds  = 3
	profileSeconds = 8
)

// profileFrames takes CPU profiles of the gateway's process under 64
// connections to each of its sites, reverse_proxy alone, trusted and
// clients mode, alternating, and divides each site's samples among the
// handler's own work, its writes to the client, reverse_proxy, the
// collector and the rest (frames.go): where the
// gateway's extra CPU per call goes, and what its own frames cost. The
// profiles are saved as json.<site>.<round>.cpu.pprof in the -profile
// folder, or in the run's temporary one.
func (b *bench) profileFrames(plainURL, gwURL, clientsURL string) error {
	dir := b.opts.profile
	if dir == "" {
		dir = b.tmp
	}
	type site struct {
		name, url string
		f         *frameShares
	}
	sites := []site{{"plain", plainURL, &b.res.frames.plain}, {"trusted", gwURL, &b.res.frames.trusted}}
	if clientsURL != "" {
		sites = append(sites, site{"clients", clientsURL, &b.res.frames.clients})
	}
	rounds := profileRounds
	if b.opts.quick {
		rounds = 1
	}
	logf("1. profiling the gateway's process: %d × %d s per site", rounds, profileSeconds)
	for round := range rounds {
		for k := range sites {
			s := sites[(k+round)%len(sites)]
			path := filepath.Join(dir, fmt.Sprintf("json.%s.%d.cpu.pprof", s.name, round+1))
			var wg sync.WaitGroup
			var perr error
			cpu0 := b.gw.cpuTime()
			wg.Add(1)
			go func() {
				defer wg.Done()
				perr = b.gw.cpuProfile(profileSeconds*time.Second, path)
			}()
			r, err := b.wrk.run(wrkJob{url: s.url, conns: targetConns, duration: (profileSeconds + 1) * time.Second})
			wg.Wait()
			cpu := b.gw.cpuTime() - cpu0
			if err != nil {
				return err
			}
			if perr != nil {
				return perr
			}
			// The profile covers profileSeconds of the run's
			// profileSeconds+1: its CPU and calls are the run's, the
			// samples only divide them.
			if err := s.f.add(path, cpu, r.Requests); err != nil {
				return err
			}
		}
	}
	f := &b.res.frames
	f.conns = targetConns
	for _, s := range sites {
		logf("1. profile of %s: %s per call: handler %s (and writing to the client %s), reverse_proxy %s, collector %s, rest %s (%d samples)", s.name,
			fmtUS(s.f.cpuPerCall()), fmtUS(s.f.perCall(ownerHandler)), fmtUS(s.f.perCall(ownerWrite)), fmtUS(s.f.perCall(ownerProxy)),
			fmtUS(s.f.perCall(ownerGC)), fmtUS(s.f.perCall(ownerRest)), s.f.nSamples())
	}
	if b.opts.profile != "" {
		logf("saved the profiles in %s", dir)
	}
	return nil
}

// order returns the turns of a round, so that over the rounds each turn
// runs at every place and right after each of the others equally often,
// and none always runs on another's leftovers or after its own process sat
// idle: the rounds are the rows of a Williams design (a Latin square whose
// rows are 0, 1, n-1, 2, n-2, … shifted by the row; for an odd number of
// turns, those rows and then the same reversed), which balances every
// ordered pair of neighbours over n rounds, or 2n for an odd n.
func order(turns []turn, round int) []turn {
	n := len(turns)
	seq := make([]int, n) // 0, 1, n-1, 2, n-2, …
	for j, lo, hi := 1, 1, n-1; j < n; j++ {
		if j%2 == 1 {
			seq[j], lo = lo, lo+1
		} else {
			seq[j], hi = hi, hi-1
		}
	}
	r := round % (2 * max(n, 1))
	out := make([]turn, n)
	for j := range n {
		k := j
		if n%2 == 1 && r >= n {
			k = n - 1 - j
		}
		out[j] = turns[(r+seq[k])%n]
	}
	return out
}

func gcd(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// fmtCPURatio formats cpuRatio: the ratio and the per-round range.
func fmtCPURatio(base, m *measure) string {
	if m.requests == 0 {
		return "-"
	}
	r, lo, hi := cpuRatio(base, m)
	return fmt.Sprintf("%.3f (rounds %.3f–%.3f)", r, lo, hi)
}

// fmtRatios lists the per-round throughput ratios m/base and their spread.
func fmtRatios(base, m *measure) string {
	n := min(len(base.rates), len(m.rates))
	if n == 0 {
		return "-"
	}
	parts := make([]string, n)
	lo, hi := math.Inf(1), math.Inf(-1)
	for i := range n {
		r := m.rates[i] / base.rates[i]
		lo, hi = min(lo, r), max(hi, r)
		parts[i] = fmt.Sprintf("%.3f", r)
	}
	return fmt.Sprintf("%s (spread %.3f)", strings.Join(parts, " "), hi-lo)
}
