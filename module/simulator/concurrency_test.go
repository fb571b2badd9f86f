package simulator

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestConcurrentUse hammers every part of the simulator from many
// goroutines; run it with -race.
func TestConcurrentUse(t *testing.T) {
	sim, err := New(testConfig())
	if err != nil {
		t.Fatal(err)
	}
	const workers, rounds = 8, 150
	var requests atomic.Int64
	do := func(method, target, body string, header http.Header) *httptest.ResponseRecorder {
		requests.Add(1)
		return serve(sim, method, target, body, header)
	}
	tokenOf := func(rec *httptest.ResponseRecorder) string {
		return between(rec.Body.String(), `"access_token":"`, `"`)
	}
	ct, upload := multipartBody(t, "media", "a.jpg", payload(2048))

	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range rounds {
				mp := tokenOf(do("GET", "/cgi-bin/token?grant_type=client_credential&appid="+mpApp+"&secret="+mpSecret, "", nil))
				stable := tokenOf(do("POST", "/cgi-bin/stable_token", fmt.Sprintf(`{"grant_type":"client_credential","appid":%q,"secret":%q,"force_refresh":%v}`, mpApp, mpSecret, i%10 == 0), nil))
				wecom := tokenOf(do("GET", "/cgi-bin/gettoken?corpid="+corpID+"&corpsecret="+appSecret1, "", nil))
				for _, tok := range []string{mp, stable} {
					rec := do("GET", "/cgi-bin/menu/get?access_token="+tok, "", nil)
					checkAnswer(t, rec)
					do("POST", "/cgi-bin/menu/create?access_token="+tok, testMenu, nil)
				}
				rec := do("POST", "/cgi-bin/media/upload?type=image&access_token="+mp, string(upload), http.Header{"Content-Type": {ct}})
				if id := between(rec.Body.String(), `"media_id":"`, `"`); id != "" {
					do("GET", "/cgi-bin/media/get?media_id="+id+"&access_token="+mp, "", nil)
				}
				do("GET", "/cgi-bin/user/get?userid=u&access_token="+wecom, "", nil)
				do("POST", "/cgi-bin/message/send?access_token="+wecom, `{"touser":"u","msgtype":"text","agentid":1000002,"text":{"content":"x"}}`, nil)
				switch (w + i) % 7 {
				case 0:
					sim.InjectFault(Fault{Path: "/cgi-bin/menu/get", Errcode: 45011, Count: 2})
				case 1:
					sim.ClearFaults("")
				case 2:
					_ = sim.Counters()
				case 3:
					sim.Clock().Advance(time.Minute)
				case 4:
					sim.InvalidateTokens(mpApp)
				case 5:
					serve(sim, "GET", "/_sim/counters", "", nil)
				case 6:
					if w == 0 && i%30 == 6 {
						sim.ResetCounters()
					}
				}
			}
		}()
	}
	wg.Wait()
	if err := sim.Reconfigure(testConfig()); err != nil {
		t.Fatal(err)
	}
	// Faults survive a reconfigure: clear the ones the storm left queued.
	sim.ClearFaults("")
	sim.ResetCounters()
	for range 10 {
		do("GET", "/cgi-bin/menu/get", "", nil)
	}
	if c := sim.Counters(); c.Calls != 10 || c.Paths["/cgi-bin/menu/get"].Rejected[41001] != 10 {
		t.Errorf("after the storm: %+v", c)
	}
	if requests.Load() < workers*rounds*8 {
		t.Errorf("only %d requests", requests.Load())
	}
}

// TestConcurrentTokenCallsCountExactly checks that quota accounting is
// exact under contention.
func TestConcurrentTokenCallsCountExactly(t *testing.T) {
	cfg := testConfig()
	cfg.DailyTokenQuota = 100
	sim, _ := New(cfg)
	var ok, refused atomic.Int64
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 25 {
				rec := serve(sim, "GET", "/cgi-bin/token?grant_type=client_credential&appid="+mpApp+"&secret="+mpSecret, "", nil)
				if strings.Contains(rec.Body.String(), "45009") {
					refused.Add(1)
				} else {
					ok.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if ok.Load() != 100 || refused.Load() != 100 || sim.Counters().Tokens[mpApp].Token != 100 {
		t.Errorf("ok %d refused %d", ok.Load(), refused.Load())
	}
	// Exactly one of the 100 tokens is current; the others are within
	// their overlap and still work.
	if n := sim.tokens.len(); n != 100 {
		t.Errorf("%d tokens indexed", n)
	}
}
