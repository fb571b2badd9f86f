package simulator

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"net/url"
	"strings"
	"time"

	"github.com/wxgate/caddy-wechat/module/internal/wxapi"
)

func tokenRoutes() []*route {
	return []*route{
		{path: "/cgi-bin/token", family: pathMP, methods: allowBoth, handle: handleToken},
		{path: "/cgi-bin/stable_token", family: pathMP, methods: allowPOST, secretBody: true, handle: handleStableToken},
		{path: "/cgi-bin/gettoken", family: pathWeCom, methods: allowBoth, handle: handleGetToken},
		{path: "/sns/oauth2/access_token", family: pathSNS, methods: allowBoth, handle: handleOAuthToken},
		{path: "/sns/jscode2session", family: pathSNS, methods: allowGET, handle: handleJSCode2Session},
		{path: "/sns/userinfo", family: pathSNS, methods: allowBoth, handle: handleSNSUserInfo},
	}
}

// tokenAnswer is the success answer of /cgi-bin/token and stable_token:
// no errcode at all.
type tokenAnswer struct {
	AccessToken string `json:"access_token"`
	ExpiresIn   int    `json:"expires_in"`
}

// wecomTokenAnswer is the success answer of gettoken: errcode 0 first.
type wecomTokenAnswer struct {
	Errcode     int    `json:"errcode"`
	Errmsg      string `json:"errmsg"`
	AccessToken string `json:"access_token"`
	ExpiresIn   int    `json:"expires_in"`
}

func secretMatches(got, want string) bool {
	return subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}

// newToken issues a token of family f for a, valid for the configured TTL,
// and indexes it. The caller holds a.mu.
func (s *Simulator) newToken(c *call, a *account, f family) *token {
	ttl := int64(c.set.cfg.TokenTTL)
	t := &token{
		value:     newTokenValue(f),
		acct:      a,
		fam:       f,
		issued:    c.nowNs,
		expires:   c.nowNs + ttl,
		announced: c.nowNs + ttl,
	}
	if early := c.set.cfg.WeComEarlyInvalidation; f == famWeCom && early > 0 && int64(early) < ttl {
		t.expires = c.nowNs + int64(early)
	}
	s.tokens.add(t, c.nowNs)
	return t
}

// appCredentials validates grant_type, appid and secret of an official
// account; it answers the error itself and returns nil on failure.
func (c *call) appCredentials(grantType, wantGrant, appid, secret string) *account {
	switch {
	case grantType != wantGrant:
		c.fail(wxapi.CodeInvalidGrantType)
	case appid == "":
		c.fail(wxapi.CodeAppIDMissing)
	case secret == "":
		c.fail(wxapi.CodeSecretMissing)
	default:
		if c.set.isComponent(appid) {
			c.fail(wxapi.CodeComponentToken) // a platform's token comes from api_component_token
			return nil
		}
		a := c.set.byAppID[appid]
		if a == nil {
			c.fail(wxapi.CodeInvalidAppID)
			return nil
		}
		c.recAcct = a
		if !secretMatches(secret, a.Secret) {
			c.fail(wxapi.CodeInvalidCredential)
			return nil
		}
		return a
	}
	return nil
}

// queryCredentials is appCredentials for the grant_type, appid and secret
// of the query string, which it returns too.
func (c *call) queryCredentials(wantGrant string) (*account, url.Values) {
	q := c.r.URL.Query()
	return c.appCredentials(q.Get("grant_type"), wantGrant, q.Get("appid"), q.Get("secret")), q
}

// handleToken serves GET /cgi-bin/token: every call issues a new token; the
// previous one keeps working for Config.Overlap, then answers 40001.
func handleToken(s *Simulator, c *call) {
	a, _ := c.queryCredentials("client_credential")
	if a == nil {
		return
	}
	a.mu.Lock()
	day := c.day()
	if q := a.tokenQuota.Load(); q >= 0 && a.tokenDay.get(day) >= int(q) {
		a.mu.Unlock()
		c.fail(wxapi.CodeDailyQuota)
		return
	}
	a.tokenDay.inc(day)
	t := s.newToken(c, a, famToken)
	if prev := a.tokenCur; prev != nil {
		prev.invalidate(c.nowNs + int64(c.set.cfg.Overlap))
	}
	a.tokenCur = t
	a.mu.Unlock()
	a.counts.token.Add(1)
	c.ok(tokenAnswer{AccessToken: t.value, ExpiresIn: t.remaining(c.nowNs)})
}

// stableRequest is the body of POST /cgi-bin/stable_token.
type stableRequest struct {
	GrantType    string `json:"grant_type"`
	AppID        string `json:"appid"`
	Secret       string `json:"secret"`
	ForceRefresh bool   `json:"force_refresh"`
}

// handleStableToken serves POST /cgi-bin/stable_token.
//
// Normal mode returns the current token with its remaining lifetime; in the
// last Config.StableRotation (300 s) before expiry it rotates to a next
// token, the previous one working on until it expires. force_refresh=true
// issues a new token and invalidates the previous ones after
// Config.StableForceGrace, at most Config.ForceRefreshDailyLimit times a day
// and Config.ForceRefreshInterval apart; a force refresh past those limits
// is answered like normal mode (the current token, no refresh) and counted
// as refused. Stable tokens are independent of /cgi-bin/token tokens.
func handleStableToken(s *Simulator, c *call) {
	var req stableRequest
	if !c.decodeJSON(&req) {
		return
	}
	a := c.appCredentials(req.GrantType, "client_credential", req.AppID, req.Secret)
	if a == nil {
		return
	}
	cfg := &c.set.cfg
	day := c.day()
	a.mu.Lock()
	if cfg.StableDailyQuota >= 0 && a.stableDay.get(day) >= cfg.StableDailyQuota {
		a.mu.Unlock()
		c.fail(wxapi.CodeDailyQuota)
		return
	}
	a.stableDay.inc(day)
	forced := false
	if req.ForceRefresh {
		spaced := cfg.ForceRefreshInterval <= 0 || a.lastForce == 0 || c.nowNs-a.lastForce >= int64(cfg.ForceRefreshInterval)
		underLimit := cfg.ForceRefreshDailyLimit < 0 || a.forceDay.get(day) < cfg.ForceRefreshDailyLimit
		if spaced && underLimit {
			forced = true
			a.forceDay.inc(day)
			a.lastForce = c.nowNs
			deadline := c.nowNs + int64(cfg.StableForceGrace)
			for _, old := range []*token{a.stableCur, a.stablePrev} {
				if old != nil {
					old.invalidate(deadline)
				}
			}
			a.stablePrev = a.stableCur
			a.stableCur = s.newToken(c, a, famStable)
			a.counts.stableNew.Add(1)
		}
	}
	if !forced {
		cur := a.stableCur
		switch {
		case cur == nil || cur.state(c.nowNs) != tokenValid:
			a.stableCur = s.newToken(c, a, famStable)
			a.counts.stableNew.Add(1)
		case cur.expires-c.nowNs <= int64(cfg.StableRotation):
			a.stablePrev = cur
			a.stableCur = s.newToken(c, a, famStable)
			a.counts.stableNew.Add(1)
		}
	}
	t := a.stableCur
	a.mu.Unlock()

	a.counts.stable.Add(1)
	switch {
	case forced:
		a.counts.force.Add(1)
	case req.ForceRefresh:
		a.counts.forceRefused.Add(1)
	}
	c.ok(tokenAnswer{AccessToken: t.value, ExpiresIn: t.remaining(c.nowNs)})
}

// handleGetToken serves GET qyapi /cgi-bin/gettoken: one token per app
// (corpid, corpsecret), the same one while it is valid.
func handleGetToken(s *Simulator, c *call) {
	q := c.r.URL.Query()
	corpid, secret := q.Get("corpid"), q.Get("corpsecret")
	switch {
	case corpid == "":
		c.fail(wxapi.CodeAppIDMissing)
		return
	case secret == "":
		c.fail(wxapi.CodeSecretMissing)
		return
	}
	apps := c.set.byCorp[corpid]
	if len(apps) == 0 {
		c.fail(wxapi.CodeInvalidAppID)
		return
	}
	var a *account
	for _, app := range apps {
		if secretMatches(secret, app.Secret) {
			a = app
		}
	}
	if a == nil {
		c.recAcct = apps[0]
		c.fail(wxapi.CodeInvalidCredential)
		return
	}
	c.recAcct = a
	day := c.day()
	a.mu.Lock()
	if q := a.tokenQuota.Load(); q >= 0 && a.tokenDay.get(day) >= int(q) {
		a.mu.Unlock()
		c.fail(wxapi.CodeDailyQuota)
		return
	}
	a.tokenDay.inc(day)
	t := a.wecomCur
	if t == nil || t.state(c.nowNs) != tokenValid {
		t = s.newToken(c, a, famWeCom)
		a.wecomCur = t
		a.counts.wecomNew.Add(1)
	}
	a.mu.Unlock()
	a.counts.gettoken.Add(1)
	c.ok(wecomTokenAnswer{Errmsg: "ok", AccessToken: t.value, ExpiresIn: t.remaining(c.nowNs)})
}

// oauthCodeLifetime is how long a user OAuth code can be exchanged.
const oauthCodeLifetime = 5 * time.Minute

// oauthAnswer is the success answer of /sns/oauth2/access_token.
type oauthAnswer struct {
	AccessToken  string `json:"access_token"`
	ExpiresIn    int    `json:"expires_in"`
	RefreshToken string `json:"refresh_token"`
	OpenID       string `json:"openid"`
	Scope        string `json:"scope"`
	UnionID      string `json:"unionid"`
}

// handleOAuthToken serves /sns/oauth2/access_token: it exchanges any
// well-formed, unused code for a user token (a token that only works on
// /sns/ paths). Each code works once.
func handleOAuthToken(s *Simulator, c *call) {
	a, q := c.queryCredentials("authorization_code")
	if a == nil {
		return
	}
	code := q.Get("code")
	a.mu.Lock()
	if !c.useCode(a, code) {
		a.mu.Unlock()
		return
	}
	t := s.newToken(c, a, famUser)
	t.openid = deriveID("o", a.AppID, code)
	a.mu.Unlock()
	a.counts.user.Add(1)
	c.ok(oauthAnswer{
		AccessToken:  t.value,
		ExpiresIn:    t.remaining(c.nowNs),
		RefreshToken: randomString(mpTokenPrefix, userTokenLen),
		OpenID:       t.openid,
		Scope:        "snsapi_userinfo",
		UnionID:      deriveID("o", "union", t.openid),
	})
}

// useCode spends a user's code (OAuth or mini-program login): it must be
// well-formed and not used within its lifetime. It answers the error and
// reports false otherwise. a.mu is held.
func (c *call) useCode(a *account, code string) bool {
	switch {
	case code == "":
		c.fail(wxapi.CodeCodeMissing)
		return false
	case !isPlainID(code):
		c.fail(wxapi.CodeInvalidCode)
		return false
	}
	if a.usedCodes == nil {
		a.usedCodes = make(map[string]int64)
	}
	if at, used := a.usedCodes[code]; used && c.nowNs-at < int64(oauthCodeLifetime) {
		c.fail(wxapi.CodeCodeUsed)
		return false
	}
	if len(a.usedCodes) >= 4096 {
		for k, at := range a.usedCodes {
			if c.nowNs-at >= int64(oauthCodeLifetime) {
				delete(a.usedCodes, k)
			}
		}
	}
	a.usedCodes[code] = c.nowNs
	return true
}

// codeUser is the user a login code stands for: the code up to its first
// '-' ("alice-1" and "alice-2" are two logins of alice), or the whole code.
func codeUser(code string) string {
	user, _, _ := strings.Cut(code, "-")
	return user
}

// sessionKey derives the session key a login code of an app with secret
// opens.
func sessionKey(secret, code string) string {
	return deriveID("k", secret, code)[:22] + "=="
}

// loginsPerMinute is how many logins one user may make per minute, past
// which jscode2session answers 45011.
const loginsPerMinute = 100

// sessionAnswer is the success answer of /sns/jscode2session.
type sessionAnswer struct {
	OpenID     string `json:"openid"`
	SessionKey string `json:"session_key"`
	UnionID    string `json:"unionid,omitempty"`
}

// handleJSCode2Session serves GET /sns/jscode2session: a mini program's
// login code for the user's openid and session key. A code works once; a
// user (the code up to its first '-') may log in 100 times a minute, then
// 45011; codes starting with "nounion" are of users with no unionid bound.
func handleJSCode2Session(s *Simulator, c *call) {
	a, q := c.queryCredentials("authorization_code")
	if a == nil {
		return
	}
	code := q.Get("js_code")
	openid := deriveID("o", a.AppID, "session", codeUser(code))
	minute := c.nowNs / int64(time.Minute)
	a.mu.Lock()
	if a.loginMinute != minute {
		a.loginMinute, a.logins = minute, nil
	}
	if a.logins == nil {
		a.logins = make(map[string]int)
	}
	if a.logins[openid] >= loginsPerMinute {
		a.mu.Unlock()
		c.fail(wxapi.CodeMinuteQuota)
		return
	}
	if !c.useCode(a, code) {
		a.mu.Unlock()
		return
	}
	a.logins[openid]++
	a.mu.Unlock()
	a.counts.sessions.Add(1)
	ans := sessionAnswer{OpenID: openid, SessionKey: sessionKey(a.Secret, code)}
	if !strings.HasPrefix(code, "nounion") {
		ans.UnionID = deriveID("o", "union", openid)
	}
	c.ok(ans)
}

// snsUser is the answer of /sns/userinfo.
type snsUser struct {
	OpenID     string   `json:"openid"`
	Nickname   string   `json:"nickname"`
	Sex        int      `json:"sex"`
	Language   string   `json:"language"`
	City       string   `json:"city"`
	Province   string   `json:"province"`
	Country    string   `json:"country"`
	HeadImgURL string   `json:"headimgurl"`
	Privilege  []string `json:"privilege"`
	UnionID    string   `json:"unionid"`
}

// handleSNSUserInfo serves /sns/userinfo. Only user tokens work here: an app
// token (or any other) answers 40001, which is about the user's token and
// is not counted as an app-token rejection.
func handleSNSUserInfo(s *Simulator, c *call) {
	c.tokenChecked = true
	v := c.query("access_token")
	if v == "" {
		c.fail(wxapi.CodeTokenMissing)
		return
	}
	t := s.tokens.get(v)
	if t == nil || t.fam != famUser || t.acct.removed.Load() {
		c.fail(wxapi.CodeInvalidCredential)
		return
	}
	c.recAcct = t.acct
	switch t.state(c.nowNs) {
	case tokenExpired:
		c.fail(wxapi.CodeTokenExpired)
		return
	case tokenInvalid:
		c.fail(wxapi.CodeInvalidCredential)
		return
	}
	c.tokenValid = true
	openid, ok := c.userParam("openid", func(id string) bool { return id == t.openid }, wxapi.CodeInvalidOpenID)
	if !ok {
		return
	}
	c.ok(snsUser{
		OpenID:    openid,
		Nickname:  "微信用户",
		Privilege: []string{},
		UnionID:   deriveID("o", "union", openid),
	})
}

// deriveID derives a stable 28-character id (like an openid) from parts.
func deriveID(prefix string, parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	enc := base64.RawURLEncoding.EncodeToString(h.Sum(nil))
	return (prefix + enc)[:28]
}
