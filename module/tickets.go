package caddywechat

import (
	"crypto/rand"
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/wxgate/caddy-wechat/module/internal/clientauth"
	"github.com/wxgate/caddy-wechat/module/internal/token"
	"github.com/wxgate/caddy-wechat/module/internal/wxapi"
)

// Stage 3, for the JS-SDK tickets: the gateway answers the ticket calls
// from its cache, one ticket per account and type for the whole cluster,
// and signs wx.config itself. The caller is authorized as for any API call.

// ticketPaths are the ticket calls, by path, with the kind of account each
// belongs to.
var ticketPaths = map[string]token.Kind{
	"/cgi-bin/ticket/getticket": token.Official, // ?type=jsapi|wx_card
	"/cgi-bin/get_jsapi_ticket": token.WeCom,    // the corp's ticket
	"/cgi-bin/ticket/get":       token.WeCom,    // ?type=agent_config
}

// JSSDKConfigPath answers what a page needs for wx.config:
// GET /wechat-gateway/jssdk_config?url=<page URL> answers
// {"appId","timestamp","nonceStr","signature"} (and, for WeCom,
// "agentConfig" for wx.agentConfig), signed with the account's ticket.
const JSSDKConfigPath = "/wechat-gateway/jssdk_config"

// ticketOf returns the ticket type a ticket call asks for, or a refusal.
func ticketOf(r *http.Request, kind token.Kind) (token.Endpoint, *clientauth.Error) {
	path := r.URL.Path
	if want := ticketPaths[path]; want != kind {
		return "", clientauth.Refuse(wxapi.CodeAPIUnauthorized, "api unauthorized: "+path+" is an API of "+string(want)+" accounts, and this is a "+string(kind)+" account")
	}
	typ, n := wxapi.QueryParam(r.URL.RawQuery, "type")
	if n > 1 {
		return "", clientauth.Refuse(wxapi.CodeInvalidArgs, "invalid args: type appears more than once")
	}
	switch {
	case path == "/cgi-bin/get_jsapi_ticket":
		return token.CorpTicket, nil
	case path == "/cgi-bin/ticket/get" && typ == "agent_config":
		return token.AgentTicket, nil
	case path == "/cgi-bin/ticket/getticket" && (typ == "jsapi" || typ == "wx_card"):
		return token.Endpoint(typ), nil
	}
	return "", clientauth.Refuse(wxapi.CodeInvalidArgs, "invalid args: type "+strconv.Quote(typ)+" is not a ticket type of "+path)
}

// serveTicket answers a ticket call from the cache, in WeChat's shape,
// with the ticket's real remaining life.
func (h *Handler) serveTicket(w http.ResponseWriter, r *http.Request, account *token.Handle) {
	acct := account.Account()
	ep, refusal := ticketOf(r, acct.Kind)
	if refusal != nil {
		writeRefusal(w, refusal)
		return
	}
	h.writeTicket(w, r, h.app.ticket(acct.Name, ep))
}

// writeTicket answers with the ticket of handle th, in WeChat's shape, with
// its real remaining life.
func (h *Handler) writeTicket(w http.ResponseWriter, r *http.Request, th *token.Handle) {
	if th == nil {
		unavailable(w, errors.New("no ticket could be registered"))
		return
	}
	t, err := th.Token(r.Context())
	if err != nil {
		unavailable(w, err)
		return
	}
	left := int64(t.Expires.Sub(h.app.now()) / time.Second)
	b := make([]byte, 0, 96+len(t.Value))
	b = append(b, `{"errcode":0,"errmsg":"ok","ticket":`...)
	b = strconv.AppendQuote(b, t.Value)
	b = append(b, `,"expires_in":`...)
	b = strconv.AppendInt(b, max(left, 0), 10)
	b = append(b, '}')
	hdr := w.Header()
	hdr.Set("Content-Type", wxapi.ContentTypeJSON)
	hdr.Set("Cache-Control", "no-store")
	_, _ = w.Write(b)
}

// jsSignature is a wx.config (or wx.agentConfig) signature.
type jsSignature struct {
	Timestamp int64  `json:"timestamp"`
	NonceStr  string `json:"nonceStr"`
	Signature string `json:"signature"`
}

// signJSSDK computes WeChat's JS-SDK signature: SHA-1 over
// jsapi_ticket, noncestr, timestamp and url, in that (sorted) order, as
// key=value joined by '&'.
func signJSSDK(ticket, nonce string, timestamp int64, pageURL string) string {
	sum := sha1.Sum([]byte("jsapi_ticket=" + ticket + "&noncestr=" + nonce + "&timestamp=" + strconv.FormatInt(timestamp, 10) + "&url=" + pageURL))
	return hex.EncodeToString(sum[:])
}

// pageURL checks the url parameter of jssdk_config and returns it without
// its fragment, as WeChat signs it.
func pageURL(r *http.Request) (string, *clientauth.Error) {
	raw, n := wxapi.QueryParam(r.URL.RawQuery, "url")
	if n != 1 || raw == "" {
		return "", clientauth.Refuse(wxapi.CodeInvalidArgs, "invalid args: give the page's URL once, URL-encoded, as url")
	}
	raw, _, _ = strings.Cut(raw, "#")
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", clientauth.Refuse(wxapi.CodeInvalidArgs, "invalid args: url must be the page's absolute http or https URL")
	}
	return raw, nil
}

// newNonce returns 16 random letters and digits.
func newNonce() string {
	const chars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	var b [16]byte
	_, _ = rand.Read(b[:])
	for i := range b {
		b[i] = chars[int(b[i])%len(chars)]
	}
	return string(b[:])
}

// serveJSSDKConfig signs wx.config (and for WeCom wx.agentConfig) for a
// page URL with the account's cached tickets.
func (h *Handler) serveJSSDKConfig(w http.ResponseWriter, r *http.Request, account *token.Handle) {
	page, refusal := pageURL(r)
	if refusal != nil {
		writeRefusal(w, refusal)
		return
	}
	acct := account.Account()
	sign := func(ep token.Endpoint) (jsSignature, error) {
		t, err := h.app.ticket(acct.Name, ep).Token(r.Context())
		if err != nil {
			return jsSignature{}, err
		}
		s := jsSignature{Timestamp: h.app.now().Unix(), NonceStr: newNonce()}
		s.Signature = signJSSDK(t.Value, s.NonceStr, s.Timestamp, page)
		return s, nil
	}
	ans := struct {
		Errcode int    `json:"errcode"`
		Errmsg  string `json:"errmsg"`
		AppID   string `json:"appId"`
		jsSignature
		AgentConfig *struct {
			CorpID  string `json:"corpid"`
			AgentID string `json:"agentid,omitempty"`
			jsSignature
		} `json:"agentConfig,omitempty"`
	}{Errmsg: "ok", AppID: acct.AppID}
	first := token.JSAPITicket
	if acct.Kind == token.WeCom {
		first = token.CorpTicket
	}
	var err error
	if ans.jsSignature, err = sign(first); err != nil {
		unavailable(w, err)
		return
	}
	if acct.Kind == token.WeCom {
		agent, err := sign(token.AgentTicket)
		if err != nil {
			unavailable(w, err)
			return
		}
		ans.AgentConfig = &struct {
			CorpID  string `json:"corpid"`
			AgentID string `json:"agentid,omitempty"`
			jsSignature
		}{acct.AppID, h.app.agentID(acct.Name), agent}
	}
	body, _ := json.Marshal(ans)
	hdr := w.Header()
	hdr.Set("Content-Type", wxapi.ContentTypeJSON)
	hdr.Set("Cache-Control", "no-store")
	_, _ = w.Write(body)
}
