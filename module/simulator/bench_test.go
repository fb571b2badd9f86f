package simulator

import (
	"net/http"
	"testing"
)

// discardWriter is a ResponseWriter that keeps nothing, so the benchmark
// measures the simulator rather than a recorder.
type discardWriter struct {
	header http.Header
	status int
}

func (w *discardWriter) Header() http.Header         { return w.header }
func (w *discardWriter) WriteHeader(status int)      { w.status = status }
func (w *discardWriter) Write(p []byte) (int, error) { return len(p), nil }

// BenchmarkBusinessCall measures a token-checked GET /cgi-bin/menu/get.
func BenchmarkBusinessCall(b *testing.B) {
	cfg := testConfig()
	sim, err := New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	rec := serve(sim, "GET", "/cgi-bin/token?grant_type=client_credential&appid="+mpApp+"&secret="+mpSecret, "", nil)
	tok := between(rec.Body.String(), `"access_token":"`, `"`)
	if rec := serve(sim, "POST", "/cgi-bin/menu/create?access_token="+tok, testMenu, nil); !contains(rec.Body.String(), `"errcode":0`) {
		b.Fatalf("menu/create: %s", rec.Body)
	}
	target := "http://api.weixin.qq.com/cgi-bin/menu/get?access_token=" + tok
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		req, _ := http.NewRequest(http.MethodGet, target, nil)
		w := &discardWriter{header: http.Header{}}
		for pb.Next() {
			sim.ServeHTTP(w, req)
			if w.status != http.StatusOK {
				b.Errorf("status %d", w.status) // not Fatal: this is not the benchmark's goroutine
				return
			}
		}
	})
	b.StopTimer()
	if c := sim.Counters().Paths["/cgi-bin/menu/get"]; c.OK != int64(b.N) {
		b.Fatalf("%d OK answers for %d calls", c.OK, b.N)
	}
}
