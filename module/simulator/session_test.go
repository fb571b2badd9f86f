package simulator

import (
	"fmt"
	"testing"

	"github.com/wxgate/caddy-wechat/module/internal/wxapi"
)

func TestJSCode2Session(t *testing.T) {
	h := start(t)
	login := func(secret, code string) answer {
		return h.get("/sns/jscode2session", q("appid", mpApp, "secret", secret, "js_code", code, "grant_type", "authorization_code"))
	}
	a := login(mpSecret, "alice-1")
	expectCode(t, a, 0)
	m := a.json(t)
	if m["openid"] == "" || m["session_key"] == "" || m["unionid"] == nil {
		t.Fatalf("login: %s", a.body)
	}
	again := login(mpSecret, "alice-2").json(t)
	if again["openid"] != m["openid"] || again["session_key"] == m["session_key"] {
		t.Errorf("a second login of the same user: %v, first %v", again, m)
	}
	if nu := login(mpSecret, "nounion-1").json(t); nu["unionid"] != nil {
		t.Errorf("a user with no unionid bound: %v", nu)
	}
	expectMP(t, login(mpSecret, "alice-1"), wxapi.CodeCodeUsed)
	expectMP(t, login(mpSecret, "bad code!"), wxapi.CodeInvalidCode)
	expectMP(t, login(mpSecret, ""), wxapi.CodeCodeMissing)
	expectMP(t, login("wrong", "bob-1"), wxapi.CodeInvalidCredential)
	expectMP(t, login("", "bob-1"), wxapi.CodeSecretMissing)
	for i := range 98 {
		expectCode(t, login(mpSecret, fmt.Sprintf("alice-x%d", i)), 0)
	}
	expectMP(t, login(mpSecret, "alice-last"), wxapi.CodeMinuteQuota)
	h.advance(60e9)
	expectCode(t, login(mpSecret, "alice-next"), 0)
	if got := h.sim.Counters().Tokens[mpApp].Sessions; got != 102 {
		t.Errorf("Sessions counter %d, want 102", got)
	}
}
