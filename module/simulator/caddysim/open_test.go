package caddysim

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/wxgate/caddy-wechat/module/internal/caddyopt"
	"github.com/wxgate/caddy-wechat/module/internal/msgcrypt"
)

const testAESKey = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"

func TestSimulatorComponentCaddyfile(t *testing.T) {
	d := caddyfile.NewTestDispenser(`wechat_simulator {
		official wx1 s1
		component wxcomp {env.SIM_COMPONENT_SECRET} {
			token tok123
			encoding_aes_key {env.SIM_AES_KEY}
			callback_url http://127.0.0.1:8080/wechat/component
			authorizer wx1
			authorizer wxauth2 {env.SIM_REFRESH}
		}
		component_ticket_interval off
		component_ticket_ttl 1h
		authorizer_refresh_grace 30s
	}`)
	var got Simulator
	if err := got.UnmarshalCaddyfile(d); err != nil {
		t.Fatal(err)
	}
	want := Simulator{
		Accounts: []SimulatorAccount{{Kind: "official", AppID: "wx1", Secret: "s1"}},
		Components: []SimulatorComponent{{
			AppID: "wxcomp", Secret: "{env.SIM_COMPONENT_SECRET}", Token: "tok123", EncodingAESKey: "{env.SIM_AES_KEY}",
			CallbackURL: "http://127.0.0.1:8080/wechat/component",
			Authorizers: []SimulatorAuthorizer{{AppID: "wx1"}, {AppID: "wxauth2", RefreshToken: "{env.SIM_REFRESH}"}},
		}},
		ComponentTicketInterval: caddyopt.Off,
		ComponentTicketTTL:      caddy.Duration(time.Hour),
		AuthorizerRefreshGrace:  caddy.Duration(30 * time.Second),
	}
	gotJSON, _ := json.Marshal(got)
	wantJSON, _ := json.Marshal(want)
	if string(gotJSON) != string(wantJSON) {
		t.Errorf("got  %s\nwant %s", gotJSON, wantJSON)
	}

	t.Setenv("SIM_COMPONENT_SECRET", "comp-secret")
	t.Setenv("SIM_AES_KEY", testAESKey)
	t.Setenv("SIM_REFRESH", "refreshtoken@@@r")
	cfg, err := got.simulatorConfig(caddy.NewReplacer())
	if err != nil {
		t.Fatal(err)
	}
	c := cfg.Components[0]
	if c.Secret != "comp-secret" || c.EncodingAESKey != testAESKey || len(cfg.Authorizers) != 2 ||
		cfg.Authorizers[1].RefreshToken != "refreshtoken@@@r" || cfg.Authorizers[1].ComponentAppID != "wxcomp" ||
		cfg.ComponentTicketInterval >= 0 || cfg.ComponentTicketTTL != time.Hour || cfg.AuthorizerRefreshGrace != 30*time.Second {
		t.Fatalf("config %+v", cfg)
	}

	for input, want := range map[string]string{
		"wechat_simulator {\n component wxc\n}":                            "component: wrong argument count",
		"wechat_simulator {\n component wxc s {\n colour blue\n }\n}":      `component wxc: unknown subdirective "colour"`,
		"wechat_simulator {\n component wxc s {\n authorizer\n }\n}":       "authorizer: wrong argument count",
		"wechat_simulator {\n component wxc s {\n token\n }\n}":            "token: wrong argument count",
		"wechat_simulator {\n component_ticket_ttl off\n}":                 "component_ticket_ttl",
		"wechat_simulator {\n authorizer_refresh_grace soon\n}":            "authorizer_refresh_grace",
		"wechat_simulator {\n component wxc s {\n authorizer a b c\n }\n}": "authorizer: wrong argument count",
	} {
		var s Simulator
		err := s.UnmarshalCaddyfile(caddyfile.NewTestDispenser(input))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: error %v, want it to contain %q", input, err, want)
		}
	}
}

func TestSimulatorComponentProvisionErrors(t *testing.T) {
	base := func() SimulatorComponent {
		return SimulatorComponent{AppID: "wxcomp", Secret: "s", Token: "tok123", EncodingAESKey: testAESKey}
	}
	cases := []struct {
		change func(*SimulatorComponent)
		want   string
	}{
		{func(c *SimulatorComponent) { c.Secret = "{env.SIM_TEST_SURELY_UNSET}" }, "secret {env.SIM_TEST_SURELY_UNSET} resolved to an empty string"},
		{func(c *SimulatorComponent) { c.Token = "" }, "token is empty"},
		{func(c *SimulatorComponent) { c.AppID = "" }, "components[0]: appid is empty"},
		{func(c *SimulatorComponent) { c.EncodingAESKey = "short" }, "Config.Components[0].EncodingAESKey"},
		{func(c *SimulatorComponent) { c.Authorizers = []SimulatorAuthorizer{{}} }, "authorizers[0]: appid is empty"},
		{func(c *SimulatorComponent) {
			c.Authorizers = []SimulatorAuthorizer{{AppID: "wxa", RefreshToken: "{env.SIM_TEST_SURELY_UNSET}"}}
		}, "refresh_token {env.SIM_TEST_SURELY_UNSET} resolved"},
	}
	for i, c := range cases {
		comp := base()
		c.change(&comp)
		s := &Simulator{Components: []SimulatorComponent{comp}}
		_, err := s.simulatorConfig(caddy.NewReplacer())
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("case %d: error %v, want %q", i, err, c.want)
		}
	}
}

// TestSimulatorComponentPushes provisions a simulator with a component
// whose callback decrypts the pushes, then drives it through the control
// API and the component API.
func TestSimulatorComponentPushes(t *testing.T) {
	var mu sync.Mutex
	var events []msgcrypt.ComponentEvent
	codec := msgcrypt.Codec{Token: "tok123", EncodingAESKey: testAESKey, AppID: "wxcomp"}
	cb := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		body, _ := io.ReadAll(r.Body)
		msg, _, err := codec.Open(body, q.Get("msg_signature"), q.Get("timestamp"), q.Get("nonce"))
		if err != nil {
			t.Errorf("push: %v", err)
			return
		}
		ev, err := msgcrypt.ParseComponentEvent(msg)
		if err != nil {
			t.Errorf("event: %v", err)
		}
		mu.Lock()
		events = append(events, ev)
		mu.Unlock()
		io.WriteString(w, "success")
	}))
	defer cb.Close()
	t.Setenv("SIM_CB", cb.URL)
	s := provisionSim(t, &Simulator{
		Name:       t.Name(),
		Frozen:     true,
		Components: []SimulatorComponent{{AppID: "wxcomp", Secret: "cs", Token: "tok123", EncodingAESKey: testAESKey, CallbackURL: "{env.SIM_CB}/cb", Authorizers: []SimulatorAuthorizer{{AppID: "wxauth", RefreshToken: "rt"}}}},
	})
	simCall(t, s, "POST", "/_sim/clock/advance", `{"by":"1s"}`)
	mu.Lock()
	if len(events) != 1 || events[0].InfoType != msgcrypt.InfoTypeVerifyTicket {
		t.Fatalf("events %+v", events)
	}
	ticket := events[0].ComponentVerifyTicket
	mu.Unlock()
	rec := simCall(t, s, "POST", "/cgi-bin/component/api_component_token", `{"component_appid":"wxcomp","component_appsecret":"cs","component_verify_ticket":"`+ticket+`"}`)
	ctok, _ := simJSONField(t, rec, "component_access_token").(string)
	if ctok == "" {
		t.Fatalf("api_component_token: %s", rec.Body)
	}
	rec = simCall(t, s, "POST", "/cgi-bin/component/api_authorizer_token?component_access_token="+ctok, `{"component_appid":"wxcomp","authorizer_appid":"wxauth","authorizer_refresh_token":"rt"}`)
	access, _ := simJSONField(t, rec, "authorizer_access_token").(string)
	if access == "" {
		t.Fatalf("api_authorizer_token: %s", rec.Body)
	}
	rec = simCall(t, s, "GET", "/cgi-bin/user/info?openid=o1&access_token="+access, "")
	if simJSONField(t, rec, "openid") != "o1" {
		t.Fatalf("user/info with the authorizer token: %s", rec.Body)
	}
	rec = simCall(t, s, "POST", "/_sim/component/unauthorize", `{"authorizer_appid":"wxauth"}`)
	if rec.Code != 200 {
		t.Fatalf("unauthorize: %d %s", rec.Code, rec.Body)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(events) != 2 || events[1].InfoType != msgcrypt.InfoTypeUnauthorized || events[1].AuthorizerAppID != "wxauth" {
		t.Fatalf("events %+v", events)
	}
}
