package caddywechat

import (
	"net/http/httptest"
	"net/url"
	"testing"
)

func TestWithToken(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"", "access_token=T"},
		{"openid=o1", "openid=o1&access_token=T"},
		{"access_token=OLD&openid=o1", "openid=o1&access_token=T"},
		{"openid=o1&access%5Ftoken=OLD&access_token&x=", "openid=o1&x=&access_token=T"},
		{"a=1&&b=2", "a=1&b=2&access_token=T"},
		{"access_token_x=keep", "access_token_x=keep&access_token=T"},
	} {
		if got := withToken(c.in, "T"); got != c.want {
			t.Errorf("withToken(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestRedactedURI(t *testing.T) {
	r := httptest.NewRequest("GET", "/cgi-bin/user/info?openid=o1&access_token=SECRET&access%5ftoken=S2", nil)
	if got, want := redactedURI(r), "/cgi-bin/user/info?openid=o1&access_token=REDACTED&access%5ftoken=REDACTED"; got != want {
		t.Errorf("redactedURI = %q, want %q", got, want)
	}
	r = httptest.NewRequest("GET", "/cgi-bin/menu/get?x=1", nil)
	if got := redactedURI(r); got != "/cgi-bin/menu/get?x=1" {
		t.Errorf("redactedURI = %q", got)
	}
}

func TestPathFamilies(t *testing.T) {
	for path, want := range map[string]bool{
		"/cgi-bin/menu/get":                        true,
		"/wxa/getwxacodeunlimit":                   true,
		"/datacube/getweanalysisappiddailysummary": true,
		"/sns/userinfo":                            false,
		"/cgi-bin/component/api_authorizer_token":  false,
		"/cgi-bin/service/get_suite_token":         false,
		"/other":                                   false,
	} {
		got := hasAnyPrefix(path, defaultTokenPaths) && !hasAnyPrefix(path, neverTokenPaths)
		if got != want {
			t.Errorf("%s: injected %v, want %v", path, got, want)
		}
	}
	for path, want := range map[string]bool{
		"/cgi-bin/token": true, "/cgi-bin/stable_token": true, "/cgi-bin/gettoken": true, "/cgi-bin/token/": true,
		"/cgi-bin/tokenx": false, "/cgi-bin/ticket/getticket": false,
	} {
		if got := isTokenEndpoint(path); got != want {
			t.Errorf("isTokenEndpoint(%s) = %v", path, got)
		}
	}
}

func BenchmarkRequestRewrite(b *testing.B) {
	r := httptest.NewRequest("GET", "/cgi-bin/user/info?openid=o6_bmjrPTlm6_2sgVt7hMZOPfL2M&lang=zh_CN", nil)
	tok := "81_abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-abcdefgh"
	b.ReportAllocs()
	for b.Loop() {
		_ = upstreamRequest(r, tok, nil, nil)
	}
}

func TestQueryParam(t *testing.T) {
	for _, c := range []struct {
		raw, name, want string
		n               int
	}{
		{"a=1&access_token=T&b=2", "access_token", "T", 1},
		{"access_token=T1&access%5Ftoken=T2", "access_token", "T1", 2},
		{"access_token=&x=1", "access_token", "", 1},
		{"secret=a%2Bb+c", "secret", "a+b c", 1},
		{"appid=wx1&appid=wx2", "appid", "wx1", 2},
		{"x=1", "access_token", "", 0},
		{"", "access_token", "", 0},
		{"bad=%zz&access_token=%", "access_token", "%", 1},
	} {
		got, n := queryParam(c.raw, c.name)
		if got != c.want || n != c.n {
			t.Errorf("queryParam(%q, %q) = %q, %d; want %q, %d", c.raw, c.name, got, n, c.want, c.n)
		}
	}
}

func TestUnsafePath(t *testing.T) {
	for path, bad := range map[string]bool{
		"/cgi-bin/user/info":           false,
		"/cgi-bin/user/info%20x":       false,
		"/cgi-bin/user/../menu/create": true,
		"/cgi-bin/./token":             true,
		"/cgi-bin/user/%2e%2e/menu":    true,
		"/cgi-bin/user/%2E%2e/menu":    true,
		"/cgi-bin/user/..%2fmenu":      true,
		"/cgi-bin/user%5cmenu":         true,
		"//cgi-bin/token":              true,
		"/cgi-bin/user/info/..":        true,
		"/cgi-bin/%41%42/x":            false,
		"/cgi-bin/a%20b/%25/c":         false,
	} {
		u, err := url.Parse("http://h" + path)
		if err != nil {
			t.Fatal(err)
		}
		if got := unsafePath(u) != ""; got != bad {
			t.Errorf("unsafePath(%s) = %q, want refused %v", path, unsafePath(u), bad)
		}
	}
	u, _ := url.Parse("http://h/cgi-bin/user/info?openid=x")
	if n := testing.AllocsPerRun(100, func() { _ = unsafePath(u) }); n != 0 {
		t.Errorf("unsafePath allocates %v times", n)
	}
}
