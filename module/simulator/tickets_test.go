package simulator

import (
	"testing"

	"github.com/wxgate/caddy-wechat/module/internal/wxapi"
)

// TestTicketCountsAndWeComLimits: ticket calls are counted per account and
// type, and WeCom answers 45009 past 100 agent_config tickets an hour per
// app and 400 corp tickets an hour per corp.
func TestTicketCountsAndWeComLimits(t *testing.T) {
	h := start(t)
	tok := h.mpToken()
	for range 3 {
		expectCode(t, h.get("/cgi-bin/ticket/getticket", tq(tok, "type", "jsapi")), 0)
	}
	expectCode(t, h.get("/cgi-bin/ticket/getticket", tq(tok, "type", "wx_card")), 0)
	if got := h.sim.Counters().Tokens[mpApp].Tickets; got["jsapi"] != 3 || got["wx_card"] != 1 {
		t.Errorf("ticket counters %v, want jsapi 3, wx_card 1", got)
	}
	w1, _ := h.wecomToken(appSecret1)
	w2, _ := h.wecomToken(appSecret2)
	for range 100 {
		expectCode(t, h.qyGet("/cgi-bin/ticket/get", tq(w1, "type", "agent_config")), 0)
	}
	expectWeCom(t, h.qyGet("/cgi-bin/ticket/get", tq(w1, "type", "agent_config")), wxapi.CodeDailyQuota)
	expectCode(t, h.qyGet("/cgi-bin/ticket/get", tq(w2, "type", "agent_config")), 0) // another app
	for i := range 400 {
		tok := w1
		if i%2 == 1 {
			tok = w2
		}
		expectCode(t, h.qyGet("/cgi-bin/get_jsapi_ticket", tq(tok)), 0)
	}
	expectWeCom(t, h.qyGet("/cgi-bin/get_jsapi_ticket", tq(w2)), wxapi.CodeDailyQuota) // the corp's limit
	h.advance(3600e9)
	expectCode(t, h.qyGet("/cgi-bin/get_jsapi_ticket", tq(w1)), 0)
	expectCode(t, h.qyGet("/cgi-bin/ticket/get", tq(w1, "type", "agent_config")), 0)
}
