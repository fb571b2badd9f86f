package caddywechat

import (
	"bytes"
	"compress/flate"
	"compress/gzip"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"net/textproto"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// realFront serves a trusted site for mp over a real HTTP server, with
// Caddy's own reverse_proxy to upstream as next. It returns the front's
// address and a func giving the real tokens the upstream was sent.
func realFront(t *testing.T, upstream http.HandlerFunc) (front string, tokens func() []string) {
	t.Helper()
	var mu sync.Mutex
	var seen []string
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.URL.Query().Get("access_token"))
		mu.Unlock()
		upstream(w, r)
	}))
	t.Cleanup(up.Close)
	rp := provisionReverseProxy(t, up.Listener.Addr().String())
	g := newGateway(t)
	h := g.trustedSite()
	g.warm()
	nop := caddyhttp.HandlerFunc(func(http.ResponseWriter, *http.Request) error { return nil })
	next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error { return rp.ServeHTTP(w, r, nop) })
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r = caddyhttp.PrepareRequest(r, caddy.NewReplacer(), w, &caddyhttp.Server{})
		if err := h.ServeHTTP(w, r, next); err != nil {
			t.Errorf("ServeHTTP: %v", err)
		}
	}))
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String(), func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), seen...)
	}
}

// leaks reports whether any real token the upstream got appears in s.
func leaks(s string, tokens []string) bool {
	for _, tok := range tokens {
		if tok != "" && strings.Contains(s, tok) {
			return true
		}
	}
	return false
}

// rawExchange sends req on a fresh TCP connection and returns all it reads
// until the server closes it or a second passes without data.
func rawExchange(t *testing.T, addr, req string) string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	buf := make([]byte, 32<<10)
	for {
		_ = c.SetReadDeadline(time.Now().Add(time.Second))
		n, err := c.Read(buf)
		out.Write(buf[:n])
		if err != nil {
			return out.String()
		}
	}
}

func echoURI(w http.ResponseWriter, r *http.Request) string {
	return `{"errcode":0,"errmsg":"ok","request_url":"` + r.URL.RequestURI() + `"}`
}

// TestTransportGzipAnswerFromUpstream: WeChat gzips its answer (the transport
// asked for gzip on its own): the token inside must still be masked.
func TestTransportGzipAnswerFromUpstream(t *testing.T) {
	front, tokens := realFront(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json; encoding=utf-8")
		w.Header().Set("Content-Encoding", "gzip")
		zw := gzip.NewWriter(w)
		_, _ = io.WriteString(zw, echoURI(w, r))
		_ = zw.Close()
	})
	res, err := http.Get("http://" + front + "/cgi-bin/user/info?openid=o1")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	t.Logf("%d %v %q", res.StatusCode, res.Header, body)
	if leaks(string(body), tokens()) {
		t.Errorf("client got the real token: %q", body)
	}
}

// TestTransportOpaqueEncodingRefused: Go's transport undoes only the gzip
// it asked for; an answer in any other coding (deflate, x-gzip) cannot be
// masked or checked for a token error, so it does not reach the client:
// a WeChat-shaped -1 in its place, and no replay of what could not be read.
func TestTransportOpaqueEncodingRefused(t *testing.T) {
	for _, c := range []struct{ coding, answer string }{
		{"deflate", ""},
		{"x-gzip", ""},
		{"deflate", `{"errcode":40001,"errmsg":"invalid credential, access_token is invalid or not latest rid: 1-2-3"}`},
	} {
		front, tokens := realFront(t, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json; encoding=utf-8")
			w.Header().Set("Content-Encoding", c.coding)
			w.Header().Set("X-Echo", r.URL.RequestURI())
			var zw io.WriteCloser
			if c.coding == "deflate" {
				zw, _ = flate.NewWriter(w, flate.BestCompression)
			} else {
				zw = gzip.NewWriter(w)
			}
			answer := c.answer
			if answer == "" {
				answer = `{"errcode":0,"errmsg":"ok","request_url":"` + r.URL.RequestURI() + `"}`
			}
			_, _ = io.WriteString(zw, answer)
			_ = zw.Close()
		})
		tr := &http.Transport{DisableCompression: true}
		res, err := (&http.Client{Transport: tr}).Get("http://" + front + "/cgi-bin/user/info?openid=o1")
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusBadGateway || res.Header.Get("Content-Encoding") != "" || res.Header.Get("X-Echo") != "" ||
			!strings.Contains(string(raw), `"errcode":-1`) || leaks(string(raw), tokens()) {
			t.Errorf("%s: %d %v %q, want a plain 502 errcode -1 and nothing of the answer", c.coding, res.StatusCode, res.Header, raw)
		}
		if n := len(tokens()); n != 1 {
			t.Errorf("%s: upstream called %d times, want 1 (no replay of an answer that could not be read)", c.coding, n)
		}
	}
}

// TestTransportEarlyHintsMasked: a 103 with the token in a Link header.
func TestTransportEarlyHintsMasked(t *testing.T) {
	front, tokens := realFront(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Link", "</x?"+r.URL.RawQuery+">; rel=preload")
		w.Header().Set("X-Echo", r.URL.Query().Get("access_token"))
		w.WriteHeader(http.StatusEarlyHints)
		w.Header().Del("Link")
		w.Header().Del("X-Echo")
		jsonAnswer(`{"errcode":0}`)(w, r)
	})
	var got []string
	req, _ := http.NewRequest(http.MethodGet, "http://"+front+"/cgi-bin/user/info?openid=o1", nil)
	req = req.WithContext(httptrace.WithClientTrace(req.Context(), &httptrace.ClientTrace{
		Got1xxResponse: func(code int, h textproto.MIMEHeader) error {
			for k, v := range h {
				got = append(got, k+": "+strings.Join(v, ","))
			}
			return nil
		},
	}))
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	t.Logf("1xx headers %q; final %v %q", got, res.Header, body)
	if leaks(strings.Join(got, "\n"), tokens()) {
		t.Errorf("103 carried the real token: %q", got)
	}
}

// TestTransportHeldAnswerTrailersMasked: a small JSON answer (held back) whose
// trailers echo the token.
func TestTransportHeldAnswerTrailersMasked(t *testing.T) {
	for _, announced := range []bool{true, false} {
		front, tokens := realFront(t, func(w http.ResponseWriter, r *http.Request) {
			if announced {
				w.Header().Set("Trailer", "X-Echo")
			}
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusOK)
			_, _ = io.WriteString(w, `{"errcode":0}`)
			if announced {
				w.Header().Set("X-Echo", r.URL.Query().Get("access_token"))
			} else {
				w.Header().Set(http.TrailerPrefix+"X-Late", "access_token="+r.URL.Query().Get("access_token"))
			}
		})
		res, err := http.Get("http://" + front + "/cgi-bin/user/info?openid=o1")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		t.Logf("announced %v: %v trailer %v %q", announced, res.Header, res.Trailer, body)
		var all strings.Builder
		_ = res.Header.Write(&all)
		_ = res.Trailer.Write(&all)
		if leaks(all.String()+string(body), tokens()) {
			t.Errorf("announced %v: real token in headers/trailers: %q", announced, all.String())
		}
	}
}

// TestTransportLargeChunkedEchoMasked: a large 500 answer echoing the token
// many times, flushed in odd pieces (token cut by chunk ends).
func TestTransportLargeChunkedEchoMasked(t *testing.T) {
	front, tokens := realFront(t, func(w http.ResponseWriter, r *http.Request) {
		tok := r.URL.Query().Get("access_token")
		w.WriteHeader(http.StatusInternalServerError) // no Content-Type
		rc := http.NewResponseController(w)
		piece := "x&access_token=" + tok + "&" + tok + " "
		all := strings.Repeat(piece, 4000)
		for i := 0; i < len(all); {
			n := min(7+i%13, len(all)-i)
			_, _ = io.WriteString(w, all[i:i+n])
			_ = rc.Flush()
			i += n
		}
	})
	res, err := http.Get("http://" + front + "/cgi-bin/user/info?openid=o1")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	toks := tokens()
	t.Logf("status %d, %d bytes, tokens %q", res.StatusCode, len(body), toks)
	if leaks(string(body), toks) {
		t.Errorf("real token in a streamed 500")
	}
	for _, tok := range toks {
		if len(tok) > 10 && strings.Contains(string(body), tok[:10]) {
			t.Errorf("a piece of the token reached the client")
		}
	}
}

// TestTransportRedirectAndHeadersMasked: a 302 with the token in Location,
// Set-Cookie, X-Anything; also to HEAD.
func TestTransportRedirectAndHeadersMasked(t *testing.T) {
	front, tokens := realFront(t, func(w http.ResponseWriter, r *http.Request) {
		tok := r.URL.Query().Get("access_token")
		w.Header().Set("Location", "https://mp.weixin.qq.com/x?"+r.URL.RawQuery)
		w.Header().Set("Set-Cookie", "t="+tok+"; Path=/")
		w.Header().Set("X-Anything", tok)
		w.WriteHeader(http.StatusFound)
		_, _ = io.WriteString(w, "<a href=\"/x?"+r.URL.RawQuery+"\">moved</a>")
	})
	for _, m := range []string{http.MethodGet, http.MethodHead} {
		raw := rawExchange(t, front, m+" /cgi-bin/user/info?openid=o1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
		t.Logf("%s: %q", m, raw)
		if leaks(raw, tokens()) {
			t.Errorf("%s: real token reached the client", m)
		}
	}
}

// TestTransportRequestTransportTricks: absolute-form URI, odd Host,
// Expect: 100-continue, chunked POST with trailers, Connection tricks,
// pipelining: every answer masked, nothing leaks.
func TestTransportRequestTransportTricks(t *testing.T) {
	front, tokens := realFront(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Host", r.Host)
		_, _ = io.WriteString(w, `{"errcode":0,"uri":"`+r.URL.RequestURI()+`","host":"`+r.Host+`","body":"`+string(b)+`","te":"`+strings.Join(r.TransferEncoding, ",")+`"}`)
	})
	for _, req := range []string{
		"GET http://evil.example:9/cgi-bin/user/info?openid=o1 HTTP/1.1\r\nHost: evil.example:9\r\nConnection: close\r\n\r\n",
		"GET /cgi-bin/user/info?openid=o1 HTTP/1.1\r\nHost: a@b\r\nConnection: close\r\n\r\n",
		"POST /cgi-bin/message/custom/send HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}",
		"POST /cgi-bin/message/custom/send HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTrailer: X-T\r\nConnection: close\r\n\r\n2\r\n{}\r\n0\r\nX-T: 1\r\n\r\n",
		"GET /cgi-bin/user/info?openid=o1 HTTP/1.1\r\nHost: x\r\nConnection: close, Content-Type, X-Forwarded-For, Accept-Encoding\r\nAccept-Encoding: gzip\r\n\r\n",
		"GET /cgi-bin/user/info?openid=o1 HTTP/1.1\r\nHost: x\r\n\r\nGET /cgi-bin/user/info?openid=o2 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
		"OPTIONS * HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
		"CONNECT api.weixin.qq.com:443 HTTP/1.1\r\nHost: api.weixin.qq.com:443\r\nConnection: close\r\n\r\n",
		"HEAD /cgi-bin/user/info?openid=o1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
	} {
		raw := rawExchange(t, front, req)
		first, _, _ := strings.Cut(req, "\r\n")
		t.Logf("%s\n=> %q", first, raw)
		if leaks(raw, tokens()) {
			t.Errorf("%s: real token reached the client", first)
		}
	}
}

// TestTransportReplayThroughRealProxy: the first answer (gzip, a 103 with the
// token, headers and trailers echoing it) is a token error; the replay's
// answer is clean. Nothing of the first may reach the client, and the call
// must be replayed.
func TestTransportReplayThroughRealProxy(t *testing.T) {
	var mu sync.Mutex
	n := 0
	front, tokens := realFront(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		n++
		first := n == 1
		mu.Unlock()
		tok := r.URL.Query().Get("access_token")
		if first {
			w.Header().Set("Link", "<"+r.URL.RequestURI()+">")
			w.WriteHeader(http.StatusEarlyHints)
			w.Header().Del("Link")
			w.Header().Set("Trailer", "X-T")
			w.Header().Set("X-First", tok)
			w.Header().Set("Content-Type", "application/json; encoding=utf-8")
			w.Header().Set("Content-Encoding", "gzip")
			zw := gzip.NewWriter(w)
			_, _ = io.WriteString(zw, `{"errcode":40001,"errmsg":"invalid credential, access_token is invalid or not latest rid: 1-2-3"}`)
			_ = zw.Close()
			w.Header().Set("X-T", tok)
			return
		}
		jsonAnswer(`{"errcode":0,"errmsg":"ok"}`)(w, r)
	})
	raw := rawExchange(t, front, "GET /cgi-bin/user/info?openid=o1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	toks := tokens()
	t.Logf("tokens %d distinct=%v\n%q", len(toks), len(toks) == 2 && toks[0] != toks[1], raw)
	if leaks(raw, toks) {
		t.Errorf("real token reached the client")
	}
	if len(toks) != 2 || !strings.Contains(raw, `"errcode":0`) || strings.Contains(raw, "X-First") {
		t.Errorf("no clean replay")
	}
}

// TestTransportClientGoneDuringReplay: the client hangs up while the replay's
// long answer streams; the gateway survives, later calls work, and no
// further refresh happens.
func TestTransportClientGoneDuringReplay(t *testing.T) {
	var mu sync.Mutex
	n := 0
	release := make(chan struct{})
	front, tokens := realFront(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		n++
		i := n
		mu.Unlock()
		switch i {
		case 1:
			jsonAnswer(`{"errcode":40001,"errmsg":"invalid credential rid: 1-2-3"}`)(w, r)
		case 2:
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusOK)
			piece := strings.Repeat("access_token="+r.URL.Query().Get("access_token")+"&", 100)
			for k := 0; k < 2000; k++ {
				if _, err := io.WriteString(w, piece); err != nil {
					return
				}
				_ = http.NewResponseController(w).Flush()
				if k == 10 {
					<-release
				}
			}
		default:
			jsonAnswer(`{"errcode":0,"errmsg":"ok"}`)(w, r)
		}
	})
	c, err := net.Dial("tcp", front)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.WriteString(c, "GET /cgi-bin/user/info?openid=o1 HTTP/1.1\r\nHost: x\r\n\r\n")
	buf := make([]byte, 40<<10)
	got, _ := io.ReadAtLeast(c, buf, 20<<10)
	c.Close()
	close(release)
	if leaks(string(buf[:got]), tokens()) {
		t.Errorf("leak before hang-up")
	}
	raw := rawExchange(t, front, "GET /cgi-bin/user/info?openid=o1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	toks := tokens()
	t.Logf("upstream calls %d, distinct tokens %v; after: %q", len(toks), toks[0] != toks[1] && toks[1] == toks[2], raw)
	if !strings.Contains(raw, `"errcode":0`) || len(toks) != 3 || toks[2] != toks[1] {
		t.Errorf("after the hang-up: %q", raw)
	}
}

// TestTransportStreamedTrailersRealProxy: a streamed (non-200) answer with
// announced and unannounced trailers echoing the token.
func TestTransportStreamedTrailersRealProxy(t *testing.T) {
	front, tokens := realFront(t, func(w http.ResponseWriter, r *http.Request) {
		tok := r.URL.Query().Get("access_token")
		w.Header().Set("Trailer", "X-A")
		w.WriteHeader(http.StatusBadRequest)
		_, _ = io.WriteString(w, strings.Repeat("y", 9000))
		w.Header().Set("X-A", tok)
		w.Header().Set(http.TrailerPrefix+"X-B", "access_token="+tok)
	})
	raw := rawExchange(t, front, "GET /cgi-bin/user/info?openid=o1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	i := strings.LastIndex(raw, "yyy")
	t.Logf("head %q ... tail %q", raw[:200], raw[i:])
	if leaks(raw, tokens()) {
		t.Errorf("real token in a streamed answer's trailers")
	}
}

// TestTransportEchoVariants: held answers without Content-Type, percent- and
// JSON-escaped echoes of the query.
func TestTransportEchoVariants(t *testing.T) {
	for name, answer := range map[string]func(r *http.Request) string{
		"no content type": func(r *http.Request) string { return r.URL.RawQuery },
		"percent-encoded": func(r *http.Request) string {
			return `{"u":"` + strings.ReplaceAll(strings.ReplaceAll(r.URL.RawQuery, "=", "%3D"), "&", "%26") + `"}`
		},
		"json-escaped &": func(r *http.Request) string {
			return `{"u":"` + strings.ReplaceAll(r.URL.RawQuery, "&", `\u0026`) + `"}`
		},
	} {
		front, tokens := realFront(t, func(w http.ResponseWriter, r *http.Request) {
			if name != "no content type" {
				w.Header().Set("Content-Type", "application/json")
			}
			_, _ = io.WriteString(w, answer(r))
		})
		raw := rawExchange(t, front, "GET /cgi-bin/user/info?openid=o1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
		_, body, _ := strings.Cut(raw, "\r\n\r\n")
		t.Logf("%s: %q", name, body)
		if leaks(raw, tokens()) {
			t.Errorf("%s: leak", name)
		}
	}
}
