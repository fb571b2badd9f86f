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

// ticket calls a ticket endpoint of site and fails the test unless it
// answers a ticket.
func (g *gateway) ticket(site *Handler, target string) ticketAnswer {
	g.t.Helper()
	body := g.get(site, target).Body.Bytes()
	var a ticketAnswer
	if err := json.Unmarshal(body, &a); err != nil || a.Errcode != 0 || a.Errmsg != "ok" || a.Ticket == "" {
		g.t.Fatalf("ticket answer %s (%v)", body, err)
	}
	return a
}

// TestTicketsServedFromTheCache: the first ticket call fetches the ticket
// once; later ones, and a storm of 1000, are answered from the cache, with
// expires_in counting down.
func TestTicketsServedFromTheCache(t *testing.T) {
	g := newGateway(t)
	site := g.trustedSite()
	first := g.ticket(site, "/cgi-bin/ticket/getticket?type=jsapi")
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
	card := g.ticket(site, "/cgi-bin/ticket/getticket?type=wx_card")
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
	corp := g.ticket(site, "/cgi-bin/get_jsapi_ticket?access_token="+gw)
	agent := g.ticket(site, "/cgi-bin/ticket/get?type=agent_config&access_token="+gw)
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

// jssdkSignature is the signature of wx.config or wx.agentConfig for page,
// computed independently.
func jssdkSignature(ticket, nonce string, timestamp int64, page string) string {
	return independentSignature(map[string]string{"jsapi_ticket": ticket, "noncestr": nonce, "timestamp": fmt.Sprint(timestamp), "url": page})
}

// TestJSSDKConfig: jssdk_config signs wx.config with the account's jsapi
// ticket and, for a WeCom app, wx.agentConfig with its agent_config ticket.
func TestJSSDKConfig(t *testing.T) {
	for _, c := range []struct {
		name, kind, appid string
		page, signed      string // the page asked for, and the URL signed: the fragment is not
		ticketCall        string // the call that answers wx.config's ticket, without its access_token
		agent             bool   // whether wx.agentConfig comes too
	}{
		{"official account", "official", mpAppID, "https://shop.example.com/item?id=1&from=timeline#comments",
			"https://shop.example.com/item?id=1&from=timeline", "/cgi-bin/ticket/getticket?type=jsapi&", false},
		{"WeCom app", "wecom", corpID, "https://oa.example.com/app",
			"https://oa.example.com/app", "/cgi-bin/get_jsapi_ticket?", true},
	} {
		t.Run(c.name, func(t *testing.T) {
			g := newGateway(t)
			site := g.clientsSite()
			gw := g.gatewayToken(site, c.kind, c.appid, shopKey)
			rec := g.get(site, "/wechat-gateway/jssdk_config?url="+url.QueryEscape(c.page)+"&access_token="+gw)
			var a jssdkAnswer
			if err := json.Unmarshal(rec.Body.Bytes(), &a); err != nil || a.Errcode != 0 || a.AppID != c.appid || len(a.NonceStr) != 16 || (a.Agent != nil) != c.agent {
				t.Fatalf("jssdk_config: %s", rec.Body.String())
			}
			if a.Timestamp != g.clock.Now().Unix() {
				t.Errorf("timestamp %d, want the gateway's now", a.Timestamp)
			}
			ticket := g.ticket(site, c.ticketCall+"access_token="+gw).Ticket
			if want := jssdkSignature(ticket, a.NonceStr, a.Timestamp, c.signed); a.Signature != want {
				t.Errorf("wx.config signature %s, want %s", a.Signature, want)
			}
			if c.agent {
				if a.Agent.CorpID != c.appid {
					t.Errorf("wx.agentConfig of corp %q, want %q", a.Agent.CorpID, c.appid)
				}
				agent := g.ticket(site, "/cgi-bin/ticket/get?type=agent_config&access_token="+gw).Ticket
				if want := jssdkSignature(agent, a.Agent.NonceStr, a.Agent.Timestamp, c.signed); a.Agent.Signature != want {
					t.Errorf("wx.agentConfig signature %s, want %s", a.Agent.Signature, want)
				}
			}
			for _, bad := range []string{"", "url=", "url=ftp%3A%2F%2Fx", "url=%2Frelative", "url=https%3A%2F%2Fa&url=https%3A%2F%2Fb"} {
				wantErrcode(t, g.get(site, "/wechat-gateway/jssdk_config?"+bad+"&access_token="+gw), wxapi.CodeInvalidArgs)
			}
			wantErrcode(t, g.get(site, "/wechat-gateway/jssdk_config?url="+url.QueryEscape(c.page)), wxapi.CodeTokenMissing)
		})
	}
}
