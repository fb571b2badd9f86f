package main

import (
	"bytes"
	"net"
	"net/http"
	"slices"
	"sync/atomic"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"
)

// Bursts (the invalidation storm, and the requests that give 10,000
// accounts their tokens) use vegeta's attack library: it sends exactly the
// targets it is given, at once over as many workers, and returns every
// answer's status, body and latency, which the storm needs to count failed
// requests by their errcode. wrk can do neither: it runs for a duration,
// not a number of requests, and reports only statuses.

// burster fires bursts of requests over one HTTP client, so that the
// keep-alive connections of one burst carry the next.
type burster struct {
	client *http.Client
	conns  int
}

// newBurster returns a burster that keeps up to conns connections open.
func newBurster(conns int) *burster {
	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConnsPerHost: conns,
		MaxIdleConns:        conns,
		IdleConnTimeout:     5 * time.Minute,
	}
	return &burster{client: &http.Client{Transport: tr, Timeout: 60 * time.Second}, conns: conns}
}

func (b *burster) close() { b.client.CloseIdleConnections() }

// burstResult summarises one burst.
type burstResult struct {
	sent, failed int
	latencies    []time.Duration // sorted
	elapsed      time.Duration
	firstFailure string
}

func (r burstResult) percentile(p float64) time.Duration {
	if len(r.latencies) == 0 {
		return 0
	}
	i := int(float64(len(r.latencies))*p/100+0.999999) - 1
	return r.latencies[max(0, min(i, len(r.latencies)-1))]
}

// fire sends every target at once, with as many workers as targets (at
// most b.conns), and judges each answer with ok.
func (b *burster) fire(targets []vegeta.Target, ok func(code int, body []byte) bool) burstResult {
	workers := uint64(min(len(targets), b.conns))
	atk := vegeta.NewAttacker(vegeta.Client(b.client), vegeta.Workers(workers), vegeta.MaxWorkers(workers))
	var next atomic.Int64
	targeter := func(t *vegeta.Target) error {
		i := next.Add(1) - 1
		if i >= int64(len(targets)) {
			return vegeta.ErrNoTargets
		}
		*t = targets[i]
		return nil
	}
	var res burstResult
	start := time.Now()
	// A zero-rate pacer means: as fast as the workers go.
	for r := range atk.Attack(targeter, vegeta.ConstantPacer{}, 0, "wxbench") {
		if r.Error == vegeta.ErrNoTargets.Error() {
			continue
		}
		res.sent++
		res.latencies = append(res.latencies, r.Latency)
		if r.Error != "" || !ok(int(r.Code), r.Body) {
			res.failed++
			if res.firstFailure == "" {
				res.firstFailure = r.Error
				if r.Error == "" {
					res.firstFailure = string(bytes.TrimSpace(r.Body))
				}
			}
		}
	}
	res.elapsed = time.Since(start)
	slices.Sort(res.latencies)
	return res
}

// okJSON accepts an HTTP 200 JSON answer with errcode 0 (or none) that
// holds want.
func okJSON(want string) func(int, []byte) bool {
	return func(code int, body []byte) bool {
		if code != http.StatusOK || !bytes.Contains(body, []byte(want)) {
			return false
		}
		errcode, isJSON := errcodeOf(body)
		return isJSON && errcode == 0
	}
}

// repeatTarget returns n copies of a GET of url with header.
func repeatTarget(n int, url string, header http.Header) []vegeta.Target {
	t := vegeta.Target{Method: http.MethodGet, URL: url, Header: header}
	out := make([]vegeta.Target, n)
	for i := range out {
		out[i] = t
	}
	return out
}
