package simulator

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"

	"github.com/wxgate/caddy-wechat/module/internal/wxapi"
)

// wecomRoutes are the business paths only qyapi.weixin.qq.com serves (the
// shared media paths are in officialRoutes).
func wecomRoutes() []*route {
	return []*route{
		{path: "/cgi-bin/user/get", family: pathWeCom, auth: true, methods: allowGET, handle: handleWeComUserGet},
		{path: "/cgi-bin/message/send", family: pathWeCom, auth: true, methods: allowPOST, handle: handleWeComSend},
		{path: "/cgi-bin/get_jsapi_ticket", family: pathWeCom, auth: true, methods: allowGET, handle: handleWeComJSAPITicket},
		{path: "/cgi-bin/ticket/get", family: pathWeCom, auth: true, methods: allowGET, handle: handleWeComAgentTicket},
		{path: "/cgi-bin/auth/getuserinfo", family: pathWeCom, auth: true, methods: allowGET, handle: handleWeComGetUserInfo},
		{path: "/cgi-bin/miniprogram/jscode2session", family: pathWeCom, auth: true, methods: allowGET, handle: handleWeComCode2Session},
	}
}

// isUserID reports whether s is a well-formed WeCom userid.
func isUserID(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("_-.@", c) >= 0) {
			return false
		}
	}
	return true
}

// wecomUser is the answer of qyapi /cgi-bin/user/get.
type wecomUser struct {
	Errcode        int      `json:"errcode"`
	Errmsg         string   `json:"errmsg"`
	UserID         string   `json:"userid"`
	Name           string   `json:"name"`
	Department     []int    `json:"department"`
	Order          []int    `json:"order"`
	Position       string   `json:"position"`
	Status         int      `json:"status"`
	IsLeaderInDept []int    `json:"is_leader_in_dept"`
	DirectLeader   []string `json:"direct_leader"`
	Enable         int      `json:"enable"`
	MainDepartment int      `json:"main_department"`
	Alias          string   `json:"alias"`
}

// handleWeComUserGet serves GET /cgi-bin/user/get?userid=: every well-formed
// userid is an active member of department 1.
func handleWeComUserGet(s *Simulator, c *call) {
	userid, ok := c.userParam("userid", isUserID, wxapi.CodeUserIDNotFound)
	if !ok {
		return
	}
	c.ok(wecomUser{
		Errmsg:         "ok",
		UserID:         userid,
		Name:           userid,
		Department:     []int{1},
		Order:          []int{0},
		Status:         1,
		IsLeaderInDept: []int{0},
		DirectLeader:   []string{},
		Enable:         1,
		MainDepartment: 1,
	})
}

var wecomMsgTypes = map[string]bool{
	"text": true, "image": true, "voice": true, "video": true, "file": true, "textcard": true,
	"news": true, "mpnews": true, "markdown": true, "miniprogram_notice": true, "template_card": true,
}

// wecomSendAnswer is the answer of qyapi /cgi-bin/message/send; msgid is a
// string, as on the real service.
type wecomSendAnswer struct {
	Errcode        int    `json:"errcode"`
	Errmsg         string `json:"errmsg"`
	InvalidUser    string `json:"invaliduser"`
	InvalidParty   string `json:"invalidparty"`
	InvalidTag     string `json:"invalidtag"`
	UnlicensedUser string `json:"unlicenseduser"`
	MsgID          string `json:"msgid"`
	ResponseCode   string `json:"response_code,omitempty"`
}

// handleWeComSend serves POST qyapi /cgi-bin/message/send.
func handleWeComSend(s *Simulator, c *call) {
	var req struct {
		ToUser  string          `json:"touser"`
		ToParty string          `json:"toparty"`
		ToTag   string          `json:"totag"`
		MsgType string          `json:"msgtype"`
		AgentID json.RawMessage `json:"agentid"`
		Text    *struct {
			Content string `json:"content"`
		} `json:"text"`
	}
	if !c.decodeJSON(&req) {
		return
	}
	agentid, ok := parseAgentID(req.AgentID)
	switch {
	case !ok:
		c.fail(wxapi.CodeAgentIDMissing)
		return
	case c.acct.AgentID != "" && agentid != c.acct.AgentID:
		c.fail(wxapi.CodeAgentMismatch)
		return
	case !wecomMsgTypes[req.MsgType]:
		c.fail(wxapi.CodeInvalidMsgType)
		return
	case req.MsgType == "text" && (req.Text == nil || req.Text.Content == ""):
		c.fail(wxapi.CodeEmptyContent)
		return
	}
	var invalid []string
	valid := 0
	if req.ToUser != "" {
		for _, u := range strings.Split(req.ToUser, "|") {
			if u == "@all" || isUserID(u) {
				valid++
			} else {
				invalid = append(invalid, u)
			}
		}
	}
	if valid == 0 && req.ToParty == "" && req.ToTag == "" {
		c.fail(wxapi.CodeUsersInvalid)
		return
	}
	answer := wecomSendAnswer{
		Errmsg:      "ok",
		InvalidUser: strings.Join(invalid, "|"),
		MsgID:       randomString("", 40),
	}
	if req.MsgType == "template_card" {
		answer.ResponseCode = randomString("", 32)
	}
	c.ok(answer)
}

// parseAgentID accepts the agentid as a JSON number or a string of digits.
func parseAgentID(raw json.RawMessage) (string, bool) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return "", false
	}
	if raw[0] == '"' {
		var s string
		if json.Unmarshal(raw, &s) != nil || !isDigits(s) {
			return "", false
		}
		return s, true
	}
	n, err := strconv.ParseUint(string(raw), 10, 63)
	if err != nil {
		return "", false
	}
	return strconv.FormatUint(n, 10), true
}

// handleWeComJSAPITicket serves GET /cgi-bin/get_jsapi_ticket (one ticket
// per corp).
func handleWeComJSAPITicket(s *Simulator, c *call) {
	s.tickets.serve(c, "corp:"+c.acct.AppID, "jsapi", corpTicketsPerHour)
}

// WeCom's limits on ticket calls: per corp for the corp's jsapi ticket,
// per app for agent_config.
const (
	corpTicketsPerHour  = 400
	agentTicketsPerHour = 100
)

// handleWeComAgentTicket serves GET /cgi-bin/ticket/get?type=agent_config
// (one ticket per app).
func handleWeComAgentTicket(s *Simulator, c *call) {
	if c.query("type") != "agent_config" {
		c.fail(wxapi.CodeInvalidArgs)
		return
	}
	s.tickets.serve(c, c.acct.label, "agent_config", agentTicketsPerHour)
}

// wecomUserInfoAnswer is the answer of qyapi /cgi-bin/auth/getuserinfo.
type wecomUserInfoAnswer struct {
	Errcode    int    `json:"errcode"`
	Errmsg     string `json:"errmsg"`
	UserID     string `json:"userid"`
	UserTicket string `json:"user_ticket"`
}

// handleWeComGetUserInfo serves GET /cgi-bin/auth/getuserinfo?code=: a web
// login code of a member for the member's userid. A code works once.
func handleWeComGetUserInfo(s *Simulator, c *call) {
	code := c.query("code")
	if userid, ok := c.spendWeComCode(code); ok {
		c.ok(wecomUserInfoAnswer{Errmsg: "ok", UserID: userid, UserTicket: deriveID("t", c.acct.AppID, code)})
	}
}

// wecomSessionAnswer is the answer of qyapi
// /cgi-bin/miniprogram/jscode2session.
type wecomSessionAnswer struct {
	Errcode    int    `json:"errcode"`
	Errmsg     string `json:"errmsg"`
	CorpID     string `json:"corpid"`
	UserID     string `json:"userid"`
	SessionKey string `json:"session_key"`
}

// handleWeComCode2Session serves GET /cgi-bin/miniprogram/jscode2session
// ?js_code=&grant_type=authorization_code: a WeCom mini program's login.
func handleWeComCode2Session(s *Simulator, c *call) {
	if c.query("grant_type") != "authorization_code" {
		c.fail(wxapi.CodeInvalidGrantType)
		return
	}
	code := c.query("js_code")
	if userid, ok := c.spendWeComCode(code); ok {
		c.ok(wecomSessionAnswer{Errmsg: "ok", CorpID: c.acct.AppID, UserID: userid, SessionKey: sessionKey(c.acct.Secret, code)})
	}
}

// spendWeComCode spends a login code of the call's WeCom app (see useCode)
// and returns the member it stands for; it answers the error and reports
// false when the code is not usable.
func (c *call) spendWeComCode(code string) (userid string, ok bool) {
	c.acct.mu.Lock()
	defer c.acct.mu.Unlock()
	if !c.useCode(c.acct, code) {
		return "", false
	}
	return codeUser(code), true
}
