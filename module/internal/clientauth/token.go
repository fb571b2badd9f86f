package clientauth

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"strings"
	"time"

	"github.com/wxgate/caddy-wechat/module/internal/wxapi"
)

// tokenPrefix starts every gateway token (format version 1).
const tokenPrefix = "gw1."

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
	// Tokens issued before kinds were recorded have none.
	Kind string `json:"t,omitempty"`
	// Authorizer, in a token of a component account, is the authorizer
	// appid the token acts for (see IssueAuthorizer); empty in the
	// component's own token.
	Authorizer string `json:"z,omitempty"`
	// KeyID names the key that signed the token (a digest prefix, not the key).
	KeyID string `json:"k"`
	// Expiry is the Unix time the token expires at.
	Expiry int64 `json:"e"`
}

// keyID is the public name of a key: the first 8 bytes of its SHA-256.
func keyID(key string) string {
	sum := sha256.Sum256([]byte("caddy-wechat client key id\x00" + key))
	return hex.EncodeToString(sum[:8])
}

var b64 = base64.RawURLEncoding

func sign(key []byte, payload string) string {
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(payload))
	return b64.EncodeToString(mac.Sum(nil))
}

// Authenticate checks a call in which the client gave its key in place of
// the secret, and returns who it is and which of its accounts (of kind
// "official" or "wecom") appid names. The claims carry no expiry.
func (a *Authority) Authenticate(kind, appid, key string) (*Claims, *Error) {
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
	for name := range c.accounts {
		if acct := a.accounts[name]; acct.AppID == appid && acct.Kind == kind {
			return &Claims{Client: c.Name, Account: name, AppID: appid, Kind: kind, KeyID: keyID(key)}, nil
		}
	}
	return nil, Refuse(wxapi.CodeInvalidAppID, "client "+c.Name+" may not use "+kind+" account "+appid)
}

// Issue authenticates a token-endpoint call (see Authenticate) and returns
// a gateway token for the account (of kind "official" for /cgi-bin/token
// and stable_token, "wecom" for gettoken).
func (a *Authority) Issue(kind, appid, key string) (string, *Error) {
	cl, refusal := a.Authenticate(kind, appid, key)
	if refusal != nil {
		return "", refusal
	}
	cl.Expiry = a.now().Add(a.ttl).Unix()
	raw, _ := json.Marshal(cl)
	payload := b64.EncodeToString(raw)
	return tokenPrefix + payload + "." + sign([]byte(key), payload), nil
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
	out := *cl
	out.Authorizer = appid
	out.Expiry = a.now().Add(a.ttl).Unix()
	raw, _ := json.Marshal(&out)
	payload := b64.EncodeToString(raw)
	return tokenPrefix + payload + "." + sign(key, payload), nil
}

// Verify checks a gateway token and returns its claims: signed by a key the
// client still has, not expired. Verified tokens are cached until they
// expire, so the hot path is a cache lookup.
func (a *Authority) Verify(token string) (*Claims, *Error) {
	now := a.now().Unix()
	hit, ok := a.recent.get(token)
	if !ok {
		if hit, ok = a.verified.Get(token); ok {
			a.recent.put(token, hit)
		}
	}
	if ok {
		if now >= hit.Expiry {
			return nil, Refuse(wxapi.CodeTokenExpired, "access_token expired: fetch a new gateway token")
		}
		return hit, nil
	}
	rest, ok := strings.CutPrefix(token, tokenPrefix)
	if !ok {
		return nil, Refuse(wxapi.CodeInvalidCredential, "invalid credential: not a gateway token (fetch one from the gateway's token endpoint with the client key)")
	}
	payload, mac, ok := strings.Cut(rest, ".")
	if !ok {
		return nil, Refuse(wxapi.CodeInvalidCredential, "invalid credential: malformed gateway token")
	}
	raw, err := b64.DecodeString(payload)
	var cl Claims
	if err != nil || json.Unmarshal(raw, &cl) != nil {
		return nil, Refuse(wxapi.CodeInvalidCredential, "invalid credential: malformed gateway token")
	}
	c, ok := a.clients[cl.Client]
	if !ok {
		return nil, Refuse(wxapi.CodeInvalidCredential, "invalid credential: the token's client is not configured")
	}
	key, ok := c.keys[cl.KeyID]
	if !ok {
		return nil, Refuse(wxapi.CodeInvalidCredential, "invalid credential: the key this token was issued with was revoked")
	}
	if subtle.ConstantTimeCompare([]byte(sign(key, payload)), []byte(mac)) != 1 {
		return nil, Refuse(wxapi.CodeInvalidCredential, "invalid credential: bad gateway token signature")
	}
	if acct := a.accounts[cl.Account]; !c.accounts[cl.Account] || acct.AppID != cl.AppID || (cl.Kind != "" && acct.Kind != cl.Kind) {
		return nil, Refuse(wxapi.CodeInvalidAppID, "client "+c.Name+" may no longer use account "+cl.Account+" "+cl.AppID)
	}
	if now >= cl.Expiry {
		return nil, Refuse(wxapi.CodeTokenExpired, "access_token expired: fetch a new gateway token")
	}
	a.verified.SetWithTTL(token, &cl, 1, time.Duration(cl.Expiry-now)*time.Second)
	a.recent.put(token, &cl)
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

// MayCall checks that the token's client may call path.
func (a *Authority) MayCall(cl *Claims, path string) *Error {
	if !a.clients[cl.Client].mayCall(path) {
		return Refuse(wxapi.CodeAPIUnauthorized, "api unauthorized: client "+cl.Client+" may not call "+path)
	}
	return nil
}

// MayAdmin checks that the client may make calls that act on the whole
// account, such as resetting its API quota.
func (a *Authority) MayAdmin(cl *Claims) *Error {
	if !a.clients[cl.Client].Admin {
		return Refuse(wxapi.CodeAPIUnauthorized, "api unauthorized: client "+cl.Client+" may not reset quotas (grant it admin)")
	}
	return nil
}

// MayReadRawToken reports whether the token's client may read the real
// access token.
func (a *Authority) MayReadRawToken(cl *Claims) *Error {
	if !a.clients[cl.Client].RawToken {
		return Refuse(wxapi.CodeAPIUnauthorized, "api unauthorized: client "+cl.Client+" may not read the raw access_token (grant it raw_token)")
	}
	return nil
}
