package caddywechat

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/wxgate/caddy-wechat/module/internal/wxapi"
)

func TestHoldBack(t *testing.T) {
	for _, c := range []struct {
		status int
		header map[string]string
		want   bool
	}{
		{200, map[string]string{"Content-Type": "application/json; encoding=utf-8", "Content-Length": "85"}, true},
		{200, map[string]string{"Content-Type": "Application/JSON"}, true},
		{200, map[string]string{"Content-Type": " application/json ;charset=UTF-8"}, true},
		{200, map[string]string{"Content-Type": "text/plain"}, true},
		{200, map[string]string{"Content-Type": "TEXT/html; charset=utf-8"}, true},
		{200, map[string]string{}, true},
		{200, map[string]string{"Content-Type": "application/json", "Content-Length": "4097"}, false},
		{200, map[string]string{"Content-Type": "application/json", "Content-Length": "x"}, false},
		{200, map[string]string{"Content-Type": "image/jpeg"}, false},
		{200, map[string]string{"Content-Type": "application/jsonp"}, false},
		{200, map[string]string{"Content-Type": "text/"}, false},
		{200, map[string]string{"Content-Type": "application/octet-stream"}, false},
		{200, map[string]string{"Content-Type": "text/plain", "Content-Disposition": `attachment; filename="a.txt"`}, false},
		{206, map[string]string{"Content-Type": "application/json"}, false},
		{500, map[string]string{"Content-Type": "application/json"}, false},
	} {
		h := make(http.Header)
		for k, v := range c.header {
			h.Set(k, v)
		}
		if got := holdBack(c.status, h); got != c.want {
			t.Errorf("holdBack(%d, %v) = %v, want %v", c.status, c.header, got, c.want)
		}
	}
}

func TestHoldBackAllocationFree(t *testing.T) {
	h := http.Header{"Content-Type": {"application/json; encoding=utf-8"}, "Content-Length": {"312"}}
	if n := testing.AllocsPerRun(100, func() {
		if !holdBack(http.StatusOK, h) {
			t.Fatal("WeChat's JSON answer not held back")
		}
	}); n != 0 {
		t.Errorf("holdBack allocates %v times per answer", n)
	}
}

// TestDiscardPutsHeadersBack: an attempt writes its headers into the
// client's map as reverse_proxy alone would (appending to what is there,
// deleting Caddy's Server); a discarded one leaves the map as it was,
// however many headers it held.
func TestDiscardPutsHeadersBack(t *testing.T) {
	for _, extra := range []int{0, 12, 20} {
		w := httptest.NewRecorder()
		w.Header().Set("Server", "Caddy")
		w.Header().Set("Vary", "Origin")
		for n := range extra {
			w.Header().Set(fmt.Sprintf("X-Site-%d", n), "1")
		}
		want := w.Header().Clone()
		i := newInspector(w, nil)
		h := i.Header()
		h["Vary"][0] = "Cookie" // a `header` replace between the gateway and the proxy edits in place
		delete(h, "Server")
		h.Add("Vary", "Accept-Encoding")
		h.Set("X-Upstream", "1")
		h.Set("Content-Type", "application/json")
		if got := h.Values("Vary"); len(got) != 2 {
			t.Fatalf("Vary %q: the attempt's header did not join the site's", got)
		}
		i.WriteHeader(http.StatusOK)
		_, _ = i.Write([]byte(`{"errcode":40001}`))
		i.discard()
		if fmt.Sprint(w.Header()) != fmt.Sprint(want) {
			t.Errorf("%d more headers: after discard %v, want %v", extra, w.Header(), want)
		}
		i.free()
		if w.Code != http.StatusOK || w.Body.Len() != 0 || w.Header().Get("X-Upstream") != "" {
			t.Errorf("a discarded answer reached the client: %d %q", w.Code, w.Body.String())
		}
	}
}

// TestUpstreamFailureAfterHeaders: an upstream that fails after setting
// its headers leaves none of them on the error the client gets.
func TestUpstreamFailureAfterHeaders(t *testing.T) {
	rec := trustedCall(t, func(w http.ResponseWriter, r *http.Request) error {
		w.Header().Set("Content-Length", "999")
		w.Header().Set("X-Upstream", "1")
		return caddyhttp.Error(http.StatusBadGateway, errors.New("upstream went away"))
	})
	if rec.Code != http.StatusBadGateway || !strings.Contains(rec.Body.String(), `"errcode":-1`) ||
		rec.Header().Get("X-Upstream") != "" || rec.Header().Get("Content-Length") == "999" {
		t.Errorf("client got %d %v %q", rec.Code, rec.Header(), rec.Body.String())
	}
}

// TestUpstreamRefusalKeepsProxyStatus: the Proxy-Status reverse_proxy
// sets when it refuses an answer (proxy_status_name, RFC 9209) reaches the
// client with the gateway's error; the upstream's other headers do not.
func TestUpstreamRefusalKeepsProxyStatus(t *testing.T) {
	rec := trustedCall(t, func(w http.ResponseWriter, r *http.Request) error {
		w.Header().Set("X-Upstream", "1")
		w.Header().Set("Proxy-Status", `caddy; error=incremental_refused`)
		return caddyhttp.Error(http.StatusNotImplemented, errors.New("refusing to forward the message incrementally"))
	})
	if rec.Code != http.StatusNotImplemented || rec.Header().Get("Proxy-Status") != `caddy; error=incremental_refused` || rec.Header().Get("X-Upstream") != "" {
		t.Errorf("client got %d %v", rec.Code, rec.Header())
	}
}

// TestPanicPutsHeadersBack: when next panics before the answer passes,
// the headers it set are taken out again before Caddy answers.
func TestPanicPutsHeadersBack(t *testing.T) {
	rec := trustedCall(t, func(w http.ResponseWriter, r *http.Request) error {
		w.Header().Set("X-Upstream", "1")
		panic(http.ErrAbortHandler)
	})
	if len(rec.Header()) != 0 {
		t.Errorf("headers after the panic: %v", rec.Header())
	}
}

// TestHoldBackReadsTheUpstreamsHeader: with a header a handler before the
// gateway set, the upstream's (added after it) decides.
func TestHoldBackReadsTheUpstreamsHeader(t *testing.T) {
	h := http.Header{"Content-Type": {"image/png", "application/json"}}
	if !holdBack(http.StatusOK, h) || !maskable(h) {
		t.Error("the upstream's JSON answer was judged by the site's Content-Type")
	}
}

// TestStreamedTrailersMasked: the trailers reverse_proxy adds to the header
// map after a streamed answer's body are masked before the server sends
// them.
func TestStreamedTrailersMasked(t *testing.T) {
	real := ""
	rec := trustedCall(t, func(w http.ResponseWriter, r *http.Request) error {
		real = r.URL.Query().Get("access_token")
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Trailer", "X-Echo")
		w.WriteHeader(http.StatusNotFound) // not held back: it streams
		_, _ = w.Write([]byte(`{"errcode":-1}`))
		w.Header().Set("X-Echo", "access_token="+real)
		return nil
	})
	if got := rec.Header().Get("X-Echo"); real == "" || got == "" || strings.Contains(got, real) {
		t.Errorf("trailer X-Echo %q, want it masked", got)
	}
}

// TestMaskableWithSeveralContentTypes: an answer is masked unless every
// Content-Type it gives is media.
func TestMaskableWithSeveralContentTypes(t *testing.T) {
	for _, c := range []struct {
		types []string
		want  bool
	}{
		{nil, true},
		{[]string{"image/png"}, false},
		{[]string{"application/json", "image/png"}, true},
		{[]string{"image/png", "application/json"}, true},
		{[]string{"image/png", "audio/amr"}, false},
	} {
		if got := maskable(http.Header{"Content-Type": c.types}); got != c.want {
			t.Errorf("maskable(%q) = %v, want %v", c.types, got, c.want)
		}
	}
}

// trustedCall makes a user/info call through a trusted site with next as
// the proxy, and returns what the client got, after a panic of next too.
func trustedCall(t *testing.T, next caddyhttp.HandlerFunc) *httptest.ResponseRecorder {
	g := newGateway(t)
	h := g.trustedSite()
	g.warm()
	rec := httptest.NewRecorder()
	func() {
		defer func() { _ = recover() }()
		if err := h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/cgi-bin/user/info?openid=o1", nil), next); err != nil {
			t.Errorf("ServeHTTP: %v", err)
		}
	}()
	return rec
}

// TestStreamedAnswerMaskedAsHeld: an answer that streams (a client can make
// any echo longer than the window) loses what a held one does: the
// confidential values, and every value after a credential's name, one that
// nobody here knows (another instance's newer token) or one cut short,
// however the answer is cut into writes. Random answers, random cuts.
func TestStreamedAnswerMaskedAsHeld(t *testing.T) {
	rng := rand.New(rand.NewPCG(14, 2))
	confidential := []string{"REAL-TOKEN-0123456789abcdef-0123456789", "APP-SECRET-0123456789abcdef"}
	pieces := append(slices.Clone(confidential), "access_token=", "secret=", "corpsecret=", "component_access_token=",
		"PEER-TOKEN-0123456789", "&", `"`, `\`, " ", "=", "x", "access_tok", "en=", "REAL-TOKEN-01")
	for n := range 3000 {
		var body []byte
		for range 1 + rng.IntN(24) {
			body = append(body, pieces[rng.IntN(len(pieces))]...)
		}
		want := slices.Clone(body)
		wxapi.Mask(want, confidential)
		wxapi.MaskParams(want, credentialParams)

		rec := httptest.NewRecorder()
		rec.Header().Set("Content-Type", "application/json")
		i := newInspector(rec, confidential)
		i.WriteHeader(http.StatusNotFound) // not held back: it streams
		for rest := body; len(rest) > 0; {
			k := min(1+rng.IntN(40), len(rest))
			if _, err := i.Write(slices.Clone(rest[:k])); err != nil {
				t.Fatal(err)
			}
			rest = rest[k:]
		}
		i.pass()
		i.free()
		if got := rec.Body.String(); got != string(want) {
			t.Fatalf("answer %d %q:\nstreamed %q\nheld     %q", n, body, got, want)
		}
	}
}

// TestHeaderCredentialParamsMasked: a header that echoes a query loses the
// values of its credential parameters, whoever's they are.
func TestHeaderCredentialParamsMasked(t *testing.T) {
	h := http.Header{
		"Location":     {"https://example.com/cb?a=1&access_token=PEER-TOKEN&b=2"},
		"X-Echo":       {"secret=KEY-OF-A-CLIENT"},
		"Content-Type": {"application/json; encoding=utf-8"},
	}
	maskHeader(h, []string{"REAL-TOKEN-0123456789abcdef"})
	if got := h.Get("Location"); got != "https://example.com/cb?a=1&access_token=**********&b=2" {
		t.Errorf("Location %q", got)
	}
	if got := h.Get("X-Echo"); got != "secret=***************" {
		t.Errorf("X-Echo %q", got)
	}
	if got := h.Get("Content-Type"); got != "application/json; encoding=utf-8" {
		t.Errorf("Content-Type %q", got)
	}
}
