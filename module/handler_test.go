package caddywechat

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/wxgate/caddy-wechat/module/internal/wxapi"
)

// Stage 1: classify.

func TestHandlerRefusesInvalidPathsInBothModes(t *testing.T) {
	for _, target := range []string{
		"/cgi-bin/user/../menu/create?access_token=x",
		"/cgi-bin/./token?grant_type=client_credential&appid=" + mpAppID + "&secret=" + shopKey,
		"/cgi-bin/user/%2e%2e/menu/get",
		"/cgi-bin/user/%2E%2E/menu/get",
		"/cgi-bin/menu%2fget",
		"/cgi-bin/menu%2Fget",
		"/sns/..%2fcgi-bin/menu/get",
		"/sns/%2e%2e/cgi-bin/menu/get",
		"/cgi-bin/user%5cinfo",
		"//cgi-bin/menu/get",
		"/cgi-bin//menu/get",
		"/wechat-gateway/./raw_token",
		"/cgi-bin/menu/get/..",
		"/cgi-bin/user/..;/menu/get",
		"/cgi-bin/user/..;x=1/menu/get",
	} {
		for _, mode := range []string{"clients", "trusted"} {
			t.Run(mode+" "+target, func(t *testing.T) {
				g := newGateway(t)
				h := g.clientsSite()
				if mode == "trusted" {
					h = g.trustedSite()
				}
				r := httptest.NewRequest(http.MethodGet, target, nil)
				if class, _ := classify(r.URL); class != pathInvalid {
					t.Fatalf("the request parsed to path %q (class %d): the test does not test what it says", r.URL.Path, class)
				}
				a := wantErrcode(t, g.serve(h, r), wxapi.CodeInvalidURL)
				if !strings.Contains(a.Errmsg, "invalid url") {
					t.Errorf("errmsg %q does not say invalid url", a.Errmsg)
				}
				g.wantNothingUpstream(t)
			})
		}
	}
}

func TestHandlerPassesSNSUntouched(t *testing.T) {
	for _, mode := range []string{"clients", "trusted"} {
		t.Run(mode, func(t *testing.T) {
			g := newGateway(t)
			g.setUpstream(jsonAnswer(`{"openid":"o1","nickname":"n"}`))
			h := g.clientsSite()
			if mode == "trusted" {
				h = g.trustedSite()
			}
			const target = "/sns/userinfo?access_token=USER_OAUTH_TOKEN&openid=o1&lang=zh_CN"
			r := httptest.NewRequest(http.MethodGet, target, nil)
			r.Header.Set("Accept-Encoding", "gzip")
			rec := g.serve(h, r)
			if rec.Code != http.StatusOK || rec.Body.String() != `{"openid":"o1","nickname":"n"}` {
				t.Errorf("answer %d %q, want the upstream's", rec.Code, rec.Body.String())
			}
			seen := g.upstreamRequests()
			if len(seen) != 1 {
				t.Fatalf("%d requests upstream, want 1", len(seen))
			}
			if seen[0].RawQuery != "access_token=USER_OAUTH_TOKEN&openid=o1&lang=zh_CN" {
				t.Errorf("upstream query %q, want the client's untouched", seen[0].RawQuery)
			}
			// What Caddy's debug log shows keeps the user's token out.
			if want := "/sns/userinfo?access_token=REDACTED&openid=o1&lang=zh_CN"; seen[0].RequestURI != want {
				t.Errorf("upstream RequestURI %q, want %q", seen[0].RequestURI, want)
			}
			if seen[0].Header.Get("Accept-Encoding") != "gzip" {
				t.Errorf("Accept-Encoding %q upstream, want the client's gzip (no token is injected, nothing to inspect)", seen[0].Header.Get("Accept-Encoding"))
			}
			if n := g.fetches.calls.Load(); n != 0 {
				t.Errorf("%d token fetches for a /sns/ call, want 0", n)
			}
		})
	}
}

func TestHandlerOtherCredentialPaths(t *testing.T) {
	for _, target := range []string{
		"/cgi-bin/component/api_authorizer_token?component_access_token=COMPONENT",
		"/cgi-bin/component/api_query_auth?component_access_token=COMPONENT",
		"/cgi-bin/service/get_suite_token",
		"/not-wechat/at-all?access_token=x",
	} {
		t.Run("clients "+target, func(t *testing.T) {
			g := newGateway(t)
			wantErrcode(t, g.get(g.clientsSite(), target), wxapi.CodeAPIUnauthorized)
			g.wantNothingUpstream(t)
		})
		t.Run("trusted "+target, func(t *testing.T) {
			g := newGateway(t)
			g.setUpstream(jsonAnswer(`{"errcode":0}`))
			rec := g.get(g.trustedSite(), target)
			if rec.Body.String() != `{"errcode":0}` {
				t.Errorf("answer %q, want the upstream's", rec.Body.String())
			}
			seen := g.upstreamRequests()
			if len(seen) != 1 {
				t.Fatalf("%d requests upstream, want 1", len(seen))
			}
			if _, query, _ := strings.Cut(target, "?"); seen[0].RequestURI != target || seen[0].RawQuery != query {
				t.Errorf("upstream got %q (query %q), want %q untouched", seen[0].RequestURI, seen[0].RawQuery, target)
			}
			if n := g.fetches.calls.Load(); n != 0 {
				t.Errorf("%d token fetches, want 0: no app token belongs there", n)
			}
		})
	}
}

// Stage 4: forward.

func TestForwardReplacesClientTokenWithRealOne(t *testing.T) {
	g := newGateway(t)
	h := g.clientsSite()
	gw := g.gatewayToken(h, "official", mpAppID, shopKey)
	for _, tmpl := range []string{
		"access_token=GW&openid=o1&lang=zh_CN",
		"openid=o1&access_token=GW&lang=zh_CN",
		"openid=o1&lang=zh_CN&access%5Ftoken=GW",
		"openid=o1&lang=zh_CN&access%5ftoken=GW",
		"openid=o1&lang=zh_CN&%61ccess_token=GW",
		"openid=o1&lang=zh_CN&access_%74oken=GW",
	} {
		t.Run(tmpl, func(t *testing.T) {
			query := strings.Replace(tmpl, "GW", gw, 1)
			g.resetSeen()
			target := "/cgi-bin/user/info?" + query
			r := httptest.NewRequest(http.MethodGet, target, nil)
			rec := g.serve(h, r)
			var user struct {
				Errcode int    `json:"errcode"`
				OpenID  string `json:"openid"`
			}
			if err := json.Unmarshal(rec.Body.Bytes(), &user); err != nil || user.Errcode != 0 || user.OpenID != "o1" {
				t.Fatalf("answer %q, want the simulator's user o1", rec.Body.String())
			}
			seen := g.upstreamRequests()
			if len(seen) != 1 {
				t.Fatalf("%d requests upstream, want 1", len(seen))
			}
			up := seen[0]
			real := g.fetches.last()
			if real == "" || strings.HasPrefix(real, "gw2.") {
				t.Fatalf("fetched token %q", real)
			}
			if want := "access_token=" + real + "&openid=o1&lang=zh_CN"; up.RawQuery != want {
				t.Errorf("upstream query %q, want %q", up.RawQuery, want)
			}
			if toks := up.query(t, "access_token"); len(toks) != 1 || toks[0] != real {
				t.Errorf("upstream access_token %q, want exactly the real token", toks)
			}
			for _, field := range []string{up.RawQuery, up.RequestURI} {
				if strings.Contains(field, gw) {
					t.Errorf("the client's gateway token went upstream: %q", field)
				}
			}
			if strings.Contains(up.RequestURI, real) {
				t.Errorf("upstream RequestURI %q holds the real token", up.RequestURI)
			}
			if !strings.HasPrefix(up.RequestURI, "/cgi-bin/user/info?") || !strings.Contains(up.RequestURI, "REDACTED") {
				t.Errorf("upstream RequestURI %q, want the client's with the token REDACTED", up.RequestURI)
			}
			// The client's own request, which the access log reads, is as sent.
			if r.URL.RawQuery != query || r.RequestURI != target {
				t.Errorf("the client's request was changed: %q / %q", r.URL.RawQuery, r.RequestURI)
			}
		})
	}
	if n := g.fetches.calls.Load(); n != 1 {
		t.Errorf("%d token fetches for several calls, want 1", n)
	}
}

func TestForwardTrustedIgnoresCallerTokens(t *testing.T) {
	g := newGateway(t)
	h := g.trustedSite()
	rec := g.get(h, "/cgi-bin/user/info?access_token=whatever&openid=o1&access%5Ftoken=more")
	if a := decodeAnswer(t, rec); a.Errcode != 0 {
		t.Fatalf("answer %q, want the simulator's user", rec.Body.String())
	}
	seen := g.upstreamRequests()
	if len(seen) != 1 {
		t.Fatalf("%d requests upstream, want 1", len(seen))
	}
	if want := "access_token=" + g.fetches.last() + "&openid=o1"; seen[0].RawQuery != want {
		t.Errorf("upstream query %q, want %q", seen[0].RawQuery, want)
	}
	if want := "/cgi-bin/user/info?access_token=REDACTED&openid=o1&access%5Ftoken=REDACTED"; seen[0].RequestURI != want {
		t.Errorf("upstream RequestURI %q, want %q", seen[0].RequestURI, want)
	}
	// A call with no token at all gets one too.
	g.resetSeen()
	g.get(h, "/cgi-bin/menu/get")
	if seen := g.upstreamRequests(); len(seen) != 1 || seen[0].RawQuery != "access_token="+g.fetches.last() {
		t.Errorf("upstream got %+v, want access_token injected", seen)
	}
}

func TestForwardStripsAcceptEncodingOnly(t *testing.T) {
	g := newGateway(t)
	h := g.trustedSite()
	r := httptest.NewRequest(http.MethodGet, "/cgi-bin/menu/get", nil)
	r.Header.Set("Accept-Encoding", "gzip, br")
	r.Header.Set("X-Request-Id", "abc")
	r.Header.Set("User-Agent", "sdk/1.0")
	g.serve(h, r)
	seen := g.upstreamRequests()
	if len(seen) != 1 {
		t.Fatalf("%d requests upstream, want 1", len(seen))
	}
	if _, ok := seen[0].Header["Accept-Encoding"]; ok {
		t.Errorf("Accept-Encoding %q reached upstream: the answer must come uncompressed to be inspected", seen[0].Header.Get("Accept-Encoding"))
	}
	if seen[0].Header.Get("X-Request-Id") != "abc" || seen[0].Header.Get("User-Agent") != "sdk/1.0" {
		t.Errorf("other headers not forwarded: %v", seen[0].Header)
	}
	if r.Header.Get("Accept-Encoding") != "gzip, br" {
		t.Errorf("the client's request lost its Accept-Encoding (the access log reads it)")
	}
}

func TestForwardBodyByteForByte(t *testing.T) {
	g := newGateway(t, withScriptedTokens())
	up := &scripted{answers: []http.HandlerFunc{jsonAnswer(`{"errcode":0,"errmsg":"ok"}`)}}
	g.setUpstream(up)
	h := g.trustedSite()
	binary := make([]byte, 3000)
	for i := range binary {
		binary[i] = byte(i * 7)
	}
	for _, c := range []struct {
		name    string
		body    []byte
		chunked bool
	}{
		{"json", []byte(`{"button":[{"type":"click","name":"今日歌曲","key":"V1001_TODAY_MUSIC"}]}`), false},
		{"binary", binary, false},
		{"binary unknown length", binary, true},
		{"empty", nil, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			g.resetSeen()
			var body io.Reader = bytes.NewReader(c.body)
			if c.chunked {
				body = io.MultiReader(body) // hides the length
			}
			r := httptest.NewRequest(http.MethodPost, "/cgi-bin/media/upload?type=image", body)
			if c.chunked {
				r.ContentLength = -1
			}
			rec := g.serve(h, r)
			if rec.Body.String() != `{"errcode":0,"errmsg":"ok"}` {
				t.Errorf("answer %q", rec.Body.String())
			}
			seen := g.upstreamRequests()
			if len(seen) != 1 {
				t.Fatalf("%d requests upstream, want 1", len(seen))
			}
			if !bytes.Equal(seen[0].Body, c.body) {
				t.Errorf("upstream body differs: %d bytes, want %d", len(seen[0].Body), len(c.body))
			}
			if seen[0].ContentLength != int64(len(c.body)) {
				t.Errorf("upstream Content-Length %d, want %d", seen[0].ContentLength, len(c.body))
			}
		})
	}
}

func TestForwardAgainstSimulatorPost(t *testing.T) {
	g := newGateway(t)
	h := g.clientsSite()
	gw := g.gatewayToken(h, "official", mpAppID, shopKey)
	menu := []byte(`{"button":[{"type":"click","name":"Today","key":"V1001_TODAY"}]}`)
	wantErrcode(t, g.post(h, "/cgi-bin/menu/create?access_token="+gw, "application/json", menu), 0)
	rec := g.get(h, "/cgi-bin/menu/get?access_token="+gw)
	if !strings.Contains(rec.Body.String(), "V1001_TODAY") {
		t.Errorf("menu/get answered %q, want the menu just created", rec.Body.String())
	}
	c := g.sim.Counters()
	if p := c.Paths["/cgi-bin/menu/create"]; p.OK != 1 || p.Last == nil || p.Last.BodyBytes != int64(len(menu)) {
		t.Errorf("simulator saw menu/create %+v, want one OK call with the %d-byte body", p, len(menu))
	}
	if c.Tokens[mpAppID].StableToken != 1 || g.fetches.calls.Load() != 1 {
		t.Errorf("stable_token calls: simulator %d, gateway %d; want 1", c.Tokens[mpAppID].StableToken, g.fetches.calls.Load())
	}
}

func TestForwardWithoutTokenAnswersSystemBusy(t *testing.T) {
	g := newGateway(t, withMPSecret("not-the-secret-0123456789abcdef"))
	h := g.trustedSite()
	a := wantErrcode(t, g.get(h, "/cgi-bin/menu/get"), wxapi.CodeSystemBusy)
	if !strings.Contains(a.Errmsg, "no valid access_token") {
		t.Errorf("errmsg %q does not say why", a.Errmsg)
	}
	if seen := g.upstreamRequests(); len(seen) != 0 {
		t.Errorf("%d requests upstream without a token, want 0", len(seen))
	}
	// The refusal stops refreshing (a configuration error): the next call
	// does not spend another fetch.
	g.get(h, "/cgi-bin/menu/get")
	if n := g.fetches.calls.Load(); n != 1 {
		t.Errorf("%d token fetches, want 1", n)
	}
}

func TestForwardBodyReadError(t *testing.T) {
	g := newGateway(t)
	r := httptest.NewRequest(http.MethodPost, "/cgi-bin/menu/create", io.MultiReader(strings.NewReader(`{"button":`), errReader{}))
	r.ContentLength = -1
	a := wantErrcode(t, g.serve(g.trustedSite(), r), wxapi.CodeSystemBusy)
	if !strings.Contains(a.Errmsg, "reading the request body") {
		t.Errorf("errmsg %q does not say why", a.Errmsg)
	}
	g.wantNothingUpstream(t)
}

// errReader fails as a body does when the client goes away.
type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, io.ErrUnexpectedEOF }

// A next that writes nothing is what a site gets when no reverse_proxy
// follows the gateway for a request (a reverse_proxy under a matcher that
// does not match, a handle_response route that writes nothing): Caddy's
// route chain ends in its empty handler, and net/http then sends an empty
// 200.
func TestHandlerUpstreamWritesNothing(t *testing.T) {
	g := newGateway(t, withScriptedTokens())
	g.setUpstream(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	h := g.trustedSite()
	var rec *httptest.ResponseRecorder
	func() {
		defer func() {
			if v := recover(); v != nil {
				// Seen before inspector.startPassing skipped status 0:
				// WriteHeader(0) panics, and the client's connection drops.
				t.Fatalf("a next handler that writes nothing makes the gateway panic: %v", v)
			}
		}()
		rec = g.get(h, "/cgi-bin/menu/get")
	}()
	if rec.Code != http.StatusOK || rec.Body.Len() != 0 {
		t.Errorf("answer %d %q, want an empty 200 as net/http would send", rec.Code, rec.Body.String())
	}
}

// reverse_proxy fails (upstream unreachable, timed out): the client gets a
// WeChat-shaped -1 with the status Caddy would have used, and nothing of
// the error, which names the upstream URL, token and all.
func TestForwardUpstreamFailure(t *testing.T) {
	for _, c := range []struct {
		name   string
		err    func(real string) error
		status int
	}{
		{"plain error", func(real string) error {
			return errors.New("dial tcp: lookup api.weixin.qq.com?access_token=" + real + ": no such host")
		}, http.StatusBadGateway},
		{"handler error", func(real string) error {
			return caddyhttp.Error(http.StatusGatewayTimeout, errors.New("GET /cgi-bin/menu/get?access_token="+real+": timeout"))
		}, http.StatusGatewayTimeout},
	} {
		t.Run(c.name, func(t *testing.T) {
			g := newGateway(t, withScriptedTokens())
			h := g.trustedSite()
			g.warm()
			rec := httptest.NewRecorder()
			next := caddyhttp.HandlerFunc(func(http.ResponseWriter, *http.Request) error { return c.err(tok(1)) })
			if err := h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/cgi-bin/menu/get", nil), next); err != nil {
				t.Fatalf("ServeHTTP returned %v, want the failure answered", err)
			}
			if rec.Code != c.status {
				t.Errorf("status %d, want %d", rec.Code, c.status)
			}
			a := decodeAnswer(t, rec)
			if a.Errcode != wxapi.CodeSystemBusy || strings.Contains(rec.Body.String(), tok(1)) {
				t.Errorf("answer %q, want errcode -1 without the token", rec.Body.String())
			}
		})
	}
}
