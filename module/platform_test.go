package caddywechat

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/wxgate/caddy-wechat/module/internal/caddyopt"
	"github.com/wxgate/caddy-wechat/module/internal/clientauth"
	"github.com/wxgate/caddy-wechat/module/internal/msgcrypt"
	"github.com/wxgate/caddy-wechat/module/internal/token"
	"github.com/wxgate/caddy-wechat/module/internal/wxapi"
)

const (
	platAppID = "wx3rdcomponent0001"
	authA     = "wxauthorizeraaaa01" // also configured as the official account mp
	authB     = "wxauthorizerbbbb02"
	platKey   = "plat-key-0123456789abcdef" // client both: platform and mp
)

// platformFetcher mints component, official and authorizer tokens and
// exchanges codes ("code-<appid>" authorizes appid), without a network.
type platformFetcher struct {
	mu      sync.Mutex
	n       int
	tickets map[string]int // ticket calls by the token they were made with
}

func (f *platformFetcher) next(prefix string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.n++
	return fmt.Sprintf("%s-real-token-%04d-xxxxxxxxxxxxxxxx", prefix, f.n)
}

func (f *platformFetcher) Fetch(_ context.Context, a *token.Account, _ bool) (token.Fetched, error) {
	return token.Fetched{Value: f.next(a.AppID), ExpiresIn: 2 * time.Hour}, nil
}

func (f *platformFetcher) FetchAuthorizerToken(_ context.Context, a *token.Account, _, _ string) (token.Fetched, string, error) {
	return token.Fetched{Value: f.next("authorizer-" + a.AppID), ExpiresIn: 2 * time.Hour}, "", nil
}

func (f *platformFetcher) FetchTicket(_ context.Context, a *token.Account, accessToken string) (token.Fetched, error) {
	f.mu.Lock()
	if f.tickets == nil {
		f.tickets = make(map[string]int)
	}
	f.tickets[accessToken]++
	f.mu.Unlock()
	return token.Fetched{Value: f.next("ticket-" + string(a.Endpoint) + "-" + a.AppID), ExpiresIn: 2 * time.Hour}, nil
}

func (f *platformFetcher) QueryAuth(_ context.Context, _ *token.Account, _, code string) (token.Authorization, string, error) {
	appid := strings.TrimPrefix(code, "code-")
	return token.Authorization{AppID: appid}, "real-refresh-token-of-" + appid, nil
}

// platformApp is an App with the platform `platform` (authorizers authA
// and authB) and the official account mp, which is authA configured
// directly; client both may use both.
func platformApp(t *testing.T) *App {
	t.Helper()
	clock := token.NewFrozenClock(testStart)
	m := token.NewManager(token.Options{Clock: clock, Logger: zap.NewNop(), Fetcher: &platformFetcher{}, Rand: func() float64 { return 0.5 }})
	comp, err := m.Register(token.Account{Name: "platform", Kind: token.Component, AppID: platAppID, Secret: "component-secret-0123456789abcdef"})
	if err != nil {
		t.Fatal(err)
	}
	comp.Activate()
	mp, err := m.Register(token.Account{Name: "mp", Kind: token.Official, AppID: authA, Secret: "mp-secret-0123456789abcdef0123456", BaseURL: "http://127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	mp.Activate()
	t.Cleanup(func() { comp.Release(); mp.Release() })
	if err := comp.SetVerifyTicket(context.Background(), "ticket@1", clock.Now()); err != nil {
		t.Fatal(err)
	}
	for _, appid := range []string{authA, authB} {
		if _, err := comp.Authorize(context.Background(), "code-"+appid, clock.Now()); err != nil {
			t.Fatal(err)
		}
	}
	app := &App{
		Accounts: map[string]*Account{
			"platform": {Kind: "component", AppID: platAppID, Secret: "{env.C}"},
			"mp":       {Kind: "official", AppID: authA, Secret: "{env.MP}"},
		},
		MaxReplayMemory: DefaultMaxReplayMemory,
		tokens:          &tokenService{manager: m, clock: clock},
		handles:         map[string]*token.Handle{"platform": comp, "mp": mp},
		siblings:        map[string][]*token.Handle{platAppID: {comp}, authA: {mp}},
		codecs:          map[string]msgcrypt.Codec{"platform": {Token: "componenttoken01", EncodingAESKey: "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG", AppID: platAppID}},
		authorizers:     newAuthorizerSet(),
		logger:          zap.NewNop(),
	}
	auth, err := clientauth.New([]clientauth.Client{
		{Name: "both", Keys: []string{platKey}, Accounts: []string{"platform", "mp"}},
	}, []clientauth.Account{
		{Name: "platform", Kind: "component", AppID: platAppID},
		{Name: "mp", Kind: "official", AppID: authA},
	}, 0, clock.Now)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(auth.Close)
	app.auth = auth
	return app
}

// platformAppSite is the clients-mode site of account.
func platformAppSite(app *App, account string) *Handler {
	fixed := app.handles[account]
	return &Handler{Account: account, Kind: string(fixed.Account().Kind), app: app, fixed: fixed,
		stuck: new(stuckPaths), calls: new(lastCall), logger: zap.NewNop(), MaxReplayBody: DefaultMaxReplayBody}
}

func servePlatform(t *testing.T, h *Handler, r *http.Request, next caddyhttp.Handler) *httptest.ResponseRecorder {
	t.Helper()
	rec := httptest.NewRecorder()
	if err := h.ServeHTTP(rec, r, next); err != nil {
		t.Fatal(err)
	}
	return rec
}

// answerField is a string field of a JSON answer.
func answerField(t *testing.T, rec *httptest.ResponseRecorder, key string) string {
	t.Helper()
	body := rec.Body.String()
	i := strings.Index(body, `"`+key+`":"`)
	if i < 0 {
		t.Fatalf("no %s in %s", key, body)
	}
	rest := body[i+len(key)+4:]
	return rest[:strings.IndexByte(rest, '"')]
}

// componentToken and authorizerToken are the gateway tokens client both
// gets from the platform's site.
func componentToken(t *testing.T, plat *Handler) string {
	rec := servePlatform(t, plat, httptest.NewRequest("POST", "/cgi-bin/component/api_component_token",
		strings.NewReader(`{"component_appid":"`+platAppID+`","component_appsecret":"`+platKey+`"}`)), nil)
	return answerField(t, rec, "component_access_token")
}

func authorizerToken(t *testing.T, plat *Handler, appid string) string {
	rec := servePlatform(t, plat, httptest.NewRequest("POST", "/cgi-bin/component/api_authorizer_token?component_access_token="+componentToken(t, plat),
		strings.NewReader(`{"component_appid":"`+platAppID+`","authorizer_appid":"`+appid+`"}`)), nil)
	return answerField(t, rec, "authorizer_access_token")
}

// echoQuery answers with the query it got, and keeps it in got.
func echoQuery(got *string) caddyhttp.Handler {
	return caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		*got = r.URL.RawQuery
		w.Header().Set("Content-Type", "application/json")
		_, _ = fmt.Fprintf(w, `{"errcode":0,"request":{"request_url":"%s"}}`, r.URL.RawQuery)
		return nil
	})
}

// TestAuthorizersInMetricsAndAdmin: with two authorizers in use, a scrape
// still works (they were exported as two identical ticket series, which
// failed every scrape of Caddy's /metrics), they count as the platform's,
// and the admin API lists them as its authorizers, not its tickets.
func TestAuthorizersInMetricsAndAdmin(t *testing.T) {
	app := platformApp(t)
	plat := platformAppSite(app, "platform")
	for _, appid := range []string{authA, authB} {
		var got string
		servePlatform(t, plat, httptest.NewRequest("GET", "/cgi-bin/menu/get?access_token="+authorizerToken(t, plat, appid), nil), echoQuery(&got))
		if !strings.Contains(got, "authorizer-"+appid) {
			t.Fatalf("authorizer %s call: upstream got %q", appid, got)
		}
	}
	reg := prometheus.NewRegistry()
	if err := reg.Register(stateCollector{app}); err != nil {
		t.Fatal(err)
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatalf("scrape: %v", err)
	}
	held := -1.0
	for _, f := range families {
		switch f.GetName() {
		case "caddy_wechat_ticket_remaining_seconds":
			t.Errorf("%d ticket series, want none: a platform here has no tickets", len(f.GetMetric()))
		case "caddy_wechat_authorizer_tokens":
			for _, m := range f.GetMetric() {
				if l := m.GetLabel(); len(l) != 1 || l[0].GetValue() != "platform" {
					t.Errorf("authorizer_tokens labels %v", l)
				}
				held = m.GetGauge().GetValue()
			}
		}
	}
	if held != 2 {
		t.Errorf("caddy_wechat_authorizer_tokens{account=\"platform\"} = %v, want 2", held)
	}
	for _, as := range accountStates(app) {
		switch as.Name {
		case "platform":
			if len(as.Authorizers) != 2 || len(as.Tickets) != 0 {
				t.Errorf("platform: %d authorizers, %d tickets; want 2, 0", len(as.Authorizers), len(as.Tickets))
			}
		case "mp":
			if len(as.Authorizers)+len(as.Tickets) != 0 {
				t.Errorf("mp: %+v", as)
			}
		default:
			t.Errorf("account %q listed: authorizers are not accounts of their own", as.Name)
		}
	}
}

// TestPlatformSNSRequestURIRedacted: the user's code and refresh token on
// a platform's /sns/ calls stay out of the URI reverse_proxy's debug log
// shows, as on every other site.
func TestPlatformSNSRequestURIRedacted(t *testing.T) {
	app := platformApp(t)
	plat := platformAppSite(app, "platform")
	comp := componentToken(t, plat)
	for _, target := range []string{
		"/sns/oauth2/component/access_token?appid=" + authA + "&code=USER-OAUTH-CODE-123&grant_type=authorization_code&component_appid=" + platAppID + "&component_access_token=" + comp,
		"/sns/oauth2/component/refresh_token?appid=" + authA + "&grant_type=refresh_token&refresh_token=USER-REFRESH-TOKEN-123&component_appid=" + platAppID + "&component_access_token=" + comp,
		"/sns/component/jscode2session?appid=" + authA + "&js_code=USER-JS-CODE-123&grant_type=authorization_code&component_appid=" + platAppID + "&component_access_token=" + comp,
	} {
		var uri, query string
		next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
			uri, query = r.RequestURI, r.URL.RawQuery
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(`{"errcode":0}`))
			return nil
		})
		servePlatform(t, plat, httptest.NewRequest("GET", target, nil), next)
		if !strings.Contains(query, "USER-") {
			t.Errorf("upstream query %q lost the user's credential", query)
		}
		if strings.Contains(uri, "USER-") || strings.Contains(uri, comp) || !strings.Contains(uri, "REDACTED") {
			t.Errorf("upstream RequestURI %s", uri)
		}
	}
}

// TestPlatformSiteRefusesSmuggledParams: the platform's site refuses what
// the other sites refuse in clients mode: credentials in the query (a
// client key sent as secret would go to WeChat), and in an authorizer's
// call an appid or corpid that is not the authorizer's. A component call
// names its authorizer in appid.
func TestPlatformSiteRefusesSmuggledParams(t *testing.T) {
	app := platformApp(t)
	plat := platformAppSite(app, "platform")
	comp := componentToken(t, plat)
	authTok := authorizerToken(t, plat, authA)
	for _, c := range []struct {
		target  string
		forward bool
	}{
		{"/cgi-bin/menu/get?access_token=" + authTok, true},
		{"/cgi-bin/menu/get?access_token=" + authTok + "&appid=" + authA, true},
		{"/cgi-bin/menu/get?access_token=" + authTok + "&appid=" + authB, false},
		{"/cgi-bin/menu/get?access_token=" + authTok + "&corpid=wwother0000000001", false},
		{"/cgi-bin/menu/get?access_token=" + authTok + "&secret=" + platKey, false},
		{"/cgi-bin/menu/get?access_token=" + authTok + "&suite_access_token=x", false},
		{"/cgi-bin/component/api_get_authorizer_option?component_access_token=" + comp + "&appid=" + authB, true},
		{"/cgi-bin/component/api_get_authorizer_option?component_access_token=" + comp + "&secret=" + platKey, false},
		{"/sns/component/jscode2session?appid=" + authB + "&js_code=c&grant_type=authorization_code&component_appid=" + platAppID + "&component_access_token=" + comp, true},
	} {
		got := ""
		rec := servePlatform(t, plat, httptest.NewRequest("GET", c.target, nil), echoQuery(&got))
		if forwarded := got != ""; forwarded != c.forward {
			t.Errorf("%s: forwarded %v (%s), want %v", c.target, forwarded, rec.Body, c.forward)
		}
	}
}

// TestSameAppIDMaskedAcrossAuthorizer: a business that is a platform's
// authorizer and also configured as an account has two real tokens; an
// answer on either site masks both, in any form an echo carries them.
func TestSameAppIDMaskedAcrossAuthorizer(t *testing.T) {
	app := platformApp(t)
	plat, mpSite := platformAppSite(app, "platform"), platformAppSite(app, "mp")
	authTok := authorizerToken(t, plat, authA)
	var realAuthorizer string
	servePlatform(t, plat, httptest.NewRequest("GET", "/cgi-bin/menu/get?access_token="+authTok, nil), echoQuery(&realAuthorizer))
	realAuthorizer = strings.TrimPrefix(realAuthorizer, "access_token=")
	mpReal, err := app.handles["mp"].Token(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	echo := func(value string) caddyhttp.Handler {
		return caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
			w.Header().Set("Content-Type", "application/json")
			_, _ = fmt.Fprintf(w, `{"errcode":0,"request":{"request_body":"{\"t\":\"%s\"}"}}`, value)
			return nil
		})
	}
	mpGW := answerField(t, servePlatform(t, mpSite, httptest.NewRequest("GET",
		"/cgi-bin/token?grant_type=client_credential&appid="+authA+"&secret="+platKey, nil), nil), "access_token")
	rec := servePlatform(t, mpSite, httptest.NewRequest("POST", "/cgi-bin/openapi/rid/get?access_token="+mpGW, strings.NewReader(`{"rid":"x"}`)), echo(realAuthorizer))
	if !strings.HasPrefix(realAuthorizer, "authorizer-") || strings.Contains(rec.Body.String(), realAuthorizer) {
		t.Errorf("mp's site answered the authorizer's real token %q: %s", realAuthorizer, rec.Body)
	}
	rec = servePlatform(t, plat, httptest.NewRequest("POST", "/cgi-bin/openapi/rid/get?access_token="+authTok, strings.NewReader(`{"rid":"x"}`)), echo(mpReal.Value))
	if strings.Contains(rec.Body.String(), mpReal.Value) {
		t.Errorf("the platform's site answered mp's real token: %s", rec.Body)
	}
}

// TestAuthorizersAdoptedOnReload: a config that replaces another takes
// over the authorizers that hold a token before the old one lets go of
// them. So the authorizer keeps its token across the reload (no new
// fetch), and an answer on the site of the account configured with the
// authorizer's appid masks the authorizer's token from the first call,
// before anyone has called the authorizer through the new config.
func TestAuthorizersAdoptedOnReload(t *testing.T) {
	old := platformApp(t)
	authTok := authorizerToken(t, platformAppSite(old, "platform"), authA)
	var realAuthorizer string
	servePlatform(t, platformAppSite(old, "platform"), httptest.NewRequest("GET", "/cgi-bin/menu/get?access_token="+authTok, nil), echoQuery(&realAuthorizer))
	realAuthorizer = strings.TrimPrefix(realAuthorizer, "access_token=")
	if !strings.HasPrefix(realAuthorizer, "authorizer-") {
		t.Fatalf("the authorizer's call went up with %q", realAuthorizer)
	}

	// The new config registers its accounts on the same manager (its
	// Provision), then starts while the old one still runs.
	m := old.tokens.manager
	reg := func(name string) *token.Handle {
		h, err := m.Register(*old.handles[name].Account())
		if err != nil {
			t.Fatal(err)
		}
		h.Activate()
		return h
	}
	comp, mp := reg("platform"), reg("mp")
	next := *old
	next.handles = map[string]*token.Handle{"platform": comp, "mp": mp}
	next.siblings = map[string][]*token.Handle{platAppID: {comp}, authA: {mp}}
	next.authorizers = newAuthorizerSet()
	next.adoptAuthorizers()
	// The old config goes (its Cleanup's releases).
	for _, h := range old.authorizers.handles {
		h.Release()
	}
	old.handles["platform"].Release()
	old.handles["mp"].Release()
	t.Cleanup(func() {
		for _, h := range next.authorizers.handles {
			h.Release()
		}
	})

	if got := next.authorizers.sameAppID(authA); len(got) != 1 {
		t.Fatalf("the new config holds %d handles of authorizer %s, want 1", len(got), authA)
	}
	if got := next.authorizers.sameAppID(authB); len(got) != 0 {
		t.Errorf("authorizer %s, never called, was adopted", authB)
	}
	mpSite := platformAppSite(&next, "mp")
	mpGW := answerField(t, servePlatform(t, mpSite, httptest.NewRequest("GET",
		"/cgi-bin/token?grant_type=client_credential&appid="+authA+"&secret="+platKey, nil), nil), "access_token")
	echo := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		w.Header().Set("Content-Type", "application/json")
		_, _ = fmt.Fprintf(w, `{"errcode":0,"echo":"%s"}`, realAuthorizer)
		return nil
	})
	rec := servePlatform(t, mpSite, httptest.NewRequest("GET", "/cgi-bin/openapi/rid/get?access_token="+mpGW, nil), echo)
	if strings.Contains(rec.Body.String(), realAuthorizer) {
		t.Errorf("after the reload, mp's site answered the authorizer's real token: %s", rec.Body)
	}
	var again string
	servePlatform(t, platformAppSite(&next, "platform"), httptest.NewRequest("GET", "/cgi-bin/menu/get?access_token="+authTok, nil), echoQuery(&again))
	if again = strings.TrimPrefix(again, "access_token="); again != realAuthorizer {
		t.Errorf("after the reload the authorizer's call went up with %q, want the token it held, %q", again, realAuthorizer)
	}
}

// TestAuthorizerLifecycleAcrossConfigs: a withdrawn authorizer is not
// adopted by the next config; and a config that started and adopted the
// authorizers, then is cleaned up without a Stop (as Caddy does when
// setting up after the apps' Start fails), gives them back to the config
// still running, as it gives back the accounts.
func TestAuthorizerLifecycleAcrossConfigs(t *testing.T) {
	old := platformApp(t)
	old.tokens.activate(old)
	ctx := context.Background()
	m := old.tokens.manager
	for _, appid := range []string{authA, authB} {
		if _, err := old.authorizer(ctx, old.handles["platform"], appid).Token(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if err := old.handles["platform"].Unauthorize(ctx, authB, m.Clock().Now()); err != nil {
		t.Fatal(err)
	}
	parentOf := func(appid string) string {
		for _, st := range m.Statuses() {
			if st.Endpoint == token.AuthorizerToken && st.AppID == appid {
				return st.Parent
			}
		}
		return ""
	}
	if p := parentOf(authA); p != "platform" {
		t.Fatalf("the authorizer's platform is %q, want platform", p)
	}

	// The next config calls the same platform platform2, and starts.
	acct := *old.handles["platform"].Account()
	acct.Name = "platform2"
	comp, err := m.Register(acct)
	if err != nil {
		t.Fatal(err)
	}
	next := *old
	next.Accounts = map[string]*Account{"platform2": old.Accounts["platform"]}
	next.handles = map[string]*token.Handle{"platform2": comp}
	next.siblings = map[string][]*token.Handle{platAppID: {comp}}
	next.authorizers = newAuthorizerSet()
	next.auth = nil
	next.tokens.activate(&next)
	next.adoptAuthorizers()
	if p := parentOf(authA); p != "platform2" {
		t.Errorf("after the next config started, the authorizer's platform is %q, want platform2", p)
	}
	if got := next.authorizers.sameAppID(authB); len(got) != 0 {
		t.Errorf("the withdrawn authorizer %s was adopted", authB)
	}
	if h := next.authorizer(ctx, comp, authB); h != nil {
		t.Errorf("the withdrawn authorizer %s is served by the next config", authB)
	}
	// A third business authorises the platform, and is called through the
	// next config, then through the old one, still serving its last
	// requests: the old one does not take the authorizer back.
	const authC = "wxauthorizercccc01"
	if _, err := comp.Authorize(ctx, "code-"+authC, m.Clock().Now()); err != nil {
		t.Fatal(err)
	}
	if next.authorizer(ctx, comp, authC) == nil || old.authorizer(ctx, old.handles["platform"], authC) == nil {
		t.Fatalf("authorizer %s not served", authC)
	}
	if p := parentOf(authC); p != "platform2" {
		t.Errorf("after a call through the config being replaced, authorizer %s's platform is %q, want platform2", authC, p)
	}

	// It is cleaned up without a Stop: the old config gets its platform back.
	if err := next.Cleanup(); err != nil {
		t.Fatal(err)
	}
	if p := parentOf(authA); p != "platform" {
		t.Errorf("after the next config was cleaned up, the authorizer's platform is %q, want platform", p)
	}
	if _, err := old.authorizer(ctx, old.handles["platform"], authA).Token(ctx); err != nil {
		t.Errorf("the old config's authorizer after the next config went: %v", err)
	}
}

// TestPlatformRefusalsCounted: a refused call on a platform's site counts
// in calls_total as refused, under the client when its token verified.
func TestPlatformRefusalsCounted(t *testing.T) {
	app := platformApp(t)
	plat := platformAppSite(app, "platform")
	authTok := authorizerToken(t, plat, authA)
	named, anonymous := callKey{"both", "platform", 40013}, callKey{"", "platform", 41001}
	before := map[callKey]float64{named: counted(t, callSeries(named)), anonymous: counted(t, callSeries(anonymous))}
	var got string
	servePlatform(t, plat, httptest.NewRequest("GET", "/cgi-bin/menu/get?access_token="+authTok+"&appid="+authB, nil), echoQuery(&got))
	servePlatform(t, plat, httptest.NewRequest("GET", "/cgi-bin/menu/get", nil), echoQuery(&got))
	for k, n := range before {
		if c := counted(t, callSeries(k)) - n; c != 1 {
			t.Errorf("series %+v counted %v refusals, want 1", k, c)
		}
	}
}

// TestComponentPathsEndingInSlashRefused: a platform's API path with a
// trailing slash is refused (40066) and sent nowhere, on a platform's site
// and a trusted one, as any API path is: a Caddy rule in front of the
// gateway for the path without it would not see it. The token endpoints of
// platforms and WeCom suites keep the slash SDKs may add.
func TestComponentPathsEndingInSlashRefused(t *testing.T) {
	app := platformApp(t)
	plat := platformAppSite(app, "platform")
	comp := componentToken(t, plat)
	var upstream []string
	next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		upstream = append(upstream, r.URL.Path)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"errcode":0}`))
		return nil
	})
	rec := servePlatform(t, plat, httptest.NewRequest("POST",
		"/cgi-bin/component/api_get_authorizer_option/?component_access_token="+comp, strings.NewReader(`{}`)), next)
	wantErrcode(t, rec, 40066)
	if len(upstream) != 0 {
		t.Errorf("the platform's site sent %q upstream", upstream)
	}
	rec = servePlatform(t, plat, httptest.NewRequest("POST", "/cgi-bin/component/api_component_token/",
		strings.NewReader(`{"component_appid":"`+platAppID+`","component_appsecret":"`+platKey+`"}`)), next)
	if !strings.Contains(rec.Body.String(), `"component_access_token"`) {
		t.Errorf("the component token endpoint with a slash: %s", rec.Body)
	}

	g := newGateway(t)
	g.setUpstream(jsonAnswer(`{"errcode":0}`))
	wantErrcode(t, g.get(g.trustedSite(), "/cgi-bin/component/api_query_auth/"), 40066)
	wantErrcode(t, g.get(g.trustedSite(), "/cgi-bin/service/get_permanent_code/"), 40066)
	if seen := g.upstreamRequests(); len(seen) != 0 {
		t.Errorf("the trusted site sent %q upstream", seen[0].Path)
	}
}

// TestConfigTimingsReachTheManager: the config that becomes active hands
// its refresh_cooldown and fetch_timeout to the manager it shares with the
// config before it; one given the manager back after a failed start hands
// back its own.
func TestConfigTimingsReachTheManager(t *testing.T) {
	m := token.NewManager(token.Options{Logger: zap.NewNop()})
	svc := &tokenService{manager: m}
	old := &App{RefreshCooldown: caddy.Duration(45 * time.Second), FetchTimeout: caddy.Duration(7 * time.Second), tokens: svc, logger: zap.NewNop()}
	next := &App{RefreshCooldown: caddyopt.Off, tokens: svc, logger: zap.NewNop()}
	want := func(step string, cooldown, timeout time.Duration) {
		t.Helper()
		if c, f := m.Timings(); c != cooldown || f != timeout {
			t.Errorf("%s: cooldown %v, fetch timeout %v; want %v and %v", step, c, f, cooldown, timeout)
		}
	}
	svc.activate(old)
	want("first config", 45*time.Second, 7*time.Second)
	svc.activate(next)
	want("reloaded: cooldown off, default timeout", time.Duration(caddyopt.Off), token.DefaultFetchTimeout)
	svc.deactivate(next)
	want("the reload failed to start", 45*time.Second, 7*time.Second)
}

// codesFetcher is a platformFetcher whose codes may carry a "#n" suffix,
// so that one authorizer can authorise more than once.
type codesFetcher struct{ platformFetcher }

func (f *codesFetcher) QueryAuth(ctx context.Context, a *token.Account, tok, code string) (token.Authorization, string, error) {
	code, _, _ = strings.Cut(code, "#")
	return f.platformFetcher.QueryAuth(ctx, a, tok, code)
}

// TestOlderWithdrawalAfterReauthorization: an authorizer withdraws at t1,
// then authorises again, first exchanged by the platform's page (no push
// time) and then pushed. A retry of the t1 withdrawal reaching the gateway
// later (another instance, a restart) does not revoke the new
// authorisation: the push dates it.
func TestOlderWithdrawalAfterReauthorization(t *testing.T) {
	clock := token.NewFrozenClock(testStart)
	m := token.NewManager(token.Options{Clock: clock, Logger: zap.NewNop(), Fetcher: &codesFetcher{}})
	comp, err := m.Register(token.Account{Name: "platform", Kind: token.Component, AppID: platAppID, Secret: "component-secret-0123456789abcdef"})
	if err != nil {
		t.Fatal(err)
	}
	comp.Activate()
	t.Cleanup(comp.Release)
	ctx := context.Background()
	if err := comp.SetVerifyTicket(ctx, "ticket@1", clock.Now()); err != nil {
		t.Fatal(err)
	}
	if _, err := comp.Authorize(ctx, "code-"+authB+"#1", clock.Now()); err != nil {
		t.Fatal(err)
	}
	clock.Advance(time.Minute)
	t1 := clock.Now()
	if err := comp.Unauthorize(ctx, authB, t1); err != nil {
		t.Fatal(err)
	}
	clock.Advance(time.Minute)
	if _, err := comp.Authorize(ctx, "code-"+authB+"#2", time.Time{}); err != nil { // the page's exchange
		t.Fatal(err)
	}
	if _, err := comp.Authorize(ctx, "code-"+authB+"#2", clock.Now()); err != nil { // its push
		t.Fatal(err)
	}
	clock.Advance(time.Minute)
	if err := comp.Unauthorize(ctx, authB, t1); err != nil { // t1's push again
		t.Fatal(err)
	}
	if !comp.Authorized(ctx, authB) {
		t.Errorf("the withdrawal issued at %v revoked the authorisation made a minute later", t1.Format(time.TimeOnly))
	}
}

// TestAuthorizerTicketsCached: on a platform's site an authorizer's JS-SDK
// ticket calls are answered from the ticket cache, fetched once per type
// with the authorizer's token, and never forwarded: forwarded, every call
// reached WeChat and spent the authorizer's ticket quota. WeCom's ticket
// paths are refused for an authorizer (an official account).
func TestAuthorizerTicketsCached(t *testing.T) {
	app := platformApp(t)
	plat := platformAppSite(app, "platform")
	authTok := authorizerToken(t, plat, authA)
	upstream := 0
	next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		upstream++
		return nil
	})
	var tickets []string
	for _, typ := range []string{"jsapi", "jsapi", "wx_card", "jsapi"} {
		rec := servePlatform(t, plat, httptest.NewRequest("GET", "/cgi-bin/ticket/getticket?type="+typ+"&access_token="+authTok, nil), next)
		var ans struct {
			Errcode   int    `json:"errcode"`
			Ticket    string `json:"ticket"`
			ExpiresIn int    `json:"expires_in"`
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &ans); err != nil || ans.Errcode != 0 || ans.ExpiresIn != 7200 || !strings.Contains(ans.Ticket, "ticket-"+typ+"-"+authA) {
			t.Fatalf("%s ticket: %s", typ, rec.Body)
		}
		tickets = append(tickets, ans.Ticket)
	}
	if tickets[0] != tickets[1] || tickets[0] != tickets[3] || tickets[0] == tickets[2] {
		t.Errorf("tickets %q: want one jsapi ticket throughout and another wx_card one", tickets)
	}
	for _, path := range []string{"/cgi-bin/get_jsapi_ticket?", "/cgi-bin/ticket/get?type=agent_config&"} {
		wantErrcode(t, servePlatform(t, plat, httptest.NewRequest("GET", path+"access_token="+authTok, nil), next), wxapi.CodeAPIUnauthorized)
	}
	if upstream != 0 {
		t.Errorf("%d ticket calls forwarded upstream, want 0", upstream)
	}
}

// platformAppWithTicket is platformApp, the active config, with mp's own
// jsapi ticket registered as a config registers an account's tickets.
func platformAppWithTicket(t *testing.T) (*App, *token.ManualClock) {
	t.Helper()
	app := platformApp(t)
	app.tokens.active = app
	mpTicket, err := app.tokens.manager.Register(token.Account{Name: "mp/" + string(token.JSAPITicket), Endpoint: token.JSAPITicket, Parent: app.handles["mp"]})
	if err != nil {
		t.Fatal(err)
	}
	mpTicket.Activate()
	app.tickets = map[string]*token.Handle{"mp/" + string(token.JSAPITicket): mpTicket}
	t.Cleanup(mpTicket.Release)
	return app, app.tokens.clock
}

// TestDirectAccountKeepsItsTicket: an authorizer that is also configured
// directly (mp is authA) gets the account's own ticket, fetched with the
// account's token: when the authorizer later withdraws from the platform,
// the account's ticket goes on working.
func TestDirectAccountKeepsItsTicket(t *testing.T) {
	app, clock := platformAppWithTicket(t)
	plat, mpSite := platformAppSite(app, "platform"), platformAppSite(app, "mp")
	none := caddyhttp.HandlerFunc(func(http.ResponseWriter, *http.Request) error { return nil })
	authTok := authorizerToken(t, plat, authA)
	wantErrcode(t, servePlatform(t, plat, httptest.NewRequest("GET", "/cgi-bin/ticket/getticket?type=jsapi&access_token="+authTok, nil), none), 0)
	clock.Advance(time.Minute)
	if err := app.handles["platform"].Unauthorize(context.Background(), authA, clock.Now()); err != nil {
		t.Fatal(err)
	}
	clock.Advance(3 * time.Hour)
	mpGW := answerField(t, servePlatform(t, mpSite, httptest.NewRequest("GET",
		"/cgi-bin/token?grant_type=client_credential&appid="+authA+"&secret="+platKey, nil), nil), "access_token")
	rec := servePlatform(t, mpSite, httptest.NewRequest("GET", "/cgi-bin/ticket/getticket?type=jsapi&access_token="+mpGW, nil), none)
	if !strings.Contains(rec.Body.String(), `"errcode":0`) {
		t.Errorf("mp's own jsapi ticket after authA left the platform: %d %s", rec.Code, rec.Body)
	}
}

// TestQueryAuthSentAgainKeepsTheDate: a code exchanged through
// api_query_auth and sent again later does not move the authorisation's
// date past a withdrawal issued in between.
func TestQueryAuthSentAgainKeepsTheDate(t *testing.T) {
	app := platformApp(t)
	clock, plat, comp := app.tokens.clock, platformAppSite(app, "platform"), app.handles["platform"]
	ctx := context.Background()
	queryAuth(t, plat, authB)
	clock.Advance(10 * time.Minute)
	withdrawn := clock.Now()
	clock.Advance(5 * time.Minute)
	queryAuth(t, plat, authB)
	clock.Advance(time.Minute)
	if err := comp.Unauthorize(ctx, authB, withdrawn); err != nil {
		t.Fatal(err)
	}
	if comp.Authorized(ctx, authB) {
		t.Errorf("the withdrawal issued at %v was ignored", withdrawn.Format(time.TimeOnly))
	}
}

// TestWithdrawnAuthorizerGetsNoTicket: an authorizer that withdrew gets no
// JS-SDK ticket on the platform's site, also when an account of its appid
// configured directly lends its ticket.
func TestWithdrawnAuthorizerGetsNoTicket(t *testing.T) {
	app, clock := platformAppWithTicket(t)
	auth, err := clientauth.New([]clientauth.Client{
		{Name: "both", Keys: []string{platKey}, Accounts: []string{"platform", "mp"}},
	}, []clientauth.Account{
		{Name: "platform", Kind: "component", AppID: platAppID},
		{Name: "mp", Kind: "official", AppID: authA},
	}, 24*time.Hour, clock.Now) // gateway tokens that outlive the withdrawal
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(auth.Close)
	app.auth = auth
	plat := platformAppSite(app, "platform")
	none := caddyhttp.HandlerFunc(func(http.ResponseWriter, *http.Request) error { return nil })
	toks := map[string]string{authA: authorizerToken(t, plat, authA), authB: authorizerToken(t, plat, authB)}
	for _, appid := range []string{authA, authB} {
		wantErrcode(t, servePlatform(t, plat, httptest.NewRequest("GET", "/cgi-bin/ticket/getticket?type=jsapi&access_token="+toks[appid], nil), none), 0)
	}
	clock.Advance(time.Minute)
	for _, appid := range []string{authA, authB} {
		if err := app.handles["platform"].Unauthorize(context.Background(), appid, clock.Now()); err != nil {
			t.Fatal(err)
		}
	}
	clock.Advance(3 * time.Hour) // past the tickets and authorizer tokens fetched before
	for _, appid := range []string{authA, authB} {
		rec := servePlatform(t, plat, httptest.NewRequest("GET", "/cgi-bin/ticket/getticket?type=jsapi&access_token="+toks[appid], nil), none)
		if strings.Contains(rec.Body.String(), `"ticket":"`) {
			t.Errorf("%s withdrew, yet the platform's client got a ticket: %s", appid, rec.Body)
		}
	}
}

// TestRetriedWithdrawalBeforePush: a withdrawal retried after the
// authorizer authorised again through the platform's page (api_query_auth
// through the gateway), before WeChat's push of that authorisation, does
// not revoke it: the exchange dates it.
func TestRetriedWithdrawalBeforePush(t *testing.T) {
	app := platformApp(t)
	clock, plat, comp := app.tokens.clock, platformAppSite(app, "platform"), app.handles["platform"]
	ctx := context.Background()
	clock.Advance(2 * time.Hour) // the setup's exchange of code-authB is forgotten
	withdrawn := clock.Now()
	if err := comp.Unauthorize(ctx, authB, withdrawn); err != nil {
		t.Fatal(err)
	}
	clock.Advance(10 * time.Minute)
	queryAuth(t, plat, authB)
	clock.Advance(time.Second)
	if err := comp.Unauthorize(ctx, authB, withdrawn); err != nil { // the same withdrawal, retried
		t.Fatal(err)
	}
	if !comp.Authorized(ctx, authB) {
		t.Errorf("a retried withdrawal issued at %v revoked the authorisation exchanged 10 min later", withdrawn.Format(time.TimeOnly))
	}
}

// queryAuth exchanges code-<appid> through the platform's api_query_auth.
func queryAuth(t *testing.T, plat *Handler, appid string) {
	t.Helper()
	rec := servePlatform(t, plat, httptest.NewRequest("POST", "/cgi-bin/component/api_query_auth?component_access_token="+componentToken(t, plat),
		strings.NewReader(`{"component_appid":"`+platAppID+`","authorization_code":"code-`+appid+`"}`)), nil)
	if !strings.Contains(rec.Body.String(), appid) {
		t.Fatalf("api_query_auth: %s", rec.Body)
	}
}

// TestComponentClearQuotaNeedsAdmin: a platform's quota resets
// (/cgi-bin/component/clear_quota and its /v2) reset quotas for the whole
// platform: a client without admin does not reach WeChat.
func TestComponentClearQuotaNeedsAdmin(t *testing.T) {
	app := platformApp(t) // client "both": no admin
	plat := platformAppSite(app, "platform")
	ctok := componentToken(t, plat)
	for _, path := range []string{"/cgi-bin/component/clear_quota", "/cgi-bin/component/clear_quota/v2"} {
		reached := false
		next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
			reached = true
			return nil
		})
		rec := servePlatform(t, plat, httptest.NewRequest("POST", path+"?component_access_token="+ctok,
			strings.NewReader(`{"component_appid":"`+platAppID+`","appsecret":"x"}`)), next)
		if reached {
			t.Errorf("%s by a client without admin reached upstream: %s", path, rec.Body)
		}
	}
}

// TestPlatformGrantWithSlash: a client granted exactly the platform's
// token endpoints gets its authorizer's token when its SDK adds a final
// slash, which classify lets through on token endpoints.
func TestPlatformGrantWithSlash(t *testing.T) {
	app := platformApp(t)
	auth, err := clientauth.New([]clientauth.Client{{Name: "limited", Keys: []string{platKey}, Accounts: []string{"platform"},
		Paths: []string{"/cgi-bin/component/api_component_token", "/cgi-bin/component/api_authorizer_token"}}},
		[]clientauth.Account{{Name: "platform", Kind: "component", AppID: platAppID}}, 0, app.tokens.clock.Now)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(auth.Close)
	app.auth = auth
	plat := platformAppSite(app, "platform")
	rec := servePlatform(t, plat, httptest.NewRequest("POST", "/cgi-bin/component/api_authorizer_token/?component_access_token="+componentToken(t, plat),
		strings.NewReader(`{"component_appid":"`+platAppID+`","authorizer_appid":"`+authA+`"}`)), nil)
	if answerField(t, rec, "authorizer_access_token") == "" {
		t.Errorf("api_authorizer_token/ for a client granted api_authorizer_token: %s", rec.Body)
	}
}

// TestHeldAnswerIgnoresInformational: an informational answer (103 Early
// Hints) before the answer is not the answer's status.
func TestHeldAnswerIgnoresInformational(t *testing.T) {
	a := &heldAnswer{header: make(http.Header)}
	a.WriteHeader(http.StatusEarlyHints)
	a.WriteHeader(http.StatusCreated)
	if a.status() != http.StatusCreated {
		t.Errorf("status %d, want 201", a.status())
	}
}
