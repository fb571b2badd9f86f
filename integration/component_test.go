package integration

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wxgate/caddy-wechat/module/simulator"
)

const (
	compAppID  = "wx3rdcomponent0001"
	compSecret = "componentsecret0123456789abcdef0"
	compToken  = "componenttoken01"
	compAESKey = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
	authAppID  = "wxauthorizer00001"
)

// componentCaddyfile is a third-party platform: its callback route, and a
// trusted site for its component API calls.
const componentCaddyfile = `{
	admin {ADMIN}
	debug
	wechat {
		account platform component {
			appid ` + compAppID + `
			secret {env.WX_COMP_SECRET}
			token {env.WX_COMP_TOKEN}
			encoding_aes_key {env.WX_COMP_AES}
			api_base http://{UPSTREAM}
		}
		test_clock
	}
}

:{PORT} {
	wechat platform {
		trusted
	}
	reverse_proxy {UPSTREAM}
}

:{PORT2} {
	route /wechat/callback {
		wechat platform {
			callback
		}
	}
}
`

// platform is a third-party platform's gateway (componentCaddyfile) in
// front of the simulator, which pushes to the gateway's callback through a
// relay that keeps every push, to replay them.
type platform struct {
	sim *simulator.Simulator
	gw  *gateway
	mu  sync.Mutex
	// pushes are the pushes relayed: URI and body.
	pushes [][2]string
	// advanced is how far advance moved the clocks.
	advanced time.Duration
}

func startPlatform(t *testing.T, caddyfile string) *platform {
	t.Helper()
	sim, err := simulator.New(simulator.Config{})
	if err != nil {
		t.Fatal(err)
	}
	tap := newWiretap(sim)
	srv := httptest.NewServer(tap)
	t.Cleanup(srv.Close)
	p := &platform{sim: sim}
	relay := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		p.mu.Lock()
		p.pushes = append(p.pushes, [2]string{r.URL.RequestURI(), string(body)})
		p.mu.Unlock()
		status, answer := p.deliver(t, r.URL.RequestURI(), string(body))
		w.WriteHeader(status)
		_, _ = io.WriteString(w, answer)
	}))
	t.Cleanup(relay.Close)
	p.gw = startGateway(t, caddyfile, strings.TrimPrefix(srv.URL, "http://"),
		"WX_COMP_SECRET="+compSecret, "WX_COMP_TOKEN="+compToken, "WX_COMP_AES="+compAESKey, "WX_SAAS_KEY="+saasKey, "WX_OPS_KEY="+opsKey)
	t.Cleanup(func() {
		p.gw.stop()
		assertNoLeaks(t, "the gateway's log", p.gw.logs(), []string{compSecret, compAESKey, saasKey, opsKey}, tap.allTokens())
	})
	if err := sim.Reconfigure(simulator.Config{
		Components:              []simulator.Component{{AppID: compAppID, Secret: compSecret, Token: compToken, EncodingAESKey: compAESKey, CallbackURL: relay.URL + "/wechat/callback"}},
		Authorizers:             []simulator.Authorizer{{ComponentAppID: compAppID, AppID: authAppID}},
		ComponentTicketInterval: -1,
	}); err != nil {
		t.Fatal(err)
	}
	return p
}

// deliver sends a push to the gateway's callback.
func (p *platform) deliver(t *testing.T, uri, body string) (int, string) {
	resp, err := http.Post(p.gw.URL2(uri), "text/xml", strings.NewReader(body))
	if err != nil {
		t.Errorf("delivering a push: %v", err)
		return 0, ""
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(answer)
}

// pushTicket has the simulator push a verify ticket.
func (p *platform) pushTicket(t *testing.T) {
	t.Helper()
	pushes, err := p.sim.PushComponentTicket(compAppID)
	if err != nil || len(pushes) != 1 || !pushes[0].Delivered {
		t.Fatalf("pushing the ticket: %+v, %v", pushes, err)
	}
}

// advance moves the gateway's and the simulator's clocks.
func (p *platform) advance(d time.Duration) {
	p.gw.advance(d)
	p.sim.Clock().Advance(d)
	p.advanced += d
}

// restart stops the gateway and starts it again, its test clock (which
// starts at the wall clock) moved on to the simulator's.
func (p *platform) restart() {
	p.gw.stop()
	p.gw.start()
	p.gw.advance(p.advanced)
}

// componentClientsCaddyfile serves the platform in clients mode: the app's
// SDK sends its client key as the component_appsecret.
var componentClientsCaddyfile = strings.Replace(strings.Replace(componentCaddyfile, "		test_clock\n",
	"		client saas {\n			key {env.WX_SAAS_KEY}\n			accounts platform\n		}\n		test_clock\n", 1),
	"	wechat platform {\n		trusted\n	}\n", "	wechat platform\n", 1)

const saasKey = "saas-client-key-0123456789abcdef"

// TestComponentTokenFromPushedTicket: WeChat pushes the verify ticket to
// the platform's callback; the gateway fetches the component token with it
// and injects it into the platform's component API calls.
func TestComponentTokenFromPushedTicket(t *testing.T) {
	p := startPlatform(t, componentCaddyfile)
	sim, gw := p.sim, p.gw
	preauth := func() (int, []byte) {
		req, _ := http.NewRequest("POST", gw.URL("/cgi-bin/component/api_create_preauthcode"), strings.NewReader(`{"component_appid":"`+compAppID+`"}`))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var b strings.Builder
		_, _ = io.Copy(&b, resp.Body)
		return resp.StatusCode, []byte(b.String())
	}
	// Before any ticket, there is no component token.
	if _, body := preauth(); errcodeOf(body) != -1 || !strings.Contains(string(body), "component_verify_ticket") {
		t.Fatalf("before the ticket: %s", body)
	}
	p.pushTicket(t)
	// The same push again is refused, also after a reload.
	p.mu.Lock()
	first := p.pushes[0]
	p.mu.Unlock()
	for _, when := range []string{"at once", "after a reload"} {
		if when != "at once" {
			gw.reload()
		}
		if status, answer := p.deliver(t, first[0], first[1]); status != http.StatusBadRequest || !strings.Contains(answer, "replayed") {
			t.Errorf("the push replayed %s: %d %q, want 400 (replayed)", when, status, answer)
		}
	}
	p.advance(5 * time.Minute) // past the backoff of the failed first attempt
	for range 3 {
		status, body := preauth()
		if status != http.StatusOK || errcodeOf(body) != 0 || !strings.Contains(string(body), `"pre_auth_code"`) {
			t.Fatalf("api_create_preauthcode through the gateway: %d %s", status, body)
		}
	}
	if n := sim.Counters().Components[compAppID].ComponentToken; n != 1 {
		t.Errorf("%d component tokens fetched, want 1", n)
	}
	// The platform's own token call is answered by the gateway.
	if status, body := get(t, gw.URL("/cgi-bin/component/api_component_token")); status != 200 || !strings.Contains(string(body), "component_access_token") {
		t.Errorf("api_component_token on the platform's site: %d %s", status, body)
	}
	// A forged or replayed push is refused.
	resp, err := http.Post(gw.URL2("/wechat/callback?msg_signature=0&timestamp=1&nonce=2"), "text/xml", strings.NewReader("<xml><Encrypt>x</Encrypt></xml>"))
	if err != nil || resp.StatusCode != http.StatusBadRequest {
		t.Errorf("a forged push: %v %v", err, resp)
	}

	// A business authorises the platform: WeChat pushes `authorized`, and
	// the gateway exchanges the code for the refresh token, which it keeps.
	authorizerToken := func() (int, []byte) {
		return send(t, http.MethodPost, gw.URL("/cgi-bin/component/api_authorizer_token"), "application/json",
			[]byte(`{"component_appid":"`+compAppID+`","authorizer_appid":"`+authAppID+`","authorizer_refresh_token":"whatever"}`))
	}
	if _, body := authorizerToken(); errcodeOf(body) != 61023 {
		t.Errorf("api_authorizer_token before authorisation: %s", body)
	}
	res, err := sim.Authorize(compAppID, authAppID, "")
	if err != nil || !res.Push.Delivered {
		t.Fatalf("authorising: %+v %v", res, err)
	}
	counts := func() simulator.AuthorizerCounts { return sim.Counters().Components[compAppID].Authorizers[authAppID] }
	if c := counts(); c.QueryAuth != 1 {
		t.Fatalf("%d api_query_auth calls after the push, want 1", c.QueryAuth)
	}
	// The platform's SDK asks for the authorizer's token as it would ask
	// WeChat, and gets a placeholder; its calls get the real token.
	_, body := authorizerToken()
	var placeholder struct {
		Token   string `json:"authorizer_access_token"`
		Refresh string `json:"authorizer_refresh_token"`
	}
	if err := json.Unmarshal(body, &placeholder); err != nil || placeholder.Token == "" {
		t.Fatalf("api_authorizer_token: %s", body)
	}
	menu := func() []byte {
		_, body := get(t, gw.URL("/cgi-bin/menu/get?access_token="+placeholder.Token))
		return body
	}
	// storm makes 20 calls at once, each of which must work.
	storm := func(what string, call func() []byte) {
		var wg sync.WaitGroup
		for range 20 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if body := call(); errcodeOf(body) != 0 && errcodeOf(body) != 46003 {
					t.Errorf("%s: %s", what, body)
				}
			}()
		}
		wg.Wait()
	}
	storm("a call on behalf of the authorizer", menu)
	if c := counts(); c.AuthorizerToken != 1 {
		t.Errorf("%d api_authorizer_token calls for a storm, want 1", c.AuthorizerToken)
	}
	// An invalidation storm: WeChat revokes the authorizer's token and the
	// component's, and 20 calls each find out at once: one new token each.
	p.advance(time.Minute) // past the refresh cooldown of the fresh tokens
	for _, id := range []string{authAppID, compAppID} {
		if n, err := sim.InvalidateTokens(id); err != nil || n == 0 {
			t.Fatalf("invalidating %s: %d %v", id, n, err)
		}
	}
	storm("an authorizer's call after the invalidation", menu)
	storm("a component call after the invalidation", func() []byte { _, b := preauth(); return b })
	if c, comp := counts(), sim.Counters().Components[compAppID]; c.AuthorizerToken != 2 || comp.ComponentToken != 2 {
		t.Errorf("an invalidation storm made %d authorizer and %d component token calls, want 1 each",
			c.AuthorizerToken-1, comp.ComponentToken-1)
	}
	// A reload keeps the authorizer: the new config takes it over, token
	// and all, before the old one lets go of it (the admin API lists it
	// before any call through the new config), and fetches nothing.
	gw.reload()
	if !authorizerHeld(t, gw, authAppID) {
		t.Errorf("after a reload the platform holds no token of authorizer %s", authAppID)
	}
	if body := menu(); errcodeOf(body) != 0 && errcodeOf(body) != 46003 {
		t.Errorf("a call after a reload: %s", body)
	}
	if c := counts(); c.AuthorizerToken != 2 {
		t.Errorf("%d api_authorizer_token calls after a reload, want none since the storm", c.AuthorizerToken-2)
	}
	// A restart fetches nothing and keeps the refresh token.
	p.restart()
	if body := menu(); errcodeOf(body) != 0 && errcodeOf(body) != 46003 {
		t.Errorf("a call after a restart: %s", body)
	}
	if c := counts(); c.AuthorizerToken != 2 {
		t.Errorf("%d api_authorizer_token calls after a restart, want none since the storm", c.AuthorizerToken-2)
	}
	// The business withdraws: WeChat pushes `unauthorized`, and the
	// authorizer is dropped.
	if res, err := sim.Unauthorize(compAppID, authAppID); err != nil || !res.Push.Delivered {
		t.Fatalf("unauthorising: %+v %v", res, err)
	}
	if _, body := authorizerToken(); errcodeOf(body) != 61023 {
		t.Errorf("api_authorizer_token after withdrawal: %s", body)
	}
}

// authorizerHeld reports whether the admin API lists authorizer appid of
// the platform as holding a token.
func authorizerHeld(t *testing.T, gw *gateway, appid string) bool {
	t.Helper()
	resp, err := http.Get(gw.Admin + "/wechat/accounts")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		Accounts []struct {
			Authorizers []struct {
				AppID    string `json:"appid"`
				HasToken bool   `json:"has_token"`
			} `json:"authorizers"`
		} `json:"accounts"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	for _, a := range out.Accounts {
		for _, z := range a.Authorizers {
			if z.AppID == appid && z.HasToken {
				return true
			}
		}
	}
	return false
}

// TestPlatformReloadsUnderLoad: 10 reloads while 8 clients keep calling on
// behalf of an authorizer make no panic, no failed call and no token
// fetch, and the authorizer is still held after them.
func TestPlatformReloadsUnderLoad(t *testing.T) {
	p := startPlatform(t, componentCaddyfile)
	sim, gw := p.sim, p.gw
	p.pushTicket(t)
	if res, err := sim.Authorize(compAppID, authAppID, ""); err != nil || !res.Push.Delivered {
		t.Fatalf("authorising: %+v %v", res, err)
	}
	_, body := send(t, http.MethodPost, gw.URL("/cgi-bin/component/api_authorizer_token"), "application/json",
		[]byte(`{"component_appid":"`+compAppID+`","authorizer_appid":"`+authAppID+`","authorizer_refresh_token":"whatever"}`))
	var placeholder struct {
		Token string `json:"authorizer_access_token"`
	}
	if err := json.Unmarshal(body, &placeholder); err != nil || placeholder.Token == "" {
		t.Fatalf("api_authorizer_token: %s", body)
	}
	menuURL := gw.URL("/cgi-bin/menu/get?access_token=" + placeholder.Token)
	if _, body := get(t, menuURL); errcodeOf(body) != 0 && errcodeOf(body) != 46003 {
		t.Fatalf("first call: %s", body)
	}
	counts := func() (int64, int64) {
		c := sim.Counters().Components[compAppID]
		return c.ComponentToken, c.Authorizers[authAppID].AuthorizerToken
	}
	comps, auths := counts()

	load, stop := keepCalling(t, 8, menuURL, func(status int, body []byte) bool {
		code := errcodeOf(body)
		return status == http.StatusOK && json.Valid(body) && (code == 0 || code == 46003)
	})
	defer stop() // also when a check below gives up
	for range 10 {
		gw.reload()
		// Let some calls through the new config before the next reload.
		for before, deadline := load.calls.Load(), time.Now().Add(10*time.Second); load.calls.Load() < before+8; {
			if time.Now().After(deadline) {
				t.Fatal("no calls went through for 10 s after a reload")
			}
			time.Sleep(time.Millisecond)
		}
	}
	stop()
	load.check(t, "10 reloads", 50)
	if c, a := counts(); c != comps || a != auths {
		t.Errorf("%d component and %d authorizer token calls during the reloads, want none", c-comps, a-auths)
	}
	if !authorizerHeld(t, gw, authAppID) {
		t.Errorf("after the reloads the platform holds no token of authorizer %s", authAppID)
	}
	if logs := gw.logs(); strings.Contains(logs, "panic") || strings.Contains(logs, "http.log.error") {
		t.Errorf("the gateway panicked:\n%s", logs)
	}
}

// opsKey is the key of componentAdminCaddyfile's admin client.
const opsKey = "ops-client-key-0123456789abcdef0"

// componentAdminCaddyfile is componentClientsCaddyfile with client ops,
// granted admin.
var componentAdminCaddyfile = strings.Replace(componentClientsCaddyfile, "		test_clock\n",
	"		client ops {\n			key {env.WX_OPS_KEY}\n			accounts platform\n			admin\n		}\n		test_clock\n", 1)

// TestComponentClearQuotaV2ThroughGateway: when the platform's token
// quota is spent, the admin client's SDK resets it with
// component/clear_quota/v2, its key where the platform's AppSecret goes;
// the gateway sends WeChat the real secret, and the platform's calls work
// again. Without admin the call is refused before WeChat.
func TestComponentClearQuotaV2ThroughGateway(t *testing.T) {
	p := startPlatform(t, componentAdminCaddyfile)
	sim, gw := p.sim, p.gw
	if err := sim.Reconfigure(simulator.Config{
		Components:              []simulator.Component{{AppID: compAppID, Secret: compSecret, Token: compToken, EncodingAESKey: compAESKey, CallbackURL: gw.URL2("/wechat/callback")}},
		ComponentTicketInterval: -1,
		DailyTokenQuota:         1,
	}); err != nil {
		t.Fatal(err)
	}
	p.pushTicket(t)
	p.advance(5 * time.Minute)
	// preauth makes a component API call, with a gateway token fetched
	// as the SDK would (answered by the gateway, not WeChat).
	preauth := func() []byte {
		_, body := send(t, http.MethodPost, gw.URL("/cgi-bin/component/api_component_token"), "application/json",
			[]byte(`{"component_appid":"`+compAppID+`","component_appsecret":"`+saasKey+`","component_verify_ticket":"x"}`))
		var issued struct {
			Token string `json:"component_access_token"`
		}
		if err := json.Unmarshal(body, &issued); err != nil || issued.Token == "" {
			t.Fatalf("api_component_token: %s", body)
		}
		_, body = send(t, http.MethodPost, gw.URL("/cgi-bin/component/api_create_preauthcode?component_access_token="+issued.Token),
			"application/json", []byte(`{"component_appid":"`+compAppID+`"}`))
		return body
	}
	if body := preauth(); errcodeOf(body) != 0 {
		t.Fatalf("api_create_preauthcode: %s", body)
	}
	p.pushTicket(t)
	p.advance(2*time.Hour + time.Minute) // the token expired; the day's one fetch is spent
	if body := preauth(); errcodeOf(body) == 0 {
		t.Fatalf("api_create_preauthcode with the quota spent: %s", body)
	}
	clear := func(key string) []byte {
		_, body := send(t, http.MethodPost, gw.URL("/cgi-bin/component/clear_quota/v2"), "application/json",
			[]byte(`{"component_appid":"`+compAppID+`","appsecret":"`+key+`"}`))
		return body
	}
	if body := clear(saasKey); errcodeOf(body) != 48001 {
		t.Errorf("clear_quota/v2 by a client without admin: %s", body)
	}
	if body := clear(opsKey); errcodeOf(body) != 0 {
		t.Fatalf("clear_quota/v2 by the admin client: %s", body)
	}
	p.advance(5 * time.Minute) // past the failed fetch's backoff
	if body := preauth(); errcodeOf(body) != 0 {
		t.Errorf("api_create_preauthcode after the reset: %s", body)
	}
	if n := sim.Counters().Components[compAppID].ComponentToken; n != 2 {
		t.Errorf("%d component tokens fetched, want 2", n)
	}
}
