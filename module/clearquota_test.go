package caddywechat

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/wxgate/caddy-wechat/module/internal/clientauth"
)

const (
	platSecret   = "component-secret-0123456789abcdef" // platformApp's
	platAdminKey = "plat-admin-key-0123456789abcdef"
)

// withPlatformAdmin adds client ops, granted the platform and admin.
func withPlatformAdmin(t *testing.T, app *App) {
	t.Helper()
	auth, err := clientauth.New([]clientauth.Client{
		{Name: "both", Keys: []string{platKey}, Accounts: []string{"platform", "mp"}},
		{Name: "ops", Keys: []string{platAdminKey}, Accounts: []string{"platform"}, Admin: true},
	}, []clientauth.Account{
		{Name: "platform", Kind: "component", AppID: platAppID},
		{Name: "mp", Kind: "official", AppID: authA},
	}, 0, app.tokens.clock.Now)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(auth.Close)
	app.auth = auth
}

// upstreamCall is what a next handler received.
type upstreamCall struct {
	query, contentType string
	body               map[string]any
}

// echoBody answers with the body it got, as WeChat's errors sometimes echo
// a request, and keeps what it received in got.
func echoBody(t *testing.T, got *[]upstreamCall) caddyhttp.Handler {
	return caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		raw, _ := io.ReadAll(r.Body)
		c := upstreamCall{query: r.URL.RawQuery, contentType: r.Header.Get("Content-Type")}
		if err := json.Unmarshal(raw, &c.body); err != nil {
			t.Errorf("upstream body %q: %v", raw, err)
		}
		*got = append(*got, c)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"errcode":0,"errmsg":"ok","echo":` + string(raw) + `}`))
		return nil
	})
}

// TestComponentClearQuotaV2: an admin client resets the platform's quotas
// with its key where the SDK puts the platform's AppSecret, or with its
// gateway token; WeChat gets the real secret in the body and no token (the
// call is the way out when no token can be had), and the answer never
// shows the secret.
func TestComponentClearQuotaV2(t *testing.T) {
	app := platformApp(t)
	withPlatformAdmin(t, app)
	plat := platformAppSite(app, "platform")
	ctok := componentTokenWithKey(t, plat, platAdminKey)
	var got []upstreamCall
	for _, c := range []struct{ name, target, body string }{
		{"key as appsecret", componentClearQuotaV2Path, `{"component_appid":"` + platAppID + `","appsecret":"` + platAdminKey + `"}`},
		{"for an authorizer", componentClearQuotaV2Path, `{"appid":"` + authA + `","component_appid":"` + platAppID + `","appsecret":"` + platAdminKey + `"}`},
		{"gateway token, no appsecret", componentClearQuotaV2Path + "?component_access_token=" + ctok, `{"component_appid":"` + platAppID + `"}`},
		{"no component_appid", componentClearQuotaV2Path, `{"appsecret":"` + platAdminKey + `"}`},
	} {
		got = nil
		rec := servePlatform(t, plat, httptest.NewRequest("POST", c.target, strings.NewReader(c.body)), echoBody(t, &got))
		if len(got) != 1 {
			t.Fatalf("%s: %d upstream calls: %s", c.name, len(got), rec.Body)
		}
		up := got[0]
		if up.body["appsecret"] != platSecret || up.body["component_appid"] != platAppID || up.query != "" || up.contentType != "application/json" {
			t.Errorf("%s: upstream got query %q, %s body %v", c.name, up.query, up.contentType, up.body)
		}
		if strings.Contains(c.body, authA) && up.body["appid"] != authA {
			t.Errorf("%s: the authorizer's appid was lost: %v", c.name, up.body)
		}
		if strings.Contains(rec.Body.String(), platSecret) || strings.Contains(rec.Body.String(), platAdminKey) || !strings.Contains(rec.Body.String(), `"errcode":0`) {
			t.Errorf("%s: answer %s", c.name, rec.Body)
		}
	}

	for _, c := range []struct {
		name, method, target, body string
		code                       int
	}{
		{"GET", "GET", componentClearQuotaV2Path, "", 43002},
		{"a client without admin", "POST", componentClearQuotaV2Path, `{"component_appid":"` + platAppID + `","appsecret":"` + platKey + `"}`, 48001},
		{"its gateway token", "POST", componentClearQuotaV2Path + "?component_access_token=" + componentToken(t, plat), `{"component_appid":"` + platAppID + `"}`, 48001},
		{"the real secret is no key", "POST", componentClearQuotaV2Path, `{"component_appid":"` + platAppID + `","appsecret":"` + platSecret + `"}`, 40001},
		{"no key", "POST", componentClearQuotaV2Path, `{"component_appid":"` + platAppID + `"}`, 41004},
		{"another platform", "POST", componentClearQuotaV2Path, `{"component_appid":"wx3rdcomponent0002","appsecret":"` + platAdminKey + `"}`, 61011},
		{"malformed", "POST", componentClearQuotaV2Path, `{"appsecret":"` + platAdminKey + `"`, 47001},
		{"not an object", "POST", componentClearQuotaV2Path, `["` + platAdminKey + `"]`, 47001},
		{"a number for a key", "POST", componentClearQuotaV2Path, `{"appsecret":12}`, 47001},
		{"a secret in the query", "POST", componentClearQuotaV2Path + "?secret=x", `{"appsecret":"` + platAdminKey + `"}`, 40001},
	} {
		got = nil
		rec := servePlatform(t, plat, httptest.NewRequest(c.method, c.target, strings.NewReader(c.body)), echoBody(t, &got))
		if len(got) != 0 {
			t.Errorf("%s reached upstream: %+v", c.name, got)
		}
		if code := decodeAnswer(t, rec).Errcode; code != c.code {
			t.Errorf("%s: errcode %d (%s), want %d", c.name, code, rec.Body, c.code)
		}
		if strings.Contains(rec.Body.String(), platSecret) || strings.Contains(rec.Body.String(), platAdminKey) {
			t.Errorf("%s: answer %s", c.name, rec.Body)
		}
	}

	// A trusted site puts the secret in for whoever calls.
	plat.Trusted = true
	got = nil
	servePlatform(t, plat, httptest.NewRequest("POST", componentClearQuotaV2Path, strings.NewReader(`{"appid":"`+authB+`"}`)), echoBody(t, &got))
	if len(got) != 1 || got[0].body["appsecret"] != platSecret || got[0].body["appid"] != authB || got[0].body["component_appid"] != platAppID {
		t.Errorf("trusted: upstream got %+v", got)
	}
}

// componentTokenWithKey is the gateway token the client of key gets from
// the platform's site.
func componentTokenWithKey(t *testing.T, plat *Handler, key string) string {
	rec := servePlatform(t, plat, httptest.NewRequest("POST", "/cgi-bin/component/api_component_token",
		strings.NewReader(`{"component_appid":"`+platAppID+`","component_appsecret":"`+key+`"}`)), nil)
	return answerField(t, rec, "component_access_token")
}

// TestComponentClearQuotaV2SendsOnlyItsMembers: what else a client puts
// in the body (its key or gateway token under another name, in any letter
// case) does not reach WeChat: only component_appid, appid and appsecret
// go.
func TestComponentClearQuotaV2SendsOnlyItsMembers(t *testing.T) {
	app := platformApp(t)
	withPlatformAdmin(t, app)
	plat := platformAppSite(app, "platform")
	ctok := componentTokenWithKey(t, plat, platAdminKey)
	for _, c := range []struct{ name, target, body string }{
		{"secret", componentClearQuotaV2Path, `{"appsecret":"` + platAdminKey + `","secret":"` + platAdminKey + `"}`},
		{"component_appsecret", componentClearQuotaV2Path, `{"appsecret":"` + platAdminKey + `","component_appsecret":"` + platAdminKey + `"}`},
		{"AppSecret", componentClearQuotaV2Path, "\ufeff" + `{"appsecret":"` + platAdminKey + `","AppSecret":"` + platAdminKey + `"}`},
		{"a token in the body", componentClearQuotaV2Path + "?component_access_token=" + ctok, `{"component_access_token":"` + ctok + `","x":1}`},
	} {
		var got []upstreamCall
		rec := servePlatform(t, plat, httptest.NewRequest("POST", c.target, strings.NewReader(c.body)), echoBody(t, &got))
		if len(got) != 1 {
			t.Fatalf("%s: %d upstream calls: %s", c.name, len(got), rec.Body)
		}
		if len(got[0].body) != 2 || got[0].body["appsecret"] != platSecret {
			t.Errorf("%s: upstream body %v, want component_appid and appsecret alone", c.name, got[0].body)
		}
	}
	// An SDK that swapped appid and key does not see its key in the error.
	rec := servePlatform(t, plat, httptest.NewRequest("POST", componentClearQuotaV2Path,
		strings.NewReader(`{"component_appid":"`+platAdminKey+`","appsecret":"`+platAppID+`"}`)), nil)
	if code := decodeAnswer(t, rec).Errcode; code != 61011 || strings.Contains(rec.Body.String(), platAdminKey) {
		t.Errorf("swapped appid and key: %s", rec.Body)
	}
	rec = servePlatform(t, plat, httptest.NewRequest("POST", "/cgi-bin/component/api_component_token",
		strings.NewReader(`{"component_appid":"`+platAdminKey+`","component_appsecret":"`+platAppID+`"}`)), nil)
	if code := decodeAnswer(t, rec).Errcode; code != 61011 || strings.Contains(rec.Body.String(), platAdminKey) {
		t.Errorf("api_component_token, swapped appid and key: %s", rec.Body)
	}
}

// cutBodyEcho answers an error that echoes the request body it got, cut
// to cut bytes, the way the echo tests model an echo cut to a length
// (TestEchoesNeverShowTheToken's "cut inside the token"; rid/get's
// request_body). The cut body is a JSON string, so the answer stays JSON.
func cutBodyEcho(cut int) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw, _ := io.ReadAll(r.Body)
		if len(raw) > cut {
			raw = raw[:cut]
		}
		echoed, _ := json.Marshal(string(raw))
		w.Header().Set("Content-Type", "application/json; encoding=utf-8")
		_, _ = w.Write([]byte(`{"errcode":48006,"errmsg":"forbid to clear quota because of reaching the limit rid: 67c2a1b0-1-2","request_body":` + string(echoed) + `}`))
	})
}

// TestClearQuotaV2EchoCutCannotSplitSecret: the token and secret go first
// upstream, so that an echo WeChat cuts short cannot cut them in two (the
// mask finds whole values, and values after "secret=" in a query). The
// JSON body of clear_quota/v2 had its members in sorted order: an admin
// client's member named "a", padded, moved the cut to one character before
// the end of the real AppSecret, and the echo showed the rest of it. (Found
// by a review.)
func TestClearQuotaV2EchoCutCannotSplitSecret(t *testing.T) {
	const cut = 160
	g := newGateway(t, withAdminClient())
	g.setUpstream(cutBodyEcho(cut))
	site := g.clientsSite()
	fixed := len(`{"a":"","appid":"` + mpAppID + `","appsecret":"`)
	pad := strings.Repeat("x", cut-fixed-(len(mpSecret)-1))
	body := `{"a":"` + pad + `","appid":"` + mpAppID + `","appsecret":"` + adminKey + `"}`
	rec := g.post(site, "/cgi-bin/clear_quota/v2", "application/json", []byte(body))
	seen := g.upstreamRequests()
	if len(seen) != 1 {
		t.Fatalf("%d upstream requests: %s", len(seen), rec.Body)
	}
	if i := strings.Index(string(seen[0].Body), mpSecret); i < 0 || i > strings.Index(string(seen[0].Body), pad) {
		t.Errorf("upstream body %q: client-chosen text comes before the AppSecret", seen[0].Body)
	}
	if part := mpSecret[:len(mpSecret)-1]; strings.Contains(rec.Body.String(), part) {
		t.Errorf("the admin client saw %d of the AppSecret's %d characters unmasked: %s", len(part), len(mpSecret), rec.Body)
	}
}

// TestComponentClearQuotaV2EchoCutCannotSplitSecret: the same on a
// platform's site, where "appid", whose value the client chose, sorted
// before "appsecret". An appid that is no appid is refused now too, and so
// cannot pad anything.
func TestComponentClearQuotaV2EchoCutCannotSplitSecret(t *testing.T) {
	const cut = 100 // an appid of at most 64 characters pads it
	app := platformApp(t)
	withPlatformAdmin(t, app)
	plat := platformAppSite(app, "platform")
	var sent []byte
	echo := cutBodyEcho(cut)
	next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		sent, _ = io.ReadAll(r.Body)
		r.Body = io.NopCloser(strings.NewReader(string(sent)))
		echo.ServeHTTP(w, r)
		return nil
	})
	fixed := len(`{"appid":"","appsecret":"`)
	pad := strings.Repeat("x", cut-fixed-(len(platSecret)-1))
	body := `{"appid":"` + pad + `","component_appid":"` + platAppID + `","appsecret":"` + platAdminKey + `"}`
	rec := servePlatform(t, plat, httptest.NewRequest("POST", componentClearQuotaV2Path, strings.NewReader(body)), next)
	if !strings.Contains(string(sent), platSecret) {
		t.Fatalf("the real secret did not go upstream (%q): %s", sent, rec.Body)
	}
	if strings.Index(string(sent), platSecret) > strings.Index(string(sent), pad) {
		t.Errorf("upstream body %q: client-chosen text comes before the AppSecret", sent)
	}
	if part := platSecret[:len(platSecret)-1]; strings.Contains(rec.Body.String(), part) {
		t.Errorf("the admin client saw %d of the platform AppSecret's %d characters unmasked: %s", len(part), len(platSecret), rec.Body)
	}
	// An appid that is no appid goes nowhere.
	sent = nil
	bad := `{"appid":"` + strings.Repeat("x", 65) + `","appsecret":"` + platAdminKey + `"}`
	rec = servePlatform(t, plat, httptest.NewRequest("POST", componentClearQuotaV2Path, strings.NewReader(bad)), next)
	wantErrcode(t, rec, 40013)
	if sent != nil {
		t.Errorf("a call with an appid of 65 characters went upstream: %q", sent)
	}
}
