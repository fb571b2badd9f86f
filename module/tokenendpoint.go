package caddywechat

import (
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"time"

	"go.uber.org/zap"

	"github.com/wxgate/caddy-wechat/module/internal/clientauth"
	"github.com/wxgate/caddy-wechat/module/internal/wxapi"
)

// Stage 3, for the token endpoints: the gateway answers them itself, and
// nothing reaches WeChat. SDKs fetch their token as they always do and get
// a gateway token (clients mode) or a placeholder (trusted mode).

// trustedToken is what the token endpoints hand out in trusted mode: any
// token works there, because the gateway replaces it.
const trustedToken = "caddy-wechat-trusted-site"

// serveTokenEndpoint answers an SDK's token call: with a gateway token for
// an authenticated client, or the placeholder token in trusted mode.
func (h *Handler) serveTokenEndpoint(w http.ResponseWriter, r *http.Request) {
	kind, appid, key, refusal := readTokenRequest(r, tokenEndpoint(r.URL.Path))
	if refusal != nil {
		writeRefusal(w, refusal)
		return
	}
	if !h.serves(kind) {
		writeRefusal(w, clientauth.Refuse(wxapi.CodeInvalidAppID, "this site serves "+h.Kind+" accounts, not "+kind+" "+appid))
		return
	}
	if h.fixed != nil {
		if acct := h.fixed.Account(); string(acct.Kind) != kind || acct.AppID != appid {
			writeRefusal(w, clientauth.Refuse(wxapi.CodeInvalidAppID, "this site serves "+string(acct.Kind)+" account "+acct.AppID+", not "+kind+" "+appid))
			return
		}
	}
	var tok string
	ttl := clientauth.DefaultTTL
	if h.Trusted {
		tok = trustedToken
	} else {
		auth := h.app.clients()
		if tok, refusal = auth.IssueFor(h.Account, kind, appid, key); refusal != nil {
			h.logger.Info("token request refused", zap.String("appid", loggedAppID(appid)), zap.Int("errcode", refusal.Code),
				zap.String("reason", loggedReason(refusal.Msg, appid)))
			writeRefusal(w, refusal)
			return
		}
		ttl = auth.TTL()
	}
	writeTokenAnswer(w, kind == "wecom", tok, ttl)
}

// readTokenRequest reads appid and key from a token-endpoint call the way
// WeChat does: query parameters for /cgi-bin/token and gettoken, a JSON
// body for stable_token.
func readTokenRequest(r *http.Request, endpoint string) (kind, appid, key string, refusal *clientauth.Error) {
	bad := func(code int, msg string) (string, string, string, *clientauth.Error) {
		return "", "", "", clientauth.Refuse(code, msg)
	}
	raw := r.URL.RawQuery
	one := func(name string) (string, bool) {
		v, n := wxapi.QueryParam(raw, name)
		return v, n <= 1
	}
	switch endpoint {
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

// writeTokenAnswer answers a token call the way its endpoint does (WeCom
// adds errcode and errmsg).
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
		writeRefusal(w, clientauth.Refuse(wxapi.CodeAPIUnauthorized, "the raw-token endpoint needs client authentication; this site is trusted"))
		return
	}
	q := readCallQuery(r.URL.RawQuery, "access_token")
	claims, account, refusal := h.caller(q.token.value, q.token.n)
	if refusal == nil {
		refusal = h.app.clients().MayReadRawToken(claims)
	}
	if refusal != nil {
		writeRefusal(w, refusal)
		return
	}
	tok, err := account.Token(r.Context())
	if err != nil {
		unavailable(w, err)
		return
	}
	acct := account.Account()
	h.logger.Warn("raw access_token handed out", zap.String("client", claims.Client), zap.String("account", acct.Name),
		zap.String("appid", acct.AppID), zap.String("remote_addr", r.RemoteAddr), zap.Uint64("generation", tok.Generation))
	writeTokenAnswer(w, false, tok.Value, tok.Expires.Sub(h.app.now()))
}
