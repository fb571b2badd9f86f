package simulator

import (
	"bytes"
	"encoding/json"
	"fmt"
	"image/jpeg"
	"image/png"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/wxgate/caddy-wechat/module/internal/wxapi"
)

func TestUserInfo(t *testing.T) {
	h := start(t)
	tok := h.mpToken()
	a := h.get("/cgi-bin/user/info", tq(tok, "openid", "o6_bmjrPTlm6_2sgVt7hMZOPfL2M", "lang", "zh_CN"))
	expectCode(t, a, 0)
	m := a.json(t)
	if _, has := m["errcode"]; has {
		t.Errorf("user/info success carries an errcode: %s", a.body)
	}
	if m["openid"] != "o6_bmjrPTlm6_2sgVt7hMZOPfL2M" || num(t, m["subscribe"]) != 1 {
		t.Errorf("user/info: %s", a.body)
	}
	if _, ok := m["subscribe_scene"].(string); !ok {
		t.Errorf("subscribe_scene is not a string: %s", a.body)
	}
	expectMP(t, h.get("/cgi-bin/user/info", tq(tok)), 41009)
	expectMP(t, h.get("/cgi-bin/user/info", tq(tok, "openid", "bad openid!")), 40003)
	expectMP(t, h.post("/cgi-bin/user/info", tq(tok, "openid", "o1"), "{}"), 43001)
}

const testMenu = `{"button":[
	{"type":"click","name":"今日歌曲","key":"V1001_TODAY_MUSIC"},
	{"name":"菜单","sub_button":[
		{"type":"view","name":"搜索","url":"http://www.soso.com/"},
		{"type":"miniprogram","name":"wxa","url":"http://mp.weixin.qq.com","appid":"wx286b93c14bbf93aa","pagepath":"pages/lunar/index"}]}]}`

func TestMenuCreateGetDelete(t *testing.T) {
	h := start(t)
	tok := h.mpToken()
	expectMP(t, h.get("/cgi-bin/menu/get", tq(tok)), 46003)
	a := h.post("/cgi-bin/menu/create", tq(tok), testMenu)
	expectCode(t, a, 0)
	if m := a.json(t); m["errmsg"] != "ok" {
		t.Errorf("menu/create: %s", a.body)
	}
	a = h.get("/cgi-bin/menu/get", tq(tok))
	expectCode(t, a, 0)
	var got menuAnswer
	if err := json.Unmarshal(a.body, &got); err != nil {
		t.Fatal(err)
	}
	b := got.Menu.Button
	if len(b) != 2 || b[0].Key != "V1001_TODAY_MUSIC" || len(b[1].SubButton) != 2 || b[1].SubButton[1].PagePath != "pages/lunar/index" {
		t.Errorf("menu/get: %s", a.body)
	}
	if !bytes.Contains(a.body, []byte(`"sub_button":[]`)) {
		t.Errorf("leaf buttons lack the empty sub_button: %s", a.body)
	}
	// The menu belongs to the account.
	expectMP(t, h.get("/cgi-bin/menu/get", tq(h.mpToken2())), 46003)
	expectCode(t, h.get("/cgi-bin/menu/delete", tq(tok)), 0)
	expectMP(t, h.get("/cgi-bin/menu/get", tq(tok)), 46003)
}

func TestMenuCreateErrors(t *testing.T) {
	h := start(t)
	tok := h.mpToken()
	cases := []struct {
		body string
		want int
	}{
		{`{"button":[`, 47001},
		{`not json`, 47001},
		{`{"button":"x"}`, 47001},
		{`{"button":[{"name":"a","type":"click"}]} trailing`, 47001},
		{``, 44002},
		{`{"button":[]}`, 40016},
		{`{}`, 40016},
		{`{"button":[{"type":"click","name":"a"},{"type":"click","name":"b"},{"type":"click","name":"c"},{"type":"click","name":"d"}]}`, 40016},
		{`{"button":[{"type":"click","name":""}]}`, 40018},
		{`{"button":[{"type":"click","name":"this name is far too long"}]}`, 40018},
		{`{"button":[{"type":"teleport","name":"a"}]}`, 40017},
		{`{"button":[{"name":"a","sub_button":[{"type":"click","name":"1"},{"type":"click","name":"2"},{"type":"click","name":"3"},{"type":"click","name":"4"},{"type":"click","name":"5"},{"type":"click","name":"6"}]}]}`, 40023},
		{`{"button":[{"name":"a","sub_button":[{"type":"nope","name":"1"}]}]}`, 40024},
		{`{"button":[{"name":"a","sub_button":[{"type":"click","name":""}]}]}`, 40025},
	}
	for _, c := range cases {
		expectMP(t, h.post("/cgi-bin/menu/create", tq(tok), c.body), c.want)
	}
	expectMP(t, h.get("/cgi-bin/menu/create", tq(tok)), 43002)
	expectMP(t, h.get("/cgi-bin/menu/get", tq(tok)), 46003)
}

func TestCustomMessageSend(t *testing.T) {
	h := start(t)
	tok := h.mpToken()
	expectCode(t, h.post("/cgi-bin/message/custom/send", tq(tok), `{"touser":"o1","msgtype":"text","text":{"content":"hello"}}`), 0)
	expectMP(t, h.post("/cgi-bin/message/custom/send", tq(tok), `{"msgtype":"text","text":{"content":"hello"}}`), 40003)
	expectMP(t, h.post("/cgi-bin/message/custom/send", tq(tok), `{"touser":"o1","msgtype":"fax"}`), 40008)
	expectMP(t, h.post("/cgi-bin/message/custom/send", tq(tok), `{"touser":"o1","msgtype":"text"}`), 44004)
	expectMP(t, h.post("/cgi-bin/message/custom/send", tq(tok), `{"touser":`), 47001)
	body := `{"touser":"o1","msgtype":"text","text":{"content":"hello"}}`
	h.post("/cgi-bin/message/custom/send", tq(tok), body)
	last := h.sim.Counters().Paths["/cgi-bin/message/custom/send"].Last
	if last.BodySHA256 != sha256hex([]byte(body)) || last.BodyBytes != int64(len(body)) || last.ContentLength != int64(len(body)) {
		t.Errorf("last request %+v", last)
	}
	if last.Method != "POST" || last.Query != "access_token=REDACTED" || !last.TokenValid || last.Account != mpApp {
		t.Errorf("last request %+v", last)
	}
}

func TestMPTickets(t *testing.T) {
	h := start(t)
	tok := h.mpToken()
	a := h.get("/cgi-bin/ticket/getticket", tq(tok, "type", "jsapi"))
	expectCode(t, a, 0)
	m := a.json(t)
	if m["errmsg"] != "ok" || num(t, m["expires_in"]) != 7200 || m["ticket"] == "" {
		t.Fatalf("getticket: %s", a.body)
	}
	h.advance(time.Minute)
	b := h.get("/cgi-bin/ticket/getticket", tq(tok, "type", "jsapi")).json(t)
	if b["ticket"] != m["ticket"] || num(t, b["expires_in"]) != 7140 {
		t.Errorf("ticket not cached: %v", b)
	}
	c := h.get("/cgi-bin/ticket/getticket", tq(tok, "type", "wx_card")).json(t)
	if c["ticket"] == m["ticket"] {
		t.Error("wx_card and jsapi share a ticket")
	}
	expectMP(t, h.get("/cgi-bin/ticket/getticket", tq(tok, "type", "nope")), 40097)
	h.advance(2 * time.Hour)
	fresh := h.get("/cgi-bin/ticket/getticket", tq(h.mpToken(), "type", "jsapi")).json(t)
	if fresh["ticket"] == m["ticket"] {
		t.Error("expired ticket returned again")
	}
}

func TestWxaCodeUnlimit(t *testing.T) {
	h := start(t)
	tok := h.mpToken()
	a := h.post("/wxa/getwxacodeunlimit", tq(tok), `{"scene":"a=1&b=2","page":"pages/index/index","width":300,"line_color":{"r":0,"g":"128","b":255}}`)
	if a.status != 200 || a.header.Get("Content-Type") != "image/jpeg" {
		t.Fatalf("getwxacodeunlimit: %d %s %q", a.status, a.header.Get("Content-Type"), truncate(a.body))
	}
	img, err := jpeg.Decode(bytes.NewReader(a.body))
	if err != nil {
		t.Fatalf("not a JPEG: %v", err)
	}
	if img.Bounds().Dx() != 300 {
		t.Errorf("width %d", img.Bounds().Dx())
	}
	again := h.post("/wxa/getwxacodeunlimit", tq(tok), `{"scene":"a=1&b=2","page":"pages/index/index","width":300,"line_color":{"r":0,"g":"128","b":255}}`)
	if !bytes.Equal(a.body, again.body) {
		t.Error("the same request gave another image")
	}
	expectMP(t, h.post("/wxa/getwxacodeunlimit", tq(tok), `{"page":"pages/index/index"}`), 40169)
	expectMP(t, h.post("/wxa/getwxacodeunlimit", tq(tok), `{"scene":"0123456789012345678901234567890123"}`), 40169)
	expectMP(t, h.post("/wxa/getwxacodeunlimit", tq(tok), `{"scene":"中文"}`), 40169)
	expectMP(t, h.post("/wxa/getwxacodeunlimit", tq(tok), `{"scene":"x","page":"/pages/index"}`), 41030)
	expectMP(t, h.post("/wxa/getwxacodeunlimit", tq(tok), `{"scene":"x","env_version":"beta"}`), 40097)
	expectMP(t, h.post("/wxa/getwxacodeunlimit", tq(tok), `{"scene":`), 47001)
	hyaline := h.post("/wxa/getwxacodeunlimit", tq(tok), `{"scene":"x","is_hyaline":true,"width":10}`)
	if ct := hyaline.header.Get("Content-Type"); ct != "image/png" {
		t.Errorf("is_hyaline: Content-Type %s, want image/png", ct)
	}
	img, err = png.Decode(bytes.NewReader(hyaline.body))
	if err != nil || img.Bounds().Dx() != 280 {
		t.Fatalf("small width not clamped to 280: %v", err)
	}
	if _, _, _, alpha := img.At(0, 0).RGBA(); alpha != 0 {
		t.Error("is_hyaline background is not transparent")
	}
}

func TestQuotaGetAndClearQuota(t *testing.T) {
	h := start(t)
	tok := h.mpToken()
	for range 3 {
		h.get("/cgi-bin/menu/get", tq(tok))
	}
	quota := func(path string) map[string]any {
		t.Helper()
		a := h.post("/cgi-bin/openapi/quota/get", tq(tok), `{"cgi_path":"`+path+`"}`)
		expectCode(t, a, 0)
		return a.json(t)["quota"].(map[string]any)
	}
	qm := quota("/cgi-bin/menu/get")
	if num(t, qm["daily_limit"]) != 10000 || num(t, qm["used"]) != 3 || num(t, qm["remain"]) != 9997 {
		t.Errorf("menu/get quota %v", qm)
	}
	qt := quota("/cgi-bin/token")
	if num(t, qt["daily_limit"]) != 2000 || num(t, qt["used"]) != 1 {
		t.Errorf("token quota %v", qt)
	}
	expectMP(t, h.post("/cgi-bin/openapi/quota/get", tq(tok), `{"cgi_path":"/cgi-bin/nope"}`), 76021)
	expectMP(t, h.post("/cgi-bin/openapi/quota/get", tq(tok), `{"cgi_path":1}`), 47001)

	// clear_quota resets the counts, 10 times a month.
	expectMP(t, h.post("/cgi-bin/clear_quota", tq(tok), `{"appid":"`+mpApp2+`"}`), 40013)
	for i := range 10 {
		a := h.post("/cgi-bin/clear_quota", tq(tok), `{"appid":"`+mpApp+`"}`)
		if code := a.errcode(t); code != 0 {
			t.Fatalf("clear_quota %d: %s", i+1, a.body)
		}
	}
	if qm := quota("/cgi-bin/menu/get"); num(t, qm["used"]) != 0 {
		t.Errorf("menu/get used after clear_quota: %v", qm)
	}
	expectMP(t, h.post("/cgi-bin/clear_quota", tq(tok), `{"appid":"`+mpApp+`"}`), 48006)
	h.sim.Clock().Set(time.Date(2025, 4, 1, 0, 0, 0, 0, shanghai))
	tok = h.mpToken()
	expectCode(t, h.post("/cgi-bin/clear_quota", tq(tok), `{"appid":"`+mpApp+`"}`), 0)

	// clear_quota/v2 takes the appsecret instead of a token.
	form := "appid=" + mpApp2 + "&appsecret=" + mpSecret2
	a := h.do(h.request(http.MethodPost, "/cgi-bin/clear_quota/v2", nil, "application/x-www-form-urlencoded", []byte(form)))
	expectCode(t, a, 0)
	a = h.do(h.request(http.MethodPost, "/cgi-bin/clear_quota/v2", nil, "application/json", []byte(`{"appid":"`+mpApp2+`","appsecret":"`+mpSecret2+`"}`)))
	expectCode(t, a, 0)
	a = h.do(h.request(http.MethodPost, "/cgi-bin/clear_quota/v2", nil, "application/json", []byte(`{"appid":"`+mpApp2+`","appsecret":"bad"}`)))
	expectMP(t, a, 40001)
	a = h.do(h.request(http.MethodPost, "/cgi-bin/clear_quota/v2", nil, "application/json", []byte(`{"appid":`)))
	expectMP(t, a, 47001)
	a = h.do(h.request(http.MethodPost, "/cgi-bin/clear_quota/v2", q("appid", mpApp2, "appsecret", "bad"), "", nil))
	expectMP(t, a, 40001)
	if last := h.sim.Counters().Paths["/cgi-bin/clear_quota/v2"].Last; last.Query != "appid="+mpApp2+"&appsecret=REDACTED" {
		t.Errorf("query not redacted: %q", last.Query)
	}
}

// TestRidGetEchoesTheRequest: rid/get answers the logged request of an
// error, with its query string (access_token, or appid and secret for a
// token call) and body, as WeChat does; only to the account it belongs to.
func TestRidGetEchoesTheRequest(t *testing.T) {
	h := start(t)
	tok := h.mpToken()
	ridOf := func(a answer) string {
		t.Helper()
		_, id := wxapi.SplitRequestID(a.json(t)["errmsg"].(string))
		if id == "" {
			t.Fatalf("no rid in %s", a.body)
		}
		return id
	}
	failed := h.post("/cgi-bin/openapi/quota/get", tq(tok), `{"cgi_path":"/cgi-bin/nope"}`)
	expectMP(t, failed, wxapi.CodeCgiPathNotFound)
	got := h.post("/cgi-bin/openapi/rid/get", tq(tok), `{"rid":"`+ridOf(failed)+`"}`)
	expectCode(t, got, 0)
	req := got.json(t)["request"].(map[string]any)
	if url := req["request_url"].(string); !strings.Contains(url, "access_token="+tok) {
		t.Errorf("request_url %q does not echo the token", url)
	}
	if body := req["request_body"].(string); !strings.Contains(body, "/cgi-bin/nope") {
		t.Errorf("request_body %q", body)
	}
	if resp := req["response_body"].(string); !strings.Contains(resp, "76021") {
		t.Errorf("response_body %q", resp)
	}

	// A token call with a wrong secret: its rid shows the secret sent.
	bad := h.get("/cgi-bin/token", q("grant_type", "client_credential", "appid", mpApp, "secret", "wrong-secret"))
	expectMP(t, bad, wxapi.CodeInvalidCredential)
	got = h.post("/cgi-bin/openapi/rid/get", tq(tok), `{"rid":"`+ridOf(bad)+`"}`)
	expectCode(t, got, 0)
	if url := got.json(t)["request"].(map[string]any)["request_url"].(string); !strings.Contains(url, "secret=wrong-secret") {
		t.Errorf("request_url %q does not echo the secret", url)
	}

	// Another account may not read it; unknown and empty rids are errors.
	tok2, _ := h.token(mpApp2, mpSecret2)
	expectMP(t, h.post("/cgi-bin/openapi/rid/get", tq(tok2), `{"rid":"`+ridOf(failed)+`"}`), wxapi.CodeRidForbidden)
	expectMP(t, h.post("/cgi-bin/openapi/rid/get", tq(tok), `{"rid":"00000000-00000000-00000000"}`), wxapi.CodeRidNotFound)
	expectMP(t, h.post("/cgi-bin/openapi/rid/get", tq(tok), `{"rid":""}`), wxapi.CodeRidInvalid)
}

func TestEnforcedAPIQuota(t *testing.T) {
	cfg := testConfig()
	cfg.EnforceAPIQuota = true
	h := newHarness(t, cfg)
	tok := h.mpToken()
	for i := range 1000 {
		a := h.post("/cgi-bin/menu/create", tq(tok), testMenu)
		if code := a.errcode(t); code != 0 {
			t.Fatalf("call %d: %s", i, a.body)
		}
	}
	expectMP(t, h.post("/cgi-bin/menu/create", tq(tok), testMenu), 45009)
	h.post("/cgi-bin/clear_quota", tq(tok), `{"appid":"`+mpApp+`"}`)
	expectCode(t, h.post("/cgi-bin/menu/create", tq(tok), testMenu), 0)
}

func TestWeComUserGet(t *testing.T) {
	h := start(t)
	tok, _ := h.wecomToken(appSecret1)
	a := h.get("/cgi-bin/user/get", tq(tok, "userid", "zhangsan"))
	expectWeCom(t, a, 0)
	m := a.json(t)
	if m["userid"] != "zhangsan" || m["errmsg"] != "ok" {
		t.Errorf("user/get: %s", a.body)
	}
	expectWeCom(t, h.get("/cgi-bin/user/get", tq(tok)), 41009)
	expectWeCom(t, h.get("/cgi-bin/user/get", tq(tok, "userid", "no such user!")), 60111)
}

func TestWeComMessageSend(t *testing.T) {
	h := start(t)
	tok, _ := h.wecomToken(appSecret1)
	a := h.post("/cgi-bin/message/send", tq(tok), `{"touser":"zhangsan|bad user","msgtype":"text","agentid":1000002,"text":{"content":"hi"}}`)
	expectWeCom(t, a, 0)
	m := a.json(t)
	if _, ok := m["msgid"].(string); !ok {
		t.Fatalf("msgid is not a string: %s", a.body)
	}
	if m["invaliduser"] != "bad user" || m["errmsg"] != "ok" {
		t.Errorf("message/send: %s", a.body)
	}
	expectWeCom(t, h.post("/cgi-bin/message/send", tq(tok), `{"touser":"@all","msgtype":"text","agentid":"1000002","text":{"content":"hi"}}`), 0)
	expectWeCom(t, h.post("/cgi-bin/message/send", tq(tok), `{"touser":"a","msgtype":"text","text":{"content":"hi"}}`), 41011)
	expectWeCom(t, h.post("/cgi-bin/message/send", tq(tok), `{"touser":"a","msgtype":"text","agentid":1000003,"text":{"content":"hi"}}`), 301002)
	expectWeCom(t, h.post("/cgi-bin/message/send", tq(tok), `{"touser":"a","msgtype":"fax","agentid":1000002}`), 40008)
	expectWeCom(t, h.post("/cgi-bin/message/send", tq(tok), `{"touser":"a","msgtype":"text","agentid":1000002}`), 44004)
	expectWeCom(t, h.post("/cgi-bin/message/send", tq(tok), `{"touser":"bad user","msgtype":"text","agentid":1000002,"text":{"content":"hi"}}`), 81013)
	expectWeCom(t, h.post("/cgi-bin/message/send", tq(tok), `{"touser":`), 47001)
	expectWeCom(t, h.get("/cgi-bin/message/send", tq(tok)), 43002)
}

func TestWeComTickets(t *testing.T) {
	h := start(t)
	t1, _ := h.wecomToken(appSecret1)
	t2, _ := h.wecomToken(appSecret2)
	corp1 := h.get("/cgi-bin/get_jsapi_ticket", tq(t1)).json(t)
	corp2 := h.get("/cgi-bin/get_jsapi_ticket", tq(t2)).json(t)
	if corp1["ticket"] != corp2["ticket"] || num(t, corp1["errcode"]) != 0 || num(t, corp1["expires_in"]) != 7200 {
		t.Errorf("corp jsapi tickets: %v %v", corp1, corp2)
	}
	agent1 := h.get("/cgi-bin/ticket/get", tq(t1, "type", "agent_config")).json(t)
	agent2 := h.get("/cgi-bin/ticket/get", tq(t2, "type", "agent_config")).json(t)
	if agent1["ticket"] == agent2["ticket"] || agent1["ticket"] == corp1["ticket"] {
		t.Errorf("agent tickets are not per app: %v %v", agent1, agent2)
	}
	expectWeCom(t, h.get("/cgi-bin/ticket/get", tq(t1, "type", "jsapi")), 40097)
}

func TestSNSUserInfo(t *testing.T) {
	h := start(t)
	a := h.get("/sns/oauth2/access_token", q("appid", mpApp, "secret", mpSecret, "code", "CODE1", "grant_type", "authorization_code"))
	expectCode(t, a, 0)
	m := a.json(t)
	userToken, openid := m["access_token"].(string), m["openid"].(string)
	expectMP(t, h.get("/sns/oauth2/access_token", q("appid", mpApp, "secret", mpSecret, "code", "CODE1", "grant_type", "authorization_code")), 40163)
	expectMP(t, h.get("/sns/oauth2/access_token", q("appid", mpApp, "secret", mpSecret, "grant_type", "authorization_code")), 41008)
	expectMP(t, h.get("/sns/oauth2/access_token", q("appid", mpApp, "secret", mpSecret, "code", "C", "grant_type", "client_credential")), 40002)

	u := h.get("/sns/userinfo", q("access_token", userToken, "openid", openid, "lang", "zh_CN"))
	expectCode(t, u, 0)
	if u.json(t)["openid"] != openid {
		t.Errorf("userinfo: %s", u.body)
	}
	expectMP(t, h.get("/sns/userinfo", q("access_token", userToken, "openid", "other")), 40003)

	// An app token is no user token: 40001, not an app-token rejection.
	appToken := h.mpToken()
	expectMP(t, h.get("/sns/userinfo", q("access_token", appToken, "openid", openid)), 40001)
	expectMP(t, h.get("/sns/userinfo", q("access_token", "garbage", "openid", openid)), 40001)
	// And a user token is no app token.
	expectMP(t, h.get("/cgi-bin/user/info", tq(userToken, "openid", openid)), 40001)

	c := h.sim.Counters()
	sns := c.Paths["/sns/userinfo"]
	if sns.Rejected[40001] != 2 || sns.AppTokenRejections != 0 {
		t.Errorf("/sns/userinfo counters %+v", sns)
	}
	if c.AppTokenRejections != 1 {
		t.Errorf("app token rejections = %d, want 1 (the user token on /cgi-bin/user/info)", c.AppTokenRejections)
	}
	if c.Tokens[mpApp].UserTokens != 1 || c.Tokens[mpApp].Token != 1 {
		t.Errorf("token counters %+v", c.Tokens[mpApp])
	}
	h.advance(2 * time.Hour)
	expectMP(t, h.get("/sns/userinfo", q("access_token", userToken, "openid", openid)), 42001)
}

func TestUnknownPathsAnswer404(t *testing.T) {
	h := start(t)
	for _, p := range []string{"/", "/cgi-bin/nope", "/cgi-bin/token/extra", "/wxa/unknown", "/_simulator"} {
		a := h.get(p, tq("x"))
		if a.status != http.StatusNotFound || !bytes.Contains(a.body, []byte("404 Not Found")) {
			t.Errorf("%s: %d %q", p, a.status, a.body)
		}
	}
	if c := h.sim.Counters().Paths["/cgi-bin/nope"]; c.Calls != 1 || c.HTTPErrors != 1 {
		t.Errorf("unknown path counters %+v", c)
	}
}

func TestManyUnknownPathsShareACounter(t *testing.T) {
	sim, err := New(testConfig())
	if err != nil {
		t.Fatal(err)
	}
	for i := range maxDynamicPaths + 10 {
		serve(sim, "GET", fmt.Sprintf("/x/%d", i), "", nil)
	}
	c := sim.Counters()
	if len(c.Paths) != maxDynamicPaths+1 || c.Paths["(other)"].Calls != 10 {
		t.Errorf("%d paths, (other) = %+v", len(c.Paths), c.Paths["(other)"])
	}
}
