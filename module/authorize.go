package caddywechat

import (
	"net/http"
	"slices"

	"github.com/wxgate/caddy-wechat/module/internal/clientauth"
	"github.com/wxgate/caddy-wechat/module/internal/token"
	"github.com/wxgate/caddy-wechat/module/internal/wxapi"
)

// Stage 2 of an API call: who the caller is, and whether it may make the
// call. In trusted mode everyone may, as the site's account; in clients
// mode the caller shows a gateway token.

// smuggledParams are query parameters a client has no business sending on
// an API call through the gateway: credentials the gateway holds itself.
var smuggledParams = []string{"secret", "appsecret", "corpsecret", "component_access_token", "suite_access_token", "provider_access_token"}

// adminPath reports whether path acts on the whole account for every
// client: only clients granted admin may call it. (A switch: no hashing of
// the path on every call.)
func adminPath(path string) bool {
	switch path {
	case "/cgi-bin/clear_quota", "/cgi-bin/clear_quota/v2", "/cgi-bin/component/clear_quota", "/cgi-bin/component/clear_quota/v2",
		"/cgi-bin/openapi/quota/clear":
		return true
	}
	return false
}

// authorize returns the account whose token a call gets, or the refusal
// the caller sees.
func (h *Handler) authorize(r *http.Request) (*token.Handle, *clientauth.Error) {
	account, client, refusal := h.authorizeClient(r)
	name := ""
	if account != nil {
		name = account.Account().Name
	}
	code := 0
	if refusal != nil {
		code = refusal.Code
	}
	if h.calls != nil {
		h.calls.count(client, name, code)
	} else {
		countCall(client, name, code)
	}
	return account, refusal
}

// authorizeClient is authorize, also naming the client ("" on a trusted
// site, or when it could not be told).
func (h *Handler) authorizeClient(r *http.Request) (*token.Handle, string, *clientauth.Error) {
	if h.Trusted {
		return h.fixed, "", nil
	}
	q := readCallQuery(r.URL.RawQuery, "access_token")
	if refusal := q.smuggledRefusal(); refusal != nil {
		return nil, "", refusal
	}
	claims, account, refusal := h.caller(q.token.value, q.token.n)
	if refusal != nil {
		return nil, "", refusal
	}
	if refusal := h.app.clients().MayCall(claims, r.URL.Path); refusal != nil {
		return nil, claims.Client, refusal
	}
	if adminPath(r.URL.Path) {
		if refusal := h.app.clients().MayAdmin(claims); refusal != nil {
			return nil, claims.Client, refusal
		}
	}
	if refusal := q.otherAppID(account.Account().AppID, "account"); refusal != nil {
		return nil, claims.Client, refusal
	}
	return account, claims.Client, nil
}

// callQuery is what authorization reads of a call's query string, in one
// pass over it.
type callQuery struct {
	smuggled             string // the first of smuggledParams sent, if any
	token, appid, corpid queryParam
}

// queryParam is a query parameter's first value, as sent, and how many
// times it came.
type queryParam struct {
	value string
	n     int
}

func (p *queryParam) add(value string) {
	if p.n == 0 {
		p.value = value
	}
	p.n++
}

// readCallQuery reads the raw query of a call in clients mode, whose
// gateway token comes in the parameter tokenParam.
func readCallQuery(raw, tokenParam string) (q callQuery) {
	for rest := raw; rest != ""; {
		var name, value string
		name, value, rest = wxapi.NextParam(rest)
		switch name {
		case tokenParam:
			q.token.add(value)
		case "appid":
			q.appid.add(value)
		case "corpid":
			q.corpid.add(value)
		default:
			if q.smuggled == "" && slices.Contains(smuggledParams, name) {
				q.smuggled = name
			}
		}
	}
	return q
}

// smuggledRefusal refuses a call that sent one of smuggledParams.
func (q *callQuery) smuggledRefusal() *clientauth.Error {
	if q.smuggled == "" {
		return nil
	}
	return clientauth.Refuse(wxapi.CodeInvalidCredential, "parameter "+q.smuggled+" is not accepted: the gateway holds the credentials")
}

// otherAppID refuses a call whose appid or corpid, if sent, is sent more
// than once or is not appid, that of the token's whom ("account",
// "authorizer").
func (q *callQuery) otherAppID(appid, whom string) *clientauth.Error {
	if q.appid.n == 0 && q.corpid.n == 0 {
		return nil // the usual call: neither sent
	}
	for _, id := range []struct {
		name  string
		param queryParam
	}{{"appid", q.appid}, {"corpid", q.corpid}} {
		if v := wxapi.Unescape(id.param.value); id.param.n > 1 || (id.param.n == 1 && v != appid) {
			return clientauth.Refuse(wxapi.CodeInvalidAppID, id.name+" "+logText(v)+" is not the "+whom+" this token is for")
		}
	}
	return nil
}

// caller verifies the gateway token of a call in clients mode (the value
// of its access_token parameter, as sent, which came n times) and returns
// its claims and the account it is for, which must be the site's account
// if the site has one.
func (h *Handler) caller(gwToken string, n int) (*clientauth.Claims, *token.Handle, *clientauth.Error) {
	switch {
	case n == 0:
		return nil, nil, clientauth.Refuse(wxapi.CodeTokenMissing, "access_token missing: fetch a gateway token from the token endpoint with the client key")
	case n > 1:
		return nil, nil, clientauth.Refuse(wxapi.CodeInvalidCredential, "invalid credential: several access_token parameters")
	}
	auth := h.app.clients()
	claims, refusal := auth.Verify(wxapi.Unescape(gwToken))
	if refusal != nil {
		return nil, nil, refusal
	}
	if claims.Kind == string(token.Component) || claims.Authorizer != "" {
		// A platform's tokens are for its own site (serveComponent).
		return nil, nil, clientauth.Refuse(wxapi.CodeInvalidAppID, "this token is a third-party platform's: call the platform's site")
	}
	if h.fixed != nil {
		if refusal := auth.ForAccount(claims, h.Account); refusal != nil {
			return nil, nil, refusal
		}
		return claims, h.fixed, nil
	}
	account, err := h.app.account(claims.Account)
	if err != nil {
		// A token signed for an account this config no longer has.
		return nil, nil, clientauth.Refuse(wxapi.CodeInvalidCredential, "invalid credential: the account of this token is not configured")
	}
	if kind := account.Account().Kind; kind == token.Component || !h.serves(string(kind)) {
		return nil, nil, clientauth.Refuse(wxapi.CodeInvalidAppID, "this site serves "+h.Kind+" accounts; this token is for a "+string(kind)+" account")
	}
	return claims, account, nil
}

// kindAny is the kind of a site whose upstream serves both kinds.
const kindAny = "any"

// serves reports whether the site's upstream serves accounts of kind.
func (h *Handler) serves(kind string) bool {
	return h.Kind == "" || h.Kind == kindAny || h.Kind == kind
}

// writeRefusal answers a refused call.
func writeRefusal(w http.ResponseWriter, e *clientauth.Error) {
	wxapi.WriteError(w, e.Code, e.Msg)
}
