package caddywechat

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/wxgate/caddy-wechat/module/internal/msgcrypt"
	"github.com/wxgate/caddy-wechat/module/internal/token"
	"github.com/wxgate/caddy-wechat/module/internal/wxapi"
)

// platformSite builds a callback route for a platform account, on a frozen
// clock, without Caddy.
func platformSite(t *testing.T) (*Handler, msgcrypt.Codec, *token.ManualClock, *token.Handle) {
	t.Helper()
	clock := token.NewFrozenClock(testStart)
	m := token.NewManager(token.Options{Clock: clock, Logger: zap.NewNop(), Fetcher: componentFetcher{}})
	h, err := m.Register(token.Account{Name: "platform", Kind: token.Component, AppID: "wx3rdcomponent0001", Secret: "s3cret"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Release)
	codec := msgcrypt.Codec{Token: "componenttoken01", EncodingAESKey: "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG", AppID: "wx3rdcomponent0001"}
	app := &App{
		tokens:      &tokenService{manager: m, clock: clock},
		handles:     map[string]*token.Handle{"platform": h},
		codecs:      map[string]msgcrypt.Codec{"platform": codec},
		authorizers: newAuthorizerSet(),
		logger:      zap.NewNop(),
	}
	return &Handler{Account: "platform", Callback: true, app: app, fixed: h, logger: zap.NewNop()}, codec, clock, h
}

// push sends a verify-ticket push issued at issued, with nonce.
func push(t *testing.T, site *Handler, codec msgcrypt.Codec, ticket string, issued time.Time, nonce string) int {
	t.Helper()
	ev := msgcrypt.ComponentEvent{AppID: codec.AppID, CreateTime: issued.Unix(), InfoType: msgcrypt.InfoTypeVerifyTicket, ComponentVerifyTicket: ticket}
	ts := strconv.FormatInt(issued.Unix(), 10)
	env, sig, err := codec.Seal(ev.Marshal(), ts, nonce)
	if err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequest(http.MethodPost, "/wechat/callback?timestamp="+ts+"&nonce="+nonce+"&msg_signature="+sig+"&encrypt_type=aes", bytes.NewReader(env.Marshal()))
	rec := httptest.NewRecorder()
	if err := site.ServeHTTP(rec, r, nil); err != nil {
		t.Fatal(err)
	}
	if rec.Code == http.StatusOK && rec.Body.String() != "success" {
		t.Errorf("a push was answered %q", rec.Body.String())
	}
	return rec.Code
}

// TestCallbackRefusesReplaysAndOldPushes: a push is taken once; the same
// push again, or one stamped outside five minutes of now, is refused; and
// an older ticket never replaces a newer one.
func TestCallbackRefusesReplaysAndOldPushes(t *testing.T) {
	site, codec, clock, h := platformSite(t)
	now := clock.Now()
	if code := push(t, site, codec, "ticket@old", now, "n1"); code != http.StatusOK {
		t.Fatalf("a good push: %d", code)
	}
	if code := push(t, site, codec, "ticket@old", now, "n1"); code != http.StatusBadRequest {
		t.Errorf("the same push again: %d, want 400", code)
	}
	clock.Advance(time.Minute)
	if code := push(t, site, codec, "ticket@new", clock.Now(), "n2"); code != http.StatusOK {
		t.Fatalf("a newer push: %d", code)
	}
	clock.Advance(6 * time.Minute)
	if code := push(t, site, codec, "ticket@old", now, "n1"); code != http.StatusBadRequest {
		t.Errorf("the old push, later: %d, want 400", code)
	}
	if code := push(t, site, codec, "ticket@older", now, "n3"); code != http.StatusBadRequest {
		t.Errorf("a push stamped 7 minutes ago: %d, want 400", code)
	}
	// A push for another platform, or a bad signature, is refused.
	other := codec
	other.AppID = "wxanotherplatform1"
	if code := push(t, site, other, "x", clock.Now(), "n4"); code != http.StatusBadRequest {
		t.Errorf("a push for another platform: %d", code)
	}
	if recv, fresh := h.VerifyTicketStatus(); !fresh || !recv.Equal(now.Add(time.Minute)) {
		t.Errorf("the ticket held arrived at %v (fresh %v), want the newer push's", recv, fresh)
	}
}

// TestCallbackReplayCannotMoveDigits: the signature covers nonce and
// timestamp joined without a separator, so a digit moved from the end of
// the nonce to the front of the timestamp keeps it valid; such a push is
// still the same push, and refused.
func TestCallbackReplayCannotMoveDigits(t *testing.T) {
	site, codec, clock, _ := platformSite(t)
	ev := msgcrypt.ComponentEvent{AppID: codec.AppID, CreateTime: clock.Now().Unix(), InfoType: msgcrypt.InfoTypeVerifyTicket, ComponentVerifyTicket: "t1"}
	ts := strconv.FormatInt(clock.Now().Unix(), 10)
	env, sig, err := codec.Seal(ev.Marshal(), ts, "010")
	if err != nil {
		t.Fatal(err)
	}
	send := func(nonce, ts string) int {
		r := httptest.NewRequest(http.MethodPost, "/wechat/callback?timestamp="+ts+"&nonce="+nonce+"&msg_signature="+sig, bytes.NewReader(env.Marshal()))
		rec := httptest.NewRecorder()
		if err := site.ServeHTTP(rec, r, nil); err != nil {
			t.Fatal(err)
		}
		return rec.Code
	}
	if code := send("010", ts); code != http.StatusOK {
		t.Fatalf("the push: %d", code)
	}
	for _, split := range [][2]string{{"01", "0" + ts}, {"010", "+" + ts}, {"010", strings.ToUpper(ts)}} {
		if code := send(split[0], split[1]); code != http.StatusBadRequest {
			t.Errorf("the push again as nonce %q, timestamp %q: %d, want 400", split[0], split[1], code)
		}
	}
}

// TestPlatformSiteRefusals: a platform's site serves component APIs and
// calls on behalf of the authorizers it holds, and refuses the rest with
// WeChat-shaped errors.
func TestPlatformSiteRefusals(t *testing.T) {
	callback, _, _, _ := platformSite(t)
	site := *callback
	site.Callback, site.Trusted = false, true
	for _, c := range []struct {
		method, target, body string
		want                 int
	}{
		{"GET", "/cgi-bin/menu/get", "", wxapi.CodeInvalidCredential},
		{"GET", "/cgi-bin/menu/get?access_token=real-token", "", wxapi.CodeInvalidCredential},
		{"GET", "/cgi-bin/menu/get?access_token=caddy-wechat-authorizer.bad%2Fid", "", wxapi.CodeInvalidCredential},
		{"GET", "/cgi-bin/menu/get?access_token=caddy-wechat-authorizer.wxa&access_token=caddy-wechat-authorizer.wxb", "", wxapi.CodeInvalidCredential},
		{"GET", "/cgi-bin/menu/get?access_token=caddy-wechat-authorizer.wxunknown", "", wxapi.CodeRefreshTokenRevoked},
		{"GET", "/sns/oauth2/access_token?appid=wx1&code=c", "", wxapi.CodeAPIUnauthorized},
		{"GET", "/cgi-bin/token?grant_type=client_credential&appid=wx1&secret=s", "", wxapi.CodeAPIUnauthorized},
		{"POST", "/cgi-bin/component/api_authorizer_token", `{"component_appid":"wxother","authorizer_appid":"wxa"}`, wxapi.CodeInvalidComponent},
		{"POST", "/cgi-bin/component/api_authorizer_token", `{"component_appid":"wx3rdcomponent0001","authorizer_appid":"wxa"}`, wxapi.CodeRefreshTokenRevoked},
		{"POST", "/cgi-bin/component/api_authorizer_token", `not json`, wxapi.CodeDataFormat},
		{"GET", "/cgi-bin/component/api_query_auth", "", wxapi.CodeRequirePOST},
		{"POST", "/cgi-bin/component/api_query_auth", `{"component_appid":"wx3rdcomponent0001"}`, wxapi.CodeCodeMissing},
	} {
		r := httptest.NewRequest(c.method, c.target, strings.NewReader(c.body))
		rec := httptest.NewRecorder()
		if err := site.ServeHTTP(rec, r, nil); err != nil {
			t.Fatal(err)
		}
		var ans struct {
			Errcode int    `json:"errcode"`
			Errmsg  string `json:"errmsg"`
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &ans); err != nil || ans.Errcode != c.want {
			t.Errorf("%s %s: %s, want errcode %d", c.method, c.target, rec.Body, c.want)
		}
	}
}

// componentFetcher hands out one component token, never calling WeChat.
type componentFetcher struct{}

const componentTokenValue = "component-token-from-wechat"

func (componentFetcher) Fetch(context.Context, *token.Account, bool) (token.Fetched, error) {
	return token.Fetched{Value: componentTokenValue, ExpiresIn: 2 * time.Hour}, nil
}

// trustedPlatformSite is the platform's trusted site, its verify ticket
// pushed.
func trustedPlatformSite(t *testing.T) *Handler {
	t.Helper()
	callback, _, clock, h := platformSite(t)
	if err := h.SetVerifyTicket(context.Background(), "ticket@1", clock.Now()); err != nil {
		t.Fatal(err)
	}
	site := *callback
	site.Callback, site.Trusted = false, true
	site.app.MaxReplayMemory = DefaultMaxReplayMemory
	return &site
}

// TestPlatformSiteInjectsTheComponentToken: the platform's API and the
// user logins it does for its authorizers (/sns/component/,
// /sns/oauth2/component/) get the component token; the placeholder the
// SDK sends never reaches WeChat.
func TestPlatformSiteInjectsTheComponentToken(t *testing.T) {
	site := trustedPlatformSite(t)
	for _, target := range []string{
		"/cgi-bin/component/api_create_preauthcode?component_access_token=" + trustedToken,
		"/sns/oauth2/component/access_token?appid=wxauth&code=c&grant_type=authorization_code&component_appid=wx3rdcomponent0001&component_access_token=" + trustedToken,
		"/sns/component/jscode2session?appid=wxauth&js_code=c&grant_type=authorization_code&component_appid=wx3rdcomponent0001",
	} {
		var got url.Values // what reached next, read while it had the call
		next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
			got = r.URL.Query()
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(`{"errcode":0}`))
			return nil
		})
		rec := httptest.NewRecorder()
		if err := site.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, target, nil), next); err != nil {
			t.Fatal(err)
		}
		if got == nil {
			t.Fatalf("%s: not forwarded: %s", target, rec.Body)
		}
		if q := got["component_access_token"]; len(q) != 1 || q[0] != componentTokenValue {
			t.Errorf("%s: upstream got component_access_token %q", target, q)
		}
	}
}

// TestPlatformSiteWithholdsRefreshTokens: the answers of the component
// APIs that show authorizers' refresh tokens reach the SDK with the
// managed stand-in in their place, the rest of the answer unchanged.
func TestPlatformSiteWithholdsRefreshTokens(t *testing.T) {
	site := trustedPlatformSite(t)
	answers := map[string]string{
		"/cgi-bin/component/api_get_authorizer_list": `{"total_count":2,"list":[{"authorizer_appid":"wxa","refresh_token":"real-refresh-1","auth_time":1700000000},{"authorizer_appid":"wxb","refresh_token":"real-refresh-2","auth_time":1700000001}]}`,
		"/cgi-bin/component/api_get_authorizer_info": `{"authorizer_info":{"nick_name":"shop"},"authorization_info":{"authorizer_appid":"wxa","authorizer_refresh_token":"real-refresh-1","func_info":[{"funcscope_category":{"id":1}}]}}`,
	}
	for path, answer := range answers {
		next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(answer))
			return nil
		})
		rec := httptest.NewRecorder()
		r := httptest.NewRequest(http.MethodPost, path+"?component_access_token="+trustedToken, strings.NewReader(`{"component_appid":"wx3rdcomponent0001"}`))
		if err := site.ServeHTTP(rec, r, next); err != nil {
			t.Fatal(err)
		}
		body := rec.Body.String()
		if strings.Contains(body, "real-refresh") || !strings.Contains(body, managedRefreshToken) {
			t.Errorf("%s answered %s", path, body)
		}
		if !strings.Contains(body, `"wxa"`) || !strings.Contains(body, `"funcscope_category":{"id":1}`) && !strings.Contains(body, `"auth_time":1700000001`) {
			t.Errorf("%s lost the rest of the answer: %s", path, body)
		}
	}
}

// TestCallbackRefusesAnotherPlatformsEvent: a push sealed with this
// platform's token and key but naming another platform in its event (the
// two share a key) is refused, and its ticket not kept.
func TestCallbackRefusesAnotherPlatformsEvent(t *testing.T) {
	site, codec, clock, h := platformSite(t)
	ev := msgcrypt.ComponentEvent{AppID: "wxanotherplatform1", CreateTime: clock.Now().Unix(),
		InfoType: msgcrypt.InfoTypeVerifyTicket, ComponentVerifyTicket: "ticket@of-another-platform"}
	ts := strconv.FormatInt(clock.Now().Unix(), 10)
	env, sig, err := codec.Seal(ev.Marshal(), ts, "nonce1")
	if err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequest(http.MethodPost, "/cb?timestamp="+ts+"&nonce=nonce1&msg_signature="+sig, bytes.NewReader(env.Marshal()))
	rec := httptest.NewRecorder()
	if err := site.ServeHTTP(rec, r, nil); err != nil {
		t.Fatal(err)
	}
	if _, fresh := h.VerifyTicketStatus(); rec.Code != http.StatusBadRequest || fresh {
		t.Errorf("a push naming component %s: answered %d %q, ticket kept %v; want 400 and no ticket", ev.AppID, rec.Code, rec.Body, fresh)
	}
}
