package caddywechat

import (
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wxgate/caddy-wechat/module/internal/clientauth"
	"github.com/wxgate/caddy-wechat/module/internal/wxapi"
)

// Stage 2: authorize, in clients mode. Every refusal is answered by the
// gateway: nothing reaches upstream and no token is fetched.

// clientTokens returns the gateway tokens that site issues to the shop
// client for mp and for corp, and to the menu client for mp.
func (g *gateway) clientTokens(site *Handler) (shop, shopCorp, menu string) {
	return g.gatewayToken(site, "official", mpAppID, shopKey),
		g.gatewayToken(site, "wecom", corpID, shopKey),
		g.gatewayToken(site, "official", mpAppID, menuKey)
}

func TestAuthorizeRefusals(t *testing.T) {
	g := newGateway(t)
	open := g.clientsSite()
	shop, shopCorp, menu := g.clientTokens(open)
	ghost := g.gatewayToken(open, "official", "wxghost000000000000", ghostKey)
	tampered := shop[:len(shop)-2] + flip(shop[len(shop)-2]) + shop[len(shop)-1:]
	// A token for mp2 signed with the shop key, with its claims edited to
	// say mp: the signature no longer matches.
	forged := forgeAccount(t, g.gatewayToken(open, "official", mp2AppID, shopKey), shop)

	for _, c := range []struct {
		name   string
		site   *Handler
		target string
		want   int
	}{
		{"no access_token", open, "/cgi-bin/user/info?openid=o1", wxapi.CodeTokenMissing},
		{"empty query", open, "/cgi-bin/menu/get", wxapi.CodeTokenMissing},
		{"not a gateway token", open, "/cgi-bin/menu/get?access_token=81_realLookingWeChatToken", wxapi.CodeInvalidCredential},
		{"empty access_token", open, "/cgi-bin/menu/get?access_token=", wxapi.CodeInvalidCredential},
		{"tampered signature", open, "/cgi-bin/menu/get?access_token=" + tampered, wxapi.CodeInvalidCredential},
		{"forged claims", open, "/cgi-bin/menu/get?access_token=" + forged, wxapi.CodeInvalidCredential},
		{"two access_token", open, "/cgi-bin/menu/get?access_token=" + shop + "&access_token=" + shop, wxapi.CodeInvalidCredential},
		{"access_token twice, one encoded", open, "/cgi-bin/menu/get?access_token=" + shop + "&access%5Ftoken=x", wxapi.CodeInvalidCredential},
		{"access_token twice, bad one first", open, "/cgi-bin/menu/get?access_token=x&access_token=" + shop, wxapi.CodeInvalidCredential},
		{"secret", open, "/cgi-bin/menu/get?access_token=" + shop + "&secret=" + mpSecret, wxapi.CodeInvalidCredential},
		{"appsecret", open, "/cgi-bin/menu/get?access_token=" + shop + "&appsecret=x", wxapi.CodeInvalidCredential},
		{"corpsecret", open, "/cgi-bin/user/get?access_token=" + shopCorp + "&corpsecret=x", wxapi.CodeInvalidCredential},
		{"component_access_token", open, "/cgi-bin/menu/get?access_token=" + shop + "&component_access_token=x", wxapi.CodeInvalidCredential},
		{"suite_access_token", open, "/cgi-bin/menu/get?access_token=" + shop + "&suite_access_token=x", wxapi.CodeInvalidCredential},
		{"provider_access_token", open, "/cgi-bin/menu/get?access_token=" + shop + "&provider_access_token=x", wxapi.CodeInvalidCredential},
		{"secret, encoded key", open, "/cgi-bin/menu/get?access_token=" + shop + "&s%65cret=x", wxapi.CodeInvalidCredential},
		{"secret, all encoded", open, "/cgi-bin/menu/get?access_token=" + shop + "&%73%65%63%72%65%74=x", wxapi.CodeInvalidCredential},
		{"corpsecret, encoded key", open, "/cgi-bin/user/get?access_token=" + shopCorp + "&corp%73ecret=x", wxapi.CodeInvalidCredential},
		{"secret without value", open, "/cgi-bin/menu/get?access_token=" + shop + "&secret", wxapi.CodeInvalidCredential},
		{"secret before the token", open, "/cgi-bin/menu/get?secret=x&access_token=" + shop, wxapi.CodeInvalidCredential},
		{"secret, no token", open, "/cgi-bin/menu/get?secret=x", wxapi.CodeInvalidCredential},
		{"appid of another account", open, "/cgi-bin/menu/get?access_token=" + shop + "&appid=" + mp2AppID, wxapi.CodeInvalidAppID},
		{"appid, encoded key", open, "/cgi-bin/menu/get?access_token=" + shop + "&app%69d=" + mp2AppID, wxapi.CodeInvalidAppID},
		{"appid twice", open, "/cgi-bin/menu/get?access_token=" + shop + "&appid=" + mpAppID + "&appid=" + mpAppID, wxapi.CodeInvalidAppID},
		{"appid empty", open, "/cgi-bin/menu/get?access_token=" + shop + "&appid=", wxapi.CodeInvalidAppID},
		{"corpid of another corp", open, "/cgi-bin/user/get?access_token=" + shopCorp + "&corpid=ww999", wxapi.CodeInvalidAppID},
		{"corpid on an official call", open, "/cgi-bin/menu/get?access_token=" + shop + "&corpid=" + corpID, wxapi.CodeInvalidAppID},
		{"path outside the client's paths", open, "/cgi-bin/user/info?openid=o1&access_token=" + menu, wxapi.CodeAPIUnauthorized},
		{"prefix without its slash", open, "/cgi-bin/menu?access_token=" + menu, wxapi.CodeAPIUnauthorized},
		{"token for another account than the site's", g.site(Handler{Account: "mp"}), "/cgi-bin/user/get?userid=u1&access_token=" + shopCorp, wxapi.CodeInvalidAppID},
		{"token for an unconfigured account", open, "/cgi-bin/menu/get?access_token=" + ghost, wxapi.CodeInvalidCredential},
	} {
		t.Run(c.name, func(t *testing.T) {
			g.resetSeen()
			a := wantErrcode(t, g.get(c.site, c.target), c.want)
			if !strings.HasPrefix(a.Errmsg, "wechat gateway: ") {
				t.Errorf("errmsg %q does not say the gateway refused", a.Errmsg)
			}
			if strings.Contains(a.Errmsg, shop) || strings.Contains(a.Errmsg, mpSecret) {
				t.Errorf("errmsg %q echoes a credential", a.Errmsg)
			}
			g.wantNothingUpstream(t)
		})
	}
}

// flip changes a base64url character into another.
func flip(c byte) string {
	if c == 'A' {
		return "B"
	}
	return "A"
}

// forgeAccount returns tok with its claims swapped for those of claimsOf
// (a token for another account), its own signature kept.
func forgeAccount(t *testing.T, tok, claimsOf string) string {
	t.Helper()
	rest, _ := strings.CutPrefix(tok, "gw2.")
	_, mac, _ := strings.Cut(rest, ".")
	rest, _ = strings.CutPrefix(claimsOf, "gw2.")
	payload, _, _ := strings.Cut(rest, ".")
	if mac == "" || payload == "" {
		t.Fatalf("not gateway tokens: %d and %d characters", len(tok), len(claimsOf))
	}
	return "gw2." + payload + "." + mac
}

func TestAuthorizeAllows(t *testing.T) {
	g := newGateway(t)
	open := g.clientsSite()
	shop, shopCorp, menu := g.clientTokens(open)
	for _, c := range []struct {
		name, target string
		account      string // whose token, by appid, must reach upstream
	}{
		{"own appid", "/cgi-bin/menu/get?appid=" + mpAppID + "&access_token=" + shop, mpAppID},
		{"own appid, encoded value", "/cgi-bin/menu/get?appid=wx0123456789abcde%66&access_token=" + shop, mpAppID},
		{"a path in the client's paths", "/cgi-bin/menu/get?access_token=" + menu, mpAppID},
		{"wecom with its corpid", "/cgi-bin/user/get?corpid=" + corpID + "&userid=zhangsan&access_token=" + shopCorp, corpID},
		{"a parameter that only ends in secret", "/cgi-bin/menu/get?access_token=" + shop + "&client_secret_hint=1", mpAppID},
	} {
		t.Run(c.name, func(t *testing.T) {
			g.resetSeen()
			rec := g.get(open, c.target)
			seen := g.upstreamRequests()
			if len(seen) != 1 {
				t.Fatalf("%d requests upstream (answer %q), want 1", len(seen), rec.Body.String())
			}
			if rejected := g.sim.Counters().Paths[seen[0].Path].Last; rejected == nil || !rejected.TokenValid || rejected.Account == "" || !strings.HasPrefix(rejected.Account, c.account) {
				t.Errorf("the simulator did not get a valid token of %s: %+v", c.account, rejected)
			}
		})
	}
}

func TestAuthorizeSiteBoundToAccount(t *testing.T) {
	g := newGateway(t)
	site := g.site(Handler{Account: "mp"})
	mp := g.gatewayToken(site, "official", mpAppID, shopKey)
	// The site answers token calls for its own account only.
	wantErrcode(t, g.get(site, "/cgi-bin/token?grant_type=client_credential&appid="+mp2AppID+"&secret="+shopKey), wxapi.CodeInvalidAppID)
	// A token the client got for mp2 elsewhere is refused here.
	mp2 := g.gatewayToken(g.clientsSite(), "official", mp2AppID, shopKey)
	wantErrcode(t, g.get(site, "/cgi-bin/menu/get?access_token="+mp2), wxapi.CodeInvalidAppID)
	g.wantNothingUpstream(t)
	// Its own works.
	rec := g.get(site, "/cgi-bin/menu/get?access_token="+mp)
	wantErrcode(t, rec, wxapi.CodeMenuNotExist) // the simulator's answer: no menu yet
	if n := len(g.upstreamRequests()); n != 1 {
		t.Errorf("%d requests upstream, want 1", n)
	}
}

func TestAuthorizeExpiredGatewayToken(t *testing.T) {
	g := newGateway(t, withScriptedTokens())
	g.setUpstream(jsonAnswer(`{"errcode":0,"errmsg":"ok"}`))
	h := g.clientsSite()
	gw := g.gatewayToken(h, "official", mpAppID, shopKey)
	wantErrcode(t, g.get(h, "/cgi-bin/menu/get?access_token="+gw), 0) // now verified, and cached
	g.advance(clientauth.DefaultTTL - time.Second)
	wantErrcode(t, g.get(h, "/cgi-bin/menu/get?access_token="+gw), 0)
	g.advance(time.Second)
	wantErrcode(t, g.get(h, "/cgi-bin/menu/get?access_token="+gw), wxapi.CodeTokenExpired)
	if n := len(g.upstreamRequests()); n != 2 {
		t.Errorf("%d requests upstream, want 2 (none with the expired token)", n)
	}
}

func TestAuthorizeRevokedKey(t *testing.T) {
	g := newGateway(t)
	h := g.clientsSite()
	gw := g.gatewayToken(h, "official", mpAppID, shopKey)
	// A reload that rotates the shop client's key revokes the tokens the
	// old key signed.
	clients := []clientauth.Client{{Name: "shop", Keys: []string{"shop-key-rotated-0123456789"}, Accounts: []string{"mp"}}}
	g.app.auth = newAuthority(t, g.app, clients)
	a := wantErrcode(t, g.get(h, "/cgi-bin/menu/get?access_token="+gw), wxapi.CodeInvalidCredential)
	if !strings.Contains(a.Errmsg, "revoked") {
		t.Errorf("errmsg %q does not say the key was revoked", a.Errmsg)
	}
	g.wantNothingUpstream(t)
}

func TestAuthorizeRefusalIsWeChatShaped(t *testing.T) {
	g := newGateway(t)
	rec := g.get(g.clientsSite(), "/cgi-bin/menu/get")
	if rec.Code != http.StatusOK {
		t.Errorf("status %d, want 200", rec.Code)
	}
	if ct := rec.Header().Get("Content-Type"); ct != wxapi.ContentTypeJSON {
		t.Errorf("Content-Type %q, want %q", ct, wxapi.ContentTypeJSON)
	}
	if cc := rec.Header().Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control %q, want no-store", cc)
	}
	if cl := rec.Header().Get("Content-Length"); cl == "" || cl != strconv.Itoa(rec.Body.Len()) {
		t.Errorf("Content-Length %q for a %d-byte body", cl, rec.Body.Len())
	}
}

// A site whose upstream serves one kind of account refuses gateway tokens
// and token calls for the other kind before anything goes upstream: a token
// sent to the wrong WeChat host is always refused, and must not make the
// gateway refresh it.
func TestAuthorizeSiteKind(t *testing.T) {
	g := newGateway(t)
	open := g.clientsSite()
	mp, corp, _ := g.clientTokens(open)
	official := g.site(Handler{Kind: "official"})
	wantErrcode(t, g.get(official, "/cgi-bin/user/get?userid=zhangsan&access_token="+corp), wxapi.CodeInvalidAppID)
	wantErrcode(t, g.get(official, "/cgi-bin/gettoken?corpid="+corpID+"&corpsecret="+shopKey), wxapi.CodeInvalidAppID)
	wecom := g.site(Handler{Kind: "wecom"})
	wantErrcode(t, g.get(wecom, "/cgi-bin/menu/get?access_token="+mp), wxapi.CodeInvalidAppID)
	wantErrcode(t, g.get(wecom, "/cgi-bin/token?grant_type=client_credential&appid="+mpAppID+"&secret="+shopKey), wxapi.CodeInvalidAppID)
	g.wantNothingUpstream(t)

	wantErrcode(t, g.get(official, "/cgi-bin/menu/get?access_token="+mp), wxapi.CodeMenuNotExist)
	wantErrcode(t, g.get(wecom, "/cgi-bin/user/get?userid=zhangsan&access_token="+corp), 0)
	if n := len(g.upstreamRequests()); n != 2 {
		t.Errorf("%d requests upstream, want 2", n)
	}
}

// TestPlatformTokensRefusedElsewhere: a third-party platform's gateway
// tokens, its own or an authorizer's (even one naming another account's
// appid), serve only the platform's site.
func TestPlatformTokensRefusedElsewhere(t *testing.T) {
	g := newGateway(t)
	const key = "saas-client-key-0123456789abcdef"
	accounts := []clientauth.Account{{Name: "platform", Kind: "component", AppID: "wxcomponent0000001"}, {Name: "mp", Kind: "official", AppID: mpAppID}}
	auth, err := clientauth.New([]clientauth.Client{{Name: "saas", Keys: []string{key}, Accounts: []string{"platform", "mp"}}}, accounts, 0, g.clock.Now)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(auth.Close)
	g.app.auth = auth
	comp, refusal := auth.Issue("component", "wxcomponent0000001", key)
	if refusal != nil {
		t.Fatal(refusal)
	}
	claims, refusal := auth.Verify(comp)
	if refusal != nil {
		t.Fatal(refusal)
	}
	authorizer, refusal := auth.IssueAuthorizer(claims, mpAppID)
	if refusal != nil {
		t.Fatal(refusal)
	}
	for name, site := range map[string]*Handler{"any": g.site(Handler{Kind: "any"}), "mp": g.site(Handler{Account: "mp"})} {
		for what, tok := range map[string]string{"platform": comp, "authorizer": authorizer} {
			t.Run(what+" token on site "+name, func(t *testing.T) {
				g.resetSeen()
				wantErrcode(t, g.get(site, "/cgi-bin/menu/get?access_token="+tok), wxapi.CodeInvalidAppID)
				g.wantNothingUpstream(t)
			})
		}
	}
	// An authorizer token cannot be derived again.
	if claims, _ := auth.Verify(authorizer); claims != nil {
		if _, refusal := auth.IssueAuthorizer(claims, "wxother"); refusal == nil {
			t.Error("an authorizer's token issued another")
		}
	}
}

// TestTrailingSlashRefused: a call whose path ends in a slash is refused
// (40066), and nothing goes upstream: WeChat's API paths never end in one,
// and a Caddy matcher in front of the gateway for the path without it (the
// README's rule closing /sns/userinfo) would not see it. Served as the
// path without, clear_quota/ needed no admin grant and ticket calls went
// past the ticket cache.
func TestTrailingSlashRefused(t *testing.T) {
	g := newGateway(t)
	for _, site := range []*Handler{g.clientsSite(), g.trustedSite()} {
		tok := ""
		if !site.Trusted {
			tok = g.gatewayToken(site, "official", mpAppID, shopKey)
		}
		for _, target := range []string{
			"/cgi-bin/clear_quota/?access_token=" + tok,
			"/cgi-bin/ticket/getticket/?type=jsapi&access_token=" + tok,
			"/cgi-bin/menu/get/?access_token=" + tok,
			"/sns/userinfo/?access_token=user&openid=o",
			"/sns/jscode2session/?appid=" + mpAppID + "&secret=" + shopKey + "&js_code=c&grant_type=authorization_code",
		} {
			g.resetSeen()
			wantErrcode(t, g.post(site, target, "application/json", []byte(`{"appid":"`+mpAppID+`"}`)), wxapi.CodeInvalidURL)
			g.wantNothingUpstream(t)
		}
		// The token endpoints answer with or without one, as before.
		wantErrcode(t, g.get(site, "/cgi-bin/token/?grant_type=client_credential&appid="+mpAppID+"&secret="+shopKey), 0)
	}
}

// TestClearApiQuotaNeedsAdmin: /cgi-bin/openapi/quota/clear resets one
// API's daily quota for the whole account, as clear_quota resets them all:
// a client without admin is refused and nothing goes upstream.
func TestClearApiQuotaNeedsAdmin(t *testing.T) {
	g := newGateway(t)
	g.setUpstream(jsonAnswer(`{"errcode":0,"errmsg":"ok"}`))
	site := g.clientsSite()
	tok := g.gatewayToken(site, "official", mpAppID, shopKey) // shop: no admin
	for _, path := range []string{"/cgi-bin/clear_quota", "/cgi-bin/openapi/quota/clear", "/cgi-bin/openapi/QUOTA/clear"} {
		rec := g.post(site, path+"?access_token="+tok, "application/json", []byte(`{"cgi_path":"/cgi-bin/message/custom/send"}`))
		if code := decodeAnswer(t, rec).Errcode; code != wxapi.CodeAPIUnauthorized && code != wxapi.CodeInvalidURL {
			t.Errorf("%s without admin: errcode %d, want 48001 or 40066", path, code)
		}
	}
	g.wantNothingUpstream(t)
}
