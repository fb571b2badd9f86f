package simulator

import (
	"encoding/json"
	"fmt"
	"regexp"
	"testing"
	"time"
)

var tokenShape = regexp.MustCompile(`^[A-Za-z0-9_-]{1,512}$`)

func TestTokenSuccessShape(t *testing.T) {
	h := start(t)
	a := h.get("/cgi-bin/token", q("grant_type", "client_credential", "appid", mpApp, "secret", mpSecret))
	expectCode(t, a, 0)
	m := a.json(t)
	if _, has := m["errcode"]; has {
		t.Errorf("MP token answer carries an errcode: %s", a.body)
	}
	tok, _ := m["access_token"].(string)
	if !tokenShape.MatchString(tok) {
		t.Errorf("token %q is not up to 512 URL-safe characters", tok)
	}
	if num(t, m["expires_in"]) != 7200 {
		t.Errorf("expires_in %v, want 7200", m["expires_in"])
	}
	if len(m) != 2 {
		t.Errorf("unexpected fields: %s", a.body)
	}
}

func TestTokenExpiresInFollowsConfig(t *testing.T) {
	cfg := testConfig()
	cfg.TokenTTL = 3600 * time.Second
	h := newHarness(t, cfg)
	if _, exp := h.token(mpApp, mpSecret); exp != 3600 {
		t.Fatalf("expires_in %d, want 3600", exp)
	}
}

func TestTokenRotationAndOverlap(t *testing.T) {
	h := start(t)
	t1 := h.mpToken()
	h.advance(time.Minute)
	t2 := h.mpToken()
	if t1 == t2 {
		t.Fatal("/cgi-bin/token returned the same token twice")
	}
	// Both work during the overlap.
	expectCode(t, h.get("/cgi-bin/user/info", tq(t1, "openid", "o1")), 0)
	expectCode(t, h.get("/cgi-bin/user/info", tq(t2, "openid", "o1")), 0)
	h.advance(5*time.Minute - time.Second)
	expectCode(t, h.get("/cgi-bin/user/info", tq(t1, "openid", "o1")), 0)
	h.advance(time.Second)
	expectMP(t, h.get("/cgi-bin/user/info", tq(t1, "openid", "o1")), 40001)
	expectCode(t, h.get("/cgi-bin/user/info", tq(t2, "openid", "o1")), 0)
	if n := h.sim.Counters().Tokens[mpApp].Token; n != 2 {
		t.Errorf("tokens issued = %d, want 2", n)
	}
}

func TestTokenOverlapKnob(t *testing.T) {
	cfg := testConfig()
	cfg.Overlap = -1 // none
	h := newHarness(t, cfg)
	t1 := h.mpToken()
	h.mpToken()
	expectMP(t, h.get("/cgi-bin/menu/get", tq(t1)), 40001)

	cfg.Overlap = 30 * time.Second
	h = newHarness(t, cfg)
	t1 = h.mpToken()
	h.mpToken()
	h.advance(29 * time.Second)
	expectCode(t, h.get("/cgi-bin/user/info", tq(t1, "openid", "o1")), 0)
	h.advance(time.Second)
	expectMP(t, h.get("/cgi-bin/user/info", tq(t1, "openid", "o1")), 40001)
}

func TestTokenExpiryAnswers42001(t *testing.T) {
	h := start(t)
	tok := h.mpToken()
	h.advance(7200*time.Second - time.Nanosecond)
	expectCode(t, h.get("/cgi-bin/user/info", tq(tok, "openid", "o1")), 0)
	h.advance(time.Nanosecond)
	expectMP(t, h.get("/cgi-bin/user/info", tq(tok, "openid", "o1")), 42001)
	// A token superseded and then past its overlap answers 40001, even
	// later when it would also have expired.
	t1 := h.mpToken()
	h.mpToken()
	h.advance(3 * time.Hour)
	expectMP(t, h.get("/cgi-bin/user/info", tq(t1, "openid", "o1")), 40001)
}

func TestTokenEndpointErrors(t *testing.T) {
	h := start(t)
	cases := []struct {
		name  string
		query map[string]string
		want  int
	}{
		{"bad grant_type", map[string]string{"grant_type": "password", "appid": mpApp, "secret": mpSecret}, 40002},
		{"no grant_type", map[string]string{"appid": mpApp, "secret": mpSecret}, 40002},
		{"no appid", map[string]string{"grant_type": "client_credential", "secret": mpSecret}, 41002},
		{"no secret", map[string]string{"grant_type": "client_credential", "appid": mpApp}, 41004},
		{"unknown appid", map[string]string{"grant_type": "client_credential", "appid": "wxunknown", "secret": mpSecret}, 40013},
		{"wecom corpid", map[string]string{"grant_type": "client_credential", "appid": corpID, "secret": appSecret1}, 40013},
		{"wrong secret", map[string]string{"grant_type": "client_credential", "appid": mpApp, "secret": mpSecret2}, 40001},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			v := q()
			for k, val := range c.query {
				v.Set(k, val)
			}
			a := h.get("/cgi-bin/token", v)
			expectMP(t, a, c.want)
			if contains(string(a.body), mpSecret) || contains(string(a.body), mpSecret2) {
				t.Fatal("the answer echoes a secret")
			}
		})
	}
	if n := h.sim.Counters().Tokens[mpApp].Token; n != 0 {
		t.Errorf("failed calls issued %d tokens", n)
	}
}

func TestTokenDailyQuotaAndRollover(t *testing.T) {
	cfg := testConfig()
	cfg.DailyTokenQuota = 3
	cfg.Accounts[1].DailyTokenQuota = 1 // a "test account" with its own quota
	cfg.Start = time.Date(2025, 3, 1, 23, 0, 0, 0, shanghai)
	h := newHarness(t, cfg)
	for range 3 {
		h.mpToken()
	}
	query := q("grant_type", "client_credential", "appid", mpApp, "secret", mpSecret)
	expectMP(t, h.get("/cgi-bin/token", query), 45009)
	h.token(mpApp2, mpSecret2)
	expectMP(t, h.get("/cgi-bin/token", q("grant_type", "client_credential", "appid", mpApp2, "secret", mpSecret2)), 45009)

	// Still the same day at 23:59:59 in Shanghai, a new day at midnight.
	h.advance(59*time.Minute + 59*time.Second)
	expectMP(t, h.get("/cgi-bin/token", query), 45009)
	h.advance(time.Second)
	h.mpToken()
	if n := h.sim.Counters().Tokens[mpApp].Token; n != 4 {
		t.Errorf("tokens issued = %d, want 4", n)
	}

	// gettoken has the same daily quota per app.
	for range 3 {
		h.wecomToken(appSecret1)
	}
	expectWeCom(t, h.qyGet("/cgi-bin/gettoken", q("corpid", corpID, "corpsecret", appSecret1)), 45009)
	h.wecomToken(appSecret2) // the other app has its own quota
}

func TestStableTokenNormalMode(t *testing.T) {
	h := start(t)
	tok, exp := h.stable(mpApp, mpSecret, false)
	if exp != 7200 {
		t.Fatalf("first expires_in %d", exp)
	}
	h.advance(6855 * time.Second)
	again, exp := h.stable(mpApp, mpSecret, false)
	if again != tok || exp != 345 {
		t.Fatalf("normal mode: same=%v expires_in=%d, want the same token with 345 s left", again == tok, exp)
	}
	// In the last 300 s the next token comes, the old one keeps working.
	h.advance(45 * time.Second) // 300 s left
	next, exp := h.stable(mpApp, mpSecret, false)
	if next == tok || exp != 7200 {
		t.Fatalf("rotation: new=%v expires_in=%d", next != tok, exp)
	}
	expectCode(t, h.get("/cgi-bin/user/info", tq(tok, "openid", "o1")), 0)
	expectCode(t, h.get("/cgi-bin/user/info", tq(next, "openid", "o1")), 0)
	h.advance(300 * time.Second)
	expectMP(t, h.get("/cgi-bin/user/info", tq(tok, "openid", "o1")), 42001)
	expectCode(t, h.get("/cgi-bin/user/info", tq(next, "openid", "o1")), 0)
	if same, exp := h.stable(mpApp, mpSecret, false); same != next || exp != 6900 {
		t.Fatalf("after rotation: same=%v expires_in=%d", same == next, exp)
	}
	c := h.sim.Counters().Tokens[mpApp]
	if c.StableToken != 4 || c.StableIssued != 2 || c.Token != 0 {
		t.Errorf("counters %+v", c)
	}
}

func TestStableTokenExpiresInNeverBelowRotationWindow(t *testing.T) {
	h := start(t)
	h.stable(mpApp, mpSecret, false)
	for i := 0; i < 200; i++ {
		h.advance(97 * time.Second)
		if _, exp := h.stable(mpApp, mpSecret, false); exp < 300 {
			t.Fatalf("call %d: expires_in %d < 300", i, exp)
		}
	}
}

func TestStableTokenErrors(t *testing.T) {
	h := start(t)
	expectMP(t, h.get("/cgi-bin/stable_token", q("grant_type", "client_credential", "appid", mpApp, "secret", mpSecret)), 43002)
	expectMP(t, h.post("/cgi-bin/stable_token", nil, `{"grant_type":"client_credential","appid":`), 47001)
	expectMP(t, h.post("/cgi-bin/stable_token", nil, `{"grant_type":"client_credential","appid":"`+mpApp+`","secret":"`+mpSecret+`","force_refresh":"yes"}`), 47001)
	expectMP(t, h.post("/cgi-bin/stable_token", nil, ``), 44002)
	expectMP(t, h.post("/cgi-bin/stable_token", nil, `{"grant_type":"x","appid":"`+mpApp+`","secret":"`+mpSecret+`"}`), 40002)
	expectMP(t, h.post("/cgi-bin/stable_token", nil, `{"grant_type":"client_credential","secret":"`+mpSecret+`"}`), 41002)
	expectMP(t, h.post("/cgi-bin/stable_token", nil, `{"grant_type":"client_credential","appid":"`+mpApp+`"}`), 41004)
	expectMP(t, h.post("/cgi-bin/stable_token", nil, `{"grant_type":"client_credential","appid":"wxnope","secret":"`+mpSecret+`"}`), 40013)
	expectMP(t, h.post("/cgi-bin/stable_token", nil, `{"grant_type":"client_credential","appid":"`+mpApp+`","secret":"wrong"}`), 40001)
	last := h.sim.Counters().Paths["/cgi-bin/stable_token"].Last
	if last.BodySHA256 != "" || !last.BodyRedacted {
		t.Errorf("the hash of a body carrying a secret was recorded: %+v", last)
	}
}

func TestStableForceRefresh(t *testing.T) {
	h := start(t)
	t1, _ := h.stable(mpApp, mpSecret, false)
	h.advance(time.Hour)
	t2, exp := h.stable(mpApp, mpSecret, true)
	if t2 == t1 || exp != 7200 {
		t.Fatalf("force refresh: new=%v expires_in=%d", t2 != t1, exp)
	}
	// The previous token works during the grace, then answers 40001.
	h.advance(5*time.Minute - time.Second)
	expectCode(t, h.get("/cgi-bin/user/info", tq(t1, "openid", "o1")), 0)
	h.advance(time.Second)
	expectMP(t, h.get("/cgi-bin/user/info", tq(t1, "openid", "o1")), 40001)

	// 30 s spacing: a force within 30 s is answered like normal mode.
	h.advance(10 * time.Second) // 310 s after the last force
	t3, _ := h.stable(mpApp, mpSecret, true)
	h.advance(29 * time.Second)
	same, exp := h.stable(mpApp, mpSecret, true)
	if same != t3 || exp != 7171 {
		t.Fatalf("force within 30 s: refreshed=%v expires_in=%d", same != t3, exp)
	}
	h.advance(time.Second)
	if t4, _ := h.stable(mpApp, mpSecret, true); t4 == t3 {
		t.Fatal("force 30 s later did not refresh")
	}
	h.wantForceCounts(t, 3, 1)
}

// wantForceCounts fails t unless the simulator counted done force
// refreshes of mpApp and refused others.
func (h *harness) wantForceCounts(t *testing.T, done, refused int64) {
	t.Helper()
	if c := h.sim.Counters().Tokens[mpApp]; c.ForceRefresh != done || c.ForceRefreshRefused != refused {
		t.Errorf("force counters %+v, want %d done and %d refused", c, done, refused)
	}
}

func TestStableForceRefreshDailyLimit(t *testing.T) {
	cfg := testConfig()
	cfg.Start = time.Date(2025, 3, 1, 0, 0, 0, 0, shanghai)
	h := newHarness(t, cfg)
	prev := ""
	for i := range 20 {
		tok, _ := h.stable(mpApp, mpSecret, true)
		if tok == prev {
			t.Fatalf("force %d did not refresh", i+1)
		}
		prev = tok
		h.advance(30 * time.Second)
	}
	if tok, _ := h.stable(mpApp, mpSecret, true); tok != prev {
		t.Fatal("force 21 of the day refreshed")
	}
	h.sim.Clock().Set(time.Date(2025, 3, 2, 0, 0, 0, 0, shanghai))
	if tok, _ := h.stable(mpApp, mpSecret, true); tok == prev {
		t.Fatal("the first force of the next day did not refresh")
	}
	h.wantForceCounts(t, 21, 1)
}

func TestStableForceGraceKnob(t *testing.T) {
	cfg := testConfig()
	cfg.StableForceGrace = -1 // immediate
	h := newHarness(t, cfg)
	t1, _ := h.stable(mpApp, mpSecret, false)
	h.stable(mpApp, mpSecret, true)
	expectMP(t, h.get("/cgi-bin/user/info", tq(t1, "openid", "o1")), 40001)
}

func TestStableDailyQuota(t *testing.T) {
	cfg := testConfig()
	cfg.StableDailyQuota = 2
	h := newHarness(t, cfg)
	h.stable(mpApp, mpSecret, false)
	h.stable(mpApp, mpSecret, false)
	body := fmt.Sprintf(`{"grant_type":"client_credential","appid":%q,"secret":%q}`, mpApp, mpSecret)
	expectMP(t, h.post("/cgi-bin/stable_token", nil, body), 45009)
	h.advance(24 * time.Hour)
	expectCode(t, h.post("/cgi-bin/stable_token", nil, body), 0)
}

func TestTokenAndStableTokenAreIsolated(t *testing.T) {
	h := start(t)
	stable, _ := h.stable(mpApp, mpSecret, false)
	plain := h.mpToken()
	for range 3 {
		h.mpToken() // would invalidate a shared token after the overlap
	}
	h.advance(10 * time.Minute)
	expectCode(t, h.get("/cgi-bin/user/info", tq(stable, "openid", "o1")), 0)
	if again, _ := h.stable(mpApp, mpSecret, false); again != stable {
		t.Fatal("/cgi-bin/token calls changed the stable token")
	}
	latest := h.mpToken()
	h.stable(mpApp, mpSecret, true) // force refresh of the stable token
	h.advance(10 * time.Minute)
	expectCode(t, h.get("/cgi-bin/user/info", tq(latest, "openid", "o1")), 0)
	expectMP(t, h.get("/cgi-bin/user/info", tq(plain, "openid", "o1")), 40001)
}

func TestGetTokenPerApp(t *testing.T) {
	h := start(t)
	a1, exp := h.wecomToken(appSecret1)
	if exp != 7200 {
		t.Fatalf("expires_in %d", exp)
	}
	a := h.qyGet("/cgi-bin/gettoken", q("corpid", corpID, "corpsecret", appSecret1))
	m := a.json(t)
	if num(t, m["errcode"]) != 0 || m["errmsg"] != "ok" {
		t.Fatalf("WeCom success shape: %s", a.body)
	}
	a2, _ := h.wecomToken(appSecret2)
	if a1 == a2 {
		t.Fatal("two apps of a corp share a token")
	}
	h.advance(time.Hour)
	same, exp := h.wecomToken(appSecret1)
	if same != a1 || exp != 3600 {
		t.Fatalf("within validity: same=%v expires_in=%d", same == a1, exp)
	}
	if len(a1) > 512 || !tokenShape.MatchString(a1) {
		t.Fatalf("WeCom token %q", a1)
	}
	h.advance(time.Hour)
	expectWeCom(t, h.get("/cgi-bin/user/get", tq(a1, "userid", "u1")), 42001)
	fresh, _ := h.wecomToken(appSecret1)
	if fresh == a1 {
		t.Fatal("expired token returned again")
	}
	c := h.sim.Counters().Tokens[corpID+"/1000002"]
	if c.GetToken != 4 || c.GetTokenIssued != 2 {
		t.Errorf("gettoken counters %+v", c)
	}
}

func TestGetTokenErrors(t *testing.T) {
	h := start(t)
	expectWeCom(t, h.qyGet("/cgi-bin/gettoken", q("corpsecret", appSecret1)), 41002)
	expectWeCom(t, h.qyGet("/cgi-bin/gettoken", q("corpid", corpID)), 41004)
	expectWeCom(t, h.qyGet("/cgi-bin/gettoken", q("corpid", "wwunknown", "corpsecret", appSecret1)), 40013)
	a := h.qyGet("/cgi-bin/gettoken", q("corpid", corpID, "corpsecret", "wrong"))
	expectWeCom(t, a, 40001)
	msg := a.json(t)["errmsg"].(string)
	if !regexp.MustCompile(`^invalid secret, hint: \[\d+_\d+_[0-9a-f]{32}\], from ip: 127\.0\.0\.1, more info at https://open\.work\.weixin\.qq\.com/devtool/query\?e=40001$`).MatchString(msg) {
		t.Errorf("WeCom errmsg %q", msg)
	}
	expectWeCom(t, h.qyGet("/cgi-bin/gettoken", q("corpid", mpApp, "corpsecret", mpSecret)), 40013)
}

func TestWeComEarlyInvalidation(t *testing.T) {
	cfg := testConfig()
	cfg.WeComEarlyInvalidation = 20 * time.Minute
	h := newHarness(t, cfg)
	tok, exp := h.wecomToken(appSecret1)
	if exp != 7200 {
		t.Fatalf("expires_in %d, want the full 7200 announced", exp)
	}
	h.advance(20*time.Minute - time.Second)
	expectWeCom(t, h.get("/cgi-bin/user/get", tq(tok, "userid", "u1")), 0)
	h.advance(time.Second)
	expectWeCom(t, h.get("/cgi-bin/user/get", tq(tok, "userid", "u1")), 42001)
	if again, _ := h.wecomToken(appSecret1); again == tok {
		t.Fatal("gettoken returned the early-invalidated token")
	}
}

func TestTokensOnlyWorkForTheirFamily(t *testing.T) {
	h := start(t)
	mp := h.mpToken()
	stable, _ := h.stable(mpApp, mpSecret, false)
	wecom, _ := h.wecomToken(appSecret1)
	expectMP(t, h.get("/cgi-bin/user/info", tq(wecom, "openid", "o1")), 40001)
	expectMP(t, h.get("/cgi-bin/menu/get", tq(wecom)), 40001)
	expectWeCom(t, h.get("/cgi-bin/user/get", tq(mp, "userid", "u1")), 40014)
	expectWeCom(t, h.get("/cgi-bin/user/get", tq(stable, "userid", "u1")), 40014)
	expectMP(t, h.get("/cgi-bin/user/info", tq("unknown-token", "openid", "o1")), 40001)
	expectWeCom(t, h.get("/cgi-bin/user/get", tq("unknown-token", "userid", "u1")), 40014)
	expectMP(t, h.get("/cgi-bin/user/info", q("openid", "o1")), 41001)
	expectWeCom(t, h.get("/cgi-bin/user/get", q("userid", "u1")), 41001)
	// Shared paths: the token's own kind, else the Host header.
	expectWeCom(t, h.get("/cgi-bin/media/get", tq(wecom, "media_id", "nope")), 40007)
	expectMP(t, h.get("/cgi-bin/media/get", tq(mp, "media_id", "nope")), 40007)
	expectWeCom(t, h.qyGet("/cgi-bin/media/get", tq("unknown", "media_id", "x")), 40014)
	expectMP(t, h.get("/cgi-bin/media/get", tq("unknown", "media_id", "x")), 40001)
	expectWeCom(t, h.qyGet("/cgi-bin/media/get", q("media_id", "x")), 41001)

	c := h.sim.Counters()
	if c.AppTokenRejections != 11 {
		t.Errorf("app token rejections = %d, want 11", c.AppTokenRejections)
	}
	if got := c.Paths["/cgi-bin/user/get"].Last; got.TokenValid || got.Account != "" || !got.TokenChecked {
		t.Errorf("last /cgi-bin/user/get record %+v", got)
	}
	if got := c.Paths["/cgi-bin/user/info"].Rejected; got[40001] != 2 || got[41001] != 1 {
		t.Errorf("rejections by errcode %v", got)
	}
}

func TestInvalidateTokens(t *testing.T) {
	h := start(t)
	mp := h.mpToken()
	stable, _ := h.stable(mpApp, mpSecret, false)
	other := h.mpToken2()
	w1, _ := h.wecomToken(appSecret1)
	w2, _ := h.wecomToken(appSecret2)

	n, err := h.sim.InvalidateTokens(mpApp)
	if err != nil || n != 2 {
		t.Fatalf("InvalidateTokens = %d, %v; want 2 tokens", n, err)
	}
	expectMP(t, h.get("/cgi-bin/user/info", tq(mp, "openid", "o1")), 40001)
	expectMP(t, h.get("/cgi-bin/user/info", tq(stable, "openid", "o1")), 40001)
	expectCode(t, h.get("/cgi-bin/user/info", tq(other, "openid", "o1")), 0)
	if fresh, _ := h.stable(mpApp, mpSecret, false); fresh == stable {
		t.Fatal("stable_token returned a revoked token")
	}

	// Through the control API, a corpid covers all its apps.
	a := h.control("POST", "/tokens/invalidate", `{"appid":"`+corpID+`"}`)
	if a.status != 200 || num(t, a.json(t)["invalidated"]) != 2 {
		t.Fatalf("control invalidate: %d %s", a.status, a.body)
	}
	expectWeCom(t, h.get("/cgi-bin/user/get", tq(w1, "userid", "u1")), 40014)
	expectWeCom(t, h.get("/cgi-bin/user/get", tq(w2, "userid", "u1")), 40014)
	if fresh, _ := h.wecomToken(appSecret1); fresh == w1 {
		t.Fatal("gettoken returned a revoked token")
	}
	if _, err := h.sim.InvalidateTokens("wxnobody"); err == nil {
		t.Fatal("InvalidateTokens accepted an unknown appid")
	}
	if c := h.sim.Counters().Tokens[mpApp].Invalidations; c != 1 {
		t.Errorf("invalidations = %d", c)
	}
}

func (h *harness) mpToken2() string {
	h.t.Helper()
	tok, _ := h.token(mpApp2, mpSecret2)
	return tok
}

func TestTokenNeverLeaksIntoCounters(t *testing.T) {
	h := start(t)
	tok := h.mpToken()
	stable, _ := h.stable(mpApp, mpSecret, false)
	w, _ := h.wecomToken(appSecret1)
	h.get("/cgi-bin/user/info", tq(tok, "openid", "o1"))
	h.get("/cgi-bin/user/get", tq(w, "userid", "u1"))
	h.get("/cgi-bin/menu/get", q("access_token", stable, "secret", mpSecret))
	raw, _ := json.Marshal(h.sim.Counters())
	a := h.control("GET", "/counters", "")
	for _, secret := range []string{tok, stable, w, mpSecret, appSecret1} {
		if contains(string(raw), secret) || contains(string(a.body), secret) {
			t.Fatalf("counters expose %q", secret[:8])
		}
	}
}
