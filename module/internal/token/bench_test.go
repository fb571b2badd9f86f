package token

import (
	"context"
	"testing"
)

// BenchmarkTokenLookup measures Handle.Token in steady state, the lookup
// every proxied call makes: the account holds a valid token, read through
// an atomic pointer with the production clock (SystemClock). "serial" is
// one goroutine, "parallel" every core at once (b.RunParallel), which
// shows whether callers contend. Both must be allocation-free.
func BenchmarkTokenLookup(b *testing.B) {
	m := NewManager(Options{Fetcher: &fakeFetcher{}})
	h, err := m.Register(Account{Name: "mp", Kind: Official, AppID: "wx1", Secret: "s3cret"})
	if err != nil {
		b.Fatal(err)
	}
	defer h.Release()
	ctx := context.Background()
	if _, err := h.Token(ctx); err != nil {
		b.Fatal(err)
	}
	b.Run("serial", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if tok, err := h.Token(ctx); err != nil || tok == nil {
				b.Fatal("no token", err)
			}
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if tok, err := h.Token(ctx); err != nil || tok == nil {
					b.Error("no token", err)
					return
				}
			}
		})
	})
}
