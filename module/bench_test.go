package caddywechat

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

// discard is a ResponseWriter that keeps nothing, for benchmarks.
type discard struct{ h http.Header }

func (d *discard) Header() http.Header         { return d.h }
func (d *discard) Write(p []byte) (int, error) { return len(p), nil }
func (d *discard) WriteHeader(int)             {}

// BenchmarkInspector: one small JSON answer through the inspector, held
// back, scanned for a token error, masked and passed on.
func BenchmarkInspector(b *testing.B) {
	answer := []byte(`{"subscribe":1,"openid":"o6_bmjrPTlm6_2sgVt7hMZOPfL2M","language":"zh_CN","subscribe_time":1700000000,"unionid":"oAbCdEfGhIjKlMnOpQrStUvWxYz0","remark":"","groupid":0,"tagid_list":[],"subscribe_scene":"ADD_SCENE_QR_CODE","qr_scene":0,"qr_scene_str":""}`)
	confidential := []string{"0123456789abcdef0123456789abcdef", "86_abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789abcdefghijklmnopqrstuvwxyz"}
	w := &discard{h: make(http.Header)}
	b.ReportAllocs()
	for b.Loop() {
		i := newInspector(w, confidential)
		i.Header().Set("Content-Type", "application/json; encoding=utf-8")
		i.WriteHeader(http.StatusOK)
		_, _ = i.Write(answer)
		if _, _, rejected := i.tokenError(); rejected {
			b.Fatal("a token error")
		}
		i.pass()
		i.free()
		clear(w.h)
	}
}

// BenchmarkAuthorizeClients: a clients-mode call's authorization, its
// gateway token verified from the cache.
func BenchmarkAuthorizeClients(b *testing.B) {
	g := newGateway(b)
	site := g.clientsSite()
	tok := g.gatewayToken(site, "official", mpAppID, shopKey)
	r := httptest.NewRequest(http.MethodGet, "/cgi-bin/user/info?openid=o1&access_token="+tok, nil)
	if _, refusal := site.authorize(r); refusal != nil {
		b.Fatal(refusal)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, refusal := site.authorize(r); refusal != nil {
			b.Fatal(refusal)
		}
	}
}
