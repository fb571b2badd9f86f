package caddywechat

// In-process test harness for the handler: an App and Handlers built
// without a running Caddy (their private fields filled as Provision would),
// a token manager on a frozen clock that fetches from the WeChat simulator
// (or from a scripted fetcher), and a `next` that records every request it
// receives before handing it to the simulator (or to a scripted upstream),
// the way reverse_proxy would.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/wxgate/caddy-wechat/module/internal/clientauth"
	"github.com/wxgate/caddy-wechat/module/internal/token"
	"github.com/wxgate/caddy-wechat/module/simulator"
)

// Accounts the simulator knows and the gateway holds tokens for.
const (
	mpAppID    = "wx0123456789abcdef"
	mpSecret   = "0123456789abcdef0123456789abcdef"
	mp2AppID   = "wxfedcba9876543210"
	mp2Secret  = "fedcba9876543210fedcba9876543210"
	corpID     = "ww0123456789abcdef"
	corpSecret = "wecom-app-secret-one-0123456789abcdef"
)

// Client keys (at least clientauth.MinKeyLength characters each).
const (
	shopKey  = "shop-key-0123456789abcdef" // accounts mp, mp2, corp; every path
	menuKey  = "menu-key-0123456789abcdef" // account mp; /cgi-bin/menu/* only
	rawKey   = "raw-key-0123456789abcdef0" // accounts mp, mp2; raw_token
	ghostKey = "ghost-key-0123456789abcde" // account ghost, which has no token handle
)

// testStart is a Saturday 10:00 in Shanghai, the clocks' starting point.
var testStart = time.Date(2025, 3, 1, 10, 0, 0, 0, time.FixedZone("CST", 8*60*60))

// testClients are the clients of every test gateway.
var testClients = []clientauth.Client{
	{Name: "shop", Keys: []string{shopKey}, Accounts: []string{"mp", "mp2", "corp"}},
	{Name: "menu", Keys: []string{menuKey}, Accounts: []string{"mp"}, Paths: []string{"/cgi-bin/menu/*"}},
	{Name: "raw", Keys: []string{rawKey}, Accounts: []string{"mp", "mp2"}, RawToken: true},
	{Name: "ghost", Keys: []string{ghostKey}, Accounts: []string{"ghost"}},
}

// countingFetcher counts the token-endpoint calls the manager makes and
// remembers the tokens it was handed, around another Fetcher.
type countingFetcher struct {
	inner  token.Fetcher
	calls  atomic.Int32
	forced atomic.Int32
	mu     sync.Mutex
	got    []string // tokens fetched, in order
}

func (f *countingFetcher) Fetch(ctx context.Context, a *token.Account, force bool) (token.Fetched, error) {
	f.calls.Add(1)
	if force {
		f.forced.Add(1)
	}
	got, err := f.inner.Fetch(ctx, a, force)
	if err == nil {
		f.mu.Lock()
		f.got = append(f.got, got.Value)
		f.mu.Unlock()
	}
	return got, err
}

// FetchTicket asks the inner fetcher for a ticket; tickets are not counted
// as token fetches.
func (f *countingFetcher) FetchTicket(ctx context.Context, a *token.Account, accessToken string) (token.Fetched, error) {
	tf, ok := f.inner.(token.TicketFetcher)
	if !ok {
		return token.Fetched{}, fmt.Errorf("%T fetches no tickets", f.inner)
	}
	return tf.FetchTicket(ctx, a, accessToken)
}

// last returns the last token fetched, or "".
func (f *countingFetcher) last() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.got) == 0 {
		return ""
	}
	return f.got[len(f.got)-1]
}

// scriptedFetcher hands out tok-1, tok-2, ... (per account appid), valid
// for two hours, without any network.
type scriptedFetcher struct {
	mu sync.Mutex
	n  map[string]int
}

func (f *scriptedFetcher) Fetch(_ context.Context, a *token.Account, _ bool) (token.Fetched, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.n == nil {
		f.n = make(map[string]int)
	}
	f.n[a.AppID]++
	return token.Fetched{Value: fmt.Sprintf("%s-tok-%d", a.AppID, f.n[a.AppID]), ExpiresIn: 2 * time.Hour}, nil
}

// seenRequest is what reached `next`, copied when it arrived.
type seenRequest struct {
	Method        string
	Path          string
	RawQuery      string
	RequestURI    string
	Header        http.Header
	Body          []byte
	ContentLength int64
}

// query returns the values of the parameter name, parsed the standard way.
func (s seenRequest) query(t testing.TB, name string) []string {
	t.Helper()
	q, err := url.ParseQuery(s.RawQuery)
	if err != nil {
		t.Fatalf("upstream query %q does not parse: %v", s.RawQuery, err)
	}
	return q[name]
}

// gateway is one test gateway: the simulator behind an httptest server (the
// token endpoints the manager fetches from), a frozen clock shared by the
// gateway and the simulator, and the App.
type gateway struct {
	t       testing.TB
	sim     *simulator.Simulator
	simURL  string
	clock   *token.ManualClock
	fetches *countingFetcher
	app     *App

	mu       sync.Mutex
	upstream http.Handler // what next forwards to; the simulator by default
	seen     []seenRequest
}

// gatewayOption changes how newGateway builds the gateway.
type gatewayOption func(*gatewayConfig)

type gatewayConfig struct {
	fetcher  token.Fetcher // nil: HTTP to the simulator
	cooldown time.Duration // 0: the default, 30 s
	mpSecret string
	clients  []clientauth.Client
}

// withScriptedTokens makes the manager fetch from a scriptedFetcher instead
// of the simulator.
func withScriptedTokens() gatewayOption {
	return func(c *gatewayConfig) { c.fetcher = new(scriptedFetcher) }
}

// withFetcher makes the manager fetch from f instead of the simulator.
func withFetcher(f token.Fetcher) gatewayOption {
	return func(c *gatewayConfig) { c.fetcher = f }
}

// fetcherFunc is a Fetcher written as a function.
type fetcherFunc func(ctx context.Context, a *token.Account, force bool) (token.Fetched, error)

func (f fetcherFunc) Fetch(ctx context.Context, a *token.Account, force bool) (token.Fetched, error) {
	return f(ctx, a, force)
}

// withMPSecret configures account mp with another secret than the
// simulator's.
func withMPSecret(s string) gatewayOption {
	return func(c *gatewayConfig) { c.mpSecret = s }
}

// newGateway starts the simulator and builds the App, with accounts mp
// (official, stable_token), mp2 (official, /cgi-bin/token) and corp (WeCom),
// and the testClients.
func newGateway(t testing.TB, opts ...gatewayOption) *gateway {
	t.Helper()
	cfg := gatewayConfig{mpSecret: mpSecret, clients: testClients}
	for _, o := range opts {
		o(&cfg)
	}
	sim, err := simulator.New(simulator.Config{
		Accounts: []simulator.Account{
			{Kind: simulator.KindOfficial, AppID: mpAppID, Secret: mpSecret},
			{Kind: simulator.KindOfficial, AppID: mp2AppID, Secret: mp2Secret},
			{Kind: simulator.KindWeCom, AppID: corpID, Secret: corpSecret, AgentID: "1000002"},
		},
		Frozen: true,
		Start:  testStart,
	})
	if err != nil {
		t.Fatalf("simulator.New: %v", err)
	}
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)

	g := &gateway{t: t, sim: sim, simURL: srv.URL, clock: token.NewFrozenClock(testStart)}
	g.upstream = sim
	inner := cfg.fetcher
	if inner == nil {
		inner = &token.HTTPFetcher{Client: srv.Client()}
	}
	g.fetches = &countingFetcher{inner: inner}
	manager := token.NewManager(token.Options{
		Clock:           g.clock,
		Fetcher:         g.fetches,
		Logger:          zap.NewNop(),
		RefreshCooldown: cfg.cooldown,
		Rand:            func() float64 { return 0.5 }, // no jitter
	})

	app := &App{
		Accounts: map[string]*Account{
			"mp":   {Kind: "official", AppID: mpAppID, Secret: "{env.MP}"},
			"mp2":  {Kind: "official", AppID: mp2AppID, Secret: "{env.MP2}", TokenEndpoint: "token"},
			"corp": {Kind: "wecom", AppID: corpID, Secret: "{env.CORP}"},
		},
		MaxReplayMemory: DefaultMaxReplayMemory,
		tokens:          &tokenService{manager: manager, clock: g.clock},
		handles:         make(map[string]*token.Handle),
		logger:          zap.NewNop(),
	}
	for _, acct := range []token.Account{
		{Name: "mp", Kind: token.Official, AppID: mpAppID, Secret: cfg.mpSecret, BaseURL: srv.URL},
		{Name: "mp2", Kind: token.Official, AppID: mp2AppID, Secret: mp2Secret, Endpoint: token.ClientCredential, BaseURL: srv.URL},
		{Name: "corp", Kind: token.WeCom, AppID: corpID, Secret: corpSecret, BaseURL: srv.URL},
	} {
		h, err := manager.Register(acct)
		if err != nil {
			t.Fatalf("Register(%s): %v", acct.Name, err)
		}
		h.Activate()
		app.handles[acct.Name] = h
		if err := app.registerTickets(acct.Name, h); err != nil {
			t.Fatalf("registerTickets(%s): %v", acct.Name, err)
		}
	}
	for _, h := range app.tickets {
		h.Activate()
	}
	t.Cleanup(func() {
		for _, h := range app.handles {
			h.Release()
		}
		for _, h := range app.tickets {
			h.Release()
		}
	})
	app.auth = newAuthority(t, app, cfg.clients)
	g.app = app
	return g
}

// newAuthority builds the client authority over app's accounts, plus the
// account "ghost", which clients may be issued tokens for but which has no
// token handle (a token signed for an account the config no longer has).
func newAuthority(t testing.TB, app *App, clients []clientauth.Client) *clientauth.Authority {
	t.Helper()
	accounts := []clientauth.Account{{Name: "ghost", Kind: "official", AppID: "wxghost000000000000"}}
	for _, name := range slices.Sorted(maps.Keys(app.handles)) {
		acct := app.handles[name].Account()
		accounts = append(accounts, clientauth.Account{Name: name, Kind: string(acct.Kind), AppID: acct.AppID})
	}
	auth, err := clientauth.New(clients, accounts, 0, app.tokens.manager.Clock().Now)
	if err != nil {
		t.Fatalf("clientauth.New: %v", err)
	}
	t.Cleanup(auth.Close)
	return auth
}

// site returns a handler as Provision would set it up: h's exported fields
// (Account, Kind, Trusted, MaxReplayBody) as given.
func (g *gateway) site(h Handler) *Handler {
	g.t.Helper()
	h.app = g.app
	h.stuck = new(stuckPaths)
	h.calls = new(lastCall)
	h.logger = zap.NewNop()
	if h.MaxReplayBody == 0 {
		h.MaxReplayBody = DefaultMaxReplayBody
	}
	if h.Account != "" {
		fixed, err := g.app.account(h.Account)
		if err != nil {
			g.t.Fatal(err)
		}
		h.fixed = fixed
		kind := string(fixed.Account().Kind)
		if h.Kind != "" && h.Kind != kind {
			g.t.Fatalf("site: kind %s for %s account %s", h.Kind, kind, h.Account)
		}
		h.Kind = kind
	}
	return &h
}

// clientsSite is a clients-mode site serving every account.
func (g *gateway) clientsSite() *Handler { return g.site(Handler{}) }

// trustedSite is a trusted site for account mp.
func (g *gateway) trustedSite() *Handler { return g.site(Handler{Account: "mp", Trusted: true}) }

// setUpstream makes next forward to u instead of the simulator.
func (g *gateway) setUpstream(u http.Handler) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.upstream = u
}

// next is the handler after the gateway: it records the request and passes
// it to the upstream, as reverse_proxy passes it to WeChat.
func (g *gateway) next() caddyhttp.Handler {
	return caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		var body []byte
		if r.Body != nil {
			var err error
			if body, err = io.ReadAll(r.Body); err != nil {
				return err
			}
		}
		g.mu.Lock()
		g.seen = append(g.seen, seenRequest{
			Method: r.Method, Path: r.URL.Path, RawQuery: r.URL.RawQuery, RequestURI: r.RequestURI,
			Header: r.Header.Clone(), Body: body, ContentLength: r.ContentLength,
		})
		up := g.upstream
		g.mu.Unlock()
		r2 := r.Clone(r.Context())
		r2.Body = io.NopCloser(bytes.NewReader(body))
		up.ServeHTTP(w, r2)
		return nil
	})
}

// upstreamRequests returns what reached next so far.
func (g *gateway) upstreamRequests() []seenRequest {
	g.mu.Lock()
	defer g.mu.Unlock()
	return slices.Clone(g.seen)
}

// resetSeen forgets the requests seen so far.
func (g *gateway) resetSeen() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.seen = nil
}

// advance moves the gateway's and the simulator's clocks together.
func (g *gateway) advance(d time.Duration) {
	g.clock.Advance(d)
	g.sim.Clock().Advance(d)
}

// serve runs r through h with the gateway's next and returns the answer.
func (g *gateway) serve(h *Handler, r *http.Request) *httptest.ResponseRecorder {
	g.t.Helper()
	rec := httptest.NewRecorder()
	if err := h.ServeHTTP(rec, r, g.next()); err != nil {
		g.t.Fatalf("%s %s: ServeHTTP returned %v", r.Method, r.URL, err)
	}
	return rec
}

// get serves GET target through h.
func (g *gateway) get(h *Handler, target string) *httptest.ResponseRecorder {
	g.t.Helper()
	return g.serve(h, httptest.NewRequest(http.MethodGet, target, nil))
}

// post serves POST target with body through h.
func (g *gateway) post(h *Handler, target, contentType string, body []byte) *httptest.ResponseRecorder {
	g.t.Helper()
	r := httptest.NewRequest(http.MethodPost, target, bytes.NewReader(body))
	if contentType != "" {
		r.Header.Set("Content-Type", contentType)
	}
	return g.serve(h, r)
}

// gatewayToken fetches a gateway token from h's /cgi-bin/token (or
// gettoken for WeCom) with key, failing the test if none is issued.
func (g *gateway) gatewayToken(h *Handler, kind, appid, key string) string {
	g.t.Helper()
	target := "/cgi-bin/token?grant_type=client_credential&appid=" + url.QueryEscape(appid) + "&secret=" + url.QueryEscape(key)
	if kind == "wecom" {
		target = "/cgi-bin/gettoken?corpid=" + url.QueryEscape(appid) + "&corpsecret=" + url.QueryEscape(key)
	}
	before := len(g.upstreamRequests())
	ans := decodeAnswer(g.t, g.get(h, target))
	if ans.Errcode != 0 || !strings.HasPrefix(ans.AccessToken, "gw2.") {
		g.t.Fatalf("token endpoint: no gateway token for %s %s: %+v", kind, appid, ans)
	}
	if after := len(g.upstreamRequests()); after != before {
		g.t.Fatalf("token endpoint call reached upstream")
	}
	return ans.AccessToken
}

// wxAnswer is a WeChat JSON answer: an error or a token.
type wxAnswer struct {
	Errcode     int    `json:"errcode"`
	Errmsg      string `json:"errmsg"`
	AccessToken string `json:"access_token"`
	ExpiresIn   int    `json:"expires_in"`
}

// decodeAnswer decodes a JSON answer, failing the test unless it is one.
func decodeAnswer(t testing.TB, rec *httptest.ResponseRecorder) wxAnswer {
	t.Helper()
	var a wxAnswer
	if err := json.Unmarshal(rec.Body.Bytes(), &a); err != nil {
		t.Fatalf("answer is not JSON (status %d): %q", rec.Code, rec.Body.String())
	}
	return a
}

// wantErrcode checks that rec is a WeChat-shaped error answer with code.
func wantErrcode(t testing.TB, rec *httptest.ResponseRecorder, code int) wxAnswer {
	t.Helper()
	if rec.Code != http.StatusOK {
		t.Errorf("HTTP status %d, want 200 (WeChat answers errors with 200)", rec.Code)
	}
	a := decodeAnswer(t, rec)
	if a.Errcode != code {
		t.Errorf("errcode %d (%q), want %d", a.Errcode, a.Errmsg, code)
	}
	return a
}

// wantNothingUpstream checks that no request reached next, and that no
// token was fetched.
func (g *gateway) wantNothingUpstream(t testing.TB) {
	t.Helper()
	if seen := g.upstreamRequests(); len(seen) != 0 {
		t.Errorf("%d request(s) reached upstream, want none; first: %s %s", len(seen), seen[0].Method, seen[0].RequestURI)
	}
	if n := g.fetches.calls.Load(); n != 0 {
		t.Errorf("%d token fetch(es), want none", n)
	}
}

// scripted is an upstream that answers each call with the next of its
// answers (the last one repeats), and records the access_token it was sent.
type scripted struct {
	mu      sync.Mutex
	answers []http.HandlerFunc
	calls   int
	tokens  []string
}

func (s *scripted) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	i := min(s.calls, len(s.answers)-1)
	s.calls++
	tok, _ := url.ParseQuery(r.URL.RawQuery)
	s.tokens = append(s.tokens, tok.Get("access_token"))
	answer := s.answers[i]
	s.mu.Unlock()
	answer(w, r)
}

// jsonAnswer answers body as WeChat does (HTTP 200, its JSON content type),
// with extra headers.
func jsonAnswer(body string, header ...string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		for i := 0; i+1 < len(header); i += 2 {
			w.Header().Add(header[i], header[i+1])
		}
		w.Header().Set("Content-Type", "application/json; encoding=utf-8")
		w.WriteHeader(http.StatusOK)
		_, _ = io.WriteString(w, body)
	}
}

// rejectToken answers a WeChat token error for the token bad, and body
// for any other.
func rejectToken(bad string, code int, body string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		q, _ := url.ParseQuery(r.URL.RawQuery)
		if q.Get("access_token") == bad {
			jsonAnswer(fmt.Sprintf(`{"errcode":%d,"errmsg":"invalid credential, access_token is invalid or not latest rid: 67c2a1b0-12345678-0abcdef1"}`, code))(w, r)
			return
		}
		jsonAnswer(body)(w, r)
	}
}
