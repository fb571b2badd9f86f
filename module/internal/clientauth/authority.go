package clientauth

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/ristretto/v2"
)

// Client is an app allowed to call the gateway.
type Client struct {
	// Name identifies the client in logs and in its tokens.
	Name string
	// Keys are the client's secrets; any of them authenticates it, so a key
	// can be rotated by adding the new one, moving the app, and removing the
	// old one (which revokes the tokens issued with it). At least 16
	// characters each.
	Keys []string
	// Accounts are the names of the accounts the client may use.
	Accounts []string
	// Paths, if any, are the API paths the client may call: exact paths or
	// prefixes ending in `*` (/cgi-bin/user/*). Empty allows every path.
	Paths []string
	// RawToken allows the client to read the account's real access token
	// from the raw-token endpoint.
	RawToken bool
	// Admin allows calls that act on the whole account for every client,
	// such as /cgi-bin/clear_quota/v2.
	Admin bool
}

// Account is what the authority needs to know of an account.
type Account struct {
	Name  string
	Kind  string // "official", "wecom" or "component"
	AppID string // appid, or corpid for WeCom
}

// MinKeyLength is the least length of a client key.
const MinKeyLength = 16

// DefaultTTL is the default lifetime of a gateway token: WeChat's own 7200 s,
// which SDKs cache well (silenceper/wechat keeps a token for expires_in -
// 1500 s).
const DefaultTTL = 2 * time.Hour

// MaxTTL is the longest lifetime of a gateway token.
const MaxTTL = 366 * 24 * time.Hour

// Authority issues and verifies gateway tokens for a set of clients.
type Authority struct {
	clients  map[string]*client
	byKey    map[[32]byte]*client
	keyIDs   map[[8]byte]clientKey
	accounts map[string]Account
	tags     map[[8]byte]string // account tag -> account name
	ttl      time.Duration
	now      func() time.Time
	verified *ristretto.Cache[string, *Claims]
	recent   recentTokens
}

type client struct {
	Client
	keys     map[string][]byte // key id (hex) -> key
	accounts map[string]bool
	names    []string // the accounts, sorted: Authenticate's order
}

// clientKey is a key and the client it belongs to.
type clientKey struct {
	client *client
	key    []byte
}

// New returns an Authority, or an error naming the client and field at
// fault. now is the clock (nil: time.Now); ttl 0 means DefaultTTL.
func New(clients []Client, accounts []Account, ttl time.Duration, now func() time.Time) (*Authority, error) {
	if ttl < 0 {
		return nil, errors.New("client_token_ttl must not be negative")
	}
	if ttl > MaxTTL {
		return nil, fmt.Errorf("client_token_ttl must be at most %v (366 days)", MaxTTL)
	}
	if ttl == 0 {
		ttl = DefaultTTL
	}
	if now == nil {
		now = time.Now
	}
	a := &Authority{
		clients:  make(map[string]*client),
		byKey:    make(map[[32]byte]*client),
		keyIDs:   make(map[[8]byte]clientKey),
		accounts: make(map[string]Account),
		tags:     make(map[[8]byte]string),
		ttl:      ttl,
		now:      now,
	}
	for _, acct := range accounts {
		tag := accountTag(acct.Name, acct.Kind, acct.AppID)
		if other, dup := a.tags[tag]; dup {
			return nil, fmt.Errorf("accounts %q and %q: their token tags collide; rename one", other, acct.Name)
		}
		a.accounts[acct.Name] = acct
		a.tags[tag] = acct.Name
	}
	for _, c := range clients {
		if err := a.add(c); err != nil {
			return nil, err
		}
	}
	cache, err := ristretto.NewCache(&ristretto.Config[string, *Claims]{
		NumCounters: 100_000, // ~10x the tokens expected to be live at once
		MaxCost:     10_000,  // entries (each costs 1)
		BufferItems: 64,
	})
	if err != nil {
		return nil, err
	}
	a.verified = cache
	return a, nil
}

func (a *Authority) add(c Client) error {
	if c.Name == "" {
		return errors.New("client: name is required")
	}
	if _, dup := a.clients[c.Name]; dup {
		return fmt.Errorf("client %q: defined twice", c.Name)
	}
	if len(c.Keys) == 0 {
		return fmt.Errorf("client %q: at least one key is required", c.Name)
	}
	if len(c.Accounts) == 0 {
		return fmt.Errorf("client %q: accounts: name at least one account it may use", c.Name)
	}
	cl := &client{Client: c, keys: make(map[string][]byte), accounts: make(map[string]bool)}
	for i, k := range c.Keys {
		if len(k) < MinKeyLength {
			return fmt.Errorf("client %q: key %d is shorter than %d characters", c.Name, i+1, MinKeyLength)
		}
		sum := sha256.Sum256([]byte(k))
		if other, dup := a.byKey[sum]; dup {
			return fmt.Errorf("client %q: key %d is also a key of client %q; every client needs keys of its own", c.Name, i+1, other.Name)
		}
		id := keyIDOf(k)
		if other, dup := a.keyIDs[id]; dup {
			return fmt.Errorf("client %q: key %d has the same id as a key of client %q; generate another", c.Name, i+1, other.client.Name)
		}
		a.byKey[sum] = cl
		a.keyIDs[id] = clientKey{client: cl, key: []byte(k)}
		cl.keys[keyID(k)] = []byte(k)
	}
	corps := make(map[string]string)
	for _, name := range c.Accounts {
		acct, ok := a.accounts[name]
		if !ok {
			return fmt.Errorf("client %q: accounts: %q is not an account of the wechat app", c.Name, name)
		}
		if acct.Kind == "wecom" {
			if other, dup := corps[acct.AppID]; dup {
				return fmt.Errorf("client %q: accounts %q and %q are WeCom apps of the same corp %s; an SDK's gettoken names only the corpid, so give each app its own client", c.Name, other, name, acct.AppID)
			}
			corps[acct.AppID] = name
		}
		cl.accounts[name] = true
	}
	cl.names = slices.Sorted(maps.Keys(cl.accounts))
	for _, p := range c.Paths {
		if !strings.HasPrefix(p, "/") {
			return fmt.Errorf("client %q: paths: %q must start with /", c.Name, p)
		}
		if i := strings.IndexByte(p, '*'); i >= 0 && i != len(p)-1 {
			return fmt.Errorf("client %q: paths: %q: `*` may only end a prefix", c.Name, p)
		}
		if len(p) > 1 && strings.HasSuffix(p, "/") {
			return fmt.Errorf("client %q: paths: %q ends in /, as no call's path does (the gateway refuses them); for every path under it write %q", c.Name, p, p+"*")
		}
		if bad := strings.Trim(strings.TrimSuffix(p, "*"), pathChars); bad != "" || strings.Contains(p, "//") || strings.Contains(p, "/./") || strings.Contains(p, "..") {
			return fmt.Errorf("client %q: paths: %q is no API path (letters, digits, '/', '_', '-' and '.', no empty, '.' or '..' segment), and no call could match it", c.Name, p)
		}
	}
	a.clients[c.Name] = cl
	return nil
}

// pathChars are the characters of WeChat's API paths.
const pathChars = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/_-."

// Close releases the verification cache.
func (a *Authority) Close() { a.verified.Close() }

// TTL is the lifetime of the tokens the authority issues.
func (a *Authority) TTL() time.Duration { return a.ttl }

// mayCall reports whether the client may call path.
func (c *client) mayCall(path string) bool {
	if len(c.Paths) == 0 {
		return true
	}
	return slices.ContainsFunc(c.Paths, func(p string) bool {
		if prefix, ok := strings.CutSuffix(p, "*"); ok {
			return strings.HasPrefix(path, prefix)
		}
		return path == p
	})
}

// recentSlots is the size of recentTokens: a power of two.
const recentSlots = 256

// recentTokens is a small direct-mapped cache of verified tokens in front
// of the verified cache: a client reuses its token for hours, and this
// finds it without hashing the whole token. A token's slot comes from the
// last characters of its signature, which nobody without the key can
// choose; a hit compares the whole token, so a slot taken by another
// token only sends the call on to the verified cache.
type recentTokens [recentSlots]atomic.Pointer[recentToken]

type recentToken struct {
	token  string
	claims *Claims
}

// recentSlot is a token's slot: from the second and third characters from
// the end (the last one of a signature carries only a few bits).
func recentSlot(token string) int {
	n := len(token)
	if n < 3 {
		return 0
	}
	return (int(token[n-2]) ^ int(token[n-3])<<2) & (recentSlots - 1)
}

// get returns the claims of token if it is in its slot.
func (r *recentTokens) get(token string) (*Claims, bool) {
	if e := r[recentSlot(token)].Load(); e != nil && e.token == token {
		return e.claims, true
	}
	return nil, false
}

// put keeps token and its verified claims in its slot.
func (r *recentTokens) put(token string, cl *Claims) {
	r[recentSlot(token)].Store(&recentToken{token: token, claims: cl})
}
