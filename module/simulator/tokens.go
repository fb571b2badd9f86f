package simulator

import (
	"crypto/rand"
	"sync"
	"sync/atomic"
	"time"
)

// family tells which endpoint issued a token. A token only works on the
// paths of its own family: MP tokens (token, stable) on api.weixin.qq.com
// paths, WeCom tokens on qyapi paths, user tokens on /sns/.
type family uint8

const (
	famToken      family = iota + 1 // /cgi-bin/token
	famStable                       // /cgi-bin/stable_token
	famWeCom                        // /cgi-bin/gettoken
	famUser                         // /sns/oauth2/access_token (user OAuth)
	famAuthorizer                   // open platform: an authorizer's access token (api_query_auth, api_authorizer_token)
	famComponent                    // open platform: component_access_token (kept apart, in openRuntime.tokens)
)

// token is one issued access token.
type token struct {
	value   string
	acct    *account
	fam     family
	issued  int64 // unix nanoseconds
	expires int64 // unix nanoseconds at which it answers 42001
	// announced is the expiry announced by expires_in; later than expires
	// only for WeCom tokens under Config.WeComEarlyInvalidation.
	announced int64
	openid    string
	// comp is the platform of a component token, auth the authorization
	// of an authorizer token; nil for the other families.
	comp *componentState
	auth *authorizerState
	// invalidAt is when it was superseded or revoked (unix nanoseconds);
	// 0 means never. From then on it answers 40001 (MP) or 40014 (WeCom),
	// unless it had expired before.
	invalidAt atomic.Int64
}

type tokenState uint8

const (
	tokenValid tokenState = iota
	tokenExpired
	tokenInvalid
)

func (t *token) state(now int64) tokenState {
	inv := t.invalidAt.Load()
	if inv != 0 && inv <= now && inv < t.expires {
		return tokenInvalid
	}
	if t.expires <= now {
		return tokenExpired
	}
	return tokenValid
}

// invalidate makes t stop working at `at`, unless it already stops earlier.
func (t *token) invalidate(at int64) {
	for {
		cur := t.invalidAt.Load()
		if cur != 0 && cur <= at {
			return
		}
		if t.invalidAt.CompareAndSwap(cur, at) {
			return
		}
	}
}

// end is when t stopped or will stop working.
func (t *token) end() int64 {
	if inv := t.invalidAt.Load(); inv != 0 && inv < t.expires {
		return inv
	}
	return t.expires
}

// remaining returns the whole seconds t has left at now as announced to
// the client (at least 0).
func (t *token) remaining(now int64) int {
	if t.announced <= now {
		return 0
	}
	return int((t.announced - now) / int64(time.Second))
}

// tokenRetention is how long a dead token is remembered (to answer 42001 or
// 40001 rather than "unknown"). Both answers mean the same to a client.
const tokenRetention = 48 * time.Hour

// tokenIndex maps token values to tokens. Reads dominate (every business
// call), writes happen on issuance.
type tokenIndex struct {
	mu         sync.RWMutex
	m          map[string]*token
	sinceSweep int
}

func newTokenIndex() *tokenIndex { return &tokenIndex{m: make(map[string]*token)} }

func (ix *tokenIndex) get(v string) *token {
	ix.mu.RLock()
	t := ix.m[v]
	ix.mu.RUnlock()
	return t
}

func (ix *tokenIndex) add(t *token, now int64) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	ix.m[t.value] = t
	ix.sinceSweep++
	if ix.sinceSweep >= 512 {
		ix.sinceSweep = 0
		cutoff := now - int64(tokenRetention)
		for k, old := range ix.m {
			if old.end() < cutoff {
				delete(ix.m, k)
			}
		}
	}
}

// revoke invalidates at now every still-valid token for which match is true
// and returns how many it invalidated.
func (ix *tokenIndex) revoke(now int64, match func(*token) bool) int {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	n := 0
	for _, t := range ix.m {
		if match(t) && t.state(now) == tokenValid {
			t.invalidate(now)
			n++
		}
	}
	return n
}

func (ix *tokenIndex) len() int {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	return len(ix.m)
}

// tokenAlphabet is the URL-safe alphabet of real tokens; 64 letters, so a
// random byte maps to a letter without bias.
const tokenAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

// Token lengths, as observed on the real services (both are well under the
// documented 512-character maximum).
const (
	mpTokenLen    = 157
	wecomTokenLen = 214
	userTokenLen  = 110
)

// randomString returns prefix followed by random letters of tokenAlphabet,
// n characters in all.
func randomString(prefix string, n int) string {
	b := make([]byte, n)
	copy(b, prefix)
	tail := b[len(prefix):]
	_, _ = rand.Read(tail) // never fails
	for i, c := range tail {
		tail[i] = tokenAlphabet[c&63]
	}
	return string(b)
}

// mpTokenPrefix imitates the numeric prefix of official account tokens.
const mpTokenPrefix = "86_"

func newTokenValue(f family) string {
	switch f {
	case famWeCom:
		return randomString("", wecomTokenLen)
	case famUser:
		return randomString(mpTokenPrefix, userTokenLen)
	}
	return randomString(mpTokenPrefix, mpTokenLen)
}

// dayCounter counts events per WeChat day without a lock: the high 32 bits
// hold the day number, the low 32 bits the count of that day.
type dayCounter struct{ v atomic.Uint64 }

func (c *dayCounter) get(day int64) int {
	v := c.v.Load()
	if int64(v>>32) != day {
		return 0
	}
	return int(uint32(v))
}

// inc counts one event on day and returns the new count of that day.
func (c *dayCounter) inc(day int64) int {
	for {
		v := c.v.Load()
		n := uint64(1)
		if int64(v>>32) == day {
			n = min(uint64(uint32(v))+1, 1<<32-1)
		}
		if c.v.CompareAndSwap(v, uint64(day)<<32|n) {
			return int(n)
		}
	}
}

func (c *dayCounter) reset() { c.v.Store(0) }
