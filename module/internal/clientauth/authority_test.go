package clientauth

import (
	"encoding/json"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wxgate/caddy-wechat/module/internal/wxapi"
)

var accounts = []Account{
	{Name: "mp", Kind: "official", AppID: "wx1"},
	{Name: "mp2", Kind: "official", AppID: "wx2"},
	{Name: "corp-a", Kind: "wecom", AppID: "ww1"},
	{Name: "corp-b", Kind: "wecom", AppID: "ww1"},
	{Name: "platform", Kind: "component", AppID: "wxcomp"},
}

const (
	keyShop    = "shop-key-0123456789abcdef"
	keyShopOld = "shop-old-key-0123456789abcdef"
	keyCRM     = "crm-key-0123456789abcdef"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time          { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) advance(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

func newAuthority(t *testing.T, clients ...Client) (*Authority, *clock) {
	t.Helper()
	if clients == nil {
		clients = []Client{
			{Name: "shop", Keys: []string{keyShop, keyShopOld}, Accounts: []string{"mp", "corp-a"}, Paths: []string{"/cgi-bin/user/*", "/cgi-bin/menu/get"}},
			{Name: "crm", Keys: []string{keyCRM}, Accounts: []string{"mp2"}, RawToken: true},
		}
	}
	c := &clock{t: time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)}
	a, err := New(clients, accounts, 0, c.now)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Close)
	return a, c
}

func mustIssue(t *testing.T, a *Authority, kind, appid, key string) string {
	t.Helper()
	tok, err := a.Issue(kind, appid, key)
	if err != nil {
		t.Fatalf("Issue(%s, %s): %v", kind, appid, err)
	}
	return tok
}

func TestIssueAndVerify(t *testing.T) {
	a, _ := newAuthority(t)
	tok := mustIssue(t, a, "official", "wx1", keyShop)
	if !strings.HasPrefix(tok, "gw2.") || len(tok) != 54 || strings.Contains(tok, keyShop) {
		t.Fatalf("token %q", tok)
	}
	for range 2 { // the second time from the cache
		cl, err := a.Verify(tok)
		if err != nil || cl.Client != "shop" || cl.Account != "mp" {
			t.Fatalf("Verify: %+v %v", cl, err)
		}
	}
	if tok := mustIssue(t, a, "wecom", "ww1", keyShopOld); tok == "" {
		t.Fatal("no WeCom token with the second key")
	}
}

func TestIssueRefusals(t *testing.T) {
	a, _ := newAuthority(t)
	for _, c := range []struct {
		kind, appid, key string
		code             int
	}{
		{"official", "wx1", "", wxapi.CodeInvalidCredential},
		{"official", "wx1", "wrong-key-0123456789abcdef", wxapi.CodeInvalidCredential},
		{"official", "wx2", keyShop, wxapi.CodeInvalidAppID},            // another client's account
		{"wecom", "wx1", keyShop, wxapi.CodeInvalidAppID},               // wrong kind
		{"official", "", keyShop, wxapi.CodeInvalidAppID},               // no appid
		{"official", "wx1", keyShop + "x", wxapi.CodeInvalidCredential}, // near miss
		{"official", "wx1", keyCRM, wxapi.CodeInvalidAppID},             // the crm client has mp2 only
	} {
		_, err := a.Issue(c.kind, c.appid, c.key)
		if err == nil || err.Code != c.code {
			t.Errorf("Issue(%s, %s, key %d chars) = %v, want errcode %d", c.kind, c.appid, len(c.key), err, c.code)
		}
		if err != nil && c.key != "" && strings.Contains(err.Msg, c.key) {
			t.Errorf("refusal holds the key")
		}
	}
}

// forgeV2 is tok's payload with a format 2 MAC made with key for client
// shop.
func forgeV2(tok string, key string) string {
	payload, _, _ := strings.Cut(strings.TrimPrefix(tok, prefixV2), ".")
	return prefixV2 + payload + "." + b64.EncodeToString(macV2([]byte(key), "shop", payload))
}

// Why a token is refused, as the refusals say it.
const (
	whyMalformed = "malformed"
	whyUnsigned  = "signature does not verify"
	whyNotFormat = "not a gateway token"
	whyAccount   = "may no longer use"
	whyExpired   = "expired"
)

// wantRefusal checks that err refuses with code for the reason why.
func wantRefusal(t *testing.T, name string, err *Error, code int, why string) {
	t.Helper()
	if err == nil || err.Code != code || !strings.Contains(err.Msg, why) {
		t.Errorf("%s: Verify = %v, want errcode %d saying %q", name, err, code, why)
	}
}

func TestVerifyRefusals(t *testing.T) {
	a, clock := newAuthority(t)
	tok := mustIssue(t, a, "official", "wx1", keyShop)
	crm := mustIssue(t, a, "official", "wx2", keyCRM)
	payload, mac, _ := strings.Cut(strings.TrimPrefix(tok, prefixV2), ".")
	crmPayload, _, _ := strings.Cut(strings.TrimPrefix(crm, prefixV2), ".")
	raw, _ := b64.DecodeString(payload)
	later := append([]byte(nil), raw...)
	later[fixedSizeV2-1]++ // a second more
	unknownKey := append(append([]byte(nil), raw...), "wxauthorizer"...)
	unknownKey[0]++
	const cred = wxapi.CodeInvalidCredential
	for name, c := range map[string]struct {
		tok  string
		code int
		why  string
	}{
		"garbage":              {"hello", cred, whyNotFormat},
		"real-like":            {"86_AbCdEf0123", cred, whyNotFormat},
		"truncated":            {tok[:len(tok)-3], cred, whyMalformed},
		"forged":               {forgeV2(tok, "not-the-key-0123456789"), cred, whyUnsigned},
		"no mac":               {prefixV2 + payload, cred, whyMalformed},
		"bad b64":              {"gw2.!!!.x", cred, whyMalformed},
		"bad b64 mac":          {prefixV2 + payload + "." + strings.Repeat("!", len(mac)), cred, whyMalformed},
		"another token's mac":  {prefixV2 + crmPayload + "." + mac, cred, whyUnsigned},
		"a later expiry":       {prefixV2 + b64.EncodeToString(later) + "." + mac, cred, whyUnsigned},
		"an authorizer added":  {prefixV2 + b64.EncodeToString(append(raw, "wxauthorizer"...)) + "." + mac, cred, whyUnsigned},
		"an unknown key id":    {prefixV2 + b64.EncodeToString(unknownKey) + "." + mac, cred, whyUnsigned},
		"short payload":        {prefixV2 + payload[:20] + "." + mac, cred, whyMalformed},
		"long payload":         {prefixV2 + payload + strings.Repeat("A", 120) + "." + mac, cred, whyMalformed},
		"format 1, same parts": {prefixV1 + payload + "." + mac, cred, whyMalformed},
		"unknown format":       {"gw3." + payload + "." + mac, cred, whyNotFormat},
		"empty":                {"", cred, whyNotFormat},
		"another spelling":     {tok[:len(tok)-1] + string(tok[len(tok)-1]+1), cred, whyMalformed}, // unused bits set
		"prefix only":          {prefixV2, cred, whyMalformed},
	} {
		_, err := a.Verify(c.tok)
		wantRefusal(t, name, err, c.code, c.why)
	}
	// Claims a client signs with its own key are held to what the gateway
	// issues: no longer life than client_token_ttl, no authorizer on an
	// account that is not a platform.
	own := Claims{Client: "shop", Account: "mp", AppID: "wx1", Kind: "official", KeyID: keyID(keyShop)}
	own.Expiry = clock.now().Add(DefaultTTL + time.Hour).Unix()
	_, err := a.Verify(encode(&own, []byte(keyShop)))
	wantRefusal(t, "self-signed, a long life", err, wxapi.CodeTokenExpired, "outlive client_token_ttl")
	own.Expiry, own.Authorizer = clock.now().Add(time.Hour).Unix(), "wxauthorizer000001"
	_, err = a.Verify(encode(&own, []byte(keyShop)))
	wantRefusal(t, "self-signed, an authorizer of an official account", err, wxapi.CodeInvalidCredential, whyMalformed)

	clock.advance(DefaultTTL - time.Second)
	if _, err := a.Verify(tok); err != nil {
		t.Fatalf("a second before its expiry: %v", err)
	}
	clock.advance(time.Second)
	_, err = a.Verify(tok)
	wantRefusal(t, "at its expiry", err, wxapi.CodeTokenExpired, whyExpired)
}

// TestConfigChangesRevokeTokens: a token stops verifying when the config
// takes from its client the account it names, or moves its key to another
// client.
func TestConfigChangesRevokeTokens(t *testing.T) {
	a, _ := newAuthority(t)
	tok := mustIssue(t, a, "official", "wx1", keyShop)
	for name, c := range map[string]struct {
		clients []Client
		code    int
		why     string
	}{
		"account taken away": {[]Client{{Name: "shop", Keys: []string{keyShop}, Accounts: []string{"mp2"}}}, wxapi.CodeInvalidCredential, whyAccount},
		"key moved":          {[]Client{{Name: "other", Keys: []string{keyShop}, Accounts: []string{"mp"}}}, wxapi.CodeInvalidCredential, whyUnsigned},
		"client removed":     {[]Client{{Name: "crm", Keys: []string{keyCRM}, Accounts: []string{"mp"}}}, wxapi.CodeInvalidCredential, whyUnsigned},
	} {
		b, _ := newAuthority(t, c.clients...)
		_, err := b.Verify(tok)
		wantRefusal(t, name, err, c.code, c.why)
	}
	// An account renamed: the token names one the config no longer has.
	// 40001, on which SDKs fetch a new token, and the new one verifies.
	renamed := slices.Clone(accounts)
	renamed[0].Name = "main"
	b, err := New([]Client{{Name: "shop", Keys: []string{keyShop}, Accounts: []string{"main"}}}, renamed, 0, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	_, refusal := b.Verify(tok)
	wantRefusal(t, "account renamed", refusal, wxapi.CodeInvalidCredential, whyAccount)
	if cl, refusal := b.Verify(mustIssue(t, b, "official", "wx1", keyShop)); refusal != nil || cl.Account != "main" {
		t.Fatalf("a new token after the rename: %+v, %v", cl, refusal)
	}
}

// issueV1 makes a format 1 token, as earlier versions issued them.
func issueV1(cl Claims, key string) string {
	raw, _ := json.Marshal(cl)
	payload := b64.EncodeToString(raw)
	return prefixV1 + payload + "." + sign([]byte(key), payload)
}

// TestFormat1StillAccepted: a token an earlier version issued verifies
// until it expires, with the same checks.
func TestFormat1StillAccepted(t *testing.T) {
	a, clock := newAuthority(t)
	cl := Claims{Client: "shop", Account: "mp", AppID: "wx1", Kind: "official", KeyID: keyID(keyShop), Expiry: clock.now().Add(time.Hour).Unix()}
	tok := issueV1(cl, keyShop)
	want := cl
	want.client = a.clients["shop"] // found when verified
	if got, err := a.Verify(tok); err != nil || *got != want {
		t.Fatalf("Verify(format 1) = %+v, %v", got, err)
	}
	other := cl
	other.Account, other.AppID = "mp2", "wx2"
	ghost := cl
	ghost.Client = "ghost"
	withAuthorizer := cl // signed by the client itself: the gateway issues none such
	withAuthorizer.Authorizer = "x/wxVictim"
	longLived := cl
	longLived.Expiry = clock.now().Add(DefaultTTL + time.Hour).Unix()
	for name, c := range map[string]struct {
		tok  string
		code int
		why  string
	}{
		"forged":         {issueV1(cl, "not-the-key-0123456789"), wxapi.CodeInvalidCredential, whyUnsigned},
		"not its client": {issueV1(other, keyShop), wxapi.CodeInvalidCredential, whyAccount},
		"truncated":      {tok[:len(tok)-3], wxapi.CodeInvalidCredential, whyUnsigned},
		"no such client": {issueV1(ghost, keyShop), wxapi.CodeInvalidCredential, whyUnsigned},
		"too long":       {tok + strings.Repeat("A", maxSizeV1), wxapi.CodeInvalidCredential, whyMalformed},
		"an authorizer":  {issueV1(withAuthorizer, keyShop), wxapi.CodeInvalidCredential, whyMalformed},
		"a long life":    {issueV1(longLived, keyShop), wxapi.CodeTokenExpired, "outlive client_token_ttl"},
	} {
		_, err := a.Verify(c.tok)
		wantRefusal(t, name, err, c.code, c.why)
	}
	clock.advance(time.Hour)
	if _, err := a.Verify(tok); err == nil || err.Code != wxapi.CodeTokenExpired {
		t.Fatalf("expired format 1 token: %v", err)
	}
}

// TestAuthorizerTokens: a third-party platform's token for one of its
// authorizers carries the authorizer's appid, signed.
func TestAuthorizerTokens(t *testing.T) {
	a, _ := newAuthority(t, Client{Name: "saas", Keys: []string{keyShop}, Accounts: []string{"platform"}})
	own, err := a.Verify(mustIssue(t, a, "component", "wxcomp", keyShop))
	if err != nil || own.Authorizer != "" {
		t.Fatalf("component token: %+v, %v", own, err)
	}
	tok, refusal := a.IssueAuthorizer(own, "wxauthorizer000001")
	if refusal != nil || len(tok) != 78 {
		t.Fatalf("IssueAuthorizer = %q, %v", tok, refusal)
	}
	cl, err := a.Verify(tok)
	if err != nil || cl.Authorizer != "wxauthorizer000001" || cl.Account != "platform" || cl.Client != "saas" {
		t.Fatalf("authorizer token: %+v, %v", cl, err)
	}
	if _, err := a.IssueAuthorizer(cl, "wxother"); err == nil {
		t.Error("an authorizer token issued another authorizer's")
	}
	for _, appid := range []string{strings.Repeat("x", maxAuthorizer+1), "wx\x00", "wx.1", ""} {
		if _, err := a.IssueAuthorizer(own, appid); err == nil || err.Code != wxapi.CodeInvalidAppID {
			t.Errorf("an authorizer appid %q: %v", appid, err)
		}
	}
	revoked := *own
	revoked.KeyID = keyID(keyShopOld)
	if _, err := a.IssueAuthorizer(&revoked, "wxauthorizer000001"); err == nil || err.Code != wxapi.CodeInvalidCredential {
		t.Errorf("claims of a key the client no longer has: %v", err)
	}
	b, _ := newAuthority(t)
	shop, _ := b.Verify(mustIssue(t, b, "official", "wx1", keyShop))
	if _, err := b.IssueAuthorizer(shop, "wxauthorizer000001"); err == nil {
		t.Error("an official account's token issued an authorizer's")
	}
}

func TestExpiryAfterCaching(t *testing.T) {
	a, clock := newAuthority(t)
	tok := mustIssue(t, a, "official", "wx1", keyShop)
	if _, err := a.Verify(tok); err != nil {
		t.Fatal(err)
	}
	a.verified.Wait()
	clock.advance(DefaultTTL + time.Second)
	if _, err := a.Verify(tok); err == nil || err.Code != wxapi.CodeTokenExpired {
		t.Fatalf("cached token past expiry: %v", err)
	}
}

func TestRotatingKeysRevokesTheirTokens(t *testing.T) {
	a, _ := newAuthority(t)
	oldTok := mustIssue(t, a, "official", "wx1", keyShopOld)
	newTok := mustIssue(t, a, "official", "wx1", keyShop)
	// The config after rotation: the old key removed.
	b, _ := newAuthority(t, Client{Name: "shop", Keys: []string{keyShop}, Accounts: []string{"mp"}})
	if _, err := b.Verify(oldTok); err == nil || err.Code != wxapi.CodeInvalidCredential || !strings.Contains(err.Msg, "revoked") {
		t.Fatalf("token of a removed key: %v", err)
	}
	if _, err := b.Verify(newTok); err != nil {
		t.Fatalf("token of the kept key: %v", err)
	}
	if _, err := b.Issue("official", "wx1", keyShopOld); err == nil {
		t.Fatal("a removed key still authenticates")
	}
}

func TestMayCall(t *testing.T) {
	a, _ := newAuthority(t)
	cl, _ := a.Verify(mustIssue(t, a, "official", "wx1", keyShop))
	for path, want := range map[string]bool{
		"/cgi-bin/user/info": true, "/cgi-bin/user/get": true, "/cgi-bin/menu/get": true,
		"/cgi-bin/menu/create": false, "/cgi-bin/message/custom/send": false,
	} {
		if err := a.MayCall(cl, path); (err == nil) != want {
			t.Errorf("MayCall(%s) = %v, want allowed %v", path, err, want)
		}
	}
	if err := a.ForAccount(cl, "mp2"); err == nil || err.Code != wxapi.CodeInvalidAppID {
		t.Errorf("token for mp on a site serving mp2: %v", err)
	}
	if err := a.MayReadRawToken(cl); err == nil {
		t.Errorf("shop may read the raw token")
	}
	crm, _ := a.Verify(mustIssue(t, a, "official", "wx2", keyCRM))
	if err := a.MayReadRawToken(crm); err != nil || a.MayCall(crm, "/anything") != nil || a.ForAccount(crm, "mp2") != nil {
		t.Errorf("crm: %v", err)
	}
}

func TestNewValidates(t *testing.T) {
	for want, clients := range map[string][]Client{
		"at least one key":               {{Name: "a", Accounts: []string{"mp"}}},
		"shorter than 16":                {{Name: "a", Keys: []string{"short"}, Accounts: []string{"mp"}}},
		`"nope" is not an account`:       {{Name: "a", Keys: []string{keyShop}, Accounts: []string{"nope"}}},
		"same corp":                      {{Name: "a", Keys: []string{keyShop}, Accounts: []string{"corp-a", "corp-b"}}},
		"also a key of client":           {{Name: "a", Keys: []string{keyShop}, Accounts: []string{"mp"}}, {Name: "b", Keys: []string{keyShop}, Accounts: []string{"mp"}}},
		"must start with /":              {{Name: "a", Keys: []string{keyShop}, Accounts: []string{"mp"}, Paths: []string{"cgi-bin"}}},
		`"/cgi-bin/menu/get/" ends in /`: {{Name: "a", Keys: []string{keyShop}, Accounts: []string{"mp"}, Paths: []string{"/cgi-bin/menu/get/"}}},
		"name at least one":              {{Name: "a", Keys: []string{keyShop}}},
	} {
		if _, err := New(clients, accounts, 0, nil); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("New: %v, want %q", err, want)
		}
	}
	if _, err := New(nil, accounts, MaxTTL+time.Second, nil); err == nil || !strings.Contains(err.Error(), "client_token_ttl must be at most") {
		t.Errorf("New with a TTL over %v: %v", MaxTTL, err)
	}
}

func BenchmarkVerifyCached(b *testing.B) {
	a, err := New([]Client{{Name: "shop", Keys: []string{keyShop}, Accounts: []string{"mp"}}}, accounts, 0, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer a.Close()
	tok, _ := a.Issue("official", "wx1", keyShop)
	_, _ = a.Verify(tok)
	a.verified.Wait()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := a.Verify(tok); err != nil {
			b.Fatal(err)
		}
	}
}

// TestChangedAccountInvalidatesTokens: a token issued for account "mp"
// (official, wx1) serves no other account the next config calls "mp".
func TestChangedAccountInvalidatesTokens(t *testing.T) {
	for name, next := range map[string]Account{
		"renamed":      {Name: "mp", Kind: "official", AppID: "wx2"}, // wx2 now called "mp"
		"another kind": {Name: "mp", Kind: "wecom", AppID: "wx1"},    // the same id, now a WeCom app
	} {
		t.Run(name, func(t *testing.T) {
			a, _ := newAuthority(t)
			tok := mustIssue(t, a, "official", "wx1", keyShop)
			b, err := New([]Client{{Name: "shop", Keys: []string{keyShop}, Accounts: []string{"mp"}}}, []Account{next}, 0, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			if _, err := b.Verify(tok); err == nil || err.Code != wxapi.CodeInvalidCredential {
				t.Fatalf("token for a %s account: %v", name, err)
			}
		})
	}
}

// TestRecentTokensCompareTheWholeToken: a token that lands in the slot of
// a verified one (its signature ends the same) is verified on its own.
func TestRecentTokensCompareTheWholeToken(t *testing.T) {
	a, _ := newAuthority(t)
	tok := mustIssue(t, a, "official", "wx1", keyShop)
	if _, err := a.Verify(tok); err != nil {
		t.Fatal(err)
	}
	_, mac, _ := strings.Cut(strings.TrimPrefix(tok, prefixV2), ".")
	forged := forgeV2(tok, "not-the-key-0123456789")
	forged = forged[:len(forged)-3] + mac[len(mac)-3:] // the valid token's slot
	if recentSlot(forged) != recentSlot(tok) {
		t.Fatal("the forged token is not in the valid one's slot")
	}
	if _, err := a.Verify(forged); err == nil || err.Code != wxapi.CodeInvalidCredential {
		t.Fatalf("forged token in a verified token's slot: %v", err)
	}
	if cl, err := a.Verify(tok); err != nil || cl.Client != "shop" {
		t.Fatalf("the valid token after the forged one: %v, %v", cl, err)
	}
}

// TestSameAppIDAccountsPickedAlike: a client of two accounts of one kind
// and appid (a stable_token and a /cgi-bin/token account) gets the same one
// every time, the first by name, or the one a site names.
func TestSameAppIDAccountsPickedAlike(t *testing.T) {
	accts := []Account{{Name: "mp", Kind: "official", AppID: "wx1"}, {Name: "mp-legacy", Kind: "official", AppID: "wx1"}}
	a, err := New([]Client{{Name: "shop", Keys: []string{keyShop}, Accounts: []string{"mp", "mp-legacy"}}}, accts, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	for range 100 {
		cl, refusal := a.Authenticate("official", "wx1", keyShop)
		if refusal != nil || cl.Account != "mp" {
			t.Fatalf("Authenticate: %+v %v, want mp", cl, refusal)
		}
	}
	if cl, refusal := a.AuthenticateFor("mp-legacy", "official", "wx1", keyShop); refusal != nil || cl.Account != "mp-legacy" {
		t.Fatalf("AuthenticateFor(mp-legacy): %+v %v", cl, refusal)
	}
	if _, refusal := a.AuthenticateFor("mp2", "official", "wx1", keyShop); refusal == nil || refusal.Code != wxapi.CodeInvalidAppID {
		t.Fatalf("AuthenticateFor an account the client lacks: %v", refusal)
	}
}

// TestCachedTokenHeldToTTLWhenClockStepsBack: the "would outlive
// client_token_ttl" bound holds for cached tokens too: when the clock
// steps back, a token this instance verified before is refused as any
// instance that has not cached it refuses it.
func TestCachedTokenHeldToTTLWhenClockStepsBack(t *testing.T) {
	a, clock := newAuthority(t)
	tok := mustIssue(t, a, "official", "wx1", keyShop)
	if _, err := a.Verify(tok); err != nil {
		t.Fatal(err)
	}
	a.verified.Wait()
	fresh, freshClock := newAuthority(t) // another instance, same config, same clock
	clock.advance(-24 * time.Hour)       // the wall clock steps back a day
	freshClock.advance(-24 * time.Hour)
	_, uncached := fresh.Verify(tok)
	wantRefusal(t, "uncached, after the clock stepped back", uncached, wxapi.CodeTokenExpired, "outlive client_token_ttl")
	_, cached := a.Verify(tok)
	wantRefusal(t, "cached, after the clock stepped back", cached, wxapi.CodeTokenExpired, "outlive client_token_ttl")
}

// TestFormat1WithoutKindNotForAComponent: format 1 tokens without a kind
// come from versions that served only official and wecom accounts (the
// kind came with component accounts), so one naming a component account
// was signed by its client, not issued: it is refused, rather than verify
// with claims of Kind "" that hide that the account is a platform.
func TestFormat1WithoutKindNotForAComponent(t *testing.T) {
	a, clock := newAuthority(t, Client{Name: "saas", Keys: []string{keyShop}, Accounts: []string{"platform"}})
	tok := issueV1(Claims{Client: "saas", Account: "platform", AppID: "wxcomp", KeyID: keyID(keyShop), Expiry: clock.now().Add(time.Hour).Unix()}, keyShop)
	cl, err := a.Verify(tok)
	if err == nil {
		t.Fatalf("kind-less format 1 token for a component account verified: Kind=%q Account=%q", cl.Kind, cl.Account)
	}
}
