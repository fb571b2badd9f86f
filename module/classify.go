package caddywechat

import (
	"maps"
	"net/url"
	"slices"
	"strings"

	"github.com/wxgate/caddy-wechat/module/internal/wxapi"
)

// Stage 1 of a call: what its path is. The answer decides everything after
// it: whether the caller is authorized, whether a token is injected, and
// whether the gateway answers the call itself.

// pathClass is the kind of a request path.
type pathClass int

const (
	// pathAPI takes ?access_token=: the call is authorized, gets the
	// account's token and is replayed once if WeChat rejects it.
	pathAPI pathClass = iota
	// pathTokenEndpoint is a token endpoint, which the gateway answers itself.
	pathTokenEndpoint
	// pathRawToken is the raw-token endpoint (RawTokenPath).
	pathRawToken
	// pathAppSecret carries the AppSecret (secretParams): the gateway puts
	// it in.
	pathAppSecret
	// pathTicket asks for a JS-SDK ticket (ticketPaths): the gateway
	// answers from its ticket cache.
	pathTicket
	// pathJSSDKConfig is the gateway's wx.config signer (JSSDKConfigPath).
	pathJSSDKConfig
	// pathUserCredential carries a user's own OAuth credential (/sns/).
	pathUserCredential
	// pathOther takes another credential (third-party platform tokens) or
	// is not part of the WeChat API.
	pathOther
	// pathInvalid could mean another path to WeChat than it says (dot
	// segments, encoded slashes): refused in every mode.
	pathInvalid
)

// RawTokenPath is where a client granted raw_token reads the real access
// token of its account: GET /wechat-gateway/raw_token?access_token=<gateway
// token> answers {"access_token":"...","expires_in":<seconds left>}.
const RawTokenPath = "/wechat-gateway/raw_token"

// apiPaths are the path prefixes that take ?access_token= on
// api.weixin.qq.com and qyapi.weixin.qq.com.
var apiPaths = []string{
	"/cgi-bin/", "/wxa/", "/wxaapi/", "/datacube/", "/card/", "/customservice/", "/shop/",
	"/product/", "/tcb/", "/cv/", "/xpay/", "/marketing/", "/semantic/", "/channels/",
	"/merchant/", "/scan/", "/device/", "/intp/", "/bizwifi/", "/poi/", "/wxopen/", "/express/",
}

// otherCredentialPaths sit inside apiPaths but take another credential: the
// component token of third-party platforms (/cgi-bin/component/) and the
// suite and provider tokens of WeCom third-party apps (/cgi-bin/service/).
// The gateway never injects an app's access_token there.
var otherCredentialPaths = []string{"/cgi-bin/component/", "/cgi-bin/service/"}

// userCredentialPrefix is the family that carries a user's OAuth token.
const userCredentialPrefix = "/sns/"

// tokenEndpoints are answered by the gateway itself: forwarding them would
// spend the account's quota and, for /cgi-bin/token, invalidate the
// gateway's own token.
var tokenEndpoints = []string{"/cgi-bin/token", "/cgi-bin/stable_token", "/cgi-bin/gettoken"}

// classify returns the class of a request URL and, for pathInvalid, why
// it is refused.
func classify(u *url.URL) (pathClass, string) {
	if reason := unsafePath(u); reason != "" {
		return pathInvalid, reason
	}
	if reason := wxapi.CleanQuery(u.RawQuery); reason != "" {
		return pathInvalid, reason
	}
	path := u.Path
	class := classOf(path)
	if strings.HasSuffix(path, "/") && (class != pathOther || hasAnyPrefix(path, apiPaths)) {
		switch {
		case tokenEndpoint(path) != "":
			return pathTokenEndpoint, "" // SDKs that add a slash get their token
		case class == pathOther && strings.HasSuffix(path, "_token/"):
			// And a platform's or a WeCom suite's SDK its token (api_component_token,
			// api_authorizer_token, get_suite_token, get_provider_token, ...).
			return class, ""
		}
		// WeChat's API paths never end in one (a platform's and a WeCom
		// suite's under /cgi-bin/ no more than the rest), and a Caddy
		// matcher for the path without it (a rule in front of the gateway)
		// would not match.
		return pathInvalid, "the path ends in /; WeChat's API paths do not"
	}
	return class, ""
}

// classOf is the class of a path classify accepts.
func classOf(path string) pathClass {
	if class, ok := exactPaths[path]; ok {
		return class
	}
	switch {
	case strings.HasPrefix(path, userCredentialPrefix):
		return pathUserCredential
	case hasAnyPrefix(path, otherCredentialPaths) || !hasAnyPrefix(path, apiPaths):
		return pathOther
	}
	return pathAPI
}

// exactPaths are the paths whose class comes from the whole path, in one
// lookup: the raw-token and wx.config endpoints, the calls that carry the
// AppSecret, the ticket calls and the token endpoints.
var exactPaths = func() map[string]pathClass {
	m := make(map[string]pathClass)
	add := func(class pathClass, paths ...string) {
		for _, p := range paths {
			if _, dup := m[p]; dup {
				panic("classify: " + p + " is in two classes") // the lists above overlap
			}
			m[p] = class
		}
	}
	add(pathRawToken, RawTokenPath)
	add(pathJSSDKConfig, JSSDKConfigPath)
	add(pathAppSecret, slices.Collect(maps.Keys(secretParams))...)
	add(pathTicket, slices.Collect(maps.Keys(ticketPaths))...)
	add(pathTokenEndpoint, tokenEndpoints...)
	return m
}()

func hasAnyPrefix(path string, prefixes []string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(path, p) {
			return true
		}
	}
	return false
}

// tokenEndpoint returns the token endpoint path names, with or without a
// trailing slash, without it, or "".
func tokenEndpoint(path string) string {
	if len(path) > 1 && path[len(path)-1] == '/' {
		path = path[:len(path)-1]
	}
	if slices.Contains(tokenEndpoints, path) {
		return path
	}
	return ""
}

// unsafePath says why a request path is refused, or "": dot segments, empty
// segments and encoded slashes, dots or backslashes would let a path that
// the gateway checks (a client's allowed paths, /sns/, the token endpoints)
// mean another path to WeChat.
func unsafePath(u *url.URL) string {
	// A path without a raw form (the client escaped nothing) that is plain
	// is its own escaped form: no need to build that.
	if u.RawPath == "" && plainPath(u.Path) {
		return ""
	}
	p := u.EscapedPath()
	if plainPath(p) {
		return ""
	}
	if strings.Contains(p, "//") {
		return "empty path segment"
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
	// Servers that read ";params" off a segment (Tomcat, some proxies) take
	// "..;" for "..", so a segment is a dot segment whatever follows a ";".
	for _, path := range []string{p, u.Path} {
		for rest := path; rest != ""; {
			var seg string
			seg, rest, _ = strings.Cut(rest, "/")
			seg, _, _ = strings.Cut(seg, ";")
			if seg == "." || seg == ".." {
				return "dot segment"
			}
		}
	}
	// WeChat's paths are plain: letters, digits, '_', '-', '.' and '/'.
	// Anything else (a second level of escapes, NUL, look-alike dots)
	// could mean another path to a server that decodes it again.
	for i := 0; i < len(p); i++ {
		if c := p[i]; c != '/' && !wechatPathChar[c] {
			return "unexpected character in the path"
		}
	}
	if strings.ContainsRune(u.Path, '\\') {
		return "backslash"
	}
	return caseVariant(u.Path)
}

// caseVariant refuses a path that is, but for its case, one the gateway
// treats apart (the token and ticket endpoints, the AppSecret and admin
// calls, /sns/, a platform's /cgi-bin/component/): WeChat's paths are
// lower-case, and should WeChat read them without regard to case, such a
// variant must not slip past those checks with the account's token.
func caseVariant(path string) string {
	lower := strings.ToLower(path)
	if lower == path {
		return ""
	}
	if c := classOf(lower); c != pathAPI && c != pathOther || adminPath(lower) || hasAnyPrefix(lower, otherCredentialPaths) {
		return "the path is " + lower + " in other letter case; WeChat's paths are lower-case"
	}
	return ""
}

// plainPath reports, in one pass, that an escaped path is safe as it
// stands: WeChat's characters only (so nothing is escaped and Path is the
// same), in lower case, no empty segment, no dot segment. Any other path goes through
// unsafePath's checks, which say what is wrong with it.
func plainPath(p string) bool {
	seg := 0 // where the current segment starts
	for i := 0; i < len(p); i++ {
		switch c := p[i]; {
		case c == '/':
			if i > 0 && p[i-1] == '/' || isDotSegment(p[seg:i]) {
				return false
			}
			seg = i + 1
		case !plainPathChar[c]:
			return false
		}
	}
	return !isDotSegment(p[seg:])
}

// wechatPathChar holds the characters of WeChat's path segments: letters,
// digits, '_', '-' and '.'.
var wechatPathChar = func() (t [256]bool) {
	for c := range t {
		t[c] = c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.'
	}
	return t
}()

// plainPathChar is wechatPathChar without upper case, which plainPath
// leaves to unsafePath's checks (caseVariant).
var plainPathChar = func() (t [256]bool) {
	for c := range t {
		t[c] = wechatPathChar[c] && !('A' <= c && c <= 'Z')
	}
	return t
}()

func isDotSegment(seg string) bool { return seg == "." || seg == ".." }
