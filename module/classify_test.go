package caddywechat

import (
	"net/url"
	"testing"
)

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
		class, _ := classify(&url.URL{Path: path})
		got := class == pathAPI
		if got != want {
			t.Errorf("%s: injected %v, want %v", path, got, want)
		}
	}
	for path, want := range map[string]bool{
		"/cgi-bin/token": true, "/cgi-bin/stable_token": true, "/cgi-bin/gettoken": true, "/cgi-bin/token/": true,
		"/cgi-bin/tokenx": false, "/cgi-bin/ticket/getticket": false,
	} {
		if got := tokenEndpoint(path) != ""; got != want {
			t.Errorf("tokenEndpoint(%s) = %v", path, got)
		}
	}
}

func TestUnsafePath(t *testing.T) {
	for path, bad := range map[string]bool{
		"/cgi-bin/user/info":           false,
		"/cgi-bin/user/info%20x":       true,
		"/cgi-bin/user/../menu/create": true,
		"/cgi-bin/./token":             true,
		"/cgi-bin/user/%2e%2e/menu":    true,
		"/cgi-bin/user/%2E%2e/menu":    true,
		"/cgi-bin/user/..%2fmenu":      true,
		"/cgi-bin/user%5cmenu":         true,
		"//cgi-bin/token":              true,
		"/cgi-bin/user/info/..":        true,
		"/cgi-bin/%41%42/x":            true,
		"/cgi-bin/a%20b/%25/c":         true,
		"/cgi-bin/user/..;/menu":       true,
		"/cgi-bin/user/.;x/menu":       true,
		"/cgi-bin/user/..%3b/menu":     true,
		"/cgi-bin/user/..%3B/menu":     true,
		"/cgi-bin/user/a;b/menu":       true,
		"/cgi-bin/%252e%252e/token":    true,
		"/cgi-bin/user/info%00":        true,
		"/cgi-bin/‥/token":             true,
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
