package caddywechat

import (
	"crypto/sha1"
	"encoding/json"
	"fmt"
	"net/url"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wxgate/caddy-wechat/module/internal/wxapi"
)

type ticketAnswer struct {
	Errcode   int    `json:"errcode"`
	Errmsg    string `json:"errmsg"`
	Ticket    string `json:"ticket"`
	ExpiresIn int    `json:"expires_in"`
}

func decodeTicket(t *testing.T, body []byte) ticketAnswer {
	t.Helper()
	var a ticketAnswer
	if err := json.Unmarshal(body, &a); err != nil || a.Errcode != 0 || a.Errmsg != "ok" || a.Ticket == "" {
		t.Fatalf("ticket answer %s (%v)", body, err)
	}
	return a
}

// TestTicketsServedFromTheCache: the first ticket call fetches the ticket
// once; later ones, and a storm of 1000, are answered from the cache, with
// expires_in counting down.
func TestTicketsServedFromTheCache(t *testing.T) {
	g := newGateway(t)
	site := g.trustedSite()
	first := decodeTicket(t, g.get(site, "/cgi-bin/ticket/getticket?type=jsapi").Body.Bytes())
	if first.ExpiresIn != 7200 {
		t.Errorf("expires_in %d, want 7200", first.ExpiresIn)
	}
	g.advance(10 * time.Minute)
	var wg sync.WaitGroup
	for range 1000 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rec := g.get(site, "/cgi-bin/ticket/getticket?type=jsapi")
			var a ticketAnswer
			if json.Unmarshal(rec.Body.Bytes(), &a) != nil || a.Ticket != first.Ticket || a.ExpiresIn != 6600 {
				t.Errorf("storm answer %s", rec.Body.String())
			}
		}()
	}
	wg.Wait()
	if n := g.sim.Counters().Tokens[mpAppID].Tickets["jsapi"]; n != 1 {
		t.Errorf("%d upstream ticket calls, want 1", n)
	}
	if seen := g.upstreamRequests(); len(seen) != 0 {
		t.Errorf("%d ticket calls went through next; the gateway answers them", len(seen))
	}
	// wx_card is another ticket.
	card := decodeTicket(t, g.get(site, "/cgi-bin/ticket/getticket?type=wx_card").Body.Bytes())
	if card.Ticket == first.Ticket {
		t.Error("wx_card got the jsapi ticket")
	}
	wantErrcode(t, g.get(site, "/cgi-bin/ticket/getticket?type=other"), wxapi.CodeInvalidArgs)
	wantErrcode(t, g.get(site, "/cgi-bin/get_jsapi_ticket"), wxapi.CodeAPIUnauthorized)
}

func TestWeComTickets(t *testing.T) {
	g := newGateway(t)
	site := g.clientsSite()
	gw := g.gatewayToken(site, "wecom", corpID, shopKey)
	corp := decodeTicket(t, g.get(site, "/cgi-bin/get_jsapi_ticket?access_token="+gw).Body.Bytes())
	agent := decodeTicket(t, g.get(site, "/cgi-bin/ticket/get?type=agent_config&access_token="+gw).Body.Bytes())
	if corp.Ticket == agent.Ticket {
		t.Error("the corp and agent tickets are the same")
	}
	wantErrcode(t, g.get(site, "/cgi-bin/ticket/get?type=jsapi&access_token="+gw), wxapi.CodeInvalidArgs)
	wantErrcode(t, g.get(site, "/cgi-bin/ticket/getticket?type=jsapi&access_token="+gw), wxapi.CodeAPIUnauthorized)
	// Clients mode: a gateway token is needed, and the client's paths apply.
	wantErrcode(t, g.get(site, "/cgi-bin/get_jsapi_ticket"), wxapi.CodeTokenMissing)
	menu := g.gatewayToken(site, "official", mpAppID, menuKey)
	wantErrcode(t, g.get(site, "/cgi-bin/ticket/getticket?type=jsapi&access_token="+menu), wxapi.CodeAPIUnauthorized)
	if seen := g.upstreamRequests(); len(seen) != 0 {
		t.Errorf("%d ticket calls went through next", len(seen))
	}
}

// independentSignature computes the JS-SDK signature from WeChat's
// description: sort the parameters by name, join name=value with '&',
// SHA-1, lower-case hex.
func independentSignature(params map[string]string) string {
	keys := make([]string, 0, len(params))
	for k := range params {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, k+"="+params[k])
	}
	return fmt.Sprintf("%x", sha1.Sum([]byte(strings.Join(parts, "&"))))
}

type jssdkAnswer struct {
	Errcode   int    `json:"errcode"`
	AppID     string `json:"appId"`
	Timestamp int64  `json:"timestamp"`
	NonceStr  string `json:"nonceStr"`
	Signature string `json:"signature"`
	Agent     *struct {
		CorpID    string `json:"corpid"`
		Timestamp int64  `json:"timestamp"`
		NonceStr  string `json:"nonceStr"`
		Signature string `json:"signature"`
	} `json:"agentConfig"`
}

func TestJSSDKConfigSignature(t *testing.T) {
	g := newGateway(t)
	site := g.clientsSite()
	gw := g.gatewayToken(site, "official", mpAppID, shopKey)
	page := "https://shop.example.com/item?id=1&from=timeline#comments"
	rec := g.get(site, "/wechat-gateway/jssdk_config?url="+url.QueryEscape(page)+"&access_token="+gw)
	var a jssdkAnswer
	if err := json.Unmarshal(rec.Body.Bytes(), &a); err != nil || a.Errcode != 0 || a.AppID != mpAppID || len(a.NonceStr) != 16 {
		t.Fatalf("jssdk_config: %s", rec.Body.String())
	}
	ticket := decodeTicket(t, g.get(site, "/cgi-bin/ticket/getticket?type=jsapi&access_token="+gw).Body.Bytes()).Ticket
	want := independentSignature(map[string]string{
		"noncestr": a.NonceStr, "jsapi_ticket": ticket, "timestamp": fmt.Sprint(a.Timestamp),
		"url": "https://shop.example.com/item?id=1&from=timeline", // the fragment is not signed
	})
	if a.Signature != want {
		t.Errorf("signature %s, want %s", a.Signature, want)
	}
	if a.Timestamp != g.clock.Now().Unix() {
		t.Errorf("timestamp %d, want the gateway's now", a.Timestamp)
	}
	for _, bad := range []string{"", "url=", "url=ftp%3A%2F%2Fx", "url=%2Frelative", "url=https%3A%2F%2Fa&url=https%3A%2F%2Fb"} {
		wantErrcode(t, g.get(site, "/wechat-gateway/jssdk_config?"+bad+"&access_token="+gw), wxapi.CodeInvalidArgs)
	}
	wantErrcode(t, g.get(site, "/wechat-gateway/jssdk_config?url="+url.QueryEscape(page)), wxapi.CodeTokenMissing)
}

func TestJSSDKConfigWeComAgent(t *testing.T) {
	g := newGateway(t)
	site := g.clientsSite()
	gw := g.gatewayToken(site, "wecom", corpID, shopKey)
	page := "https://oa.example.com/app"
	rec := g.get(site, "/wechat-gateway/jssdk_config?url="+url.QueryEscape(page)+"&access_token="+gw)
	var a jssdkAnswer
	if err := json.Unmarshal(rec.Body.Bytes(), &a); err != nil || a.AppID != corpID || a.Agent == nil || a.Agent.CorpID != corpID {
		t.Fatalf("jssdk_config for WeCom: %s", rec.Body.String())
	}
	corp := decodeTicket(t, g.get(site, "/cgi-bin/get_jsapi_ticket?access_token="+gw).Body.Bytes()).Ticket
	agent := decodeTicket(t, g.get(site, "/cgi-bin/ticket/get?type=agent_config&access_token="+gw).Body.Bytes()).Ticket
	if want := independentSignature(map[string]string{"jsapi_ticket": corp, "noncestr": a.NonceStr, "timestamp": fmt.Sprint(a.Timestamp), "url": page}); a.Signature != want {
		t.Errorf("wx.config signature %s, want %s", a.Signature, want)
	}
	if want := independentSignature(map[string]string{"jsapi_ticket": agent, "noncestr": a.Agent.NonceStr, "timestamp": fmt.Sprint(a.Agent.Timestamp), "url": page}); a.Agent.Signature != want {
		t.Errorf("wx.agentConfig signature %s, want %s", a.Agent.Signature, want)
	}
}
