package caddywechat

import (
	"net/http/httptest"
	"testing"
)

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

func BenchmarkRequestRewrite(b *testing.B) {
	r := httptest.NewRequest("GET", "/cgi-bin/user/info?openid=o6_bmjrPTlm6_2sgVt7hMZOPfL2M&lang=zh_CN", nil)
	tok := "81_abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-abcdefgh"
	b.ReportAllocs()
	for b.Loop() {
		_ = upstreamRequest(r, "access_token", tok, nil, nil)
	}
}
