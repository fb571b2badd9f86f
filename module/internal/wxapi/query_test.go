package wxapi

import (
	"iter"
	"math/rand/v2"
	"net/url"
	"strings"
	"testing"
)

func TestWithToken(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"", "access_token=T"},
		{"openid=o1", "access_token=T&openid=o1"},
		{"access_token=OLD&openid=o1", "access_token=T&openid=o1"},
		{"openid=o1&access%5Ftoken=OLD&access_token&x=", "access_token=T&openid=o1&x="},
		{"a=1&&b=2", "access_token=T&a=1&b=2"},
		{"access_token_x=keep", "access_token=T&access_token_x=keep"},
		// No access_token in any spelling: the query is kept as it is...
		{"openid=o1&lang=zh_CN", "access_token=T&openid=o1&lang=zh_CN"},
		{"q=a+b&n=%E4", "access_token=T&q=a+b&n=%E4"},
		{"ACCESS_TOKEN=x", "access_token=T&ACCESS_TOKEN=x"},
		// Sent once, literally: that component is dropped, the rest kept.
		{"access_token=OLD", "access_token=T"},
		{"access_token", "access_token=T"},
		{"openid=o1&lang=zh_CN&access_token=OLD", "access_token=T&openid=o1&lang=zh_CN"},
		{"openid=o1&access_token&lang=zh_CN", "access_token=T&openid=o1&lang=zh_CN"},
		// Not a whole key, or more than once.
		{"openid=access_token&access_token=OLD", "access_token=T&openid=access_token"},
		{"xaccess_token=1&access_token=OLD", "access_token=T&xaccess_token=1"},
		{"access_tokenx=1&lang=zh_CN", "access_token=T&access_tokenx=1&lang=zh_CN"},
		{"access_token=1&a=2&access_token=3", "access_token=T&a=2"},
		// ...but for its empty components.
		{"&openid=o1", "access_token=T&openid=o1"},
		{"openid=o1&", "access_token=T&openid=o1"},
		{"&", "access_token=T"},
	} {
		if got := WithToken(c.in, "T"); got != c.want {
			t.Errorf("WithToken(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

// TestWithParamShortcuts: WithParam's shortcuts for unescaped queries
// give what reading every component gives, on queries built from pieces
// that sit close to the shortcuts' edges.
func TestWithParamShortcuts(t *testing.T) {
	pieces := []string{"access_token", "access_token=", "=", "&", "x", "xaccess_token", "access_tokenx", "=access_token", "%5F", "+"}
	for raw := range randomQueries(1, pieces) {
		if got, want := WithParam(raw, "access_token", "T"), rewriteParams(raw, "access_token", "T"); got != want {
			t.Fatalf("WithParam(%q) = %q, reading every component gives %q", raw, got, want)
		}
	}
}

// TestRedactShortcut: redact's shortcut for unescaped queries gives what
// reading every component gives, with names of which one holds the other.
func TestRedactShortcut(t *testing.T) {
	names := []string{"access_token", "component_access_token"}
	pieces := []string{"access_token", "component_access_token", "=", "&", "x", "xaccess_token", "access_tokenx", "=access_token", "%5F", "+"}
	for raw := range randomQueries(2, pieces) {
		if got, want := redact("/p?", raw, names), redactParts("/p?", raw, names); got != want {
			t.Fatalf("redact(%q) = %q, reading every component gives %q", raw, got, want)
		}
	}
}

// TestRewrite: Rewrite gives what WithParam and RedactURI give, for the
// parameter names of an app's and a platform's token, on queries built
// from pieces close to its shortcut's edges.
func TestRewrite(t *testing.T) {
	names := []string{"access_token", "component_access_token"}
	pieces := []string{"access_token", "component_access_token", "=", "&", "x", "xaccess_token", "access_tokenx", "=access_token", "%5F", "+", "=T"}
	for _, name := range names {
		for raw := range randomQueries(3, pieces) {
			u := &url.URL{Path: "/cgi-bin/p", RawQuery: raw}
			query, uri := Rewrite(u, name, "TOKEN", names...)
			wantURI, _ := RedactURI(u, names...)
			if want := WithParam(raw, name, "TOKEN"); query != want || uri != wantURI {
				t.Fatalf("Rewrite(%q, %s) = %q, %q; want %q, %q", raw, name, query, uri, want, wantURI)
			}
		}
	}
	for _, u := range []*url.URL{
		{Path: "/cgi-bin/user/info", RawQuery: "openid=o1&access_token=gw2.abc.def&lang=zh_CN"},
		{Path: "/cgi-bin/user/info", RawQuery: "openid=o1&lang=zh_CN"},
		{Path: "/wxa/business/getuserphonenumber/and/more", RawQuery: "access_token=gw2.abc.def"}, // a path over 32 bytes
	} {
		raw := u.RawQuery
		if n := testing.AllocsPerRun(50, func() { _, _ = Rewrite(u, "access_token", "REAL", names...) }); n != 1 {
			t.Errorf("Rewrite(%q): %v allocations, want 1", raw, n)
		}
	}
}

// randomQueries yields 20,000 queries of up to five pieces each, drawn
// with the given seed.
func randomQueries(seed uint64, pieces []string) iter.Seq[string] {
	return func(yield func(string) bool) {
		rng := rand.New(rand.NewPCG(seed, seed))
		for range 20000 {
			var b strings.Builder
			for range rng.IntN(6) {
				b.WriteString(pieces[rng.IntN(len(pieces))])
			}
			if !yield(b.String()) {
				return
			}
		}
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
		got, n := QueryParam(c.raw, c.name)
		if got != c.want || n != c.n {
			t.Errorf("QueryParam(%q, %q) = %q, %d; want %q, %d", c.raw, c.name, got, n, c.want, c.n)
		}
	}
}

func TestRedactParams(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"openid=o1&access_token=SECRET&access%5ftoken=S2", "openid=o1&access_token=REDACTED&access%5ftoken=REDACTED"},
		{"secret=S&x=1&access_token=T&&y=secret", "secret=REDACTED&x=1&access_token=REDACTED&&y=secret"},
		{"x=1", "x=1"},
		{"a=%41&b=2", "a=%41&b=2"},
		{"a=b+c&secre%74=S", "a=b+c&secre%74=REDACTED"},
		{"", ""},
	} {
		if got := RedactParams(c.in, "access_token", "secret"); got != c.want {
			t.Errorf("RedactParams(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestCleanQuery(t *testing.T) {
	for raw, ok := range map[string]bool{
		"":                                   true,
		"openid=o1&lang=zh_CN":               true,
		"x":                                  true,
		"a=%E4%BD%A0&b=1+2":                  true,
		"media_id=x.y-z":                     true,
		"x=1;access_token=BOGUS":             false,
		";secret=k":                          false,
		"access_token%00=x":                  false,
		"access_token%20=x":                  false,
		"bad=%zz":                            false,
		"bad=%4":                             false,
		"k%3Bv=1":                            false,
		"next_openid=&begin_date=2024-01-01": true,
	} {
		if got := CleanQuery(raw) == ""; got != ok {
			t.Errorf("CleanQuery(%q) = %q, want accepted %v", raw, CleanQuery(raw), ok)
		}
	}
}

func TestRedactURI(t *testing.T) {
	if got, ok := RedactURI(&url.URL{Path: "/p", RawQuery: "x=1&access_token=T"}, "access_token"); !ok || got != "/p?x=1&access_token=REDACTED" {
		t.Errorf("RedactURI = %q, %v", got, ok)
	}
	if got, ok := RedactURI(&url.URL{Path: "/p", RawQuery: "x=1"}, "access_token"); ok || got != "" {
		t.Errorf("RedactURI with nothing to redact = %q, %v", got, ok)
	}
}

// TestRewritesAllocateOnce: the query rewrite and the redaction size their
// result exactly, so that a long dropped or redacted value (a gateway
// token) costs no allocation for itself.
func TestRewritesAllocateOnce(t *testing.T) {
	query := "openid=o1&access_token=gw1." + strings.Repeat("x", 200) + "&lang=zh_CN"
	for name, f := range map[string]func() string{
		"WithParam":                func() string { return WithParam(query, "access_token", "T") },
		"WithParam, no token sent": func() string { return WithParam("openid=o1&lang=zh_CN", "access_token", "T") },
		"RedactParams":             func() string { return RedactParams(query, "access_token") },
	} {
		if n := testing.AllocsPerRun(50, func() { _ = f() }); n != 1 {
			t.Errorf("%s: %v allocations", name, n)
		}
	}
	if got := RedactParams("a=1&access%5ftoken&access_token=", "access_token"); got != "a=1&access%5ftoken=REDACTED&access_token=REDACTED" {
		t.Errorf("RedactParams of bare keys = %q", got)
	}
}
