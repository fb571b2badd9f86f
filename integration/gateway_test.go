package integration

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wxgate/caddy-wechat/module/simulator"
)

const (
	mpAppID    = "wx1a2b3c4d5e6f7a8b"
	mpSecret   = "mpsecret0123456789abcdef01234567"
	corpID     = "ww1a2b3c4d5e6f7a8b"
	corpSecret = "corpsecret-0123456789abcdefghijklmnopqrst"
)

// gatewayCaddyfile is the config most tests run: an official account on
// {PORT} and a WeCom app on {PORT2}, both in front of the simulator, in
// trusted mode (client authentication has tests of its own), with debug
// logging so that the leak check sees every log line there is.
const gatewayCaddyfile = `{
	admin {ADMIN}
	debug
	wechat {
` + mpAccount + corpAccount + `		test_clock
	}
}

` + trustedMPSite + `

:{PORT2} {
	wechat corp {
		trusted
	}
	reverse_proxy {UPSTREAM}
}
`

// env is a simulator with a gateway in front of it.
type env struct {
	t   *testing.T
	sim *simulator.Simulator
	tap *wiretap
	srv *httptest.Server
	gw  *gateway
}

// newEnv starts a simulator and a gateway whose official account uses
// endpoint ("stable_token" or "token").
func newEnv(t *testing.T, endpoint string) *env {
	t.Helper()
	sim, err := simulator.New(simulator.Config{Accounts: []simulator.Account{
		{Kind: simulator.KindOfficial, AppID: mpAppID, Secret: mpSecret},
		{Kind: simulator.KindWeCom, AppID: corpID, Secret: corpSecret, AgentID: "1000002"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, sim: sim, tap: newWiretap(sim)}
	e.srv = httptest.NewServer(e.tap)
	t.Cleanup(e.srv.Close)
	upstream := strings.TrimPrefix(e.srv.URL, "http://")
	cfg := strings.ReplaceAll(gatewayCaddyfile, "{ENDPOINT}", endpoint)
	e.gw = startGateway(t, cfg, upstream, "WX_MP_SECRET="+mpSecret, "WX_CORP_SECRET="+corpSecret)
	t.Cleanup(func() {
		e.gw.stop()
		assertNoLeaks(t, "the gateway's log", e.gw.logs(), []string{mpSecret, corpSecret}, e.tap.allTokens())
	})
	return e
}

// advance moves the simulator's and the gateway's clocks together.
func (e *env) advance(d time.Duration) {
	e.t.Helper()
	e.sim.Clock().Advance(d)
	e.gw.advance(d)
}

// invalidate moves past the refresh cooldown and has WeChat invalidate the
// official account's tokens.
func (e *env) invalidate() {
	e.t.Helper()
	e.advance(time.Minute)
	if _, err := e.sim.InvalidateTokens(mpAppID); err != nil {
		e.t.Fatal(err)
	}
}

// tokenCalls counts the calls that reached the token endpoints.
func (e *env) tokenCalls() int {
	return e.tap.count("/cgi-bin/stable_token") + e.tap.count("/cgi-bin/token") + e.tap.count("/cgi-bin/gettoken")
}

// userInfoPath is a token-checked official-account call that always works.
const userInfoPath = "/cgi-bin/user/info"

// call makes a token-checked call through the gateway and checks it worked.
func (e *env) call() {
	e.t.Helper()
	status, body := get(e.t, e.gw.URL(userInfoPath+"?openid=o6_bmjrPTlm6_2sgVt7hMZOPfL2M"))
	if status != http.StatusOK || !answersUser(body) {
		e.t.Fatalf("user/info through the gateway: %d %s", status, body)
	}
	assertNoLeaks(e.t, "an answer", string(body), []string{mpSecret}, e.tap.allTokens())
}

func TestInjectsTokenForOfficialAndWeCom(t *testing.T) {
	e := newEnv(t, "stable_token")
	e.call()
	if e.tap.lastSent() == "" {
		t.Fatal("no access_token reached WeChat")
	}
	status, body := get(t, e.gw.URL2("/cgi-bin/user/get?userid=zhangsan"))
	if status != http.StatusOK || errcodeOf(body) != 0 || !bytes.Contains(body, []byte(`"userid"`)) {
		t.Fatalf("WeCom user/get: %d %s", status, body)
	}
	if e.tap.count("/cgi-bin/stable_token") != 1 || e.tap.count("/cgi-bin/gettoken") != 1 {
		t.Fatalf("token calls: stable %d, gettoken %d; want 1 each", e.tap.count("/cgi-bin/stable_token"), e.tap.count("/cgi-bin/gettoken"))
	}
	for range 20 {
		e.call()
	}
	if e.tokenCalls() != 2 {
		t.Fatalf("tokens fetched again: %d calls", e.tokenCalls())
	}
}

func TestClientTokenIsReplaced(t *testing.T) {
	e := newEnv(t, "stable_token")
	status, body := get(t, e.gw.URL(userInfoPath+"?access_token=FORGED&openid=o6_bmjrPTlm6_2sgVt7hMZOPfL2M&access%5Ftoken=FORGED2"))
	if status != http.StatusOK || errcodeOf(body) != 0 {
		t.Fatalf("%d %s", status, body)
	}
	for _, tok := range e.tap.seen {
		if strings.HasPrefix(tok, "FORGED") {
			t.Fatal("the client's access_token reached WeChat")
		}
	}
}

func TestTokenEndpointsAreAnsweredLocally(t *testing.T) {
	e := newEnv(t, "stable_token")
	for _, c := range []struct {
		url, method, body string
	}{
		{e.gw.URL("/cgi-bin/token?grant_type=client_credential&appid=" + mpAppID + "&secret=anything"), "GET", ""},
		{e.gw.URL("/cgi-bin/stable_token"), "POST", `{"grant_type":"client_credential","appid":"` + mpAppID + `","secret":"anything"}`},
		{e.gw.URL2("/cgi-bin/gettoken?corpid=" + corpID + "&corpsecret=anything"), "GET", ""},
	} {
		_, body := send(t, c.method, c.url, "", []byte(c.body))
		var ans struct {
			Errcode     int    `json:"errcode"`
			AccessToken string `json:"access_token"`
			ExpiresIn   int    `json:"expires_in"`
		}
		if json.Unmarshal(body, &ans) != nil || ans.Errcode != 0 || ans.AccessToken == "" || ans.ExpiresIn != 7200 {
			t.Errorf("%s %s: %s", c.method, c.url, body)
		}
	}
	_, body := get(t, e.gw.URL("/cgi-bin/token?grant_type=client_credential&appid=wxOTHER&secret=x"))
	if errcodeOf(body) != 40013 {
		t.Errorf("token call for another appid: %s", body)
	}
	if e.tokenCalls() != 0 {
		t.Fatalf("a token endpoint call reached WeChat")
	}
}

func TestExpiryMeansOneRefresh(t *testing.T) {
	t.Run("proactive", func(t *testing.T) {
		e := newEnv(t, "stable_token")
		e.call()
		e.advance(2*time.Hour - 3*time.Minute) // inside the refresh margin
		if got := e.tokenCalls(); got != 2 {
			t.Fatalf("%d token calls after the margin; want 2", got)
		}
		before := e.tap.count(userInfoPath)
		e.advance(5 * time.Minute) // the first token has expired
		e.call()
		if got := e.tap.count(userInfoPath) - before; got != 1 {
			t.Fatalf("the call took %d attempts; want 1 (no request waits or retries in steady state)", got)
		}
		if got := e.tokenCalls(); got != 2 {
			t.Fatalf("%d token calls; want 2", got)
		}
	})
	t.Run("reactive", func(t *testing.T) {
		e := newEnv(t, "token")
		e.call()
		// WeChat's clock runs ahead of the gateway's: the token expires
		// upstream while the gateway still holds it for valid.
		e.sim.Clock().Advance(2*time.Hour + time.Minute)
		e.gw.advance(time.Minute)
		before := e.tap.count(userInfoPath)
		e.call()
		if got := e.tap.count(userInfoPath) - before; got != 2 {
			t.Fatalf("the call took %d attempts; want 2 (42001, then the replay)", got)
		}
		if got := e.tokenCalls(); got != 2 {
			t.Fatalf("%d token calls; want 2", got)
		}
	})
}

func TestExternalInvalidationMeansOneRefresh(t *testing.T) {
	e := newEnv(t, "token")
	e.call()
	old := e.tap.lastSent()
	e.invalidate()
	e.call()
	if e.tokenCalls() != 2 {
		t.Fatalf("%d token calls; want 2", e.tokenCalls())
	}
	if e.tap.lastSent() == old {
		t.Fatal("the replay used the invalidated token")
	}
}

func TestStormAcrossInvalidationFetchesOnce(t *testing.T) {
	e := newEnv(t, "token")
	e.call()
	e.invalidate()
	const n = 1000
	failed := getStorm(n, func(int) string {
		return e.gw.URL(userInfoPath + "?openid=o6_bmjrPTlm6_2sgVt7hMZOPfL2M")
	}, answersUser)
	if failed != 0 {
		t.Fatalf("%d of %d requests failed", failed, n)
	}
	if got := e.tokenCalls(); got != 2 {
		t.Fatalf("%d token calls across the storm; want 2 (the first fetch and exactly one refresh)", got)
	}
}

func TestUploadIsReplayedWithTheIdenticalBody(t *testing.T) {
	e := newEnv(t, "token")
	e.call()
	e.invalidate()
	img := make([]byte, 1<<20)
	_, _ = rand.Read(img)
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	part, _ := mw.CreateFormFile("media", "photo.jpg")
	_, _ = part.Write(img)
	_ = mw.Close()
	_, ans := send(t, http.MethodPost, e.gw.URL("/cgi-bin/media/upload?type=image"), mw.FormDataContentType(), body.Bytes())
	var up struct {
		Errcode int    `json:"errcode"`
		MediaID string `json:"media_id"`
	}
	if err := json.Unmarshal(ans, &up); err != nil || up.Errcode != 0 || up.MediaID == "" {
		t.Fatalf("upload: %s", ans)
	}
	sent := e.tap.bodiesOf("/cgi-bin/media/upload")
	if len(sent) != 2 {
		t.Fatalf("WeChat saw %d uploads; want 2 (rejected, replayed)", len(sent))
	}
	for i, b := range sent {
		if !bytes.Equal(b, body.Bytes()) {
			t.Fatalf("attempt %d carried a different body (%d bytes, want %d)", i+1, len(b), body.Len())
		}
	}
	_, got := get(t, e.gw.URL("/cgi-bin/media/get?media_id="+up.MediaID))
	if !bytes.Equal(got, img) {
		t.Fatalf("downloaded media differs from the upload (%d bytes)", len(got))
	}
}

func TestBinaryDownloadStreamsWithFlatMemory(t *testing.T) {
	e := newEnv(t, "stable_token")
	e.call()
	want := sha256.New()
	if _, err := io.Copy(want, simulator.LargeMedia(simulator.DefaultLargeMediaSize)); err != nil {
		t.Fatal(err)
	}
	base := e.gw.rss()
	e.gw.resetPeakRSS()
	resp, err := http.Get(e.gw.URL("/cgi-bin/media/get?media_id=" + simulator.LargeMediaID))
	if err != nil {
		t.Fatal(err)
	}
	got := sha256.New()
	n, err := io.Copy(got, resp.Body)
	resp.Body.Close()
	if err != nil || n != simulator.DefaultLargeMediaSize {
		t.Fatalf("downloaded %d bytes: %v", n, err)
	}
	if !bytes.Equal(got.Sum(nil), want.Sum(nil)) {
		t.Fatal("the download is not byte-identical")
	}
	if ct := resp.Header.Get("Content-Type"); ct != "image/jpeg" || !strings.Contains(resp.Header.Get("Content-Disposition"), "attachment") {
		t.Fatalf("headers lost: %q, %q", ct, resp.Header.Get("Content-Disposition"))
	}
	if grew := e.gw.peakRSS() - base; grew > 16<<20 {
		t.Fatalf("gateway memory grew by %d MiB for a %d MiB download", grew>>20, n>>20)
	}
}

func TestStickyInvalidTokenIsRetriedExactlyOnce(t *testing.T) {
	e := newEnv(t, "token")
	e.call()
	e.advance(time.Minute)
	if _, err := e.sim.InjectFault(simulator.Fault{Path: userInfoPath, Sticky40014: true}); err != nil {
		t.Fatal(err)
	}
	// calls makes n user/info calls, checks each got the 40014, and returns
	// how many attempts reached WeChat.
	calls := func(n int) int {
		t.Helper()
		before := e.tap.count(userInfoPath)
		for range n {
			_, body := get(t, e.gw.URL(userInfoPath+"?openid=o6_bmjrPTlm6_2sgVt7hMZOPfL2M"))
			if errcodeOf(body) != 40014 {
				t.Fatalf("want the 40014 passed on, got %s", body)
			}
		}
		return e.tap.count(userInfoPath) - before
	}
	if got := calls(1); got != 2 || e.tokenCalls() != 2 {
		t.Fatalf("%d attempts, %d token calls; want exactly 2 attempts (one retry) and 2 token calls", got, e.tokenCalls())
	}
	// The fresh token fails the same way: no more refreshes, no more retries.
	if got := calls(5); got != 5 || e.tokenCalls() != 2 {
		t.Fatalf("%d attempts for 5 calls, %d token calls; want 5 and 2", got, e.tokenCalls())
	}
	// Past the refresh cooldown the path is still known to want another
	// kind of token: still no refresh, so a stream of such calls never
	// burns the quota.
	e.advance(time.Minute)
	if got := calls(5); got != 5 || e.tokenCalls() != 2 {
		t.Fatalf("after the cooldown: %d attempts for 5 calls, %d token calls; want 5 and 2", got, e.tokenCalls())
	}
	// Other paths of the account still work.
	if _, body := get(t, e.gw.URL("/cgi-bin/menu/get")); errcodeOf(body) != 46003 {
		t.Fatalf("menu/get: %s", body)
	}
}

func TestSnsUserTokenErrorsDoNotRefresh(t *testing.T) {
	e := newEnv(t, "stable_token")
	e.call()
	e.advance(time.Minute)
	_, body := get(t, e.gw.URL("/sns/userinfo?access_token=USER_TOKEN&openid=o6_bmjrPTlm6_2sgVt7hMZOPfL2M"))
	if errcodeOf(body) != 40001 {
		t.Fatalf("want the user-token 40001 passed on, got %s", body)
	}
	if e.tokenCalls() != 1 {
		t.Fatalf("a /sns/ error refreshed the app token")
	}
	if e.tap.lastSent() != "USER_TOKEN" {
		t.Fatalf("the gateway touched a /sns/ call's token")
	}
}

func TestTokenEndpointDownKeepsServingValidToken(t *testing.T) {
	for _, fault := range []simulator.Fault{
		{Path: "/cgi-bin/stable_token", Errcode: -1},
		{Path: "/cgi-bin/stable_token", Drop: true},
		{Path: "/cgi-bin/stable_token", Garbage: true},
		{Path: "/cgi-bin/stable_token", Status: 502},
	} {
		t.Run(fmt.Sprintf("errcode=%d,drop=%t,garbage=%t,status=%d", fault.Errcode, fault.Drop, fault.Garbage, fault.Status), func(t *testing.T) {
			e := newEnv(t, "stable_token")
			e.call()
			if _, err := e.sim.InjectFault(fault); err != nil {
				t.Fatal(err)
			}
			e.advance(2*time.Hour - 3*time.Minute) // due for refresh; the refresh fails
			if e.tokenCalls() != 2 {
				t.Fatalf("%d token calls; want 2 (the fetch, one failed refresh)", e.tokenCalls())
			}
			for range 10 {
				e.call()
			}
			if st := e.gw.accounts()["mp"]; !st.HasToken || st.LastError == "" {
				t.Fatalf("status: %+v", st)
			}
			e.sim.ClearFaults(fault.Path)
			e.advance(5 * time.Second) // past the backoff
			if st := e.gw.accounts()["mp"]; st.Generation != 2 || st.LastError != "" {
				t.Fatalf("did not recover: %+v", st)
			}
			e.call()
		})
	}
}

func TestQuotaGuardStopsAndRecovers(t *testing.T) {
	for _, code := range []int{40164, 40125, 45009, 89503} {
		t.Run(fmt.Sprint(code), func(t *testing.T) {
			e := newEnv(t, "stable_token")
			if _, err := e.sim.InjectFault(simulator.Fault{Path: "/cgi-bin/stable_token", Errcode: code}); err != nil {
				t.Fatal(err)
			}
			for range 20 {
				_, body := get(t, e.gw.URL(userInfoPath+"?openid=o6_bmjrPTlm6_2sgVt7hMZOPfL2M"))
				var ans struct {
					Errcode int    `json:"errcode"`
					Errmsg  string `json:"errmsg"`
				}
				_ = json.Unmarshal(body, &ans)
				if ans.Errcode != -1 || !strings.Contains(ans.Errmsg, fmt.Sprintf("errcode %d", code)) {
					t.Fatalf("got %s; want a gateway error that names errcode %d", body, code)
				}
			}
			if got := e.tokenCalls(); got != 1 {
				t.Fatalf("%d token calls for 20 requests; want 1", got)
			}
			if e.tap.count(userInfoPath) != 0 {
				t.Fatal("a call went upstream without a token")
			}
			if st := e.gw.accounts()["mp"]; !st.Stopped {
				t.Fatalf("status does not show the stop: %+v", st)
			}
			e.sim.ClearFaults("/cgi-bin/stable_token")
			e.advance(2 * time.Minute) // the next probe
			e.call()
			if st := e.gw.accounts()["mp"]; st.Stopped {
				t.Fatalf("still stopped: %+v", st)
			}
		})
	}
}

func TestReloadKeepsTokens(t *testing.T) {
	e := newEnv(t, "stable_token")
	e.call()
	cfgPath := filepath.Join(e.gw.dir, "Caddyfile")
	cfg, _ := os.ReadFile(cfgPath)
	cfg = bytes.Replace(cfg, []byte("wechat mp {\n"), []byte("wechat mp {\n\t\tmax_replay_body 1MiB\n"), 1)
	// The app's own timings too: they used to start a new token service,
	// its tokens, budgets and counters empty until the next call.
	cfg = bytes.Replace(cfg, []byte("\t\ttest_clock\n"), []byte("\t\ttest_clock\n\t\tfetch_timeout 7s\n\t\trefresh_cooldown 45s\n"), 1)
	if err := os.WriteFile(cfgPath, cfg, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(caddyBin, "reload", "--config", cfgPath, "--adapter", "caddyfile", "--address", strings.TrimPrefix(e.gw.Admin, "http://"))
	cmd.Env = append(os.Environ(), "WX_MP_SECRET="+mpSecret, "WX_CORP_SECRET="+corpSecret)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("caddy reload: %v\n%s", err, out)
	}
	if !bytes.Contains(cfg, []byte("fetch_timeout 7s")) {
		t.Fatal("the test's Caddyfile has no test_clock line to add the app's timings after")
	}
	if st := e.gw.accounts()["mp"]; !st.HasToken || st.Generation != 1 || st.CallsToday != 1 {
		t.Fatalf("status right after the reload: %+v", st)
	}
	e.call()
	if got := e.tokenCalls(); got != 1 {
		t.Fatalf("%d token calls; the reload cost a fetch", got)
	}
	if st := e.gw.accounts()["mp"]; st.Generation != 1 {
		t.Fatalf("status after reload: %+v", st)
	}
}

func TestValidateNamesTheField(t *testing.T) {
	dir := t.TempDir()
	for name, c := range map[string]struct{ cfg, want string }{
		"literal secret": {`{
	wechat {
		account mp official {
			appid wx1
			secret 0123456789abcdef
		}
	}
}
:8080 {
	wechat mp
	reverse_proxy 127.0.0.1:9
}`, `account "mp": secret must be a placeholder`},
		"unknown account": {`{
	wechat {
		account mp official {
			appid wx1
			secret {env.HOME}
		}
	}
}
:8080 {
	wechat nope
	reverse_proxy 127.0.0.1:9
}`, `account "nope" is not defined`},
		"unknown kind": {`{
	wechat {
		account mp mini {
			appid wx1
		}
	}
}`, `kind "mini" is not one of official, wecom`},
		"token ttl too long": {`{
	wechat {
		account mp official {
			appid wx1
			secret {env.HOME}
		}
		client shop {
			key {env.PATH}
			accounts mp
		}
		client_token_ttl 9000d
	}
}`, `client_token_ttl must be at most`},
		"token ttl too long, no client": {`{
	wechat {
		account mp official {
			appid wx1
			secret {env.HOME}
		}
		client_token_ttl 400d
	}
}`, `client_token_ttl must be at most`},
		"client key is a secret": {`{
	wechat {
		account mp official {
			appid wx1
			secret {env.HOME}
		}
		client shop {
			key {env.HOME}
			accounts mp
		}
	}
}`, `client "shop": key 1 is the secret of account "mp"`},
	} {
		path := filepath.Join(dir, strings.ReplaceAll(name, " ", "_")+".Caddyfile")
		if err := os.WriteFile(path, []byte(c.cfg), 0o600); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(caddyBin, "validate", "--config", path, "--adapter", "caddyfile")
		cmd.Env = append(os.Environ(), "XDG_DATA_HOME="+dir, "XDG_CONFIG_HOME="+dir)
		out, err := cmd.CombinedOutput()
		// Caddy logs the error as JSON: unescape its quotes.
		if err == nil || !strings.Contains(strings.ReplaceAll(string(out), `\"`, `"`), c.want) {
			t.Errorf("%s: caddy validate: %v\n%s\nwant an error containing %q", name, err, out, c.want)
		}
	}
}
