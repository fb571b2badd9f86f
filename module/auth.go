package caddywechat

import (
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/wxgate/caddy-wechat/module/internal/clientauth"
	"github.com/wxgate/caddy-wechat/module/internal/token"
	"github.com/wxgate/caddy-wechat/module/internal/wxapi"
)

// RawTokenPath is where a client granted raw_token reads the real access
// token of its account: GET /wechat-gateway/raw_token?access_token=<gateway
// token> answers {"access_token":"...","expires_in":<seconds left>}.
const RawTokenPath = "/wechat-gateway/raw_token"

// trustedToken is what the token endpoints hand out in trusted mode: any
// token works there, because the gateway replaces it.
const trustedToken = "caddy-wechat-trusted-site"

// smuggledParams are query parameters a client has no business sending on
// an API call through the gateway: credentials the gateway holds itself.
var smuggledParams = []string{"secret", "appsecret", "corpsecret", "component_access_token", "suite_access_token", "provider_access_token"}

// authorize returns the account whose token a call gets, or the refusal
// the caller sees.
func (h *Handler) authorize(r *http.Request) (*token.Handle, *clientauth.Error) {
	if h.Trusted {
		return h.fixed, nil
	}
	raw := r.URL.RawQuery
	for _, p := range smuggledParams {
		if _, n := queryParam(raw, p); n > 0 {
			return nil, &clientauth.Error{Code: wxapi.CodeInvalidCredential, Msg: "wechat gateway: parameter " + p + " is not accepted: the gateway holds the credentials"}
		}
	}
	claims, handle, refusal := h.caller(r)
	if refusal != nil {
		return nil, refusal
	}
	if refusal := h.app.auth.MayCall(claims, r.URL.Path); refusal != nil {
		return nil, refusal
	}
	appid := handle.Account().AppID
	for _, p := range []string{"appid", "corpid"} {
		if v, n := queryParam(raw, p); n > 1 || (n == 1 && v != appid) {
			return nil, &clientauth.Error{Code: wxapi.CodeInvalidAppID, Msg: "wechat gateway: " + p + " " + v + " is not the account this token is for"}
		}
	}
	return handle, nil
}

// caller verifies the gateway token of a call in clients mode and returns
// its claims and the account it is for, which must be the site's account
// if the site has one.
func (h *Handler) caller(r *http.Request) (*clientauth.Claims, *token.Handle, *clientauth.Error) {
	gwToken, n := queryParam(r.URL.RawQuery, "access_token")
	switch {
	case n == 0:
		return nil, nil, &clientauth.Error{Code: wxapi.CodeTokenMissing, Msg: "wechat gateway: access_token missing: fetch a gateway token from the token endpoint with the client key"}
	case n > 1:
		return nil, nil, &clientauth.Error{Code: wxapi.CodeInvalidCredential, Msg: "wechat gateway: invalid credential: several access_token parameters"}
	}
	claims, refusal := h.app.auth.Verify(gwToken)
	if refusal != nil {
		return nil, nil, refusal
	}
	if h.fixed != nil {
		if refusal := h.app.auth.ForAccount(claims, h.Account); refusal != nil {
			return nil, nil, refusal
		}
		return claims, h.fixed, nil
	}
	return claims, h.app.handles[claims.Account], nil
}

// serveTokenEndpoint answers an SDK's token call locally: with a gateway
// token for an authenticated client, or the placeholder token in trusted
// mode. Nothing reaches WeChat.
func (h *Handler) serveTokenEndpoint(w http.ResponseWriter, r *http.Request) {
	path := strings.TrimSuffix(r.URL.Path, "/")
	kind, appid, key, refusal := readTokenRequest(r, path)
	if refusal != nil {
		wxapi.WriteError(w, refusal.Code, refusal.Msg)
		return
	}
	if h.fixed != nil {
		if acct := h.fixed.Account(); string(acct.Kind) != kind || acct.AppID != appid {
			wxapi.WriteError(w, wxapi.CodeInvalidAppID, "wechat gateway: this site serves "+string(acct.Kind)+" account "+acct.AppID+", not "+kind+" "+appid)
			return
		}
	}
	var tok string
	ttl := clientauth.DefaultTTL
	if h.Trusted {
		tok = trustedToken
	} else {
		if tok, refusal = h.app.auth.Issue(kind, appid, key); refusal != nil {
			h.logger.Info("token request refused", zap.String("appid", appid), zap.Int("errcode", refusal.Code), zap.String("reason", refusal.Msg))
			wxapi.WriteError(w, refusal.Code, refusal.Msg)
			return
		}
		ttl = h.app.auth.TTL()
	}
	writeTokenAnswer(w, kind == "wecom", tok, ttl)
}

// readTokenRequest reads appid and key from a token-endpoint call the way
// WeChat does: query parameters for /cgi-bin/token and gettoken, a JSON
// body for stable_token.
func readTokenRequest(r *http.Request, path string) (kind, appid, key string, refusal *clientauth.Error) {
	bad := func(code int, msg string) (string, string, string, *clientauth.Error) {
		return "", "", "", &clientauth.Error{Code: code, Msg: "wechat gateway: " + msg}
	}
	raw := r.URL.RawQuery
	one := func(name string) (string, bool) {
		v, n := queryParam(raw, name)
		return v, n <= 1
	}
	switch path {
	case "/cgi-bin/token":
		grant, ok1 := one("grant_type")
		appid, ok2 := one("appid")
		key, ok3 := one("secret")
		if !ok1 || !ok2 || !ok3 {
			return bad(wxapi.CodeInvalidGrantType, "a parameter appears more than once")
		}
		if grant != "client_credential" {
			return bad(wxapi.CodeInvalidGrantType, "invalid grant_type")
		}
		return "official", appid, key, nil
	case "/cgi-bin/gettoken":
		corpid, ok1 := one("corpid")
		key, ok2 := one("corpsecret")
		if !ok1 || !ok2 {
			return bad(wxapi.CodeInvalidGrantType, "a parameter appears more than once")
		}
		return "wecom", corpid, key, nil
	default: // /cgi-bin/stable_token
		if r.Method != http.MethodPost {
			return bad(wxapi.CodeRequirePOST, "require POST method")
		}
		var req struct {
			GrantType string `json:"grant_type"`
			AppID     string `json:"appid"`
			Secret    string `json:"secret"`
		}
		dec := json.NewDecoder(io.LimitReader(r.Body, 64<<10))
		if err := dec.Decode(&req); err != nil {
			return bad(wxapi.CodeDataFormat, "data format error: the body must be JSON {grant_type, appid, secret}")
		}
		if req.GrantType != "client_credential" {
			return bad(wxapi.CodeInvalidGrantType, "invalid grant_type")
		}
		return "official", req.AppID, req.Secret, nil
	}
}

func writeTokenAnswer(w http.ResponseWriter, wecom bool, tok string, ttl time.Duration) {
	b := make([]byte, 0, 64+len(tok))
	b = append(b, '{')
	if wecom {
		b = append(b, `"errcode":0,"errmsg":"ok",`...)
	}
	b = append(b, `"access_token":`...)
	b = strconv.AppendQuote(b, tok)
	b = append(b, `,"expires_in":`...)
	b = strconv.AppendInt(b, int64(ttl/time.Second), 10)
	b = append(b, '}')
	w.Header().Set("Content-Type", wxapi.ContentTypeJSON)
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(b)
}

// serveRawToken hands a client granted raw_token the real access token of
// its account, and logs that it did (never the token).
func (h *Handler) serveRawToken(w http.ResponseWriter, r *http.Request) {
	if h.Trusted {
		wxapi.WriteError(w, wxapi.CodeAPIUnauthorized, "wechat gateway: the raw-token endpoint needs client authentication; this site is trusted")
		return
	}
	claims, account, refusal := h.caller(r)
	if refusal == nil {
		refusal = h.app.auth.MayReadRawToken(claims)
	}
	if refusal != nil {
		wxapi.WriteError(w, refusal.Code, refusal.Msg)
		return
	}
	tok, err := account.Token(r.Context())
	if err != nil {
		h.unavailable(w, err)
		return
	}
	acct := account.Account()
	h.logger.Warn("raw access_token handed out", zap.String("client", claims.Client), zap.String("account", acct.Name),
		zap.String("appid", acct.AppID), zap.String("remote_addr", r.RemoteAddr), zap.Uint64("generation", tok.Generation))
	writeTokenAnswer(w, false, tok.Value, tok.Expires.Sub(h.app.tokens.manager.Clock().Now()))
}

// queryParam returns the first value of the query parameter name in raw
// (unescaped) and how many times it appears, without parsing the whole
// query.
func queryParam(raw, name string) (value string, n int) {
	for rest := raw; rest != ""; {
		var part string
		part, rest, _ = strings.Cut(rest, "&")
		key, val, _ := strings.Cut(part, "=")
		if !keyIs(key, name) {
			continue
		}
		if n == 0 {
			value = unescape(val)
		}
		n++
	}
	return value, n
}
