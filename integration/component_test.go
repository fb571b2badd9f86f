package integration

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wxgate/caddy-wechat/module/simulator"
)

const (
	compAppID  = "wx3rdcomponent0001"
	compSecret = "componentsecret0123456789abcdef0"
	compToken  = "componenttoken01"
	compAESKey = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
)

// componentCaddyfile is a third-party platform: its callback route, and a
// trusted site for its component API calls.
const componentCaddyfile = `{
	admin {ADMIN}
	debug
	wechat {
		account platform component {
			appid ` + compAppID + `
			secret {env.WX_COMP_SECRET}
			token {env.WX_COMP_TOKEN}
			encoding_aes_key {env.WX_COMP_AES}
			api_base http://{UPSTREAM}
		}
		test_clock
	}
}

:{PORT} {
	wechat platform {
		trusted
	}
	reverse_proxy {UPSTREAM}
}

:{PORT2} {
	route /wechat/callback {
		wechat platform {
			callback
		}
	}
}
`

// TestComponentTokenFromPushedTicket: WeChat pushes the verify ticket to
// the platform's callback; the gateway fetches the component token with it
// and injects it into the platform's component API calls.
func TestComponentTokenFromPushedTicket(t *testing.T) {
	sim, err := simulator.New(simulator.Config{})
	if err != nil {
		t.Fatal(err)
	}
	tap := newWiretap(sim)
	srv := httptest.NewServer(tap)
	t.Cleanup(srv.Close)
	// WeChat's pushes reach the callback through a relay that keeps them,
	// to replay them.
	var gw *gateway
	deliver := func(uri, body string) (int, string) {
		resp, err := http.Post(gw.URL2(uri), "text/xml", strings.NewReader(body))
		if err != nil {
			t.Errorf("delivering a push: %v", err)
			return 0, ""
		}
		defer resp.Body.Close()
		answer, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(answer)
	}
	var pushesMu sync.Mutex
	var kept [][2]string // URI and body
	relay := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		pushesMu.Lock()
		kept = append(kept, [2]string{r.URL.RequestURI(), string(body)})
		pushesMu.Unlock()
		status, answer := deliver(r.URL.RequestURI(), string(body))
		w.WriteHeader(status)
		_, _ = io.WriteString(w, answer)
	}))
	t.Cleanup(relay.Close)
	gw = startGateway(t, componentCaddyfile, strings.TrimPrefix(srv.URL, "http://"),
		"WX_COMP_SECRET="+compSecret, "WX_COMP_TOKEN="+compToken, "WX_COMP_AES="+compAESKey)
	t.Cleanup(func() {
		gw.stop()
		assertNoLeaks(t, "the gateway's log", gw.logs(), []string{compSecret, compAESKey}, tap.allTokens())
	})
	if err := sim.Reconfigure(simulator.Config{
		Components:              []simulator.Component{{AppID: compAppID, Secret: compSecret, Token: compToken, EncodingAESKey: compAESKey, CallbackURL: relay.URL + "/wechat/callback"}},
		ComponentTicketInterval: -1,
	}); err != nil {
		t.Fatal(err)
	}
	preauth := func() (int, []byte) {
		req, _ := http.NewRequest("POST", gw.URL("/cgi-bin/component/api_create_preauthcode"), strings.NewReader(`{"component_appid":"`+compAppID+`"}`))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var b strings.Builder
		_, _ = io.Copy(&b, resp.Body)
		return resp.StatusCode, []byte(b.String())
	}
	// Before any ticket, there is no component token.
	if _, body := preauth(); errcodeOf(body) != -1 || !strings.Contains(string(body), "component_verify_ticket") {
		t.Fatalf("before the ticket: %s", body)
	}
	pushes, err := sim.PushComponentTicket(compAppID)
	if err != nil || len(pushes) != 1 || !pushes[0].Delivered {
		t.Fatalf("pushing the ticket: %+v, %v", pushes, err)
	}
	// The same push again is refused, also after a reload.
	pushesMu.Lock()
	first := kept[0]
	pushesMu.Unlock()
	for _, when := range []string{"at once", "after a reload"} {
		if when != "at once" {
			gw.reload()
		}
		if status, answer := deliver(first[0], first[1]); status != http.StatusBadRequest || !strings.Contains(answer, "replayed") {
			t.Errorf("the push replayed %s: %d %q, want 400 (replayed)", when, status, answer)
		}
	}
	gw.advance(5 * time.Minute) // past the backoff of the failed first attempt
	sim.Clock().Advance(5 * time.Minute)
	for range 3 {
		status, body := preauth()
		if status != http.StatusOK || errcodeOf(body) != 0 || !strings.Contains(string(body), `"pre_auth_code"`) {
			t.Fatalf("api_create_preauthcode through the gateway: %d %s", status, body)
		}
	}
	if n := sim.Counters().Components[compAppID].ComponentToken; n != 1 {
		t.Errorf("%d component tokens fetched, want 1", n)
	}
	// The platform's own token call is answered by the gateway.
	if status, body := get(t, gw.URL("/cgi-bin/component/api_component_token")); status != 200 || !strings.Contains(string(body), "component_access_token") {
		t.Errorf("api_component_token on the platform's site: %d %s", status, body)
	}
	// A forged or replayed push is refused.
	resp, err := http.Post(gw.URL2("/wechat/callback?msg_signature=0&timestamp=1&nonce=2"), "text/xml", strings.NewReader("<xml><Encrypt>x</Encrypt></xml>"))
	if err != nil || resp.StatusCode != http.StatusBadRequest {
		t.Errorf("a forged push: %v %v", err, resp)
	}
}
