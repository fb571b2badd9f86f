package integration

// Secret-bearing calls through the gateway, with unmodified SDKs whose
// AppSecret setting holds the client key: mini-program login and web OAuth.
// The simulator's counters of sessions and user tokens prove that WeChat
// received the real secret; the sdkEnv's cleanup scans every DEBUG log line
// for the key and the secret.

import (
	"strings"
	"testing"

	"github.com/silenceper/wechat/v2/cache"
	miniConfig "github.com/silenceper/wechat/v2/miniprogram/config"
	offConfig "github.com/silenceper/wechat/v2/officialaccount/config"
	workConfig "github.com/silenceper/wechat/v2/work/config"
)

func TestSDKGoMiniProgramLogin(t *testing.T) {
	e := newSDKEnv(t, "stable_token")
	mini := e.goSDK().GetMiniProgram(&miniConfig.Config{AppID: mpAppID, AppSecret: sdkClientKey, Cache: cache.NewMemory()})
	res, err := mini.GetAuth().Code2Session("alice-1")
	if err != nil || res.OpenID == "" || res.SessionKey == "" || res.UnionID == "" {
		t.Fatalf("Code2Session through the gateway: %+v, %v", res, err)
	}
	if n := e.sim.Counters().Tokens[mpAppID].Sessions; n != 1 {
		t.Errorf("simulator sessions %d, want 1: WeChat did not get the real secret", n)
	}
	if n := e.tap.count("/sns/jscode2session"); n != 1 {
		t.Errorf("%d upstream login calls, want 1", n)
	}
	// A wrong key is refused by the gateway, and nothing goes upstream.
	bad := e.goSDK().GetMiniProgram(&miniConfig.Config{AppID: mpAppID, AppSecret: "not-the-key-0123456789abcdef", Cache: cache.NewMemory()})
	if _, err := bad.GetAuth().Code2Session("alice-2"); err == nil || !strings.Contains(err.Error(), "40001") {
		t.Errorf("Code2Session with a wrong key: %v; want errcode 40001", err)
	}
	if n := e.tap.count("/sns/jscode2session"); n != 1 {
		t.Errorf("a refused login reached WeChat (%d calls)", n)
	}
}

func TestSDKGoOAuth(t *testing.T) {
	e := newSDKEnv(t, "stable_token")
	oa := e.goSDK().GetOfficialAccount(&offConfig.Config{AppID: mpAppID, AppSecret: sdkClientKey, Cache: cache.NewMemory()})
	tok, err := oa.GetOauth().GetUserAccessToken("webcode1")
	if err != nil || tok.AccessToken == "" || tok.OpenID == "" {
		t.Fatalf("GetUserAccessToken through the gateway: %+v, %v", tok, err)
	}
	user, err := oa.GetOauth().GetUserInfo(tok.AccessToken, tok.OpenID, "")
	if err != nil || user.OpenID != tok.OpenID {
		t.Fatalf("GetUserInfo with the user token: %+v, %v", user, err)
	}
	if n := e.sim.Counters().Tokens[mpAppID].UserTokens; n != 1 {
		t.Errorf("simulator user tokens %d, want 1: WeChat did not get the real secret", n)
	}
	if n := e.tap.count("/cgi-bin/stable_token") + e.tap.count("/cgi-bin/token"); n != 0 {
		t.Errorf("OAuth cost %d app-token fetches; want none", n)
	}
}

func TestSDKNodeOAuth(t *testing.T) {
	requireNode(t, "co-wechat-oauth")
	e := newSDKEnv(t, "stable_token")
	var r struct {
		OpenID     string `json:"openid"`
		UserOpenID string `json:"user_openid"`
	}
	runNodeScript(t, &r, "oauth.js", e.mp.URL(), mpAppID, "nodecode1")
	if r.OpenID == "" || r.UserOpenID != r.OpenID {
		t.Fatalf("oauth.js: %+v", r)
	}
	if n := e.sim.Counters().Tokens[mpAppID].UserTokens; n != 1 {
		t.Errorf("simulator user tokens %d, want 1", n)
	}
}

// TestSDKGoWeComLogin: WeCom's login calls take the app's access token, so
// the gateway injects it as on any API call; the SDK holds only its key.
func TestSDKGoWeComLogin(t *testing.T) {
	e := newSDKEnv(t, "stable_token")
	wk := e.goSDK().GetWork(&workConfig.Config{CorpID: corpID, CorpSecret: sdkClientKey, AgentID: sdkAgentID, Cache: cache.NewMemory()})
	info, err := wk.GetOauth().GetUserInfo("zhangsan-1") // /cgi-bin/auth/getuserinfo
	if err != nil || info.UserID != "zhangsan" {
		t.Fatalf("GetUserInfo through the gateway: %+v, %v", info, err)
	}
	// The WeCom mini-program login has no SDK call: as an app would send it.
	gwTok, err := wk.GetContext().GetAccessToken()
	if err != nil {
		t.Fatal(err)
	}
	status, body := get(t, e.corp.URL()+"/cgi-bin/miniprogram/jscode2session?js_code=lisi-1&grant_type=authorization_code&access_token="+gwTok)
	if status != 200 || errcodeOf(body) != 0 || !strings.Contains(string(body), `"userid":"lisi"`) {
		t.Fatalf("WeCom jscode2session through the gateway: %d %s", status, body)
	}
	if n := e.tap.count("/cgi-bin/gettoken"); n != 1 {
		t.Errorf("%d gettoken calls upstream, want 1", n)
	}
}
