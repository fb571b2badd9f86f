package simulator

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

// menuButtons decodes a menu/get answer.
func menuButtons(t *testing.T, a answer) []menuButton {
	t.Helper()
	expectCode(t, a, 0)
	var got menuAnswer
	if err := json.Unmarshal(a.body, &got); err != nil {
		t.Fatalf("menu/get answer %s: %v", a.body, err)
	}
	return got.Menu.Button
}

func TestSeededMenu(t *testing.T) {
	cfg := testConfig()
	cfg.Accounts[0].Menu = testMenu
	h := newHarness(t, cfg)
	tok := h.mpToken()

	// Served from the start, in the menu/get shape.
	a := h.get("/cgi-bin/menu/get", tq(tok))
	b := menuButtons(t, a)
	if len(b) != 2 || b[0].Key != "V1001_TODAY_MUSIC" || len(b[1].SubButton) != 2 || b[1].SubButton[1].AppID != "wx286b93c14bbf93aa" {
		t.Errorf("seeded menu/get: %s", a.body)
	}
	if !bytes.HasPrefix(a.body, []byte(`{"menu":{"button":[`)) || !bytes.Contains(a.body, []byte(`"sub_button":[]`)) {
		t.Errorf("seeded menu/get is not in the menu/create answer shape: %s", a.body)
	}
	// Only the account it was configured on has it.
	expectMP(t, h.get("/cgi-bin/menu/get", tq(h.mpToken2())), 46003)

	// menu/create replaces it.
	expectCode(t, h.post("/cgi-bin/menu/create", tq(tok), `{"button":[{"type":"view","name":"官网","url":"https://example.com/"}]}`), 0)
	b = menuButtons(t, h.get("/cgi-bin/menu/get", tq(tok)))
	if len(b) != 1 || b[0].URL != "https://example.com/" {
		t.Errorf("menu/create did not replace the seeded menu: %+v", b)
	}

	// A Reconfigure with the same Menu keeps what the client made of it.
	if err := h.sim.Reconfigure(cfg); err != nil {
		t.Fatal(err)
	}
	if b = menuButtons(t, h.get("/cgi-bin/menu/get", tq(tok))); len(b) != 1 {
		t.Errorf("Reconfigure with an unchanged Menu reset the menu: %+v", b)
	}
	// One with a changed Menu applies it; the token survives.
	cfg.Accounts[0].Menu = `{"button":[{"type":"click","name":"A","key":"a"},{"type":"click","name":"B","key":"b"},{"type":"click","name":"C","key":"c"}]}`
	if err := h.sim.Reconfigure(cfg); err != nil {
		t.Fatal(err)
	}
	if b = menuButtons(t, h.get("/cgi-bin/menu/get", tq(tok))); len(b) != 3 || b[2].Key != "c" {
		t.Errorf("Reconfigure with a new Menu: %+v", b)
	}
	// Seeding the second account through Reconfigure.
	cfg.Accounts[1].Menu = testMenu
	if err := h.sim.Reconfigure(cfg); err != nil {
		t.Fatal(err)
	}
	if b = menuButtons(t, h.get("/cgi-bin/menu/get", tq(h.mpToken2()))); len(b) != 2 {
		t.Errorf("menu seeded by Reconfigure: %+v", b)
	}
	// menu/delete removes it; Menu emptied by a Reconfigure removes it too.
	expectCode(t, h.get("/cgi-bin/menu/delete", tq(tok)), 0)
	expectMP(t, h.get("/cgi-bin/menu/get", tq(tok)), 46003)
	cfg.Accounts[1].Menu = ""
	if err := h.sim.Reconfigure(cfg); err != nil {
		t.Fatal(err)
	}
	expectMP(t, h.get("/cgi-bin/menu/get", tq(h.mpToken2())), 46003)
	// A bad Menu at Reconfigure changes nothing.
	bad := cfg
	bad.Accounts = append([]Account(nil), cfg.Accounts...)
	bad.Accounts[0].Menu = `{"button":[]}`
	if err := h.sim.Reconfigure(bad); err == nil || !strings.Contains(err.Error(), "Config.Accounts[0].Menu") {
		t.Fatalf("Reconfigure with a bad Menu: %v", err)
	}
	expectMP(t, h.get("/cgi-bin/menu/get", tq(tok)), 46003)
}

func TestSeededMenuDoesNotAliasAcrossAccounts(t *testing.T) {
	cfg := testConfig()
	cfg.Accounts[0].Menu = testMenu
	cfg.Accounts[1].Menu = testMenu
	h := newHarness(t, cfg)
	tok, tok2 := h.mpToken(), h.mpToken2()
	expectCode(t, h.get("/cgi-bin/menu/delete", tq(tok)), 0)
	expectMP(t, h.get("/cgi-bin/menu/get", tq(tok)), 46003)
	if b := menuButtons(t, h.get("/cgi-bin/menu/get", tq(tok2))); len(b) != 2 {
		t.Errorf("deleting one account's menu touched the other's: %+v", b)
	}
}

func TestBadSeededMenuRejected(t *testing.T) {
	cases := []struct {
		name, menu, want string
	}{
		{"not json", `not json`, "want a JSON document"},
		{"truncated", `{"button":[`, "want a JSON document"},
		{"trailing data", `{"button":[{"type":"click","name":"a","key":"a"}]} {}`, "data after the JSON document"},
		{"unknown field", `{"button":[{"type":"click","name":"a","key":"a","sub_buttons":[]}]}`, `unknown field "sub_buttons"`},
		{"menu/get shape", `{"menu":{"button":[]}}`, `unknown field "menu"`},
		{"no buttons", `{"button":[]}`, "errcode 40016: 0 buttons, want 1 to 3"},
		{"four buttons", `{"button":[{"type":"click","name":"a"},{"type":"click","name":"b"},{"type":"click","name":"c"},{"type":"click","name":"d"}]}`, "errcode 40016"},
		{"long name", `{"button":[{"type":"click","name":"this name is far too long"}]}`, "errcode 40018: button[0]"},
		{"bad type", `{"button":[{"type":"click","name":"a"},{"type":"teleport","name":"b"}]}`, `errcode 40017: button[1] (b): type "teleport"`},
		{"six sub buttons", `{"button":[{"name":"a","sub_button":[{"type":"click","name":"1"},{"type":"click","name":"2"},{"type":"click","name":"3"},{"type":"click","name":"4"},{"type":"click","name":"5"},{"type":"click","name":"6"}]}]}`, "errcode 40023"},
		{"bad sub type", `{"button":[{"name":"a","sub_button":[{"type":"nope","name":"1"}]}]}`, "errcode 40024: button[0].sub_button[0]"},
		{"nested sub", `{"button":[{"name":"a","sub_button":[{"type":"click","name":"1","sub_button":[{"type":"click","name":"x"}]}]}]}`, "errcode 40024"},
		{"empty sub name", `{"button":[{"name":"a","sub_button":[{"type":"click","name":""}]}]}`, "errcode 40025"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := testConfig()
			cfg.Accounts[1].Menu = c.menu
			_, err := New(cfg)
			if err == nil {
				t.Fatal("New accepted the menu")
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, "simulator: Config.Accounts[1].Menu: ") || !strings.Contains(msg, c.want) {
				t.Fatalf("error %q: want it to name Config.Accounts[1].Menu and contain %q", msg, c.want)
			}
			if !strings.Contains(msg, mpApp2) || strings.Contains(msg, mpSecret2) {
				t.Errorf("error %q should name the account and never its secret", msg)
			}
			if cfg.Validate() == nil {
				t.Error("Validate accepted what New refused")
			}
		})
	}
	t.Run("wecom", func(t *testing.T) {
		cfg := testConfig()
		cfg.Accounts[2].Menu = testMenu
		_, err := New(cfg)
		if err == nil || !strings.Contains(err.Error(), "Config.Accounts[2].Menu: only official accounts have menus") {
			t.Fatalf("menu on a WeCom app: %v", err)
		}
	})
}
