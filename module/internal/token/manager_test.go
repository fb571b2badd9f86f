package token

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeFetcher issues tokens "tok-1", "tok-2", ... with a fixed lifetime, or
// the error fail returns. A test may hold fetches in flight with gate.
type fakeFetcher struct {
	mu       sync.Mutex
	calls    int
	forces   int
	lifetime time.Duration
	same     bool // answer the last token again (stable_token normal mode)
	fail     func() error
	gate     chan struct{}
}

func (f *fakeFetcher) Fetch(ctx context.Context, a *Account, force bool) (Fetched, error) {
	if f.gate != nil {
		select {
		case <-f.gate:
		case <-ctx.Done():
			return Fetched{}, ctx.Err()
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if force {
		f.forces++
	}
	if f.fail != nil {
		if err := f.fail(); err != nil {
			return Fetched{}, err
		}
	}
	life := f.lifetime
	if life == 0 {
		life = 2 * time.Hour
	}
	n := f.calls - f.sameCalls(force)
	return Fetched{Value: fmt.Sprintf("tok-%d", n), ExpiresIn: life}, nil
}

// sameCalls makes a normal-mode call of a "same" fetcher repeat the token.
func (f *fakeFetcher) sameCalls(force bool) int {
	if f.same && !force && f.calls > 1 {
		f.same = false // only the next call repeats
		return 1
	}
	return 0
}

func (f *fakeFetcher) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}

var t0 = time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)

func newTestManager(t *testing.T, f *fakeFetcher, a Account) (*Manager, *Handle, *ManualClock) {
	t.Helper()
	clock := NewFrozenClock(t0)
	m := NewManager(Options{Clock: clock, Fetcher: f, Rand: func() float64 { return 0.5 }})
	if a.Name == "" {
		a = Account{Name: "mp", Kind: Official, AppID: "wx1", Secret: "s3cret"}
	}
	h, err := m.Register(a)
	if err != nil {
		t.Fatal(err)
	}
	return m, h, clock
}

func mustToken(t *testing.T, h *Handle) *Token {
	t.Helper()
	tok, err := h.Token(context.Background())
	if err != nil {
		t.Fatalf("Token: %v", err)
	}
	return tok
}

// storm starts n goroutines, the i-th of which runs call(i) once. wait
// waits for them all and returns how many calls failed (returned false).
func storm(n int, call func(i int) bool) (wait func() int32) {
	var wg sync.WaitGroup
	var bad atomic.Int32
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if !call(i) {
				bad.Add(1)
			}
		}()
	}
	return func() int32 {
		wg.Wait()
		return bad.Load()
	}
}

// runDay serves a call every step on each handle for 24 h and runs the
// background refresh of each manager after it, failing t if a handle
// serves an expired token.
func runDay(t *testing.T, clock *ManualClock, step time.Duration, ms []*Manager, hs []*Handle) {
	t.Helper()
	for elapsed := time.Duration(0); elapsed < 24*time.Hour; elapsed += step {
		for i, h := range hs {
			tok := mustToken(t, h)
			if !clock.Now().Before(tok.Expires) {
				t.Fatalf("instance %d served an expired token at %v", i, elapsed)
			}
			ms[i].RefreshDue(context.Background())
		}
		clock.Advance(step)
	}
}

func TestTokenFetchedOnceAndCached(t *testing.T) {
	f := &fakeFetcher{gate: make(chan struct{})}
	_, h, _ := newTestManager(t, f, Account{})
	wait := storm(1000, func(int) bool {
		tok, err := h.Token(context.Background())
		return err == nil && tok.Value == "tok-1"
	})
	close(f.gate)
	if bad := wait(); bad != 0 || f.count() != 1 {
		t.Fatalf("%d callers failed, %d fetches; want 0 and 1", bad, f.count())
	}
	if tok := mustToken(t, h); tok.Value != "tok-1" || tok.Generation != 1 {
		t.Fatalf("cached token %q gen %d", tok.Value, tok.Generation)
	}
}

func TestTokenLookupDoesNotAllocate(t *testing.T) {
	_, h, _ := newTestManager(t, &fakeFetcher{}, Account{})
	mustToken(t, h)
	ctx := context.Background()
	if n := testing.AllocsPerRun(1000, func() { _, _ = h.Token(ctx) }); n != 0 {
		t.Fatalf("Token allocates %v times per call", n)
	}
}

func TestRejectIsCompareAndInvalidate(t *testing.T) {
	f := &fakeFetcher{gate: make(chan struct{})}
	_, h, clock := newTestManager(t, f, Account{Endpoint: ClientCredential, Name: "mp", Kind: Official, AppID: "wx1", Secret: "s"})
	go func() { f.gate <- struct{}{} }()
	old := mustToken(t, h)
	clock.Advance(time.Minute) // past the refresh cooldown

	wait := storm(1000, func(int) bool {
		tok, err := h.Reject(context.Background(), old, 40001)
		return err == nil && tok != nil && tok.Value == "tok-2"
	})
	close(f.gate)
	if bad := wait(); bad != 0 || f.count() != 2 {
		t.Fatalf("%d callers failed, %d fetches; want 0 and 2", bad, f.count())
	}
	// A late report of the old token: someone already refreshed.
	tok, err := h.Reject(context.Background(), old, 42001)
	if err != nil || tok.Value != "tok-2" || f.count() != 2 {
		t.Fatalf("late reject: %v, %v, %d fetches", tok, err, f.count())
	}
}

func TestFreshTokenRejectedIsNotRefreshed(t *testing.T) {
	f := &fakeFetcher{}
	_, h, clock := newTestManager(t, f, Account{Name: "mp", Kind: Official, AppID: "wx1", Secret: "s3cret", Endpoint: ClientCredential})
	tok := mustToken(t, h)
	clock.Advance(5 * time.Second)
	got, err := h.Reject(context.Background(), tok, 40014)
	if got != nil || err != nil || f.count() != 1 {
		t.Fatalf("reject of a fresh token: %v, %v, %d fetches; want nil, nil, 1", got, err, f.count())
	}
	if cur := mustToken(t, h); cur.Value != tok.Value {
		t.Fatalf("fresh token was dropped")
	}
}

// TestSetTimingsTakesEffect: a reload's refresh_cooldown reaches the
// running manager: with the cooldown off, the same fresh token's rejection
// is refreshed; set back to 30 s, the next one is not.
func TestSetTimingsTakesEffect(t *testing.T) {
	f := &fakeFetcher{}
	m, h, clock := newTestManager(t, f, Account{Name: "mp", Kind: Official, AppID: "wx1", Secret: "s3cret", Endpoint: ClientCredential})
	tok := mustToken(t, h)
	clock.Advance(5 * time.Second)
	m.SetTimings(-1, 7*time.Second)
	if m.timeout() != 7*time.Second {
		t.Fatalf("fetch timeout %v", m.timeout())
	}
	got, err := h.Reject(context.Background(), tok, 40014)
	if err != nil || got == nil || got.Value != "tok-2" || f.count() != 2 {
		t.Fatalf("reject of a fresh token, cooldown off: %v, %v, %d fetches; want tok-2 and 2", got, err, f.count())
	}
	m.SetTimings(0, 0)
	clock.Advance(5 * time.Second)
	if got, err := h.Reject(context.Background(), got, 40014); got != nil || err != nil || f.count() != 2 {
		t.Fatalf("reject of a fresh token, default cooldown: %v, %v, %d fetches; want nil, nil, 2", got, err, f.count())
	}
	if m.timeout() != DefaultFetchTimeout {
		t.Fatalf("fetch timeout %v, want the default", m.timeout())
	}
}

func TestExpiredTokenFetchedAgain(t *testing.T) {
	f := &fakeFetcher{}
	_, h, clock := newTestManager(t, f, Account{})
	mustToken(t, h)
	clock.Advance(2*time.Hour - DefaultExpirySkew)
	if tok := mustToken(t, h); tok.Value != "tok-2" || f.count() != 2 {
		t.Fatalf("after expiry: %s, %d fetches", tok.Value, f.count())
	}
}

func TestProactiveRefresh(t *testing.T) {
	f := &fakeFetcher{}
	m, h, clock := newTestManager(t, f, Account{Endpoint: ClientCredential, Name: "mp", Kind: Official, AppID: "wx1", Secret: "s"})
	ctx := context.Background()
	mustToken(t, h)
	clock.Advance(2*time.Hour - DefaultMargin - time.Second)
	if n := m.RefreshDue(ctx); n != 0 {
		t.Fatalf("refreshed %d tokens before the margin", n)
	}
	mustToken(t, h)
	clock.Advance(2 * time.Second)
	if n := m.RefreshDue(ctx); n != 1 || f.count() != 2 {
		t.Fatalf("at the margin: %d refreshes, %d fetches", n, f.count())
	}
	if tok := h.e.cur.Load(); tok.Value != "tok-2" {
		t.Fatalf("after proactive refresh: %s", tok.Value)
	}
	// Unused since its fetch: left to expire.
	clock.Advance(2 * time.Hour)
	if n := m.RefreshDue(ctx); n != 0 {
		t.Fatalf("idle token refreshed")
	}
}

func TestSteadyDayFetchesAtPhysicalMinimum(t *testing.T) {
	for _, ep := range []Endpoint{StableToken, ClientCredential} {
		t.Run(string(ep), func(t *testing.T) {
			f := &fakeFetcher{}
			m, h, clock := newTestManager(t, f, Account{Endpoint: ep, Name: "mp", Kind: Official, AppID: "wx1", Secret: "s"})
			a := h.Account()
			runDay(t, clock, 10*time.Second, []*Manager{m}, []*Handle{h})
			period := 2*time.Hour - a.Margin
			min := int(24*time.Hour/period) + 1
			if got := f.count(); got > min+1 || got < min-1 {
				t.Fatalf("%d fetches in a day, physical minimum %d", got, min)
			}
		})
	}
}

// failingFetcher returns a fakeFetcher whose stable_token answers errcode
// code, with errmsg, while code is not 0.
func failingFetcher(code *atomic.Int32, errmsg string) *fakeFetcher {
	return &fakeFetcher{fail: func() error {
		if c := code.Load(); c != 0 {
			return &FetchError{Endpoint: "api/cgi-bin/stable_token", Errcode: int(c), Errmsg: errmsg}
		}
		return nil
	}}
}

func TestTransientFailureKeepsServingValidToken(t *testing.T) {
	var failing atomic.Int32
	f := failingFetcher(&failing, "system error")
	m, h, clock := newTestManager(t, f, Account{})
	ctx := context.Background()
	mustToken(t, h)
	failing.Store(-1) // system error
	clock.Advance(2*time.Hour - DefaultStableMargin)
	m.RefreshDue(ctx)
	if tok := mustToken(t, h); tok.Value != "tok-1" {
		t.Fatalf("lost the valid token after a failed refresh")
	}
	// Backoff: no new attempt within a second; one after.
	m.RefreshDue(ctx)
	if f.count() != 2 {
		t.Fatalf("retried within the backoff: %d fetches", f.count())
	}
	clock.Advance(2 * time.Second)
	m.RefreshDue(ctx)
	if f.count() != 3 {
		t.Fatalf("no retry after the backoff: %d fetches", f.count())
	}
	// Token gone for real: an immediate error saying why.
	clock.Advance(DefaultStableMargin)
	_, err := h.Token(ctx)
	var ue *UnavailableError
	if !errors.As(err, &ue) || ue.Errcode != -1 || !strings.Contains(err.Error(), "system busy") {
		t.Fatalf("Token after expiry with the endpoint down: %v", err)
	}
	failing.Store(0)
	clock.Advance(10 * time.Minute)
	if tok := mustToken(t, h); tok.Value == "tok-1" {
		t.Fatalf("did not recover")
	}
}

func TestGuardTripsOnConfigurationErrorAndRecovers(t *testing.T) {
	var code atomic.Int32
	code.Store(40164)
	f := failingFetcher(&code, "invalid ip 1.2.3.4 rid: 1-2-3")
	m, h, clock := newTestManager(t, f, Account{})
	ctx := context.Background()
	for range 50 {
		_, err := h.Token(ctx)
		var ue *UnavailableError
		if !errors.As(err, &ue) || ue.Errcode != 40164 || !strings.Contains(err.Error(), "not whitelisted") {
			t.Fatalf("Token: %v", err)
		}
	}
	if f.count() != 1 {
		t.Fatalf("hammered the token endpoint: %d calls", f.count())
	}
	if s := m.Statuses()[0]; !s.Stopped || s.LastError == "" {
		t.Fatalf("status does not show the trip: %+v", s)
	}
	code.Store(0) // someone fixed the whitelist
	clock.Advance(DefaultProbeMin * 2)
	if tok := mustToken(t, h); tok.Value != "tok-2" {
		t.Fatalf("after recovery: %s", tok.Value)
	}
	if s := m.Statuses()[0]; s.Stopped {
		t.Fatalf("still stopped after recovery")
	}
}

func TestDailyBudget(t *testing.T) {
	f := &fakeFetcher{}
	_, h, clock := newTestManager(t, f, Account{Name: "mp", Kind: Official, AppID: "wx1", Secret: "s", DailyBudget: 3})
	ctx := context.Background()
	for i := range 3 {
		tok := mustToken(t, h)
		clock.Advance(time.Minute)
		if _, err := h.Reject(ctx, tok, 40001); err != nil && i < 2 {
			t.Fatalf("reject %d: %v", i, err)
		}
	}
	_, err := h.Token(ctx)
	if err == nil || !strings.Contains(err.Error(), "budget") || f.count() != 3 {
		t.Fatalf("past the budget: %v, %d calls", err, f.count())
	}
	clock.Advance(24 * time.Hour)
	if tok := mustToken(t, h); tok == nil || f.count() != 4 {
		t.Fatalf("next day: %d calls", f.count())
	}
}

func TestStableTokenForceRefreshOnlyWhenRejectedAndUnchanged(t *testing.T) {
	f := &fakeFetcher{}
	_, h, clock := newTestManager(t, f, Account{})
	ctx := context.Background()
	tok := mustToken(t, h)
	clock.Advance(time.Minute)
	f.mu.Lock()
	f.same = true // the platform still hands out the rejected token
	f.mu.Unlock()
	got, err := h.Reject(ctx, tok, 40001)
	if err != nil || got.Value == tok.Value || f.forces != 1 || f.count() != 3 {
		t.Fatalf("force path: %v %v, forces %d, calls %d", got, err, f.forces, f.count())
	}
	// A rejected token that the normal call replaces needs no force.
	clock.Advance(time.Minute)
	if got2, err := h.Reject(ctx, got, 42001); err != nil || f.forces != 1 || got2.Value == got.Value {
		t.Fatalf("normal path forced: %d forces", f.forces)
	}
}

func TestStableForceRefreshLimits(t *testing.T) {
	f := &fakeFetcher{}
	m, h, clock := newTestManager(t, f, Account{})
	m.opts.MaxRefreshCooldown = DefaultRefreshCooldown // no doubling: this test is about the force limits
	ctx := context.Background()
	tok := mustToken(t, h)
	reject := func() (*Token, error) {
		f.mu.Lock()
		f.same = true // the platform still hands out the rejected token
		f.mu.Unlock()
		return h.Reject(ctx, tok, 40001)
	}
	clock.Advance(time.Minute)
	// Rejections spend at most rejectionForces force_refresh calls a day.
	for i := 1; i <= rejectionForces; i++ {
		got, err := reject()
		if err != nil || got == nil || got.Value == tok.Value {
			t.Fatalf("force %d: %v, %v", i, got, err)
		}
		tok = got
		clock.Advance(31 * time.Second)
	}
	// Past it the platform's own (refused) token is kept rather than the
	// account left with none, and is final: no replay.
	before := tok.Value
	got, err := reject()
	if err != nil || got != nil || f.forces != rejectionForces || mustToken(t, h).Value != before {
		t.Fatalf("force %d: %v, %v (%d forces, token changed: %v)", rejectionForces+1, got, err, f.forces, mustToken(t, h).Value != before)
	}
	// Within the cooldown a further rejection of it costs nothing; a 40014
	// never does.
	calls := f.count()
	if got, err := h.Reject(ctx, tok, 40001); got != nil || err != nil || f.count() != calls {
		t.Fatalf("a final token's rejection within the cooldown: %v, %v, %d calls; want nil, nil, %d", got, err, f.count(), calls)
	}
	clock.Advance(time.Hour)
	if got, err := h.Reject(ctx, tok, 40014); got != nil || err != nil || f.count() != calls {
		t.Fatalf("a final token's 40014: %v, %v, %d calls; want nil, nil, %d", got, err, f.count(), calls)
	}
	// An operator's refresh may use the rest of the platform's allowance.
	fresh, refreshed, err := h.Refresh(ctx, nil)
	if err != nil || !refreshed || fresh.Value == before || f.forces != rejectionForces+1 {
		t.Fatalf("operator refresh: %v, %v, %v (%d forces)", fresh, refreshed, err, f.forces)
	}
}

// TestFinalTokenRecoversFromARealInvalidation: a token made final by a
// 40014 (it is of the wrong kind for some path) that then dies for real
// (40001) is checked again past the cooldown, and replaced.
func TestFinalTokenRecoversFromARealInvalidation(t *testing.T) {
	for _, ep := range []Endpoint{StableToken, GetToken} {
		t.Run(string(ep), func(t *testing.T) {
			_, h, clock, f := newPlatformManager(t, ep)
			tok := mustToken(t, h)
			clock.Advance(time.Minute)
			if got, err := h.Reject(context.Background(), tok, 40014); got != nil || err != nil {
				t.Fatalf("40014: %v, %v", got, err)
			}
			// Someone else invalidates it.
			f.mu.Lock()
			f.value = ""
			f.mu.Unlock()
			clock.Advance(DefaultRefreshCooldown)
			got, err := h.Reject(context.Background(), tok, 40001)
			if err != nil || got == nil || got.Value == tok.Value {
				t.Fatalf("40001 of the final token past the cooldown: %v, %v; want a new token", got, err)
			}
		})
	}
}

func TestRegisterKeepsTokenAcrossReload(t *testing.T) {
	f := &fakeFetcher{}
	m, h, _ := newTestManager(t, f, Account{})
	tok := mustToken(t, h)
	h2, err := m.Register(Account{Name: "renamed", Kind: Official, AppID: "wx1", Secret: "new-secret"})
	if err != nil {
		t.Fatal(err)
	}
	if h.e.acct.Load().Name != "mp" {
		t.Fatalf("a registration took effect before Activate")
	}
	h2.Activate()
	h.Release()
	if got := mustToken(t, h2); got.Value != tok.Value || f.count() != 1 {
		t.Fatalf("reload fetched again")
	}
	if h2.e.acct.Load().Name != "renamed" {
		t.Fatalf("new configuration not taken")
	}
	h2.Release()
	if len(m.Statuses()) != 0 {
		t.Fatalf("account kept after its last release")
	}
}

func TestRegisterValidates(t *testing.T) {
	m := NewManager(Options{})
	for _, c := range []struct {
		a    Account
		want string
	}{
		{Account{Kind: Official, AppID: "a", Secret: "s"}, "name is required"},
		{Account{Name: "x", Kind: "weird", AppID: "a", Secret: "s"}, `kind "weird"`},
		{Account{Name: "x", Kind: Official, Secret: "s"}, "appid is required"},
		{Account{Name: "x", Kind: WeCom, AppID: "c"}, "secret is required"},
		{Account{Name: "x", Kind: WeCom, AppID: "c", Secret: "s", Endpoint: StableToken}, "token_endpoint"},
		{Account{Name: "x", Kind: Official, AppID: "a", Secret: "s", Margin: 2 * time.Hour}, "refresh_margin"},
		{Account{Name: "x", Kind: Official, AppID: "a", Secret: "s", BaseURL: "api.weixin.qq.com"}, "api_base"},
		{Account{Name: "x", Kind: Official, AppID: "a", Secret: "s", BaseURL: "ftp://h"}, "api_base"},
		{Account{Name: "x", Kind: Official, AppID: "a", Secret: "s", BaseURL: "http://h/?q=1"}, "api_base"},
	} {
		if _, err := m.Register(c.a); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Register(%+v) = %v, want %q", c.a, err, c.want)
		}
	}
}

func TestWeComKeyedByCorpAndSecret(t *testing.T) {
	a := Account{Name: "a", Kind: WeCom, AppID: "corp", Secret: "one"}
	b := Account{Name: "b", Kind: WeCom, AppID: "corp", Secret: "two"}
	a, _ = a.withDefaults()
	b, _ = b.withDefaults()
	if a.Key() == b.Key() {
		t.Fatal("two WeCom apps of one corp share a key")
	}
	if strings.Contains(a.Key(), "one") {
		t.Fatal("key holds the secret")
	}
}

func TestHTTPFetcherNeverLeaksTheSecret(t *testing.T) {
	const secret = "TOPSECRET0123456789"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Query().Get("mode") {
		default:
			hj, _ := w.(http.Hijacker)
			conn, _, _ := hj.Hijack()
			conn.Close()
		}
	}))
	defer srv.Close()
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	closed := "http://" + ln.Addr().String()
	ln.Close()
	for _, ep := range []Endpoint{ClientCredential, StableToken} {
		for _, base := range []string{srv.URL, closed} {
			a := Account{Name: "mp", Kind: Official, AppID: "wx1", Secret: secret, Endpoint: ep, BaseURL: base}
			_, err := (&HTTPFetcher{}).Fetch(context.Background(), &a, false)
			if err == nil || strings.Contains(err.Error(), secret) {
				t.Fatalf("error %v leaks the secret or is missing", err)
			}
		}
	}
	w := Account{Name: "w", Kind: WeCom, AppID: "corp", Secret: secret, Endpoint: GetToken, BaseURL: closed}
	if _, err := (&HTTPFetcher{}).Fetch(context.Background(), &w, false); err == nil || strings.Contains(err.Error(), secret) {
		t.Fatalf("error %v leaks the secret", err)
	}
}

func TestParseTokenAnswer(t *testing.T) {
	for _, c := range []struct {
		body, want string
	}{
		{`{"access_token":"ACCESS_TOKEN","expires_in":7200}`, ""},
		{`{"errcode":0,"errmsg":"ok","access_token":"T","expires_in":7200}`, ""},
		// A lifetime written otherwise than as an integer is read, rounded down.
		{`{"access_token":"T","expires_in":7200.9}`, ""},
		{`{"access_token":"T","expires_in":7.2e3}`, ""},
		{`{"access_token":"T","expires_in":"7200"}`, ""},
		{"{\n  \"access_token\" : \"T\",\n  \"expires_in\" : 7200\n}\n", ""},
		{`{"access_token":"T","expires_in":"soon"}`, "not token JSON"},
		{`{"access_token":"T","expires_in":"Infinity"}`, "not token JSON"},
		{`{"access_token":"T","expires_in":"NaN"}`, "not token JSON"},
		{`{"access_token":"T","expires_in":"0x1p4"}`, "not token JSON"},
		{`{"access_token":"T","expires_in":""}`, "not token JSON"},
		{`{"access_token":"T","expires_in":-1e400}`, "expires_in -1"},
		{`{"access_token":"T","expires_in":-5}`, "expires_in -1"},
		{`{"errcode":40125,"errmsg":"invalid appsecret rid: 1-2-3"}`, "errcode 40125 (invalid secret)"},
		{`<html>502</html>`, "not token JSON"},
		{`{"access_token":"a b","expires_in":7200}`, "no usable access_token"},
	} {
		got, err := parseTokenAnswer("api/cgi-bin/token", []byte(c.body))
		if c.want == "" {
			if err != nil || got.ExpiresIn != 2*time.Hour {
				t.Errorf("%s: %v %v", c.body, got, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want %q", c.body, err, c.want)
		}
	}
	// A lifetime past any range is held at 2^31 s.
	for _, body := range []string{`{"access_token":"T","expires_in":1e400}`, `{"access_token":"T","expires_in":"99999999999999999999"}`} {
		if got, err := parseTokenAnswer("api/cgi-bin/token", []byte(body)); err != nil || got.ExpiresIn != (1<<31)*time.Second {
			t.Errorf("%s: %v %v", body, got, err)
		}
	}
	// No lifetime, or under a second: for the Manager to judge (see
	// TestLastSecondOfAToken).
	for _, body := range []string{`{"access_token":"T","expires_in":0}`, `{"access_token":"T","expires_in":0.5}`, `{"access_token":"T","expires_in":null}`, `{"access_token":"T"}`} {
		if got, err := parseTokenAnswer("api/cgi-bin/token", []byte(body)); err != nil || got.ExpiresIn != 0 {
			t.Errorf("%s: %v %v", body, got, err)
		}
	}
}

// TestLastSecondOfAToken: gettoken hands the same token back until it
// expires, with the life it has left. Asked just before that (its expiry
// here comes from a lifetime rounded down), it answers that token with 0 or
// 1 s left: the token serves that second, and the call after it gets the
// next one, with no failed call and no burst of calls. An endpoint that
// hands out new tokens, or a new token with no life, is an error.
func TestLastSecondOfAToken(t *testing.T) {
	for _, left := range []time.Duration{0, time.Second} {
		f := &lastSecondFetcher{left: left}
		clock := NewFrozenClock(t0)
		h, err := NewManager(Options{Clock: clock, Fetcher: f}).Register(Account{Name: "w", Kind: WeCom, AppID: "corp", Secret: "s3cret", Endpoint: GetToken})
		if err != nil {
			t.Fatal(err)
		}
		if tok := mustToken(t, h); tok.Value != "tok-1" {
			t.Fatalf("first token %s", tok.Value)
		}
		clock.Advance(2 * time.Hour) // expired here; the endpoint still has it for under a second
		if tok := mustToken(t, h); tok.Value != "tok-1" || f.calls != 2 {
			t.Fatalf("%v left: %s after %d calls, want tok-1 after 2", left, tok.Value, f.calls)
		}
		if tok := mustToken(t, h); tok.Value != "tok-1" || f.calls != 2 {
			t.Fatalf("%v left, asked again: %s after %d calls, want tok-1 after 2", left, tok.Value, f.calls)
		}
		clock.Advance(left + time.Second)
		// Stuck: the same token, past its expiry here, again. An error, and
		// the account backs off instead of asking every second.
		if _, err := h.Token(context.Background()); err == nil || f.calls != 3 {
			t.Fatalf("stuck endpoint: %v after %d calls, want an error after 3", err, f.calls)
		}
		if _, err := h.Token(context.Background()); err == nil || f.calls != 3 {
			t.Fatalf("stuck endpoint, asked again at once: %v after %d calls, want an error and no call", err, f.calls)
		}
		clock.Advance(DefaultBackoffMin * 2)
		f.expired = true
		if tok := mustToken(t, h); tok.Value != "tok-2" {
			t.Fatalf("%v left, then expired: %s after %d calls, want tok-2", left, tok.Value, f.calls)
		}
	}
	for name, a := range map[string]Account{
		"stable_token": {Name: "mp", Kind: Official, AppID: "wx1", Secret: "s3cret"},
		"new token":    {Name: "w", Kind: WeCom, AppID: "corp", Secret: "s3cret", Endpoint: GetToken},
	} {
		f := &fakeFetcher{lifetime: -1} // a lifetime of 0 s
		_, h, _ := newTestManager(t, f, a)
		if _, err := h.Token(context.Background()); err == nil || !strings.Contains(err.Error(), "expires_in 0") {
			t.Errorf("%s with expires_in 0: %v", name, err)
		}
	}
}

// lastSecondFetcher hands out tok-1 for 2 h, then tok-1 again with left
// to live, then (once expired is set) tok-2.
type lastSecondFetcher struct {
	calls   int
	left    time.Duration
	expired bool
}

func (f *lastSecondFetcher) Fetch(ctx context.Context, a *Account, force bool) (Fetched, error) {
	f.calls++
	switch {
	case f.calls == 1:
		return Fetched{Value: "tok-1", ExpiresIn: 2 * time.Hour}, nil
	case !f.expired:
		return Fetched{Value: "tok-1", ExpiresIn: f.left}, nil
	}
	return Fetched{Value: "tok-2", ExpiresIn: 2 * time.Hour}, nil
}

func TestQuotaDayIsShanghaiMidnight(t *testing.T) {
	before := time.Date(2026, 11, 21, 15, 59, 59, 0, time.UTC) // 23:59:59 in Shanghai
	after := before.Add(time.Second)
	if quotaDay(before) == quotaDay(after) {
		t.Fatal("quota day did not roll over at Shanghai midnight")
	}
	if !nextQuotaDay(before).Equal(after) {
		t.Fatalf("next quota day %v, want %v", nextQuotaDay(before), after)
	}
}

// TestStuckEndpointBacksOff: an endpoint that keeps handing back a value
// past its expiry here, with a second or no life left, is asked with
// backoff, not once a second, over an hour of calls.
func TestStuckEndpointBacksOff(t *testing.T) {
	for name, left := range map[string][]time.Duration{"1s": {time.Second}, "0s": {0}, "1s then 0s": {time.Second, 0}} {
		f := &stillFetcher{left: left}
		clock := NewFrozenClock(t0)
		h, err := NewManager(Options{Clock: clock, Fetcher: f}).Register(Account{Name: "w", Kind: WeCom, AppID: "corp", Secret: "s3cret", Endpoint: GetToken})
		if err != nil {
			t.Fatal(err)
		}
		mustToken(t, h)
		clock.Advance(2 * time.Hour)
		for range 3600 {
			_, _ = h.Token(context.Background())
			clock.Advance(time.Second)
		}
		if f.calls-1 > 60 {
			t.Errorf("%s: %d calls in an hour for a value never replaced", name, f.calls-1)
		}
	}
}

// stillFetcher hands out tok-1 for 2 h, then tok-1 again and again, with
// the lifetimes left in turn: an endpoint whose clock stands still.
type stillFetcher struct {
	calls int
	left  []time.Duration
}

func (f *stillFetcher) Fetch(context.Context, *Account, bool) (Fetched, error) {
	f.calls++
	if f.calls == 1 {
		return Fetched{Value: "tok-1", ExpiresIn: 2 * time.Hour}, nil
	}
	return Fetched{Value: "tok-1", ExpiresIn: f.left[(f.calls-2)%len(f.left)]}, nil
}
