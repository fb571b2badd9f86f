package simulator

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"
)

func mustInject(t testing.TB, sim *Simulator, f Fault) int {
	t.Helper()
	id, err := sim.InjectFault(f)
	if err != nil {
		t.Fatalf("InjectFault(%+v): %v", f, err)
	}
	return id
}

func TestFaultErrcodes(t *testing.T) {
	h := start(t)
	tok := h.mpToken()
	w, _ := h.wecomToken(appSecret1)
	for _, code := range []int{-1, 45009, 45011, 45033, 40164, 61004, 60020, 89503, 40125, 40013, 99999} {
		mustInject(t, h.sim, Fault{Path: "/cgi-bin/menu/get", Errcode: code, Count: 1})
		expectMP(t, h.get("/cgi-bin/menu/get", tq(tok)), code)
		mustInject(t, h.sim, Fault{Path: "/cgi-bin/user/get", Errcode: code, Count: 1})
		expectWeCom(t, h.get("/cgi-bin/user/get", tq(w, "userid", "u1")), code)
	}
	a := h.get("/cgi-bin/menu/get", tq(tok))
	expectMP(t, a, 46003) // faults used up: the normal answer
	c := h.sim.Counters().Paths["/cgi-bin/menu/get"]
	if c.Faults != 11 || c.Rejected[45011] != 1 || c.Rejected[-1] != 1 {
		t.Errorf("counters %+v", c)
	}
}

func TestFaultOnTokenEndpoints(t *testing.T) {
	h := start(t)
	for _, code := range []int{40125, 40013, 40164, 61004, 89503, -1} {
		mustInject(t, h.sim, Fault{Path: "/cgi-bin/token", Errcode: code, Count: 1})
		expectMP(t, h.get("/cgi-bin/token", q("grant_type", "client_credential", "appid", mpApp, "secret", mpSecret)), code)
		mustInject(t, h.sim, Fault{Path: "/cgi-bin/stable_token", Errcode: code, Count: 1})
		expectMP(t, h.post("/cgi-bin/stable_token", nil, `{"grant_type":"client_credential","appid":"`+mpApp+`","secret":"`+mpSecret+`"}`), code)
		mustInject(t, h.sim, Fault{Path: "/cgi-bin/gettoken", Errcode: code, Count: 1})
		expectWeCom(t, h.qyGet("/cgi-bin/gettoken", q("corpid", corpID, "corpsecret", appSecret1)), code)
	}
	c := h.sim.Counters().Tokens
	if c[mpApp].Token != 0 || c[mpApp].StableToken != 0 || c[corpID+"/1000002"].GetToken != 0 {
		t.Errorf("faulted token calls issued tokens: %+v", c)
	}
	if quota := h.sim.current.Load().byAppID[mpApp].tokenDay.get(dayNumber(testStart)); quota != 0 {
		t.Errorf("faulted calls used %d of the quota", quota)
	}
}

func TestFaultCountAndQueue(t *testing.T) {
	h := start(t)
	tok := h.mpToken()
	mustInject(t, h.sim, Fault{Path: "/cgi-bin/menu/get", Errcode: 45011, Count: 2})
	mustInject(t, h.sim, Fault{Path: "/cgi-bin/menu/get", Errcode: -1, Count: 1, Errmsg: "custom text"})
	expectMP(t, h.get("/cgi-bin/menu/get", tq(tok)), 45011)
	expectMP(t, h.get("/cgi-bin/menu/get", tq(tok)), 45011)
	a := h.get("/cgi-bin/menu/get", tq(tok))
	expectMP(t, a, -1)
	if msg := a.json(t)["errmsg"].(string); !strings.HasPrefix(msg, "custom text rid: ") {
		t.Errorf("errmsg %q", msg)
	}
	expectMP(t, h.get("/cgi-bin/menu/get", tq(tok)), 46003)
	if len(h.sim.Faults()) != 0 {
		t.Errorf("used faults remain: %+v", h.sim.Faults())
	}
}

func TestFaultUntilClearedAndWildcard(t *testing.T) {
	h := start(t)
	tok := h.mpToken()
	mustInject(t, h.sim, Fault{Path: "*", Errcode: 45033})
	mustInject(t, h.sim, Fault{Path: "/cgi-bin/user/info", Errcode: 45011})
	for range 5 {
		expectMP(t, h.get("/cgi-bin/menu/get", tq(tok)), 45033)
		expectMP(t, h.get("/cgi-bin/user/info", tq(tok, "openid", "o")), 45011)
	}
	expectWeCom(t, h.qyGet("/cgi-bin/gettoken", q("corpid", corpID, "corpsecret", appSecret1)), 45033)
	// The control API is never faulted.
	if a := h.control("GET", "/clock", ""); a.status != 200 {
		t.Fatalf("control API faulted: %d", a.status)
	}
	list := h.sim.Faults()
	if len(list) != 2 || list[0].Used != 6 || list[0].Remaining != -1 {
		t.Errorf("faults %+v", list)
	}
	if n := h.sim.ClearFaults("/cgi-bin/user/info"); n != 1 {
		t.Errorf("ClearFaults(path) = %d", n)
	}
	expectMP(t, h.get("/cgi-bin/user/info", tq(tok, "openid", "o")), 45033)
	if n := h.sim.ClearFaults(""); n != 1 {
		t.Errorf("ClearFaults all = %d", n)
	}
	expectCode(t, h.get("/cgi-bin/user/info", tq(tok, "openid", "o")), 0)
}

func TestFaultSticky40014(t *testing.T) {
	h := start(t)
	w, _ := h.wecomToken(appSecret1)
	mp := h.mpToken()
	mustInject(t, h.sim, Fault{Path: "/cgi-bin/user/get", Sticky40014: true, Count: 3})
	expectWeCom(t, h.get("/cgi-bin/user/get", tq(w, "userid", "u")), 40014)
	// A refresh does not help.
	h.sim.InvalidateTokens(corpID)
	fresh, _ := h.wecomToken(appSecret1)
	expectWeCom(t, h.get("/cgi-bin/user/get", tq(fresh, "userid", "u")), 40014)
	expectWeCom(t, h.get("/cgi-bin/user/get", q("userid", "u")), 40014)
	expectWeCom(t, h.get("/cgi-bin/user/get", tq(fresh, "userid", "u")), 0)
	last := h.sim.Counters().Paths["/cgi-bin/user/get"]
	if last.Rejected[40014] != 3 || last.AppTokenRejections != 0 || last.Faults != 3 {
		t.Errorf("counters %+v", last)
	}

	// Until cleared, on an MP path: 40014 in MP style.
	mustInject(t, h.sim, Fault{Path: "/cgi-bin/menu/get", Sticky40014: true})
	for range 4 {
		a := h.get("/cgi-bin/menu/get", tq(mp))
		expectMP(t, a, 40014)
	}
	rec := h.sim.Counters().Paths["/cgi-bin/menu/get"].Last
	if !rec.TokenValid || !rec.Fault || rec.Account != mpApp {
		t.Errorf("the record of a faulted call should tell the token was valid: %+v", rec)
	}
	h.sim.ClearFaults("")
	expectMP(t, h.get("/cgi-bin/menu/get", tq(mp)), 46003)
}

func TestFaultLatency(t *testing.T) {
	h := start(t)
	tok := h.mpToken()
	mustInject(t, h.sim, Fault{Path: "/cgi-bin/user/info", Latency: 40 * time.Millisecond, Count: 1})
	began := time.Now()
	a := h.get("/cgi-bin/user/info", tq(tok, "openid", "o"))
	if took := time.Since(began); took < 40*time.Millisecond {
		t.Errorf("answered after %v, want at least 40ms", took)
	}
	expectCode(t, a, 0) // latency alone keeps the normal answer
	if c := h.sim.Counters().Paths["/cgi-bin/user/info"]; c.Faults != 0 || c.OK != 1 {
		t.Errorf("counters %+v", c)
	}

	// Latency with an errcode: the errcode after the wait.
	mustInject(t, h.sim, Fault{Path: "/cgi-bin/user/info", Latency: time.Millisecond, Errcode: -1, Count: 1})
	expectMP(t, h.get("/cgi-bin/user/info", tq(tok, "openid", "o")), -1)
}

func TestFaultLatencyStopsWhenTheClientLeaves(t *testing.T) {
	h := start(t)
	mustInject(t, h.sim, Fault{Path: "/cgi-bin/menu/get", Latency: time.Hour})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	req := h.request(http.MethodGet, "/cgi-bin/menu/get", tq("x"), "", nil).WithContext(ctx)
	began := time.Now()
	_, err := h.srv.Client().Do(req)
	if err == nil {
		t.Fatal("the request succeeded")
	}
	// The handler must return promptly: the server closes cleanly.
	h.srv.Close()
	if took := time.Since(began); took > 10*time.Second {
		t.Fatalf("handler kept waiting %v", took)
	}
	if last := h.sim.Counters().Paths["/cgi-bin/menu/get"].Last; last == nil || !last.Dropped {
		t.Errorf("record %+v", last)
	}
}

func TestFaultDrop(t *testing.T) {
	h := start(t)
	mustInject(t, h.sim, Fault{Path: "/cgi-bin/token", Drop: true, Count: 1})
	resp, err := h.srv.Client().Get(h.srv.URL + "/cgi-bin/token?grant_type=client_credential&appid=" + mpApp + "&secret=" + mpSecret)
	if err == nil {
		resp.Body.Close()
		t.Fatal("dropped connection answered")
	}
	if strings.Contains(err.Error(), mpSecret) {
		// net/http puts the URL in its error; the simulator's own
		// counters must not.
		t.Log("note: the client error contains the URL")
	}
	c := h.sim.Counters().Paths["/cgi-bin/token"]
	if c.Faults != 1 || c.Last.Status != 0 || !c.Last.Dropped {
		t.Errorf("counters %+v %+v", c, c.Last)
	}
	h.mpToken() // the next call is normal
}

func TestFaultDropWithoutHijackAborts(t *testing.T) {
	sim, _ := New(testConfig())
	mustInject(t, sim, Fault{Path: "/x", Drop: true, Count: 1})
	defer func() {
		if r := recover(); r != http.ErrAbortHandler {
			t.Fatalf("recovered %v, want http.ErrAbortHandler", r)
		}
		if c := sim.Counters().Paths["/x"]; c.Calls != 1 || !c.Last.Dropped {
			t.Errorf("drop not recorded: %+v", c)
		}
	}()
	serve(sim, "GET", "/x", "", nil)
}

func TestFaultGarbageAndStatus(t *testing.T) {
	h := start(t)
	tok := h.mpToken()
	mustInject(t, h.sim, Fault{Path: "/cgi-bin/menu/get", Garbage: true, Count: 1})
	a := h.get("/cgi-bin/menu/get", tq(tok))
	if a.status != 200 || json.Valid(a.body) {
		t.Errorf("garbage: %d %q", a.status, a.body)
	}
	mustInject(t, h.sim, Fault{Path: "/cgi-bin/menu/get", Status: 502, Count: 1})
	a = h.get("/cgi-bin/menu/get", tq(tok))
	if a.status != 502 || !strings.Contains(string(a.body), "502 Bad Gateway") {
		t.Errorf("status fault: %d %q", a.status, a.body)
	}
	mustInject(t, h.sim, Fault{Path: "/cgi-bin/menu/get", Status: 503, Errcode: -1, Count: 1})
	a = h.get("/cgi-bin/menu/get", tq(tok))
	if a.status != 503 || a.errcode(t) != -1 {
		t.Errorf("status+errcode fault: %d %s", a.status, a.body)
	}
	mustInject(t, h.sim, Fault{Path: "/cgi-bin/menu/get", Status: 500, Garbage: true, Count: 1})
	if a = h.get("/cgi-bin/menu/get", tq(tok)); a.status != 500 || json.Valid(a.body) {
		t.Errorf("status+garbage fault: %d", a.status)
	}
	c := h.sim.Counters().Paths["/cgi-bin/menu/get"]
	if c.Faults != 4 || c.HTTPErrors != 3 {
		t.Errorf("counters %+v", c)
	}
}

func TestFaultValidation(t *testing.T) {
	sim, _ := New(Config{})
	bad := []Fault{
		{Path: "cgi-bin/token", Errcode: -1},
		{Path: "/x"},
		{Path: "/x", Errcode: -1, Count: -1},
		{Path: "/x", Latency: -time.Second},
		{Path: "/x", Status: 200},
		{Path: "/x", Status: 600},
		{Path: "/x", Drop: true, Errcode: -1},
		{Path: "/x", Garbage: true, Errcode: -1},
		{Path: "/x", Sticky40014: true, Errcode: 40001},
		{Path: "/x", Errcode: -1, Errmsg: strings.Repeat("x", 2000)},
	}
	for _, f := range bad {
		if _, err := sim.InjectFault(f); err == nil || !strings.Contains(err.Error(), "Fault") {
			t.Errorf("InjectFault(%+v) = %v", f, err)
		}
	}
	if len(sim.Faults()) != 0 {
		t.Error("invalid faults were installed")
	}
}
