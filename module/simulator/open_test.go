package simulator

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/silenceper/wechat/v2/util"

	"github.com/wxgate/caddy-wechat/module/internal/msgcrypt"
)

// Test platform and authorizers.
const (
	compApp     = "wxcomponent0000001"
	compSecret  = "component-secret-0123456789abcdef"
	compToken   = "simToken2025"
	compKey     = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
	compApp2    = "wxcomponent0000002"
	authHidden  = "wxauthorizer000002" // an authorizer that is not an Account
	authPreset  = "wxauthorizer000003" // starts authorised
	presetToken = "refreshtoken@@@preset-0123456789"
)

// callback is a component's authorization event URL: it checks every push
// like a platform must (signatures, decryption with msgcrypt and with
// silenceper/wechat) and records the events.
type callback struct {
	t      testing.TB
	srv    *httptest.Server
	codec  msgcrypt.Codec
	mu     sync.Mutex
	events []msgcrypt.ComponentEvent
	status int
	answer string
	pushed chan struct{} // signalled after every push
}

func newCallback(t testing.TB, appid, token, key string) *callback {
	cb := &callback{t: t, codec: msgcrypt.Codec{Token: token, EncodingAESKey: key, AppID: appid}, status: 200, answer: "success", pushed: make(chan struct{}, 1000)}
	cb.srv = httptest.NewServer(http.HandlerFunc(cb.serve))
	t.Cleanup(cb.srv.Close)
	return cb
}

func (cb *callback) serve(w http.ResponseWriter, r *http.Request) {
	t := cb.t
	q := r.URL.Query()
	ts, nonce := q.Get("timestamp"), q.Get("nonce")
	switch {
	case r.Method != http.MethodPost:
		t.Errorf("push with %s", r.Method)
	case q.Get("encrypt_type") != "aes":
		t.Errorf("encrypt_type %q", q.Get("encrypt_type"))
	case q.Get("signature") != msgcrypt.SignatureOf(cb.codec.Token, ts, nonce):
		t.Errorf("bad signature in %s", r.URL.RawQuery)
	case q.Get("keep") != "1":
		t.Errorf("the callback URL's own query was dropped: %s", r.URL.RawQuery)
	case !strings.HasPrefix(r.Header.Get("Content-Type"), "text/xml"):
		t.Errorf("Content-Type %q", r.Header.Get("Content-Type"))
	}
	body, _ := io.ReadAll(r.Body)
	msg, env, err := cb.codec.Open(body, q.Get("msg_signature"), ts, nonce)
	if err != nil {
		t.Errorf("cannot open the push: %v\n%s", err, body)
		w.WriteHeader(400)
		return
	}
	if env.AppID != cb.codec.AppID {
		t.Errorf("envelope AppId %q", env.AppID)
	}
	// An independent implementation agrees.
	if _, plain, err := util.DecryptMsg(cb.codec.AppID, env.Encrypt, cb.codec.EncodingAESKey); err != nil || !bytes.Equal(plain, msg) {
		t.Errorf("silenceper/wechat cannot decrypt the push: %v", err)
	}
	ev, err := msgcrypt.ParseComponentEvent(msg)
	if err != nil {
		t.Errorf("event %q: %v", msg, err)
	}
	if strconv.FormatInt(ev.CreateTime, 10) != ts {
		t.Errorf("CreateTime %d, timestamp %s", ev.CreateTime, ts)
	}
	cb.mu.Lock()
	cb.events = append(cb.events, ev)
	status, answer := cb.status, cb.answer
	cb.mu.Unlock()
	w.WriteHeader(status)
	io.WriteString(w, answer)
	select {
	case cb.pushed <- struct{}{}:
	default:
	}
}

// take returns the events received since the last take.
func (cb *callback) take() []msgcrypt.ComponentEvent {
	cb.mu.Lock()
	defer cb.mu.Unlock()
	ev := cb.events
	cb.events = nil
	return ev
}

func (cb *callback) setAnswer(status int, answer string) {
	cb.mu.Lock()
	cb.status, cb.answer = status, answer
	cb.mu.Unlock()
}

// takeOne returns the only event received since the last take, which must
// be of type info.
func (cb *callback) takeOne(info string) msgcrypt.ComponentEvent {
	cb.t.Helper()
	ev := cb.take()
	if len(ev) != 1 || ev[0].InfoType != info {
		cb.t.Fatalf("events %+v, want one %s", ev, info)
	}
	return ev[0]
}

func (cb *callback) url() string { return cb.srv.URL + "/wechat/component?keep=1" }

// openHarness is a harness with a component, its callback and authorizers:
// mpApp (also an Account), authHidden, and authPreset (authorised with
// presetToken).
type openHarness struct {
	*harness
	cb *callback
}

func openConfig(callbackURL string) Config {
	cfg := testConfig()
	cfg.Components = []Component{{AppID: compApp, Secret: compSecret, Token: compToken, EncodingAESKey: compKey, CallbackURL: callbackURL}}
	cfg.Authorizers = []Authorizer{
		{ComponentAppID: compApp, AppID: mpApp},
		{ComponentAppID: compApp, AppID: authHidden},
		{ComponentAppID: compApp, AppID: authPreset, RefreshToken: presetToken},
	}
	return cfg
}

func startOpen(t testing.TB) *openHarness {
	cb := newCallback(t, compApp, compToken, compKey)
	return &openHarness{harness: newHarness(t, openConfig(cb.url())), cb: cb}
}

// ticket pushes a ticket now and returns it.
func (h *openHarness) ticket() string {
	h.t.Helper()
	res, err := h.sim.PushComponentTicket(compApp)
	if err != nil || len(res) != 1 || !res[0].Delivered {
		h.t.Fatalf("PushComponentTicket: %+v %v", res, err)
	}
	ev := h.cb.takeOne(msgcrypt.InfoTypeVerifyTicket)
	if ev.ComponentVerifyTicket != res[0].Ticket {
		h.t.Fatalf("pushed %q, returned %q", ev.ComponentVerifyTicket, res[0].Ticket)
	}
	return ev.ComponentVerifyTicket
}

func componentTokenBody(appid, secret, ticket string) string {
	b, _ := json.Marshal(map[string]string{"component_appid": appid, "component_appsecret": secret, "component_verify_ticket": ticket})
	return string(b)
}

// componentToken fetches a component_access_token with ticket.
func (h *openHarness) componentToken(ticket string) string {
	h.t.Helper()
	a := h.post("/cgi-bin/component/api_component_token", nil, componentTokenBody(compApp, compSecret, ticket))
	expectCode(h.t, a, 0)
	m := a.json(h.t)
	tok, _ := m["component_access_token"].(string)
	if tok == "" || num(h.t, m["expires_in"]) != 7200 || len(m) != 2 {
		h.t.Fatalf("api_component_token: %s", a.body)
	}
	return tok
}

func cq(token string) url.Values { return q("component_access_token", token) }

// authorize authorises appid through the control API and returns the
// authorization code, checking the pushed event.
func (h *openHarness) authorize(appid, preAuth string) string {
	h.t.Helper()
	body, _ := json.Marshal(map[string]string{"authorizer_appid": appid, "pre_auth_code": preAuth})
	a := h.control("POST", "/component/authorize", string(body))
	if a.status != 200 {
		h.t.Fatalf("authorize: %d %s", a.status, a.body)
	}
	var res AuthorizeResult
	if err := json.Unmarshal(a.body, &res); err != nil {
		h.t.Fatal(err)
	}
	if !res.Push.Delivered || res.ExpiresIn != 3600 || !strings.HasPrefix(res.AuthorizationCode, "queryauthcode@@@") {
		h.t.Fatalf("authorize: %s", a.body)
	}
	ev := h.cb.take()
	if len(ev) != 1 || ev[0].AuthorizationCode != res.AuthorizationCode || ev[0].AuthorizerAppID != appid || ev[0].AppID != compApp {
		h.t.Fatalf("events %+v after authorize %+v", ev, res)
	}
	if preAuth != "" && ev[0].PreAuthCode != preAuth {
		h.t.Fatalf("PreAuthCode %q, want %q", ev[0].PreAuthCode, preAuth)
	}
	if ev[0].AuthorizationCodeExpiredTime != ev[0].CreateTime+3600 || ev[0].CreateTime != h.sim.Clock().Now().Unix() {
		h.t.Fatalf("event times %+v", ev[0])
	}
	return res.AuthorizationCode
}

// queryAuth exchanges an authorization code and returns the access and
// refresh tokens.
func (h *openHarness) queryAuth(ctoken, code, wantApp string) (access, refresh string) {
	h.t.Helper()
	a := h.post("/cgi-bin/component/api_query_auth", cq(ctoken), `{"component_appid":"`+compApp+`","authorization_code":"`+code+`"}`)
	expectCode(h.t, a, 0)
	var ans struct {
		Info struct {
			AppID    string `json:"authorizer_appid"`
			Access   string `json:"authorizer_access_token"`
			Expires  int    `json:"expires_in"`
			Refresh  string `json:"authorizer_refresh_token"`
			FuncInfo []struct {
				Cat struct {
					ID int `json:"id"`
				} `json:"funcscope_category"`
			} `json:"func_info"`
		} `json:"authorization_info"`
	}
	if err := json.Unmarshal(a.body, &ans); err != nil {
		h.t.Fatal(err)
	}
	in := ans.Info
	if in.AppID != wantApp || in.Access == "" || in.Expires != 7200 || !strings.HasPrefix(in.Refresh, "refreshtoken@@@") || len(in.FuncInfo) == 0 || in.FuncInfo[0].Cat.ID == 0 {
		h.t.Fatalf("api_query_auth: %s", a.body)
	}
	return in.Access, in.Refresh
}

func authorizerTokenBody(appid, refresh string) string {
	b, _ := json.Marshal(map[string]string{"component_appid": compApp, "authorizer_appid": appid, "authorizer_refresh_token": refresh})
	return string(b)
}

// authorizerToken refreshes an authorizer's tokens.
func (h *openHarness) authorizerToken(ctoken, appid, refresh string) (access, next string) {
	h.t.Helper()
	a := h.post("/cgi-bin/component/api_authorizer_token", cq(ctoken), authorizerTokenBody(appid, refresh))
	expectCode(h.t, a, 0)
	m := a.json(h.t)
	access, _ = m["authorizer_access_token"].(string)
	next, _ = m["authorizer_refresh_token"].(string)
	if access == "" || next == "" || next == refresh || num(h.t, m["expires_in"]) != 7200 || len(m) != 3 {
		h.t.Fatalf("api_authorizer_token: %s", a.body)
	}
	return access, next
}

func TestComponentTicketPushesFollowTheClock(t *testing.T) {
	h := startOpen(t)
	if ev := h.cb.take(); len(ev) != 0 {
		t.Fatalf("a frozen clock pushed before moving: %+v", ev)
	}
	h.get("/cgi-bin/menu/get", nil) // requests do not push
	h.advance(time.Second)          // the first push is due at start
	first := h.cb.takeOne(msgcrypt.InfoTypeVerifyTicket)
	if first.AppID != compApp || !strings.HasPrefix(first.ComponentVerifyTicket, "ticket@@@") || first.CreateTime != testStart.Unix()+1 {
		t.Fatalf("first push %+v", first)
	}
	h.advance(10*time.Minute - time.Nanosecond)
	if ev := h.cb.take(); len(ev) != 0 {
		t.Fatalf("pushed before 10 minutes: %+v", ev)
	}
	h.advance(time.Nanosecond)
	second := h.cb.takeOne(msgcrypt.InfoTypeVerifyTicket)
	if second.ComponentVerifyTicket == first.ComponentVerifyTicket {
		t.Fatal("the same ticket twice")
	}
	h.advance(5 * time.Hour) // one push however long the move
	h.cb.takeOne(msgcrypt.InfoTypeVerifyTicket)
	// The control API moves the clock too.
	if a := h.control("POST", "/clock/advance", `{"by":"10m"}`); a.status != 200 {
		t.Fatal(a.status)
	}
	h.cb.takeOne(msgcrypt.InfoTypeVerifyTicket)
	if n := h.sim.Counters().Components[compApp]; n.TicketPushes != 4 || n.TicketPushFailures != 0 {
		t.Fatalf("counters %+v", n)
	}
}

func TestComponentTicketOnDemandOnly(t *testing.T) {
	cb := newCallback(t, compApp, compToken, compKey)
	cfg := openConfig(cb.url())
	cfg.ComponentTicketInterval = -1
	h := &openHarness{harness: newHarness(t, cfg), cb: cb}
	h.advance(24 * time.Hour)
	if ev := cb.take(); len(ev) != 0 {
		t.Fatalf("pushed with the interval off: %+v", ev)
	}
	h.componentToken(h.ticket())
}

func TestComponentTicketPushFailuresAreRetried(t *testing.T) {
	h := startOpen(t)
	h.cb.setAnswer(200, "fail")
	res, err := h.sim.PushComponentTicket("")
	if err != nil || len(res) != 1 || res[0].Delivered || res[0].Status != 200 || !strings.Contains(res[0].Error, `"fail"`) {
		t.Fatalf("%+v %v", res, err)
	}
	undelivered := h.cb.takeOne(msgcrypt.InfoTypeVerifyTicket).ComponentVerifyTicket
	h.cb.setAnswer(500, "success")
	h.advance(time.Minute) // retried after a minute
	h.cb.takeOne(msgcrypt.InfoTypeVerifyTicket)
	h.cb.setAnswer(200, " success\n")
	h.advance(time.Minute)
	h.cb.takeOne(msgcrypt.InfoTypeVerifyTicket)
	h.advance(time.Minute) // delivered: the next one in 10 minutes
	if ev := h.cb.take(); len(ev) != 0 {
		t.Fatalf("pushed again after a delivery: %+v", ev)
	}
	n := h.sim.Counters().Components[compApp]
	if n.TicketPushes != 1 || n.TicketPushFailures != 2 {
		t.Fatalf("counters %+v", n)
	}
	// An undelivered ticket is still valid.
	h.componentToken(undelivered)

	// No callback at all.
	cfg := openConfig("")
	h2 := newHarness(t, cfg)
	res, err = h2.sim.PushComponentTicket(compApp)
	if err != nil || res[0].Delivered || res[0].Error == "" || res[0].Ticket == "" {
		t.Fatalf("%+v %v", res, err)
	}
	// An unreachable one.
	dead := httptest.NewServer(http.NotFoundHandler())
	dead.Close()
	cfg = openConfig(dead.URL)
	h3 := newHarness(t, cfg)
	if res, _ := h3.sim.PushComponentTicket(""); res[0].Delivered || res[0].Status != 0 || res[0].Error == "" {
		t.Fatalf("%+v", res)
	}
}

func TestComponentTicketTimerWithRunningClock(t *testing.T) {
	cb := newCallback(t, compApp, compToken, compKey)
	cfg := openConfig(cb.url())
	cfg.Frozen = false
	sim, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	select {
	case <-cb.pushed: // the first push is due at once: the timer fires without any request
	case <-time.After(10 * time.Second):
		t.Fatal("no push from the timer")
	}
	cb.takeOne(msgcrypt.InfoTypeVerifyTicket)
	sim.Close()
	sim.Close() // idempotent
	sim.Clock().Advance(time.Hour)
	if ev := cb.take(); len(ev) != 0 {
		t.Fatalf("pushed after Close: %+v", ev)
	}
	if res, err := sim.PushComponentTicket(""); err != nil || !res[0].Delivered {
		t.Fatalf("PushComponentTicket after Close: %+v %v", res, err)
	}
}

func TestComponentToken(t *testing.T) {
	h := startOpen(t)
	a := h.post("/cgi-bin/component/api_component_token", nil, componentTokenBody(compApp, compSecret, "ticket@@@none"))
	expectMP(t, a, 61006)
	if !strings.HasPrefix(a.json(t)["errmsg"].(string), "component ticket is invalid rid: ") {
		t.Errorf("errmsg %s", a.body)
	}
	ticket := h.ticket()
	cases := []struct {
		name string
		body string
		want int
	}{
		{"no appid", componentTokenBody("", compSecret, ticket), 41002},
		{"no secret", componentTokenBody(compApp, "", ticket), 41004},
		{"unknown component", componentTokenBody("wxunknown", compSecret, ticket), 61011},
		{"an account", componentTokenBody(mpApp, mpSecret, ticket), 61011},
		{"wrong secret", componentTokenBody(compApp, mpSecret, ticket), 40125},
		{"no ticket", componentTokenBody(compApp, compSecret, ""), 61006},
		{"unknown ticket", componentTokenBody(compApp, compSecret, ticket+"x"), 61006},
		{"bad JSON", `{"component_appid":`, 47001},
		{"empty", ``, 44002},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a := h.post("/cgi-bin/component/api_component_token", nil, c.body)
			expectMP(t, a, c.want)
			if strings.Contains(string(a.body), compSecret) || strings.Contains(string(a.body), ticket) {
				t.Fatal("the answer echoes a secret or the ticket")
			}
		})
	}
	expectMP(t, h.get("/cgi-bin/component/api_component_token", nil), 43002)

	t1 := h.componentToken(ticket)
	// The ticket lives 12 hours. The pushes of the moves bring new ones.
	h.advance(12*time.Hour - time.Nanosecond)
	fresh := h.cb.takeOne(msgcrypt.InfoTypeVerifyTicket)
	h.componentToken(ticket)
	h.advance(time.Nanosecond)
	expectMP(t, h.post("/cgi-bin/component/api_component_token", nil, componentTokenBody(compApp, compSecret, ticket)), 61005)
	h.componentToken(fresh.ComponentVerifyTicket)
	// t1 expired long ago (its successor came after its expiry).
	expectMP(t, h.post("/cgi-bin/component/api_create_preauthcode", cq(t1), `{"component_appid":"`+compApp+`"}`), 42001)
	c := h.sim.Counters()
	if c.Components[compApp].ComponentToken != 3 {
		t.Errorf("component tokens %d, want 3", c.Components[compApp].ComponentToken)
	}
	last := c.Paths["/cgi-bin/component/api_component_token"].Last
	if last == nil || !last.BodyRedacted || last.Account != compApp {
		t.Errorf("last record %+v", last)
	}
}

func TestComponentTokenRotationAndExpiry(t *testing.T) {
	h := startOpen(t)
	ticket := h.ticket()
	preauth := func(tok string) answer {
		return h.post("/cgi-bin/component/api_create_preauthcode", cq(tok), `{"component_appid":"`+compApp+`"}`)
	}
	t1 := h.componentToken(ticket)
	expectCode(t, preauth(t1), 0)
	t2 := h.componentToken(ticket)
	if t1 == t2 {
		t.Fatal("the same component token twice")
	}
	h.advance(5*time.Minute - time.Nanosecond)
	expectCode(t, preauth(t1), 0)
	h.advance(time.Nanosecond)
	expectMP(t, preauth(t1), 40001)
	expectCode(t, preauth(t2), 0)
	h.advance(2 * time.Hour)
	expectMP(t, preauth(t2), 42001)
	h.cb.take()

	cfg := openConfig(h.cb.url())
	cfg.Overlap = -1
	h2 := &openHarness{harness: newHarness(t, cfg), cb: h.cb}
	ticket = h2.ticket()
	t1 = h2.componentToken(ticket)
	h2.componentToken(ticket)
	expectMP(t, h2.post("/cgi-bin/component/api_create_preauthcode", cq(t1), `{"component_appid":"`+compApp+`"}`), 40001)
}

func TestComponentTokenIsolation(t *testing.T) {
	h := startOpen(t)
	ctok := h.componentToken(h.ticket())
	mp := h.mpToken()
	// A component token is not an access token, and the other way round.
	expectMP(t, h.get("/cgi-bin/user/info", tq(ctok, "openid", "o1")), 40001)
	expectWeCom(t, h.qyGet("/cgi-bin/user/get", tq(ctok, "userid", "u1")), 40014)
	body := `{"component_appid":"` + compApp + `"}`
	expectMP(t, h.post("/cgi-bin/component/api_create_preauthcode", cq(mp), body), 40001)
	expectMP(t, h.post("/cgi-bin/component/api_create_preauthcode", tq(ctok), body), 41001)
	expectMP(t, h.post("/cgi-bin/component/api_create_preauthcode", nil, body), 41001)
	// The platform's appid cannot use the account token endpoints.
	expectMP(t, h.get("/cgi-bin/token", q("grant_type", "client_credential", "appid", compApp, "secret", compSecret)), 61024)
	expectMP(t, h.post("/cgi-bin/stable_token", nil, `{"grant_type":"client_credential","appid":"`+compApp+`","secret":"`+compSecret+`"}`), 61024)
	// The body names the token's component.
	expectMP(t, h.post("/cgi-bin/component/api_create_preauthcode", cq(ctok), `{"component_appid":"wxother"}`), 61011)
	expectMP(t, h.post("/cgi-bin/component/api_create_preauthcode", cq(ctok), `{}`), 41002)
	c := h.sim.Counters()
	if c.ComponentTokenRejections != 3 {
		t.Errorf("component token rejections %d, want 3", c.ComponentTokenRejections)
	}
	if c.AppTokenRejections != 2 {
		t.Errorf("app token rejections %d, want 2", c.AppTokenRejections)
	}
	// The errors of a component's calls are not readable by an account.
	a := h.post("/cgi-bin/component/api_create_preauthcode", cq(ctok), `{"component_appid":"wxother"}`)
	msg := a.json(t)["errmsg"].(string)
	rid := msg[strings.LastIndex(msg, " ")+1:]
	expectMP(t, h.post("/cgi-bin/openapi/rid/get", tq(mp), `{"rid":"`+rid+`"}`), 76003)
}

func TestComponentIPFault(t *testing.T) {
	h := startOpen(t)
	ticket := h.ticket()
	if _, err := h.sim.InjectFault(Fault{Path: "/cgi-bin/component/api_component_token", Errcode: 61004, Count: 1}); err != nil {
		t.Fatal(err)
	}
	a := h.post("/cgi-bin/component/api_component_token", nil, componentTokenBody(compApp, compSecret, ticket))
	expectMP(t, a, 61004)
	h.componentToken(ticket)
	if _, err := h.sim.InjectFault(Fault{Path: "/cgi-bin/component/api_authorizer_token", Errcode: 61023, Count: 1}); err != nil {
		t.Fatal(err)
	}
	a = h.post("/cgi-bin/component/api_authorizer_token", nil, authorizerTokenBody(authPreset, presetToken))
	expectMP(t, a, 61023)
	if !strings.HasPrefix(a.json(t)["errmsg"].(string), "refresh_token is invalid") {
		t.Errorf("errmsg %s", a.body)
	}
}

func TestAuthorizationFlow(t *testing.T) {
	h := startOpen(t)
	ctok := h.componentToken(h.ticket())
	a := h.post("/cgi-bin/component/api_create_preauthcode", cq(ctok), `{"component_appid":"`+compApp+`"}`)
	expectCode(t, a, 0)
	m := a.json(t)
	pre, _ := m["pre_auth_code"].(string)
	if !strings.HasPrefix(pre, "preauthcode@@@") || num(t, m["expires_in"]) != 600 {
		t.Fatalf("preauthcode: %s", a.body)
	}
	code := h.authorize(authHidden, pre)
	// A pre_auth_code works once.
	if a := h.control("POST", "/component/authorize", `{"authorizer_appid":"`+authHidden+`","pre_auth_code":"`+pre+`"}`); a.status != 409 {
		t.Fatalf("pre_auth_code reused: %d %s", a.status, a.body)
	}
	if n := h.sim.Counters().Components[compApp].Authorizers[authHidden]; !n.Authorized || n.QueryAuth != 0 {
		t.Fatalf("counters after authorize: %+v", n)
	}
	access, refresh := h.queryAuth(ctok, code, authHidden)
	// The code works once.
	body := `{"component_appid":"` + compApp + `","authorization_code":"` + code + `"}`
	expectMP(t, h.post("/cgi-bin/component/api_query_auth", cq(ctok), body), 61009)
	expectMP(t, h.post("/cgi-bin/component/api_query_auth", cq(ctok), `{"component_appid":"`+compApp+`"}`), 41008)

	// The authorizer token is an access token of its appid.
	expectCode(t, h.get("/cgi-bin/user/info", tq(access, "openid", "o1")), 0)
	expectMP(t, h.get("/cgi-bin/menu/get", tq(access)), 46003)
	expectCode(t, h.post("/cgi-bin/menu/create", tq(access), testMenu), 0)
	expectCode(t, h.get("/cgi-bin/menu/get", tq(access)), 0)
	expectWeCom(t, h.qyGet("/cgi-bin/user/get", tq(access, "userid", "u1")), 40014)
	expectCode(t, h.post("/cgi-bin/clear_quota", tq(access), `{"appid":"`+authHidden+`"}`), 0)
	if last := h.sim.Counters().Paths["/cgi-bin/menu/get"].Last; last.Account != authHidden || !last.TokenValid {
		t.Errorf("record %+v", last)
	}
	// It expires like any token.
	h.advance(2 * time.Hour)
	expectMP(t, h.get("/cgi-bin/user/info", tq(access, "openid", "o1")), 42001)

	// An expired code.
	ctok = h.componentToken(h.cb.take()[0].ComponentVerifyTicket)
	code = h.authorize(authHidden, "")
	h.advance(time.Hour)
	h.cb.take()
	expectMP(t, h.post("/cgi-bin/component/api_query_auth", cq(ctok), `{"component_appid":"`+compApp+`","authorization_code":"`+code+`"}`), 61010)
	// The first refresh token still works (no rotation happened).
	h.authorizerToken(ctok, authHidden, refresh)
}

func TestAuthorizerSharesItsAccount(t *testing.T) {
	h := startOpen(t)
	ctok := h.componentToken(h.ticket())
	access, _ := h.queryAuth(ctok, h.authorize(mpApp, ""), mpApp)
	own := h.mpToken()
	expectCode(t, h.post("/cgi-bin/menu/create", tq(own), testMenu), 0)
	got := h.get("/cgi-bin/menu/get", tq(access))
	expectCode(t, got, 0)
	if want := h.get("/cgi-bin/menu/get", tq(own)); !bytes.Equal(got.body, want.body) {
		t.Fatalf("menus differ: %s / %s", got.body, want.body)
	}
	// Each family rotates on its own.
	h.mpToken()
	h.advance(6 * time.Minute)
	h.cb.take()
	expectMP(t, h.get("/cgi-bin/menu/get", tq(own)), 40001)
	expectCode(t, h.get("/cgi-bin/menu/get", tq(access)), 0)
	// An external refresh of the account invalidates its authorizer token
	// too; the account's counters are the Account's.
	if n, err := h.sim.InvalidateTokens(mpApp); err != nil || n != 2 {
		t.Fatalf("InvalidateTokens = %d, %v", n, err)
	}
	expectMP(t, h.get("/cgi-bin/menu/get", tq(access)), 40001)
	if c := h.sim.Counters(); c.Tokens[mpApp].Token != 2 || c.Components[compApp].Authorizers[mpApp].QueryAuth != 1 {
		t.Fatalf("counters %+v", c)
	}
}

func TestAuthorizerRefreshRotation(t *testing.T) {
	h := startOpen(t)
	ctok := h.componentToken(h.ticket())
	a1, r1 := h.authorizerToken(ctok, authPreset, presetToken)
	a2, r2 := h.authorizerToken(ctok, authPreset, r1)
	if a1 == a2 || r1 == r2 {
		t.Fatal("no rotation")
	}
	// The previous refresh token works for the grace period...
	h.advance(4 * time.Minute)
	a3, r3 := h.authorizerToken(ctok, authPreset, r1)
	// ... and the previous access token for the overlap.
	expectCode(t, h.get("/cgi-bin/user/info", tq(a2, "openid", "o1")), 0)
	h.advance(time.Minute)
	h.cb.take()
	expectMP(t, h.get("/cgi-bin/user/info", tq(a1, "openid", "o1")), 40001)
	expectCode(t, h.get("/cgi-bin/user/info", tq(a3, "openid", "o1")), 0)
	// Beyond the grace: 61023. presetToken was superseded twice.
	for _, old := range []string{presetToken, r1} {
		a := h.post("/cgi-bin/component/api_authorizer_token", cq(ctok), authorizerTokenBody(authPreset, old))
		expectMP(t, a, 61023)
	}
	// r2 became the previous token at the third call: still in its grace.
	_, r4 := h.authorizerToken(ctok, authPreset, r2)
	h.advance(5 * time.Minute)
	h.cb.take()
	expectMP(t, h.post("/cgi-bin/component/api_authorizer_token", cq(ctok), authorizerTokenBody(authPreset, r3)), 61023)
	h.authorizerToken(ctok, authPreset, r4)

	cases := []struct {
		name string
		body string
		want int
	}{
		{"no authorizer", authorizerTokenBody("", r4), 41002},
		{"not an authorizer", authorizerTokenBody(mpApp2, r4), 61003},
		{"another authorizer's token", authorizerTokenBody(authHidden, r4), 61023},
		{"no refresh token", authorizerTokenBody(authPreset, ""), 61023},
		{"another component", `{"component_appid":"wxother","authorizer_appid":"` + authPreset + `","authorizer_refresh_token":"x"}`, 61011},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			expectMP(t, h.post("/cgi-bin/component/api_authorizer_token", cq(ctok), c.body), c.want)
		})
	}
	n := h.sim.Counters().Components[compApp].Authorizers[authPreset]
	if n.AuthorizerToken != 5 || n.RefreshRejected != 4 || !n.Authorized {
		t.Fatalf("counters %+v", n)
	}

	cfg := openConfig(h.cb.url())
	cfg.AuthorizerRefreshGrace = -1
	h2 := &openHarness{harness: newHarness(t, cfg), cb: h.cb}
	ctok = h2.componentToken(h2.ticket())
	h2.authorizerToken(ctok, authPreset, presetToken)
	expectMP(t, h2.post("/cgi-bin/component/api_authorizer_token", cq(ctok), authorizerTokenBody(authPreset, presetToken)), 61023)
}

func TestUnauthorize(t *testing.T) {
	h := startOpen(t)
	ctok := h.componentToken(h.ticket())
	access, refresh := h.authorizerToken(ctok, authPreset, presetToken)
	pending := h.authorize(authPreset, "") // updateauthorized: already authorised
	a := h.control("POST", "/component/unauthorize", `{"component_appid":"`+compApp+`","authorizer_appid":"`+authPreset+`"}`)
	if a.status != 200 {
		t.Fatalf("%d %s", a.status, a.body)
	}
	var res UnauthorizeResult
	json.Unmarshal(a.body, &res)
	if res.RevokedTokens != 1 || !res.Push.Delivered || res.Push.InfoType != "unauthorized" {
		t.Fatalf("%s", a.body)
	}
	ev := h.cb.takeOne(msgcrypt.InfoTypeUnauthorized)
	if ev.AuthorizerAppID != authPreset || ev.AuthorizationCode != "" {
		t.Fatalf("%+v", ev)
	}
	expectMP(t, h.get("/cgi-bin/user/info", tq(access, "openid", "o1")), 40001)
	expectMP(t, h.post("/cgi-bin/component/api_authorizer_token", cq(ctok), authorizerTokenBody(authPreset, refresh)), 61023)
	expectMP(t, h.post("/cgi-bin/component/api_query_auth", cq(ctok), `{"component_appid":"`+compApp+`","authorization_code":"`+pending+`"}`), 61009)
	if n := h.sim.Counters().Components[compApp].Authorizers[authPreset]; n.Authorized {
		t.Fatal("still authorised")
	}
	if a := h.control("POST", "/component/unauthorize", `{"authorizer_appid":"`+authPreset+`"}`); a.status != 409 {
		t.Fatalf("unauthorize twice: %d %s", a.status, a.body)
	}
	// Authorising again starts over with a new code and new tokens.
	code := h.authorize(authPreset, "")
	access, refresh = h.queryAuth(ctok, code, authPreset)
	expectCode(t, h.get("/cgi-bin/user/info", tq(access, "openid", "o1")), 0)
	h.authorizerToken(ctok, authPreset, refresh)
	if c := h.sim.Counters().Components[compApp]; c.EventPushes != 3 || c.EventPushFailures != 0 {
		t.Fatalf("event counters %+v", c)
	}
}

func TestUpdateAuthorizedEvent(t *testing.T) {
	h := startOpen(t)
	res, err := h.sim.Authorize("", authPreset, "")
	if err != nil || res.Push.InfoType != msgcrypt.InfoTypeUpdateAuthorized || !strings.HasPrefix(res.PreAuthCode, "preauthcode@@@") {
		t.Fatalf("%+v %v", res, err)
	}
	ev := h.cb.takeOne(msgcrypt.InfoTypeUpdateAuthorized)
	if ev.PreAuthCode != res.PreAuthCode {
		t.Fatalf("%+v", ev)
	}
}

func TestOpenControlAPI(t *testing.T) {
	h := startOpen(t)
	a := h.control("POST", "/component/ticket", "")
	var out struct {
		Pushes []PushResult `json:"pushes"`
	}
	if err := json.Unmarshal(a.body, &out); a.status != 200 || err != nil || len(out.Pushes) != 1 || !out.Pushes[0].Delivered || out.Pushes[0].InfoType != "component_verify_ticket" {
		t.Fatalf("%d %s", a.status, a.body)
	}
	h.componentToken(h.cb.takeOne(msgcrypt.InfoTypeVerifyTicket).ComponentVerifyTicket)
	for _, c := range []struct {
		method, path, body string
		status             int
	}{
		{"POST", "/component/ticket", `{"component_appid":"` + compApp + `"}`, 200},
		{"POST", "/component/ticket", `{"component_appid":"wxnone"}`, 404},
		{"POST", "/component/ticket", `{"appid":"x"}`, 400},
		{"GET", "/component/ticket", "", 405},
		{"POST", "/component/authorize", `{}`, 400},
		{"POST", "/component/authorize", `{"authorizer_appid":"wxnone"}`, 404},
		{"POST", "/component/authorize", `{"component_appid":"wxnone","authorizer_appid":"` + authHidden + `"}`, 404},
		{"POST", "/component/authorize", `{"authorizer_appid":"` + authHidden + `","pre_auth_code":"preauthcode@@@none"}`, 409},
		{"POST", "/component/unauthorize", `{"authorizer_appid":"` + authHidden + `"}`, 409},
		{"POST", "/component/unauthorize", ``, 400},
		{"POST", "/component/unauthorize", `{"component_appid":"` + compApp + `"}`, 400},
		{"POST", "/component/unauthorize", `{"authorizer_appid":"` + authHidden + `","pre_auth_code":"x"}`, 400},
		{"POST", "/component/authorize", `{"authorizer_appid":"` + authHidden + `","refresh_token":"x"}`, 400},
		{"DELETE", "/component/unauthorize", ``, 405},
		{"POST", "/component/other", `{}`, 404},
	} {
		a := h.control(c.method, c.path, c.body)
		if a.status != c.status {
			t.Errorf("%s %s %s: %d %s, want %d", c.method, c.path, c.body, a.status, a.body, c.status)
		}
	}
	// The simulator without components.
	h2 := start(t)
	if a := h2.control("POST", "/component/ticket", ""); a.status != 404 {
		t.Fatalf("%d %s", a.status, a.body)
	}
	if _, err := h2.sim.Authorize("", mpApp, ""); err == nil {
		t.Fatal("Authorize without components")
	}
	if c := h2.sim.Counters(); c.Components != nil {
		t.Fatalf("components %+v", c.Components)
	}
	if b, _ := json.Marshal(h2.sim.Counters()); bytes.Contains(b, []byte("component")) {
		t.Fatalf("counters mention components: %s", b)
	}
}

func TestAuthorizerOfTwoComponents(t *testing.T) {
	cb := newCallback(t, compApp, compToken, compKey)
	cb2 := newCallback(t, compApp2, "otherToken", "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789abcdefg")
	cfg := openConfig(cb.url())
	cfg.Components = append(cfg.Components, Component{AppID: compApp2, Secret: "s2", Token: cb2.codec.Token, EncodingAESKey: cb2.codec.EncodingAESKey, CallbackURL: cb2.url()})
	cfg.Authorizers = append(cfg.Authorizers, Authorizer{ComponentAppID: compApp2, AppID: authHidden, RefreshToken: "r2"})
	h := newHarness(t, cfg)
	if _, err := h.sim.Authorize("", authHidden, ""); err == nil || !strings.Contains(err.Error(), "component_appid") {
		t.Fatalf("ambiguous authorizer: %v", err)
	}
	if _, err := h.sim.Authorize(compApp2, authHidden, ""); err != nil {
		t.Fatal(err)
	}
	cb2.takeOne(msgcrypt.InfoTypeUpdateAuthorized)
	if ev := cb.take(); len(ev) != 0 {
		t.Fatalf("the other component got %+v", ev)
	}
	res, err := h.sim.PushComponentTicket("")
	if err != nil || len(res) != 2 {
		t.Fatalf("%+v %v", res, err)
	}
	cb.takeOne(msgcrypt.InfoTypeVerifyTicket)
	t2 := cb2.takeOne(msgcrypt.InfoTypeVerifyTicket).ComponentVerifyTicket
	// A ticket works for its own component only.
	expectMP(t, h.post("/cgi-bin/component/api_component_token", nil, componentTokenBody(compApp, compSecret, t2)), 61006)
	c := h.sim.Counters()
	if len(c.Components) != 2 || c.Components[compApp2].Authorizers[authHidden].Authorized != true || c.Components[compApp].Authorizers[authHidden].Authorized {
		t.Fatalf("%+v", c.Components)
	}
}

func TestOpenReconfigure(t *testing.T) {
	h := startOpen(t)
	ctok := h.componentToken(h.ticket())
	hiddenAccess, _ := h.queryAuth(ctok, h.authorize(authHidden, ""), authHidden)
	presetAccess, _ := h.authorizerToken(ctok, authPreset, presetToken)

	// Same platform, a changed callback and one authorizer fewer.
	cb2 := newCallback(t, compApp, compToken, compKey)
	cfg := openConfig(cb2.url())
	cfg.Authorizers = cfg.Authorizers[:2] // drops authPreset
	cfg.Authorizers[1].RefreshToken = "refreshtoken@@@seeded"
	if err := h.sim.Reconfigure(cfg); err != nil {
		t.Fatal(err)
	}
	expectCode(t, h.post("/cgi-bin/component/api_create_preauthcode", cq(ctok), `{"component_appid":"`+compApp+`"}`), 0)
	expectCode(t, h.get("/cgi-bin/user/info", tq(hiddenAccess, "openid", "o1")), 0)
	expectMP(t, h.get("/cgi-bin/user/info", tq(presetAccess, "openid", "o1")), 40001)
	h.authorizerToken(ctok, authHidden, "refreshtoken@@@seeded")
	h.sim.PushComponentTicket("")
	cb2.takeOne(msgcrypt.InfoTypeVerifyTicket)
	if ev := h.cb.take(); len(ev) != 0 {
		t.Fatalf("pushed to the old callback: %+v", ev)
	}
	if _, has := h.sim.Counters().Components[compApp].Authorizers[authPreset]; has {
		t.Fatal("removed authorizer still counted")
	}

	// A new secret: a new platform state.
	cfg.Components[0].Secret = "new-secret"
	if err := h.sim.Reconfigure(cfg); err != nil {
		t.Fatal(err)
	}
	expectMP(t, h.post("/cgi-bin/component/api_create_preauthcode", cq(ctok), `{"component_appid":"`+compApp+`"}`), 40001)

	// No platform at all.
	if err := h.sim.Reconfigure(testConfig()); err != nil {
		t.Fatal(err)
	}
	expectMP(t, h.get("/cgi-bin/user/info", tq(hiddenAccess, "openid", "o1")), 40001)
	expectMP(t, h.post("/cgi-bin/component/api_component_token", nil, componentTokenBody(compApp, compSecret, "t")), 61011)
	if _, err := h.sim.InvalidateTokens(authHidden); err == nil {
		t.Fatal("InvalidateTokens of a removed authorizer")
	}
}

func TestOpenInvalidateTokens(t *testing.T) {
	h := startOpen(t)
	ctok := h.componentToken(h.ticket())
	access, _ := h.authorizerToken(ctok, authPreset, presetToken)
	if n, err := h.sim.InvalidateTokens(authPreset); err != nil || n != 1 {
		t.Fatalf("InvalidateTokens(authorizer) = %d, %v", n, err)
	}
	expectMP(t, h.get("/cgi-bin/user/info", tq(access, "openid", "o1")), 40001)
	a := h.control("POST", "/tokens/invalidate", `{"appid":"`+compApp+`"}`)
	if a.status != 200 || !strings.Contains(string(a.body), `"invalidated": 1`) {
		t.Fatalf("%d %s", a.status, a.body)
	}
	expectMP(t, h.post("/cgi-bin/component/api_create_preauthcode", cq(ctok), `{"component_appid":"`+compApp+`"}`), 40001)
}

func TestOpenCountersReset(t *testing.T) {
	h := startOpen(t)
	ctok := h.componentToken(h.ticket())
	h.authorizerToken(ctok, authPreset, presetToken)
	h.post("/cgi-bin/component/api_create_preauthcode", nil, `{}`)
	var c Counters
	a := h.control("GET", "/counters", "")
	if err := json.Unmarshal(a.body, &c); err != nil {
		t.Fatal(err)
	}
	cc := c.Components[compApp]
	if cc.ComponentToken != 1 || cc.TicketPushes != 1 || cc.Authorizers[authPreset].AuthorizerToken != 1 || c.ComponentTokenRejections != 1 {
		t.Fatalf("%s", a.body)
	}
	for _, secret := range []string{ctok, compSecret, presetToken} {
		if bytes.Contains(a.body, []byte(secret)) {
			t.Fatalf("counters leak %q", secret)
		}
	}
	h.sim.ResetCounters()
	c = h.sim.Counters()
	cc = c.Components[compApp]
	if cc.ComponentToken != 0 || cc.TicketPushes != 0 || cc.Authorizers[authPreset].AuthorizerToken != 0 || c.ComponentTokenRejections != 0 || !cc.Authorizers[authPreset].Authorized {
		t.Fatalf("after reset %+v", c)
	}
}

func TestOpenConcurrency(t *testing.T) {
	h := startOpen(t)
	ctok := h.componentToken(h.ticket())
	var wg sync.WaitGroup
	var mu sync.Mutex
	tokens := map[string]bool{}
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			body := authorizerTokenBody(authPreset, presetToken)
			for j := 0; j < 20; j++ {
				rec := serve(h.sim, "POST", "/cgi-bin/component/api_authorizer_token?component_access_token="+ctok, body, nil)
				var m map[string]any
				json.Unmarshal(rec.Body.Bytes(), &m)
				if tok, ok := m["authorizer_access_token"].(string); ok {
					mu.Lock()
					if tokens[tok] {
						t.Errorf("token issued twice")
					}
					tokens[tok] = true
					mu.Unlock()
					body = authorizerTokenBody(authPreset, m["authorizer_refresh_token"].(string))
				}
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; i < 20; i++ {
			h.sim.Clock().Advance(time.Second)
			h.sim.Counters()
		}
	}()
	wg.Wait()
	if n := h.sim.Counters().Components[compApp].Authorizers[authPreset].AuthorizerToken; int(n) != len(tokens) || n == 0 {
		t.Fatalf("%d answers counted, %d tokens", n, len(tokens))
	}
}

func TestOpenConfigValidation(t *testing.T) {
	good := func() Config { return openConfig("http://127.0.0.1:9/cb") }
	if err := good().Validate(); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		change func(*Config)
		want   string
	}{
		{func(c *Config) { c.Components[0].AppID = "" }, "Components[0].AppID: empty"},
		{func(c *Config) { c.Components[0].AppID = "wx comp" }, "Components[0].AppID"},
		{func(c *Config) { c.Components[0].AppID = mpApp }, "is also an account"},
		{func(c *Config) { c.Components[0].AppID = corpID }, "is also an account"},
		{func(c *Config) { c.Components[0].Secret = "" }, "Components[0].Secret: empty"},
		{func(c *Config) { c.Components[0].Secret = "a b" }, "white space"},
		{func(c *Config) { c.Components[0].Token = "ab" }, "Components[0].Token"},
		{func(c *Config) { c.Components[0].Token = "tok-en" }, "Components[0].Token"},
		{func(c *Config) { c.Components[0].EncodingAESKey = compKey[:42] }, "EncodingAESKey"},
		{func(c *Config) { c.Components[0].CallbackURL = "/relative" }, "CallbackURL"},
		{func(c *Config) { c.Components[0].CallbackURL = "ftp://host/x" }, "CallbackURL"},
		{func(c *Config) { c.Components = append(c.Components, c.Components[0]) }, "is also Components[0]"},
		{func(c *Config) { c.Authorizers[0].ComponentAppID = "" }, "Authorizers[0].ComponentAppID: empty"},
		{func(c *Config) { c.Authorizers[0].ComponentAppID = "wxnone" }, "not a Components[].AppID"},
		{func(c *Config) { c.Authorizers[0].AppID = "" }, "Authorizers[0].AppID: empty"},
		{func(c *Config) { c.Authorizers[0].AppID = corpID }, "WeCom corpid"},
		{func(c *Config) { c.Authorizers[0].AppID = compApp }, "is a component_appid"},
		{func(c *Config) { c.Authorizers[0].RefreshToken = "a b" }, "RefreshToken"},
		{func(c *Config) { c.Authorizers = append(c.Authorizers, c.Authorizers[0]) }, "already authorises"},
		{func(c *Config) { c.ComponentTicketTTL = -1 }, "ComponentTicketTTL"},
	}
	for _, c := range cases {
		cfg := good()
		c.change(&cfg)
		err := cfg.Validate()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: got %v", c.want, err)
		}
		if err != nil && strings.Contains(err.Error(), compSecret) {
			t.Errorf("error leaks the secret: %v", err)
		}
	}
	cfg := good()
	cfg, err := cfg.normalize()
	if err != nil || cfg.ComponentTicketInterval != 10*time.Minute || cfg.ComponentTicketTTL != 12*time.Hour || cfg.AuthorizerRefreshGrace != 5*time.Minute {
		t.Fatalf("defaults %v %v %v %v", cfg.ComponentTicketInterval, cfg.ComponentTicketTTL, cfg.AuthorizerRefreshGrace, err)
	}
}

func TestOpenStoresAreBounded(t *testing.T) {
	h := newHarness(t, openConfig("")) // no callback: pushes cost nothing
	var first, last string
	for i := 0; i < ticketLimit+10; i++ {
		h.advance(time.Second)
		res, err := h.sim.PushComponentTicket(compApp)
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			first = res[0].Ticket
		}
		last = res[0].Ticket
	}
	st := h.sim.current.Load().open.byComp[compApp].st
	st.mu.Lock()
	n := len(st.tickets)
	st.mu.Unlock()
	if n > ticketLimit {
		t.Fatalf("%d tickets kept", n)
	}
	expectMP(t, h.post("/cgi-bin/component/api_component_token", nil, componentTokenBody(compApp, compSecret, first)), 61006)
	expectCode(t, h.post("/cgi-bin/component/api_component_token", nil, componentTokenBody(compApp, compSecret, last)), 0)

	m := make(map[string]int64)
	for i := 0; i < openCodeLimit; i++ {
		m[strconv.Itoa(i)] = int64(i % 2) // half expired at 0
	}
	pruneCodes(m, 0, func(v int64) int64 { return v })
	if len(m) != openCodeLimit/2 {
		t.Fatalf("%d codes after pruning the expired ones", len(m))
	}
	for i := 0; len(m) < openCodeLimit; i++ {
		m["x"+strconv.Itoa(i)] = 10
	}
	pruneCodes(m, 0, func(v int64) int64 { return v })
	if len(m) != openCodeLimit-1 {
		t.Fatalf("%d codes after pruning valid ones", len(m))
	}
}

var componentPaths = []string{
	"/cgi-bin/component/api_component_token",
	"/cgi-bin/component/api_create_preauthcode",
	"/cgi-bin/component/api_query_auth",
	"/cgi-bin/component/api_authorizer_token",
}

func FuzzComponentBodies(f *testing.F) {
	sim, err := New(openConfig(""))
	if err != nil {
		f.Fatal(err)
	}
	res, _ := sim.PushComponentTicket(compApp)
	rec := serve(sim, "POST", componentPaths[0], componentTokenBody(compApp, compSecret, res[0].Ticket), nil)
	ctok := between(rec.Body.String(), `"component_access_token":"`, `"`)
	auth, _ := sim.Authorize("", authHidden, "")
	f.Add(uint8(0), componentTokenBody(compApp, compSecret, res[0].Ticket))
	f.Add(uint8(1), `{"component_appid":"`+compApp+`"}`)
	f.Add(uint8(2), `{"component_appid":"`+compApp+`","authorization_code":"`+auth.AuthorizationCode+`"}`)
	f.Add(uint8(3), authorizerTokenBody(authPreset, presetToken))
	f.Add(uint8(3), `{"component_appid":null,"authorizer_appid":1e400}`)
	f.Add(uint8(2), "\xff\xfe")
	f.Fuzz(func(t *testing.T, which uint8, body string) {
		path := componentPaths[int(which)%len(componentPaths)]
		rec := serve(sim, "POST", path+"?component_access_token="+ctok, body, http.Header{"Content-Type": {"application/json"}})
		checkAnswer(t, rec)
	})
}

// TestComponentClearQuotaV2: the platform's AppSecret, with no token,
// resets api_component_token's daily count or an authorised authorizer's
// quotas, 10 times a month per account.
func TestComponentClearQuotaV2(t *testing.T) {
	cb := newCallback(t, compApp, compToken, compKey)
	cfg := openConfig(cb.url())
	cfg.DailyTokenQuota = 1
	h := &openHarness{harness: newHarness(t, cfg), cb: cb}
	ticket := h.ticket()
	h.componentToken(ticket)
	expectMP(t, h.post("/cgi-bin/component/api_component_token", nil, componentTokenBody(compApp, compSecret, ticket)), 45009)

	body := func(m map[string]string) string {
		b, _ := json.Marshal(m)
		return string(b)
	}
	const path = "/cgi-bin/component/clear_quota/v2"
	for _, c := range []struct {
		name string
		body string
		want int
	}{
		{"no component_appid", body(map[string]string{"appsecret": compSecret}), 41002},
		{"no appsecret", body(map[string]string{"component_appid": compApp}), 41004},
		{"unknown component", body(map[string]string{"component_appid": mpApp, "appsecret": compSecret}), 61011},
		{"wrong appsecret", body(map[string]string{"component_appid": compApp, "appsecret": mpSecret}), 40125},
		{"not an authorizer", body(map[string]string{"component_appid": compApp, "appsecret": compSecret, "appid": "wxnotanauthorizer0"}), 61003},
		{"bad JSON", `{"component_appid":`, 47001},
	} {
		a := h.post(path, nil, c.body)
		expectMP(t, a, c.want)
		if strings.Contains(string(a.body), compSecret) {
			t.Fatalf("%s: the answer echoes the secret", c.name)
		}
	}
	expectMP(t, h.post("/cgi-bin/component/api_component_token", nil, componentTokenBody(compApp, compSecret, ticket)), 45009)
	expectCode(t, h.post(path, nil, body(map[string]string{"component_appid": compApp, "appsecret": compSecret})), 0)
	h.componentToken(ticket) // the day's count starts again
	if last := h.sim.Counters().Paths[path].Last; last == nil || !last.BodyRedacted {
		t.Errorf("last record %+v: the body carries the secret", last)
	}

	// An authorizer's own resets, with the platform's secret.
	expectCode(t, h.post(path, nil, body(map[string]string{"component_appid": compApp, "appsecret": compSecret, "appid": authPreset})), 0)
	for range 9 {
		expectCode(t, h.post(path, nil, body(map[string]string{"component_appid": compApp, "appsecret": compSecret})), 0)
	}
	expectMP(t, h.post(path, nil, body(map[string]string{"component_appid": compApp, "appsecret": compSecret})), 48006)
	// The authorizer's month is its own: 9 left.
	expectCode(t, h.post(path, nil, body(map[string]string{"component_appid": compApp, "appsecret": compSecret, "appid": authPreset})), 0)
	h.advance(31 * 24 * time.Hour)
	expectCode(t, h.post(path, nil, body(map[string]string{"component_appid": compApp, "appsecret": compSecret})), 0)
}
