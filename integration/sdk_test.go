package integration

// Real, unmodified WeChat SDKs against the gateway and the simulator: an app
// adopts the gateway by changing only its SDK's base URL, and uses its
// gateway key where the SDK expects the AppSecret (issue 5).
//
//   - Go: github.com/silenceper/wechat/v2 v2.1.13. It has no base-URL option:
//     every URL is a hardcoded https://api.weixin.qq.com/... or
//     https://qyapi.weixin.qq.com/... constant. It sends every request
//     through util.DefaultHTTPClient, which Wechat.SetHTTPClient sets, so the
//     tests give it an http.Client whose Transport sends the two WeChat hosts
//     to the gateway: the equivalent of a hosts-file entry (scheme http
//     because the test gateway has no TLS; the Host header stays the WeChat
//     host). (util.SetURIModifier exists too, but PostJSONWithRespContentType
//     skips it.)
//   - Node: npm co-wechat-api 3.11.0 (integration/sdk/node). It builds every
//     URL from prefix properties (prefix, fileServerPrefix, ...), which
//     client.js points at the gateway.
//
// Between each SDK and the gateway sits a counting reverse proxy, so the
// tests know every request the SDK sent: one per operation, one token fetch
// in all, and no retry when the gateway refreshes the real token and replays
// a call because WeChat rejected it.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/silenceper/wechat/v2"
	"github.com/silenceper/wechat/v2/cache"
	"github.com/silenceper/wechat/v2/officialaccount"
	offConfig "github.com/silenceper/wechat/v2/officialaccount/config"
	"github.com/silenceper/wechat/v2/officialaccount/material"
	"github.com/silenceper/wechat/v2/officialaccount/menu"
	"github.com/silenceper/wechat/v2/officialaccount/message"
	openConfig "github.com/silenceper/wechat/v2/openplatform/config"
	"github.com/silenceper/wechat/v2/util"
	"github.com/silenceper/wechat/v2/work"
	workConfig "github.com/silenceper/wechat/v2/work/config"
	workMessage "github.com/silenceper/wechat/v2/work/message"

	"github.com/wxgate/caddy-wechat/module/simulator"
)

const (
	// sdkClientKey is the app's gateway key: what its SDK is given as the
	// AppSecret and the WeCom corpsecret.
	sdkClientKey = "gwkey-sdk-0123456789abcdefghijklmnopqrstuvwxyz"
	sdkOpenID    = "o6_bmjrPTlm6_2sgVt7hMZOPfL2M"
	sdkUserID    = "zhangsan"
	sdkAgentID   = "1000002"
)

// sdkCaddyfile is gatewayCaddyfile with a client instead of trusted sites:
// every call must carry a token the gateway issued to the client. {ENDPOINT}
// is the token endpoint the gateway itself uses upstream.
var sdkCaddyfile = appClientGlobal(mpAccount+corpAccount, "WX_CLIENT_KEY") + `
:{PORT} {
	wechat mp
	reverse_proxy {UPSTREAM}
}

:{PORT2} {
	wechat corp
	reverse_proxy {UPSTREAM}
}
`

// sdkTokenPaths are the token endpoints of both WeChat hosts.
var sdkTokenPaths = []string{"/cgi-bin/token", "/cgi-bin/stable_token", "/cgi-bin/gettoken"}

// sdkEnv is a simulator, a gateway with a client in front of it, and a
// counting proxy in front of each of the gateway's two sites.
type sdkEnv struct {
	t    *testing.T
	sim  *simulator.Simulator
	tap  *wiretap
	up   *rawLog
	gw   *gateway
	mp   *countingProxy // what the SDK reaches for api.weixin.qq.com
	corp *countingProxy // what the SDK reaches for qyapi.weixin.qq.com
}

func newSDKEnv(t *testing.T, endpoint string) *sdkEnv {
	t.Helper()
	sim, err := simulator.New(simulator.Config{Accounts: []simulator.Account{
		{Kind: simulator.KindOfficial, AppID: mpAppID, Secret: mpSecret},
		{Kind: simulator.KindWeCom, AppID: corpID, Secret: corpSecret, AgentID: sdkAgentID},
	}})
	if err != nil {
		t.Fatal(err)
	}
	e := &sdkEnv{t: t, sim: sim}
	e.up = &rawLog{next: sim}
	e.tap = newWiretap(e.up)
	srv := httptest.NewServer(e.tap)
	t.Cleanup(srv.Close)
	cfg := strings.ReplaceAll(sdkCaddyfile, "{ENDPOINT}", endpoint)
	e.gw = startGateway(t, cfg, strings.TrimPrefix(srv.URL, "http://"),
		"WX_MP_SECRET="+mpSecret, "WX_CORP_SECRET="+corpSecret, "WX_CLIENT_KEY="+sdkClientKey)
	e.mp = newCountingProxy(t, e.gw.URL(""))
	e.corp = newCountingProxy(t, e.gw.URL2(""))
	t.Cleanup(func() {
		e.gw.stop()
		assertNoLeaks(t, "the gateway's log", e.gw.logs(), e.secrets(), e.allTokens())
	})
	return e
}

// secrets are the strings no log line and no answer may hold.
func (e *sdkEnv) secrets() []string { return []string{mpSecret, corpSecret, sdkClientKey} }

// allTokens are the tokens WeChat issued to the gateway and the gateway
// issued to the SDKs.
func (e *sdkEnv) allTokens() []string {
	return slices.Concat(e.tap.allTokens(), e.mp.issuedTokens(), e.corp.issuedTokens())
}

// invalidate moves both clocks past the gateway's refresh cooldown and then
// revokes id's real tokens in the simulator, as an external refresh would.
func (e *sdkEnv) invalidate(id string) {
	e.t.Helper()
	e.sim.Clock().Advance(time.Minute)
	e.gw.advance(time.Minute)
	n, err := e.sim.InvalidateTokens(id)
	if err != nil || n == 0 {
		e.t.Fatalf("invalidating %s: %d tokens, %v", id, n, err)
	}
}

// upstream returns how many requests reached the simulator, per path.
func (e *sdkEnv) upstream() map[string]int {
	e.tap.mu.Lock()
	defer e.tap.mu.Unlock()
	return maps.Clone(e.tap.calls)
}

// sdkTokenCalls counts the gateway's calls to the token endpoints.
func sdkTokenCalls(m map[string]int) int {
	n := 0
	for _, p := range sdkTokenPaths {
		n += m[p]
	}
	return n
}

// check is the end-of-test audit: no answer to the SDK held a secret or a
// real token, the simulator never saw the client key or a gateway token, and
// the SDK only ever sent the gateway's tokens (or the forged ones a test
// sent on purpose).
func (e *sdkEnv) check(forged ...string) {
	e.t.Helper()
	realTokens := e.tap.allTokens()
	for _, p := range []*countingProxy{e.mp, e.corp} {
		for _, a := range p.answerBodies() {
			assertNoLeaks(e.t, "an answer to the SDK", a, e.secrets(), realTokens)
		}
		issued := p.issuedTokens()
		for _, tok := range p.sentTokens() {
			if !slices.Contains(issued, tok) && !slices.Contains(forged, tok) {
				e.t.Errorf("the SDK sent an access_token (%d chars) the gateway did not issue to it", len(tok))
			}
		}
	}
	gwTokens := slices.Concat(e.mp.issuedTokens(), e.corp.issuedTokens())
	for _, req := range e.up.all() {
		assertNoLeaks(e.t, "a request to WeChat", req, []string{sdkClientKey}, gwTokens)
	}
	e.tap.mu.Lock()
	seen := slices.Clone(e.tap.seen)
	e.tap.mu.Unlock()
	for _, tok := range seen {
		if !slices.Contains(realTokens, tok) {
			e.t.Errorf("WeChat was sent an access_token (%d chars) it never issued", len(tok))
		}
	}
}

// sdkOp is one SDK operation and the one path it must call.
type sdkOp struct {
	name string
	path string
	run  func() error
}

// runOps runs ops through the SDK and checks that each sent exactly one
// request, to its path, through p.
func (e *sdkEnv) runOps(p *countingProxy, ops []sdkOp) {
	e.t.Helper()
	for _, op := range ops {
		before := p.counts()
		if err := op.run(); err != nil {
			e.t.Fatalf("%s: %v", op.name, err)
		}
		if d := countsDiff(before, p.counts()); !maps.Equal(d, map[string]int{op.path: 1}) {
			e.t.Fatalf("%s: the SDK sent %v; want exactly one request to %s (no retry, no token fetch)", op.name, d, op.path)
		}
	}
}

// expectUpstream checks what reached the simulator since before: the
// gateway's token fetches, and per path the calls (a replay counts twice).
func (e *sdkEnv) expectUpstream(what string, before map[string]int, tokenFetches int, calls map[string]int) {
	e.t.Helper()
	d := countsDiff(before, e.upstream())
	if got := sdkTokenCalls(d); got != tokenFetches {
		e.t.Errorf("%s: the gateway made %d token-endpoint calls upstream; want %d (%v)", what, got, tokenFetches, d)
	}
	for _, p := range sdkTokenPaths {
		delete(d, p)
	}
	if !maps.Equal(d, calls) {
		e.t.Errorf("%s: WeChat saw %v; want %v", what, d, calls)
	}
}

// countsDiff returns the counts that changed from a to b.
func countsDiff(a, b map[string]int) map[string]int {
	d := make(map[string]int)
	for k, v := range b {
		if v != a[k] {
			d[k] = v - a[k]
		}
	}
	return d
}

// goSDK returns a silenceper/wechat instance whose HTTP client sends
// api.weixin.qq.com to e.mp and qyapi.weixin.qq.com to e.corp, with an
// in-memory token cache. The client is the SDK's package-global
// util.DefaultHTTPClient: the tests of this file are not parallel, and
// cleanup restores it.
func (e *sdkEnv) goSDK() *wechat.Wechat {
	prev := util.DefaultHTTPClient
	tr := &http.Transport{}
	wc := wechat.NewWechat()
	wc.SetHTTPClient(&http.Client{Timeout: 30 * time.Second, Transport: hostsTransport{
		hosts: map[string]string{
			"api.weixin.qq.com":   e.mp.addr(),
			"qyapi.weixin.qq.com": e.corp.addr(),
		},
		next: tr,
	}})
	wc.SetCache(cache.NewMemory())
	e.t.Cleanup(func() {
		util.DefaultHTTPClient = prev
		tr.CloseIdleConnections()
	})
	return wc
}

// hostsTransport resolves the WeChat hosts to local addresses, as a
// hosts-file entry would, and refuses every other host.
type hostsTransport struct {
	hosts map[string]string // WeChat host → host:port serving it
	next  http.RoundTripper
}

func (h hostsTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	addr, ok := h.hosts[r.URL.Hostname()]
	if !ok {
		if r.Body != nil {
			r.Body.Close()
		}
		return nil, fmt.Errorf("test: the SDK called %s, a host the test does not map", r.URL.Host)
	}
	out := r.Clone(r.Context())
	out.Host = r.URL.Host
	out.URL.Scheme = "http" // the test gateway listens without TLS
	out.URL.Host = addr
	return h.next.RoundTrip(out)
}

// countingProxy is a reverse proxy in front of one gateway site that records
// every request the SDK sent and every answer it got.
type countingProxy struct {
	srv     *httptest.Server
	mu      sync.Mutex
	calls   map[string]int  // requests per path
	sent    []string        // access_token values the SDK sent
	issued  map[string]bool // access tokens the token endpoints answered
	answers []string        // every answer body
	ttls    []int           // expires_in of every token answer
}

func newCountingProxy(t *testing.T, target string) *countingProxy {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	p := &countingProxy{calls: make(map[string]int), issued: make(map[string]bool)}
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(u)
			pr.Out.Host = pr.In.Host // what the SDK named: api.weixin.qq.com, 127.0.0.1:port
		},
		ModifyResponse: p.record,
	}
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		p.calls[r.URL.Path]++
		if tok := r.URL.Query().Get("access_token"); tok != "" {
			p.sent = append(p.sent, tok)
		}
		p.mu.Unlock()
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(p.srv.Close)
	return p
}

// record keeps the answer body, and the token of a token-endpoint answer.
func (p *countingProxy) record(resp *http.Response) error {
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return err
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	var ans struct {
		AccessToken string `json:"access_token"`
		ExpiresIn   int    `json:"expires_in"`
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.answers = append(p.answers, string(body))
	if slices.Contains(sdkTokenPaths, resp.Request.URL.Path) && json.Unmarshal(body, &ans) == nil && ans.AccessToken != "" {
		p.issued[ans.AccessToken] = true
		p.ttls = append(p.ttls, ans.ExpiresIn)
	}
	return nil
}

func (p *countingProxy) URL() string  { return p.srv.URL }
func (p *countingProxy) addr() string { return strings.TrimPrefix(p.srv.URL, "http://") }

func (p *countingProxy) counts() map[string]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return maps.Clone(p.calls)
}

func (p *countingProxy) count(path string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.calls[path]
}

func (p *countingProxy) issuedTokens() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Collect(maps.Keys(p.issued))
}

func (p *countingProxy) sentTokens() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.sent)
}

func (p *countingProxy) answerBodies() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.answers)
}

func (p *countingProxy) expiresIn() []int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.ttls)
}

// rawLog keeps the query and body of every request that reaches WeChat.
type rawLog struct {
	next http.Handler
	mu   sync.Mutex
	reqs []string
}

func (l *rawLog) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	r.Body = io.NopCloser(bytes.NewReader(body))
	l.mu.Lock()
	l.reqs = append(l.reqs, r.URL.RawQuery+"\n"+string(body))
	l.mu.Unlock()
	l.next.ServeHTTP(w, r)
}

func (l *rawLog) all() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.reqs)
}

// checkIssued checks the token the SDK holds: the gateway's own, never
// WeChat's, and given a lifetime the SDKs cache well.
func (e *sdkEnv) checkIssued(p *countingProxy, tok string) {
	e.t.Helper()
	if !strings.HasPrefix(tok, "gw2.") || slices.Contains(e.tap.allTokens(), tok) {
		e.t.Fatalf("the SDK holds a token (%d chars) that is not a gateway token (gw2.)", len(tok))
	}
	if issued := p.issuedTokens(); len(issued) != 1 || issued[0] != tok {
		e.t.Fatalf("the gateway issued %d tokens to the SDK; want the one it holds", len(issued))
	}
	// silenceper/wechat caches a token for expires_in-1500 s (300 s for
	// stable_token): anything shorter would make it fetch for every call.
	if ttls := p.expiresIn(); !slices.Equal(ttls, []int{7200}) {
		e.t.Errorf("token answers said expires_in %v; want [7200]", ttls)
	}
}

func sdkRandomBytes(t *testing.T, n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// mpOps are the official-account operations of the Go SDK after its token
// fetch. media is uploaded and then downloaded.
func mpOps(oa *officialaccount.OfficialAccount, media []byte, withMenuCreate bool) []sdkOp {
	var mediaID string
	ops := []sdkOp{
		{"user info", "/cgi-bin/user/info", func() error {
			u, err := oa.GetUser().GetUserInfo(sdkOpenID)
			if err == nil && (u.OpenID != sdkOpenID || u.Subscribe != 1) {
				err = fmt.Errorf("answered %+v", u)
			}
			return err
		}},
	}
	if withMenuCreate {
		ops = append(ops, sdkOp{"menu create", "/cgi-bin/menu/create", func() error {
			return oa.GetMenu().SetMenu([]*menu.Button{
				new(menu.Button).SetClickButton("今日推荐", "TODAY"),
				new(menu.Button).SetSubButton("更多", []*menu.Button{new(menu.Button).SetViewButton("官网", "https://example.com/")}),
			})
		}})
	}
	return append(ops,
		sdkOp{"menu get", "/cgi-bin/menu/get", func() error {
			m, err := oa.GetMenu().GetMenu()
			if err != nil {
				return err
			}
			b := m.Menu.Button
			if len(b) != 2 || b[0].Key != "TODAY" || len(b[1].SubButtons) != 1 || b[1].SubButtons[0].URL != "https://example.com/" {
				return fmt.Errorf("answered a menu of %d buttons: %+v", len(b), b)
			}
			return nil
		}},
		sdkOp{"custom message", "/cgi-bin/message/custom/send", func() error {
			return oa.GetCustomerMessageManager().Send(message.NewCustomerTextMessage(sdkOpenID, "hello through the gateway"))
		}},
		sdkOp{"media upload", "/cgi-bin/media/upload", func() error {
			m, err := oa.GetMaterial().MediaUploadFromReader(material.MediaTypeImage, "photo.jpg", bytes.NewReader(media))
			if err == nil && m.MediaID == "" {
				err = fmt.Errorf("answered no media_id: %+v", m)
			}
			mediaID = m.MediaID
			return err
		}},
		sdkOp{"media download", "/cgi-bin/media/get", func() error {
			// The SDK hands out the download URL; the app fetches it
			// with the SDK's HTTP helper.
			u, err := oa.GetMaterial().GetMediaURL(mediaID)
			if err != nil {
				return err
			}
			got, err := util.HTTPGet(u)
			if err == nil && !bytes.Equal(got, media) {
				err = fmt.Errorf("downloaded %d bytes that differ from the %d uploaded", len(got), len(media))
			}
			return err
		}},
	)
}

// TestSDKGoOfficialAccount runs silenceper/wechat's official account in both
// its token modes (config.UseStableAK false: GET /cgi-bin/token; true: POST
// /cgi-bin/stable_token) against a gateway that itself uses either endpoint.
func TestSDKGoOfficialAccount(t *testing.T) {
	for _, c := range []struct{ sdk, gateway string }{
		{"token", "stable_token"},
		{"token", "token"},
		{"stable_token", "stable_token"},
		{"stable_token", "token"},
	} {
		t.Run("sdk="+c.sdk+",gateway="+c.gateway, func(t *testing.T) {
			e := newSDKEnv(t, c.gateway)
			oa := e.goSDK().GetOfficialAccount(&offConfig.Config{
				AppID:       mpAppID,
				AppSecret:   sdkClientKey,
				Cache:       cache.NewMemory(),
				UseStableAK: c.sdk == "stable_token",
			})
			tokenPath := "/cgi-bin/" + c.sdk
			var token string
			start := e.upstream()
			e.runOps(e.mp, append([]sdkOp{{"token fetch", tokenPath, func() (err error) {
				token, err = oa.GetAccessToken()
				return err
			}}}, mpOps(oa, sdkRandomBytes(t, 4096), true)...))
			e.checkIssued(e.mp, token)
			e.expectUpstream("first calls", start, 1, map[string]int{
				"/cgi-bin/user/info": 1, "/cgi-bin/menu/create": 1, "/cgi-bin/menu/get": 1,
				"/cgi-bin/message/custom/send": 1, "/cgi-bin/media/upload": 1, "/cgi-bin/media/get": 1,
			})

			// WeChat revokes the gateway's token: the first call after it
			// is rejected (40001), and the gateway refreshes and replays it.
			// The SDK sees one answer per call and keeps its token.
			e.invalidate(mpAppID)
			before := e.upstream()
			e.runOps(e.mp, mpOps(oa, sdkRandomBytes(t, 4096), false))
			e.expectUpstream("after an invalidation, a GET first", before, 1, map[string]int{
				"/cgi-bin/user/info": 2, "/cgi-bin/menu/get": 1,
				"/cgi-bin/message/custom/send": 1, "/cgi-bin/media/upload": 1, "/cgi-bin/media/get": 1,
			})

			// Again, with an upload first: the replay resends the SDK's
			// multipart body.
			e.invalidate(mpAppID)
			before = e.upstream()
			ops := mpOps(oa, sdkRandomBytes(t, 4096), false)
			upload := slices.IndexFunc(ops, func(o sdkOp) bool { return o.path == "/cgi-bin/media/upload" })
			e.runOps(e.mp, slices.Concat(ops[upload:], ops[:upload]))
			e.expectUpstream("after an invalidation, an upload first", before, 1, map[string]int{
				"/cgi-bin/user/info": 1, "/cgi-bin/menu/get": 1,
				"/cgi-bin/message/custom/send": 1, "/cgi-bin/media/upload": 2, "/cgi-bin/media/get": 1,
			})
			if sent := e.tap.bodiesOf("/cgi-bin/media/upload"); len(sent) < 2 || !bytes.Equal(sent[len(sent)-1], sent[len(sent)-2]) {
				t.Error("the replayed upload's body differs from the rejected one's")
			}

			for _, p := range sdkTokenPaths {
				want := 0
				if p == tokenPath {
					want = 1
				}
				if got := e.mp.count(p); got != want {
					t.Errorf("the SDK sent %d requests to %s; want %d", got, p, want)
				}
			}
			e.check()
		})
	}
}

// wecomOps are the WeCom operations of the Go SDK after its token fetch.
func wecomOps(wk *work.Work, media []byte) []sdkOp {
	var mediaID string
	return []sdkOp{
		{"user get", "/cgi-bin/user/get", func() error {
			u, err := wk.GetAddressList().UserGet(sdkUserID)
			if err == nil && (u.UserID != sdkUserID || u.Status != 1) {
				err = fmt.Errorf("answered %+v", u)
			}
			return err
		}},
		{"message send", "/cgi-bin/message/send", func() error {
			r, err := wk.GetMessage().SendText(workMessage.SendTextRequest{
				SendRequestCommon: &workMessage.SendRequestCommon{ToUser: sdkUserID, AgentID: sdkAgentID},
				Text:              workMessage.TextField{Content: "hello through the gateway"},
			})
			if err == nil && (r.MsgID == "" || r.InvalidUser != "") {
				err = fmt.Errorf("answered %+v", r)
			}
			return err
		}},
		{"media upload", "/cgi-bin/media/upload", func() error {
			r, err := wk.GetMaterial().UploadTempFileFromReader("photo.jpg", "image", bytes.NewReader(media))
			if err == nil && r.MediaID == "" {
				err = fmt.Errorf("answered no media_id: %+v", r)
			}
			if r != nil {
				mediaID = r.MediaID
			}
			return err
		}},
		{"media download", "/cgi-bin/media/get", func() error {
			got, err := wk.GetMaterial().GetTempFile(mediaID)
			if err == nil && !bytes.Equal(got, media) {
				err = fmt.Errorf("downloaded %d bytes that differ from the %d uploaded", len(got), len(media))
			}
			return err
		}},
	}
}

// TestSDKGoWeCom runs silenceper/wechat's work package: gettoken with the
// gateway key as corpsecret, then WeCom calls, across an invalidation (40014).
func TestSDKGoWeCom(t *testing.T) {
	e := newSDKEnv(t, "stable_token")
	wk := e.goSDK().GetWork(&workConfig.Config{
		CorpID:     corpID,
		CorpSecret: sdkClientKey,
		AgentID:    sdkAgentID,
		Cache:      cache.NewMemory(),
	})
	var token string
	start := e.upstream()
	e.runOps(e.corp, append([]sdkOp{{"token fetch", "/cgi-bin/gettoken", func() (err error) {
		token, err = wk.GetContext().GetAccessToken()
		return err
	}}}, wecomOps(wk, sdkRandomBytes(t, 4096))...))
	e.checkIssued(e.corp, token)
	for _, a := range e.corp.answerBodies()[:1] {
		if !strings.Contains(a, `"errcode":0`) || !strings.Contains(a, `"errmsg":"ok"`) {
			t.Errorf("the gettoken answer lacks WeCom's errcode 0 / errmsg ok: %d bytes", len(a))
		}
	}
	e.expectUpstream("first calls", start, 1, map[string]int{
		"/cgi-bin/user/get": 1, "/cgi-bin/message/send": 1, "/cgi-bin/media/upload": 1, "/cgi-bin/media/get": 1,
	})

	e.invalidate(corpID)
	before := e.upstream()
	e.runOps(e.corp, wecomOps(wk, sdkRandomBytes(t, 4096)))
	e.expectUpstream("after an invalidation", before, 1, map[string]int{
		"/cgi-bin/user/get": 2, "/cgi-bin/message/send": 1, "/cgi-bin/media/upload": 1, "/cgi-bin/media/get": 1,
	})
	if got := e.corp.count("/cgi-bin/gettoken"); got != 1 {
		t.Errorf("the SDK sent %d token requests; want 1", got)
	}
	if e.mp.count("/cgi-bin/token")+e.mp.count("/cgi-bin/stable_token") != 0 {
		t.Error("the WeCom SDK called the official-account host")
	}
	e.check()
}

// TestSDKGoWrongKeyGetsNoToken: an SDK given a key the gateway does not
// know gets an error, not a token, and nothing reaches WeChat's business
// APIs.
func TestSDKGoWrongKeyGetsNoToken(t *testing.T) {
	e := newSDKEnv(t, "stable_token")
	wc := e.goSDK()
	oa := wc.GetOfficialAccount(&offConfig.Config{AppID: mpAppID, AppSecret: "gwkey-not-a-key-of-this-gateway-0123456789", Cache: cache.NewMemory()})
	if tok, err := oa.GetAccessToken(); err == nil {
		t.Fatalf("a wrong key got a token (%d chars)", len(tok))
	}
	if _, err := oa.GetUser().GetUserInfo(sdkOpenID); err == nil {
		t.Fatal("a wrong key got user info")
	}
	wk := wc.GetWork(&workConfig.Config{CorpID: corpID, CorpSecret: "gwkey-not-a-key-of-this-gateway-0123456789", AgentID: sdkAgentID, Cache: cache.NewMemory()})
	if _, err := wk.GetAddressList().UserGet(sdkUserID); err == nil {
		t.Fatal("a wrong key got a WeCom user")
	}
	// Calls without a token of the gateway's, sent with the SDK's own HTTP
	// helper: refused, nothing injected.
	const forged = "gw2.forged.forged"
	for _, u := range []string{
		"https://api.weixin.qq.com/cgi-bin/menu/get",
		"https://api.weixin.qq.com/cgi-bin/menu/get?access_token=" + forged,
		"https://qyapi.weixin.qq.com/cgi-bin/user/get?userid=" + sdkUserID,
	} {
		b, err := util.HTTPGet(u)
		if err == nil && errcodeOf(b) == 0 {
			t.Errorf("%s answered %s", u, b)
		}
	}
	if up := e.upstream(); len(up) != 0 {
		t.Fatalf("calls reached WeChat: %v", up)
	}
	if n := len(e.mp.issuedTokens()) + len(e.corp.issuedTokens()); n != 0 {
		t.Fatalf("the gateway issued %d tokens to a wrong key", n)
	}
	e.check(forged)
}

// requireNode fails t unless Node.js and the npm package the test drives
// are installed.
func requireNode(t *testing.T, pkg string) {
	t.Helper()
	if _, err := os.Stat(filepath.Join("sdk", "node", "node_modules", pkg, "package.json")); err != nil {
		t.Fatal("integration/sdk/node/node_modules is missing: run `npm ci --prefix integration/sdk/node` (.ci/test does)")
	}
	if _, err := exec.LookPath("node"); err != nil {
		t.Fatal("node is not installed: the Node SDK tests need Node.js 18 or later")
	}
}

// nodeScript is the command that runs script of integration/sdk/node with
// args, and the SDK client's key in WX_GATEWAY_KEY.
func nodeScript(script string, args ...string) *exec.Cmd {
	cmd := exec.Command("node", append([]string{script}, args...)...)
	cmd.Dir = filepath.Join("sdk", "node")
	cmd.Env = append(os.Environ(), "WX_GATEWAY_KEY="+sdkClientKey)
	return cmd
}

// runNodeScript runs script like nodeScript and decodes the JSON line it
// prints into result, failing t unless the script says "ok":true.
func runNodeScript(t *testing.T, result any, script string, args ...string) {
	t.Helper()
	out, err := nodeScript(script, args...).Output()
	var status struct {
		OK bool `json:"ok"`
	}
	if err != nil || json.Unmarshal(out, &status) != nil || !status.OK || json.Unmarshal(out, result) != nil {
		t.Fatalf("%s: %v %s", script, err, out)
	}
}

// nodeResult is one phase's line from integration/sdk/node/client.js.
type nodeResult struct {
	Phase           int    `json:"phase"`
	OK              bool   `json:"ok"`
	Op              string `json:"op"`
	Error           string `json:"error"`
	Code            any    `json:"code"`
	TokenSHA256     string `json:"token_sha256"`
	HeldTokenSHA256 string `json:"held_token_sha256"`
	UserOpenID      string `json:"user_openid"`
	MenuCreate      *int   `json:"menu_create_errcode"`
	MenuKey         string `json:"menu_key"`
	CustomSend      *int   `json:"custom_send_errcode"`
	MediaUploaded   int    `json:"media_uploaded"`
	MediaDownloaded int    `json:"media_downloaded"`
	MediaEqual      bool   `json:"media_equal"`
}

// TestSDKNodeCoWechatAPI runs npm co-wechat-api 3.11.0 (its /cgi-bin/token
// mode, the only one it has) through integration/sdk/node/client.js. The
// script pauses between its two phases while the test revokes the real
// token. co-wechat-api retries a call itself after 40001/42001, fetching a
// new token first: the counting proxy would see both.
func TestSDKNodeCoWechatAPI(t *testing.T) {
	requireNode(t, "co-wechat-api")
	e := newSDKEnv(t, "stable_token")

	cmd := nodeScript("client.js", e.mp.URL(), mpAppID, "--pause")
	var stderr lockedBuffer
	cmd.Stderr = &stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 16)
	exited := make(chan struct{}) // closed once the process ended; then waitErr is its result
	var waitErr error
	go func() {
		s := bufio.NewScanner(stdout)
		for s.Scan() {
			if strings.HasPrefix(s.Text(), "{") {
				select {
				case lines <- s.Text():
				default: // more lines than the script prints: the test fails on the first ones
				}
			}
		}
		close(lines)
		waitErr = cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		stdin.Close()
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	})
	next := func(phase int) nodeResult {
		t.Helper()
		select {
		case line, ok := <-lines:
			if !ok {
				t.Fatalf("client.js ended before phase %d:\n%s", phase, stderr.String())
			}
			var r nodeResult
			if err := json.Unmarshal([]byte(line), &r); err != nil {
				t.Fatalf("client.js printed %q: %v", line, err)
			}
			if !r.OK || r.Phase != phase {
				t.Fatalf("client.js phase %d: %s\n%s", phase, line, stderr.String())
			}
			return r
		case <-time.After(60 * time.Second):
			t.Fatalf("client.js printed nothing for phase %d in 60 s:\n%s", phase, stderr.String())
		}
		return nodeResult{}
	}

	// Phase 1: token fetch, user info, menu create and get, custom
	// message, media upload and download.
	start := e.upstream()
	r1 := next(1)
	want := map[string]int{
		"/cgi-bin/token": 1, "/cgi-bin/user/info": 1, "/cgi-bin/menu/create": 1, "/cgi-bin/menu/get": 1,
		"/cgi-bin/message/custom/send": 1, "/cgi-bin/media/upload": 1, "/cgi-bin/media/get": 1,
	}
	if got := e.mp.counts(); !maps.Equal(got, want) {
		t.Fatalf("the SDK sent %v; want %v", got, want)
	}
	issued := e.mp.issuedTokens()
	if len(issued) != 1 || sdkSHA256(issued[0]) != r1.TokenSHA256 || r1.HeldTokenSHA256 != r1.TokenSHA256 {
		t.Fatalf("the SDK does not hold the one token the gateway issued to it (%d issued)", len(issued))
	}
	e.checkIssued(e.mp, issued[0])
	checkNodePhase(t, r1)
	if r1.MenuCreate == nil || *r1.MenuCreate != 0 {
		t.Errorf("menu create: %+v", r1)
	}
	e.expectUpstream("phase 1", start, 1, map[string]int{
		"/cgi-bin/user/info": 1, "/cgi-bin/menu/create": 1, "/cgi-bin/menu/get": 1,
		"/cgi-bin/message/custom/send": 1, "/cgi-bin/media/upload": 1, "/cgi-bin/media/get": 1,
	})

	// Phase 2, after WeChat revoked the gateway's token: user info (the
	// gateway refreshes and replays it), menu get, custom message, media
	// upload and download, with the token the SDK already holds.
	e.invalidate(mpAppID)
	before, sdkBefore := e.upstream(), e.mp.counts()
	if _, err := io.WriteString(stdin, "go\n"); err != nil {
		t.Fatal(err)
	}
	r2 := next(2)
	want = map[string]int{
		"/cgi-bin/user/info": 1, "/cgi-bin/menu/get": 1,
		"/cgi-bin/message/custom/send": 1, "/cgi-bin/media/upload": 1, "/cgi-bin/media/get": 1,
	}
	if got := countsDiff(sdkBefore, e.mp.counts()); !maps.Equal(got, want) {
		t.Fatalf("phase 2: the SDK sent %v; want %v (one request per call, no retry, no token fetch)", got, want)
	}
	if r2.HeldTokenSHA256 != r1.TokenSHA256 {
		t.Error("phase 2: the SDK no longer holds its first token")
	}
	checkNodePhase(t, r2)
	e.expectUpstream("phase 2", before, 1, map[string]int{
		"/cgi-bin/user/info": 2, "/cgi-bin/menu/get": 1,
		"/cgi-bin/message/custom/send": 1, "/cgi-bin/media/upload": 1, "/cgi-bin/media/get": 1,
	})
	select {
	case <-exited:
		if waitErr != nil {
			t.Fatalf("client.js: %v\n%s", waitErr, stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("client.js did not exit after phase 2")
	}
	e.check()
}

// checkNodePhase checks the answers client.js reports for the calls both
// phases make.
func checkNodePhase(t *testing.T, r nodeResult) {
	t.Helper()
	if r.UserOpenID != sdkOpenID || r.MenuKey != "TODAY" || r.CustomSend == nil || *r.CustomSend != 0 {
		t.Errorf("phase %d: user %q, menu key %q, custom send %v", r.Phase, r.UserOpenID, r.MenuKey, r.CustomSend)
	}
	if r.MediaUploaded == 0 || r.MediaDownloaded != r.MediaUploaded || !r.MediaEqual {
		t.Errorf("phase %d: uploaded %d bytes, downloaded %d, equal %t", r.Phase, r.MediaUploaded, r.MediaDownloaded, r.MediaEqual)
	}
}

func sdkSHA256(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// lockedBuffer is a bytes.Buffer that a process may write while the test
// reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// TestSilenceperOpenPlatform: silenceper/wechat's openplatform package,
// unmodified, runs a platform through its trusted site: it asks for the
// component token with whatever ticket it has, exchanges the authorization
// code, mints the authorizer's token from the refresh token it was given,
// and manages the authorizer's menu. It only ever holds placeholders; the
// gateway holds the real tokens, and the code pushed to the callback and
// brought by the SDK is exchanged once.
func TestSilenceperOpenPlatform(t *testing.T) {
	t.Run("trusted", func(t *testing.T) {
		silenceperOpenPlatform(t, componentCaddyfile, "the-gateway-holds-the-secret", "caddy-wechat-")
	})
	t.Run("clients", func(t *testing.T) { silenceperOpenPlatform(t, componentClientsCaddyfile, saasKey, "gw2.") })
}

// silenceperOpenPlatform runs the SDK against a platform site of caddyfile
// with secret as its component_appsecret; the tokens it gets start with
// prefix.
func silenceperOpenPlatform(t *testing.T, caddyfile, secret, prefix string) {
	p := startPlatform(t, caddyfile)
	p.pushTicket(t)
	res, err := p.sim.Authorize(compAppID, authAppID, "")
	if err != nil || !res.Push.Delivered {
		t.Fatalf("authorising: %+v %v", res, err)
	}

	prev := util.DefaultHTTPClient
	tr := &http.Transport{}
	t.Cleanup(func() {
		util.DefaultHTTPClient = prev
		tr.CloseIdleConnections()
	})
	wc := wechat.NewWechat()
	wc.SetHTTPClient(&http.Client{Timeout: 30 * time.Second, Transport: hostsTransport{
		hosts: map[string]string{"api.weixin.qq.com": strings.TrimPrefix(p.gw.URL(""), "http://")},
		next:  tr,
	}})
	op := wc.GetOpenPlatform(&openConfig.Config{AppID: compAppID, AppSecret: secret,
		Token: compToken, EncodingAESKey: compAESKey, Cache: cache.NewMemory()})
	ctx := context.Background()
	if _, err := op.SetComponentAccessToken(ctx, "a-ticket-the-app-never-received"); err != nil {
		t.Fatalf("SetComponentAccessToken: %v", err)
	}
	info, err := op.QueryAuthCode(res.AuthorizationCode)
	if err != nil || info.Appid != authAppID || len(info.FuncInfo) == 0 {
		t.Fatalf("QueryAuthCode: %+v %v", info, err)
	}
	if _, err := op.RefreshAuthrToken(authAppID, info.RefreshToken); err != nil {
		t.Fatalf("RefreshAuthrToken: %v", err)
	}
	m := op.GetOfficialAccount(authAppID).GetMenu()
	if err := m.SetMenuByJSON(`{"button":[{"type":"click","name":"Hello","key":"HELLO"}]}`); err != nil {
		t.Fatalf("SetMenu on behalf of the authorizer: %v", err)
	}
	got, err := m.GetMenu()
	if err != nil || len(got.Menu.Button) != 1 || got.Menu.Button[0].Key != "HELLO" {
		t.Fatalf("GetMenu on behalf of the authorizer: %+v %v", got, err)
	}
	c := p.sim.Counters().Components[compAppID]
	if c.Authorizers[authAppID].QueryAuth != 1 || c.Authorizers[authAppID].AuthorizerToken != 1 || c.ComponentToken != 1 {
		t.Errorf("WeChat saw %d api_query_auth, %d api_authorizer_token and %d api_component_token calls; want 1 of each",
			c.Authorizers[authAppID].QueryAuth, c.Authorizers[authAppID].AuthorizerToken, c.ComponentToken)
	}
	if !strings.HasPrefix(info.AccessToken, prefix) || info.RefreshToken != "caddy-wechat-managed" {
		t.Errorf("the SDK holds %q and %q, not what the gateway hands out", info.AccessToken, info.RefreshToken)
	}
	if prefix != "gw2." {
		return
	}
	// In clients mode, each gateway token serves its own side only, and a
	// wrong key gets none.
	compTok, err := op.GetComponentAccessToken()
	if err != nil {
		t.Fatal(err)
	}
	authTok := info.AccessToken
	for _, c := range []struct{ what, method, path, body string }{
		{"the platform's token on an authorizer's API", "GET", "/cgi-bin/menu/get?access_token=" + compTok, ""},
		{"an authorizer's token on a component API", "POST", "/cgi-bin/component/api_create_preauthcode?component_access_token=" + authTok, `{"component_appid":"` + compAppID + `"}`},
		{"both tokens", "GET", "/cgi-bin/menu/get?access_token=" + authTok + "&component_access_token=" + compTok, ""},
		{"a wrong key", "POST", "/cgi-bin/component/api_component_token", `{"component_appid":"` + compAppID + `","component_appsecret":"not-the-key-0123456789"}`},
		{"no token", "GET", "/cgi-bin/menu/get", ""},
	} {
		_, body := send(t, c.method, p.gw.URL(c.path), "application/json", []byte(c.body))
		if code := errcodeOf(body); code != 40001 && code != 41001 {
			t.Errorf("%s: %s, want 40001 or 41001", c.what, body)
		}
	}
	// Quota resets act for every client: the saas client is not admin.
	for _, path := range []string{"/cgi-bin/clear_quota?access_token=" + authTok, "/cgi-bin/component/clear_quota?component_access_token=" + compTok} {
		_, body := send(t, "POST", p.gw.URL(path), "application/json", []byte(`{"appid":"`+authAppID+`","component_appid":"`+compAppID+`"}`))
		if code := errcodeOf(body); code != 48001 {
			t.Errorf("%s by a client without admin: %s, want 48001", path, body)
		}
	}
}
