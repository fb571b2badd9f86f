package caddywechat

import (
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// defaultTokenPaths are the path prefixes that take ?access_token= on
// api.weixin.qq.com and qyapi.weixin.qq.com (wechat-api.md section 6).
var defaultTokenPaths = []string{
	"/cgi-bin/", "/wxa/", "/wxaapi/", "/datacube/", "/card/", "/customservice/", "/shop/",
	"/product/", "/tcb/", "/cv/", "/xpay/", "/marketing/", "/semantic/", "/channels/",
	"/merchant/", "/scan/", "/device/", "/intp/", "/bizwifi/", "/poi/", "/wxopen/", "/express/",
}

// neverTokenPaths take another credential: user OAuth tokens (/sns/), the
// component token of third-party platforms (/cgi-bin/component/) and the
// suite and provider tokens of WeCom third-party apps (/cgi-bin/service/).
// The gateway never injects an app's access_token there.
var neverTokenPaths = []string{"/sns/", "/cgi-bin/component/", "/cgi-bin/service/"}

// tokenEndpoints are answered by the gateway itself: forwarding them would
// spend the account's quota and, for /cgi-bin/token, invalidate the
// gateway's own token.
var tokenEndpoints = []string{"/cgi-bin/token", "/cgi-bin/stable_token", "/cgi-bin/gettoken"}

func hasAnyPrefix(path string, prefixes []string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(path, p) {
			return true
		}
	}
	return false
}

func isTokenEndpoint(path string) bool {
	for _, p := range tokenEndpoints {
		if path == p || (len(path) == len(p)+1 && path[len(p)] == '/' && strings.HasPrefix(path, p)) {
			return true
		}
	}
	return false
}

// withToken returns rawQuery with every access_token parameter the client
// sent removed and access_token=tok appended. tok is URL-safe (the token
// package refuses any other).
func withToken(rawQuery, tok string) string {
	var b strings.Builder
	b.Grow(len(rawQuery) + len("&access_token=") + len(tok))
	rest := rawQuery
	for rest != "" {
		var part string
		part, rest, _ = strings.Cut(rest, "&")
		if part == "" || isTokenParam(part) {
			continue
		}
		b.WriteString(part)
		b.WriteByte('&')
	}
	b.WriteString("access_token=")
	b.WriteString(tok)
	return b.String()
}

// unsafePath says why a request path is refused, or "": dot segments, empty
// segments and encoded slashes, dots or backslashes would let a path that
// the gateway checks (a client's allowed paths, /sns/, the token endpoints)
// mean another path to WeChat.
func unsafePath(u *url.URL) string {
	p := u.EscapedPath()
	if strings.Contains(p, "//") {
		return "empty path segment"
	}
	for rest := p; rest != ""; {
		var seg string
		seg, rest, _ = strings.Cut(rest, "/")
		if seg == "." || seg == ".." {
			return "dot segment"
		}
	}
	for i := 0; i+2 < len(p); i++ {
		if p[i] != '%' {
			continue
		}
		hi, lo := p[i+1], p[i+2]|0x20 // lower-case the second hex digit
		if (hi == '2' && (lo == 'e' || lo == 'f')) || (hi == '5' && lo == 'c') {
			return "encoded dot, slash or backslash"
		}
	}
	if strings.ContainsRune(u.Path, '\\') {
		return "backslash"
	}
	return ""
}

// redactedURI returns the request's URI with the values of any
// access_token parameters the client sent replaced by REDACTED.
func redactedURI(r *http.Request) string {
	if !strings.ContainsAny(r.URL.RawQuery, "%+") && !strings.Contains(r.URL.RawQuery, "token") {
		return r.RequestURI
	}
	var b strings.Builder
	b.WriteString(r.URL.EscapedPath())
	sep := byte('?')
	for rest := r.URL.RawQuery; rest != ""; {
		var part string
		part, rest, _ = strings.Cut(rest, "&")
		b.WriteByte(sep)
		sep = '&'
		if isTokenParam(part) {
			key, _, _ := strings.Cut(part, "=")
			b.WriteString(key + "=REDACTED")
			continue
		}
		b.WriteString(part)
	}
	return b.String()
}

// isTokenParam reports whether a query parameter (key=value) is
// access_token, however the client encoded the key.
func isTokenParam(part string) bool {
	key, _, _ := strings.Cut(part, "=")
	return keyIs(key, "access_token")
}

// keyIs reports whether a raw query key, once unescaped, is name.
func keyIs(key, name string) bool {
	return key == name || (strings.ContainsAny(key, "%+") && unescape(key) == name)
}

// unescape decodes a query component; an invalid escape is kept as it is.
func unescape(s string) string {
	if !strings.ContainsAny(s, "%+") {
		return s
	}
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		switch {
		case s[i] == '+':
			b = append(b, ' ')
		case s[i] == '%' && i+2 < len(s) && ishex(s[i+1]) && ishex(s[i+2]):
			b = append(b, unhex(s[i+1])<<4|unhex(s[i+2]))
			i += 2
		default:
			b = append(b, s[i])
		}
	}
	return string(b)
}

func ishex(c byte) bool {
	return ('0' <= c && c <= '9') || ('a' <= c && c <= 'f') || ('A' <= c && c <= 'F')
}

func unhex(c byte) byte {
	switch {
	case '0' <= c && c <= '9':
		return c - '0'
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10
	default:
		return c - 'A' + 10
	}
}

// stuckFor is how long a path where a fresh token was refused too is left
// alone: its token errors are passed on with no refresh and no replay.
const stuckFor = 10 * time.Minute

// maxStuck bounds the paths remembered; past it the memory starts afresh.
const maxStuck = 1024

// stuckPaths remembers (account, path) pairs where WeChat refused a token
// the gateway had just fetched: a refresh cannot fix those (40014 for a token
// of the wrong kind), and refreshing on every call would burn the quota.
type stuckPaths struct {
	n     atomic.Int32 // entries: lets the common case skip the lock
	mu    sync.Mutex
	until map[[2]string]time.Time
}

func (s *stuckPaths) add(account, path string, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.until == nil || len(s.until) >= maxStuck {
		s.until = make(map[[2]string]time.Time)
	}
	s.until[[2]string{account, path}] = now.Add(stuckFor)
	s.n.Store(int32(len(s.until)))
}

func (s *stuckPaths) has(account, path string, now time.Time) bool {
	if s.n.Load() == 0 {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	until, ok := s.until[[2]string{account, path}]
	if ok && !now.Before(until) {
		delete(s.until, [2]string{account, path})
		s.n.Store(int32(len(s.until)))
		return false
	}
	return ok
}
