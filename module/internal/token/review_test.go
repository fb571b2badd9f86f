package token

import (
	"context"
	"net/http"
	"net/http/httptest"
	"runtime"
	"sync/atomic"
	"testing"
	"time"
)

// A 40014 while the token endpoint is down must not take away a token
// that still works on other paths.
func TestRejectDuringOutageKeepsServing(t *testing.T) {
	var down atomic.Int32
	f := failingFetcher(&down, "system error")
	_, h, clock := newTestManager(t, f, Account{})
	ctx := context.Background()
	tok := mustToken(t, h)
	clock.Advance(time.Minute)
	down.Store(-1) // system error
	if got, err := h.Reject(ctx, tok, 40014); got != nil || err == nil {
		t.Fatalf("Reject with the endpoint down: %v, %v; want no token and the reason", got, err)
	}
	// While backing off, a further rejection keeps the token and asks nothing.
	calls := f.count()
	if got, err := h.Reject(ctx, tok, 40014); got != nil || err != nil || f.count() != calls {
		t.Fatalf("Reject in backoff: %v, %v, %d calls", got, err, f.count()-calls)
	}
	for range 3 {
		if got := mustToken(t, h); got.Value != tok.Value {
			t.Fatalf("the still-valid token was dropped")
		}
		clock.Advance(5 * time.Minute)
	}
}

func TestGenerationSurvivesReject(t *testing.T) {
	_, h, clock := newTestManager(t, &fakeFetcher{}, Account{Endpoint: ClientCredential, Name: "mp", Kind: Official, AppID: "wx1", Secret: "s"})
	tok := mustToken(t, h)
	for want := uint64(2); want <= 4; want++ {
		clock.Advance(time.Minute)
		got, err := h.Reject(context.Background(), tok, 40001)
		if err != nil || got.Generation != want {
			t.Fatalf("generation %d after a reject, want %d (%v)", got.Generation, want, err)
		}
		tok = got
	}
}

func TestRecordFromTheFutureIsIgnored(t *testing.T) {
	store := newMemStore()
	a, _ := testAccount.withDefaults()
	future := &Token{Value: "FUTURE", Fetched: t0.Add(time.Hour), Expires: t0.Add(3 * time.Hour), Generation: 9}
	if err := saveRecord(context.Background(), store, &a, future); err != nil {
		t.Fatal(err)
	}
	if _, err := loadRecord(context.Background(), store, &a, t0); err == nil {
		t.Fatal("a record fetched an hour from now was accepted")
	}
}

func TestSyncNeverWritesAnOlderGeneration(t *testing.T) {
	store := newMemStore()
	ms, hs, _, clock := cluster(t, 1, store)
	mustToken(t, hs[0])
	a, _ := testAccount.withDefaults()
	// Another instance stored a newer generation whose fetch time reads
	// earlier (its clock is behind).
	newer := &Token{Value: "NEWER", Fetched: t0.Add(-time.Minute), Expires: t0.Add(2 * time.Hour), Generation: 5}
	if err := saveRecord(context.Background(), store, &a, newer); err != nil {
		t.Fatal(err)
	}
	clock.Advance(DefaultSyncInterval)
	ms[0].RefreshDue(context.Background())
	rec, err := loadRecord(context.Background(), store, &a, clock.Now())
	if err != nil || rec.Generation != 5 {
		t.Fatalf("stored generation %v (%v); want 5 kept", rec, err)
	}
	if got := mustToken(t, hs[0]); got.Value != "NEWER" {
		t.Fatalf("the instance did not adopt the newer generation: %s", got.Value)
	}
}

// A rejection that joins a background refresh which brings the rejected
// token back starts a refresh of its own instead of returning it.
func TestRejectJoiningAStaleRefresh(t *testing.T) {
	f := &fakeFetcher{}
	m, h, clock := newTestManager(t, f, Account{})
	tok := mustToken(t, h)
	clock.Advance(2*time.Hour - DefaultStableMargin)
	f.mu.Lock()
	f.same = true // the background refresh gets the same token back
	f.gate = make(chan struct{})
	f.mu.Unlock()
	done := make(chan struct{})
	go func() { m.RefreshDue(context.Background()); close(done) }()
	for { // wait for the background refresh to be under way
		h.e.mu.Lock()
		inFlight := h.e.flight != nil
		h.e.mu.Unlock()
		if inFlight {
			break
		}
		runtime.Gosched()
	}
	got := make(chan *Token)
	go func() {
		fresh, _ := h.Reject(context.Background(), tok, 40001)
		got <- fresh
	}()
	for { // wait for the rejection to join it
		if h.e.cur.Load() == nil {
			break
		}
		runtime.Gosched()
	}
	close(f.gate)
	<-done
	if fresh := <-got; fresh == nil || fresh.Value == tok.Value {
		t.Fatalf("Reject returned %v; want a token other than the rejected one", fresh)
	}
}

func TestFetcherFollowsNoRedirect(t *testing.T) {
	var reached atomic.Bool
	elsewhere := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { reached.Store(true) }))
	defer elsewhere.Close()
	redirecting := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, elsewhere.URL+r.URL.Path, http.StatusTemporaryRedirect)
	}))
	defer redirecting.Close()
	a := Account{Name: "mp", Kind: Official, AppID: "wx1", Secret: "s3cret", Endpoint: StableToken, BaseURL: redirecting.URL}
	if _, err := (&HTTPFetcher{}).Fetch(context.Background(), &a, false); err == nil {
		t.Fatal("a redirect answered a token")
	}
	if reached.Load() {
		t.Fatal("the stable_token body, secret included, followed a redirect")
	}
}

func TestChangedSecretClearsAStoppedRefresh(t *testing.T) {
	f := &fakeFetcher{fail: func() error {
		return &FetchError{Endpoint: "api/cgi-bin/stable_token", Errcode: 40125, Errmsg: "invalid appsecret"}
	}}
	m, h, _ := newTestManager(t, f, Account{})
	if _, err := h.Token(context.Background()); err == nil {
		t.Fatal("no error with a wrong secret")
	}
	f.mu.Lock()
	f.fail = nil
	f.mu.Unlock()
	fixed, err := m.Register(Account{Name: "mp", Kind: Official, AppID: "wx1", Secret: "the-right-one"})
	if err != nil {
		t.Fatal(err)
	}
	fixed.Activate()
	h.Release()
	if tok, err := fixed.Token(context.Background()); err != nil || tok == nil {
		t.Fatalf("after fixing the secret: %v (the stop lasted past the reload)", err)
	}
}
