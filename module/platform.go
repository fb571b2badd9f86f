package caddywechat

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/wxgate/caddy-wechat/module/internal/clientauth"
	"github.com/wxgate/caddy-wechat/module/internal/token"
	"github.com/wxgate/caddy-wechat/module/internal/wxapi"
)

// A third-party platform's site (`wechat <component account>`) serves the
// platform's own calls and its calls on behalf of authorizers. The SDK asks
// the gateway for tokens as it would ask WeChat: a trusted site hands out
// placeholders, a clients-mode site gateway tokens for the client key sent
// as the component_appsecret. The gateway holds the component token, the
// authorizers' refresh tokens and their tokens, and puts the real ones in.
const (
	componentTokenPath  = "/cgi-bin/component/api_component_token"
	authorizerTokenPath = "/cgi-bin/component/api_authorizer_token"
	queryAuthPath       = "/cgi-bin/component/api_query_auth"
	// authorizerPlaceholder, followed by the authorizer's appid, is the
	// authorizer_access_token a trusted site hands out; calls carrying it
	// get that authorizer's token.
	authorizerPlaceholder = "caddy-wechat-authorizer."
	// managedRefreshToken is the authorizer_refresh_token the site hands
	// out: the real one never leaves the gateway.
	managedRefreshToken = "caddy-wechat-managed"
)

// serveComponent serves a third-party platform's site: component API
// calls get the platform's component_access_token, calls on behalf of an
// authorizer get the authorizer's access_token, each refreshed and
// replayed once like any token; the token calls are answered by the
// gateway.
func (h *Handler) serveComponent(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler, class pathClass) error {
	path := strings.TrimSuffix(r.URL.Path, "/")
	component := isComponentPath(r.URL.Path)
	if !allowedMethod(r.Method) {
		wxapi.WriteError(w, wxapi.CodeRequireGET, "wechat gateway: method "+r.Method+" is not accepted: WeChat's APIs take GET or POST")
		return nil
	}
	if !component && class != pathAPI && class != pathTicket {
		wxapi.WriteError(w, wxapi.CodeAPIUnauthorized, "wechat gateway: api unauthorized: "+r.URL.Path+
			" is neither a component API (/cgi-bin/component/, /sns/component/, /sns/oauth2/component/) nor an API an authorizer's token serves")
		return nil
	}
	switch path {
	case componentTokenPath:
		h.serveComponentToken(w, r)
		return nil
	case componentClearQuotaV2Path:
		return h.serveComponentClearQuotaV2(w, r, next)
	}
	// The caller: nil on a trusted site.
	var claims *clientauth.Claims
	if !h.Trusted {
		var refusal *clientauth.Error
		if claims, refusal = h.platformCaller(r, component); refusal != nil {
			countCall(clientName(claims), h.Account, refusal.Code)
			writeRefusal(w, refusal)
			return nil
		}
	}
	switch {
	case path == authorizerTokenPath:
		h.serveAuthorizerToken(w, r, claims)
	case path == queryAuthPath:
		h.serveQueryAuth(w, r, claims)
	case refreshTokenAnswers[path]:
		countCall(clientName(claims), h.Account, 0)
		return h.forwardWithoutRefreshTokens(w, r, next)
	case component:
		countCall(clientName(claims), h.Account, 0)
		return h.forward(w, r, next, h.fixed)
	case class == pathTicket:
		h.serveAuthorizerTicket(w, r, claims)
	default:
		return h.serveAuthorizerCall(w, r, next, claims)
	}
	return nil
}

// componentPaths take the component_access_token: the platform's API, and
// the user logins it does for its authorizers (web OAuth, mini program
// sessions).
var componentPaths = []string{"/cgi-bin/component/", "/sns/component/", "/sns/oauth2/component/"}

// isComponentPath reports whether path takes the component_access_token.
func isComponentPath(path string) bool {
	for _, p := range componentPaths {
		if strings.HasPrefix(path, p) {
			return true
		}
	}
	return false
}

// platformCaller authenticates a clients-mode call to the platform's site:
// a component API call carries the platform's gateway token as
// component_access_token, a call on behalf of an authorizer the
// authorizer's gateway token as access_token, and never the other. With a
// refusal, the claims (if the token verified) only name who was refused.
func (h *Handler) platformCaller(r *http.Request, component bool) (*clientauth.Claims, *clientauth.Error) {
	param, other := "access_token", "component_access_token"
	if component {
		param, other = other, param
	}
	raw := r.URL.RawQuery
	gwToken, n := wxapi.QueryParam(raw, param)
	if _, extra := wxapi.QueryParam(raw, other); extra > 0 || n > 1 {
		return nil, clientauth.Refuse(wxapi.CodeInvalidCredential, "invalid credential: a call to a third-party platform's site carries one "+param+" and no "+other)
	}
	if n == 0 {
		return nil, clientauth.Refuse(wxapi.CodeTokenMissing, param+" missing: fetch a gateway token from api_component_token with the client key as component_appsecret")
	}
	auth := h.app.clients()
	claims, refusal := auth.Verify(gwToken)
	if refusal == nil {
		refusal = auth.ForAccount(claims, h.Account)
	}
	switch {
	case refusal != nil:
	case claims.Kind != string(token.Component):
		refusal = clientauth.Refuse(wxapi.CodeInvalidCredential, "invalid credential: not a gateway token of a third-party platform")
	case component && claims.Authorizer != "":
		refusal = clientauth.Refuse(wxapi.CodeInvalidCredential, "invalid credential: an authorizer's token on a component API")
	case !component && claims.Authorizer == "":
		refusal = clientauth.Refuse(wxapi.CodeInvalidCredential, "invalid credential: the platform's token on an authorizer's API (get the authorizer's from api_authorizer_token)")
	default:
		// A token endpoint may come with a final slash (classify): the
		// grant is for the path without it.
		path := strings.TrimSuffix(r.URL.Path, "/")
		refusal = auth.MayCall(claims, path)
		if refusal == nil && adminPath(path) {
			refusal = auth.MayAdmin(claims)
		}
		if refusal == nil {
			refusal = checkPlatformQuery(raw, param, component, claims)
		}
	}
	return claims, refusal
}

// checkPlatformQuery refuses, as on the other sites, a credential in a
// call's query other than its token parameter, and, in an authorizer's
// call, an appid or corpid other than the authorizer's. (A component call
// names the authorizer it acts for in its appid.)
func checkPlatformQuery(raw, param string, component bool, claims *clientauth.Claims) *clientauth.Error {
	q := readCallQuery(raw, param)
	if refusal := q.smuggledRefusal(); refusal != nil || component {
		return refusal
	}
	return q.otherAppID(claims.Authorizer, "authorizer")
}

// clientName is the client of claims, "" on a trusted site.
func clientName(claims *clientauth.Claims) string {
	if claims == nil {
		return ""
	}
	return claims.Client
}

// serveComponentToken answers api_component_token: a placeholder on a
// trusted site, else a gateway token for the client whose key comes as the
// component_appsecret.
func (h *Handler) serveComponentToken(w http.ResponseWriter, r *http.Request) {
	if h.Trusted {
		countCall("", h.Account, 0)
		writeJSON(w, map[string]any{"component_access_token": trustedToken, "expires_in": 7200})
		return
	}
	req, ok := h.readComponentCall(w, r)
	if !ok {
		return
	}
	auth := h.app.clients()
	tok, refusal := auth.Issue(string(token.Component), req.ComponentAppID, req.ComponentSecret)
	if refusal != nil {
		writeRefusal(w, refusal)
		return
	}
	countCall("", h.Account, 0)
	writeJSON(w, map[string]any{"component_access_token": tok, "expires_in": int64(auth.TTL() / time.Second)})
}

// authorizerToken is what the site hands out as an authorizer's token, and
// its lifetime: a placeholder on a trusted site, else a gateway token.
func (h *Handler) authorizerToken(w http.ResponseWriter, claims *clientauth.Claims, appid string) (string, int64, bool) {
	if claims == nil {
		return authorizerPlaceholder + appid, 7200, true
	}
	auth := h.app.clients()
	tok, refusal := auth.IssueAuthorizer(claims, appid)
	if refusal != nil {
		writeRefusal(w, refusal)
		return "", 0, false
	}
	return tok, int64(auth.TTL() / time.Second), true
}

// componentRequest is the JSON body of the component API calls the site
// answers itself.
type componentRequest struct {
	ComponentAppID    string `json:"component_appid"`
	ComponentSecret   string `json:"component_appsecret"` // api_component_token
	AuthorizerAppID   string `json:"authorizer_appid"`    // api_authorizer_token
	AuthorizationCode string `json:"authorization_code"`  // api_query_auth
}

// readComponentCall decodes the JSON body of a component API call, and
// checks that its component_appid is the site's.
func (h *Handler) readComponentCall(w http.ResponseWriter, r *http.Request) (*componentRequest, bool) {
	if r.Method != http.MethodPost {
		wxapi.WriteError(w, wxapi.CodeRequirePOST, "require POST method")
		return nil, false
	}
	req := new(componentRequest)
	if err := json.NewDecoder(io.LimitReader(r.Body, 64<<10)).Decode(req); err != nil {
		wxapi.WriteError(w, wxapi.CodeDataFormat, "data format error: the body must be JSON")
		return nil, false
	}
	if own := h.fixed.Account().AppID; req.ComponentAppID != own {
		wxapi.WriteError(w, wxapi.CodeInvalidComponent, "wechat gateway: this site serves component "+own+", not "+loggedAppID(req.ComponentAppID))
		return nil, false
	}
	return req, true
}

// notAuthorized answers a call for an authorizer the platform holds no
// refresh token of.
func notAuthorized(w http.ResponseWriter, appid string) {
	wxapi.WriteError(w, wxapi.CodeRefreshTokenRevoked, "wechat gateway: authorizer "+logText(appid)+
		" has not authorised the platform (or withdrew): no authorizer_refresh_token is held for it")
}

// serveAuthorizerToken answers api_authorizer_token for an authorizer the
// platform holds, with the token that stands for its own.
func (h *Handler) serveAuthorizerToken(w http.ResponseWriter, r *http.Request, claims *clientauth.Claims) {
	req, ok := h.readComponentCall(w, r)
	if !ok {
		return
	}
	if !token.ValidAppID(req.AuthorizerAppID) || !h.fixed.Authorized(r.Context(), req.AuthorizerAppID) {
		notAuthorized(w, req.AuthorizerAppID)
		return
	}
	tok, ttl, ok := h.authorizerToken(w, claims, req.AuthorizerAppID)
	if !ok {
		return
	}
	countCall(clientName(claims), h.Account, 0)
	writeJSON(w, map[string]any{"authorizer_access_token": tok, "expires_in": ttl, "authorizer_refresh_token": managedRefreshToken})
}

// serveQueryAuth answers api_query_auth: the gateway exchanges the code
// itself and keeps the refresh token, and the caller learns the
// authorizer and what it granted, with a stand-in for its tokens.
func (h *Handler) serveQueryAuth(w http.ResponseWriter, r *http.Request, claims *clientauth.Claims) {
	req, ok := h.readComponentCall(w, r)
	if !ok {
		return
	}
	if req.AuthorizationCode == "" {
		wxapi.WriteError(w, wxapi.CodeCodeMissing, "authorization_code missing")
		return
	}
	auth, err := h.fixed.AuthorizeByPage(r.Context(), req.AuthorizationCode, h.app.now())
	var fe *token.FetchError
	switch {
	case errors.As(err, &fe) && fe.Errcode != 0:
		wxapi.WriteError(w, fe.Errcode, "wechat gateway: api_query_auth: "+fe.Errmsg)
		return
	case err != nil:
		unavailable(w, err)
		return
	}
	tok, ttl, ok := h.authorizerToken(w, claims, auth.AppID)
	if !ok {
		return
	}
	countCall(clientName(claims), h.Account, 0)
	info := map[string]any{"authorizer_appid": auth.AppID, "authorizer_access_token": tok,
		"expires_in": ttl, "authorizer_refresh_token": managedRefreshToken}
	if auth.FuncInfo != nil {
		info["func_info"] = auth.FuncInfo
	}
	writeJSON(w, map[string]any{"authorization_info": info})
}

// serveAuthorizerCall forwards a call on behalf of an authorizer with the
// authorizer's token. The authorizer is the one the client's gateway token
// names, or on a trusted site the one the placeholder names.
func (h *Handler) serveAuthorizerCall(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler, claims *clientauth.Claims) error {
	account := h.authorizerOf(w, r, claims)
	if account == nil {
		return nil
	}
	countCall(clientName(claims), h.Account, 0)
	return h.forward(w, r, next, account)
}

// serveAuthorizerTicket answers an authorizer's JS-SDK ticket call from the
// ticket cache, as serveTicket answers an account's: a ticket call
// forwarded would reach WeChat on every call, spending the authorizer's
// ticket quota.
func (h *Handler) serveAuthorizerTicket(w http.ResponseWriter, r *http.Request, claims *clientauth.Claims) {
	account := h.authorizerOf(w, r, claims)
	if account == nil {
		return
	}
	ep, refusal := ticketOf(r, account.Account().Kind)
	if refusal != nil {
		countCall(clientName(claims), h.Account, refusal.Code)
		writeRefusal(w, refusal)
		return
	}
	// Only for an authorizer that still has a token: a ticket lent by an
	// account of the same appid would outlive its withdrawal.
	if _, err := account.Token(r.Context()); err != nil {
		unavailable(w, err)
		return
	}
	countCall(clientName(claims), h.Account, 0)
	h.writeTicket(w, r, h.app.authorizerTicket(h.fixed, account, ep))
}

// authorizerOf returns the handle of the authorizer a call to the
// platform's site is made for (named by the caller's gateway token, or on a
// trusted site by its placeholder token), or answers the call and returns
// nil.
func (h *Handler) authorizerOf(w http.ResponseWriter, r *http.Request, claims *clientauth.Claims) *token.Handle {
	appid := ""
	if claims != nil {
		appid = claims.Authorizer
	} else {
		tok, n := wxapi.QueryParam(r.URL.RawQuery, "access_token")
		rest, ok := strings.CutPrefix(tok, authorizerPlaceholder)
		if n != 1 || !ok || !token.ValidAppID(rest) {
			wxapi.WriteError(w, wxapi.CodeInvalidCredential, "wechat gateway: invalid credential: on a third-party platform's site, a call on behalf of an authorizer carries access_token="+
				authorizerPlaceholder+"<authorizer appid>, as api_authorizer_token answers")
			return nil
		}
		appid = rest
	}
	account := h.app.authorizer(r.Context(), h.fixed, appid)
	if account == nil {
		notAuthorized(w, appid)
	}
	return account
}

// refreshTokenAnswers are the component APIs whose answers hold
// authorizers' refresh tokens (api_get_authorizer_info's
// authorization_info.authorizer_refresh_token, api_get_authorizer_list's
// list[].refresh_token).
var refreshTokenAnswers = map[string]bool{
	"/cgi-bin/component/api_get_authorizer_info": true,
	"/cgi-bin/component/api_get_authorizer_list": true,
}

// maxRewrittenAnswer bounds an answer held to replace refresh tokens: a
// page of 500 authorizers is about 100 KiB.
const maxRewrittenAnswer = 4 << 20

// forwardWithoutRefreshTokens forwards a component API call whose answer
// holds refresh tokens, and answers it with managedRefreshToken in their
// place: the real ones never leave the gateway, and an SDK cannot rotate
// one behind its back.
func (h *Handler) forwardWithoutRefreshTokens(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	held := &heldAnswer{header: make(http.Header)}
	if err := h.forward(held, r, next, h.fixed); err != nil {
		return err
	}
	var v any
	dec := json.NewDecoder(bytes.NewReader(held.body.Bytes()))
	dec.UseNumber()
	if held.overflow || dec.Decode(&v) != nil {
		wxapi.WriteError(w, wxapi.CodeSystemBusy, "wechat gateway: the answer could not be read to withhold its refresh tokens")
		return nil
	}
	replaceRefreshTokens(v)
	body, _ := json.Marshal(v)
	for k, vals := range held.header {
		if k != "Content-Length" {
			w.Header()[k] = vals
		}
	}
	w.WriteHeader(held.status())
	_, _ = w.Write(body)
	return nil
}

// replaceRefreshTokens puts managedRefreshToken in place of every string
// under the key authorizer_refresh_token or refresh_token in v.
func replaceRefreshTokens(v any) {
	switch x := v.(type) {
	case map[string]any:
		for k, val := range x {
			if _, ok := val.(string); ok && (k == "authorizer_refresh_token" || k == "refresh_token") {
				x[k] = managedRefreshToken
				continue
			}
			replaceRefreshTokens(val)
		}
	case []any:
		for _, val := range x {
			replaceRefreshTokens(val)
		}
	}
}

// heldAnswer is a ResponseWriter that keeps an answer, up to
// maxRewrittenAnswer.
type heldAnswer struct {
	header   http.Header
	code     int
	body     bytes.Buffer
	overflow bool
}

func (a *heldAnswer) Header() http.Header { return a.header }

func (a *heldAnswer) WriteHeader(code int) {
	if a.code == 0 && code >= 200 { // an informational answer is not the answer
		a.code = code
	}
}

func (a *heldAnswer) Write(p []byte) (int, error) {
	if a.body.Len()+len(p) > maxRewrittenAnswer {
		a.overflow = true
		return len(p), nil
	}
	return a.body.Write(p)
}

func (a *heldAnswer) status() int {
	if a.code == 0 {
		return http.StatusOK
	}
	return a.code
}

// writeJSON answers v as JSON, not to be cached.
func writeJSON(w http.ResponseWriter, v any) {
	b, _ := json.Marshal(v)
	w.Header().Set("Content-Type", wxapi.ContentTypeJSON)
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(b)
}
