package token

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/wxgate/caddy-wechat/module/simulator"
)

const (
	openComp   = "wx3rdcomponent0001"
	openSecret = "componentsecret0123456789abcdef0"
	openAuth   = "wxauthorizer00001"
)

// openPlatform is a simulated open platform with one component and one
// authorizer, and managers that share a Store, as gateways of a cluster or
// one gateway across a restart do.
type openPlatform struct {
	t     testing.TB
	sim   *simulator.Simulator
	srv   *httptest.Server
	clock *ManualClock
	store *memStore
	comps []*Handle // registered components, which get the pushed tickets
}

// newOpenPlatform starts the platform with openAuth, not yet authorised,
// and authorized more authorizers (see authorizedAppID) that authorised it
// before: their refresh tokens are in the Store.
func newOpenPlatform(t testing.TB, authorized int) *openPlatform {
	t.Helper()
	auths := []simulator.Authorizer{{ComponentAppID: openComp, AppID: openAuth}}
	store := newMemStore()
	comp := &Account{Kind: Component, AppID: openComp}
	for i := range authorized {
		a := simulator.Authorizer{ComponentAppID: openComp, AppID: authorizedAppID(i), RefreshToken: fmt.Sprintf("refreshtoken@%05d", i)}
		auths = append(auths, a)
		raw, _ := json.Marshal(authorizerRecord{RefreshToken: a.RefreshToken, Updated: t0.Add(-time.Hour)})
		store.data[authorizerStoreKey(comp, a.AppID)] = raw
	}
	sim, err := simulator.New(simulator.Config{
		Components: []simulator.Component{{AppID: openComp, Secret: openSecret, Token: "componenttoken01",
			EncodingAESKey: "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"}},
		Authorizers:             auths,
		ComponentTicketInterval: -1,
		Frozen:                  true,
		Start:                   t0,
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	t.Cleanup(func() { _ = sim.Close() })
	return &openPlatform{t: t, sim: sim, srv: srv, clock: NewFrozenClock(t0), store: store}
}

// authorizedAppID is the appid of the i-th authorizer newOpenPlatform
// starts authorised.
func authorizedAppID(i int) string { return fmt.Sprintf("wxauthorized%05d", i) }

// gateway registers the component on a new Manager sharing the Store.
func (p *openPlatform) gateway() (*Manager, *Handle) {
	p.t.Helper()
	m := NewManager(Options{Clock: p.clock, Fetcher: &HTTPFetcher{Client: p.srv.Client()}, Store: p.store, Logger: zap.NewNop(),
		Rand: func() float64 { return 0.5 }})
	h, err := m.Register(Account{Name: "platform", Kind: Component, AppID: openComp, Secret: openSecret, BaseURL: p.srv.URL})
	if err != nil {
		p.t.Fatal(err)
	}
	p.t.Cleanup(h.Release)
	p.comps = append(p.comps, h)
	p.pushTicket()
	return m, h
}

// pushTicket has the simulator issue a verify ticket, and hands it to the
// components, as the callback would.
func (p *openPlatform) pushTicket() {
	p.t.Helper()
	pushes, err := p.sim.PushComponentTicket(openComp)
	if err != nil {
		p.t.Fatal(err)
	}
	for _, h := range p.comps {
		if err := h.SetVerifyTicket(context.Background(), pushes[0].Ticket, p.clock.Now()); err != nil {
			p.t.Fatal(err)
		}
	}
}

// authorize has openAuth authorise the platform, and comp exchange the
// code, as if pushed at issued.
func (p *openPlatform) authorize(comp *Handle, issued time.Time) {
	p.t.Helper()
	res, err := p.sim.Authorize(openComp, openAuth, "")
	if err != nil {
		p.t.Fatal(err)
	}
	if _, err := comp.Authorize(context.Background(), res.AuthorizationCode, issued); err != nil {
		p.t.Fatal(err)
	}
}

// authorizer registers authorizer appid of comp for the test.
func (p *openPlatform) authorizer(comp *Handle, appid string) *Handle {
	p.t.Helper()
	h, err := comp.Authorizer(appid)
	if err != nil {
		p.t.Fatal(err)
	}
	p.t.Cleanup(h.Release)
	return h
}

// advance moves both clocks, in steps of at most 10 minutes, with a
// ticket push after each as WeChat does.
func (p *openPlatform) advance(d time.Duration) {
	for d > 0 {
		step := min(d, 10*time.Minute)
		p.clock.Advance(step)
		p.sim.Clock().Advance(step)
		p.pushTicket()
		d -= step
	}
}

func (p *openPlatform) authorizerTokens() int64 {
	return p.sim.Counters().Components[openComp].Authorizers[openAuth].AuthorizerToken
}

// works calls a business API of the authorizer with tok.
func (p *openPlatform) works(tok string) bool {
	p.t.Helper()
	resp, err := p.srv.Client().Get(p.srv.URL + "/cgi-bin/menu/get?access_token=" + tok)
	if err != nil {
		p.t.Fatal(err)
	}
	defer resp.Body.Close()
	var ans struct {
		Errcode int `json:"errcode"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&ans)
	return ans.Errcode == 0 || ans.Errcode == 46003 // 46003: no menu yet, but the token was taken
}

func TestAuthorizerTokenLifecycle(t *testing.T) {
	p := newOpenPlatform(t, 0)
	ctx := context.Background()
	_, comp := p.gateway()
	auth := p.authorizer(comp, openAuth)
	// Before the business authorises the platform, there is no token, and
	// asking costs no call.
	if _, err := auth.Token(ctx); err == nil || !strings.Contains(err.Error(), "has not authorised") {
		t.Fatalf("a token before authorisation: %v", err)
	}
	res, err := p.sim.Authorize(openComp, openAuth, "")
	if err != nil {
		t.Fatal(err)
	}
	if auth, err := comp.Authorize(ctx, res.AuthorizationCode, time.Time{}); err != nil || auth.AppID != openAuth || len(auth.FuncInfo) == 0 {
		t.Fatalf("Authorize: %+v %v", auth, err)
	}
	// The same code again (the authorization page's redirect brings the
	// code the push brought), here or on another instance, is answered
	// from the first exchange.
	_, other := p.gateway()
	for _, h := range []*Handle{comp, other} {
		if again, err := h.Authorize(ctx, res.AuthorizationCode, time.Time{}); err != nil || again.AppID != openAuth {
			t.Fatalf("the code again: %+v %v", again, err)
		}
	}
	if n := p.sim.Counters().Components[openComp].Authorizers[openAuth].QueryAuth; n != 1 {
		t.Errorf("%d api_query_auth calls for one code, want 1", n)
	}
	auth.e.mu.Lock()
	auth.e.clearGuard() // the failed ask above backed off
	auth.e.mu.Unlock()

	// The token works on the authorizer's business paths; a storm of
	// callers makes one fetch.
	done := make(chan *Token)
	for range 20 {
		go func() {
			tok, err := auth.Token(ctx)
			if err != nil {
				t.Error(err)
			}
			done <- tok
		}()
	}
	var tok *Token
	for range 20 {
		if got := <-done; got != nil {
			tok = got
		}
	}
	if tok == nil || !p.works(tok.Value) {
		t.Fatalf("the authorizer's token does not work: %+v", tok)
	}
	if n := p.authorizerTokens(); n != 1 {
		t.Fatalf("%d api_authorizer_token calls, want 1", n)
	}

	// A day in use: the token is renewed before expiry with the refresh
	// token each answer brings (the simulator honours an old one only 5
	// minutes), at most 13 times.
	for range 24 * 6 {
		p.advance(10 * time.Minute)
		tok, err := auth.Token(ctx)
		if err != nil || !p.works(tok.Value) {
			t.Fatalf("at %v: %v", p.clock.Now(), err)
		}
		auth.m.RefreshDue(ctx)
	}
	if n := p.sim.Counters().Components[openComp].ComponentToken; n > 13 {
		t.Errorf("%d api_component_token calls in a day, want at most 13", n)
	}
	if n := p.authorizerTokens(); n > 13 || n < 12 {
		t.Errorf("%d api_authorizer_token calls in a day of use, want at most 13 (and at least 12: a token lives 2 h)", n)
	}

	// A restart (a new Manager on the same Store) fetches nothing and has
	// the refresh token.
	before := p.authorizerTokens()
	_, comp2 := p.gateway()
	auth2 := p.authorizer(comp2, openAuth)
	if tok, err := auth2.Token(ctx); err != nil || !p.works(tok.Value) {
		t.Fatalf("after a restart: %v", err)
	}
	if n := p.authorizerTokens(); n != before {
		t.Errorf("a restart made %d api_authorizer_token calls, want 0", n-before)
	}
	if !comp2.Authorized(ctx, openAuth) {
		t.Error("the refresh token was lost across a restart")
	}

	// The business withdraws: the authorizer is dropped, and nothing more
	// is asked for it.
	if _, err := p.sim.Unauthorize(openComp, openAuth); err != nil {
		t.Fatal(err)
	}
	if err := comp2.Unauthorize(ctx, openAuth, p.clock.Now()); err != nil {
		t.Fatal(err)
	}
	if comp.Authorized(ctx, openAuth) {
		t.Error("another instance still holds the withdrawn authorizer's refresh token")
	}
	p.advance(3 * time.Hour)
	before = p.authorizerTokens()
	if _, err := auth2.Token(ctx); err == nil || !strings.Contains(err.Error(), "has not authorised") {
		t.Errorf("a token after withdrawal: %v", err)
	}
	if n := p.authorizerTokens(); n != before {
		t.Errorf("%d calls after withdrawal", n-before)
	}
}

// TestRevokedRefreshTokenMarksTheAuthorizer: an authorisation withdrawn
// without the push reaching the gateway shows as 61023 at the next
// refresh; the authorizer is then marked unauthorised, and costs nothing
// more until it authorises again.
func TestRevokedRefreshTokenMarksTheAuthorizer(t *testing.T) {
	p := newOpenPlatform(t, 0)
	ctx := context.Background()
	_, comp := p.gateway()
	p.authorize(comp, time.Time{})
	auth := p.authorizer(comp, openAuth)
	if _, err := auth.Token(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := p.sim.Unauthorize(openComp, openAuth); err != nil {
		t.Fatal(err)
	}
	p.advance(3 * time.Hour)
	if _, err := auth.Token(ctx); err == nil {
		t.Fatal("a token from a revoked refresh token")
	}
	if comp.Authorized(ctx, openAuth) {
		t.Error("a revoked authorizer still counts as authorised")
	}
	rejected := p.sim.Counters().Components[openComp].Authorizers[openAuth].RefreshRejected
	for range 10 {
		p.advance(time.Hour)
		_, _ = auth.Token(ctx)
	}
	if n := p.sim.Counters().Components[openComp].Authorizers[openAuth].RefreshRejected; n != rejected || rejected != 1 {
		t.Errorf("61023 answered %d times, then %d; want 1 and no more calls", rejected, n)
	}
	// Authorising again brings it back at once.
	p.authorize(comp, time.Time{})
	if tok, err := auth.Token(ctx); err != nil || !p.works(tok.Value) {
		t.Fatalf("after authorising again: %v", err)
	}
}

// TestRotatedRefreshTokenSurvivesAStoreOutage: a refresh token rotated
// while the Store is down is kept here, used for the next refresh in
// preference to the Store's older one, and written to the Store again.
func TestRotatedRefreshTokenSurvivesAStoreOutage(t *testing.T) {
	p := newOpenPlatform(t, 1)
	ctx := context.Background()
	_, comp := p.gateway()
	auth := p.authorizer(comp, authorizedAppID(0))
	// The component token and the refresh token are read while the Store
	// is up.
	if _, err := comp.Token(ctx); err != nil || !comp.Authorized(ctx, authorizedAppID(0)) {
		t.Fatal(err)
	}
	p.store.down.Store(true)
	if _, err := auth.Token(ctx); err != nil {
		t.Fatalf("a token while the Store is down: %v", err)
	}
	p.store.down.Store(false)
	// Past the expiry of the first token and the simulator's 5-minute
	// grace for the refresh token it replaced.
	p.advance(3 * time.Hour)
	tok, err := auth.Token(ctx)
	if err != nil || !p.works(tok.Value) {
		t.Fatalf("after the outage: %v", err)
	}
	if n := p.sim.Counters().Components[openComp].Authorizers[authorizedAppID(0)].RefreshRejected; n != 0 {
		t.Errorf("%d refreshes with a superseded refresh token", n)
	}
	// Another instance, which reads the Store only, has the newest one.
	_, other := p.gateway()
	if !other.Authorized(ctx, authorizedAppID(0)) {
		t.Fatal("the Store lost the authorizer")
	}
	rec := other.m.refreshToken(ctx, other.e, other.Account(), authorizedAppID(0))
	mine := comp.m.refreshToken(ctx, comp.e, comp.Account(), authorizedAppID(0))
	if rec.RefreshToken != mine.RefreshToken {
		t.Error("the Store holds another refresh token than the instance that rotated it")
	}
}

// TestOlderWithdrawalIgnored: an `unauthorized` push issued before the
// authorisation held (delayed, or retried) does not drop it.
func TestOlderWithdrawalIgnored(t *testing.T) {
	p := newOpenPlatform(t, 0)
	ctx := context.Background()
	_, comp := p.gateway()
	pushed := p.clock.Now()
	p.authorize(comp, pushed)
	if err := comp.Unauthorize(ctx, openAuth, pushed.Add(-time.Minute)); err != nil || !comp.Authorized(ctx, openAuth) {
		t.Fatalf("an older withdrawal dropped the authorizer: %v", err)
	}
	if err := comp.Unauthorize(ctx, openAuth, pushed.Add(time.Minute)); err != nil || comp.Authorized(ctx, openAuth) {
		t.Fatalf("a newer withdrawal did not drop the authorizer: %v", err)
	}
}

// TestAuthorisationWaitsForARotation: an authorisation and a withdrawal
// write the authorizer's record under the storage lock its token refresh
// holds while it rotates the refresh token, so that neither is overwritten
// by a rotation that read the record before them, on any instance.
func TestAuthorisationWaitsForARotation(t *testing.T) {
	p := newOpenPlatform(t, 0)
	ctx := context.Background()
	_, comp := p.gateway()
	if _, err := comp.Token(ctx); err != nil {
		t.Fatal(err)
	}
	acct := authorizerAccount(comp, openAuth)
	name := lockName(&acct)
	p.store.waiting = make(chan string, 8)
	// waitsFor runs write while the test holds the authorizer's lock (a
	// refresh mid-rotation), checks that it waits, then lets it go.
	waitsFor := func(what string, write func() error, before, after bool) {
		t.Helper()
		if err := p.store.Lock(ctx, name); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- write() }()
		p.waitsForLock(name, what, done)
		if comp.Authorized(ctx, openAuth) != before {
			t.Fatalf("%s was written while a refresh held the authorizer's lock", what)
		}
		_ = p.store.Unlock(ctx, name)
		if err := <-done; err != nil || comp.Authorized(ctx, openAuth) != after {
			t.Fatalf("%s after the lock was released: %v", what, err)
		}
	}
	res, err := p.sim.Authorize(openComp, openAuth, "")
	if err != nil {
		t.Fatal(err)
	}
	waitsFor("an authorisation", func() error {
		_, err := comp.Authorize(ctx, res.AuthorizationCode, p.clock.Now())
		return err
	}, false, true)
	waitsFor("a withdrawal", func() error {
		return comp.Unauthorize(ctx, openAuth, p.clock.Now().Add(time.Minute))
	}, true, false)
}

// TestAuthorisationOutlivesItsRequest: a push whose request gave up while
// the authorisation waited for the authorizer's lock still has the
// authorisation written, to the Store too, once the lock is free.
func TestAuthorisationOutlivesItsRequest(t *testing.T) {
	p := newOpenPlatform(t, 0)
	_, comp := p.gateway()
	if _, err := comp.Token(context.Background()); err != nil {
		t.Fatal(err)
	}
	acct := authorizerAccount(comp, openAuth)
	name := lockName(&acct)
	p.store.waiting = make(chan string, 8)
	res, err := p.sim.Authorize(openComp, openAuth, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := p.store.Lock(context.Background(), name); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := comp.Authorize(ctx, res.AuthorizationCode, p.clock.Now())
		done <- err
	}()
	p.waitsForLock(name, "the authorisation", done)
	cancel() // the push's request gives up
	_ = p.store.Unlock(context.Background(), name)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if _, other := p.gateway(); !other.Authorized(context.Background(), openAuth) {
		t.Error("the authorisation never reached the Store")
	}
}

// waitsForLock returns once a write running in another goroutine waits for
// the lock name the test holds; if the write finishes first (done), it
// did not wait, and the test fails.
func (p *openPlatform) waitsForLock(name, what string, done <-chan error) {
	p.t.Helper()
	for n := ""; n != name; {
		select {
		case n = <-p.store.waiting:
		case err := <-done:
			_ = p.store.Unlock(context.Background(), name)
			p.t.Fatalf("%s did not wait for the authorizer's lock (%v)", what, err)
		}
	}
}

// TestAuthorizersInUse: a component lists the authorizers registered that
// hold a usable token, whoever registered them, and none other: not one
// registered without a token, not one whose token has expired unused, not
// another component's.
func TestAuthorizersInUse(t *testing.T) {
	p := newOpenPlatform(t, 1)
	ctx := context.Background()
	m, comp := p.gateway()
	p.authorize(comp, p.clock.Now())
	if got := comp.AuthorizersInUse(); len(got) != 0 {
		t.Fatalf("before any authorizer is registered: %v", got)
	}
	p.authorizer(comp, authorizedAppID(0))
	if got := comp.AuthorizersInUse(); len(got) != 0 {
		t.Errorf("an authorizer registered without a token is listed: %v", got)
	}
	if _, err := p.authorizer(comp, openAuth).Token(ctx); err != nil {
		t.Fatal(err)
	}
	// A second registration of the component (the next config's) sees it.
	again, err := m.Register(*comp.Account())
	if err != nil {
		t.Fatal(err)
	}
	defer again.Release()
	if got := again.AuthorizersInUse(); !slices.Equal(got, []string{openAuth}) {
		t.Errorf("listed %v, want [%s]", got, openAuth)
	}
	other, err := m.Register(Account{Name: "other", Kind: Component, AppID: "wxothercomponent01", Secret: openSecret, BaseURL: p.srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Release()
	if got := other.AuthorizersInUse(); len(got) != 0 {
		t.Errorf("another component lists %v", got)
	}
	p.clock.Advance(3 * time.Hour) // the token expires, unused
	if got := comp.AuthorizersInUse(); len(got) != 0 {
		t.Errorf("after its token expired unused: %v", got)
	}
}
