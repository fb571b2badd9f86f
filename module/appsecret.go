package caddywechat

import (
	"bytes"
	"encoding/json"
	"io"
	"maps"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/wxgate/caddy-wechat/module/internal/clientauth"
	"github.com/wxgate/caddy-wechat/module/internal/token"
	"github.com/wxgate/caddy-wechat/module/internal/wxapi"
)

// Stage 3, for the calls that carry the AppSecret rather than a token
// (mini-program login, web OAuth code exchange, quota reset). The caller
// never holds the secret: in clients mode it sends its client key where
// the secret goes, the gateway checks it as on the token endpoints and
// puts the account's real secret in its place; in trusted mode the gateway
// puts the secret in whatever the caller sent. No replay: a 40001 there is
// about the secret or the user's code, never the app's token.

// secretParams names, per secret-bearing path, the parameter that carries
// the AppSecret.
var secretParams = map[string]string{
	"/sns/jscode2session":      "secret",
	"/sns/oauth2/access_token": "secret",
	"/cgi-bin/clear_quota/v2":  "appsecret",
}

// appCredentialParams are the app credentials a caller may put on a /sns/
// call that carries only the user's credential: the gateway removes them.
var appCredentialParams = []string{"secret", "appsecret", "component_access_token"}

// maxFormBody bounds the form body of a secret-bearing call.
const maxFormBody = 64 << 10

// serveAppSecretCall answers a call to one of the secretParams paths.
func (h *Handler) serveAppSecretCall(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	param := secretParams[r.URL.Path]
	// A JSON body only where WeChat takes a POST (jscode2session and
	// oauth2/access_token are GETs).
	query, rest, refusal := readCredentials(r, param == "appsecret")
	if refusal != nil {
		writeRefusal(w, refusal)
		return nil
	}
	account, client, refusal := h.authorizeSecretCall(r, query, param)
	if refusal != nil {
		countCall(client, "", refusal.Code)
		writeRefusal(w, refusal)
		return nil
	}
	acct := account.Account()
	countCall(client, acct.Name, 0)
	query.Set("appid", acct.AppID)
	query.Set(param, acct.Secret)
	for _, p := range appCredentialParams {
		if p != param {
			query.Del(p) // a client key sent under another name goes nowhere
		}
	}
	h.sendOnce(w, r, next, secretRequest(r, query, rest, param), account)
	return nil
}

// sendOnce sends out, the upstream form of r, through next once, with no
// replay (the calls that carry a secret, not a token), and passes the
// answer on masked for account.
func (h *Handler) sendOnce(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler, out *http.Request, account *token.Handle) {
	answer := newInspector(w, h.app.confidential(account))
	defer answer.free()
	if err := next.ServeHTTP(answer, out); err != nil {
		h.upstreamFailed(w, r, answer, account, err)
		return
	}
	answer.pass()
}

// readCredentials returns the query of a secret-bearing call, with appid
// and the secret parameter taken from its body when the body has them (a
// form, or with jsonBody a JSON object: some SDKs post clear_quota/v2 as
// JSON), and its body (nil for none), from which the upstream's is made.
func readCredentials(r *http.Request, jsonBody bool) (query url.Values, rest *credentialBody, refusal *clientauth.Error) {
	query, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return nil, nil, clientauth.Refuse(wxapi.CodeInvalidArgs, "invalid args: malformed query string")
	}
	for name, vals := range query {
		if len(vals) > 1 {
			return nil, nil, clientauth.Refuse(wxapi.CodeInvalidArgs, "invalid args: parameter "+name+" appears more than once")
		}
	}
	if r.Method != http.MethodPost || r.Body == nil || r.Body == http.NoBody {
		return query, nil, nil
	}
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	isForm := mt == "application/x-www-form-urlencoded"
	if !isForm && mt != "application/json" && mt != "text/plain" && mt != "" {
		return query, nil, nil
	}
	raw, err := io.ReadAll(io.LimitReader(r.Body, maxFormBody+1))
	if err != nil || len(raw) > maxFormBody {
		return nil, nil, clientauth.Refuse(wxapi.CodeInvalidArgs, "invalid args: unreadable or oversized body")
	}
	rest = &credentialBody{raw: raw}
	creds := map[string]string{}
	switch {
	case isForm:
		if rest.form, err = url.ParseQuery(string(raw)); err != nil {
			return nil, nil, clientauth.Refuse(wxapi.CodeInvalidArgs, "invalid args: malformed form body")
		}
		for name, vals := range rest.form {
			if len(vals) > 1 {
				return nil, nil, clientauth.Refuse(wxapi.CodeInvalidArgs, "invalid args: parameter "+name+" is given twice")
			}
			creds[name] = vals[0]
		}
	case jsonBody && bytes.HasPrefix(trimJSON(raw), []byte("{")):
		if json.Unmarshal(trimJSON(raw), &rest.json) != nil {
			return nil, nil, clientauth.Refuse(wxapi.CodeDataFormat, "data format error: the body is not a JSON object")
		}
		var bad string
		if creds, bad = stringMembers(rest.json, credentialNames...); bad != "" {
			return nil, nil, clientauth.Refuse(wxapi.CodeDataFormat, "data format error: "+bad+" must be a string")
		}
	}
	// Only the credentials move from the body to the query, where the
	// gateway puts the real secret; the rest stays in the body.
	for name, v := range creds {
		if query.Has(name) && query.Get(name) != v {
			return nil, nil, clientauth.Refuse(wxapi.CodeInvalidArgs, "invalid args: parameter "+name+" is given twice")
		}
		if slices.Contains(credentialNames, name) {
			query.Set(name, v)
		}
	}
	return query, rest, nil
}

// credentialNames are the parameters readCredentials moves from a body to
// the query.
var credentialNames = []string{"appid", "secret", "appsecret"}

// credentialBody is the body of a secret-bearing call: as it came (raw),
// and parsed when it is a form or a JSON object.
type credentialBody struct {
	raw  []byte
	form url.Values
	json map[string]json.RawMessage
}

// upstream returns the body to send on: a form without the app's
// credentials (under any letter case: they go in the query), a JSON object
// with appid and the secret parameter param set to the real ones of query
// and no other credential (WeChat's docs have put them in the query and,
// later, in a JSON body: they go in both), anything else as it came.
func (b *credentialBody) upstream(query url.Values, param string) []byte {
	credential := func(name string) bool {
		return strings.EqualFold(name, "appid") || slices.ContainsFunc(appCredentialParams, func(p string) bool { return strings.EqualFold(name, p) })
	}
	switch {
	case b.form != nil:
		maps.DeleteFunc(b.form, func(name string, _ []string) bool { return credential(name) })
		return []byte(b.form.Encode())
	case b.json != nil:
		maps.DeleteFunc(b.json, func(name string, _ json.RawMessage) bool { return credential(name) })
		return jsonSecretFirst([][2]string{{param, query.Get(param)}, {"appid", query.Get("appid")}}, b.json)
	}
	return b.raw
}

// jsonSecretFirst encodes a JSON object whose members are first, in that
// order, then rest's in sorted order. The secret goes first of all, as it
// does in a query: an echo of the body that WeChat cuts short then cannot
// cut it in two, whatever a client puts in the other members, and the mask
// finds it whole or not at all.
func jsonSecretFirst(first [][2]string, rest map[string]json.RawMessage) []byte {
	var b bytes.Buffer
	b.WriteByte('{')
	member := func(name string, value []byte) {
		if b.Len() > 1 {
			b.WriteByte(',')
		}
		k, _ := json.Marshal(name)
		b.Write(k)
		b.WriteByte(':')
		b.Write(value)
	}
	for _, kv := range first {
		v, _ := json.Marshal(kv[1])
		member(kv[0], v)
	}
	for _, name := range slices.Sorted(maps.Keys(rest)) {
		member(name, rest[name])
	}
	b.WriteByte('}')
	return b.Bytes()
}

// stringMembers returns those of names that obj has, as strings, or the
// first of them that is no string.
func stringMembers(obj map[string]json.RawMessage, names ...string) (members map[string]string, bad string) {
	members = make(map[string]string, len(names))
	for _, name := range names {
		if v, ok := obj[name]; ok {
			var s string
			if json.Unmarshal(v, &s) != nil {
				return nil, name
			}
			members[name] = s
		}
	}
	return members, ""
}

// trimJSON returns a JSON text without the white space and byte order mark
// around it.
func trimJSON(raw []byte) []byte {
	return bytes.TrimSpace(bytes.TrimPrefix(bytes.TrimSpace(raw), []byte("\ufeff")))
}

// authorizeSecretCall returns the account whose secret the call gets, or
// the refusal the caller sees. param names the secret's parameter.
func (h *Handler) authorizeSecretCall(r *http.Request, query url.Values, param string) (*token.Handle, string, *clientauth.Error) {
	if !h.serves(string(token.Official)) {
		return nil, "", clientauth.Refuse(wxapi.CodeInvalidAppID, "this site serves "+h.Kind+" accounts; "+r.URL.Path+" is an official-account or mini-program API")
	}
	appid := query.Get("appid")
	if h.Trusted {
		if acct := h.fixed.Account(); appid != "" && appid != acct.AppID {
			return nil, "", clientauth.Refuse(wxapi.CodeInvalidAppID, "this site serves account "+acct.AppID+", not "+appid)
		}
		if acct := h.fixed.Account(); acct.Kind != token.Official {
			return nil, "", clientauth.Refuse(wxapi.CodeInvalidAppID, r.URL.Path+" is an official-account or mini-program API")
		}
		return h.fixed, "", nil
	}
	key := query.Get(param)
	switch {
	case appid == "":
		return nil, "", clientauth.Refuse(wxapi.CodeAppIDMissing, "appid missing")
	case key == "":
		return nil, "", clientauth.Refuse(wxapi.CodeSecretMissing, param+" missing: send the client key where the SDK sends the AppSecret")
	}
	auth := h.app.clients()
	claims, refusal := auth.AuthenticateFor(h.Account, string(token.Official), appid, key)
	if refusal == nil {
		refusal = auth.MayCall(claims, r.URL.Path)
	}
	if refusal == nil && adminPath(r.URL.Path) {
		refusal = auth.MayAdmin(claims)
	}
	if refusal != nil {
		h.logger.Info("secret-bearing call refused", zap.String("path", r.URL.Path), zap.String("appid", loggedAppID(appid)),
			zap.Int("errcode", refusal.Code), zap.String("reason", loggedReason(refusal.Msg, appid)))
		client := ""
		if claims != nil {
			client = claims.Client
		}
		return nil, client, refusal
	}
	account, err := h.app.account(claims.Account)
	if err != nil {
		return nil, "", clientauth.Refuse(wxapi.CodeInvalidCredential, "invalid credential: the account is not configured")
	}
	h.logger.Debug("secret-bearing call", zap.String("client", claims.Client), zap.String("account", claims.Account), zap.String("path", r.URL.Path))
	return account, claims.Client, nil
}

// secretRequest clones r for upstream with query as its query string (the
// real secret, in param, in it) and rest, if any, as its body (see
// credentialBody.upstream). Its RequestURI, which Caddy's debug log shows,
// has the secret redacted.
func secretRequest(r *http.Request, query url.Values, rest *credentialBody, param string) *http.Request {
	var body []byte
	if rest != nil {
		body = rest.upstream(query, param) // before credentialsFirst empties query
	}
	out := upstreamCopy(r, credentialsFirst(query))
	out.RequestURI = out.URL.EscapedPath() + "?" + wxapi.RedactParams(out.URL.RawQuery, redactedFromLog...)
	if rest != nil {
		setBody(out, body)
	}
	return out
}

// upstreamCopy returns a copy of r for one call upstream with rawQuery
// as its query, and headers of its own without those that would make the
// answer compressed or partial: as on every API call, it is inspected
// and masked whole. The caller sets what Caddy's debug log shows of it
// (RequestURI).
func upstreamCopy(r *http.Request, rawQuery string) *http.Request {
	out := new(http.Request)
	*out = *r
	u := *r.URL
	u.RawQuery = rawQuery
	u.ForceQuery = false
	out.URL = &u
	out.Header = r.Header.Clone()
	for _, k := range []string{"Accept-Encoding", "Range", "If-Range"} {
		out.Header.Del(k)
	}
	return out
}

// setBody makes body the body of out, a request for upstream.
func setBody(out *http.Request, body []byte) {
	out.Body = io.NopCloser(bytes.NewReader(body))
	out.ContentLength = int64(len(body))
	out.Header.Set("Content-Length", strconv.Itoa(len(body)))
	out.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
}

// serveUserCredentialCall forwards a /sns/ call that carries only the
// user's credential (a user access_token or refresh token): the gateway
// adds nothing and removes any app credential a caller put on it. In
// clients mode a caller that does send a secret must be a client: its key
// is checked as on the secret-bearing paths.
func (h *Handler) serveUserCredentialCall(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	raw := r.URL.RawQuery
	if !h.Trusted {
		key, _ := wxapi.QueryParam(raw, "secret")
		if key == "" {
			key, _ = wxapi.QueryParam(raw, "appsecret")
		}
		if key != "" {
			appid, _ := wxapi.QueryParam(raw, "appid")
			auth := h.app.clients()
			claims, refusal := auth.AuthenticateFor(h.Account, string(token.Official), appid, key)
			if refusal == nil {
				refusal = auth.MayCall(claims, r.URL.Path)
			}
			if refusal != nil {
				writeRefusal(w, refusal)
				return nil
			}
		}
	}
	if err := next.ServeHTTP(w, userCredentialRequest(r)); err != nil {
		h.upstreamFailed(w, r, nil, nil, err)
	}
	return nil
}

// userCredentials are the user's credentials on /sns/ calls: they go to
// WeChat but not into Caddy's debug log.
var userCredentials = []string{"access_token", "refresh_token", "code", "js_code"}

// redactedFromLog are the parameters masked in the URI that Caddy's
// debug log shows of an AppSecret call: the app's and the user's.
var redactedFromLog = slices.Concat(appCredentialParams, userCredentials)

// credentialsFirst encodes query with appid and the secret first: where
// WeChat echoes a query cut to a length, what the client controls comes
// after them and cannot push part of the secret out of sight.
func credentialsFirst(query url.Values) string {
	var b strings.Builder
	for _, k := range []string{"appid", "secret", "appsecret"} {
		if query.Has(k) {
			if b.Len() > 0 {
				b.WriteByte('&')
			}
			b.WriteString(url.QueryEscape(k) + "=" + url.QueryEscape(query.Get(k)))
			query.Del(k)
		}
	}
	if rest := query.Encode(); rest != "" {
		if b.Len() > 0 {
			b.WriteByte('&')
		}
		b.WriteString(rest)
	}
	return b.String()
}

// userCredentialRequest returns r for upstream without any app credential
// a caller put on it, and with a RequestURI (what Caddy's debug log shows)
// that has the user's credentials redacted.
func userCredentialRequest(r *http.Request) *http.Request {
	out := new(http.Request)
	*out = *r
	u := *r.URL
	u.RawQuery = wxapi.WithoutParams(r.URL.RawQuery, appCredentialParams...)
	out.URL = &u
	redacted := wxapi.RedactParams(u.RawQuery, userCredentials...)
	out.RequestURI = u.EscapedPath()
	if redacted != "" {
		out.RequestURI += "?" + redacted
	}
	return out
}
