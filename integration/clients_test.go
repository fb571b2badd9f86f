package integration

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/wxgate/caddy-wechat/module/simulator"
)

const (
	mp2AppID  = "wx9f8e7d6c5b4a3f2e"
	mp2Secret = "mp2secret0123456789abcdef0123456"
	keyApp    = "app-key-0123456789abcdefghij"
	keyAppOld = "app-key-old-0123456789abcdefghij"
	keyReader = "reader-key-0123456789abcdefghij"
	keyOther  = "other-key-0123456789abcdefghij"
)

// clientsCaddyfile runs the handler in clients mode: {PORT} serves the
// account mp only, {PORT2} serves whichever account a caller's token names
// (the simulator serves both kinds on one upstream).
const clientsCaddyfile = `{
	admin {ADMIN}
	debug
	wechat {
` + mpDefaultAccount + `		account mp2 official {
			appid ` + mp2AppID + `
			secret {env.WX_MP2_SECRET}
			token_endpoint token
			api_base http://{UPSTREAM}
		}
` + corpAccount + `		client app {
			key {env.WX_APP_KEY}
			key {env.WX_APP_KEY_OLD}
			accounts mp corp
		}
		client reader {
			key {env.WX_READER_KEY}
			accounts mp
			paths /cgi-bin/user/*
			raw_token
		}
		client other {
			key {env.WX_OTHER_KEY}
			accounts mp2
		}
		test_clock
	}
}

:{PORT} {
	wechat mp
	reverse_proxy {UPSTREAM}
}

:{PORT2} {
	wechat {
		kind any
	}
	reverse_proxy {UPSTREAM}
}
`

// clientsEnv is a simulator with a gateway in clients mode in front of it.
type clientsEnv struct {
	*env
	gwTokens []string // gateway tokens handed out, for the leak check
}

func newClientsEnv(t *testing.T) *clientsEnv { return newClientsEnvWith(t, clientsCaddyfile) }

// newClientsEnvWith starts a gateway with caddyfile, which may use the
// accounts and clients of clientsCaddyfile, in front of a simulator.
func newClientsEnvWith(t *testing.T, caddyfile string) *clientsEnv {
	t.Helper()
	sim, err := simulator.New(simulator.Config{Accounts: []simulator.Account{
		{Kind: simulator.KindOfficial, AppID: mpAppID, Secret: mpSecret},
		{Kind: simulator.KindOfficial, AppID: mp2AppID, Secret: mp2Secret},
		{Kind: simulator.KindWeCom, AppID: corpID, Secret: corpSecret, AgentID: "1000002"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	e := &clientsEnv{env: &env{t: t, sim: sim, tap: newWiretap(sim)}}
	e.srv = httptest.NewServer(e.tap)
	t.Cleanup(e.srv.Close)
	e.gw = startGateway(t, caddyfile, strings.TrimPrefix(e.srv.URL, "http://"), clientsEnvVars()...)
	t.Cleanup(func() {
		e.gw.stop()
		secrets := []string{mpSecret, mp2Secret, corpSecret, keyApp, keyAppOld, keyReader, keyOther}
		assertNoLeaks(t, "the gateway's log", e.gw.logs(), secrets, append(e.tap.allTokens(), e.gwTokens...))
	})
	return e
}

func clientsEnvVars() []string {
	return []string{"WX_MP_SECRET=" + mpSecret, "WX_MP2_SECRET=" + mp2Secret, "WX_CORP_SECRET=" + corpSecret,
		"WX_APP_KEY=" + keyApp, "WX_APP_KEY_OLD=" + keyAppOld, "WX_READER_KEY=" + keyReader, "WX_OTHER_KEY=" + keyOther}
}

type wxAnswer struct {
	Errcode     int    `json:"errcode"`
	Errmsg      string `json:"errmsg"`
	AccessToken string `json:"access_token"`
	ExpiresIn   int    `json:"expires_in"`
}

func (e *clientsEnv) answer(method, url, body string) wxAnswer {
	e.t.Helper()
	_, raw := send(e.t, method, url, "", []byte(body))
	var a wxAnswer
	if err := json.Unmarshal(raw, &a); err != nil {
		e.t.Fatalf("%s %s: not JSON: %s", method, url, raw)
	}
	return a
}

// gatewayToken fetches a gateway token the way an SDK does, with key in
// place of the secret.
func (e *clientsEnv) gatewayToken(base func(string) string, appid, key string) string {
	e.t.Helper()
	a := e.answer("GET", base("/cgi-bin/token?grant_type=client_credential&appid="+appid+"&secret="+url.QueryEscape(key)), "")
	if a.Errcode != 0 || !strings.HasPrefix(a.AccessToken, "gw2.") || a.ExpiresIn != 7200 {
		e.t.Fatalf("token call: %+v", a)
	}
	e.gwTokens = append(e.gwTokens, a.AccessToken)
	return a.AccessToken
}

// upstreamCalls counts every call that reached the simulator.
func (e *clientsEnv) upstreamCalls() int {
	e.tap.mu.Lock()
	defer e.tap.mu.Unlock()
	n := 0
	for _, c := range e.tap.calls {
		n += c
	}
	return n
}

func TestClientsAuthenticateWithGatewayTokens(t *testing.T) {
	e := newClientsEnv(t)
	tok := e.gatewayToken(e.gw.URL, mpAppID, keyApp)
	if e.upstreamCalls() != 0 {
		t.Fatal("the token call reached WeChat")
	}
	a := e.answer("GET", e.gw.URL(userInfoPath+"?openid=o6_bmjrPTlm6_2sgVt7hMZOPfL2M&access_token="+tok), "")
	if a.Errcode != 0 {
		t.Fatalf("user/info with a gateway token: %+v", a)
	}
	if sent := e.tap.lastSent(); sent == tok || strings.HasPrefix(sent, "gw2.") {
		t.Fatal("the gateway token reached WeChat")
	}
	// stable_token and gettoken work the same way.
	st := e.answer("POST", e.gw.URL("/cgi-bin/stable_token"), `{"grant_type":"client_credential","appid":"`+mpAppID+`","secret":"`+keyApp+`","force_refresh":false}`)
	if st.Errcode != 0 || !strings.HasPrefix(st.AccessToken, "gw2.") {
		t.Fatalf("stable_token: %+v", st)
	}
	wc := e.answer("GET", e.gw.URL2("/cgi-bin/gettoken?corpid="+corpID+"&corpsecret="+keyAppOld), "")
	if wc.Errcode != 0 || wc.Errmsg != "ok" || !strings.HasPrefix(wc.AccessToken, "gw2.") {
		t.Fatalf("gettoken: %+v", wc)
	}
	e.gwTokens = append(e.gwTokens, st.AccessToken, wc.AccessToken)
	// The multi-account site routes by the token's account.
	if a := e.answer("GET", e.gw.URL2("/cgi-bin/user/get?userid=zhangsan&access_token="+wc.AccessToken), ""); a.Errcode != 0 {
		t.Fatalf("WeCom user/get on the multi-account site: %+v", a)
	}
	other := e.gatewayToken(e.gw.URL2, mp2AppID, keyOther)
	if a := e.answer("GET", e.gw.URL2(userInfoPath+"?openid=o6_bmjrPTlm6_2sgVt7hMZOPfL2M&access_token="+other), ""); a.Errcode != 0 {
		t.Fatalf("mp2 on the multi-account site: %+v", a)
	}
	if e.tap.count("/cgi-bin/stable_token") != 1 || e.tap.count("/cgi-bin/gettoken") != 1 || e.tap.count("/cgi-bin/token") != 1 {
		t.Fatalf("upstream token calls: %v", e.tap.calls)
	}
}

func TestClientRefusals(t *testing.T) {
	e := newClientsEnv(t)
	app := e.gatewayToken(e.gw.URL, mpAppID, keyApp)
	reader := e.gatewayToken(e.gw.URL, mpAppID, keyReader)
	other := e.gatewayToken(e.gw.URL2, mp2AppID, keyOther)
	user := userInfoPath + "?openid=o6_bmjrPTlm6_2sgVt7hMZOPfL2M"
	for _, c := range []struct {
		name, method, url, body string
		code                    int
		says                    string
	}{
		{"no key", "GET", e.gw.URL("/cgi-bin/token?grant_type=client_credential&appid=" + mpAppID), "", 40001, "key is missing"},
		{"wrong key", "GET", e.gw.URL("/cgi-bin/token?grant_type=client_credential&appid=" + mpAppID + "&secret=" + mpSecret), "", 40001, "no client has this key"},
		{"wrong key (stable_token)", "POST", e.gw.URL("/cgi-bin/stable_token"), `{"grant_type":"client_credential","appid":"` + mpAppID + `","secret":"nope-0123456789abcdef"}`, 40001, "no client has this key"},
		{"stable_token by GET", "GET", e.gw.URL("/cgi-bin/stable_token"), "", 43002, "POST"},
		{"another client's account", "GET", e.gw.URL2("/cgi-bin/token?grant_type=client_credential&appid=" + mp2AppID + "&secret=" + keyApp), "", 40013, "may not use official account " + mp2AppID},
		{"no token", "GET", e.gw.URL(user), "", 41001, "access_token missing"},
		{"not a gateway token", "GET", e.gw.URL(user + "&access_token=86_realLookingToken"), "", 40001, "not a gateway token"},
		{"forged token", "GET", e.gw.URL(user + "&access_token=" + app[:len(app)-4] + "AAAA"), "", 40001, "signature"},
		{"token for another account on a fixed site", "GET", e.gw.URL(user + "&access_token=" + other), "", 40013, "not for mp"},
		{"forbidden path", "GET", e.gw.URL("/cgi-bin/menu/get?access_token=" + reader), "", 48001, "may not call /cgi-bin/menu/get"},
		{"two access_tokens", "GET", e.gw.URL(user + "&access_token=" + app + "&access_token=86_smuggled"), "", 40001, "several access_token"},
		{"encoded second access_token", "GET", e.gw.URL(user + "&access_token=" + app + "&access%5Ftoken=86_smuggled"), "", 40001, "several access_token"},
		{"smuggled secret", "GET", e.gw.URL(user + "&access_token=" + app + "&secret=" + mpSecret), "", 40001, "parameter secret"},
		{"smuggled appid", "GET", e.gw.URL(user + "&access_token=" + app + "&appid=" + mp2AppID), "", 40013, "not the account"},
		{"raw token not granted", "GET", e.gw.URL("/wechat-gateway/raw_token?access_token=" + app), "", 48001, "raw access_token"},
		{"dot segments past the allowed paths", "GET", e.gw.URL("/cgi-bin/user/../menu/create?access_token=" + reader), "", 40066, "dot segment"},
		{"encoded dot segments", "GET", e.gw.URL("/cgi-bin/user/%2e%2e/menu/create?access_token=" + reader), "", 40066, "encoded"},
		{"encoded slash", "GET", e.gw.URL("/cgi-bin/user/..%2fmenu%2fcreate?access_token=" + reader), "", 40066, "encoded"},
		{"empty segment before a token endpoint", "GET", e.gw.URL("//cgi-bin/token?grant_type=client_credential&appid=" + mpAppID + "&secret=" + mpSecret), "", 40066, "empty path segment"},
		{"sns traversal to the token endpoint", "GET", e.gw.URL("/sns/../cgi-bin/token?grant_type=client_credential&appid=" + mpAppID + "&secret=" + mpSecret), "", 40066, "dot segment"},
		{"third-party path", "GET", e.gw.URL("/cgi-bin/component/api_component_token"), "", 48001, "not an API this gateway serves"},
		{"unknown path", "GET", e.gw.URL("/index.html"), "", 48001, "not an API this gateway serves"},
	} {
		before := e.upstreamCalls()
		a := e.answer(c.method, c.url, c.body)
		if a.Errcode != c.code || !strings.Contains(a.Errmsg, c.says) {
			t.Errorf("%s: got %d %q; want %d saying %q", c.name, a.Errcode, a.Errmsg, c.code, c.says)
		}
		if e.upstreamCalls() != before {
			t.Errorf("%s: a call reached WeChat", c.name)
		}
		for _, s := range []string{mpSecret, keyApp, keyReader, app} {
			if strings.Contains(a.Errmsg, s) {
				t.Errorf("%s: the answer holds a credential", c.name)
			}
		}
	}
}

func TestExpiredGatewayToken(t *testing.T) {
	e := newClientsEnv(t)
	tok := e.gatewayToken(e.gw.URL, mpAppID, keyApp)
	e.advance(2 * time.Hour)
	a := e.answer("GET", e.gw.URL(userInfoPath+"?openid=o1&access_token="+tok), "")
	if a.Errcode != 42001 || !strings.Contains(a.Errmsg, "expired") {
		t.Fatalf("expired gateway token: %+v", a)
	}
	fresh := e.gatewayToken(e.gw.URL, mpAppID, keyApp)
	if a := e.answer("GET", e.gw.URL(userInfoPath+"?openid=o6_bmjrPTlm6_2sgVt7hMZOPfL2M&access_token="+fresh), ""); a.Errcode != 0 {
		t.Fatalf("after fetching a new one: %+v", a)
	}
}

func TestRotatingAKeyRevokesItsTokens(t *testing.T) {
	e := newClientsEnv(t)
	oldTok := e.gatewayToken(e.gw.URL, mpAppID, keyAppOld)
	newTok := e.gatewayToken(e.gw.URL, mpAppID, keyApp)
	cfg, _ := os.ReadFile(e.gw.cfgPath)
	cfg = []byte(strings.Replace(string(cfg), "\t\t\tkey {env.WX_APP_KEY_OLD}\n", "", 1))
	if err := os.WriteFile(e.gw.cfgPath, cfg, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(caddyBin, "reload", "--config", e.gw.cfgPath, "--adapter", "caddyfile", "--address", strings.TrimPrefix(e.gw.Admin, "http://"))
	cmd.Env = append(os.Environ(), clientsEnvVars()...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("caddy reload: %v\n%s", err, out)
	}
	user := userInfoPath + "?openid=o6_bmjrPTlm6_2sgVt7hMZOPfL2M&access_token="
	if a := e.answer("GET", e.gw.URL(user+oldTok), ""); a.Errcode != 40001 || !strings.Contains(a.Errmsg, "revoked") {
		t.Fatalf("token of the removed key: %+v", a)
	}
	if a := e.answer("GET", e.gw.URL("/cgi-bin/token?grant_type=client_credential&appid="+mpAppID+"&secret="+keyAppOld), ""); a.Errcode != 40001 {
		t.Fatalf("the removed key: %+v", a)
	}
	if a := e.answer("GET", e.gw.URL(user+newTok), ""); a.Errcode != 0 {
		t.Fatalf("token of the kept key: %+v", a)
	}
}

func TestRawTokenEndpoint(t *testing.T) {
	e := newClientsEnv(t)
	reader := e.gatewayToken(e.gw.URL, mpAppID, keyReader)
	a := e.answer("GET", e.gw.URL("/wechat-gateway/raw_token?access_token="+reader), "")
	if a.Errcode != 0 || a.ExpiresIn <= 0 || a.ExpiresIn > 7200 {
		t.Fatalf("raw token: %+v", a)
	}
	real := false
	for _, tok := range e.tap.allTokens() {
		real = real || tok == a.AccessToken
	}
	if !real {
		t.Fatal("the raw token is not the account's real token")
	}
	logs := e.gw.logs()
	if !strings.Contains(logs, `"raw access_token handed out"`) || !strings.Contains(logs, `"client":"reader"`) {
		t.Fatal("the raw-token read was not audited")
	}
	fmt.Fprint(io.Discard, logs)
}
