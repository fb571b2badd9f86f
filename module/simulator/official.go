package simulator

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"
	"sync"
	"time"

	"github.com/wxgate/caddy-wechat/module/internal/wxapi"
)

// officialRoutes are the business paths of api.weixin.qq.com (plus the media
// paths both services share).
func officialRoutes() []*route {
	return []*route{
		{path: "/cgi-bin/user/info", family: pathMP, auth: true, methods: allowGET, dailyLimit: 5000000, handle: handleUserInfo},
		{path: "/cgi-bin/menu/get", family: pathMP, auth: true, methods: allowGET, dailyLimit: 10000, handle: handleMenuGet},
		{path: "/cgi-bin/menu/create", family: pathMP, auth: true, methods: allowPOST, dailyLimit: 1000, handle: handleMenuCreate},
		{path: "/cgi-bin/menu/delete", family: pathMP, auth: true, methods: allowGET, dailyLimit: 1000, handle: handleMenuDelete},
		{path: "/cgi-bin/message/custom/send", family: pathMP, auth: true, methods: allowPOST, dailyLimit: 500000, handle: handleCustomSend},
		{path: "/cgi-bin/media/upload", family: pathShared, auth: true, methods: allowPOST, maxBody: uploadMaxBody, dailyLimit: 100000, handle: handleMediaUpload},
		{path: "/cgi-bin/media/get", family: pathShared, auth: true, methods: allowBoth, dailyLimit: 100000, handle: handleMediaGet},
		{path: "/cgi-bin/ticket/getticket", family: pathMP, auth: true, methods: allowGET, dailyLimit: 100000, handle: handleGetTicket},
		{path: "/wxa/getwxacodeunlimit", family: pathMP, auth: true, methods: allowPOST, dailyLimit: 5000000, handle: handleWxaCodeUnlimit},
		{path: "/cgi-bin/openapi/quota/get", family: pathMP, auth: true, methods: allowPOST, handle: handleQuotaGet},
		{path: "/cgi-bin/openapi/rid/get", family: pathMP, auth: true, methods: allowPOST, handle: handleRidGet},
		{path: "/cgi-bin/clear_quota", family: pathMP, auth: true, methods: allowPOST, handle: handleClearQuota},
		{path: "/cgi-bin/clear_quota/v2", family: pathMP, methods: allowPOST, secretBody: true, handle: handleClearQuotaV2},
	}
}

// okBody is the plain success answer of MP write APIs.
var okBody = []byte(`{"errcode":0,"errmsg":"ok"}`)

// isOpenID reports whether s looks like an openid or userid.
func isOpenID(s string) bool { return s != "" && len(s) <= 64 && isPlainID(s) }

// userParam returns the query parameter key, which names a user (an
// openid or a userid). When it is missing it answers 41009, when valid
// refuses it it answers bad, and reports false.
func (c *call) userParam(key string, valid func(string) bool, bad int) (string, bool) {
	id := c.query(key)
	switch {
	case id == "":
		c.fail(wxapi.CodeOpenIDMissing)
		return "", false
	case !valid(id):
		c.fail(bad)
		return "", false
	}
	return id, true
}

// mpUser is the answer of /cgi-bin/user/info (no errcode on success).
type mpUser struct {
	Subscribe      int    `json:"subscribe"`
	OpenID         string `json:"openid"`
	Language       string `json:"language"`
	SubscribeTime  int64  `json:"subscribe_time"`
	UnionID        string `json:"unionid"`
	Remark         string `json:"remark"`
	GroupID        int    `json:"groupid"`
	TagIDList      []int  `json:"tagid_list"`
	SubscribeScene string `json:"subscribe_scene"`
	QrScene        int    `json:"qr_scene"`
	QrSceneStr     string `json:"qr_scene_str"`
}

// handleUserInfo serves GET /cgi-bin/user/info?openid=: every well-formed
// openid is a subscriber.
func handleUserInfo(s *Simulator, c *call) {
	openid, ok := c.userParam("openid", isOpenID, wxapi.CodeInvalidOpenID)
	if !ok {
		return
	}
	c.ok(mpUser{
		Subscribe:      1,
		OpenID:         openid,
		Language:       "zh_CN",
		SubscribeTime:  1600000000 + int64(deriveID("", openid)[0])*86400,
		UnionID:        deriveID("o", "union", openid),
		TagIDList:      []int{},
		SubscribeScene: "ADD_SCENE_QR_CODE",
	})
}

// menuButton is one button of a custom menu, as menu/get returns it.
type menuButton struct {
	Type      string       `json:"type,omitempty"`
	Name      string       `json:"name"`
	Key       string       `json:"key,omitempty"`
	URL       string       `json:"url,omitempty"`
	MediaID   string       `json:"media_id,omitempty"`
	AppID     string       `json:"appid,omitempty"`
	PagePath  string       `json:"pagepath,omitempty"`
	ArticleID string       `json:"article_id,omitempty"`
	SubButton []menuButton `json:"sub_button"`
}

type menuAnswer struct {
	Menu struct {
		Button []menuButton `json:"button"`
	} `json:"menu"`
}

var menuButtonTypes = map[string]bool{
	"click": true, "view": true, "scancode_push": true, "scancode_waitmsg": true,
	"pic_sysphoto": true, "pic_photo_or_album": true, "pic_weixin": true,
	"location_select": true, "media_id": true, "view_limited": true,
	"article_id": true, "article_view_limited": true, "miniprogram": true,
}

// Menu size limits of the real service (names in bytes).
const (
	maxButtons       = 3
	maxSubButtons    = 5
	maxButtonName    = 16
	maxSubButtonName = 60
)

// handleMenuCreate serves POST /cgi-bin/menu/create.
func handleMenuCreate(s *Simulator, c *call) {
	var req struct {
		Button []menuButton `json:"button"`
	}
	if !c.decodeJSON(&req) {
		return
	}
	if code, _ := checkMenu(req.Button); code != wxapi.CodeOK {
		c.fail(code)
		return
	}
	body := menuGetBody(req.Button)
	c.acct.menu.Store(&body)
	c.json(wxapi.CodeOK, okBody)
}

// menuGetBody encodes the menu/get answer of checked buttons.
func menuGetBody(buttons []menuButton) []byte {
	var answer menuAnswer
	answer.Menu.Button = buttons
	return marshal(answer)
}

// checkMenu applies the checks of menu/create to buttons, giving each leaf
// button its empty sub_button list. It returns wxapi.CodeOK, or the errcode to
// answer and a description of the problem naming the button.
func checkMenu(buttons []menuButton) (code int, problem string) {
	if len(buttons) == 0 || len(buttons) > maxButtons {
		return wxapi.CodeInvalidButtonSize, fmt.Sprintf("%d buttons, want 1 to %d", len(buttons), maxButtons)
	}
	for i := range buttons {
		b := &buttons[i]
		if b.Name == "" || len(b.Name) > maxButtonName {
			return wxapi.CodeInvalidButtonName, fmt.Sprintf("button[%d]: name %q: want 1 to %d bytes", i, b.Name, maxButtonName)
		}
		if len(b.SubButton) == 0 {
			if !menuButtonTypes[b.Type] {
				return wxapi.CodeInvalidButtonType, fmt.Sprintf("button[%d] (%s): type %q is not a menu button type", i, b.Name, b.Type)
			}
			b.SubButton = []menuButton{}
			continue
		}
		if len(b.SubButton) > maxSubButtons {
			return wxapi.CodeInvalidSubButton, fmt.Sprintf("button[%d] (%s): %d sub_button entries, want at most %d", i, b.Name, len(b.SubButton), maxSubButtons)
		}
		for j := range b.SubButton {
			sb := &b.SubButton[j]
			if sb.Name == "" || len(sb.Name) > maxSubButtonName {
				return wxapi.CodeInvalidSubName, fmt.Sprintf("button[%d].sub_button[%d]: name %q: want 1 to %d bytes", i, j, sb.Name, maxSubButtonName)
			}
			if !menuButtonTypes[sb.Type] {
				return wxapi.CodeInvalidSubType, fmt.Sprintf("button[%d].sub_button[%d] (%s): type %q is not a menu button type", i, j, sb.Name, sb.Type)
			}
			if len(sb.SubButton) > 0 {
				return wxapi.CodeInvalidSubType, fmt.Sprintf("button[%d].sub_button[%d] (%s): a sub button cannot have sub buttons", i, j, sb.Name)
			}
			sb.SubButton = []menuButton{}
		}
	}
	return wxapi.CodeOK, ""
}

// seededMenu checks an Account.Menu document and returns the menu/get answer
// it seeds, nil when menu is empty. The document has the shape menu/create
// takes; it is decoded strictly (unknown fields and trailing data are
// errors) and then checked like menu/create.
func seededMenu(menu string) ([]byte, error) {
	if menu == "" {
		return nil, nil
	}
	var req struct {
		Button []menuButton `json:"button"`
	}
	dec := json.NewDecoder(strings.NewReader(menu))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return nil, fmt.Errorf(`want a JSON document like {"button":[...]}: %w`, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("data after the JSON document")
	}
	if code, problem := checkMenu(req.Button); code != wxapi.CodeOK {
		return nil, fmt.Errorf("menu/create would answer errcode %d: %s", code, problem)
	}
	return menuGetBody(req.Button), nil
}

// handleMenuGet serves GET /cgi-bin/menu/get: the menu last created (or
// seeded by Account.Menu), or 46003 when there is none. The answer is pre-encoded: this is the cheap
// token-checked call of the benchmarks.
func handleMenuGet(s *Simulator, c *call) {
	body := c.acct.menu.Load()
	if body == nil {
		c.fail(wxapi.CodeMenuNotExist)
		return
	}
	c.json(wxapi.CodeOK, *body)
}

// handleMenuDelete serves GET /cgi-bin/menu/delete.
func handleMenuDelete(s *Simulator, c *call) {
	c.acct.menu.Store(nil)
	c.json(wxapi.CodeOK, okBody)
}

var customMsgTypes = map[string]bool{
	"text": true, "image": true, "voice": true, "video": true, "music": true, "news": true,
	"mpnews": true, "mpnewsarticle": true, "msgmenu": true, "wxcard": true, "miniprogrampage": true,
}

// handleCustomSend serves POST /cgi-bin/message/custom/send.
func handleCustomSend(s *Simulator, c *call) {
	var req struct {
		ToUser  string `json:"touser"`
		MsgType string `json:"msgtype"`
		Text    *struct {
			Content string `json:"content"`
		} `json:"text"`
	}
	if !c.decodeJSON(&req) {
		return
	}
	switch {
	case !isOpenID(req.ToUser):
		c.fail(wxapi.CodeInvalidOpenID)
	case !customMsgTypes[req.MsgType]:
		c.fail(wxapi.CodeInvalidMsgType)
	case req.MsgType == "text" && (req.Text == nil || req.Text.Content == ""):
		c.fail(wxapi.CodeEmptyContent)
	default:
		c.json(wxapi.CodeOK, okBody)
	}
}

// ticketAnswer is the answer of the JS ticket APIs (both services).
type ticketAnswer struct {
	Errcode   int    `json:"errcode"`
	Errmsg    string `json:"errmsg"`
	Ticket    string `json:"ticket"`
	ExpiresIn int    `json:"expires_in"`
}

// handleGetTicket serves GET /cgi-bin/ticket/getticket?type=jsapi|wx_card.
func handleGetTicket(s *Simulator, c *call) {
	kind := c.query("type")
	if kind != "jsapi" && kind != "wx_card" {
		c.fail(wxapi.CodeInvalidArgs)
		return
	}
	s.tickets.serve(c, c.acct.label, kind, 0)
}

// ticketStore keeps the JS tickets: the same ticket while it is valid.
type ticketStore struct {
	mu sync.Mutex
	m  map[[2]string]*ticketEntry
	// calls counts ticket calls answered, by account label and type.
	calls map[[2]string]int64
	// hourly counts calls per scope and type in the current hour, for
	// WeCom's limits.
	hour   int64
	hourly map[[2]string]int
}

type ticketEntry struct {
	value   string
	expires int64
}

func newTicketStore() *ticketStore {
	return &ticketStore{m: make(map[[2]string]*ticketEntry), calls: make(map[[2]string]int64), hourly: make(map[[2]string]int)}
}

// serve answers a ticket call for the ticket of scope and kind, counting it
// for c's account; past hourlyLimit calls an hour for the scope (0: none)
// it answers 45009, as WeCom does.
func (ts *ticketStore) serve(c *call, scope, kind string, hourlyLimit int) {
	ts.mu.Lock()
	if hour := c.nowNs / int64(time.Hour); hour != ts.hour {
		ts.hour = hour
		clear(ts.hourly)
	}
	key := [2]string{scope, kind}
	if hourlyLimit > 0 && ts.hourly[key] >= hourlyLimit {
		ts.mu.Unlock()
		c.failText(wxapi.CodeDailyQuota, "api freq out of limit")
		return
	}
	ts.hourly[key]++
	ts.calls[[2]string{c.acct.label, kind}]++
	ts.mu.Unlock()
	value, left := ts.get(scope, kind, c)
	c.ok(ticketAnswer{Errmsg: "ok", Ticket: value, ExpiresIn: left})
}

// counts returns the ticket calls answered for an account, by type.
func (ts *ticketStore) counts(label string) map[string]int64 {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	out := make(map[string]int64)
	for k, n := range ts.calls {
		if k[0] == label {
			out[k[1]] = n
		}
	}
	return out
}

func (ts *ticketStore) get(scope, kind string, c *call) (string, int) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	key := [2]string{scope, kind}
	t := ts.m[key]
	if t == nil || t.expires <= c.nowNs {
		t = &ticketEntry{value: randomString("", 86), expires: c.nowNs + int64(c.set.cfg.TokenTTL)}
		ts.m[key] = t
	}
	return t.value, int((t.expires - c.nowNs) / 1e9)
}

// quotaAnswer is the answer of /cgi-bin/openapi/quota/get.
type quotaAnswer struct {
	Errcode int    `json:"errcode"`
	Errmsg  string `json:"errmsg"`
	Quota   struct {
		DailyLimit int `json:"daily_limit"`
		Used       int `json:"used"`
		Remain     int `json:"remain"`
	} `json:"quota"`
	RateLimit struct {
		CallCount     int `json:"call_count"`
		RefreshSecond int `json:"refresh_second"`
	} `json:"rate_limit"`
}

// handleQuotaGet serves POST /cgi-bin/openapi/quota/get {"cgi_path"}: the
// account's daily limit and today's use of a path.
func handleQuotaGet(s *Simulator, c *call) {
	var req struct {
		CgiPath string `json:"cgi_path"`
	}
	if !c.decodeJSON(&req) {
		return
	}
	day := c.day()
	limit, used := 0, 0
	switch req.CgiPath {
	case "/cgi-bin/token":
		limit, used = int(c.acct.tokenQuota.Load()), c.acct.tokenDay.get(day)
	case "/cgi-bin/stable_token":
		limit, used = c.set.cfg.StableDailyQuota, c.acct.stableDay.get(day)
	default:
		rt := s.routes[req.CgiPath]
		if rt == nil || rt.dailyLimit == 0 || rt.family == pathWeCom {
			c.fail(wxapi.CodeCgiPathNotFound)
			return
		}
		limit, used = rt.dailyLimit, c.acct.usage[rt.index].get(day)
	}
	if limit < 0 {
		limit = math.MaxInt32
	}
	var answer quotaAnswer
	answer.Errmsg = "ok"
	answer.Quota.DailyLimit, answer.Quota.Used, answer.Quota.Remain = limit, used, max(limit-used, 0)
	answer.RateLimit.CallCount = max(limit/1440, 1)
	answer.RateLimit.RefreshSecond = 60
	c.ok(answer)
}

// clearQuotaMonthlyLimit is how many clear_quota calls an account may make
// per calendar month.
const clearQuotaMonthlyLimit = 10

// handleClearQuota serves POST /cgi-bin/clear_quota {"appid"}: it resets
// today's API counts of the account, token and stable_token included.
func handleClearQuota(s *Simulator, c *call) {
	var req struct {
		AppID string `json:"appid"`
	}
	if !c.decodeJSON(&req) {
		return
	}
	if req.AppID != c.acct.AppID {
		c.fail(wxapi.CodeInvalidAppID)
		return
	}
	s.clearQuota(c, c.acct)
}

// handleClearQuotaV2 serves POST /cgi-bin/clear_quota/v2 with appid and
// appsecret as query parameters, form fields or members of a JSON body (no
// access token): WeChat's docs have shown the query and, later, the body.
func handleClearQuotaV2(s *Simulator, c *call) {
	appid, secret := c.query("appid"), c.query("appsecret")
	var body struct {
		AppID     string `json:"appid"`
		AppSecret string `json:"appsecret"`
	}
	if form := formValues(c); form != nil {
		body.AppID, body.AppSecret = form.Get("appid"), form.Get("appsecret")
	} else if trimmed := bytes.TrimSpace(c.body); len(trimmed) > 0 && trimmed[0] == '{' && !c.decodeJSON(&body) {
		return
	}
	if body.AppID != "" {
		appid = body.AppID
	}
	if body.AppSecret != "" {
		secret = body.AppSecret
	}
	a := c.appCredentials("client_credential", "client_credential", appid, secret)
	if a == nil {
		return
	}
	s.clearQuota(c, a)
}

// monthlyClears counts an account's quota resets in a calendar month.
type monthlyClears struct {
	month int64 // monthNumber of the month count counts in
	count int
}

// take counts one reset at now, if the month has one left
// (clearQuotaMonthlyLimit). The account's lock is held.
func (m *monthlyClears) take(now time.Time) bool {
	if month := monthNumber(now); m.month != month {
		m.month, m.count = month, 0
	}
	if m.count >= clearQuotaMonthlyLimit {
		return false
	}
	m.count++
	return true
}

func (s *Simulator) clearQuota(c *call, a *account) {
	a.mu.Lock()
	if !a.clears.take(c.now) {
		a.mu.Unlock()
		c.fail(wxapi.CodeClearQuotaLimit)
		return
	}
	a.tokenDay.reset()
	a.stableDay.reset()
	for i := range a.usage {
		a.usage[i].reset()
	}
	a.mu.Unlock()
	c.json(wxapi.CodeOK, okBody)
}

// decodeJSON decodes the request body into v; it answers 44002 for an empty
// body and 47001 for malformed JSON, wrong field types or an oversized body.
func (c *call) decodeJSON(v any) bool {
	switch {
	case c.bodyTruncated:
		c.fail(wxapi.CodeDataFormat)
		return false
	case len(bytes.TrimSpace(c.body)) == 0:
		c.fail(wxapi.CodeEmptyPost)
		return false
	}
	if err := json.Unmarshal(c.body, v); err != nil {
		c.fail(wxapi.CodeDataFormat)
		return false
	}
	return true
}
