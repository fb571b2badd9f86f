package token

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"
)

// platformFetcher answers like the real token endpoints do, on the
// Manager's clock: gettoken hands out the same token, with its remaining
// lifetime, until it expires; /cgi-bin/token issues a new token on every
// call; stable_token hands out the same token until the last 5 minutes of
// its life, then the next one.
type platformFetcher struct {
	clock    Clock
	mu       sync.Mutex
	calls    int
	minted   int
	forced   int
	value    string
	expires  time.Time
	lifetime time.Duration
}

func (f *platformFetcher) Fetch(_ context.Context, a *Account, force bool) (Fetched, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if force {
		f.forced++
	}
	now := f.clock.Now()
	life := f.lifetime
	if life == 0 {
		life = 2 * time.Hour
	}
	fresh := f.value == "" || !now.Before(f.expires) || force
	switch a.Endpoint {
	case ClientCredential:
		fresh = true
	case StableToken:
		fresh = fresh || f.expires.Sub(now) <= 5*time.Minute
	}
	if fresh {
		f.minted++
		f.value = fmt.Sprintf("tok-%d", f.minted)
		f.expires = now.Add(life)
	}
	return Fetched{Value: f.value, ExpiresIn: f.expires.Sub(now).Truncate(time.Second)}, nil
}

func (f *platformFetcher) forcesUsed() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.forced > 0
}

func (f *platformFetcher) counts() (calls, minted int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls, f.minted
}

func newPlatformManager(t *testing.T, ep Endpoint) (*Manager, *Handle, *ManualClock, *platformFetcher) {
	t.Helper()
	clock := NewFrozenClock(t0)
	f := &platformFetcher{clock: clock}
	m := NewManager(Options{Clock: clock, Fetcher: f, Rand: func() float64 { return 0.5 }})
	a := Account{Name: "acct", Kind: Official, AppID: "wx1", Secret: "s", Endpoint: ep}
	if ep == GetToken {
		a.Kind = WeCom
	}
	h, err := m.Register(a)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Release)
	return m, h, clock, f
}

// TestDayOfSteadyTrafficNeedsAtMostOneFetchOverTheMinimum runs a day with
// a call every 10 s and the background refresh running every 10 s: every
// endpoint must stay within one fetch of the physical minimum, 24 h / 2 h
// = 12, and never serve a token past its expiry.
func TestDayOfSteadyTrafficNeedsAtMostOneFetchOverTheMinimum(t *testing.T) {
	for _, ep := range []Endpoint{StableToken, ClientCredential, GetToken} {
		t.Run(string(ep), func(t *testing.T) {
			m, h, clock, f := newPlatformManager(t, ep)
			runDay(t, clock, 10*time.Second, []*Manager{m}, []*Handle{h})
			const minimum = 12
			if calls, _ := f.counts(); calls > minimum+1 {
				t.Fatalf("%d token-endpoint calls in a day; the physical minimum is %d", calls, minimum)
			}
		})
	}
}

// TestWeComTokenIsUsedUntilItExpires: gettoken hands back the same token
// until it expires, so asking for it again in its last seconds only spends
// quota (and, under load, asks once per call until the budget trips).
func TestWeComTokenIsUsedUntilItExpires(t *testing.T) {
	m, h, clock, f := newPlatformManager(t, GetToken)
	first := mustToken(t, h)
	clock.Advance(2*time.Hour - 15*time.Second)
	for range 100 {
		if tok := mustToken(t, h); tok.Value != first.Value {
			t.Fatalf("token changed to %s before it expired", tok.Value)
		}
		m.RefreshDue(context.Background())
	}
	if calls, _ := f.counts(); calls != 1 {
		t.Fatalf("%d gettoken calls for one token; want 1", calls)
	}
	clock.Advance(15 * time.Second)
	if tok := mustToken(t, h); tok.Value == first.Value {
		t.Fatal("expired token served")
	}
	if calls, minted := f.counts(); calls != 2 || minted != 2 {
		t.Fatalf("%d calls, %d tokens after expiry; want 2 and 2", calls, minted)
	}
}

// TestReconfirmedTokenKeepsItsFetchTime: a token an endpoint hands back
// unchanged keeps its fetch time; once the cooldown since the last
// token-endpoint call has passed, a rejection of it replaces it.
func TestReconfirmedTokenKeepsItsFetchTime(t *testing.T) {
	m, h, clock, f := newPlatformManager(t, StableToken)
	first := mustToken(t, h)
	// A background refresh before the rotation window hands back the same
	// token.
	clock.Advance(2*time.Hour - 6*time.Minute)
	h.e.mu.Lock()
	h.e.nextProactive = clock.Now()
	h.e.mu.Unlock()
	m.RefreshDue(context.Background())
	again := mustToken(t, h)
	if again.Value != first.Value || !again.Fetched.Equal(first.Fetched) {
		t.Fatalf("re-confirmed token: %s fetched %v; want %s fetched %v", again.Value, again.Fetched, first.Value, first.Fetched)
	}
	// Past the cooldown, counted from that last token-endpoint call.
	clock.Advance(DefaultRefreshCooldown)
	fresh, err := h.Reject(context.Background(), again, 40001)
	if err != nil || fresh == nil || fresh.Value == first.Value {
		t.Fatalf("Reject of a 2-hour-old token: %v, %v; want a new token", fresh, err)
	}
	if _, minted := f.counts(); minted != 2 {
		t.Fatalf("%d tokens minted; want 2", minted)
	}
}
