package token

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/wxgate/caddy-wechat/module/internal/wxapi"
)

// Defaults of Options.
const (
	DefaultRefreshCooldown    = 30 * time.Second
	DefaultMaxRefreshCooldown = 10 * time.Minute
	DefaultStoreTimeout       = 2 * time.Second
	DefaultFetchTimeout       = 10 * time.Second
	DefaultBackoffMin         = time.Second
	DefaultBackoffMax         = 2 * time.Minute
	DefaultProbeMin           = time.Minute
	DefaultProbeMax           = 30 * time.Minute
	// DefaultExpirySkew is how long before its stated expiry a token is no
	// longer handed out, covering clock skew and time in flight.
	DefaultExpirySkew = 30 * time.Second
	// DefaultTick is how often Run looks for tokens due for a refresh.
	DefaultTick = time.Second
	// DefaultSyncInterval is how often a token in use is compared with the
	// shared Store.
	DefaultSyncInterval = time.Minute
)

// Options configure a Manager. Zero fields take the defaults above.
type Options struct {
	// Clock tells the time. Default: SystemClock.
	Clock Clock
	// Fetcher calls token endpoints. Default: an HTTPFetcher.
	Fetcher Fetcher
	// Logger receives refreshes, invalidations and guard trips. Default: a
	// no-op logger.
	Logger *zap.Logger
	// RefreshCooldown is how long after an account's last token-endpoint
	// call a rejected token counts as fresh. A fresh /cgi-bin/token token is
	// not replaced (a fresh token that fails is of the wrong kind, and
	// every /cgi-bin/token call makes a new one, spending quota); a fresh
	// stable_token or gettoken token is checked with one normal-mode call,
	// which says whether it changed. The cooldown doubles, up to
	// MaxRefreshCooldown, each time a token that a rejection brought is
	// rejected too, and halves back each hour. Default: 30 s. Negative
	// means no cooldown.
	//
	// A token the endpoint handed back unchanged after its rejection is
	// final: its 40014s are passed on with no further call, and a 40001 or
	// 42001 of it is checked again (one normal-mode call) only past the
	// cooldown.
	RefreshCooldown time.Duration
	// MaxRefreshCooldown caps the doubled cooldown, and so how long a
	// rejection that a client provokes can delay the repair of a token
	// invalidated for real. Default: 10 min.
	MaxRefreshCooldown time.Duration
	// StoreTimeout bounds each Store call (Load, Store, Unlock) of a
	// refresh, and StoreTimeout*LockWaitFactor its Lock, which may wait for
	// another instance's fetch; a Store that hangs then costs that much,
	// and the refresh goes on without it with a fresh FetchTimeout.
	// Default: 2 s.
	StoreTimeout time.Duration
	// FetchTimeout bounds the token-endpoint calls of one refresh (a normal
	// call and, for stable_token, a force_refresh). Store calls have their
	// own StoreTimeout. Default: 10 s.
	FetchTimeout time.Duration
	// BackoffMin and BackoffMax are the first and the longest wait after a
	// transient failure (-1, timeouts, 5xx, garbage); it doubles per
	// failure, and each wait varies by up to 25% either way. Defaults: 1 s
	// and 2 min.
	BackoffMin, BackoffMax time.Duration
	// ProbeMin and ProbeMax are the first and the longest wait (give or
	// take 25%) after a configuration or quota
	// error (bad secret, IP not whitelisted, 45009 ...): the Manager stops
	// refreshing and probes again at these intervals, doubling. Defaults:
	// 1 min and 30 min.
	ProbeMin, ProbeMax time.Duration
	// ExpirySkew: a token is handed out until this long before its expiry.
	// Default: 30 s.
	ExpirySkew time.Duration
	// Rand returns a float in [0,1) for backoff jitter. Default: math/rand/v2.
	Rand func() float64
	// Store, if set, shares tokens between the gateways of a cluster and
	// keeps them across restarts (see Store). SetStore replaces it.
	Store Store
	// SyncInterval is how often a token in use is compared with the Store,
	// so that instances converge on the newest token. Default: 1 min.
	SyncInterval time.Duration
	// Observer is told of token-endpoint calls and refreshes, for
	// metrics. Default: none.
	Observer Observer
}

func (o *Options) setDefaults() {
	if o.Clock == nil {
		o.Clock = SystemClock{}
	}
	if o.Fetcher == nil {
		o.Fetcher = &HTTPFetcher{}
	}
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	if o.RefreshCooldown == 0 {
		o.RefreshCooldown = DefaultRefreshCooldown
	}
	setDuration(&o.MaxRefreshCooldown, DefaultMaxRefreshCooldown)
	setDuration(&o.StoreTimeout, DefaultStoreTimeout)
	setDuration(&o.FetchTimeout, DefaultFetchTimeout)
	setDuration(&o.BackoffMin, DefaultBackoffMin)
	setDuration(&o.BackoffMax, DefaultBackoffMax)
	setDuration(&o.ProbeMin, DefaultProbeMin)
	setDuration(&o.ProbeMax, DefaultProbeMax)
	setDuration(&o.ExpirySkew, DefaultExpirySkew)
	setDuration(&o.SyncInterval, DefaultSyncInterval)
	if o.Rand == nil {
		o.Rand = rand.Float64
	}
	if o.Observer == nil {
		o.Observer = noObserver{}
	}
}

func setDuration(d *time.Duration, def time.Duration) {
	if *d <= 0 {
		*d = def
	}
}

// Token is an access token the Manager holds. Tokens are immutable once
// published; compare them by Value.
type Token struct {
	// Value is the access token. Never log it.
	Value string
	// Expires is when WeChat stops accepting it (fetch time + expires_in).
	Expires time.Time
	// Fetched is when it was fetched.
	Fetched time.Time
	// Generation counts the tokens the account has had.
	Generation uint64

	// untilExpiry marks a token that is handed out up to its expiry rather
	// than ExpirySkew before it: its endpoint (WeCom's gettoken) answers
	// with this same token until it expires, so asking again sooner only
	// spends quota and brings it back.
	untilExpiry bool
	// heldToExpiry marks a ticket of an endpoint that, asked before a
	// ticket expired, handed it back unchanged: its tickets are kept to
	// their expiry (refreshAt), not asked for early again.
	heldToExpiry bool
	// lastSecond marks such a token handed back after it expired here, or
	// with no life left, and kept for a second or so: handed back so once
	// more, it is an error.
	lastSecond bool
}

// Manager keeps the tokens of a set of accounts. It is safe for concurrent
// use. Create it with NewManager, add accounts with Register, and run Run in
// the background for proactive refreshes.
type Manager struct {
	opts  Options
	log   atomic.Pointer[zap.Logger]
	store atomic.Pointer[storeBox]
	// refreshCooldown and fetchTimeout are Options.RefreshCooldown and
	// Options.FetchTimeout, which SetTimings changes in a running Manager.
	refreshCooldown, fetchTimeout atomic.Int64

	mu      sync.RWMutex
	entries map[string]*entry // by Account.Key()
}

// NewManager returns a Manager with opts, defaults filled in.
func NewManager(opts Options) *Manager {
	opts.setDefaults()
	m := &Manager{opts: opts, entries: make(map[string]*entry)}
	m.SetStore(opts.Store)
	m.SetLogger(opts.Logger)
	m.SetTimings(opts.RefreshCooldown, opts.FetchTimeout)
	return m
}

// SetTimings sets Options.RefreshCooldown and Options.FetchTimeout, with
// their defaults for 0, for the calls and refreshes that start from now
// on: a config reload hands its own over this way, and the accounts keep
// their tokens, budgets and state.
func (m *Manager) SetTimings(refreshCooldown, fetchTimeout time.Duration) {
	if refreshCooldown == 0 {
		refreshCooldown = DefaultRefreshCooldown
	}
	setDuration(&fetchTimeout, DefaultFetchTimeout)
	m.refreshCooldown.Store(int64(refreshCooldown))
	m.fetchTimeout.Store(int64(fetchTimeout))
}

// Timings returns the refresh cooldown and the fetch timeout in force, as
// SetTimings last set them (defaults filled in).
func (m *Manager) Timings() (refreshCooldown, fetchTimeout time.Duration) {
	return time.Duration(m.refreshCooldown.Load()), m.timeout()
}

// timeout is the FetchTimeout now.
func (m *Manager) timeout() time.Duration { return time.Duration(m.fetchTimeout.Load()) }

// SetLogger sets the logger (a config reload hands over its own).
func (m *Manager) SetLogger(l *zap.Logger) {
	if l == nil {
		l = zap.NewNop()
	}
	m.log.Store(l)
}

func (m *Manager) lg() *zap.Logger { return m.log.Load() }

// storeBox lets an interface value sit in an atomic.Pointer.
type storeBox struct{ s Store }

// SetStore sets the Store that tokens are shared through (nil: none). A
// config reload hands the Manager the new config's storage this way.
func (m *Manager) SetStore(s Store) { m.store.Store(&storeBox{s}) }

func (m *Manager) sharedStore() Store { return m.store.Load().s }

// storeShared writes v, as JSON, under key in the Store, if there is one,
// giving the write StoreTimeout.
func (m *Manager) storeShared(ctx context.Context, key string, v any) error {
	s := m.sharedStore()
	if s == nil {
		return nil
	}
	raw, _ := json.Marshal(v)
	sctx, cancel := context.WithTimeout(ctx, m.opts.StoreTimeout)
	defer cancel()
	return s.Store(sctx, key, raw)
}

// loadShared reads the JSON under key in the Store into v, giving the read
// StoreTimeout, and reports whether it did: false with no Store, no such
// key, a failed read or JSON that does not decode.
func (m *Manager) loadShared(ctx context.Context, key string, v any) bool {
	s := m.sharedStore()
	if s == nil {
		return false
	}
	sctx, cancel := context.WithTimeout(ctx, m.opts.StoreTimeout)
	defer cancel()
	raw, err := s.Load(sctx, key)
	return err == nil && json.Unmarshal(raw, v) == nil
}

// Clock returns the Manager's clock.
func (m *Manager) Clock() Clock { return m.opts.Clock }

// Handle is a registered account: what a request handler holds to ask for
// its token without a map lookup.
type Handle struct {
	m    *Manager
	e    *entry
	acct atomic.Pointer[Account] // this registration's configuration
}

// Register adds an account, or prepares a new configuration for one already
// registered under the same Key (a config reload), keeping its token; the
// new configuration applies at Activate, so a reload that fails changes
// nothing. Each Register must be paired with a Release. It returns an error
// naming the first bad field.
func (m *Manager) Register(a Account) (*Handle, error) {
	a, err := a.withDefaults()
	if err != nil {
		return nil, err
	}
	key := a.Key()
	m.mu.Lock()
	defer m.mu.Unlock()
	e := m.entries[key]
	if e == nil {
		e = &entry{key: key}
		e.acct.Store(&a)
		m.entries[key] = e
	}
	e.refs++
	h := &Handle{m: m, e: e}
	h.acct.Store(&a)
	return h, nil
}

// Activate makes this registration's configuration the account's. A
// changed secret, endpoint or base URL clears a stopped refresh and its
// backoff, so that fixing a wrong secret by a reload takes effect at once.
func (h *Handle) Activate() {
	e := h.e
	e.mu.Lock()
	defer e.mu.Unlock()
	a := h.acct.Load()
	old := e.acct.Swap(a)
	if p := e.confidential.Load(); p != nil && old.Secret != a.Secret {
		vals := append([]string{a.Secret}, (*p)[1:]...)
		e.confidential.Store(&vals)
	}
	if old != a && (old.Secret != a.Secret || old.BaseURL != a.BaseURL || old.Endpoint != a.Endpoint) {
		if e.tripped || e.lastErr != nil {
			h.m.lg().Info("account credentials changed; refreshing resumes now", zap.String("account", a.Name), zap.String("appid", a.AppID))
		}
		e.clearGuard()
	}
}

// clearGuard forgets a stopped refresh and its backoff. e.mu is held.
func (e *entry) clearGuard() {
	e.retryAt, e.lastErr, e.tripped, e.failures = time.Time{}, nil, false, 0
}

// Release undoes one Register. The account's token is dropped when the
// last registration is released.
func (h *Handle) Release() {
	m := h.m
	m.mu.Lock()
	defer m.mu.Unlock()
	h.e.refs--
	if h.e.refs <= 0 {
		delete(m.entries, h.e.key)
	}
}

// Account returns this registration's configuration.
func (h *Handle) Account() *Account { return h.acct.Load() }

// Confidential returns what must never reach a client: the account's
// secret and its most recent token values, newest first. The slice is
// shared: do not change it.
func (h *Handle) Confidential() []string {
	if p := h.e.confidential.Load(); p != nil {
		return *p
	}
	return []string{h.e.acct.Load().Secret}
}

// recentTokens is how many token values Confidential keeps.
const recentTokens = 3

// remember adds a token value to e's confidential values. e.mu is held.
func (e *entry) remember(value string) {
	secret := e.acct.Load().Secret
	vals := []string{secret, value}
	if p := e.confidential.Load(); p != nil {
		for _, v := range (*p)[1:] {
			if v != value && len(vals) < recentTokens+1 {
				vals = append(vals, v)
			}
		}
	}
	e.confidential.Store(&vals)
}

// Key is the account's Account.Key: handles with equal keys share a token.
func (h *Handle) Key() string { return h.e.key }

// Token returns a valid token for the account, fetching one if it has none
// (one fetch however many callers wait). In steady state it takes no lock
// and does not allocate. It fails at once with an *UnavailableError when
// no token can be had now, rather than making the caller wait for backoff.
func (h *Handle) Token(ctx context.Context) (*Token, error) {
	e := h.e
	now := h.m.opts.Clock.Now()
	if t := e.cur.Load(); t != nil && h.m.usable(t, now) {
		e.touch(now)
		return t, nil
	}
	e.touch(now)
	return h.m.acquire(ctx, e, "")
}

// Reject reports that WeChat refused failed (errcode 40001, 40014 or
// 42001). If failed is still the account's current token, it is dropped and
// a new one fetched (one fetch however many callers report it); otherwise
// someone already replaced it and the current token is returned at once.
// A nil token with a nil error means: do not retry, the rejected token was
// fetched too recently to blame (see Options.RefreshCooldown).
func (h *Handle) Reject(ctx context.Context, failed *Token, errcode int) (*Token, error) {
	return h.m.acquire(ctx, h.e, failed.Value, errcode)
}

func (m *Manager) usable(t *Token, now time.Time) bool {
	if t.untilExpiry {
		return now.Before(t.Expires)
	}
	return now.Before(t.Expires.Add(-m.opts.ExpirySkew))
}

// refreshAt is when a background refresh of t is due: the account's margin
// before t expires, or when it expires for an endpoint that hands out the
// same token until then (gettoken): a refresh before that would only bring
// t back. A ticket is asked for once TicketMargin before it expires, in
// case the endpoint hands out the next one then, and kept to its expiry if
// it comes back.
func refreshAt(a *Account, t *Token) time.Time {
	switch {
	case a.Endpoint.Ticket() && !t.heldToExpiry:
		return t.Expires.Add(-TicketMargin)
	case a.Endpoint.untilExpiry():
		return t.Expires
	}
	return t.Expires.Add(-a.Margin)
}

// TicketMargin is how long before a JS-SDK ticket expires the gateway asks
// for the next one: SDKs cache a ticket for its expires_in less up to 25
// minutes (silenceper/wechat: 1500 s, and a negative cache time fails
// with Redis), so a ticket handed out should have more left than that.
const TicketMargin = 30 * time.Minute

// entry is the state of one account.
type entry struct {
	key      string
	acct     atomic.Pointer[Account]
	cur      atomic.Pointer[Token]
	lastUsed atomic.Int64 // unix seconds of the Clock
	// verifyTicket is a component account's last component_verify_ticket.
	verifyTicket atomic.Pointer[VerifyTicket]
	// authorizers are a component account's authorizers as this instance
	// knows them: appid -> *authorizerRecord.
	authorizers sync.Map
	// authorizerMu makes each read-compare-write of an authorizer's record
	// whole within this instance (the storage lock does across instances):
	// a mutex per stripe of appids (see authorizerStripe), so that one
	// authorizer's slow write does not hold up the others.
	authorizerMu [16]sync.Mutex
	// exchanges are a component account's recent api_query_auth
	// exchanges: code digest key -> *exchange.
	exchanges sync.Map
	// confidential is what answers must never show: the secret and the
	// most recent token values (an older token still works during its
	// overlap). Replaced whole, never changed in place.
	confidential atomic.Pointer[[]string]

	mu     sync.Mutex
	refs   int     // guarded by Manager.mu
	flight *flight // the fetch under way, if any
	// rejected is the token Reject last dropped: never adopted again, and
	// served again only if no replacement can be had.
	rejected        *Token
	rejectedMayWork bool // rejected was refused with 40014 only
	// checkOnly makes the refresh a rejection started ask the endpoint in
	// normal mode only: the rejected token was fresh, so only the
	// endpoint's answer can tell a dead token from one of the wrong kind.
	checkOnly bool
	// rejectionPending marks that the next refresh is started by a
	// rejection.
	rejectionPending bool
	// manual marks that the next refresh is an operator's (Refresh).
	manual bool
	// final is a token that a refresh started by its rejection handed
	// back unchanged: it works (or the endpoint would not hand it out) and
	// was refused for what it is, so no rejection of it refreshes again.
	final string
	// rejectionToken is the token the last rejection-started refresh
	// brought; its own rejection doubles the cooldown (penalty).
	rejectionToken string
	penalty        int       // doublings of the refresh cooldown
	penaltyAt      time.Time // when penalty last grew
	lastCall       time.Time // the last token-endpoint call
	retryAt        time.Time // no fetch before this (backoff or guard)
	failures       int       // consecutive failed refreshes
	lastErr        *UnavailableError
	tripped        bool // a configuration or quota error stopped refreshing
	day            int64
	calls          int // token-endpoint calls this quota day
	probes         int // calls past the budget operators granted (Resume) this quota day
	forceDay       int64
	forces         int // force_refresh calls this quota day
	lastForce      time.Time
	fetches        uint64    // token-endpoint calls since start, for stats
	nextSync       time.Time // when the token is next compared with the Store
	// nextProactive is when a background refresh is due: the token's expiry
	// less the account's margin, and never sooner than minProactiveGap after
	// the last refresh (stable_token hands back the same token until its
	// rotation window, and a skewed clock must not turn that into a loop).
	nextProactive time.Time
}

// minProactiveGap is the least time between two background refreshes.
const minProactiveGap = 30 * time.Second

// touch records that the account is in use, at most once a second.
func (e *entry) touch(now time.Time) {
	if s := now.Unix(); e.lastUsed.Load() != s {
		e.lastUsed.Store(s)
	}
}

// flight is one refresh under way; waiters block on done.
type flight struct {
	done chan struct{}
	tok  *Token
	err  error
	// byRejection marks a refresh that a rejection started.
	byRejection bool
}

// acquire returns a usable token, starting or joining a refresh as needed.
// failed is the rejected token's value ("" for a plain lookup).
func (m *Manager) acquire(ctx context.Context, e *entry, failed string, errcode ...int) (*Token, error) {
	now := m.opts.Clock.Now()
	e.mu.Lock()
	cur := e.cur.Load()
	if failed != "" && cur != nil && cur.Value == failed {
		a := e.acct.Load()
		since := now.Sub(e.lastCall)
		if fetched := now.Sub(cur.Fetched); fetched < since {
			since = fetched // another instance fetched it
		}
		cooldown := m.cooldown(e, now)
		fresh := cooldown > 0 && since < cooldown
		wrongKind := len(errcode) > 0 && errcode[0] == wxapi.CodeInvalidToken
		if e.final == failed && (wrongKind || fresh) {
			// The endpoint handed this token back unchanged after a
			// rejection: a 40014 of it is about its kind, never its age.
			// A 40001 or 42001 (it may have died since: another system
			// forced a refresh) is checked again once the cooldown passed.
			e.mu.Unlock()
			return nil, nil
		}
		fresh = fresh || e.final == failed
		if fresh && (a.Endpoint == ClientCredential || a.Endpoint == ComponentToken || a.Endpoint == AuthorizerToken) {
			e.mu.Unlock()
			m.lg().Warn("fresh access_token rejected; not refreshing again",
				zap.String("account", a.Name), zap.Ints("errcode", errcode),
				zap.Duration("since_last_fetch", since), zap.Duration("cooldown", cooldown))
			return nil, nil
		}
		if err := m.blocked(e, now); err != nil {
			// No fetch may start (backoff, guard, budget): keep the token,
			// which may still work elsewhere, and pass WeChat's answer on.
			e.mu.Unlock()
			return nil, nil
		}
		m.lg().Info("access_token rejected; invalidated",
			zap.String("account", e.acct.Load().Name), zap.Ints("errcode", errcode), zap.Uint64("generation", cur.Generation))
		e.cur.Store(nil)
		e.rejected = cur
		// 40014 may mean a token of the wrong kind for one path, not a
		// dead token: such a token is served again if no new one comes.
		e.rejectedMayWork = wrongKind
		// A fresh token, or one refused with 40014 (which also answers a
		// token of the wrong kind), is only checked: a normal-mode call
		// tells whether it changed, and a force_refresh would replace a
		// working token.
		e.checkOnly = fresh || e.rejectedMayWork
		e.rejectionPending = true
		if cur.Value == e.rejectionToken {
			// The token the last rejection brought is refused too: the
			// rejections are not about the token's age.
			e.penalty = min(e.penalty+1, 16)
			e.penaltyAt = now
		}
		cur = nil
	}
	if cur != nil && m.usable(cur, now) {
		e.mu.Unlock()
		return cur, nil
	}
	f := e.flight
	joined := f != nil
	if f == nil {
		if err := m.blocked(e, now); err != nil {
			e.mu.Unlock()
			return nil, err
		}
		f = m.startLocked(e, false)
	}
	e.mu.Unlock()
	select {
	case <-f.done:
		if failed != "" && f.tok != nil && f.tok.Value == failed {
			e.mu.Lock()
			final := e.final == failed
			e.mu.Unlock()
			if !final && joined {
				// The refresh joined had started before the rejection (a
				// background one, say) and brought the rejected token
				// back: report it again, which starts a refresh of its own.
				return m.acquire(ctx, e, failed, errcode...)
			}
			return nil, nil // handed back unchanged: no replay
		}
		return f.tok, f.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// cooldown is the account's refresh cooldown now: RefreshCooldown doubled
// per penalty, less one doubling per hour since the penalty last grew.
// e.mu is held.
func (m *Manager) cooldown(e *entry, now time.Time) time.Duration {
	base := time.Duration(m.refreshCooldown.Load())
	if base <= 0 {
		return 0
	}
	p := e.penalty - int(now.Sub(e.penaltyAt)/time.Hour)
	d := base
	for i := 0; i < p && d < m.opts.MaxRefreshCooldown; i++ {
		d *= 2
	}
	return min(d, max(base, m.opts.MaxRefreshCooldown))
}

// blocked says why no fetch may start now, or nil. e.mu is held.
func (m *Manager) blocked(e *entry, now time.Time) error {
	if now.Before(e.retryAt) && e.lastErr != nil {
		err := *e.lastErr
		err.Until = e.retryAt
		return &err
	}
	return nil
}

// startLocked starts a refresh of e in its own goroutine, detached from any
// request's context: one client giving up must not fail the others.
// proactive marks a background refresh of a token still in use. e.mu is held.
func (m *Manager) startLocked(e *entry, proactive bool) *flight {
	f := &flight{done: make(chan struct{}), byRejection: !proactive && e.rejectionPending}
	e.rejectionPending = false
	e.flight = f
	go m.refresh(e, f, proactive)
	return f
}

// refresh fetches a new token for e and completes f.
func (m *Manager) refresh(e *entry, f *flight, proactive bool) {
	a := e.acct.Load()
	// Detached from every request: one client giving up must not fail the
	// others. obtain bounds each step (Store calls, the fetch) itself.
	began := time.Now()
	tok, err := m.obtain(context.Background(), e, a, proactive)
	m.opts.Observer.Refreshed(a, err == nil, time.Since(began))

	e.mu.Lock()
	now := m.opts.Clock.Now()
	if err == nil {
		if f.byRejection {
			e.rejectionToken = tok.Value
			if e.rejected != nil && tok.Value == e.rejected.Value {
				e.final = tok.Value
				m.lg().Warn("a rejected access_token came back unchanged from the token endpoint: it is refused for what it is, not its age; no refresh or replay for it",
					zap.String("account", a.Name), zap.String("appid", a.AppID), zap.Uint64("generation", tok.Generation))
			}
		}
		e.checkOnly = false
		e.cur.Store(tok)
		e.remember(tok.Value)
		e.nextProactive = refreshAt(a, tok)
		if min := now.Add(minProactiveGap); e.nextProactive.Before(min) {
			e.nextProactive = min
		}
		e.failures = 0
		e.retryAt = time.Time{}
		e.lastErr = nil
		if e.tripped {
			m.lg().Info("token endpoint works again; refreshing resumed", zap.String("account", a.Name), zap.String("appid", a.AppID))
			e.tripped = false
		}
		f.tok = tok
	} else {
		e.checkOnly = false
		ue := m.failed(e, a, err, now)
		f.err = ue
		if cur := e.cur.Load(); cur == nil && e.rejectedMayWork && e.rejected != nil && m.usable(e.rejected, now) {
			// No replacement: a token refused with 40014 that has not
			// expired may still work on other paths; serve it rather than
			// nothing.
			e.cur.Store(e.rejected)
		}
		if cur := e.cur.Load(); cur != nil && m.usable(cur, now) && proactive {
			f.tok, f.err = cur, nil // keep serving the token that still works
		}
	}
	e.flight = nil
	e.mu.Unlock()
	close(f.done)
}

// failed records a failed refresh, sets the backoff or trips the guard, and
// returns the error callers see. e.mu is held.
func (m *Manager) failed(e *entry, a *Account, err error, now time.Time) *UnavailableError {
	e.failures++
	ue := &UnavailableError{Account: a.Name, Reason: err.Error(), Ticket: a.Endpoint.Ticket()}
	var fe *FetchError
	var budget *budgetError
	class := wxapi.Transient
	switch {
	case errors.As(err, &budget):
		class = wxapi.Quota
	case errors.As(err, &fe) && fe.Errcode != 0:
		ue.Errcode = fe.Errcode
		class = wxapi.ClassifyTokenError(fe.Errcode)
	}
	var wait time.Duration
	fields := []zap.Field{zap.String("account", a.Name), zap.String("appid", a.AppID), zap.Int("errcode", ue.Errcode),
		zap.Int("failures", e.failures), zap.Error(err)}
	if fe != nil && fe.RequestID != "" {
		fields = append(fields, zap.String("rid", fe.RequestID))
	}
	switch {
	case budget != nil:
		wait = budget.until.Sub(now)
		e.tripped = true
		m.lg().Error("token fetch budget exhausted; refreshing stopped until the next WeChat day", fields...)
	case class == wxapi.Transient:
		wait = m.backoff(m.opts.BackoffMin, m.opts.BackoffMax, e.failures)
		m.lg().Warn("token refresh failed; will retry", append(fields, zap.Duration("retry_in", wait))...)
	default:
		wait = m.backoff(m.opts.ProbeMin, m.opts.ProbeMax, e.failures)
		e.tripped = true
		m.lg().Error("token endpoint refused the account; refreshing stopped, fix the configuration or wait",
			append(fields, zap.Duration("probe_in", wait))...)
	}
	e.retryAt = now.Add(wait)
	ue.Until = e.retryAt
	var postponed *storeError
	if !errors.As(err, &postponed) {
		// A refresh postponed for storage does not hold back a caller
		// whose token is gone: that one fetches on its own (see alone).
		e.lastErr = ue
	}
	return ue
}

// backoff returns min*2^(n-1) capped at max, with up to 25% jitter either way.
func (m *Manager) backoff(min, max time.Duration, n int) time.Duration {
	d := min
	for i := 1; i < n && d < max; i++ {
		d *= 2
	}
	if d > max {
		d = max
	}
	jitter := (m.opts.Rand()*0.5 - 0.25) * float64(d)
	return d + time.Duration(jitter)
}

type budgetError struct {
	budget int
	until  time.Time
}

func (e *budgetError) Error() string {
	return "the gateway's daily token-fetch budget (" + strconv.Itoa(e.budget) + " calls) is used up"
}

// fetch gets a new token: a normal call, and for a stable_token account
// whose token was rejected and came back unchanged, one force_refresh if the
// platform's limits (20 a day, 30 s apart) allow.
func (m *Manager) fetch(ctx context.Context, e *entry, a *Account, stored *Token) (*Token, error) {
	e.mu.Lock()
	rejected, checkOnly, manual := e.rejected, e.checkOnly, e.manual
	e.manual = false
	e.mu.Unlock()
	prev := e.cur.Load()
	if prev == nil {
		prev = rejected
	}
	if stored != nil && (prev == nil || stored.Generation > prev.Generation) {
		prev = stored
	}

	// An operator's refresh of a stable token asks for a new one at once
	// (force_refresh), within the platform's limits.
	force := manual && a.Endpoint == StableToken && m.mayForce(e, platformForces)
	got, start, err := m.call(ctx, e, a, force)
	if err != nil {
		return nil, err
	}
	if a.Endpoint == StableToken && !force && !checkOnly && rejected != nil && got.Value == rejected.Value {
		if m.mayForce(e, rejectionForces) {
			m.lg().Info("stable token rejected and unchanged; force refreshing", zap.String("account", a.Name), zap.String("appid", a.AppID))
			if got, start, err = m.call(ctx, e, a, true); err != nil {
				return nil, err
			}
		} else {
			// Keep the token the platform hands out: failing instead would
			// leave the account with no token at all.
			m.lg().Warn("stable token rejected and unchanged, and the platform's force_refresh limit (20 a day, 30 s apart) is reached; keeping it",
				zap.String("account", a.Name), zap.String("appid", a.AppID))
		}
	}
	same := prev != nil && prev.Value == got.Value
	// gettoken and the tickets hand the same value back, with the life it
	// has left, until it expires. Asked when it expires here (worked out
	// from a lifetime rounded down, and a clock of its own), the answer can
	// be that value with a second or less left (0, rounded down): it is
	// kept for that second, and the call after it brings the next value.
	// Handed back so twice in a row, the endpoint is stuck: an error, so
	// that the account backs off rather than asks every second.
	lastSecond := same && (got.ExpiresIn <= 0 || !prev.Expires.After(start))
	switch {
	case lastSecond && prev.lastSecond:
		return nil, &FetchError{Endpoint: a.Endpoint.Path(), Err: errors.New("answer hands back the expired value again")}
	case got.ExpiresIn <= 0 && !(same && a.Endpoint.untilExpiry()):
		return nil, &FetchError{Endpoint: a.Endpoint.Path(), Err: fmt.Errorf("answer has expires_in %d", int64(got.ExpiresIn/time.Second))}
	case got.ExpiresIn <= 0:
		got.ExpiresIn = time.Second
	}
	var gen uint64 = 1
	fetched := start
	switch {
	case same:
		// Handed back unchanged (stable_token's normal mode before its
		// rotation window, gettoken before expiry): the same token, as old
		// as when it was first fetched, so that the refresh cooldown does
		// not take it for a fresh one.
		gen, fetched = prev.Generation, prev.Fetched
	case prev != nil:
		gen = prev.Generation + 1
	}
	expires := start.Add(got.ExpiresIn)
	if same && prev.Expires.After(start) && prev.Expires.Before(expires) {
		// The same token does not live longer for being asked for again,
		// unless it has expired here and the endpoint says it lives on.
		expires = prev.Expires
	}
	tok := &Token{Value: got.Value, Fetched: fetched, Expires: expires, Generation: gen,
		untilExpiry: a.Endpoint.untilExpiry(), lastSecond: lastSecond,
		heldToExpiry: a.Endpoint.Ticket() && prev != nil && (prev.heldToExpiry || same && prev.Expires.After(start))}
	m.lg().Info("access_token refreshed", zap.String("account", a.Name), zap.String("appid", a.AppID),
		zap.String("endpoint", string(a.Endpoint)), zap.Duration("expires_in", got.ExpiresIn), zap.Uint64("generation", gen))
	return tok, nil
}

// Daily force_refresh limits: the platform's, shared with every system
// using the appid, and the share the gateway takes for rejections that an
// unchanged token did not settle (a client able to provoke rejections must
// not use up the appid's allowance).
const (
	platformForces  = 20
	rejectionForces = 5
)

// mayForce reports whether a stable_token force_refresh is within limit
// calls today and 30 s after the last, and counts it if so.
func (m *Manager) mayForce(e *entry, limit int) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	now := m.opts.Clock.Now()
	if day := quotaDay(now); e.forceDay != day {
		e.forceDay, e.forces = day, 0
	}
	if e.forces >= limit || (!e.lastForce.IsZero() && now.Sub(e.lastForce) < 30*time.Second) {
		return false
	}
	e.forces++
	e.lastForce = now
	return true
}

// call makes one token-endpoint call, counted against the daily budget.
func (m *Manager) call(ctx context.Context, e *entry, a *Account, force bool) (Fetched, time.Time, error) {
	start := m.opts.Clock.Now()
	// Nothing to ask with yet: not a call, not counted.
	var rec *authorizerRecord
	var vt *VerifyTicket
	switch a.Endpoint {
	case ComponentToken:
		if vt = m.currentVerifyTicket(ctx, e, a); vt == nil {
			return Fetched{}, start, errNoVerifyTicket
		} else if vt.Rejected {
			return Fetched{}, start, errRefusedVerifyTicket
		}
	case AuthorizerToken:
		if rec = m.refreshToken(ctx, a.Parent.e, a.Parent.Account(), a.AppID); rec == nil || rec.RefreshToken == "" {
			return Fetched{}, start, errNotAuthorized(a)
		}
	}
	e.mu.Lock()
	day := quotaDay(start)
	if e.day != day {
		e.day, e.calls, e.probes = day, 0, 0
	}
	if e.calls >= a.DailyBudget+e.probes {
		e.mu.Unlock()
		err := &budgetError{budget: a.DailyBudget, until: nextQuotaDay(start)}
		m.opts.Observer.EndpointCall(a, callResult(err), 0)
		return Fetched{}, start, err
	}
	if err := ctx.Err(); err != nil {
		// Out of time before the call: it would fail unsent, and must not
		// count against the budget.
		e.mu.Unlock()
		return Fetched{}, start, &FetchError{Endpoint: a.Endpoint.Path(), Err: err}
	}
	e.calls++
	e.fetches++
	e.lastCall = start
	e.mu.Unlock()
	began := time.Now() // the wall clock: latency, not token time
	var got Fetched
	var err error
	switch {
	case a.Endpoint.Ticket():
		got, err = m.fetchTicket(ctx, a)
	case a.Endpoint == ComponentToken:
		got, err = m.fetchComponentToken(ctx, e, a, vt)
	case a.Endpoint == AuthorizerToken:
		got, err = m.fetchAuthorizerToken(ctx, a, rec)
	default:
		got, err = m.opts.Fetcher.Fetch(ctx, a, force)
	}
	m.opts.Observer.EndpointCall(a, callResult(err), time.Since(began))
	return got, start, err
}

// fetchTicket asks a ticket endpoint for a's ticket with the parent
// account's token. A token the endpoint rejects (40001, 40014, 42001) is
// reported as any rejected token is, and the call made once more with the
// token that replaces it.
func (m *Manager) fetchTicket(ctx context.Context, a *Account) (Fetched, error) {
	tf, ok := m.opts.Fetcher.(TicketFetcher)
	if !ok {
		return Fetched{}, &FetchError{Endpoint: a.Endpoint.Path(), Err: errors.New("the fetcher cannot fetch tickets")}
	}
	var got Fetched
	err := m.withParentToken(ctx, a.Parent, func(tok string) error {
		var err error
		got, err = tf.FetchTicket(ctx, a, tok)
		return err
	})
	return got, err
}

// withParentToken calls do with the token of parent (the account whose
// token fetches a ticket, or the component of an authorizer), and once more
// with its replacement if WeChat rejects it (40001, 40014, 42001).
func (m *Manager) withParentToken(ctx context.Context, parent *Handle, do func(token string) error) error {
	tok, err := parent.Token(ctx)
	if err != nil {
		return err
	}
	err = do(tok.Value)
	var fe *FetchError
	if !errors.As(err, &fe) || !wxapi.Refreshable(fe.Errcode) {
		return err
	}
	fresh, rerr := parent.Reject(ctx, tok, fe.Errcode)
	if rerr != nil || fresh == nil {
		return err
	}
	return do(fresh.Value)
}
