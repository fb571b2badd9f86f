package caddywechat

import (
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// TestUpstreamRequestURI: the upstream request's RequestURI, which
// reverse_proxy logs, is the client's with the value of every token the
// client sent redacted, however it is spelled.
func TestUpstreamRequestURI(t *testing.T) {
	for target, want := range map[string]string{
		"/cgi-bin/user/info?openid=o1&access_token=SECRET&access%5ftoken=S2": "/cgi-bin/user/info?openid=o1&access_token=REDACTED&access%5ftoken=REDACTED",
		"/cgi-bin/user/info?openid=o1&access_token=SECRET&lang=zh_CN":        "/cgi-bin/user/info?openid=o1&access_token=REDACTED&lang=zh_CN",
		"/cgi-bin/menu/get?x=1&component_access_token=C":                     "/cgi-bin/menu/get?x=1&component_access_token=REDACTED",
		"/cgi-bin/menu/get?x=1": "/cgi-bin/menu/get?x=1",
	} {
		r := httptest.NewRequest("GET", target, nil)
		next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, up *http.Request) error {
			if up.RequestURI != want {
				t.Errorf("%s: upstream RequestURI %q, want %q", target, up.RequestURI, want)
			}
			return nil
		})
		if err := sendUpstream(next, httptest.NewRecorder(), r, "access_token", "REAL", nil, nil); err != nil {
			t.Fatal(err)
		}
	}
}

// TestSendUpstreamLeavesTheClientsRequest: next sees a request prepared
// for WeChat (the token injected, the client's removed, no
// Accept-Encoding, Range or If-Range, the held body); the client's request,
// which Caddy's placeholders read while next runs, keeps its query, URI
// and body then, and has its headers back afterwards, after a panic too.
func TestSendUpstreamLeavesTheClientsRequest(t *testing.T) {
	body, _, err := readReplayable(httptest.NewRequest("POST", "/", strings.NewReader(`{"a":1}`)), 1<<20, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	defer body.free()
	for _, panics := range []bool{false, true} {
		r := httptest.NewRequest("POST", "/cgi-bin/menu/create?x=1&access_token=CLIENT", strings.NewReader("client body"))
		r.Header.Set("Accept-Encoding", "gzip")
		r.Header.Set("Range", "bytes=0-10")
		r.Header.Set("If-Range", "x")
		r.Header.Set("X-Kept", "1")
		sent, sentURL, sentHeader, sentBody := *r, *r.URL, r.Header.Clone(), r.Body
		next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, up *http.Request) error {
			if up == r || up.URL == r.URL {
				t.Fatal("next got the client's request or URL")
			}
			if *r.URL != sentURL || r.RequestURI != sent.RequestURI || r.Body != sentBody {
				t.Errorf("while next runs, the client's request reads %s %q", r.URL, r.RequestURI)
			}
			if up.URL.RawQuery != "access_token=REAL&x=1" {
				t.Errorf("upstream query %q", up.URL.RawQuery)
			}
			if up.RequestURI != "/cgi-bin/menu/create?x=1&access_token=REDACTED" {
				t.Errorf("upstream RequestURI %q", up.RequestURI)
			}
			for _, k := range []string{"Accept-Encoding", "Range", "If-Range"} {
				if _, ok := up.Header[k]; ok {
					t.Errorf("upstream header %s sent", k)
				}
			}
			if up.Header.Get("X-Kept") != "1" {
				t.Error("upstream header X-Kept lost")
			}
			if b, _ := io.ReadAll(up.Body); string(b) != `{"a":1}` || up.ContentLength != 7 {
				t.Errorf("upstream body %q, length %d", b, up.ContentLength)
			}
			if panics {
				panic("next panics")
			}
			return nil
		})
		func() {
			defer func() { _ = recover() }()
			if err := sendUpstream(next, httptest.NewRecorder(), r, "access_token", "REAL", body, nil); err != nil {
				t.Error(err)
			}
		}()
		if *r.URL != sentURL || r.RequestURI != sent.RequestURI || r.Body != sentBody || r.ContentLength != sent.ContentLength || r.GetBody != nil {
			t.Errorf("panics %v: request not restored: %s %q, length %d", panics, r.URL, r.RequestURI, r.ContentLength)
		}
		if !reflect.DeepEqual(r.Header, sentHeader) {
			t.Errorf("panics %v: headers not restored: %v", panics, r.Header)
		}
	}
}

// BenchmarkRequestRewrite: preparing a GET for one attempt and putting it
// back.
func BenchmarkRequestRewrite(b *testing.B) {
	r := httptest.NewRequest("GET", "/cgi-bin/user/info?openid=o6_bmjrPTlm6_2sgVt7hMZOPfL2M&lang=zh_CN", nil)
	tok := "81_abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-abcdefgh"
	next := caddyhttp.HandlerFunc(func(http.ResponseWriter, *http.Request) error { return nil })
	b.ReportAllocs()
	for b.Loop() {
		_ = sendUpstream(next, nil, r, "access_token", tok, nil, nil)
	}
}
