package token

import (
	"context"
	"runtime"
	"testing"
	"time"
)

// BenchmarkAuthorizers measures what a platform with 10,000 authorizers
// costs the gateway when only some are in use, side by side: 100 in use and,
// as the baseline, none. Each run is one simulated day against the
// simulator, every in-use authorizer called every 10 minutes. It reports the
// api_authorizer_token calls of the day per authorizer in use (at most 13),
// those of authorizers not in use (none), and the heap the in-use ones hold.
func BenchmarkAuthorizers(b *testing.B) {
	const authorized = 10000
	for _, inUse := range []int{0, 100} {
		b.Run(map[int]string{0: "none-in-use", 100: "100-in-use"}[inUse], func(b *testing.B) {
			for range b.N {
				b.StopTimer()
				p := newOpenPlatform(b, authorized)
				ctx := context.Background()
				m, comp := p.gateway()
				runtime.GC()
				var before, after runtime.MemStats
				runtime.ReadMemStats(&before)
				b.StartTimer()
				handles := make([]*Handle, inUse)
				for i := range handles {
					h, err := comp.Authorizer(authorizedAppID(i))
					if err != nil {
						b.Fatal(err)
					}
					handles[i] = h
				}
				for range 24 * 6 {
					for _, h := range handles {
						if _, err := h.Token(ctx); err != nil {
							b.Fatal(err)
						}
					}
					m.RefreshDue(ctx)
					p.advance(10 * time.Minute)
				}
				b.StopTimer()
				runtime.GC()
				runtime.ReadMemStats(&after)
				var inUseCalls, idleCalls int64
				for appid, c := range p.sim.Counters().Components[openComp].Authorizers {
					if appid < authorizedAppID(inUse) {
						inUseCalls += c.AuthorizerToken
					} else {
						idleCalls += c.AuthorizerToken
					}
				}
				if inUse > 0 {
					b.ReportMetric(float64(inUseCalls)/float64(inUse), "fetches/day/in-use")
					b.ReportMetric(float64(int64(after.HeapAlloc)-int64(before.HeapAlloc))/float64(inUse), "heap-B/in-use")
				} else {
					b.ReportMetric(float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)), "heap-B")
				}
				b.ReportMetric(float64(idleCalls), "fetches/day/idle-total")
				runtime.KeepAlive(handles)
				for _, h := range handles {
					h.Release()
				}
			}
		})
	}
}
