package caddysim

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/wxgate/caddy-wechat/module/internal/caddyopt"
	"github.com/wxgate/caddy-wechat/module/simulator"
)

func TestSimulatorCaddyfile(t *testing.T) {
	d := caddyfile.NewTestDispenser(`wechat_simulator {
		official wx1 s1
		official wx2 {env.SIM_SECRET} {
			daily_token_quota 200
		}
		wecom ww1 s3 1000002
		wecom ww1 s4
		token_ttl 1h
		overlap off
		daily_token_quota -1
		stable_daily_quota 1000
		force_refresh_limit 3
		force_refresh_interval 1m
		stable_force_grace 10s
		stable_rotation 2m
		wecom_early_invalidation 15m
		control_prefix /__sim
		large_media_size 1MiB
		media_store_limit 10MB
		enforce_api_quota
		frozen
		name second
	}`)
	var got Simulator
	if err := got.UnmarshalCaddyfile(d); err != nil {
		t.Fatal(err)
	}
	want := Simulator{
		Name: "second",
		Accounts: []SimulatorAccount{
			{Kind: "official", AppID: "wx1", Secret: "s1"},
			{Kind: "official", AppID: "wx2", Secret: "{env.SIM_SECRET}", DailyTokenQuota: 200},
			{Kind: "wecom", AppID: "ww1", Secret: "s3", AgentID: "1000002"},
			{Kind: "wecom", AppID: "ww1", Secret: "s4"},
		},
		TokenTTL:               caddy.Duration(time.Hour),
		Overlap:                caddyopt.Off,
		DailyTokenQuota:        -1,
		StableDailyQuota:       1000,
		ForceRefreshDailyLimit: 3,
		ForceRefreshInterval:   caddy.Duration(time.Minute),
		StableForceGrace:       caddy.Duration(10 * time.Second),
		StableRotation:         caddy.Duration(2 * time.Minute),
		WeComEarlyInvalidation: caddy.Duration(15 * time.Minute),
		ControlPrefix:          "/__sim",
		LargeMediaSize:         1 << 20,
		MediaStoreLimit:        10_000_000,
		EnforceAPIQuota:        true,
		Frozen:                 true,
	}
	gotJSON, _ := json.Marshal(got)
	wantJSON, _ := json.Marshal(want)
	if string(gotJSON) != string(wantJSON) {
		t.Errorf("got  %s\nwant %s", gotJSON, wantJSON)
	}

	var empty Simulator
	if err := empty.UnmarshalCaddyfile(caddyfile.NewTestDispenser(`wechat_simulator`)); err != nil {
		t.Fatalf("bare directive: %v", err)
	}
}

func TestSimulatorCaddyfileErrors(t *testing.T) {
	cases := map[string]string{
		"wechat_simulator {\n colour blue\n}":                   `unknown subdirective "colour"`,
		"wechat_simulator {\n official wx1\n}":                  "official: wrong argument count",
		"wechat_simulator {\n wecom ww1 s 1 2\n}":               "wecom: wrong argument count",
		"wechat_simulator {\n wecom ww1 s x\n}":                 `agentid "x" is not a number`,
		"wechat_simulator {\n token_ttl\n}":                     "token_ttl: wrong argument count",
		"wechat_simulator {\n token_ttl soon\n}":                `token_ttl: bad duration "soon"`,
		"wechat_simulator {\n overlap -5m\n}":                   "overlap: duration \"-5m\" must not be negative",
		"wechat_simulator {\n daily_token_quota many\n}":        "daily_token_quota",
		"wechat_simulator {\n large_media_size 0\n}":            "large_media_size: bad size",
		"wechat_simulator {\n name\n}":                          "name: wrong argument count",
		"wechat_simulator {\n enforce_api_quota please\n}":      "enforce_api_quota takes no argument",
		"wechat_simulator arg":                                  "takes no arguments",
		"wechat_simulator {\n official wx1 s {\n nope 1\n }\n}": `official wx1: unknown subdirective "nope"`,
	}
	for input, want := range cases {
		var s Simulator
		err := s.UnmarshalCaddyfile(caddyfile.NewTestDispenser(input))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: error %v, want it to contain %q", input, err, want)
		}
	}
}

// provisionSim provisions a Simulator handler and registers its cleanup.
func provisionSim(t *testing.T, s *Simulator) *Simulator {
	t.Helper()
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	if err := s.Provision(ctx); err != nil {
		t.Fatalf("Provision: %v", err)
	}
	t.Cleanup(func() { _ = s.Cleanup() })
	return s
}

// call runs one request through the handler; next must never be called.
func simCall(t *testing.T, s *Simulator, method, target, body string) *httptest.ResponseRecorder {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	rec := httptest.NewRecorder()
	next := caddyhttp.HandlerFunc(func(http.ResponseWriter, *http.Request) error {
		t.Error("wechat_simulator called the next handler")
		return nil
	})
	if err := s.ServeHTTP(rec, httptest.NewRequest(method, target, r), next); err != nil {
		t.Fatalf("ServeHTTP: %v", err)
	}
	return rec
}

func simJSONField(t *testing.T, rec *httptest.ResponseRecorder, field string) any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &m); err != nil {
		t.Fatalf("not JSON: %q", rec.Body)
	}
	return m[field]
}

func TestSimulatorProvisionResolvesPlaceholders(t *testing.T) {
	t.Setenv("SIM_TEST_SECRET", "resolved-secret")
	s := provisionSim(t, &Simulator{
		Name:     t.Name(),
		Accounts: []SimulatorAccount{{AppID: "wx1", Secret: "{env.SIM_TEST_SECRET}"}},
		Frozen:   true,
	})
	rec := simCall(t, s, "GET", "/cgi-bin/token?grant_type=client_credential&appid=wx1&secret=resolved-secret", "")
	if tok, _ := simJSONField(t, rec, "access_token").(string); tok == "" {
		t.Fatalf("token call with the resolved secret: %s", rec.Body)
	}
	rec = simCall(t, s, "GET", "/cgi-bin/token?grant_type=client_credential&appid=wx1&secret=%7Benv.SIM_TEST_SECRET%7D", "")
	if code := simJSONField(t, rec, "errcode"); code != float64(40001) {
		t.Fatalf("the placeholder text itself worked as a secret: %s", rec.Body)
	}
	if rec.Header().Get("Content-Type") != "application/json; encoding=utf-8" {
		t.Errorf("Content-Type %q", rec.Header().Get("Content-Type"))
	}
}

func TestSimulatorProvisionErrors(t *testing.T) {
	cases := []struct {
		s    Simulator
		want string
	}{
		{Simulator{Accounts: []SimulatorAccount{{AppID: "wx1", Secret: "{env.SIM_TEST_SURELY_UNSET}"}}},
			"secret {env.SIM_TEST_SURELY_UNSET} resolved to an empty string"},
		{Simulator{Accounts: []SimulatorAccount{{AppID: "wx1"}}}, "secret is empty"},
		{Simulator{Accounts: []SimulatorAccount{{Secret: "s"}}}, "accounts[0]: appid is empty"},
		{Simulator{Accounts: []SimulatorAccount{{Kind: "corp", AppID: "x", Secret: "s"}}}, "Config.Accounts[0].Kind"},
		{Simulator{ControlPrefix: "sim"}, "Config.ControlPrefix"},
		{Simulator{TokenTTL: caddy.Duration(time.Minute), StableRotation: caddy.Duration(time.Hour)}, "Config.StableRotation"},
	}
	for i, c := range cases {
		c.s.Name = fmt.Sprintf("%s-%d", t.Name(), i)
		ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
		err := c.s.Provision(ctx)
		cancel()
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "wechat_simulator") {
			t.Errorf("case %d: error %v, want %q", i, err, c.want)
		}
		_ = c.s.Cleanup() // Caddy cleans up after a failed Provision
		if _, held := simulatorPool.References(c.s.Name); held {
			t.Errorf("case %d: a failed Provision left a pool entry", i)
		}
	}
}

func TestSimulatorStateSurvivesReload(t *testing.T) {
	name := t.Name()
	cfg := func(ttl time.Duration) *Simulator {
		return &Simulator{
			Name:     name,
			Accounts: []SimulatorAccount{{AppID: "wx1", Secret: "s1"}},
			TokenTTL: caddy.Duration(ttl),
			Frozen:   true,
		}
	}
	old := provisionSim(t, cfg(2*time.Hour))
	rec := simCall(t, old, "GET", "/cgi-bin/token?grant_type=client_credential&appid=wx1&secret=s1", "")
	tok := simJSONField(t, rec, "access_token").(string)
	simCall(t, old, "POST", "/_sim/clock/advance", `{"by":"30m"}`)
	clockBefore := old.sim.Clock().Now()

	// A reload provisions the new config before cleaning up the old one.
	reloaded := provisionSim(t, cfg(3*time.Hour))
	if err := old.Cleanup(); err != nil {
		t.Fatal(err)
	}
	if reloaded.sim != old.sim {
		t.Fatal("the reload made a new simulator")
	}
	if now := reloaded.sim.Clock().Now(); !now.Equal(clockBefore) {
		t.Errorf("clock %v after reload, want %v", now, clockBefore)
	}
	rec = simCall(t, reloaded, "GET", "/cgi-bin/menu/get?access_token="+tok, "")
	if code := simJSONField(t, rec, "errcode"); code != float64(46003) {
		t.Fatalf("token issued before the reload: %s", rec.Body)
	}
	// The new settings apply.
	rec = simCall(t, reloaded, "GET", "/cgi-bin/token?grant_type=client_credential&appid=wx1&secret=s1", "")
	if exp := simJSONField(t, rec, "expires_in"); exp != float64(10800) {
		t.Errorf("expires_in %v after the reload, want 10800", exp)
	}
	counters := simCall(t, reloaded, "GET", "/_sim/counters", "")
	if !strings.Contains(counters.Body.String(), `"token": 2`) {
		t.Errorf("counters lost in the reload: %s", counters.Body)
	}

	// Once no config uses the name, the state goes.
	if err := reloaded.Cleanup(); err != nil {
		t.Fatal(err)
	}
	if _, held := simulatorPool.References(name); held {
		t.Fatal("simulator still pooled after the last Cleanup")
	}
	fresh := provisionSim(t, cfg(2*time.Hour))
	rec = simCall(t, fresh, "GET", "/cgi-bin/menu/get?access_token="+tok, "")
	if code := simJSONField(t, rec, "errcode"); code != float64(40001) {
		t.Errorf("a fresh simulator knew the old token: %s", rec.Body)
	}
}

func TestSimulatorNamesAreSeparate(t *testing.T) {
	a := provisionSim(t, &Simulator{Name: t.Name() + "-a", Accounts: []SimulatorAccount{{AppID: "wx1", Secret: "s1"}}})
	b := provisionSim(t, &Simulator{Name: t.Name() + "-b", Accounts: []SimulatorAccount{{AppID: "wx1", Secret: "s1"}}})
	rec := simCall(t, a, "GET", "/cgi-bin/token?grant_type=client_credential&appid=wx1&secret=s1", "")
	tok := simJSONField(t, rec, "access_token").(string)
	rec = simCall(t, b, "GET", "/cgi-bin/menu/get?access_token="+tok, "")
	if code := simJSONField(t, rec, "errcode"); code != float64(40001) {
		t.Errorf("simulators with different names share tokens: %s", rec.Body)
	}
}

func TestSimulatorOffMeansNone(t *testing.T) {
	s := &Simulator{Overlap: caddyopt.Off, StableForceGrace: caddyopt.Off, ForceRefreshInterval: caddyopt.Off, WeComEarlyInvalidation: caddyopt.Off}
	cfg, err := s.simulatorConfig(caddy.NewReplacer())
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Overlap >= 0 || cfg.StableForceGrace >= 0 || cfg.ForceRefreshInterval >= 0 || cfg.WeComEarlyInvalidation != 0 {
		t.Errorf("off did not become none: %+v", cfg)
	}
	cfg, _ = (&Simulator{}).simulatorConfig(caddy.NewReplacer())
	if cfg.Overlap != 0 || cfg.StableForceGrace != 0 || cfg.ForceRefreshInterval != 0 {
		t.Errorf("unset durations are not the defaults: %+v", cfg)
	}
}

func TestSimulatorJSONConfig(t *testing.T) {
	var s Simulator
	raw := `{"name":"x","token_ttl":"1h","overlap":"-1ns","accounts":[{"kind":"wecom","appid":"ww1","secret":"s","agent_id":"1000002"}],"large_media_size":1024}`
	if err := json.Unmarshal([]byte(raw), &s); err != nil {
		t.Fatal(err)
	}
	cfg, err := s.simulatorConfig(caddy.NewReplacer())
	if err != nil {
		t.Fatal(err)
	}
	if cfg.TokenTTL != time.Hour || cfg.Overlap >= 0 || cfg.LargeMediaSize != 1024 || cfg.Accounts[0].Kind != simulator.KindWeCom {
		t.Errorf("config %+v", cfg)
	}
}

// TestSimulatorInCaddy runs the handler in a real Caddy server: requests,
// a dropped connection through Caddy's response writer wrappers, and a
// config reload that keeps the tokens.
func TestSimulatorInCaddy(t *testing.T) {
	t.Setenv("XDG_DATA_HOME", t.TempDir())
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	t.Setenv("SIM_CADDY_SECRET", "caddy-secret")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	config := func(ttl string) []byte {
		return []byte(`{
			"admin": {"disabled": true},
			"logging": {"logs": {"default": {"level": "ERROR"}}},
			"apps": {"http": {"servers": {"sim": {
				"listen": ["` + addr + `"],
				"automatic_https": {"disable": true},
				"routes": [{"handle": [{
					"handler": "wechat_simulator",
					"name": "` + t.Name() + `",
					"token_ttl": "` + ttl + `",
					"frozen": true,
					"accounts": [{"appid": "wx1", "secret": "{env.SIM_CADDY_SECRET}"}]
				}]}]
			}}}}
		}`)
	}
	if err := caddy.Load(config("2h"), true); err != nil {
		t.Fatalf("caddy.Load: %v", err)
	}
	t.Cleanup(func() { _ = caddy.Stop() })
	base := "http://" + addr

	get := func(path string) map[string]any {
		t.Helper()
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		defer resp.Body.Close()
		var m map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
			t.Fatalf("GET %s: not JSON: %v", path, err)
		}
		return m
	}
	tok, _ := get("/cgi-bin/token?grant_type=client_credential&appid=wx1&secret=caddy-secret")["access_token"].(string)
	if tok == "" {
		t.Fatal("no token through Caddy")
	}
	if m := get("/cgi-bin/menu/get?access_token=" + tok); m["errcode"] != float64(46003) {
		t.Fatalf("menu/get through Caddy: %v", m)
	}

	// A drop fault closes the connection through Caddy's wrappers.
	resp, err := http.Post(base+"/_sim/faults", "application/json", strings.NewReader(`{"path":"/cgi-bin/menu/get","drop":true,"count":1}`))
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("inject drop: %v %v", err, resp)
	}
	resp.Body.Close()
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	if resp, err := client.Get(base + "/cgi-bin/menu/get?access_token=" + tok); err == nil {
		resp.Body.Close()
		t.Fatalf("the dropped request got an answer: %d", resp.StatusCode)
	}

	// Reload with another TTL: the token survives, the new TTL applies.
	if err := caddy.Load(config("3h"), true); err != nil {
		t.Fatalf("reload: %v", err)
	}
	if m := get("/cgi-bin/menu/get?access_token=" + tok); m["errcode"] != float64(46003) {
		t.Fatalf("token lost in the reload: %v", m)
	}
	if m := get("/cgi-bin/token?grant_type=client_credential&appid=wx1&secret=caddy-secret"); m["expires_in"] != float64(10800) {
		t.Fatalf("new TTL not applied: %v", m)
	}
}
