package integration

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/wxgate/caddy-wechat/module/simulator"
)

// scrape reads the gateway's /metrics (Caddy's, on the admin endpoint).
func scrape(t *testing.T, g *gateway) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(g.Admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parsing /metrics: %v", err)
	}
	return fams
}

// metricValue sums the samples of a family whose labels include want.
func metricValue(fams map[string]*dto.MetricFamily, name string, want map[string]string) float64 {
	f := fams[name]
	if f == nil {
		return 0
	}
	sum := 0.0
	for _, m := range f.Metric {
		ok := true
		for k, v := range want {
			found := false
			for _, lp := range m.Label {
				found = found || (lp.GetName() == k && lp.GetValue() == v)
			}
			ok = ok && found
		}
		if !ok {
			continue
		}
		switch {
		case m.Counter != nil:
			sum += m.Counter.GetValue()
		case m.Gauge != nil:
			sum += m.Gauge.GetValue()
		case m.Histogram != nil:
			sum += float64(m.Histogram.GetSampleCount())
		}
	}
	return sum
}

// TestMetricsMatchTheSimulator: after a storm, a simulated day and a guard
// trip, the gateway's metrics agree with the simulator's own counts.
func TestMetricsMatchTheSimulator(t *testing.T) {
	e := newEnv(t, "stable_token")
	e.call()
	// A storm across an invalidation: 50 calls, one refresh.
	e.advance(time.Minute)
	if _, err := e.sim.InvalidateTokens(mpAppID); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			get(t, e.gw.URL(userInfoPath+"?openid=o6_bmjrPTlm6_2sgVt7hMZOPfL2M"))
		}()
	}
	wg.Wait()
	// A simulated day.
	for range 24 * 6 {
		e.call()
		e.advance(10 * time.Minute)
	}
	// A guard trip: the secret stops working.
	e.advance(2 * time.Hour)
	if _, err := e.sim.InjectFault(simulator.Fault{Path: "/cgi-bin/stable_token", Errcode: 40125}); err != nil {
		t.Fatal(err)
	}
	get(t, e.gw.URL(userInfoPath+"?openid=x"))

	fams := scrape(t, e.gw)
	counts := e.sim.Counters()
	mp := map[string]string{"account": "mp"}
	if got, want := metricValue(fams, "caddy_wechat_token_calls_total", map[string]string{"account": "mp", "result": "ok"}), float64(counts.Tokens[mpAppID].StableToken); got != want {
		t.Errorf("token calls ok: metric %v, simulator %v", got, want)
	}
	if got, want := metricValue(fams, "caddy_wechat_token_calls_total", map[string]string{"account": "mp", "result": "config"}), float64(counts.Paths["/cgi-bin/stable_token"].Rejected[40125]); got != want || got == 0 {
		t.Errorf("token calls refused for the secret: metric %v, simulator %v", got, want)
	}
	if got, want := metricValue(fams, "caddy_wechat_token_rejections_total", mp), float64(counts.AppTokenRejections); got != want || got == 0 {
		t.Errorf("rejections: metric %v, simulator %v", got, want)
	}
	if got := metricValue(fams, "caddy_wechat_replays_total", map[string]string{"account": "mp", "result": "ok"}); got == 0 {
		t.Error("no replay counted")
	}
	if got := metricValue(fams, "caddy_wechat_guard_tripped", mp); got != 1 {
		t.Errorf("guard_tripped %v, want 1", got)
	}
	if got, want := metricValue(fams, "caddy_wechat_budget_used", mp), float64(e.gw.accounts()["mp"].CallsToday); got != want {
		t.Errorf("budget_used %v, admin API says %v", got, want)
	}
	if got := metricValue(fams, "caddy_wechat_refresh_duration_seconds", mp); got == 0 {
		t.Error("no refresh timed")
	}
	if got := metricValue(fams, "caddy_wechat_calls_total", map[string]string{"account": "mp", "result": "passed"}); got < 24*6 {
		t.Errorf("calls passed %v, want at least %d", got, 24*6)
	}
	text := fmt.Sprint(fams)
	assertNoLeaks(t, "/metrics", text, []string{mpSecret, corpSecret}, e.tap.allTokens())
}

// TestRefreshIsCompareAndRefresh: ten operators pressing refresh for the
// same generation at once make one fetch.
func TestRefreshIsCompareAndRefresh(t *testing.T) {
	e := newEnv(t, "stable_token")
	e.call()
	gen := e.gw.accounts()["mp"].Generation
	before := e.tokenCalls()
	var wg sync.WaitGroup
	codes := make(chan int, 10)
	for range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := http.Post(e.gw.Admin+"/wechat/accounts/mp/refresh", "application/json", strings.NewReader(fmt.Sprintf(`{"if_generation":%d}`, gen)))
			if err != nil {
				codes <- 0
				return
			}
			resp.Body.Close()
			codes <- resp.StatusCode
		}()
	}
	wg.Wait()
	close(codes)
	for c := range codes {
		if c != http.StatusOK {
			t.Errorf("refresh answered %d", c)
		}
	}
	if n := e.tokenCalls() - before; n != 1 {
		t.Errorf("%d fetches for ten refreshes of generation %d, want 1", n, gen)
	}
	if st := e.gw.accounts()["mp"]; st.Generation != gen+1 {
		t.Errorf("generation %d, want %d", st.Generation, gen+1)
	}
	e.call()
	if !strings.Contains(e.gw.logs(), `"token refresh asked through the admin API"`) || !strings.Contains(e.gw.logs(), `"remote_addr":"127.0.0.1:`) {
		t.Error("the refresh is not logged with who asked")
	}
	status, body := get(t, e.gw.Admin+"/wechat/accounts/mp")
	if status != http.StatusOK || !bytes.Contains(body, []byte(`"name":"mp"`)) || !bytes.Contains(body, []byte(`"tickets"`)) {
		t.Errorf("GET /wechat/accounts/mp: %d %s", status, body)
	}
	assertNoLeaks(t, "the admin API", string(body), []string{mpSecret}, e.tap.allTokens())
	if status, _ := get(t, e.gw.Admin+"/wechat/accounts/nobody"); status != http.StatusNotFound {
		t.Errorf("an unknown account: %d", status)
	}
}

const fileSecretCaddyfile = `{
	admin {ADMIN}
	wechat {
		account mp official {
			appid ` + mpAppID + `
			secret {file.{SECRETFILE}}
			api_base http://{UPSTREAM}
		}
	}
}

:{PORT} {
	wechat mp {
		trusted
	}
	reverse_proxy {UPSTREAM}
}
`

// TestResumeAfterFixingTheSecret: a wrong secret stops refreshing; once the
// operator fixes the file it comes from, resume works without a restart.
func TestResumeAfterFixingTheSecret(t *testing.T) {
	sim, err := simulator.New(simulator.Config{Accounts: []simulator.Account{{Kind: simulator.KindOfficial, AppID: mpAppID, Secret: mpSecret}}})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, sim: sim, tap: newWiretap(sim)}
	e.srv = httptest.NewServer(e.tap)
	t.Cleanup(e.srv.Close)
	secretFile := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secretFile, []byte("wrong-secret-0123456789abcdef0123"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := strings.ReplaceAll(fileSecretCaddyfile, "{SECRETFILE}", secretFile)
	e.gw = startGateway(t, cfg, strings.TrimPrefix(e.srv.URL, "http://"))
	_, body := get(t, e.gw.URL(userInfoPath+"?openid=o6_bmjrPTlm6_2sgVt7hMZOPfL2M"))
	if errcodeOf(body) != -1 || !e.gw.accounts()["mp"].Stopped {
		t.Fatalf("with a wrong secret: %s, %+v", body, e.gw.accounts()["mp"])
	}
	pid := e.gw.cmd.Process.Pid
	if err := os.WriteFile(secretFile, []byte(mpSecret), 0o600); err != nil {
		t.Fatal(err)
	}
	resp, err := http.Post(e.gw.Admin+"/wechat/accounts/mp/resume", "application/json", nil)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("resume: %v %v", err, resp)
	}
	resp.Body.Close()
	e.call()
	if st := e.gw.accounts()["mp"]; st.Stopped || !st.HasToken {
		t.Errorf("after resume: %+v", st)
	}
	if e.gw.cmd.Process.Pid != pid {
		t.Error("the gateway restarted")
	}
	assertNoLeaks(t, "the gateway's log", e.gw.logs(), []string{mpSecret, "wrong-secret-0123456789abcdef0123"}, e.tap.allTokens())
}

// TestWeChatSubcommand: caddy wechat status and refresh talk to the admin
// endpoint.
func TestWeChatSubcommand(t *testing.T) {
	e := newEnv(t, "stable_token")
	e.call()
	addr := strings.TrimPrefix(e.gw.Admin, "http://")
	out, err := exec.Command(caddyBin, "wechat", "status", "--address", addr).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "ACCOUNT") || !strings.Contains(string(out), "mp") || !strings.Contains(string(out), "corp") {
		t.Fatalf("caddy wechat status: %v\n%s", err, out)
	}
	if strings.Contains(string(out), "\x1b[") {
		t.Error("colour on a pipe")
	}
	before := e.tokenCalls()
	out, err = exec.Command(caddyBin, "wechat", "refresh", "mp", "--address", addr).CombinedOutput()
	if err != nil || e.tokenCalls() != before+1 {
		t.Fatalf("caddy wechat refresh mp: %v (%d fetches)\n%s", err, e.tokenCalls()-before, out)
	}
	if out, err := exec.Command(caddyBin, "wechat", "refresh", "nobody", "--address", addr).CombinedOutput(); err == nil {
		t.Errorf("refreshing an unknown account succeeded:\n%s", out)
	}
	assertNoLeaks(t, "the subcommand's output", string(out), []string{mpSecret, corpSecret}, e.tap.allTokens())
}

// TestFailedReloadKeepsTheRunningConfig: a new config whose wechat app
// started but whose site could not listen (its port taken) is rolled back
// by Caddy; the config still running keeps fetching from its own api_base.
// (The failed one's accounts had taken over the shared token manager.)
// Caddy starts apps in map order, so the load is tried several times.
func TestFailedReloadKeepsTheRunningConfig(t *testing.T) {
	e := newEnv(t, "stable_token")
	e.call()
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	cfg, err := os.ReadFile(e.gw.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	upstream := "api_base http://" + strings.TrimPrefix(e.srv.URL, "http://")
	if !strings.Contains(string(cfg), upstream) {
		t.Fatal("the test's Caddyfile has no api_base to change")
	}
	bad := strings.ReplaceAll(string(cfg), upstream, "api_base http://127.0.0.1:1") +
		"\nhttp://" + taken.Addr().String() + " {\n\trespond ok\n}\n"
	admin := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	for range 6 {
		req, _ := http.NewRequest("POST", e.gw.Admin+"/load", strings.NewReader(bad))
		req.Header.Set("Content-Type", "text/caddyfile")
		resp, err := admin.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Fatal("a config with a taken port loaded")
		}
	}
	before := e.tokenCalls()
	resp, err := http.Post(e.gw.Admin+"/wechat/accounts/mp/refresh", "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || e.tokenCalls() != before+1 {
		t.Errorf("refresh after the failed loads: %d %s; %d fetches reached the simulator, want 1", resp.StatusCode, body, e.tokenCalls()-before)
	}
	e.call()
}
