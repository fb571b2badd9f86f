package simulator

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestControlCounters(t *testing.T) {
	h := start(t)
	tok := h.mpToken()
	h.get("/cgi-bin/menu/get", tq(tok))
	h.get("/cgi-bin/menu/get", tq("bad"))
	a := h.control("GET", "/counters", "")
	if a.status != 200 || a.header.Get("Content-Type") != "application/json; encoding=utf-8" {
		t.Fatalf("GET counters: %d %s", a.status, a.header)
	}
	var c Counters
	if err := json.Unmarshal(a.body, &c); err != nil {
		t.Fatal(err)
	}
	if c.Tokens[mpApp].Token != 1 || c.Paths["/cgi-bin/menu/get"].Calls != 2 || c.Paths["/cgi-bin/menu/get"].Rejected[40001] != 1 {
		t.Errorf("counters %s", a.body)
	}
	if c.Calls != 3 || c.AppTokenRejections != 1 || !c.Time.Equal(testStart) {
		t.Errorf("totals %+v", c)
	}
	if _, has := c.Paths["/_sim/counters"]; has {
		t.Error("the control API is counted")
	}
	if a := h.control("POST", "/counters/reset", ""); a.status != 200 {
		t.Fatalf("reset: %d %s", a.status, a.body)
	}
	c = h.sim.Counters()
	if len(c.Paths) != 0 || c.Tokens[mpApp].Token != 0 || c.AppTokenRejections != 0 {
		t.Errorf("after reset: %+v", c)
	}
	// Reset leaves tokens alone.
	expectMP(t, h.get("/cgi-bin/menu/get", tq(tok)), 46003)
}

func TestControlClock(t *testing.T) {
	h := start(t)
	var st ClockState
	decode := func(a answer) {
		t.Helper()
		if a.status != 200 {
			t.Fatalf("%d %s", a.status, a.body)
		}
		if err := json.Unmarshal(a.body, &st); err != nil {
			t.Fatal(err)
		}
	}
	decode(h.control("GET", "/clock", ""))
	if !st.Now.Equal(testStart) || !st.Frozen || st.Day != "2025-03-01" || st.Unix != testStart.Unix() {
		t.Fatalf("clock %+v", st)
	}
	if !strings.Contains(string(h.control("GET", "/clock", "").body), "+08:00") {
		t.Error("clock not shown in UTC+8")
	}
	decode(h.control("POST", "/clock/advance", `{"by":"2h"}`))
	if !st.Now.Equal(testStart.Add(2 * time.Hour)) {
		t.Fatalf("after advance %+v", st)
	}
	decode(h.control("POST", "/clock/set", `{"time":"2025-06-01T00:00:00+08:00"}`))
	if st.Day != "2025-06-01" || !st.Frozen {
		t.Fatalf("after set %+v", st)
	}
	decode(h.control("POST", "/clock/set", `{"unix":1800000000}`))
	if st.Unix != 1800000000 {
		t.Fatalf("after set unix %+v", st)
	}
	decode(h.control("POST", "/clock/set", `{"frozen":false}`))
	if st.Frozen || h.sim.Clock().Frozen() {
		t.Fatal("not unfrozen")
	}
	decode(h.control("POST", "/clock/set", `{"frozen":true,"unix":1800000000}`))
	if !st.Frozen || st.Unix != 1800000000 || !h.sim.Clock().Now().Equal(time.Unix(1800000000, 0)) {
		t.Fatalf("freeze and set %+v", st)
	}
	for _, body := range []string{`{"by":"2 hours"}`, `{"by":""}`, `{"by":"1h","extra":1}`, `{"by":`, ``} {
		if a := h.control("POST", "/clock/advance", body); a.status != http.StatusBadRequest || !strings.Contains(string(a.body), `"error"`) {
			t.Errorf("advance %q: %d %s", body, a.status, a.body)
		}
	}
	for _, body := range []string{`{}`, `{"time":"yesterday"}`, `{"time":"2025-01-01T00:00:00Z","unix":1}`} {
		if a := h.control("POST", "/clock/set", body); a.status != http.StatusBadRequest {
			t.Errorf("set %q: %d %s", body, a.status, a.body)
		}
	}
}

func TestControlClockDrivesExpiry(t *testing.T) {
	h := start(t)
	tok := h.mpToken()
	h.control("POST", "/clock/advance", `{"by":"7200s"}`)
	expectMP(t, h.get("/cgi-bin/menu/get", tq(tok)), 42001)
}

func TestControlFaults(t *testing.T) {
	h := start(t)
	tok := h.mpToken()
	a := h.control("POST", "/faults", `{"path":"/cgi-bin/menu/get","errcode":45011,"count":2}`)
	if a.status != 200 {
		t.Fatalf("POST faults: %d %s", a.status, a.body)
	}
	m := a.json(t)
	if num(t, m["id"]) != 1 {
		t.Errorf("answer %s", a.body)
	}
	h.control("POST", "/faults", `{"path":"/cgi-bin/user/info","latency":"1ms","sticky40014":true}`)
	h.control("POST", "/faults", `{"path":"/cgi-bin/token","latency":5,"status":502}`)
	h.control("POST", "/faults", `{"path":"/cgi-bin/user/get","drop":true,"count":1}`)
	h.control("POST", "/faults", `{"path":"/cgi-bin/user/get","garbage":true,"count":1}`)
	list := h.control("GET", "/faults", "")
	var got struct {
		Faults []faultJSON `json:"faults"`
	}
	if err := json.Unmarshal(list.body, &got); err != nil || len(got.Faults) != 5 {
		t.Fatalf("GET faults: %v %s", err, list.body)
	}
	if f := got.Faults[2]; time.Duration(f.Latency) != 5*time.Millisecond || f.Status != 502 || *f.Remaining != -1 {
		t.Errorf("fault 3: %+v", f)
	}
	if !bytes.Contains(list.body, []byte(`"latency": "1ms"`)) {
		t.Errorf("latency not shown as a duration: %s", list.body)
	}
	expectMP(t, h.get("/cgi-bin/menu/get", tq(tok)), 45011)
	expectMP(t, h.get("/cgi-bin/user/info", tq(tok, "openid", "o")), 40014)
	if a := h.get("/cgi-bin/token", q()); a.status != 502 {
		t.Errorf("status fault via control: %d", a.status)
	}

	a = h.do(h.request(http.MethodDelete, "/_sim/faults", q("path", "/cgi-bin/user/info"), "", nil))
	if a.status != 200 || num(t, a.json(t)["cleared"]) != 1 {
		t.Errorf("DELETE one path: %s", a.body)
	}
	a = h.control("DELETE", "/faults", "")
	if num(t, a.json(t)["cleared"]) != 4 {
		t.Errorf("DELETE all: %s", a.body)
	}
	expectMP(t, h.get("/cgi-bin/menu/get", tq(tok)), 46003)

	for _, body := range []string{
		`{"path":"/x"}`,
		`{"path":"x","errcode":1}`,
		`{"path":"/x","errcode":1,"latency":"soon"}`,
		`{"path":"/x","errcode":1,"colour":"red"}`,
		`{"path":"/x","errcode":"1"}`,
		`{"path":"/x","errcode":1,"id":7}`,
		`{"path":"/x","drop":true,"status":500}`,
		`[`,
	} {
		if a := h.control("POST", "/faults", body); a.status != http.StatusBadRequest {
			t.Errorf("POST faults %s: %d %s", body, a.status, a.body)
		}
	}
}

func TestControlInvalidate(t *testing.T) {
	h := start(t)
	tok := h.mpToken()
	a := h.control("POST", "/tokens/invalidate", `{"appid":"`+mpApp+`"}`)
	if a.status != 200 || num(t, a.json(t)["invalidated"]) != 1 {
		t.Fatalf("%d %s", a.status, a.body)
	}
	expectMP(t, h.get("/cgi-bin/menu/get", tq(tok)), 40001)
	if a := h.control("POST", "/tokens/invalidate", `{"appid":"wxnobody"}`); a.status != http.StatusNotFound {
		t.Errorf("unknown appid: %d", a.status)
	}
	if a := h.control("POST", "/tokens/invalidate", `{}`); a.status != http.StatusBadRequest {
		t.Errorf("no appid: %d", a.status)
	}
	// A label names one WeCom app.
	w1, _ := h.wecomToken(appSecret1)
	w2, _ := h.wecomToken(appSecret2)
	h.control("POST", "/tokens/invalidate", `{"appid":"`+corpID+`/1000002"}`)
	expectWeCom(t, h.get("/cgi-bin/user/get", tq(w1, "userid", "u")), 40014)
	expectWeCom(t, h.get("/cgi-bin/user/get", tq(w2, "userid", "u")), 0)
}

func TestControlUnknownPathsAndMethods(t *testing.T) {
	h := start(t)
	for _, p := range []string{"", "/", "/nope", "/counters/", "/clock/advance/x"} {
		a := h.control("GET", p, "")
		if a.status != http.StatusNotFound || a.json(t)["error"] == nil {
			t.Errorf("%q: %d %s", p, a.status, a.body)
		}
	}
	a := h.control("POST", "/counters", "")
	if a.status != http.StatusMethodNotAllowed || a.header.Get("Allow") != "GET" {
		t.Errorf("POST counters: %d %v", a.status, a.header)
	}
	if a := h.control("GET", "/clock/advance", ""); a.status != http.StatusMethodNotAllowed {
		t.Errorf("GET clock/advance: %d", a.status)
	}
	if a := h.control("PUT", "/faults", ""); a.status != http.StatusMethodNotAllowed {
		t.Errorf("PUT faults: %d", a.status)
	}
	big := `{"by":"` + strings.Repeat("1", controlMaxBody) + `"}`
	if a := h.control("POST", "/clock/advance", big); a.status != http.StatusRequestEntityTooLarge {
		t.Errorf("huge body: %d", a.status)
	}
}

func TestControlPrefixIsConfigurable(t *testing.T) {
	cfg := testConfig()
	cfg.ControlPrefix = "/__control"
	h := newHarness(t, cfg)
	if a := h.get("/__control/clock", nil); a.status != 200 {
		t.Fatalf("custom prefix: %d", a.status)
	}
	if a := h.get("/_sim/clock", nil); a.status != http.StatusNotFound || !bytes.Contains(a.body, []byte("404 Not Found")) {
		t.Fatalf("old prefix should be an unknown WeChat path: %d %s", a.status, a.body)
	}
	if h.sim.ControlPrefix() != "/__control" {
		t.Error(h.sim.ControlPrefix())
	}
}

func TestControlRawMedia(t *testing.T) {
	h := start(t)
	if a := h.control("GET", "/media/nope", ""); a.status != http.StatusNotFound {
		t.Errorf("unknown media: %d", a.status)
	}
	a := h.control("GET", "/media/large", "")
	if int64(len(a.body)) != testConfig().LargeMediaSize {
		t.Errorf("large media: %d bytes", len(a.body))
	}
}
