package integration

import (
	"crypto/sha1"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/silenceper/wechat/v2/cache"
	offConfig "github.com/silenceper/wechat/v2/officialaccount/config"
)

const ticketPath = "/cgi-bin/ticket/getticket?type=jsapi"

// ticketAnswer is a ticket call's answer.
type ticketAnswer struct {
	Errcode   int    `json:"errcode"`
	Ticket    string `json:"ticket"`
	ExpiresIn int    `json:"expires_in"`
}

// ticketStorm makes n concurrent ticket calls, spread over urls, and
// returns the tickets answered and how many calls failed.
func ticketStorm(n int, urls ...string) (map[string]int, int64) {
	var mu sync.Mutex
	tickets := make(map[string]int)
	failed := getStorm(n, func(i int) string { return urls[i%len(urls)] }, func(body []byte) bool {
		var a ticketAnswer
		if json.Unmarshal(body, &a) != nil || a.Errcode != 0 || a.Ticket == "" {
			return false
		}
		mu.Lock()
		tickets[a.Ticket]++
		mu.Unlock()
		return true
	})
	return tickets, failed
}

// simTickets is how many jsapi ticket calls reached the simulator.
func simTickets(e interface{ count(string) int }) int { return e.count("/cgi-bin/ticket/getticket") }

func TestTicketStormThroughTheGateway(t *testing.T) {
	e := newEnv(t, "stable_token")
	tickets, failed := ticketStorm(1000, e.gw.URL(ticketPath))
	if failed != 0 || len(tickets) != 1 {
		t.Fatalf("%d failed calls, %d distinct tickets", failed, len(tickets))
	}
	if n := simTickets(e.tap); n != 1 {
		t.Errorf("%d upstream ticket calls for 1000 through the gateway, want 1", n)
	}
}

func TestTicketStormAcrossACluster(t *testing.T) {
	c := newCluster(t, "stable_token", 3)
	var urls []string
	for _, g := range c.gws {
		urls = append(urls, g.URL(ticketPath))
	}
	tickets, failed := ticketStorm(1000, urls...)
	if failed != 0 || len(tickets) != 1 {
		t.Fatalf("%d failed calls, %d distinct tickets", failed, len(tickets))
	}
	if n := simTickets(c.tap); n != 1 {
		t.Errorf("%d upstream ticket calls cluster-wide, want 1", n)
	}
}

// TestTicketDay: a ticket asked for every 10 minutes of a simulated day,
// with the background refresh running, costs at most 14 ticket calls and
// never fails: one a lifetime and one more, plus the one early ask
// (TicketMargin before the first ticket expires) that finds the simulator
// hands the same ticket back until it expires, after which it is not asked
// early again.
func TestTicketDay(t *testing.T) {
	e := newEnv(t, "stable_token")
	for elapsed := time.Duration(0); elapsed < 24*time.Hour; elapsed += 10 * time.Minute {
		status, body := get(t, e.gw.URL(ticketPath))
		var a ticketAnswer
		if status != http.StatusOK || json.Unmarshal(body, &a) != nil || a.Errcode != 0 || a.ExpiresIn <= 0 {
			t.Fatalf("at %v: %d %s", elapsed, status, body)
		}
		e.advance(10 * time.Minute)
	}
	if n := simTickets(e.tap); n > 14 {
		t.Errorf("%d ticket calls in a day, want at most 14", n)
	}
}

// jsSign is the JS-SDK signature as WeChat documents it, written here
// independently of the gateway's and the SDKs'.
func jsSign(ticket, nonce, timestamp, url string) string {
	return fmt.Sprintf("%x", sha1.Sum([]byte("jsapi_ticket="+ticket+"&noncestr="+nonce+"&timestamp="+timestamp+"&url="+url)))
}

// gatewayTicket is the jsapi ticket the gateway serves for mp.
func gatewayTicket(t *testing.T, base func(string) string, token string) string {
	t.Helper()
	status, body := get(t, base(ticketPath+"&access_token="+token))
	var a ticketAnswer
	if status != http.StatusOK || json.Unmarshal(body, &a) != nil || a.Ticket == "" {
		t.Fatalf("ticket: %d %s", status, body)
	}
	return a.Ticket
}

func TestSDKGoSignsWithTheGatewaysTicket(t *testing.T) {
	e := newSDKEnv(t, "stable_token")
	oa := e.goSDK().GetOfficialAccount(&offConfig.Config{AppID: mpAppID, AppSecret: sdkClientKey, Cache: cache.NewMemory()})
	const page = "https://shop.example.com/item?id=7"
	cfg, err := oa.GetJs().GetConfig(page)
	if err != nil {
		t.Fatalf("GetConfig through the gateway: %v", err)
	}
	tok, err := oa.GetAccessToken()
	if err != nil {
		t.Fatal(err)
	}
	ticket := gatewayTicket(t, e.gw.URL, tok)
	if want := jsSign(ticket, cfg.NonceStr, fmt.Sprint(cfg.Timestamp), page); cfg.Signature != want {
		t.Errorf("the SDK's signature %s is not over the gateway's ticket (want %s)", cfg.Signature, want)
	}
	if n := simTickets(e.tap); n != 1 {
		t.Errorf("%d upstream ticket calls, want 1", n)
	}
}

func TestSDKNodeSignsWithTheGatewaysTicket(t *testing.T) {
	requireNode(t, "co-wechat-api")
	e := newSDKEnv(t, "stable_token")
	const page = "https://shop.example.com/item?id=8"
	var r struct {
		Config struct {
			AppID     string `json:"appId"`
			Timestamp string `json:"timestamp"`
			NonceStr  string `json:"nonceStr"`
			Signature string `json:"signature"`
		} `json:"config"`
		Ticket string `json:"ticket"`
	}
	runNodeScript(t, &r, "jsconfig.js", e.mp.URL(), mpAppID, page)
	status, body := get(t, e.gw.URL("/cgi-bin/token?grant_type=client_credential&appid="+mpAppID+"&secret="+sdkClientKey))
	var tok wxAnswer
	if status != http.StatusOK || json.Unmarshal(body, &tok) != nil {
		t.Fatalf("token: %s", body)
	}
	ticket := gatewayTicket(t, e.gw.URL, tok.AccessToken)
	if r.Ticket != ticket {
		t.Errorf("the SDK signed with another ticket than the gateway's")
	}
	if want := jsSign(ticket, r.Config.NonceStr, r.Config.Timestamp, page); r.Config.Signature != want || r.Config.AppID != mpAppID {
		t.Errorf("signature %s, want %s", r.Config.Signature, want)
	}
}
