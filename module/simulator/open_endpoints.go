package simulator

import (
	"github.com/wxgate/caddy-wechat/module/internal/wxapi"
)

// openRoutes are the component API paths of the open platform
// (api.weixin.qq.com). They take ?component_access_token= (checked by the
// handlers), not ?access_token=.
func openRoutes() []*route {
	return []*route{
		{path: "/cgi-bin/component/api_component_token", family: pathMP, methods: allowPOST, secretBody: true, handle: handleComponentToken},
		{path: "/cgi-bin/component/api_create_preauthcode", family: pathMP, methods: allowPOST, handle: handleCreatePreAuthCode},
		{path: "/cgi-bin/component/api_query_auth", family: pathMP, methods: allowPOST, secretBody: true, handle: handleQueryAuth},
		{path: "/cgi-bin/component/api_authorizer_token", family: pathMP, methods: allowPOST, secretBody: true, handle: handleAuthorizerToken},
		{path: "/cgi-bin/component/clear_quota/v2", family: pathMP, methods: allowPOST, secretBody: true, handle: handleComponentClearQuotaV2},
	}
}

// Prefixes of the open platform's credentials, as WeChat shapes them.
const (
	ticketPrefix       = "ticket@@@"
	preAuthCodePrefix  = "preauthcode@@@"
	authCodePrefix     = "queryauthcode@@@"
	refreshTokenPrefix = "refreshtoken@@@"
)

// openCodeLimit bounds the pre_auth_codes and authorization codes a
// component keeps; past it expired ones are dropped, then arbitrary ones.
const openCodeLimit = 4096

// componentTokenAnswer is the success answer of api_component_token: no
// errcode.
type componentTokenAnswer struct {
	ComponentAccessToken string `json:"component_access_token"`
	ExpiresIn            int    `json:"expires_in"`
}

// handleComponentToken serves POST /cgi-bin/component/api_component_token
// {component_appid, component_appsecret, component_verify_ticket}. Every
// successful call issues a new component_access_token; the previous one
// works for Config.Overlap more. The ticket must be one the simulator
// pushed for this component within Config.ComponentTicketTTL (61005 past
// it, 61006 unknown). Successful calls count against Config.DailyTokenQuota
// per component, then 45009.
func handleComponentToken(s *Simulator, c *call) {
	var req struct {
		ComponentAppID     string `json:"component_appid"`
		ComponentAppSecret string `json:"component_appsecret"`
		Ticket             string `json:"component_verify_ticket"`
	}
	if !c.decodeJSON(&req) {
		return
	}
	e := c.componentCredentials(req.ComponentAppID, req.ComponentAppSecret)
	if e == nil {
		return
	}
	cfg := &c.set.cfg
	st := e.st
	day := c.day()
	st.mu.Lock()
	pushed, known := st.tickets[req.Ticket]
	switch {
	case !known:
		st.mu.Unlock()
		c.fail(wxapi.CodeVerifyTicketInvalid)
		return
	case c.nowNs-pushed >= int64(cfg.ComponentTicketTTL):
		st.mu.Unlock()
		c.fail(wxapi.CodeVerifyTicketExpired)
		return
	case cfg.DailyTokenQuota >= 0 && st.tokenDay.get(day) >= cfg.DailyTokenQuota:
		st.mu.Unlock()
		c.fail(wxapi.CodeDailyQuota)
		return
	}
	st.tokenDay.inc(day)
	ttl := int64(cfg.TokenTTL)
	t := &token{value: newTokenValue(famToken), fam: famComponent, comp: st, issued: c.nowNs, expires: c.nowNs + ttl, announced: c.nowNs + ttl}
	s.open.tokens.add(t, c.nowNs)
	if prev := st.tokenCur; prev != nil {
		prev.invalidate(c.nowNs + int64(cfg.Overlap))
	}
	st.tokenCur = t
	st.mu.Unlock()
	st.counts.token.Add(1)
	c.ok(componentTokenAnswer{ComponentAccessToken: t.value, ExpiresIn: t.remaining(c.nowNs)})
}

// component returns the configured component appid names, or nil.
func (st *settings) component(appid string) *compEntry {
	if st.open == nil {
		return nil
	}
	return st.open.byComp[appid]
}

// componentToken resolves ?component_access_token=. It answers the error
// and returns nil when the token is missing (41001), unknown, superseded,
// revoked (40001) or expired (42001).
func (s *Simulator) componentToken(c *call) *compEntry {
	c.tokenChecked = true
	v := c.query("component_access_token")
	reject := func(code int) *compEntry {
		s.open.tokenRejections.Add(1)
		c.fail(code)
		return nil
	}
	if v == "" {
		return reject(wxapi.CodeTokenMissing)
	}
	t := s.open.tokens.get(v)
	if t == nil || t.comp.removed.Load() {
		return reject(wxapi.CodeInvalidCredential)
	}
	e := c.set.component(t.comp.appid)
	if e == nil || e.st != t.comp {
		return reject(wxapi.CodeInvalidCredential)
	}
	c.owner = e.cfg.AppID
	switch t.state(c.nowNs) {
	case tokenExpired:
		return reject(wxapi.CodeTokenExpired)
	case tokenInvalid:
		return reject(wxapi.CodeInvalidCredential)
	}
	c.tokenValid = true
	return e
}

// componentBody is the component_appid every component API body carries.
type componentBody struct {
	ComponentAppID string `json:"component_appid"`
}

// componentCall checks ?component_access_token=, then decodes the body into
// req, whose componentBody comp is, and checks its component_appid against
// the token's component: 41002 when missing, 61011 when another. It answers
// the error and returns nil when a check fails.
func (s *Simulator) componentCall(c *call, req any, comp *componentBody) *compEntry {
	e := s.componentToken(c)
	if e == nil || !c.decodeJSON(req) {
		return nil
	}
	switch {
	case comp.ComponentAppID == "":
		c.fail(wxapi.CodeAppIDMissing)
	case comp.ComponentAppID != e.cfg.AppID:
		c.fail(wxapi.CodeInvalidComponent)
	default:
		return e
	}
	return nil
}

// preAuthAnswer is the success answer of api_create_preauthcode.
type preAuthAnswer struct {
	PreAuthCode string `json:"pre_auth_code"`
	ExpiresIn   int    `json:"expires_in"`
}

// handleCreatePreAuthCode serves POST
// /cgi-bin/component/api_create_preauthcode?component_access_token=
// {component_appid}: a pre_auth_code valid 600 s, which Authorize (the
// control API's component/authorize) may consume.
func handleCreatePreAuthCode(s *Simulator, c *call) {
	var req componentBody
	e := s.componentCall(c, &req, &req)
	if e == nil {
		return
	}
	code := randomString(preAuthCodePrefix, len(preAuthCodePrefix)+64)
	st := e.st
	st.mu.Lock()
	if st.preAuth == nil {
		st.preAuth = make(map[string]int64)
	}
	pruneCodes(st.preAuth, c.nowNs, func(exp int64) int64 { return exp })
	st.preAuth[code] = c.nowNs + int64(preAuthCodeLifetime)
	st.mu.Unlock()
	st.counts.preAuth.Add(1)
	c.ok(preAuthAnswer{PreAuthCode: code, ExpiresIn: int(preAuthCodeLifetime / 1e9)})
}

// pruneCodes drops expired entries of m once it is full, then arbitrary
// ones until there is room for one more.
func pruneCodes[V any](m map[string]V, now int64, expiry func(V) int64) {
	if len(m) < openCodeLimit {
		return
	}
	for k, v := range m {
		if expiry(v) <= now {
			delete(m, k)
		}
	}
	for k := range m {
		if len(m) < openCodeLimit {
			break
		}
		delete(m, k)
	}
}

// funcScope is one entry of func_info.
type funcScope struct {
	FuncscopeCategory struct {
		ID int `json:"id"`
	} `json:"funcscope_category"`
}

// authorizedScopes are the permission sets every authorizer grants: message
// management, user management, account services, web services, custom
// menus, material management.
var authorizedScopes = []int{1, 2, 3, 4, 11, 15}

func funcInfo() []funcScope {
	out := make([]funcScope, len(authorizedScopes))
	for i, id := range authorizedScopes {
		out[i].FuncscopeCategory.ID = id
	}
	return out
}

// queryAuthAnswer is the success answer of api_query_auth.
type queryAuthAnswer struct {
	AuthorizationInfo struct {
		AuthorizerAppID        string      `json:"authorizer_appid"`
		AuthorizerAccessToken  string      `json:"authorizer_access_token"`
		ExpiresIn              int         `json:"expires_in"`
		AuthorizerRefreshToken string      `json:"authorizer_refresh_token"`
		FuncInfo               []funcScope `json:"func_info"`
	} `json:"authorization_info"`
}

// handleQueryAuth serves POST
// /cgi-bin/component/api_query_auth?component_access_token=
// {component_appid, authorization_code}: it exchanges an authorization code
// (from Authorize; valid an hour, once) for the authorizer's access token
// and refresh token. Codes answer 61009 when unknown or used, 61010 when
// expired.
func handleQueryAuth(s *Simulator, c *call) {
	var req struct {
		componentBody
		AuthorizationCode string `json:"authorization_code"`
	}
	e := s.componentCall(c, &req, &req.componentBody)
	if e == nil {
		return
	}
	a := c.useAuthCode(e, req.AuthorizationCode)
	if a == nil {
		return
	}
	t, refresh := s.rotateAuthorizer(c, a, func(st *authorizerState) bool { return st.authorized })
	if t == nil {
		c.fail(wxapi.CodeAuthCodeInvalid)
		return
	}
	a.st.counts.queryAuth.Add(1)
	var ans queryAuthAnswer
	info := &ans.AuthorizationInfo
	info.AuthorizerAppID = a.cfg.AppID
	info.AuthorizerAccessToken = t.value
	info.ExpiresIn = t.remaining(c.nowNs)
	info.AuthorizerRefreshToken = refresh
	info.FuncInfo = funcInfo()
	c.ok(ans)
}

// useAuthCode spends an authorization code of component e and returns the
// authorizer it stands for. It answers 41008 and returns nil when the code
// is missing, 61009 when it is unknown, used or of a removed authorizer,
// 61010 when it expired.
func (c *call) useAuthCode(e *compEntry, code string) *authEntry {
	if code == "" {
		c.fail(wxapi.CodeCodeMissing)
		return nil
	}
	e.st.mu.Lock()
	ac, ok := e.st.codes[code]
	if ok {
		delete(e.st.codes, code)
	}
	e.st.mu.Unlock()
	switch {
	case !ok:
		c.fail(wxapi.CodeAuthCodeInvalid)
		return nil
	case ac.expires <= c.nowNs:
		c.fail(wxapi.CodeAuthCodeExpired)
		return nil
	}
	var a *authEntry
	for _, cand := range e.auths {
		if cand.st == ac.auth {
			a = cand
		}
	}
	if a == nil {
		c.fail(wxapi.CodeAuthCodeInvalid) // the authorizer was removed since
	}
	return a
}

// rotateAuthorizer issues a new access token and refresh token for a when
// valid, called with a.st.mu held, accepts its state: the previous access
// token works for Config.Overlap more, the previous refresh token for
// Config.AuthorizerRefreshGrace. It returns the new tokens, or nil and ""
// when valid refused.
func (s *Simulator) rotateAuthorizer(c *call, a *authEntry, valid func(*authorizerState) bool) (*token, string) {
	a.st.mu.Lock()
	defer a.st.mu.Unlock()
	if !valid(a.st) {
		return nil, ""
	}
	cfg := &c.set.cfg
	ttl := int64(cfg.TokenTTL)
	t := &token{value: newTokenValue(famToken), acct: a.acct, fam: famAuthorizer, auth: a.st, issued: c.nowNs, expires: c.nowNs + ttl, announced: c.nowNs + ttl}
	s.tokens.add(t, c.nowNs)
	if prev := a.st.tokenCur; prev != nil {
		prev.invalidate(c.nowNs + int64(cfg.Overlap))
	}
	a.st.tokenCur = t
	if a.st.refreshCur != "" {
		a.st.refreshPrev, a.st.prevUntil = a.st.refreshCur, c.nowNs+int64(cfg.AuthorizerRefreshGrace)
	}
	a.st.refreshCur = randomString(refreshTokenPrefix, len(refreshTokenPrefix)+43)
	return t, a.st.refreshCur
}

// authorizerTokenAnswer is the success answer of api_authorizer_token.
type authorizerTokenAnswer struct {
	AuthorizerAccessToken  string `json:"authorizer_access_token"`
	ExpiresIn              int    `json:"expires_in"`
	AuthorizerRefreshToken string `json:"authorizer_refresh_token"`
}

// handleAuthorizerToken serves POST
// /cgi-bin/component/api_authorizer_token?component_access_token=
// {component_appid, authorizer_appid, authorizer_refresh_token}. Every
// successful call issues a new access token (the previous one works for
// Config.Overlap more) and a new refresh token (the previous one works for
// Config.AuthorizerRefreshGrace more, then answers 61023). An authorizer
// that is not configured for the component answers 61003; a wrong, stale
// or revoked refresh token, or an unauthorised authorizer, 61023.
func handleAuthorizerToken(s *Simulator, c *call) {
	var req struct {
		componentBody
		AuthorizerAppID        string `json:"authorizer_appid"`
		AuthorizerRefreshToken string `json:"authorizer_refresh_token"`
	}
	e := s.componentCall(c, &req, &req.componentBody)
	if e == nil {
		return
	}
	if req.AuthorizerAppID == "" {
		c.fail(wxapi.CodeAppIDMissing)
		return
	}
	a := c.set.open.auths[[2]string{e.cfg.AppID, req.AuthorizerAppID}]
	if a == nil {
		c.fail(wxapi.CodeComponentUnauthorized)
		return
	}
	rt := req.AuthorizerRefreshToken
	t, refresh := s.rotateAuthorizer(c, a, func(st *authorizerState) bool {
		return st.authorized && rt != "" &&
			(st.refreshCur != "" && secretMatches(rt, st.refreshCur) ||
				st.refreshPrev != "" && c.nowNs < st.prevUntil && secretMatches(rt, st.refreshPrev))
	})
	if t == nil {
		a.st.counts.refreshRejected.Add(1)
		c.fail(wxapi.CodeRefreshTokenRevoked)
		return
	}
	a.st.counts.token.Add(1)
	c.ok(authorizerTokenAnswer{AuthorizerAccessToken: t.value, ExpiresIn: t.remaining(c.nowNs), AuthorizerRefreshToken: refresh})
}

// handleComponentClearQuotaV2 serves POST /cgi-bin/component/clear_quota/v2
// {component_appid, appsecret, appid} with no token: the platform's
// AppSecret resets the platform's own quotas (api_component_token's daily
// count) or, with appid, those of an authorizer that has authorised it.
// Either counts against that account's 10 resets a month (48006 past
// them), shared with clear_quota.
func handleComponentClearQuotaV2(s *Simulator, c *call) {
	var req struct {
		ComponentAppID string `json:"component_appid"`
		AppSecret      string `json:"appsecret"`
		AppID          string `json:"appid"`
	}
	if !c.decodeJSON(&req) {
		return
	}
	e := c.componentCredentials(req.ComponentAppID, req.AppSecret)
	if e == nil {
		return
	}
	if req.AppID != "" {
		a := c.set.open.auths[[2]string{e.cfg.AppID, req.AppID}]
		if a == nil || !a.authorized() {
			c.fail(wxapi.CodeComponentUnauthorized)
			return
		}
		s.clearQuota(c, a.acct)
		return
	}
	st := e.st
	st.mu.Lock()
	defer st.mu.Unlock()
	if !st.clears.take(c.now) {
		c.fail(wxapi.CodeClearQuotaLimit)
		return
	}
	st.tokenDay.reset()
	c.json(wxapi.CodeOK, okBody)
}

// authorized reports whether the authorizer has authorised its component
// and not withdrawn.
func (a *authEntry) authorized() bool {
	a.st.mu.Lock()
	defer a.st.mu.Unlock()
	return a.st.authorized
}

// componentCredentials returns the component that appid and secret name
// and prove, or answers the error (41002, 41004, 61011, 40125) and returns
// nil.
func (c *call) componentCredentials(appid, secret string) *compEntry {
	switch {
	case appid == "":
		c.fail(wxapi.CodeAppIDMissing)
		return nil
	case secret == "":
		c.fail(wxapi.CodeSecretMissing)
		return nil
	}
	e := c.set.component(appid)
	if e == nil {
		c.fail(wxapi.CodeInvalidComponent)
		return nil
	}
	c.owner = e.cfg.AppID
	if !secretMatches(secret, e.cfg.Secret) {
		c.fail(wxapi.CodeInvalidAppSecret)
		return nil
	}
	return e
}
