package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// downloadResult is section 2.
type downloadResult struct {
	conns                 int
	size, smallSize       int64
	base, gateway, small  measure
	basePeak, gatewayPeak int64 // peak RSS during the 64 MiB runs
	smallIdle, smallPeak  int64 // the gateway's RSS before and at peak during the 4 MiB runs
	gatewayIdle, baseIdle int64 // RSS before, after a GC
}

const (
	downloadConns = 4
	largeSize     = 64 << 20 // the simulator's large_media_size
	smallSize     = 4 << 20
)

// runDownload measures GET /cgi-bin/media/get of the simulator's 64 MiB
// generated media through both, alternating, and the peak RSS of each;
// and in every round the gateway's peak RSS downloading a 4 MiB file of the
// account's own, to show whether its memory follows the file's size. Each
// keeps the round its RSS grew the most in, so that the two sizes are
// compared alike.
func (b *bench) runDownload() error {
	gwURL := b.gw.url("/cgi-bin/media/get?media_id=large")
	baseURL := b.base.url("/cgi-bin/media/get?media_id=large&access_token=" + b.baseToken)
	for _, u := range []string{baseURL, gwURL} {
		if n, err := downloadSize(u); err != nil || n != largeSize {
			return fmt.Errorf("download through %s: %d bytes, %v", u[:strings.Index(u, "/cgi-bin")], n, err)
		}
	}
	body, ctype, err := multipartBody("small.jpg", smallSize)
	if err != nil {
		return err
	}
	id, err := upload(b.gw.url("/cgi-bin/media/upload?type=image"), body, ctype)
	if err != nil {
		return err
	}
	smallURL := b.gw.url("/cgi-bin/media/get?media_id=" + id)
	if n, err := downloadSize(smallURL); err != nil || n != smallSize {
		return fmt.Errorf("4 MiB download: %d bytes, %v", n, err)
	}
	d := &downloadResult{conns: downloadConns, size: largeSize, smallSize: smallSize}
	for round := 0; round < b.opts.rounds; round++ {
		runs := inTurn(round, turn{b.base, baseURL, &d.base, &d.baseIdle, &d.basePeak},
			turn{b.gw, gwURL, &d.gateway, &d.gatewayIdle, &d.gatewayPeak})
		var roundRate [2]float64
		for k, r := range runs {
			before := *r.m
			idle, peak, err := b.wrkWithRSS(r.p, wrkJob{url: r.url, conns: d.conns, duration: b.opts.duration}, r.m)
			if err != nil {
				return err
			}
			roundRate[k] = float64(r.m.bytes-before.bytes) / (float64(r.m.durationUS-before.durationUS) / 1e6)
			keepLargest(round, idle, peak, r.idle, r.peak)
		}
		idle, peak, err := b.wrkWithRSS(b.gw, wrkJob{url: smallURL, conns: d.conns, duration: b.opts.duration}, &d.small)
		if err != nil {
			return err
		}
		keepLargest(round, idle, peak, &d.smallIdle, &d.smallPeak)
		logf("2. 64 MiB downloads, round %d/%d: %s %.0f MiB/s, then %s %.0f MiB/s",
			round+1, b.opts.rounds, runs[0].p.name, roundRate[0]/(1<<20), runs[1].p.name, roundRate[1]/(1<<20))
	}
	logf("2. gateway RSS idle → peak: %s → %s with 64 MiB files, %s → %s with 4 MiB files",
		mib(d.gatewayIdle), mib(d.gatewayPeak), mib(d.smallIdle), mib(d.smallPeak))
	b.res.download = d
	if b.opts.profile != "" {
		return b.profileLoad("download", wrkJob{url: baseURL, conns: d.conns}, wrkJob{url: gwURL, conns: d.conns})
	}
	return nil
}

// keepLargest keeps in *idle and *peak the run whose RSS grew the most.
func keepLargest(round int, idle, peak int64, keptIdle, keptPeak *int64) {
	if round == 0 || peak-idle > *keptPeak-*keptIdle {
		*keptIdle, *keptPeak = idle, peak
	}
}

// wrkWithRSS runs job against p and adds it to m, with p's CPU time. It
// returns p's RSS before the run (after a GC) and its peak RSS during it.
func (b *bench) wrkWithRSS(p *proc, job wrkJob, m *measure) (idle, peak int64, err error) {
	if _, idle, err = p.settledMemory(); err != nil {
		return 0, 0, err
	}
	if err := p.resetPeak(); err != nil {
		return 0, 0, err
	}
	cpu0, sim0 := p.cpuTime(), b.sim.cpuTime()
	res, err := b.wrk.run(job)
	if err != nil {
		return 0, 0, err
	}
	m.cpu += p.cpuTime() - cpu0
	m.simCPU += b.sim.cpuTime() - sim0
	m.add(res)
	return idle, p.peakRSS(), nil
}

// downloadSize downloads url and returns how many bytes came.
func downloadSize(url string) (int64, error) {
	resp, err := control.Get(url)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("%s", resp.Status)
	}
	return io.Copy(io.Discard, resp.Body)
}

// uploadPoint is section 3 at one concurrency.
type uploadPoint struct {
	conns                 int
	base, gateway         measure
	baseIdle, gatewayIdle int64
	basePeak, gatewayPeak int64
}

// perUpload is the peak RSS above idle per concurrent upload.
func (u uploadPoint) perUpload(peak, idle int64) int64 { return (peak - idle) / int64(u.conns) }

// uploadSize is the file of section 3: 10 MB, under the 10 MiB image limit.
const uploadSize = 10_000_000

// runUpload posts 10 MB multipart uploads through the baseline and the
// gateway at a few concurrencies and records each one's peak RSS above
// its idle RSS. The gateway holds a body of up to max_replay_body in
// memory so that it can replay the call after a token refresh; the
// baseline streams it.
func (b *bench) runUpload() error {
	body, ctype, err := multipartBody("photo.jpg", uploadSize)
	if err != nil {
		return err
	}
	path := filepath.Join(b.tmp, "upload.bin")
	if err := os.WriteFile(path, body, 0o600); err != nil {
		return err
	}
	_, boundary, _ := strings.Cut(ctype, "boundary=")
	gwURL := b.gw.url("/cgi-bin/media/upload?type=image")
	baseURL := b.base.url("/cgi-bin/media/upload?type=image&access_token=" + b.baseToken)
	for _, u := range []string{baseURL, gwURL} {
		if _, err := upload(u, body, ctype); err != nil {
			return err
		}
	}
	before, err := b.simc.counters()
	if err != nil {
		return err
	}
	concs := []int{1, 4, 16}
	if b.opts.quick {
		concs = []int{1, 4}
	}
	for i, c := range concs {
		u := uploadPoint{conns: c}
		runs := inTurn(i, turn{b.base, baseURL, &u.base, &u.baseIdle, &u.basePeak},
			turn{b.gw, gwURL, &u.gateway, &u.gatewayIdle, &u.gatewayPeak})
		for _, r := range runs {
			*r.idle, *r.peak, err = b.wrkWithRSS(r.p, wrkJob{url: r.url, conns: c, duration: b.opts.duration,
				uploadBody: path, uploadBoundary: boundary}, r.m)
			if err != nil {
				return err
			}
		}
		logf("3. 10 MB uploads, %2d at once: peak RSS per upload: baseline %s, gateway %s", c,
			mib(u.perUpload(u.basePeak, u.baseIdle)), mib(u.perUpload(u.gatewayPeak, u.gatewayIdle)))
		b.res.upload = append(b.res.upload, u)
	}
	after, err := b.simc.counters()
	if err != nil {
		return err
	}
	const p = "/cgi-bin/media/upload"
	calls, ok := after.Paths[p].Calls-before.Paths[p].Calls, after.Paths[p].OK-before.Paths[p].OK
	// wrk stops mid-upload at the end of each run: those last uploads
	// reach the simulator cut short. Any more failures are a problem.
	cutShort := int64(0)
	for _, c := range concs {
		cutShort += 2 * int64(c)
	}
	b.res.uploadCheck = fmt.Sprintf("the simulator accepted %d of %d uploads (wrk cuts off the uploads in flight when a run ends)", ok, calls)
	if calls-ok > cutShort {
		b.res.warnings = append(b.res.warnings, "uploads: "+b.res.uploadCheck)
	}
	return nil
}

// mib formats bytes as MiB.
func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

// profileLoad saves CPU profiles of the baseline and the gateway, each
// taken over 10 s of its job (the admin API's /debug/pprof/profile), as
// <name>.baseline.cpu.pprof and <name>.gateway.cpu.pprof in the -profile
// folder, for `go tool pprof`.
func (b *bench) profileLoad(name string, baseJob, gwJob wrkJob) error {
	for _, t := range []struct {
		p    *proc
		job  wrkJob
		name string
	}{{b.base, baseJob, "baseline"}, {b.gw, gwJob, "gateway"}} {
		path := filepath.Join(b.opts.profile, name+"."+t.name+".cpu.pprof")
		var wg sync.WaitGroup
		var perr error
		wg.Add(1)
		go func() {
			defer wg.Done()
			perr = t.p.cpuProfile(10*time.Second, path)
		}()
		t.job.duration = 11 * time.Second
		_, err := b.wrk.run(t.job)
		wg.Wait()
		if err != nil {
			return err
		}
		if perr != nil {
			return perr
		}
		logf("saved %s", path)
	}
	return nil
}
