package caddywechat

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/wxgate/caddy-wechat/module/internal/clientauth"
	"github.com/wxgate/caddy-wechat/module/internal/token"
	"github.com/wxgate/caddy-wechat/module/internal/wxapi"
)

// Stage 3: the token endpoints, answered by the gateway itself.

func TestTokenEndpointIssuesGatewayTokens(t *testing.T) {
	for _, c := range []struct {
		name   string
		method string
		target string
		body   string
		wecom  bool
	}{
		{"token", http.MethodGet, "/cgi-bin/token?grant_type=client_credential&appid=" + mpAppID + "&secret=" + shopKey, "", false},
		{"token with trailing slash", http.MethodGet, "/cgi-bin/token/?grant_type=client_credential&appid=" + mpAppID + "&secret=" + shopKey, "", false},
		{"token, encoded key", http.MethodGet, "/cgi-bin/token?grant_type=client_credential&appid=" + mpAppID + "&secret=shop-key-0123456789abcde%66", "", false},
		{"stable_token", http.MethodPost, "/cgi-bin/stable_token", `{"grant_type":"client_credential","appid":"` + mpAppID + `","secret":"` + shopKey + `","force_refresh":false}`, false},
		{"stable_token force_refresh", http.MethodPost, "/cgi-bin/stable_token", `{"grant_type":"client_credential","appid":"` + mpAppID + `","secret":"` + shopKey + `","force_refresh":true}`, false},
		{"gettoken", http.MethodGet, "/cgi-bin/gettoken?corpid=" + corpID + "&corpsecret=" + shopKey, "", true},
	} {
		t.Run(c.name, func(t *testing.T) {
			g := newGateway(t)
			h := g.clientsSite()
			r := httptest.NewRequest(c.method, c.target, strings.NewReader(c.body))
			rec := g.serve(h, r)
			a := decodeAnswer(t, rec)
			if !strings.HasPrefix(a.AccessToken, "gw2.") || a.ExpiresIn != int(clientauth.DefaultTTL/time.Second) || a.Errcode != 0 {
				t.Fatalf("answer %q, want a gateway token for 7200 s", rec.Body.String())
			}
			if got := strings.Contains(rec.Body.String(), `"errcode":0`); got != c.wecom {
				t.Errorf("answer %q: errcode present %v, want %v (only gettoken answers errcode 0)", rec.Body.String(), got, c.wecom)
			}
			if rec.Header().Get("Cache-Control") != "no-store" || rec.Header().Get("Content-Type") != wxapi.ContentTypeJSON {
				t.Errorf("headers %v", rec.Header())
			}
			g.wantNothingUpstream(t)
			// The token verifies, for the account asked.
			claims, refusal := g.app.clients().Verify(a.AccessToken)
			if refusal != nil || claims.Client != "shop" {
				t.Fatalf("Verify: %v %+v", refusal, claims)
			}
			wantAccount := map[bool]string{false: "mp", true: "corp"}[c.wecom]
			if claims.Account != wantAccount {
				t.Errorf("token for account %q, want %q", claims.Account, wantAccount)
			}
		})
	}
}

func TestTokenEndpointRefusals(t *testing.T) {
	stable := func(body string) *http.Request {
		return httptest.NewRequest(http.MethodPost, "/cgi-bin/stable_token", strings.NewReader(body))
	}
	get := func(target string) *http.Request { return httptest.NewRequest(http.MethodGet, target, nil) }
	const tokenPath = "/cgi-bin/token?grant_type=client_credential"
	for _, c := range []struct {
		name string
		req  *http.Request
		want int
	}{
		{"wrong key", get(tokenPath + "&appid=" + mpAppID + "&secret=wrong-key-0123456789abcdef"), wxapi.CodeInvalidCredential},
		{"the real secret is no key", get(tokenPath + "&appid=" + mpAppID + "&secret=" + mpSecret), wxapi.CodeInvalidCredential},
		{"missing key", get(tokenPath + "&appid=" + mpAppID), wxapi.CodeInvalidCredential},
		{"empty key", get(tokenPath + "&appid=" + mpAppID + "&secret="), wxapi.CodeInvalidCredential},
		{"missing appid", get(tokenPath + "&secret=" + shopKey), wxapi.CodeInvalidAppID},
		{"unknown appid", get(tokenPath + "&appid=wx9999999999999999&secret=" + shopKey), wxapi.CodeInvalidAppID},
		{"account the client may not use", get(tokenPath + "&appid=" + mp2AppID + "&secret=" + menuKey), wxapi.CodeInvalidAppID},
		{"official appid on gettoken", get("/cgi-bin/gettoken?corpid=" + mpAppID + "&corpsecret=" + shopKey), wxapi.CodeInvalidAppID},
		{"corpid on /cgi-bin/token", get(tokenPath + "&appid=" + corpID + "&secret=" + shopKey), wxapi.CodeInvalidAppID},
		{"missing grant_type", get("/cgi-bin/token?appid=" + mpAppID + "&secret=" + shopKey), wxapi.CodeInvalidGrantType},
		{"wrong grant_type", get("/cgi-bin/token?grant_type=password&appid=" + mpAppID + "&secret=" + shopKey), wxapi.CodeInvalidGrantType},
		{"appid twice", get(tokenPath + "&appid=" + mpAppID + "&appid=" + mp2AppID + "&secret=" + shopKey), wxapi.CodeInvalidGrantType},
		{"secret twice", get(tokenPath + "&appid=" + mpAppID + "&secret=" + shopKey + "&s%65cret=x"), wxapi.CodeInvalidGrantType},
		{"corpsecret twice", get("/cgi-bin/gettoken?corpid=" + corpID + "&corpsecret=" + shopKey + "&corpsecret=" + shopKey), wxapi.CodeInvalidGrantType},
		{"stable_token via GET", get("/cgi-bin/stable_token?grant_type=client_credential&appid=" + mpAppID + "&secret=" + shopKey), wxapi.CodeRequirePOST},
		{"stable_token bad JSON", stable(`{"grant_type":"client_credential","appid":`), wxapi.CodeDataFormat},
		{"stable_token form body", stable("grant_type=client_credential&appid=" + mpAppID + "&secret=" + shopKey), wxapi.CodeDataFormat},
		{"stable_token empty body", stable(""), wxapi.CodeDataFormat},
		{"stable_token wrong grant_type", stable(`{"grant_type":"x","appid":"` + mpAppID + `","secret":"` + shopKey + `"}`), wxapi.CodeInvalidGrantType},
		{"stable_token wrong key", stable(`{"grant_type":"client_credential","appid":"` + mpAppID + `","secret":"wrong-key-0123456789abcdef"}`), wxapi.CodeInvalidCredential},
		{"stable_token missing appid", stable(`{"grant_type":"client_credential","secret":"` + shopKey + `"}`), wxapi.CodeInvalidAppID},
	} {
		t.Run(c.name, func(t *testing.T) {
			g := newGateway(t)
			rec := g.serve(g.clientsSite(), c.req)
			a := wantErrcode(t, rec, c.want)
			if a.AccessToken != "" {
				t.Errorf("a refusal carries a token: %q", rec.Body.String())
			}
			if strings.Contains(a.Errmsg, shopKey) || strings.Contains(a.Errmsg, mpSecret) {
				t.Errorf("errmsg %q echoes a key", a.Errmsg)
			}
			g.wantNothingUpstream(t)
		})
	}
}

func TestTokenEndpointTrustedPlaceholder(t *testing.T) {
	g := newGateway(t)
	h := g.trustedSite() // account mp
	for _, c := range []struct {
		name string
		req  *http.Request
	}{
		{"token, any secret", httptest.NewRequest(http.MethodGet, "/cgi-bin/token?grant_type=client_credential&appid="+mpAppID+"&secret=anything", nil)},
		{"token, no secret", httptest.NewRequest(http.MethodGet, "/cgi-bin/token?grant_type=client_credential&appid="+mpAppID, nil)},
		{"stable_token", httptest.NewRequest(http.MethodPost, "/cgi-bin/stable_token", strings.NewReader(`{"grant_type":"client_credential","appid":"`+mpAppID+`","secret":"x"}`))},
	} {
		t.Run(c.name, func(t *testing.T) {
			a := decodeAnswer(t, g.serve(h, c.req))
			if a.AccessToken != trustedToken || a.ExpiresIn != 7200 || a.Errcode != 0 {
				t.Errorf("answer %+v, want the placeholder token for 7200 s", a)
			}
		})
	}
	for _, c := range []struct {
		name string
		req  *http.Request
		want int
	}{
		{"another appid", httptest.NewRequest(http.MethodGet, "/cgi-bin/token?grant_type=client_credential&appid="+mp2AppID+"&secret=x", nil), wxapi.CodeInvalidAppID},
		{"no appid", httptest.NewRequest(http.MethodGet, "/cgi-bin/token?grant_type=client_credential&secret=x", nil), wxapi.CodeInvalidAppID},
		{"gettoken on an official site", httptest.NewRequest(http.MethodGet, "/cgi-bin/gettoken?corpid="+mpAppID+"&corpsecret=x", nil), wxapi.CodeInvalidAppID},
		{"stable_token via GET", httptest.NewRequest(http.MethodGet, "/cgi-bin/stable_token", nil), wxapi.CodeRequirePOST},
		{"stable_token bad JSON", httptest.NewRequest(http.MethodPost, "/cgi-bin/stable_token", strings.NewReader("{")), wxapi.CodeDataFormat},
	} {
		t.Run(c.name, func(t *testing.T) {
			wantErrcode(t, g.serve(h, c.req), c.want)
		})
	}
	g.wantNothingUpstream(t)

	// A trusted WeCom site answers gettoken, WeCom style.
	corp := g.site(Handler{Account: "corp", Trusted: true})
	rec := g.get(corp, "/cgi-bin/gettoken?corpid="+corpID+"&corpsecret=x")
	if want := `{"errcode":0,"errmsg":"ok","access_token":"` + trustedToken + `","expires_in":7200}`; rec.Body.String() != want {
		t.Errorf("gettoken answered %q, want %q", rec.Body.String(), want)
	}
	g.wantNothingUpstream(t)
}

func TestTokenEndpointSiteAccountRefusesOtherAppID(t *testing.T) {
	g := newGateway(t)
	site := g.site(Handler{Account: "mp"})
	// shop may use mp2, but this site serves mp only.
	a := wantErrcode(t, g.get(site, "/cgi-bin/token?grant_type=client_credential&appid="+mp2AppID+"&secret="+shopKey), wxapi.CodeInvalidAppID)
	if !strings.Contains(a.Errmsg, mpAppID) {
		t.Errorf("errmsg %q does not name the site's account", a.Errmsg)
	}
	wantErrcode(t, g.get(site, "/cgi-bin/gettoken?corpid="+corpID+"&corpsecret="+shopKey), wxapi.CodeInvalidAppID)
	if tok := g.gatewayToken(site, "official", mpAppID, shopKey); tok == "" {
		t.Error("no token for the site's own account")
	}
	g.wantNothingUpstream(t)
}

// The raw-token endpoint.

func TestRawTokenEndpoint(t *testing.T) {
	g := newGateway(t)
	open := g.clientsSite()
	raw := g.gatewayToken(open, "official", mpAppID, rawKey)
	raw2 := g.gatewayToken(open, "official", mp2AppID, rawKey)
	shop := g.gatewayToken(open, "official", mpAppID, shopKey)

	t.Run("trusted site", func(t *testing.T) {
		wantErrcode(t, g.get(g.trustedSite(), RawTokenPath+"?access_token="+raw), wxapi.CodeAPIUnauthorized)
		wantErrcode(t, g.get(g.trustedSite(), RawTokenPath), wxapi.CodeAPIUnauthorized)
	})
	t.Run("client without raw_token", func(t *testing.T) {
		a := wantErrcode(t, g.get(open, RawTokenPath+"?access_token="+shop), wxapi.CodeAPIUnauthorized)
		if !strings.Contains(a.Errmsg, "raw_token") {
			t.Errorf("errmsg %q does not say what is missing", a.Errmsg)
		}
	})
	t.Run("no token", func(t *testing.T) {
		wantErrcode(t, g.get(open, RawTokenPath), wxapi.CodeTokenMissing)
	})
	t.Run("bad token", func(t *testing.T) {
		wantErrcode(t, g.get(open, RawTokenPath+"?access_token=gw2.x.y"), wxapi.CodeInvalidCredential)
	})
	t.Run("two tokens", func(t *testing.T) {
		wantErrcode(t, g.get(open, RawTokenPath+"?access_token="+raw+"&access_token="+raw), wxapi.CodeInvalidCredential)
	})
	t.Run("token for another account than the site's", func(t *testing.T) {
		wantErrcode(t, g.get(g.site(Handler{Account: "mp"}), RawTokenPath+"?access_token="+raw2), wxapi.CodeInvalidAppID)
	})
	g.wantNothingUpstream(t)

	t.Run("client with raw_token", func(t *testing.T) {
		rec := g.get(open, RawTokenPath+"?access_token="+raw)
		a := decodeAnswer(t, rec)
		if a.Errcode != 0 || a.AccessToken == "" || a.AccessToken != g.fetches.last() {
			t.Fatalf("answer %q, want the real token %q", rec.Body.String(), g.fetches.last())
		}
		if a.ExpiresIn != 7200 {
			t.Errorf("expires_in %d, want 7200 (just fetched, frozen clock)", a.ExpiresIn)
		}
		if rec.Header().Get("Cache-Control") != "no-store" {
			t.Errorf("Cache-Control %q, want no-store", rec.Header().Get("Cache-Control"))
		}
		// The real token works at WeChat.
		c := g.sim.Counters()
		if c.Tokens[mpAppID].StableToken != 1 {
			t.Errorf("simulator issued %d stable tokens, want 1", c.Tokens[mpAppID].StableToken)
		}
		sim := httptest.NewRecorder()
		g.sim.ServeHTTP(sim, httptest.NewRequest(http.MethodGet, "/cgi-bin/menu/get?access_token="+a.AccessToken, nil))
		wantErrcode(t, sim, wxapi.CodeMenuNotExist)

		// Later, the same token with less time left, and no new fetch.
		g.advance(10 * time.Minute)
		a2 := decodeAnswer(t, g.get(open, RawTokenPath+"?access_token="+raw))
		if a2.AccessToken != a.AccessToken || a2.ExpiresIn != 6600 {
			t.Errorf("10 min later: %+v, want the same token with expires_in 6600", a2)
		}
		// The other account's token, from a site serving every account.
		a3 := decodeAnswer(t, g.get(open, RawTokenPath+"?access_token="+raw2))
		if a3.AccessToken == "" || a3.AccessToken == a.AccessToken || a3.AccessToken != g.fetches.last() {
			t.Errorf("mp2: %+v, want mp2's own token", a3)
		}
		if n := g.fetches.calls.Load(); n != 2 {
			t.Errorf("%d token fetches, want 2 (one per account)", n)
		}
		if n := len(g.upstreamRequests()); n != 0 {
			t.Errorf("%d requests upstream, want 0", n)
		}
	})
}

// TestClientKeyNotLogged: an SDK set up with appid and key swapped sends
// the client key as the appid; the refusals' log lines do not hold it.
func TestClientKeyNotLogged(t *testing.T) {
	g := newGateway(t)
	site := g.clientsSite()
	core, logs := observer.New(zap.DebugLevel)
	site.logger = zap.New(core)
	g.get(site, "/cgi-bin/token?grant_type=client_credential&appid="+shopKey+"&secret="+mpAppID)
	g.get(site, "/cgi-bin/token?grant_type=client_credential&appid="+shopKey+"&secret="+shopKey)
	g.get(site, "/sns/jscode2session?appid="+shopKey+"&secret="+mpAppID+"&js_code=c&grant_type=authorization_code")
	g.get(site, "/sns/jscode2session?appid="+shopKey+"&secret="+shopKey+"&js_code=c&grant_type=authorization_code")
	if logs.Len() == 0 {
		t.Fatal("no refusal logged")
	}
	for _, e := range logs.All() {
		for k, v := range e.ContextMap() {
			if s, ok := v.(string); ok && strings.Contains(s, shopKey) {
				t.Errorf("log %q field %s holds the client key: %q", e.Message, k, s)
			}
		}
	}
	if got := loggedAppID(mpAppID); got != mpAppID {
		t.Errorf("loggedAppID(%s) = %q, want it shown", mpAppID, got)
	}
}

// TestFixedSiteIssuesOnlyItsAccount: two WeCom apps of one corp share a
// corpid. On the site of one, a client of the other (its key) gets 40013
// from gettoken, not a token for its own app that every call on the site
// would refuse with 40013, which SDKs do not recover from.
func TestFixedSiteIssuesOnlyItsAccount(t *testing.T) {
	const (
		corp2Secret = "wecom-app-secret-two-0123456789abcdef"
		agentAKey   = "agent-a-key-0123456789abcdef"
		agentBKey   = "agent-b-key-0123456789abcdef"
	)
	g := newGateway(t, withScriptedTokens())
	g.app.Accounts["corp2"] = &Account{Kind: "wecom", AppID: corpID, Secret: "{env.CORP2}"}
	h, err := g.app.tokens.manager.Register(token.Account{Name: "corp2", Kind: token.WeCom, AppID: corpID, Secret: corp2Secret, BaseURL: g.simURL})
	if err != nil {
		t.Fatal(err)
	}
	h.Activate()
	t.Cleanup(h.Release)
	g.app.handles["corp2"] = h
	g.app.auth = newAuthority(t, g.app, []clientauth.Client{
		{Name: "agentA", Keys: []string{agentAKey}, Accounts: []string{"corp"}},
		{Name: "agentB", Keys: []string{agentBKey}, Accounts: []string{"corp2"}},
	})
	siteA := g.site(Handler{Account: "corp"})
	wantErrcode(t, g.get(siteA, "/cgi-bin/gettoken?corpid="+corpID+"&corpsecret="+agentBKey), wxapi.CodeInvalidAppID)
	if a := wantErrcode(t, g.get(siteA, "/cgi-bin/gettoken?corpid="+corpID+"&corpsecret="+agentAKey), 0); a.AccessToken == "" {
		t.Fatal("no token for the site's own client")
	}
	// A site of both (kind wecom) tells them apart by the key.
	both := g.site(Handler{Kind: "wecom"})
	for key, want := range map[string]string{agentAKey: "corp", agentBKey: "corp2"} {
		a := wantErrcode(t, g.get(both, "/cgi-bin/gettoken?corpid="+corpID+"&corpsecret="+key), 0)
		if cl, refusal := g.app.clients().Verify(a.AccessToken); refusal != nil || cl.Account != want {
			t.Errorf("key of %s: a token for %+v (%v)", want, cl, refusal)
		}
	}
}
