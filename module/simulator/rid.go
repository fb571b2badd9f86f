package simulator

import (
	"sync"

	"github.com/wxgate/caddy-wechat/module/internal/wxapi"
)

// ridLogSize bounds the requests kept for rid/get (WeChat keeps them 7
// days; the simulator keeps the most recent ones).
const ridLogSize = 4096

// ridRecord is a request WeChat answered with an error, as rid/get tells
// it: the query string with every parameter (access_token, secret), the
// body and the answer.
type ridRecord struct {
	appid        string
	InvokeTime   int64  `json:"invoke_time"`
	CostInMs     int64  `json:"cost_in_ms"`
	RequestURL   string `json:"request_url"`
	RequestBody  string `json:"request_body"`
	ResponseBody string `json:"response_body"`
	ClientIP     string `json:"client_ip"`
}

// ridLog keeps the most recent error answers by rid.
type ridLog struct {
	mu    sync.Mutex
	byRID map[string]*ridRecord
	order []string // ring of rids, oldest first once full
	next  int
}

func newRidLog() *ridLog { return &ridLog{byRID: make(map[string]*ridRecord)} }

// add records the error answer of c, under its rid.
func (l *ridLog) add(c *call) {
	rec := &ridRecord{
		InvokeTime:   c.now.Unix(),
		RequestURL:   c.r.URL.RawQuery,
		RequestBody:  string(c.body),
		ResponseBody: string(c.answer),
		ClientIP:     clientIP(c.r),
	}
	switch {
	case c.owner != "":
		rec.appid = c.owner // a component's call: no account may read it
	case c.recAcct != nil:
		rec.appid = c.recAcct.AppID
	case c.acct != nil:
		rec.appid = c.acct.AppID
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.order) < ridLogSize {
		l.order = append(l.order, c.rid)
	} else {
		delete(l.byRID, l.order[l.next])
		l.order[l.next] = c.rid
		l.next = (l.next + 1) % ridLogSize
	}
	l.byRID[c.rid] = rec
}

func (l *ridLog) get(rid string) *ridRecord {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.byRID[rid]
}

// handleRidGet serves POST /cgi-bin/openapi/rid/get {"rid"}: the logged
// request of one of the account's own error answers, parameters and all.
func handleRidGet(s *Simulator, c *call) {
	var req struct {
		Rid string `json:"rid"`
	}
	if !c.decodeJSON(&req) {
		return
	}
	if req.Rid == "" {
		c.fail(wxapi.CodeRidInvalid)
		return
	}
	rec := s.rids.get(req.Rid)
	switch {
	case rec == nil:
		c.fail(wxapi.CodeRidNotFound)
	case rec.appid != "" && rec.appid != c.acct.AppID:
		c.fail(wxapi.CodeRidForbidden)
	default:
		c.ok(struct {
			Errcode int        `json:"errcode"`
			Errmsg  string     `json:"errmsg"`
			Request *ridRecord `json:"request"`
		}{0, "ok", rec})
	}
}
