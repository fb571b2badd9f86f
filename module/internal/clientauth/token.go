package clientauth

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"strings"
	"time"

	"github.com/wxgate/caddy-wechat/module/internal/wxapi"
)

// A gateway token is signed with the key of the client it was issued to
// (HMAC-SHA256), so every gateway that has the client's keys verifies it
// without shared state. The gateway issues format 2:
//
//	gw2.<payload>.<mac>
//
// where payload is the base64url of the signing key's id (8 bytes), the
// account's tag (8 bytes, a digest of its name, kind and appid), the expiry
// (4 bytes, Unix seconds, big-endian) and, in an authorizer's token, the
// authorizer's appid; mac is base64url of the first 16 bytes of
// HMAC-SHA256(key, "gw2." + payload + "\x00" + the client's name), so that
// a key moved to another client carries none of its tokens along. A token
// is 54 characters (78 for an authorizer), shorter than WeChat's own: every
// call carries it.
//
// Format 1 (gw1.<base64url of JSON claims>.<base64url of HMAC-SHA256 over
// that>, 180 characters and more) was issued by earlier versions; such
// tokens are still accepted until they expire, so that clients holding one
// keep working through an upgrade.
const (
	prefixV2 = "gw2."
	prefixV1 = "gw1."

	macSizeV2     = 16
	fixedSizeV2   = 8 + 8 + 4 // key id, account tag, expiry
	maxAuthorizer = 64        // the longest authorizer appid a token carries
	maxSizeV1     = 4096      // far longer than any format 1 token issued
	maxSkew       = 600       // seconds another instance's clock may be ahead
)

// Claims is what a verified gateway token says.
type Claims struct {
	// Client is the client's name.
	Client string `json:"c"`
	// Account is the name of the account the token is for.
	Account string `json:"a"`
	// AppID is that account's appid (or corpid) when the token was issued:
	// a config that renames accounts cannot point a live token at another.
	AppID string `json:"p"`
	// Kind is that account's kind when the token was issued: a config that
	// changes an account's kind cannot carry a live token over to it.
	// Format 1 tokens of the earliest versions have none.
	Kind string `json:"t,omitempty"`
	// Authorizer, in a token of a component account, is the authorizer
	// appid the token acts for (see IssueAuthorizer); empty in the
	// component's own token.
	Authorizer string `json:"z,omitempty"`
	// KeyID names the key that signed the token (a digest prefix, not the
	// key), in hex.
	KeyID string `json:"k"`
	// Expiry is the Unix time the token expires at.
	Expiry int64 `json:"e"`

	// client is the client Client names, found when the token was
	// verified: the grants are checked on every call without a lookup.
	client *client
}

// keyIDOf is the public name of a key: the first 8 bytes of its SHA-256.
func keyIDOf(key string) [8]byte {
	sum := sha256.Sum256([]byte("caddy-wechat client key id\x00" + key))
	return [8]byte(sum[:8])
}

// keyID is keyIDOf in hex, as Claims.KeyID holds it.
func keyID(key string) string {
	id := keyIDOf(key)
	return hex.EncodeToString(id[:])
}

// accountTag binds a token to an account as it was configured: its name,
// kind and appid. A config that renames an account, or gives its name to
// another app, has no account with the old tag.
func accountTag(name, kind, appid string) [8]byte {
	sum := sha256.Sum256([]byte("caddy-wechat account\x00" + name + "\x00" + kind + "\x00" + appid))
	return [8]byte(sum[:8])
}

var (
	b64 = base64.RawURLEncoding
	// b64Strict refuses the non-canonical spellings of a value (unused low
	// bits set in the last character), so that a token has one spelling.
	b64Strict = base64.RawURLEncoding.Strict()
)

// sign is the MAC of a format 1 token.
func sign(key []byte, payload string) string {
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(payload))
	return b64.EncodeToString(mac.Sum(nil))
}

// macV2 is the MAC of a format 2 token of client whose payload (base64url)
// is payload.
func macV2(key []byte, client, payload string) []byte {
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(prefixV2))
	mac.Write([]byte(payload))
	mac.Write([]byte{0})
	mac.Write([]byte(client))
	return mac.Sum(nil)[:macSizeV2]
}

// validAuthorizer reports whether s is fit to be an authorizer's appid in
// a token: 1 to maxAuthorizer letters, digits, '_' or '-'.
func validAuthorizer(s string) bool {
	if s == "" || len(s) > maxAuthorizer {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// encode returns the format 2 token of claims, signed with key (the key
// cl.KeyID names). Its expiry must fit in 32 bits (New bounds the TTL).
func encode(cl *Claims, key []byte) string {
	raw := make([]byte, 0, fixedSizeV2+len(cl.Authorizer))
	id := keyIDOf(string(key))
	raw = append(raw, id[:]...)
	tag := accountTag(cl.Account, cl.Kind, cl.AppID)
	raw = append(raw, tag[:]...)
	raw = binary.BigEndian.AppendUint32(raw, uint32(cl.Expiry))
	raw = append(raw, cl.Authorizer...)
	payload := b64.EncodeToString(raw)
	return prefixV2 + payload + "." + b64.EncodeToString(macV2(key, cl.Client, payload))
}

// Authenticate checks a call in which the client gave its key in place of
// the secret, and returns who it is and which of its accounts (of kind
// "official" or "wecom") appid names. The claims carry no expiry.
func (a *Authority) Authenticate(kind, appid, key string) (*Claims, *Error) {
	return a.AuthenticateFor("", kind, appid, key)
}

// AuthenticateFor is Authenticate on a site that serves one account: the
// call is for that account (the client's, of that kind and appid), not any
// other of the same appid (two apps of one WeCom corp, a stable_token and
// a /cgi-bin/token account of one appid). With account "", of the
// client's accounts that match, the first by name: the same every time.
func (a *Authority) AuthenticateFor(account, kind, appid, key string) (*Claims, *Error) {
	if appid == "" {
		return nil, Refuse(wxapi.CodeInvalidAppID, "appid (or corpid) is missing")
	}
	if key == "" {
		return nil, Refuse(wxapi.CodeInvalidCredential, "the client key is missing: send it where the SDK sends the secret")
	}
	c, ok := a.byKey[sha256.Sum256([]byte(key))]
	if !ok {
		return nil, Refuse(wxapi.CodeInvalidCredential, "invalid credential: no client has this key (revoked or mistyped?)")
	}
	for _, name := range c.names {
		if acct := a.accounts[name]; acct.AppID == appid && acct.Kind == kind && (account == "" || name == account) {
			return &Claims{Client: c.Name, Account: name, AppID: appid, Kind: kind, KeyID: keyID(key), client: c}, nil
		}
	}
	if account != "" {
		return nil, Refuse(wxapi.CodeInvalidAppID, "client "+c.Name+" may not use account "+account+" ("+kind+" "+appid+") this site serves")
	}
	return nil, Refuse(wxapi.CodeInvalidAppID, "client "+c.Name+" may not use "+kind+" account "+appid)
}

// Issue authenticates a token-endpoint call (see Authenticate) and returns
// a gateway token for the account (of kind "official" for /cgi-bin/token
// and stable_token, "wecom" for gettoken).
func (a *Authority) Issue(kind, appid, key string) (string, *Error) {
	return a.IssueFor("", kind, appid, key)
}

// IssueFor is Issue on a site that serves one account (see
// AuthenticateFor).
func (a *Authority) IssueFor(account, kind, appid, key string) (string, *Error) {
	cl, refusal := a.AuthenticateFor(account, kind, appid, key)
	if refusal != nil {
		return "", refusal
	}
	cl.Expiry = a.now().Add(a.ttl).Unix()
	return encode(cl, []byte(key)), nil
}

// IssueAuthorizer returns a gateway token for authorizer appid of the
// component account cl (a verified token of it) names: it lives as long as
// any gateway token, is signed with the key cl was, and is revoked with it.
func (a *Authority) IssueAuthorizer(cl *Claims, appid string) (string, *Error) {
	c, ok := a.clients[cl.Client]
	if !ok || cl.Kind != "component" || cl.Authorizer != "" {
		return "", Refuse(wxapi.CodeInvalidCredential, "invalid credential: not a gateway token of a third-party platform")
	}
	key, ok := c.keys[cl.KeyID]
	if !ok {
		return "", Refuse(wxapi.CodeInvalidCredential, "invalid credential: the key this token was issued with was revoked")
	}
	if !validAuthorizer(appid) {
		return "", Refuse(wxapi.CodeInvalidAppID, "invalid authorizer appid")
	}
	out := *cl
	out.Authorizer = appid
	out.Expiry = a.now().Add(a.ttl).Unix()
	return encode(&out, key), nil
}

// Verify checks a gateway token and returns its claims: signed by a key the
// client still has, not expired. Verified tokens are cached until they
// expire, so the hot path is a cache lookup.
func (a *Authority) Verify(token string) (*Claims, *Error) {
	now := a.now().Unix()
	cl, cached := a.cached(token)
	if !cached {
		var refusal *Error
		if cl, refusal = a.parse(token); refusal != nil {
			return nil, refusal
		}
	}
	if now >= cl.Expiry {
		return nil, Refuse(wxapi.CodeTokenExpired, "access_token expired: fetch a new gateway token")
	}
	if cl.Expiry > now+int64(a.ttl/time.Second)+maxSkew {
		// Issued under a longer client_token_ttl, signed by the client
		// itself, or (cached) the clock stepped back: no token outlives
		// the configured lifetime.
		return nil, Refuse(wxapi.CodeTokenExpired, "access_token expired: it would outlive client_token_ttl; fetch a new gateway token")
	}
	if cached {
		return cl, nil
	}
	a.verified.SetWithTTL(token, cl, 1, time.Duration(cl.Expiry-now)*time.Second)
	a.recent.put(token, cl)
	return cl, nil
}

// cached returns the claims of a token verified before, from the recent
// tokens or the verified cache (which puts it among the recent ones).
func (a *Authority) cached(token string) (*Claims, bool) {
	if cl, ok := a.recent.get(token); ok {
		return cl, true
	}
	cl, ok := a.verified.Get(token)
	if ok {
		a.recent.put(token, cl)
	}
	return cl, ok
}

// malformed refuses a token that is not one the gateway issued.
func malformed() *Error {
	return Refuse(wxapi.CodeInvalidCredential, "invalid credential: malformed gateway token")
}

// unsigned refuses a token whose signature does not verify. It says the
// same whether or not the token names a configured client and key, so that
// unsigned probes learn nothing of the config.
func unsigned() *Error {
	return Refuse(wxapi.CodeInvalidCredential, "invalid credential: the gateway token's signature does not verify (forged, or its key was revoked)")
}

// parse checks a token's signature and that its client and account are
// still configured as they were when it was issued, and returns its
// claims; the expiry is the caller's to check.
func (a *Authority) parse(token string) (*Claims, *Error) {
	switch {
	case strings.HasPrefix(token, prefixV2):
		return a.parseV2(token[len(prefixV2):])
	case strings.HasPrefix(token, prefixV1):
		return a.parseV1(token[len(prefixV1):])
	}
	return nil, Refuse(wxapi.CodeInvalidCredential, "invalid credential: not a gateway token (fetch one from the gateway's token endpoint with the client key)")
}

// parseV2 parses a format 2 token, its prefix cut off.
func (a *Authority) parseV2(rest string) (*Claims, *Error) {
	payload, mac, ok := strings.Cut(rest, ".")
	if !ok || len(payload) > b64.EncodedLen(fixedSizeV2+maxAuthorizer) || len(mac) != b64.EncodedLen(macSizeV2) {
		return nil, malformed()
	}
	raw, err := b64Strict.DecodeString(payload)
	gotMAC, errMAC := b64Strict.DecodeString(mac)
	if err != nil || errMAC != nil || len(raw) < fixedSizeV2 {
		return nil, malformed()
	}
	k, ok := a.keyIDs[[8]byte(raw[:8])]
	if !ok || !hmac.Equal(macV2(k.key, k.client.Name, payload), gotMAC) {
		return nil, unsigned()
	}
	name, ok := a.tags[[8]byte(raw[8:16])]
	if !ok || !k.client.accounts[name] {
		// 40001, not 40013: an SDK fetches a new token on 40001 only, and the
		// account may just have been renamed; the token endpoint then says
		// whether the client may still use the appid.
		return nil, Refuse(wxapi.CodeInvalidCredential, "client "+k.client.Name+" may no longer use the account its token was issued for; fetch a new one")
	}
	acct := a.accounts[name]
	if authorizer := raw[fixedSizeV2:]; len(authorizer) > 0 && (acct.Kind != "component" || !validAuthorizer(string(authorizer))) {
		return nil, malformed()
	}
	return &Claims{
		Client:     k.client.Name,
		Account:    name,
		AppID:      acct.AppID,
		Kind:       acct.Kind,
		Authorizer: string(raw[fixedSizeV2:]),
		KeyID:      hex.EncodeToString(raw[:8]),
		Expiry:     int64(binary.BigEndian.Uint32(raw[16:20])),
		client:     k.client,
	}, nil
}

// parseV1 parses a format 1 token, its prefix cut off.
func (a *Authority) parseV1(rest string) (*Claims, *Error) {
	payload, mac, ok := strings.Cut(rest, ".")
	if !ok || len(rest) > maxSizeV1 {
		return nil, malformed()
	}
	raw, err := b64.DecodeString(payload)
	var cl Claims
	if err != nil || json.Unmarshal(raw, &cl) != nil {
		return nil, malformed()
	}
	c, ok := a.clients[cl.Client]
	if !ok {
		return nil, unsigned()
	}
	key, ok := c.keys[cl.KeyID]
	if !ok || subtle.ConstantTimeCompare([]byte(sign(key, payload)), []byte(mac)) != 1 {
		return nil, unsigned()
	}
	// A token without a kind comes from before clients could use a
	// platform: official or wecom only.
	if acct := a.accounts[cl.Account]; !c.accounts[cl.Account] || acct.AppID != cl.AppID || (cl.Kind != "" && acct.Kind != cl.Kind) ||
		(cl.Kind == "" && acct.Kind == "component") {
		return nil, Refuse(wxapi.CodeInvalidCredential, "client "+c.Name+" may no longer use account "+cl.Account+" "+cl.AppID+"; fetch a new token")
	}
	// A client can sign claims with its own key: hold them to what the
	// gateway issues.
	if cl.Authorizer != "" && (cl.Kind != "component" || !validAuthorizer(cl.Authorizer)) {
		return nil, malformed()
	}
	cl.client = c
	return &cl, nil
}

// ForAccount checks that a token is for account (the account a site
// serves).
func (a *Authority) ForAccount(cl *Claims, account string) *Error {
	if cl.Account != account {
		return Refuse(wxapi.CodeInvalidAppID, "client "+cl.Client+" holds a token for account "+cl.Account+", not for "+account+" which this site serves")
	}
	return nil
}

// clientOf returns the client of verified claims.
func (a *Authority) clientOf(cl *Claims) *client {
	if cl.client != nil {
		return cl.client
	}
	return a.clients[cl.Client]
}

// MayCall checks that the token's client may call path.
func (a *Authority) MayCall(cl *Claims, path string) *Error {
	if !a.clientOf(cl).mayCall(path) {
		return Refuse(wxapi.CodeAPIUnauthorized, "api unauthorized: client "+cl.Client+" may not call "+path)
	}
	return nil
}

// MayAdmin checks that the client may make calls that act on the whole
// account, such as resetting its API quota.
func (a *Authority) MayAdmin(cl *Claims) *Error {
	if !a.clientOf(cl).Admin {
		return Refuse(wxapi.CodeAPIUnauthorized, "api unauthorized: client "+cl.Client+" may not reset quotas (grant it admin)")
	}
	return nil
}

// MayReadRawToken reports whether the token's client may read the real
// access token.
func (a *Authority) MayReadRawToken(cl *Claims) *Error {
	if !a.clientOf(cl).RawToken {
		return Refuse(wxapi.CodeAPIUnauthorized, "api unauthorized: client "+cl.Client+" may not read the raw access_token (grant it raw_token)")
	}
	return nil
}
