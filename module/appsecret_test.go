package caddywechat

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/wxgate/caddy-wechat/module/internal/clientauth"
)

// adminKey belongs to a client granted admin (clear_quota/v2).
const adminKey = "admin-key-0123456789abcde"

func withAdminClient() gatewayOption {
	return func(c *gatewayConfig) {
		c.clients = append(append([]clientauth.Client(nil), testClients...),
			clientauth.Client{Name: "ops", Keys: []string{adminKey}, Accounts: []string{"mp"}, Admin: true})
	}
}

func login(appid, secret, code string) string {
	return "/sns/jscode2session?appid=" + url.QueryEscape(appid) + "&secret=" + url.QueryEscape(secret) +
		"&js_code=" + code + "&grant_type=authorization_code"
}

// TestLoginWithClientKey: a mini program's login call carries the client
// key as secret; WeChat receives the real secret and answers the session.
func TestLoginWithClientKey(t *testing.T) {
	g := newGateway(t)
	site := g.clientsSite()
	rec := g.get(site, login(mpAppID, shopKey, "alice-1"))
	if a := decodeAnswer(t, rec); a.Errcode != 0 || !strings.Contains(rec.Body.String(), `"session_key"`) {
		t.Fatalf("login through the gateway: %s", rec.Body.String())
	}
	seen := g.upstreamRequests()
	if len(seen) != 1 {
		t.Fatalf("%d upstream requests, want 1", len(seen))
	}
	if got := seen[0].query(t, "secret"); len(got) != 1 || got[0] != mpSecret {
		t.Errorf("upstream secret %q, want the account's real secret", got)
	}
	if strings.Contains(seen[0].RequestURI, mpSecret) || strings.Contains(seen[0].RequestURI, shopKey) {
		t.Errorf("upstream RequestURI (what Caddy's debug log shows) holds a credential: %s", seen[0].RequestURI)
	}
	if n := g.sim.Counters().Tokens[mpAppID].Sessions; n != 1 {
		t.Errorf("simulator sessions %d, want 1", n)
	}
	// Web OAuth works the same way.
	rec = g.get(site, "/sns/oauth2/access_token?appid="+mpAppID+"&secret="+shopKey+"&code=c1&grant_type=authorization_code")
	if a := decodeAnswer(t, rec); a.Errcode != 0 || a.AccessToken == "" {
		t.Fatalf("oauth2/access_token through the gateway: %s", rec.Body.String())
	}
	if n := g.sim.Counters().Tokens[mpAppID].UserTokens; n != 1 {
		t.Errorf("simulator user tokens %d, want 1", n)
	}
}

func TestSecretCallRefusals(t *testing.T) {
	g := newGateway(t, withAdminClient())
	site := g.clientsSite()
	for _, c := range []struct {
		name, target string
		code         int
	}{
		{"wrong key", login(mpAppID, "not-a-key-0123456789abc", "a-1"), 40001},
		{"missing key", "/sns/jscode2session?appid=" + mpAppID + "&js_code=a-1&grant_type=authorization_code", 41004},
		{"missing appid", "/sns/jscode2session?secret=" + shopKey + "&js_code=a-1&grant_type=authorization_code", 41002},
		{"the real secret is no key", login(mpAppID, mpSecret, "a-1"), 40001},
		{"a client without the account", login(mp2AppID, menuKey, "a-1"), 40013},
		{"a path outside the client's paths", login(mpAppID, menuKey, "a-1"), 48001},
		{"an account of another kind", login(corpID, shopKey, "a-1"), 40013},
		{"two secrets", login(mpAppID, shopKey, "a-1") + "&secret=" + shopKey, 40097},
		{"clear_quota/v2 without admin", "/cgi-bin/clear_quota/v2?appid=" + mpAppID + "&appsecret=" + shopKey, 48001},
	} {
		t.Run(c.name, func(t *testing.T) {
			g.resetSeen()
			method := "GET"
			if strings.HasPrefix(c.target, "/cgi-bin/") {
				method = "POST"
			}
			var rec = g.get(site, c.target)
			if method == "POST" {
				rec = g.post(site, c.target, "", nil)
			}
			wantErrcode(t, rec, c.code)
			g.wantNothingUpstream(t)
		})
	}
}

// TestClearQuotaV2 needs admin, takes the key as a form field too, and
// sends WeChat the real secret.
func TestClearQuotaV2(t *testing.T) {
	g := newGateway(t, withAdminClient())
	site := g.clientsSite()
	rec := g.post(site, "/cgi-bin/clear_quota/v2", "application/x-www-form-urlencoded",
		[]byte("appid="+mpAppID+"&appsecret="+url.QueryEscape(adminKey)))
	wantErrcode(t, rec, 0)
	seen := g.upstreamRequests()
	if len(seen) != 1 {
		t.Fatalf("%d upstream requests", len(seen))
	}
	if got := seen[0].query(t, "appsecret"); len(got) != 1 || got[0] != mpSecret {
		t.Errorf("upstream appsecret %q, want the real secret", got)
	}
	if strings.Contains(string(seen[0].Body), adminKey) || strings.Contains(string(seen[0].Body), mpSecret) {
		t.Errorf("upstream body holds a credential: %q", seen[0].Body)
	}
}

// TestClearQuotaV2JSON: an SDK that posts clear_quota/v2 as a JSON object
// gets the same: the key checked, the real secret in the query, where
// WeChat first documented it, and in the body, where it later did; a
// malformed or mistyped body is refused before anything goes upstream.
func TestClearQuotaV2JSON(t *testing.T) {
	g := newGateway(t, withAdminClient())
	site := g.clientsSite()
	for _, ct := range []string{"application/json", "application/json; charset=utf-8", "text/plain", ""} {
		g.resetSeen()
		rec := g.post(site, "/cgi-bin/clear_quota/v2", ct, []byte(` {"appid":"`+mpAppID+`","appsecret":"`+adminKey+`"}`))
		wantErrcode(t, rec, 0)
		seen := g.upstreamRequests()
		if len(seen) != 1 {
			t.Fatalf("%q: %d upstream requests", ct, len(seen))
		}
		if got := seen[0].query(t, "appsecret"); len(got) != 1 || got[0] != mpSecret {
			t.Errorf("%q: upstream appsecret %q, want the real secret", ct, got)
		}
		if body, want := string(seen[0].Body), `{"appsecret":"`+mpSecret+`","appid":"`+mpAppID+`"}`; body != want { // the secret first
			t.Errorf("%q: upstream body %q, want %q", ct, body, want)
		}
	}
	for _, c := range []struct {
		name, body string
		code       int
	}{
		{"malformed", `{"appid":"` + mpAppID + `",`, 47001},
		{"a number for a secret", `{"appid":"` + mpAppID + `","appsecret":12}`, 47001},
		{"a key without admin", `{"appid":"` + mpAppID + `","appsecret":"` + shopKey + `"}`, 48001},
		{"a key in the query and another in the body", `{"appid":"` + mpAppID + `","appsecret":"` + shopKey + `"}`, 40097},
	} {
		g.resetSeen()
		target := "/cgi-bin/clear_quota/v2"
		if c.code == 40097 {
			target += "?appsecret=" + adminKey
		}
		wantErrcode(t, g.post(site, target, "application/json", []byte(c.body)), c.code)
		g.wantNothingUpstream(t)
	}
}

// TestSecretCallDropsOtherCredentials: a client key also sent under the
// other secret name, or a component token, does not reach WeChat.
func TestSecretCallDropsOtherCredentials(t *testing.T) {
	g := newGateway(t)
	site := g.clientsSite()
	wantErrcode(t, g.get(site, login(mpAppID, shopKey, "alice-1")+"&appsecret="+shopKey+"&component_access_token=x"), 0)
	seen := g.upstreamRequests()
	if len(seen) != 1 {
		t.Fatalf("%d upstream requests", len(seen))
	}
	for _, p := range []string{"appsecret", "component_access_token"} {
		if got := seen[0].query(t, p); len(got) != 0 {
			t.Errorf("upstream %s %q", p, got)
		}
	}
}

// TestSecretCallBodyKeepsNoKey: a client key under a letter-case variant
// of a credential's name does not go upstream in a JSON or form body; a
// JSON body on the GET-only login is not read, and refused for its
// missing appid before anything goes upstream.
func TestSecretCallBodyKeepsNoKey(t *testing.T) {
	g := newGateway(t, withAdminClient())
	site := g.clientsSite()
	for _, c := range []struct{ ct, body string }{
		{"application/json", `{"appid":"` + mpAppID + `","appsecret":"` + adminKey + `","AppSecret":"` + adminKey + `","Secret":"x` + adminKey + `"}`},
		{"application/x-www-form-urlencoded", "appid=" + mpAppID + "&appsecret=" + adminKey + "&AppSecret=" + adminKey + "&APPID=" + adminKey},
	} {
		g.resetSeen()
		wantErrcode(t, g.post(site, "/cgi-bin/clear_quota/v2", c.ct, []byte(c.body)), 0)
		seen := g.upstreamRequests()
		if len(seen) != 1 {
			t.Fatalf("%s: %d upstream requests", c.ct, len(seen))
		}
		if strings.Contains(string(seen[0].Body), adminKey) || strings.Contains(seen[0].RequestURI, adminKey) {
			t.Errorf("%s: the client key went upstream: %s %q", c.ct, seen[0].RequestURI, seen[0].Body)
		}
	}
	g.resetSeen()
	wantErrcode(t, g.post(site, "/sns/jscode2session", "application/json",
		[]byte(`{"appid":"`+mpAppID+`","secret":"`+shopKey+`","js_code":"alice-1","grant_type":"authorization_code"}`)), 41002)
	g.wantNothingUpstream(t)
}

// TestTrustedSecretCall: a trusted site puts the secret in whatever the
// caller sent, and refuses another account's appid.
func TestTrustedSecretCall(t *testing.T) {
	g := newGateway(t)
	site := g.trustedSite()
	rec := g.get(site, "/sns/jscode2session?appid="+mpAppID+"&secret=anything&js_code=bob-1&grant_type=authorization_code")
	if a := decodeAnswer(t, rec); a.Errcode != 0 {
		t.Fatalf("trusted login: %s", rec.Body.String())
	}
	if got := g.upstreamRequests()[0].query(t, "secret"); got[0] != mpSecret {
		t.Errorf("upstream secret %q", got)
	}
	g.resetSeen()
	rec = g.get(site, "/sns/jscode2session?js_code=bob-2&grant_type=authorization_code")
	if a := decodeAnswer(t, rec); a.Errcode != 0 {
		t.Fatalf("trusted login without appid or secret: %s", rec.Body.String())
	}
	g.resetSeen()
	wantErrcode(t, g.get(site, login(mp2AppID, "x", "bob-3")), 40013)
	g.wantNothingUpstream(t)
}

// TestUserCredentialCalls: /sns/ calls that carry only the user's token
// pass through unchanged, minus any app credential, which in clients mode
// must be a client's key.
func TestUserCredentialCalls(t *testing.T) {
	g := newGateway(t)
	site := g.clientsSite()
	g.get(site, "/sns/auth?access_token=USERTOKEN&openid=o1")
	seen := g.upstreamRequests()
	if len(seen) != 1 || seen[0].RawQuery != "access_token=USERTOKEN&openid=o1" {
		t.Fatalf("a user-credential call was changed: %+v", seen)
	}
	g.resetSeen()
	g.get(site, "/sns/auth?access_token=USERTOKEN&openid=o1&appid="+mpAppID+"&secret="+shopKey+"&component_access_token=x")
	seen = g.upstreamRequests()
	if len(seen) != 1 || strings.Contains(seen[0].RawQuery, "secret") || strings.Contains(seen[0].RawQuery, "component_access_token") ||
		strings.Contains(seen[0].RequestURI, shopKey) {
		t.Fatalf("app credentials reached upstream: %+v", seen)
	}
	g.resetSeen()
	wantErrcode(t, g.get(site, "/sns/auth?access_token=U&openid=o1&appid="+mpAppID+"&secret=wrong-key-0123456789abc"), 40001)
	g.wantNothingUpstream(t)
	// Trusted: stripped, no check.
	g.resetSeen()
	g.get(g.trustedSite(), "/sns/userinfo?access_token=U&openid=o1&secret=whatever")
	if seen := g.upstreamRequests(); len(seen) != 1 || strings.Contains(seen[0].RawQuery, "secret") {
		t.Fatalf("trusted: %+v", seen)
	}
}

// TestRangeNotForwardedWithTheSecret: a call the gateway puts the AppSecret
// in goes upstream without Range, as every API call does, so that no echo
// is cut where the client chooses.
func TestRangeNotForwardedWithTheSecret(t *testing.T) {
	g := newGateway(t)
	g.setUpstream(jsonAnswer(`{"openid":"o","session_key":"k"}`))
	site := g.clientsSite()
	r := httptest.NewRequest(http.MethodGet, "/sns/jscode2session?appid="+mpAppID+"&secret="+shopKey+"&js_code=c&grant_type=authorization_code", nil)
	r.Header.Set("Range", "bytes=0-9")
	r.Header.Set("If-Range", "x")
	g.serve(site, r)
	seen := g.upstreamRequests()
	if len(seen) != 1 || !strings.Contains(seen[0].RawQuery, mpSecret) {
		t.Fatalf("upstream %+v, want one call with the secret", seen)
	}
	if v := seen[0].Header.Get("Range") + seen[0].Header.Get("If-Range"); v != "" {
		t.Errorf("Range/If-Range %q reached WeChat on a call that carries the AppSecret", v)
	}
}
