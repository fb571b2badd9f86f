package caddywechat

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wxgate/caddy-wechat/module/internal/token"
	"github.com/wxgate/caddy-wechat/module/internal/wxapi"
	"github.com/wxgate/caddy-wechat/module/simulator"
)

// Stage 5: replay. The token manager's refresh cooldown is 30 s (the
// default): a token WeChat rejects less than 30 s after it was fetched is
// not refreshed again. Tests that want a replay move the clocks past it
// after the first fetch.

// tok is the n-th token the scriptedFetcher hands out for mp.
func tok(n int) string { return fmt.Sprintf("%s-tok-%d", mpAppID, n) }

// warm fetches mp's first token through a call on another path, then moves
// the clocks past the refresh cooldown.
func (g *gateway) warm() {
	g.t.Helper()
	if _, err := g.app.handles["mp"].Token(g.t.Context()); err != nil {
		g.t.Fatalf("first token: %v", err)
	}
	g.advance(time.Minute)
}

func TestReplayAfterRevokedToken(t *testing.T) {
	g := newGateway(t)
	h := g.clientsSite()
	gw := g.gatewayToken(h, "official", mpAppID, shopKey)
	menu := []byte(`{"button":[{"type":"click","name":"Today","key":"V1001_TODAY"}]}`)
	wantErrcode(t, g.get(h, "/cgi-bin/menu/get?access_token="+gw), wxapi.CodeMenuNotExist)
	first := g.fetches.last()
	g.advance(time.Minute)
	// Someone else force-refreshed: WeChat revoked the token the gateway holds.
	if n, err := g.sim.InvalidateTokens(mpAppID); err != nil || n == 0 {
		t.Fatalf("InvalidateTokens: %d, %v", n, err)
	}
	g.resetSeen()

	r := httptest.NewRequest(http.MethodPost, "/cgi-bin/menu/create?access_token="+gw+"&lang=zh_CN", bytes.NewReader(menu))
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("Accept-Encoding", "gzip")
	rec := g.serve(h, r)

	if want := `{"errcode":0,"errmsg":"ok"}`; rec.Body.String() != want {
		t.Errorf("client got %q, want the replay's answer %q and nothing of the first", rec.Body.String(), want)
	}
	if n := g.fetches.calls.Load(); n != 2 {
		t.Errorf("%d token fetches, want 2 (the first, one refresh)", n)
	}
	fresh := g.fetches.last()
	if fresh == first {
		t.Fatalf("the refresh brought back the revoked token")
	}
	seen := g.upstreamRequests()
	if len(seen) != 2 {
		t.Fatalf("%d requests upstream, want 2 (the call and one replay)", len(seen))
	}
	for i, want := range []string{first, fresh} {
		s := seen[i]
		if q := "access_token=" + want + "&lang=zh_CN"; s.RawQuery != q {
			t.Errorf("attempt %d: query %q, want %q", i+1, s.RawQuery, q)
		}
		if !bytes.Equal(s.Body, menu) || s.ContentLength != int64(len(menu)) {
			t.Errorf("attempt %d: body %q (length %d), want the client's", i+1, s.Body, s.ContentLength)
		}
		if s.Method != http.MethodPost || s.Header.Get("Content-Type") != "application/json" || s.Header.Get("Accept-Encoding") != "" {
			t.Errorf("attempt %d: %s, headers %v", i+1, s.Method, s.Header)
		}
		if strings.Contains(s.RequestURI, gw) || strings.Contains(s.RequestURI, want) {
			t.Errorf("attempt %d: RequestURI %q holds a token", i+1, s.RequestURI)
		}
	}
	c := g.sim.Counters()
	if p := c.Paths["/cgi-bin/menu/create"]; p.Calls != 2 || p.OK != 1 || p.AppTokenRejections != 1 {
		t.Errorf("simulator saw menu/create %+v, want 2 calls: one rejected token, one OK", p)
	}
	// The menu was created once, by the replay.
	if rec := g.get(h, "/cgi-bin/menu/get?access_token="+gw); !strings.Contains(rec.Body.String(), "V1001_TODAY") {
		t.Errorf("menu/get: %q", rec.Body.String())
	}
}

func TestReplayAfterRevokedWeComToken(t *testing.T) {
	g := newGateway(t)
	h := g.site(Handler{Account: "corp", Trusted: true})
	wantErrcode(t, g.get(h, "/cgi-bin/user/get?userid=zhangsan"), 0)
	g.advance(time.Minute)
	if _, err := g.sim.InvalidateTokens(corpID); err != nil {
		t.Fatal(err)
	}
	g.resetSeen()
	wantErrcode(t, g.get(h, "/cgi-bin/user/get?userid=zhangsan"), 0)
	if n := len(g.upstreamRequests()); n != 2 {
		t.Errorf("%d requests upstream, want 2", n)
	}
	if n := g.fetches.calls.Load(); n != 2 {
		t.Errorf("%d gettoken calls, want 2", n)
	}
	if p := g.sim.Counters().Paths["/cgi-bin/user/get"]; p.Rejected[wxapi.CodeInvalidToken] != 1 {
		t.Errorf("simulator rejections %v, want one 40014", p.Rejected)
	}
}

// WeChat's clock runs ahead: it calls the token expired (42001) while the
// gateway still holds it valid.
func TestReplayAfterEarlyExpiry(t *testing.T) {
	g := newGateway(t)
	h := g.trustedSite()
	wantErrcode(t, g.get(h, "/cgi-bin/menu/get"), wxapi.CodeMenuNotExist)
	g.advance(time.Minute)
	g.sim.Clock().Advance(2 * time.Hour) // WeChat only
	g.resetSeen()
	wantErrcode(t, g.get(h, "/cgi-bin/menu/get"), wxapi.CodeMenuNotExist)
	if n := len(g.upstreamRequests()); n != 2 {
		t.Errorf("%d requests upstream, want 2", n)
	}
	if p := g.sim.Counters().Paths["/cgi-bin/menu/get"]; p.Rejected[wxapi.CodeTokenExpired] != 1 {
		t.Errorf("simulator rejections %v, want one 42001", p.Rejected)
	}
}

func TestReplayOnEachTokenErrcode(t *testing.T) {
	for _, code := range []int{wxapi.CodeInvalidCredential, wxapi.CodeInvalidToken, wxapi.CodeTokenExpired} {
		t.Run(fmt.Sprint(code), func(t *testing.T) {
			g := newGateway(t, withScriptedTokens())
			up := &scripted{answers: []http.HandlerFunc{
				jsonAnswer(fmt.Sprintf(`{"errcode":%d,"errmsg":"access_token expired rid: 6650a1b2-1c2d3e4f-5a6b7c8d"}`, code),
					"X-Attempt", "first", "Set-Cookie", "first=1"),
				jsonAnswer(`{"errcode":0,"errmsg":"ok","data":"T"}`, "X-Attempt", "second"),
			}}
			g.setUpstream(up)
			h := g.trustedSite()
			g.warm()
			rec := g.get(h, "/cgi-bin/user/info?openid=o1")
			if want := `{"errcode":0,"errmsg":"ok","data":"T"}`; rec.Body.String() != want {
				t.Errorf("client got %q, want %q", rec.Body.String(), want)
			}
			if got := rec.Header().Values("X-Attempt"); len(got) != 1 || got[0] != "second" {
				t.Errorf("X-Attempt %q, want only the replay's", got)
			}
			if c := rec.Header().Get("Set-Cookie"); c != "" {
				t.Errorf("a header of the discarded answer reached the client: Set-Cookie %q", c)
			}
			if want := []string{tok(1), tok(2)}; fmt.Sprint(up.tokens) != fmt.Sprint(want) {
				t.Errorf("upstream got tokens %q, want %q", up.tokens, want)
			}
			if n := g.fetches.calls.Load(); n != 2 {
				t.Errorf("%d token fetches, want 2", n)
			}
		})
	}
}

func TestNoReplayOnOtherErrors(t *testing.T) {
	for _, body := range []string{
		`{"errcode":40013,"errmsg":"invalid appid"}`,
		`{"errcode":45009,"errmsg":"reach max api daily quota limit"}`,
		`{"errcode":-1,"errmsg":"system error"}`,
		`{"errcode":48001,"errmsg":"api unauthorized"}`,
		`{"errcode":41001,"errmsg":"access_token missing"}`,
		`{"data":{"errcode":40001}}`,
		`{"errmsg":"errcode 40001"}`,
		`[{"errcode":40001}]`,
		`not json {"errcode":40001}`,
	} {
		t.Run(body, func(t *testing.T) {
			g := newGateway(t, withScriptedTokens())
			up := &scripted{answers: []http.HandlerFunc{jsonAnswer(body)}}
			g.setUpstream(up)
			h := g.trustedSite()
			g.warm()
			rec := g.get(h, "/cgi-bin/menu/get")
			if rec.Body.String() != body {
				t.Errorf("client got %q, want %q", rec.Body.String(), body)
			}
			if up.calls != 1 || g.fetches.calls.Load() != 1 {
				t.Errorf("%d attempts, %d fetches; want 1 and 1", up.calls, g.fetches.calls.Load())
			}
		})
	}
}

// mp2 fetches from /cgi-bin/token, where every call makes a new token:
// a token rejected within the cooldown after it was fetched is not
// replaced, and its answer goes to the client without a replay.
func TestNoReplayWithinRefreshCooldown(t *testing.T) {
	g := newGateway(t, withScriptedTokens())
	tok1, tok2 := mp2AppID+"-tok-1", mp2AppID+"-tok-2"
	up := &scripted{answers: []http.HandlerFunc{rejectToken(tok1, wxapi.CodeInvalidCredential, `{"errcode":0,"errmsg":"ok"}`)}}
	g.setUpstream(up)
	h := g.site(Handler{Account: "mp2", Trusted: true})

	// Fetched now, rejected now: a fresh token is not the problem.
	wantErrcode(t, g.get(h, "/cgi-bin/menu/get"), wxapi.CodeInvalidCredential)
	g.advance(token.DefaultRefreshCooldown - time.Second)
	wantErrcode(t, g.get(h, "/cgi-bin/menu/get"), wxapi.CodeInvalidCredential)
	if up.calls != 2 || g.fetches.calls.Load() != 1 {
		t.Fatalf("within the cooldown: %d attempts, %d fetches; want 2 (no replay) and 1; tokens %q", up.calls, g.fetches.calls.Load(), up.tokens)
	}
	// Once the token is as old as the cooldown, a rejection refreshes it.
	g.advance(time.Second)
	wantErrcode(t, g.get(h, "/cgi-bin/menu/get"), 0)
	if up.calls != 4 || g.fetches.calls.Load() != 2 {
		t.Errorf("after the cooldown: %d attempts, %d fetches; want 4 and 2", up.calls, g.fetches.calls.Load())
	}
	if fmt.Sprint(up.tokens) != fmt.Sprint([]string{tok1, tok1, tok1, tok2}) {
		t.Errorf("tokens upstream %q", up.tokens)
	}
}

// A stable token WeChat refuses right after it was fetched, while the
// token endpoint still hands it out: no replay, no force_refresh, and the
// gateway keeps the token.
func TestNoReplayForFreshStableToken(t *testing.T) {
	g := newGateway(t)
	h := g.trustedSite()
	if _, err := g.sim.InjectFault(simulator.Fault{Path: "/cgi-bin/menu/get", Errcode: wxapi.CodeInvalidCredential, Count: 1}); err != nil {
		t.Fatal(err)
	}
	wantErrcode(t, g.get(h, "/cgi-bin/menu/get"), wxapi.CodeInvalidCredential)
	first := g.fetches.last()
	if n := len(g.upstreamRequests()); n != 1 {
		t.Errorf("%d attempts, want 1: no replay", n)
	}
	if c := g.sim.Counters().Tokens[mpAppID]; c.ForceRefresh != 0 || c.StableIssued != 1 {
		t.Errorf("simulator: %d force refreshes, %d stable tokens issued; want 0 and 1", c.ForceRefresh, c.StableIssued)
	}
	// The fault is spent; the same token serves the next call.
	g.resetSeen()
	wantErrcode(t, g.get(h, "/cgi-bin/menu/get"), wxapi.CodeMenuNotExist)
	if seen := g.upstreamRequests(); len(seen) != 1 || seen[0].query(t, "access_token")[0] != first {
		t.Errorf("next call: %+v, want one attempt with the first token", seen)
	}
}

func TestFreshTokenRefusedTooMarksPathStuck(t *testing.T) {
	g := newGateway(t, withScriptedTokens())
	const stuckPath = "/cgi-bin/express/business/account/getall"
	up := &scripted{answers: []http.HandlerFunc{func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == stuckPath { // wants another kind of token: no refresh helps
			jsonAnswer(`{"errcode":40014,"errmsg":"invalid access_token rid: 1-2-3"}`)(w, r)
			return
		}
		jsonAnswer(`{"errcode":0,"errmsg":"ok"}`)(w, r)
	}}}
	g.setUpstream(up)
	h := g.trustedSite()
	g.warm()

	wantErrcode(t, g.get(h, stuckPath), wxapi.CodeInvalidToken)
	if up.calls != 2 || g.fetches.calls.Load() != 2 {
		t.Fatalf("first call: %d attempts, %d fetches; want 2 (call, replay) and 2", up.calls, g.fetches.calls.Load())
	}
	if !h.stuck.has("mp", stuckPath, g.clock.Now()) {
		t.Fatal("the path is not marked stuck")
	}

	// Later calls to the path get WeChat's answer, with no refresh and no
	// replay, long after the cooldown.
	for range 3 {
		g.advance(time.Minute)
		wantErrcode(t, g.get(h, stuckPath), wxapi.CodeInvalidToken)
	}
	if up.calls != 5 || g.fetches.calls.Load() != 2 {
		t.Errorf("stuck: %d attempts, %d fetches; want 5 and 2", up.calls, g.fetches.calls.Load())
	}
	// Other paths go on with the fresh token.
	wantErrcode(t, g.get(h, "/cgi-bin/menu/get"), 0)
	if last := up.tokens[len(up.tokens)-1]; last != tok(2) {
		t.Errorf("other path got %q, want %q", last, tok(2))
	}
	// Another site's handler keeps its own memory; this one forgets after
	// stuckFor.
	g.advance(stuckFor)
	wantErrcode(t, g.get(h, stuckPath), wxapi.CodeInvalidToken)
	if up.calls != 8 || g.fetches.calls.Load() != 3 {
		t.Errorf("after %v: %d attempts, %d fetches; want 8 (call, replay) and 3", stuckFor, up.calls, g.fetches.calls.Load())
	}
}

// With the simulator: the token is revoked, so the refresh brings a new
// one, but the path refuses that one too (an injected fault). The fresh
// token is reported: stable_token hands it back unchanged (one normal-mode
// call), so it stands and the path is left alone.
func TestStuckPathWithSimulator(t *testing.T) {
	g := newGateway(t)
	h := g.trustedSite()
	wantErrcode(t, g.get(h, "/cgi-bin/user/info?openid=o1"), 0)
	first := g.fetches.last()
	g.advance(time.Minute)
	if _, err := g.sim.InvalidateTokens(mpAppID); err != nil {
		t.Fatal(err)
	}
	if _, err := g.sim.InjectFault(simulator.Fault{Path: "/cgi-bin/menu/get", Errcode: wxapi.CodeInvalidCredential, Count: 3}); err != nil {
		t.Fatal(err)
	}
	g.resetSeen()
	wantErrcode(t, g.get(h, "/cgi-bin/menu/get"), wxapi.CodeInvalidCredential)
	fresh := g.fetches.last()
	seen := g.upstreamRequests()
	if len(seen) != 2 || fresh == first || seen[0].query(t, "access_token")[0] != first || seen[1].query(t, "access_token")[0] != fresh {
		t.Fatalf("%d attempts; want the call with the revoked token and one replay with the fresh one", len(seen))
	}
	if n := g.fetches.calls.Load(); n != 3 {
		t.Errorf("%d fetches, want 3 (the first token, the fresh one, the check of the fresh one)", n)
	}
	if g.fetches.last() != fresh {
		t.Errorf("the check replaced the fresh token")
	}
	if !h.stuck.has("mp", "/cgi-bin/menu/get", g.clock.Now()) {
		t.Fatal("the path is not marked stuck")
	}
	g.advance(time.Minute)
	wantErrcode(t, g.get(h, "/cgi-bin/menu/get"), wxapi.CodeInvalidCredential)
	if n := g.fetches.calls.Load(); n != 3 {
		t.Errorf("%d fetches after a call to a stuck path, want still 3", n)
	}
	if p := g.sim.Counters().Paths["/cgi-bin/menu/get"]; p.Calls != 3 || p.Faults != 3 {
		t.Errorf("simulator saw menu/get %+v, want 3 calls (call, replay, call), all faults", p)
	}
	if c := g.sim.Counters().Tokens[mpAppID]; c.ForceRefresh != 0 {
		t.Errorf("simulator force refreshes %d, want 0", c.ForceRefresh)
	}
	// The fresh token serves the other paths.
	wantErrcode(t, g.get(h, "/cgi-bin/user/info?openid=o1"), 0)
}

// TestTokenReplacedDuringTheReplay: the token is invalidated (another
// system rotated it) while the replay is in flight, so WeChat refuses the
// fresh token too. The path is not marked stuck: the fresh token is
// reported, its successor fetched, and the next calls to the path are
// refreshed and replayed as ever (it was left without either for 10
// minutes).
func TestTokenReplacedDuringTheReplay(t *testing.T) {
	g := newGateway(t)
	h := g.trustedSite()
	const path = "/cgi-bin/menu/get"
	wantErrcode(t, g.get(h, "/cgi-bin/user/info?openid=o1"), 0)
	g.advance(time.Minute)
	if _, err := g.sim.InvalidateTokens(mpAppID); err != nil {
		t.Fatal(err)
	}
	sim, revoked := g.sim, g.fetches.last()
	replays := 0
	g.setUpstream(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == path && !strings.Contains(r.URL.RawQuery, "access_token="+revoked) && replays == 0 {
			replays++
			// The replay: the fresh token dies just before it arrives.
			if _, err := g.sim.InvalidateTokens(mpAppID); err != nil {
				t.Error(err)
			}
		}
		sim.ServeHTTP(w, r)
	}))
	wantErrcode(t, g.get(h, path), wxapi.CodeInvalidCredential)
	if h.stuck.has("mp", path, g.clock.Now()) {
		t.Fatal("the path was marked stuck for a token that died in flight")
	}
	g.advance(5 * time.Minute)
	if _, err := g.sim.InvalidateTokens(mpAppID); err != nil {
		t.Fatal(err)
	}
	g.resetSeen()
	wantErrcode(t, g.get(h, path), wxapi.CodeMenuNotExist)
	if seen := g.upstreamRequests(); len(seen) != 2 {
		t.Errorf("next call after another invalidation: %d attempts, want 2 (call, replay)", len(seen))
	}
}

func TestLargeBodyStreamsWithoutReplay(t *testing.T) {
	const limit = 1024
	for _, c := range []struct {
		name       string
		size       int
		unknownLen bool
		replayed   bool
	}{
		{"over the limit", 4 * limit, false, false},
		{"over the limit, unknown length", 4 * limit, true, false},
		{"one byte over, unknown length", limit + 1, true, false},
		{"at the limit", limit, false, true},
		{"at the limit, unknown length", limit, true, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			g := newGateway(t, withScriptedTokens())
			up := &scripted{answers: []http.HandlerFunc{rejectToken(tok(1), wxapi.CodeInvalidCredential, `{"errcode":0,"errmsg":"ok"}`)}}
			g.setUpstream(up)
			h := g.site(Handler{Account: "mp", Trusted: true, MaxReplayBody: limit})
			g.warm()
			body := bytes.Repeat([]byte("0123456789abcdef"), c.size/16+1)[:c.size]
			var rd io.Reader = bytes.NewReader(body)
			if c.unknownLen {
				rd = io.MultiReader(rd)
			}
			r := httptest.NewRequest(http.MethodPost, "/cgi-bin/media/upload?type=image", rd)
			if c.unknownLen {
				r.ContentLength = -1
			}
			rec := g.serve(h, r)
			seen := g.upstreamRequests()
			for i, s := range seen {
				if !bytes.Equal(s.Body, body) {
					t.Errorf("attempt %d: %d bytes upstream, want the %d sent, byte for byte", i+1, len(s.Body), len(body))
				}
			}
			if n := g.fetches.calls.Load(); n != 2 {
				t.Errorf("%d token fetches, want 2: a rejected token is reported even when the call cannot be replayed", n)
			}
			if c.replayed {
				wantErrcode(t, rec, 0)
				if len(seen) != 2 {
					t.Errorf("%d attempts, want 2", len(seen))
				}
				return
			}
			wantErrcode(t, rec, wxapi.CodeInvalidCredential)
			if len(seen) != 1 {
				t.Errorf("%d attempts, want 1: a streamed body cannot be sent again", len(seen))
			}
			// The next call has the fresh token.
			wantErrcode(t, g.get(h, "/cgi-bin/menu/get"), 0)
			if last := up.tokens[len(up.tokens)-1]; last != tok(2) {
				t.Errorf("next call used %q, want %q", last, tok(2))
			}
		})
	}
}

func TestSuccessfulAnswerPassesUntouched(t *testing.T) {
	for _, c := range []struct {
		name        string
		status      int
		contentType string
		body        string
	}{
		{"json ok", 200, "application/json; encoding=utf-8", `{"errcode":0,"errmsg":"ok","menu":{"button":[]}}`},
		{"json without errcode", 200, "application/json", `{"ticket":"bxLdikRXVbTPdHSM05e5u5sUoXNKd8-41ZO3MhKoyN5OfkWITDGgnr2fwJ0m9E8NYzWKVZvdVtaUgWvsdshFKA","expires_in":7200}`},
		{"text", 200, "text/plain; charset=utf-8", "success"},
		{"empty", 200, "application/json", ""},
		{"500 with a token error", 500, "application/json", `{"errcode":40001,"errmsg":"invalid credential"}`},
		{"404 html", 404, "text/html", "<html><body>404 Not Found</body></html>"},
	} {
		t.Run(c.name, func(t *testing.T) {
			g := newGateway(t, withScriptedTokens())
			up := &scripted{answers: []http.HandlerFunc{func(w http.ResponseWriter, r *http.Request) {
				h := w.Header()
				h.Set("Content-Type", c.contentType)
				h.Set("Content-Length", fmt.Sprint(len(c.body)))
				h.Add("Set-Cookie", "a=1")
				h.Add("Set-Cookie", "b=2")
				h.Set("X-Upstream", "wx")
				w.WriteHeader(c.status)
				_, _ = io.WriteString(w, c.body)
			}}}
			g.setUpstream(up)
			h := g.trustedSite()
			g.warm()
			rec := g.get(h, "/cgi-bin/menu/get")
			if rec.Code != c.status || rec.Body.String() != c.body {
				t.Errorf("client got %d %q, want %d %q", rec.Code, rec.Body.String(), c.status, c.body)
			}
			want := http.Header{
				"Content-Type":   {c.contentType},
				"Content-Length": {fmt.Sprint(len(c.body))},
				"Set-Cookie":     {"a=1", "b=2"},
				"X-Upstream":     {"wx"},
			}
			if fmt.Sprint(rec.Header()) != fmt.Sprint(want) {
				t.Errorf("client headers %v, want %v", rec.Header(), want)
			}
			if up.calls != 1 || g.fetches.calls.Load() != 1 {
				t.Errorf("%d attempts, %d fetches; want 1 and 1", up.calls, g.fetches.calls.Load())
			}
		})
	}
}

// An answer that cannot be a token error reaches the client as the upstream
// writes it: nothing is held back, flushes go through. Media (image, audio,
// video) passes as it is; anything else streams too, though the gateway may
// keep the last few bytes of each write back (slack) to look for values
// split across writes.
func TestUninspectedAnswersAreNotBuffered(t *testing.T) {
	tokenError := []byte(`{"errcode":40001,"errmsg":"invalid credential"}`)
	big := append(append([]byte{}, tokenError[:len(tokenError)-1]...), []byte(`,"pad":"`+strings.Repeat("x", inspectWindow)+`"}`)...)
	for _, c := range []struct {
		name   string
		header map[string]string
		chunks [][]byte
		slack  int
	}{
		{"jpeg", map[string]string{"Content-Type": "image/jpeg"}, [][]byte{{0xff, 0xd8, 0xff, 0xe0}, tokenError, {0xff, 0xd9}}, 0},
		// Not media: masked as it streams, so it may keep a tail back.
		{"octet-stream", map[string]string{"Content-Type": "application/octet-stream"}, [][]byte{tokenError, []byte("rest")}, 256},
		// A file (Content-Disposition): masked for the confidential values
		// only, so it keeps a shorter tail back.
		{"attachment", map[string]string{"Content-Type": "text/plain", "Content-Disposition": `attachment; filename="a.txt"`}, [][]byte{tokenError, []byte("rest")}, 256},
		{"json over the window", map[string]string{"Content-Type": "application/json"}, [][]byte{big, []byte("\n")}, 256},
		{"json announced over the window", map[string]string{"Content-Type": "application/json", "Content-Length": fmt.Sprint(len(big))}, [][]byte{big}, 256},
	} {
		t.Run(c.name, func(t *testing.T) {
			g := newGateway(t, withScriptedTokens())
			h := g.trustedSite()
			g.warm()
			rec := httptest.NewRecorder()
			var want bytes.Buffer
			attempts := 0
			g.setUpstream(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				attempts++
				for k, v := range c.header {
					w.Header().Set(k, v)
				}
				w.WriteHeader(http.StatusOK)
				for i, chunk := range c.chunks {
					_, _ = w.Write(chunk)
					want.Write(chunk)
					if got := rec.Body.Bytes(); len(got) < want.Len()-c.slack || !bytes.HasPrefix(want.Bytes(), got) {
						t.Errorf("after chunk %d the client has %d bytes, want %d (less at most %d): the answer is held back", i+1, len(got), want.Len(), c.slack)
					}
					http.NewResponseController(w).Flush()
					if !rec.Flushed {
						t.Errorf("after chunk %d: the flush did not reach the client", i+1)
					}
				}
			}))
			if err := h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/cgi-bin/media/get?media_id=m1", nil), g.next()); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(rec.Body.Bytes(), want.Bytes()) || attempts != 1 {
				t.Errorf("client got %d bytes in %d attempts, want %d in 1", rec.Body.Len(), attempts, want.Len())
			}
			if n := g.fetches.calls.Load(); n != 1 {
				t.Errorf("%d token fetches, want 1: an uninspected answer reports no token", n)
			}
		})
	}
}

// The counterpart: a small JSON answer is held back until it is known not
// to be a token error, flushes included.
func TestSmallJSONAnswerIsHeldBack(t *testing.T) {
	g := newGateway(t, withScriptedTokens())
	h := g.trustedSite()
	rec := httptest.NewRecorder()
	g.setUpstream(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"errcode":0,`)
		http.NewResponseController(w).Flush()
		_, _ = io.WriteString(w, `"errmsg":"ok"}`)
		if rec.Body.Len() != 0 || rec.Flushed {
			t.Errorf("the client got %q (flushed %v) before the answer was inspected", rec.Body.String(), rec.Flushed)
		}
	}))
	if err := h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/cgi-bin/menu/get", nil), g.next()); err != nil {
		t.Fatal(err)
	}
	if rec.Body.String() != `{"errcode":0,"errmsg":"ok"}` {
		t.Errorf("client got %q", rec.Body.String())
	}
}

func TestConcurrentRejectionsRefreshOnce(t *testing.T) {
	g := newGateway(t, withScriptedTokens())
	up := &scripted{answers: []http.HandlerFunc{rejectToken(tok(1), wxapi.CodeInvalidCredential, `{"errcode":0,"errmsg":"ok"}`)}}
	g.setUpstream(up)
	h := g.trustedSite()
	g.warm()
	const callers = 16
	var wg sync.WaitGroup
	answers := make([]string, callers)
	for i := range callers {
		wg.Go(func() {
			rec := httptest.NewRecorder()
			if err := h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/cgi-bin/menu/get", nil), g.next()); err != nil {
				answers[i] = err.Error()
				return
			}
			answers[i] = rec.Body.String()
		})
	}
	wg.Wait()
	for i, a := range answers {
		if a != `{"errcode":0,"errmsg":"ok"}` {
			t.Errorf("caller %d got %q, want the replayed answer", i, a)
		}
	}
	if n := g.fetches.calls.Load(); n != 2 {
		t.Errorf("%d token fetches for %d rejections, want 2 (the first, one refresh)", n, callers)
	}
	old, fresh := 0, 0
	for _, tk := range up.tokens {
		switch tk {
		case tok(1):
			old++
		case tok(2):
			fresh++
		default:
			t.Errorf("upstream got token %q", tk)
		}
	}
	if old+fresh != up.calls || fresh != callers || old > callers {
		t.Errorf("%d attempts with the old token and %d with the fresh, want every caller to end on the fresh one", old, fresh)
	}
}

// No token to replay with: the client gets WeChat's answer to the call as
// it was, and the next call tries again.
func TestReplayWhenRefreshFails(t *testing.T) {
	var n atomic.Int32
	g := newGateway(t, withFetcher(fetcherFunc(func(_ context.Context, a *token.Account, _ bool) (token.Fetched, error) {
		if n.Add(1) == 2 {
			return token.Fetched{}, &token.FetchError{Endpoint: "api.weixin.qq.com/cgi-bin/stable_token", Errcode: wxapi.CodeSystemBusy, Errmsg: "system error"}
		}
		return token.Fetched{Value: fmt.Sprintf("%s-tok-%d", a.AppID, n.Load()), ExpiresIn: 2 * time.Hour}, nil
	})))
	const rejected = `{"errcode":40001,"errmsg":"invalid credential, access_token is invalid or not latest rid: 67c2a1b0-12345678-0abcdef1"}`
	up := &scripted{answers: []http.HandlerFunc{func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Query().Get("access_token"), "-tok-1") {
			jsonAnswer(rejected, "X-Attempt", "first")(w, r)
			return
		}
		jsonAnswer(`{"errcode":0,"errmsg":"ok"}`)(w, r)
	}}}
	g.setUpstream(up)
	h := g.trustedSite()
	g.warm()
	rec := g.get(h, "/cgi-bin/menu/get")
	if rec.Body.String() != rejected || rec.Header().Get("X-Attempt") != "first" {
		t.Errorf("client got %q (X-Attempt %q), want the first answer as it was", rec.Body.String(), rec.Header().Get("X-Attempt"))
	}
	if up.calls != 1 || n.Load() != 2 {
		t.Errorf("%d attempts, %d fetches; want 1 and 2", up.calls, n.Load())
	}
	// A transient failure backs off (1 s, no jitter here); then the next
	// call gets a token.
	g.advance(2 * time.Second)
	wantErrcode(t, g.get(h, "/cgi-bin/menu/get"), 0)
	if last := up.tokens[len(up.tokens)-1]; last != tok(3) {
		t.Errorf("next call used %q, want %q", last, tok(3))
	}
}

// WeChat echoes requests: rid/get answers the request URL of a failed call,
// with the token the gateway put there. The client never sees it.
func TestAnswersNeverCarryTheRealToken(t *testing.T) {
	g := newGateway(t)
	h := g.clientsSite()
	gw := g.gatewayToken(h, "official", mpAppID, shopKey)
	failed := decodeAnswer(t, g.get(h, "/cgi-bin/user/info?openid=not*an*openid&access_token="+gw))
	_, rid, ok := strings.Cut(failed.Errmsg, "rid: ")
	if failed.Errcode == 0 || !ok {
		t.Fatalf("the failed call answered %+v, want an error with a rid", failed)
	}
	real := g.fetches.last()
	rec := g.post(h, "/cgi-bin/openapi/rid/get?access_token="+gw, "application/json", []byte(`{"rid":"`+rid+`"}`))
	body := rec.Body.String()
	if !strings.Contains(body, "request_url") {
		t.Fatalf("rid/get answered %q", body)
	}
	if strings.Contains(body, real) {
		t.Errorf("the real token reached the client: %q", body)
	}
	if !strings.Contains(body, strings.Repeat("*", len(real))) {
		t.Errorf("rid/get answered %q, want the token masked in place", body)
	}
	var v map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &v); err != nil {
		t.Errorf("the masked answer is no longer JSON: %v", err)
	}

	// A streamed JSON answer, with the token and the secret split across
	// writes.
	echo := []byte(`{"errcode":0,"pad":"` + strings.Repeat("x", inspectWindow) + `","url":"access_token=` + real + `","secret":"` + mpSecret + `"}`)
	g.setUpstream(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		for rest := echo; len(rest) > 0; {
			n := min(7, len(rest))
			_, _ = w.Write(rest[:n])
			rest = rest[n:]
		}
	}))
	rec = g.get(h, "/cgi-bin/menu/get?access_token="+gw)
	if rec.Body.Len() != len(echo) {
		t.Errorf("client got %d bytes, want %d", rec.Body.Len(), len(echo))
	}
	for _, secret := range []string{real, mpSecret} {
		if strings.Contains(rec.Body.String(), secret) {
			t.Errorf("a confidential value reached the client in a streamed answer")
		}
	}
}

// TestCooldownOffTokenEndpointNotDrained: with refresh_cooldown off, a
// client calling a path that refuses every token of a /cgi-bin/token
// account costs at most the first refresh: the replay's refusal marks the
// path, with no call to ask whether the fresh token stands (each would
// make a new token).
func TestCooldownOffTokenEndpointNotDrained(t *testing.T) {
	g := newGateway(t, func(c *gatewayConfig) { c.cooldown = -1 }) // refresh_cooldown off
	h := refusingSite(g, "mp2", 0)
	const refusing = refusingPath
	wantErrcode(t, g.get(h, "/cgi-bin/user/info?openid=o1"), 0)
	g.advance(10 * time.Minute)
	base := g.fetches.calls.Load()
	for range 20 {
		g.get(h, refusing)
		g.advance(time.Second)
	}
	if n := g.fetches.calls.Load() - base; n > 1 {
		t.Errorf("20 calls to a path that refuses every token: %d /cgi-bin/token calls, want at most 1", n)
	}
	if !h.stuck.has("mp2", refusing, g.clock.Now()) {
		t.Error("the path is not marked stuck")
	}
}

// refusingSite is a site of account with the given max_replay_body (0:
// the default) whose upstream refuses every token on refusingPath, and
// answers as WeChat elsewhere.
func refusingSite(g *gateway, account string, maxBody int64) *Handler {
	sim := g.sim
	g.setUpstream(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == refusingPath {
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprint(w, `{"errcode":40001,"errmsg":"invalid credential"}`)
			return
		}
		sim.ServeHTTP(w, r)
	}))
	return g.site(Handler{Account: account, Trusted: true, MaxReplayBody: maxBody})
}

const refusingPath = "/cgi-bin/always/refused"

// postStreamed sends a body over max_replay_body (1024 in these tests) to
// refusingPath: it streams, and cannot be replayed.
func postStreamed(g *gateway, h *Handler) *httptest.ResponseRecorder {
	return g.serve(h, httptest.NewRequest(http.MethodPost, refusingPath, bytes.NewReader(bytes.Repeat([]byte("x"), 2048))))
}

// TestStreamedBodiesLeaveStuckPathAlone: calls whose body streams (over
// max_replay_body) to a path where a fresh token was refused too report no
// token, as small calls there do. With refresh_cooldown off and a
// /cgi-bin/token account, each report had made a new token: a client could
// spend the account's daily quota, and replace the token every other user
// of the account holds, with 2,000 uploads. (Found by a review.)
func TestStreamedBodiesLeaveStuckPathAlone(t *testing.T) {
	g := newGateway(t, func(c *gatewayConfig) { c.cooldown = -1 })
	h := refusingSite(g, "mp2", 1024)
	wantErrcode(t, g.get(h, "/cgi-bin/user/info?openid=o1"), 0)
	g.advance(10 * time.Minute)
	g.get(h, refusingPath) // a small call: replayed, refused again, the path stuck
	if !h.stuck.has("mp2", refusingPath, g.clock.Now()) {
		t.Fatal("the path is not marked stuck")
	}
	base := g.fetches.calls.Load()
	for range 20 {
		wantErrcode(t, postStreamed(g, h), wxapi.CodeInvalidCredential)
		g.advance(time.Second)
	}
	if n := g.fetches.calls.Load() - base; n != 0 {
		t.Errorf("20 streamed calls to a stuck path: %d /cgi-bin/token calls, want 0", n)
	}
}

// TestStreamedBodiesMarkPathStuck: streamed calls alone find a path that
// refuses every token. The first reports its token; the next, refused the
// very token that report brought, marks the path stuck instead of
// reporting again. (A stable_token account's report takes two calls: the
// normal mode, which hands the live token back, then force_refresh; small
// calls there take three, the replay's refusal asking once more.)
func TestStreamedBodiesMarkPathStuck(t *testing.T) {
	for _, c := range []struct {
		account  string
		fetches  int32 // the most token-endpoint calls of 20 streamed calls
		endpoint string
	}{
		{"mp2", 1, "/cgi-bin/token"},
		{"mp", 2, "/cgi-bin/stable_token"},
	} {
		t.Run(c.endpoint, func(t *testing.T) {
			g := newGateway(t, func(gc *gatewayConfig) { gc.cooldown = -1 })
			h := refusingSite(g, c.account, 1024)
			wantErrcode(t, g.get(h, "/cgi-bin/user/info?openid=o1"), 0)
			g.advance(10 * time.Minute)
			base := g.fetches.calls.Load()
			for range 20 {
				wantErrcode(t, postStreamed(g, h), wxapi.CodeInvalidCredential)
				g.advance(time.Second)
			}
			if n := g.fetches.calls.Load() - base; n > c.fetches {
				t.Errorf("20 streamed calls to a path that refuses every token: %d token-endpoint calls, want at most %d", n, c.fetches)
			}
			if !h.stuck.has(c.account, refusingPath, g.clock.Now()) {
				t.Error("the path is not marked stuck")
			}
			// Other paths still work, with the account's token.
			wantErrcode(t, g.get(h, "/cgi-bin/user/info?openid=o1"), 0)
		})
	}
}

// TestStreamedBodiesCostNoMoreThanSmallCalls: over a simulated day of one
// call a minute to a path that refuses every token, with the default
// cooldown, streamed calls spend no more token-endpoint calls than small
// ones (one each time the path's stuck mark runs out).
func TestStreamedBodiesCostNoMoreThanSmallCalls(t *testing.T) {
	day := func(call func(g *gateway, h *Handler)) int32 {
		g := newGateway(t)
		h := refusingSite(g, "mp2", 1024)
		wantErrcode(t, g.get(h, "/cgi-bin/user/info?openid=o1"), 0)
		g.advance(10 * time.Minute)
		base := g.fetches.calls.Load()
		for range 24 * 60 {
			call(g, h)
			g.advance(time.Minute)
		}
		return g.fetches.calls.Load() - base
	}
	small := day(func(g *gateway, h *Handler) { g.get(h, refusingPath) })
	streamed := day(func(g *gateway, h *Handler) { postStreamed(g, h) })
	if streamed > small+1 {
		t.Errorf("a day of streamed calls: %d /cgi-bin/token calls; of small calls: %d", streamed, small)
	}
	t.Logf("token-endpoint calls in a day: small calls %d, streamed %d", small, streamed)
}
