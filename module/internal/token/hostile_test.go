package token

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

var allEndpoints = []Endpoint{StableToken, ClientCredential, GetToken}

// TestRejectionStormSpendsAtMostTwoCalls: 10,000 rejections of a token
// that works (a client sends it where it does not belong), a minute after
// it was fetched, cost at most two token-endpoint calls per account: the
// first fetch and one more, which for gettoken and stable_token hands the
// token back unchanged and makes it final (no replay). stable_token may
// spend a force_refresh on top.
func TestRejectionStormSpendsAtMostTwoCalls(t *testing.T) {
	for _, ep := range allEndpoints {
		t.Run(string(ep), func(t *testing.T) {
			_, h, clock, f := newPlatformManager(t, ep)
			tok := mustToken(t, h)
			clock.Advance(time.Minute) // past the refresh cooldown
			var replays atomic.Int64
			var wg sync.WaitGroup
			codes := []int{40014, 40001, 42001}
			for g := range 16 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := range 10000 / 16 {
						got, err := h.Reject(context.Background(), tok, codes[(g+i)%3])
						if err != nil || (got != nil && got.Value == tok.Value) {
							replays.Add(1)
						}
					}
				}()
			}
			wg.Wait()
			// stable_token may also spend one force_refresh, for a 40001 or
			// 42001 (never a 40014) of a token that came back unchanged.
			limit := 2
			if ep == StableToken {
				limit = 3
			}
			if calls, _ := f.counts(); calls > limit {
				t.Errorf("%d token-endpoint calls; want at most %d", calls, limit)
			}
			if n := replays.Load(); n != 0 {
				t.Errorf("%d rejections answered with the rejected token to replay (or an error); want 0", n)
			}
		})
	}
}

// TestRejectionsOverADayCostAFewCallsAnHour: a client that keeps getting
// the account's token rejected, one call every 3.6 s for ten hours, makes
// the gateway spend only a few token-endpoint calls an hour: at most one per
// MaxRefreshCooldown once the cooldown has doubled up to it.
func TestRejectionsOverADayCostAFewCallsAnHour(t *testing.T) {
	for _, ep := range allEndpoints {
		t.Run(string(ep), func(t *testing.T) {
			_, h, clock, f := newPlatformManager(t, ep)
			ctx := context.Background()
			last := 0
			for hour := range 10 {
				for range 1000 {
					tok := mustToken(t, h)
					_, _ = h.Reject(ctx, tok, 40014)
					clock.Advance(3600 * time.Millisecond)
				}
				calls, _ := f.counts()
				limit := 6 // at most one per MaxRefreshCooldown
				if hour == 0 {
					limit = 12 // while the cooldown doubles up to it
				}
				if calls-last > limit {
					t.Errorf("hour %d: %d token-endpoint calls; want at most %d", hour, calls-last, limit)
				}
				last = calls
			}
		})
	}
}

// TestFreshTokenInvalidatedElsewhereIsReplaced: a token invalidated by
// another system 2 s after the gateway fetched it is checked with one
// normal call, which brings the new token: the caller replays with it.
func TestFreshTokenInvalidatedElsewhereIsReplaced(t *testing.T) {
	for _, ep := range []Endpoint{StableToken, GetToken} {
		t.Run(string(ep), func(t *testing.T) {
			_, h, clock, f := newPlatformManager(t, ep)
			tok := mustToken(t, h)
			clock.Advance(2 * time.Second)
			f.mu.Lock()
			f.value = "" // the platform issued a new token to someone else
			f.mu.Unlock()
			got, err := h.Reject(context.Background(), tok, 40001)
			if err != nil || got == nil || got.Value == tok.Value {
				t.Fatalf("Reject: %v, %v; want the new token", got, err)
			}
			if calls, _ := f.counts(); calls != 2 {
				t.Errorf("%d token-endpoint calls; want 2 (the fetch and one check)", calls)
			}
			if f.forcesUsed() {
				t.Error("a force_refresh was spent on a fresh token")
			}
		})
	}
}

// TestReloadUnderLoad: configs come and go (Register, Activate, Release)
// while 16 callers keep using the handles of the config they started
// with. Nobody fails, and the token is fetched once.
func TestReloadUnderLoad(t *testing.T) {
	f := &fakeFetcher{}
	m, h, _ := newTestManager(t, f, Account{})
	h.Activate()
	mustToken(t, h)
	var current atomic.Pointer[Handle]
	current.Store(h)
	acct := *h.Account()
	stop := make(chan struct{})
	var failures, calls atomic.Int64
	var wg, started sync.WaitGroup
	for range 16 {
		wg.Add(1)
		started.Add(1)
		go func() {
			defer wg.Done()
			first := true
			for {
				select {
				case <-stop:
					return
				default:
				}
				held := current.Load() // may be released while in use
				for range 50 {
					if tok, err := held.Token(context.Background()); err != nil || tok == nil || held.Account().Name != acct.Name {
						failures.Add(1)
					}
					calls.Add(1)
				}
				if first {
					started.Done()
					first = false
				}
			}
		}()
	}
	started.Wait()
	for range 20 {
		next, err := m.Register(acct)
		if err != nil {
			t.Fatal(err)
		}
		next.Activate()
		old := current.Swap(next)
		old.Release()
	}
	close(stop)
	wg.Wait()
	current.Load().Release()
	if n := failures.Load(); n != 0 {
		t.Errorf("%d failed calls during reloads", n)
	}
	if f.count() != 1 {
		t.Errorf("%d token fetches during reloads; want 1", f.count())
	}
}

// hangingStore blocks every call until its context ends, as a Redis
// behind a network partition or a hung NFS mount does.
type hangingStore struct {
	lockHangs bool
	calls     atomic.Int64
}

func (s *hangingStore) wait(ctx context.Context) error {
	s.calls.Add(1)
	<-ctx.Done()
	return ctx.Err()
}

func (s *hangingStore) Lock(ctx context.Context, _ string) error {
	if s.lockHangs {
		return s.wait(ctx)
	}
	return nil
}
func (s *hangingStore) Unlock(ctx context.Context, _ string) error { return nil }
func (s *hangingStore) Store(ctx context.Context, _ string, _ []byte) error {
	return s.wait(ctx)
}
func (s *hangingStore) Load(ctx context.Context, _ string) ([]byte, error) {
	return nil, s.wait(ctx)
}

// TestHangingStoreCostsItsTimeoutOnly: a Store that hangs costs its own
// short deadline; the fetch then runs with a fresh one, succeeds, and is
// the only call counted against the budget.
func TestHangingStoreCostsItsTimeoutOnly(t *testing.T) {
	for _, lockHangs := range []bool{true, false} {
		name := "load hangs"
		if lockHangs {
			name = "lock hangs"
		}
		t.Run(name, func(t *testing.T) {
			f := &fakeFetcher{}
			store := &hangingStore{lockHangs: lockHangs}
			m := NewManager(Options{Clock: NewFrozenClock(t0), Fetcher: ctxFetcher{f}, Store: store,
				StoreTimeout: 10 * time.Millisecond, FetchTimeout: 50 * time.Millisecond})
			h, err := m.Register(Account{Name: "mp", Kind: Official, AppID: "wx1", Secret: "s3cret"})
			if err != nil {
				t.Fatal(err)
			}
			defer h.Release()
			tok, err := h.Token(context.Background())
			if err != nil || tok == nil {
				t.Fatalf("Token with a hanging store: %v", err)
			}
			if f.count() != 1 {
				t.Errorf("%d token-endpoint calls; want 1", f.count())
			}
			if st := m.Statuses()[0]; st.CallsToday != 1 {
				t.Errorf("%d calls counted against the budget; want 1", st.CallsToday)
			}
			if store.calls.Load() == 0 {
				t.Error("the store was never asked")
			}
		})
	}
}

// ctxFetcher fails a call whose context has ended, as an HTTP call does.
type ctxFetcher struct{ f Fetcher }

func (c ctxFetcher) Fetch(ctx context.Context, a *Account, force bool) (Fetched, error) {
	if err := ctx.Err(); err != nil {
		return Fetched{}, err
	}
	return c.f.Fetch(ctx, a, force)
}
