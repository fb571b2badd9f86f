package integration

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wxgate/caddy-wechat/module/simulator"
)

// kindsCaddyfile is the deployment the hardening tests attack: clients
// mode, an official-account site and a WeCom site, each saying which kind
// of account its upstream serves.
var kindsCaddyfile = appClientGlobal(mpDefaultAccount+corpAccount, "WX_APP_KEY") + `
:{PORT} {
	wechat {
		kind official
	}
	reverse_proxy {UPSTREAM}
}

:{PORT2} {
	wechat {
		kind wecom
	}
	reverse_proxy {UPSTREAM}
}
`

const userQuery = "?openid=o6_bmjrPTlm6_2sgVt7hMZOPfL2M&access_token="

// TestReloadsUnderLoad: 20 reloads while 16 clients keep calling make no
// panic, no failed call and no token fetch.
func TestReloadsUnderLoad(t *testing.T) {
	e := newClientsEnvWith(t, kindsCaddyfile)
	tok := e.gatewayToken(e.gw.URL, mpAppID, keyApp)
	if a := e.answer("GET", e.gw.URL(userInfoPath+userQuery+tok), ""); a.Errcode != 0 {
		t.Fatalf("first call: %+v", a)
	}
	fetches := e.tokenCalls()
	// A panic drops the connection too, but Caddy logs it: see below.
	counts, stop := keepCalling(t, 16, e.gw.URL(userInfoPath+userQuery+tok), func(status int, body []byte) bool {
		return status == http.StatusOK && json.Valid(body) && errcodeOf(body) == 0
	})
	defer stop()
	for range 20 {
		e.gw.reload()
	}
	stop()
	counts.check(t, "20 reloads", 100)
	if got := e.tokenCalls(); got != fetches {
		t.Errorf("%d token fetches during the reloads; want 0", got-fetches)
	}
	if logs := e.gw.logs(); strings.Contains(logs, "panic") || strings.Contains(logs, "http.log.error") {
		t.Errorf("the gateway panicked:\n%s", logs)
	}
}

// TestHostileClientCannotDrainTheBudget: 10,000 calls with gateway tokens
// of both kinds, on both sites, to random and wrong-family paths, cost
// each account at most 2 token-endpoint calls.
func TestHostileClientCannotDrainTheBudget(t *testing.T) {
	e := newClientsEnvWith(t, kindsCaddyfile)
	mpTok := e.gatewayToken(e.gw.URL, mpAppID, keyApp)
	corpTok := e.wecomToken(keyApp)
	// A wrong-kind gettoken or token call is refused by the site too.
	if a := e.answer("GET", e.gw.URL("/cgi-bin/gettoken?corpid="+corpID+"&corpsecret="+keyApp), ""); a.Errcode != 40013 {
		t.Errorf("gettoken on the official site: %+v", a)
	}
	paths := []string{"/cgi-bin/user/info", "/cgi-bin/user/get", "/cgi-bin/menu/get", "/cgi-bin/media/get",
		"/cgi-bin/message/send", "/cgi-bin/agent/get", "/wxa/getwxacodeunlimit"}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
	var wg sync.WaitGroup
	var transportErrors atomic.Int64
	for g := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(g), 7))
			for range 10000 / 16 {
				base, tok := e.gw.URL, mpTok
				if rng.IntN(2) == 0 {
					base = e.gw.URL2
				}
				if rng.IntN(2) == 0 {
					tok = corpTok
				}
				path := paths[rng.IntN(len(paths))]
				if rng.IntN(3) == 0 {
					path = fmt.Sprintf("/cgi-bin/x%d/y%d", rng.IntN(1000), rng.IntN(1000))
				}
				resp, err := client.Get(base(path + "?userid=zhangsan&media_id=x&access_token=" + tok))
				if err != nil {
					transportErrors.Add(1)
					continue
				}
				resp.Body.Close()
			}
		}()
	}
	wg.Wait()
	if n := transportErrors.Load(); n != 0 {
		t.Errorf("%d calls failed at the transport", n)
	}
	if n := e.tap.count("/cgi-bin/stable_token"); n > 2 {
		t.Errorf("mp: %d token-endpoint calls; want at most 2", n)
	}
	if n := e.tap.count("/cgi-bin/gettoken"); n > 2 {
		t.Errorf("corp: %d token-endpoint calls; want at most 2", n)
	}
	// The account still serves everyone.
	if a := e.answer("GET", e.gw.URL(userInfoPath+userQuery+mpTok), ""); a.Errcode != 0 {
		t.Errorf("a good call after the attack: %+v", a)
	}
}

// TestRidGetNeverShowsTheToken: WeChat's rid/get echoes a failed call's
// query string, with the token the gateway injected; the gateway masks it.
// The rid of the gateway's own token call never reaches a client.
func TestRidGetNeverShowsTheToken(t *testing.T) {
	e := newClientsEnvWith(t, kindsCaddyfile)
	tok := e.gatewayToken(e.gw.URL, mpAppID, keyApp)
	failed := e.answer("POST", e.gw.URL("/cgi-bin/openapi/quota/get?access_token="+tok), `{"cgi_path":"/cgi-bin/nope"}`)
	_, rid, _ := strings.Cut(failed.Errmsg, " rid: ")
	if failed.Errcode != 76021 || rid == "" {
		t.Fatalf("quota/get: %+v", failed)
	}
	resp, err := http.Post(e.gw.URL("/cgi-bin/openapi/rid/get?access_token="+tok), "application/json", strings.NewReader(`{"rid":"`+rid+`"}`))
	if err != nil {
		t.Fatal(err)
	}
	var body bytes.Buffer
	_, _ = body.ReadFrom(resp.Body)
	resp.Body.Close()
	if !strings.Contains(body.String(), `"request_url":"access_token=***`) {
		t.Errorf("rid/get: the token is not masked: %s", body.String())
	}
	assertNoLeaks(t, "the rid/get answer", body.String(), []string{mpSecret}, e.tap.allTokens())

	// A token-endpoint failure: the client learns the errcode, not the rid.
	if _, err := e.sim.InjectFault(simulator.Fault{Path: "/cgi-bin/gettoken", Errcode: 40091}); err != nil {
		t.Fatal(err)
	}
	corpTok := e.wecomToken(keyApp)
	a := e.answer("GET", e.gw.URL2("/cgi-bin/user/get?userid=zhangsan&access_token="+corpTok), "")
	if a.Errcode != -1 || !strings.Contains(a.Errmsg, "40091") || strings.Contains(a.Errmsg, "hint") || strings.Contains(a.Errmsg, "rid") {
		t.Errorf("a call when gettoken fails: %+v", a)
	}
	if !strings.Contains(e.gw.logs(), `"rid":"`) {
		t.Error("the token call's request id is not in the log")
	}
}

// TestUpstreamFailureIsAnsweredByTheGateway: when WeChat cannot be
// reached, the client gets WeChat-shaped JSON with Caddy's status, and the
// log (checked when the test ends) holds no gateway token.
func TestUpstreamFailureIsAnsweredByTheGateway(t *testing.T) {
	e := newClientsEnvWith(t, kindsCaddyfile)
	tok := e.gatewayToken(e.gw.URL, mpAppID, keyApp)
	if _, err := e.sim.InjectFault(simulator.Fault{Path: userInfoPath, Drop: true, Count: 1}); err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get(e.gw.URL(userInfoPath + userQuery + tok))
	if err != nil {
		t.Fatal(err)
	}
	var a wxAnswer
	decodeErr := json.NewDecoder(resp.Body).Decode(&a)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadGateway || decodeErr != nil || a.Errcode != -1 {
		t.Errorf("upstream dropped the connection: HTTP %d, %+v (%v)", resp.StatusCode, a, decodeErr)
	}
	if !strings.Contains(e.gw.logs(), `"upstream failed"`) {
		t.Error("the failure is not logged")
	}
}

// TestFreshTokenInvalidatedElsewhere: WeChat invalidates the gateway's
// token 2 s after the fetch (another system forced a refresh): the next
// call fails upstream once, is replayed, and the client sees no error.
func TestFreshTokenInvalidatedElsewhere(t *testing.T) {
	e := newClientsEnvWith(t, kindsCaddyfile)
	for _, c := range []struct {
		appid, path string
		base        func(string) string
		endpoint    string
	}{
		{mpAppID, userInfoPath + "?openid=o6_bmjrPTlm6_2sgVt7hMZOPfL2M", e.gw.URL, "/cgi-bin/stable_token"},
		{corpID, "/cgi-bin/user/get?userid=zhangsan", e.gw.URL2, "/cgi-bin/gettoken"},
	} {
		var tok string
		if c.appid == corpID {
			tok = e.wecomToken(keyApp)
		} else {
			tok = e.gatewayToken(c.base, c.appid, keyApp)
		}
		if a := e.answer("GET", c.base(c.path+"&access_token="+tok), ""); a.Errcode != 0 {
			t.Fatalf("%s: first call: %+v", c.appid, a)
		}
		before := e.tap.count(c.endpoint)
		e.advance(2 * time.Second)
		if _, err := e.sim.InvalidateTokens(c.appid); err != nil {
			t.Fatal(err)
		}
		if a := e.answer("GET", c.base(c.path+"&access_token="+tok), ""); a.Errcode != 0 {
			t.Errorf("%s: the call after the invalidation failed: %+v", c.appid, a)
		}
		if n := e.tap.count(c.endpoint) - before; n != 1 {
			t.Errorf("%s: %d token fetches after the invalidation; want 1", c.appid, n)
		}
	}
}

// TestDeclaredBodiesCostNothingUntilSent: 40 connections that each declare
// a 24 MiB upload and send nothing add less than 64 MiB to the gateway.
func TestDeclaredBodiesCostNothingUntilSent(t *testing.T) {
	e := newClientsEnvWith(t, kindsCaddyfile)
	tok := e.gatewayToken(e.gw.URL, mpAppID, keyApp)
	if a := e.answer("GET", e.gw.URL(userInfoPath+userQuery+tok), ""); a.Errcode != 0 {
		t.Fatalf("first call: %+v", a)
	}
	before := e.gw.rss()
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for range 40 {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", e.gw.Port))
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		// Expect: 100-continue: the server says "100 Continue" once the
		// handler starts reading the body, which tells this test that the
		// handler is waiting for it.
		fmt.Fprintf(c, "POST /cgi-bin/media/upload?type=image&access_token=%s HTTP/1.1\r\nHost: gw\r\n"+
			"Content-Type: multipart/form-data; boundary=x\r\nContent-Length: %d\r\nExpect: 100-continue\r\n\r\n", tok, 24<<20)
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		line, err := bufio.NewReader(c).ReadString('\n')
		if err != nil || !strings.Contains(line, "100") {
			t.Fatalf("no 100 Continue: %q %v", line, err)
		}
	}
	if grew := e.gw.rss() - before; grew >= 64<<20 {
		t.Errorf("40 idle 24 MiB uploads grew the gateway by %d MiB; want under 64", grew>>20)
	}
}

// wecomToken fetches a gateway token for the WeCom app from gettoken.
func (e *clientsEnv) wecomToken(key string) string {
	e.t.Helper()
	a := e.answer("GET", e.gw.URL2("/cgi-bin/gettoken?corpid="+corpID+"&corpsecret="+key), "")
	if a.Errcode != 0 || !strings.HasPrefix(a.AccessToken, "gw2.") {
		e.t.Fatalf("gettoken: %+v", a)
	}
	e.gwTokens = append(e.gwTokens, a.AccessToken)
	return a.AccessToken
}
