package simulator

import (
	"strings"
	"testing"
	"time"
)

func TestZeroConfigUsesDefaults(t *testing.T) {
	sim, err := New(Config{})
	if err != nil {
		t.Fatalf("New(Config{}): %v", err)
	}
	cfg := sim.current.Load().cfg
	checks := []struct {
		name      string
		got, want any
	}{
		{"TokenTTL", cfg.TokenTTL, 7200 * time.Second},
		{"Overlap", cfg.Overlap, 5 * time.Minute},
		{"DailyTokenQuota", cfg.DailyTokenQuota, 2000},
		{"StableDailyQuota", cfg.StableDailyQuota, 500000},
		{"ForceRefreshDailyLimit", cfg.ForceRefreshDailyLimit, 20},
		{"ForceRefreshInterval", cfg.ForceRefreshInterval, 30 * time.Second},
		{"StableForceGrace", cfg.StableForceGrace, 5 * time.Minute},
		{"StableRotation", cfg.StableRotation, 5 * time.Minute},
		{"ControlPrefix", cfg.ControlPrefix, "/_sim"},
		{"LargeMediaSize", cfg.LargeMediaSize, int64(64 << 20)},
		{"MediaStoreLimit", cfg.MediaStoreLimit, int64(256 << 20)},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
	if sim.Clock().Frozen() {
		t.Error("the default clock is frozen")
	}
	if d := time.Since(sim.Clock().Now()); d < -time.Second || d > time.Second {
		t.Errorf("default clock is %v away from the real time", d)
	}
	// No account: every token call is an unknown appid.
	rec := serve(sim, "GET", "/cgi-bin/token?grant_type=client_credential&appid=wx1&secret=s", "", nil)
	if !strings.Contains(rec.Body.String(), `"errcode":40013`) {
		t.Errorf("zero config token call: %s", rec.Body)
	}
}

func TestNegativeValuesMeanNone(t *testing.T) {
	sim, err := New(Config{Overlap: -1, StableForceGrace: -1, DailyTokenQuota: -1, ForceRefreshInterval: -1, ForceRefreshDailyLimit: -5})
	if err != nil {
		t.Fatal(err)
	}
	cfg := sim.current.Load().cfg
	if cfg.Overlap != 0 || cfg.StableForceGrace != 0 || cfg.ForceRefreshInterval != 0 || cfg.DailyTokenQuota != -1 || cfg.ForceRefreshDailyLimit != -1 {
		t.Errorf("negative knobs not normalised: %+v", cfg)
	}
}

func TestShortTTLShortensRotation(t *testing.T) {
	sim, err := New(Config{TokenTTL: 4 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if got := sim.current.Load().cfg.StableRotation; got != 2*time.Minute {
		t.Errorf("StableRotation = %v, want 2m (half the TTL)", got)
	}
}

func TestConfigValidationNamesTheField(t *testing.T) {
	ok := Account{AppID: "wx1", Secret: "s"}
	cases := []struct {
		name string
		cfg  Config
		want string
	}{
		{"negative ttl", Config{TokenTTL: -time.Second}, "Config.TokenTTL"},
		{"tiny ttl", Config{TokenTTL: time.Millisecond}, "Config.TokenTTL"},
		{"rotation too long", Config{TokenTTL: time.Hour, StableRotation: time.Hour}, "Config.StableRotation"},
		{"negative rotation", Config{StableRotation: -1}, "Config.StableRotation"},
		{"negative early", Config{WeComEarlyInvalidation: -1}, "Config.WeComEarlyInvalidation"},
		{"prefix without slash", Config{ControlPrefix: "sim"}, "Config.ControlPrefix"},
		{"prefix root", Config{ControlPrefix: "/"}, "Config.ControlPrefix"},
		{"prefix trailing slash", Config{ControlPrefix: "/sim/"}, "Config.ControlPrefix"},
		{"prefix on cgi-bin", Config{ControlPrefix: "/cgi-bin/sim"}, "Config.ControlPrefix"},
		{"negative large media", Config{LargeMediaSize: -1}, "Config.LargeMediaSize"},
		{"negative media store", Config{MediaStoreLimit: -1}, "Config.MediaStoreLimit"},
		{"bad kind", Config{Accounts: []Account{{Kind: "corp", AppID: "a", Secret: "s"}}}, "Config.Accounts[0].Kind"},
		{"no appid", Config{Accounts: []Account{ok, {Secret: "s"}}}, "Config.Accounts[1].AppID"},
		{"bad appid", Config{Accounts: []Account{{AppID: "wx 1", Secret: "s"}}}, "Config.Accounts[0].AppID"},
		{"no secret", Config{Accounts: []Account{{AppID: "wx1"}}}, "Config.Accounts[0].Secret"},
		{"agentid on official", Config{Accounts: []Account{{AppID: "wx1", Secret: "s", AgentID: "1"}}}, "Config.Accounts[0].AgentID"},
		{"agentid not digits", Config{Accounts: []Account{{Kind: KindWeCom, AppID: "ww1", Secret: "s", AgentID: "x"}}}, "Config.Accounts[0].AgentID"},
		{"duplicate appid", Config{Accounts: []Account{ok, ok}}, "Config.Accounts[1].AppID"},
		{"same corp twice without agentid", Config{Accounts: []Account{
			{Kind: KindWeCom, AppID: "ww1", Secret: "a"}, {Kind: KindWeCom, AppID: "ww1", Secret: "b"}}}, "Config.Accounts[1].AgentID"},
		{"same wecom app twice", Config{Accounts: []Account{
			{Kind: KindWeCom, AppID: "ww1", Secret: "a", AgentID: "1"}, {Kind: KindWeCom, AppID: "ww1", Secret: "a", AgentID: "2"}}}, "Config.Accounts[1].Secret"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := New(c.cfg)
			if err == nil {
				t.Fatal("New succeeded")
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %q does not name %s", err, c.want)
			}
		})
	}
}

func TestSecretNeverInConfigErrors(t *testing.T) {
	_, err := New(Config{Accounts: []Account{{AppID: "wx1", Secret: "topsecret"}, {AppID: "wx1", Secret: "topsecret"}}})
	if err == nil || strings.Contains(err.Error(), "topsecret") {
		t.Fatalf("error %v", err)
	}
}

func TestReconfigureKeepsState(t *testing.T) {
	h := start(t)
	tok := h.mpToken()
	w, _ := h.wecomToken(appSecret1)
	h.advance(time.Hour)
	cfg := testConfig()
	cfg.Accounts = cfg.Accounts[:3] // drop the second WeCom app
	cfg.TokenTTL = 3 * time.Hour
	if err := h.sim.Reconfigure(cfg); err != nil {
		t.Fatal(err)
	}
	if got := h.sim.Clock().Now(); !got.Equal(testStart.Add(time.Hour)) {
		t.Errorf("clock reset by Reconfigure: %v", got)
	}
	expectCode(t, h.get("/cgi-bin/user/info", tq(tok, "openid", "o1")), 0)
	expectCode(t, h.get("/cgi-bin/user/get", tq(w, "userid", "u1")), 0)
	if n := h.sim.Counters().Tokens[mpApp].Token; n != 1 {
		t.Errorf("token counter after Reconfigure = %d, want 1", n)
	}
	// The removed app is unknown now.
	expectWeCom(t, h.qyGet("/cgi-bin/gettoken", q("corpid", corpID, "corpsecret", appSecret2)), 40001)
	// A bad configuration changes nothing.
	if err := h.sim.Reconfigure(Config{TokenTTL: -1}); err == nil {
		t.Fatal("Reconfigure accepted a bad config")
	}
	expectCode(t, h.get("/cgi-bin/user/info", tq(tok, "openid", "o1")), 0)
	// Changing the secret makes a new account whose old tokens stop working.
	cfg.Accounts[0].Secret = "another-secret"
	if err := h.sim.Reconfigure(cfg); err != nil {
		t.Fatal(err)
	}
	expectMP(t, h.get("/cgi-bin/user/info", tq(tok, "openid", "o1")), 40001)
}
