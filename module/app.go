package caddywechat

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/wxgate/caddy-wechat/module/internal/caddyopt"
	"github.com/wxgate/caddy-wechat/module/internal/clientauth"
	"github.com/wxgate/caddy-wechat/module/internal/msgcrypt"
	"github.com/wxgate/caddy-wechat/module/internal/token"
)

func init() {
	caddy.RegisterModule(App{})
}

// App is the `wechat` app: the WeChat accounts the gateway holds tokens
// for, and how it refreshes them. Handlers (`http.handlers.wechat`) name an
// account; the app keeps one token per account and refreshes it in the
// background. Tokens survive config reloads that keep the account.
type App struct {
	// Accounts by name. Handlers refer to an account by its name.
	Accounts map[string]*Account `json:"accounts,omitempty"`

	// RefreshCooldown: within this long of the account's last call to its
	// token endpoint, a token WeChat rejects counts as fresh (a fresh token
	// that fails is likely of the wrong kind, and replacing it would only
	// burn quota): a `token` or component token is not replaced and the
	// answer goes back to the client as it is; a `stable_token` or
	// `gettoken` token is checked with one normal call. The cooldown
	// doubles, up to 10 min, each time a token that a rejection brought is
	// rejected too.
	// Default: 30s. A negative value (`off` in the Caddyfile) turns it off:
	// then each new path a token is rejected on costs a token-endpoint
	// call, so turn it off only where every caller is trusted.
	RefreshCooldown caddy.Duration `json:"refresh_cooldown,omitempty"`

	// FetchTimeout bounds the token-endpoint calls of one refresh (a normal
	// call and, for stable_token, a force_refresh); storage calls have
	// their own 2 s (6 s for the lock) on top. At least 1s. Default: 10s.
	FetchTimeout caddy.Duration `json:"fetch_timeout,omitempty"`

	// Clients are the apps allowed to call the gateway, by name (see
	// Client). Sites in the handler's default clients mode require them.
	Clients map[string]*Client `json:"clients,omitempty"`

	// ClientTokenTTL is the lifetime of the gateway tokens handed to
	// clients, and the expires_in they are told; at least 1 minute, at
	// most 366 days. Keep it
	// over 30 minutes: some SDKs cache a token for its expires_in less 25
	// minutes (silenceper/wechat, which fails with a Redis cache under
	// that). Default: 2h, WeChat's own, which SDKs cache well.
	ClientTokenTTL caddy.Duration `json:"client_token_ttl,omitempty"`

	// MaxReplayMemory caps the request-body bytes that all calls together
	// hold in memory so that they can be replayed after a token refresh.
	// Past it, a call's body streams to WeChat and the call is not
	// replayed; a body's first 4 KiB (the whole of most JSON calls) are
	// held whatever it says. Default: 256 MiB (268435456).
	MaxReplayMemory int64 `json:"max_replay_memory,omitempty"`

	// TestClock lets the admin API move the gateway's clock
	// (POST /wechat/clock), so tests can run a day of token lifetimes in
	// seconds against the simulator. Never enable it in production.
	// Default: false.
	TestClock bool `json:"test_clock,omitempty"`

	tokens      *tokenService
	serviceKey  string
	handles     map[string]*token.Handle
	tickets     map[string]*token.Handle   // by "<account>/<ticket type>"
	siblings    map[string][]*token.Handle // accounts by appid
	codecs      map[string]msgcrypt.Codec  // third-party platforms' callback codecs, by account
	authorizers *authorizerSet             // third-party platforms' authorizers in use
	cleanedUp   bool                       // Cleanup ran (guarded by tokens.mu)
	auth        *clientauth.Authority
	storage     token.Store
	logger      *zap.Logger
}

// CaddyModule returns the Caddy module information.
func (App) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "wechat",
		New: func() caddy.Module { return new(App) },
	}
}

// tokenService is the token manager shared by successive configs (a reload
// provisions the new App before it cleans up the old one), kept in a
// UsagePool so that tokens survive reloads.
type tokenService struct {
	manager *token.Manager
	clock   *token.ManualClock // non-nil with test_clock
	ctx     context.Context
	cancel  context.CancelFunc
	start   sync.Once
	// pushes remembers third-party platform pushes across reloads, so that
	// a reload does not reopen the replay window.
	pushes pushLog

	// mu guards active, the config whose accounts, storage and logger the
	// manager uses, and previous, the one before it: a new config that
	// fails to start after the wechat app did (another app's listener)
	// gives them back to the one still running.
	mu               sync.Mutex
	active, previous *App
}

// activate makes a the config the manager works for.
func (s *tokenService) activate(a *App) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.active != a {
		s.previous, s.active = s.active, a
	}
	a.apply()
}

// deactivate gives the manager back to the previous config, if a is the
// active one and the previous is still running: a failed to start.
func (s *tokenService) deactivate(a *App) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.active == a && s.previous != nil && !s.previous.cleanedUp {
		s.active, s.previous = s.previous, nil
		s.active.apply()
	}
}

// whileActive runs f, with a kept the active config until f returns, if a
// is the active config.
func (s *tokenService) whileActive(a *App, f func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.active == a {
		f()
	}
}

// cleanedUp records that a is gone for good.
func (s *tokenService) cleanedUp(a *App) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a.cleanedUp = true
	if s.previous == a {
		s.previous = nil
	}
}

// run starts the background refresh loop, once.
func (s *tokenService) run() {
	s.start.Do(func() { go s.manager.Run(s.ctx, token.DefaultTick) })
}

// Destruct stops the background refresh loop when the last config using
// the service is gone.
func (s *tokenService) Destruct() error {
	s.cancel()
	return nil
}

// services holds the token services across config reloads: one, or one
// with the test clock.
var services = caddy.NewUsagePool()

// Provision sets the app up: it resolves secrets and registers accounts
// with the shared token service. It makes no network call.
func (a *App) Provision(ctx caddy.Context) error {
	a.logger = ctx.Logger()
	if a.RefreshCooldown < 0 {
		a.RefreshCooldown = caddyopt.Off // one spelling of off
	}
	if a.FetchTimeout < 0 || a.FetchTimeout > 0 && time.Duration(a.FetchTimeout) < time.Second {
		return fmt.Errorf("fetch_timeout must be at least 1s: WeChat's token calls take tens of milliseconds to seconds")
	}
	if a.ClientTokenTTL < 0 || a.ClientTokenTTL > 0 && time.Duration(a.ClientTokenTTL) < time.Minute {
		return fmt.Errorf("client_token_ttl must be at least 1m: a gateway token must outlive the calls made with it (keep it over 30m)")
	}
	if time.Duration(a.ClientTokenTTL) > clientauth.MaxTTL {
		// Checked with clients or without, so that adding one later does
		// not turn up an old mistake.
		return fmt.Errorf("client_token_ttl must be at most %v (366 days)", clientauth.MaxTTL)
	}
	if a.MaxReplayMemory < 0 {
		return fmt.Errorf("max_replay_memory must not be negative")
	}
	if a.MaxReplayMemory == 0 {
		a.MaxReplayMemory = DefaultMaxReplayMemory
	}
	// One service whatever the options (a reload that changes
	// refresh_cooldown or fetch_timeout hands them over in apply), but for
	// test_clock: a manager's clock cannot change under its tokens.
	a.serviceKey = fmt.Sprintf("tokens/test_clock=%t", a.TestClock)
	val, _, err := services.LoadOrNew(a.serviceKey, func() (caddy.Destructor, error) {
		opts := token.Options{
			RefreshCooldown: time.Duration(a.RefreshCooldown),
			FetchTimeout:    time.Duration(a.FetchTimeout),
			Logger:          a.logger,
			Observer:        metricsObserver{},
		}
		svc := new(tokenService)
		svc.ctx, svc.cancel = context.WithCancel(context.Background())
		if a.TestClock {
			svc.clock = &token.ManualClock{}
			opts.Clock = svc.clock
		}
		svc.manager = token.NewManager(opts)
		return svc, nil
	})
	if err != nil {
		return err
	}
	a.tokens = val.(*tokenService)
	a.authorizers = newAuthorizerSet()
	a.storage = ctx.Storage()
	repl := caddy.NewReplacer()
	a.handles = make(map[string]*token.Handle, len(a.Accounts))
	for _, name := range slices.Sorted(maps.Keys(a.Accounts)) {
		cfg := a.Accounts[name]
		if cfg == nil {
			return fmt.Errorf("account %q: empty definition", name)
		}
		acct, err := cfg.resolve(name, repl)
		if err != nil {
			return err
		}
		h, err := a.tokens.manager.Register(acct)
		if err != nil {
			return err
		}
		for other, oh := range a.handles {
			if oh.Key() == h.Key() {
				h.Release()
				return fmt.Errorf("account %q: the same credential as account %q (same kind, appid and token endpoint, or for WeCom the same corpid and secret); define it once", name, other)
			}
		}
		a.handles[name] = h
		if cfg.Kind == string(token.Component) {
			codec, err := cfg.callbackCodec(name, repl)
			if err != nil {
				return err
			}
			if a.codecs == nil {
				a.codecs = make(map[string]msgcrypt.Codec)
			}
			a.codecs[name] = codec
		}
		if a.siblings == nil {
			a.siblings = make(map[string][]*token.Handle)
		}
		appid := h.Account().AppID
		a.siblings[appid] = append(a.siblings[appid], h)
		if err := a.registerTickets(name, h); err != nil {
			return err
		}
	}
	if err := a.provisionClients(repl); err != nil {
		return err
	}
	// Last: the admin server may serve this config's /metrics while the
	// config loads, and stateCollector reads what the loop above built.
	if err := registerMetrics(ctx.GetMetricsRegistry(), stateCollector{a}); err != nil {
		return fmt.Errorf("registering metrics: %v", err)
	}
	return nil
}

// ticketTypes are the JS-SDK tickets of each kind of account.
var ticketTypes = map[token.Kind][]token.Endpoint{
	token.Official: {token.JSAPITicket, token.CardTicket},
	token.WeCom:    {token.CorpTicket, token.AgentTicket},
}

// registerTickets registers the tickets of account name, whose token
// handle is h. A ticket is fetched only once asked for.
func (a *App) registerTickets(name string, h *token.Handle) error {
	for _, ep := range ticketTypes[h.Account().Kind] {
		th, err := a.tokens.manager.Register(token.Account{Name: name + "/" + string(ep), Endpoint: ep, Parent: h})
		if err != nil {
			return err
		}
		if a.tickets == nil {
			a.tickets = make(map[string]*token.Handle)
		}
		a.tickets[name+"/"+string(ep)] = th
	}
	return nil
}

// Start applies this config to the token service (account settings, its
// storage and logger; a config that fails to load never gets here) and runs
// the background refresh loop, once per token service.
func (a *App) Start() error {
	a.tokens.activate(a)
	a.adoptAuthorizers()
	a.tokens.run()
	a.logger.Info("wechat gateway started", zap.Strings("accounts", slices.Sorted(maps.Keys(a.Accounts))))
	return nil
}

// apply gives the manager this config's accounts, tickets, storage and
// logger.
func (a *App) apply() {
	a.eachHandle((*token.Handle).Activate, nil)
	// Tokens are shared through the config's storage (file_system by
	// default): a restart reuses them, and a cluster on one storage holds
	// one token per account.
	a.tokens.manager.SetStore(a.storage)
	a.tokens.manager.SetLogger(a.logger)
	a.tokens.manager.SetTimings(time.Duration(a.RefreshCooldown), time.Duration(a.FetchTimeout))
}

// eachHandle runs f on every handle the config holds: its accounts', their
// tickets', and the authorizers' and authorizer tickets' it registered,
// these under the authorizer set's lock, which then also runs locked (if
// not nil), before any other registration can come.
func (a *App) eachHandle(f func(*token.Handle), locked func(*authorizerSet)) {
	for _, h := range a.handles {
		f(h)
	}
	for _, h := range a.tickets {
		f(h)
	}
	set := a.authorizers
	if set == nil {
		return
	}
	set.mu.Lock()
	defer set.mu.Unlock()
	for _, h := range set.handles {
		f(h)
	}
	for _, h := range set.tickets {
		f(h)
	}
	if locked != nil {
		locked(set)
	}
}

// Stop keeps the refresh loop, which outlives a reload and ends with the
// last config (see Cleanup). If this config is stopped because it failed
// to start (another app of it did not), the config still running gets the
// manager back: its accounts' base URLs, secrets, storage and logger.
func (a *App) Stop() error {
	a.tokens.deactivate(a)
	return nil
}

// Cleanup releases the accounts and the token service.
func (a *App) Cleanup() error {
	// The map stays: requests of this config still in flight after a
	// reload go on using its handles, which stay valid after Release.
	a.eachHandle((*token.Handle).Release, func(set *authorizerSet) { set.cleanedUp = true })
	if a.auth != nil {
		a.auth.Close()
	}
	if a.tokens != nil {
		// A config that started and is cleaned up without a Stop (Caddy
		// does so when setting up after the apps' Start fails) gives the
		// manager back here.
		a.tokens.deactivate(a)
		a.tokens.cleanedUp(a)
		_, err := services.Delete(a.serviceKey)
		return err
	}
	return nil
}

// authorizer returns the token handle of authorizer appid of the platform
// account comp, registering it on first use, if the platform holds its
// refresh token; nil if not. Authorizers are registered only when used, so
// a platform with thousands costs in proportion to the ones in use.
func (a *App) authorizer(ctx context.Context, comp *token.Handle, appid string) *token.Handle {
	if !token.ValidAppID(appid) {
		return nil
	}
	set := a.authorizers
	key := authorizerKey{comp.Account().Name, appid}
	set.mu.Lock()
	h := set.handles[key]
	set.mu.Unlock()
	if h != nil {
		return h
	}
	if !comp.Authorized(ctx, appid) {
		return nil
	}
	return a.registerAuthorizer(comp, appid)
}

// registerAuthorizer registers authorizer appid of the platform account
// comp in this config. If this config is the one the manager works for,
// its platform (its base URL, its component handle) becomes the
// authorizer's, also when an older config registered it; a config being
// replaced, still serving its last requests, does not take it back (apply
// does, if the new config fails to start). It returns the config's handle;
// nil if appid cannot be registered.
func (a *App) registerAuthorizer(comp *token.Handle, appid string) *token.Handle {
	h, err := comp.Authorizer(appid)
	if err != nil {
		a.logger.Warn("authorizer not registered", zap.String("account", comp.Account().Name), zap.Error(err))
		return nil
	}
	set, key := a.authorizers, authorizerKey{comp.Account().Name, appid}
	set.mu.Lock()
	use, kept := keepHandle(set, set.handles, key, h)
	if kept {
		set.addSameAppID(h)
	}
	set.mu.Unlock()
	return a.settle(use, h, kept)
}

// settle finishes a registration keepHandle decided on: h, if not kept, is
// released, and if kept, activated when this config is the one the
// manager works for. It returns the handle to use.
func (a *App) settle(use, h *token.Handle, kept bool) *token.Handle {
	if !kept {
		h.Release()
		return use
	}
	a.tokens.whileActive(a, h.Activate)
	return h
}

// keepHandle records h under key in m, a map of set (whose mu is held),
// unless set's config is gone (h serves the request at hand, and is not
// kept) or m holds a handle there already. It returns the handle to use,
// and whether h was kept: if not, the caller releases h once mu is free.
func keepHandle[K comparable](set *authorizerSet, m map[K]*token.Handle, key K, h *token.Handle) (*token.Handle, bool) {
	if set.cleanedUp {
		return h, false
	}
	if kept := m[key]; kept != nil {
		return kept, false
	}
	m[key] = h
	return h, true
}

// authorizerTicket returns the handle of the ticket of type ep of auth,
// authorizer appid of platform account comp, registering it on first use
// (a ticket is per appid: an account of the same appid configured directly
// lends its own), so that the tickets of a platform's authorizers are
// cached as an account's are; nil if it cannot be registered.
func (a *App) authorizerTicket(comp, auth *token.Handle, ep token.Endpoint) *token.Handle {
	// An account of the same appid configured directly has the ticket
	// already, fetched with its own token: registering the authorizer's
	// under the same key would make the authorizer its parent, and its
	// withdrawal would fail the account's ticket.
	for _, h := range a.siblings[auth.Account().AppID] { // by name
		if acct := h.Account(); acct.Kind == token.Official {
			if th := a.ticket(acct.Name, ep); th != nil {
				return th
			}
		}
	}
	set := a.authorizers
	key := authorizerTicketKey{authorizerKey{comp.Account().Name, auth.Account().AppID}, ep}
	set.mu.Lock()
	th := set.tickets[key]
	set.mu.Unlock()
	if th != nil {
		return th
	}
	th, err := a.tokens.manager.Register(token.Account{Name: auth.Account().Name + "/" + string(ep), Endpoint: ep, Parent: auth})
	if err != nil {
		a.logger.Warn("authorizer ticket not registered", zap.String("account", comp.Account().Name), zap.Error(err))
		return nil
	}
	set.mu.Lock()
	if set.tickets == nil {
		set.tickets = make(map[authorizerTicketKey]*token.Handle)
	}
	use, kept := keepHandle(set, set.tickets, key, th)
	set.mu.Unlock()
	return a.settle(use, th, kept)
}

// adoptAuthorizers registers in this config, as it starts, the authorizers
// of its platforms that hold a token (registered by the config it
// replaces, which has not let go of them yet). Without it they would be
// registered again only when next called: until then an answer on a site
// of an account with the same appid would not be masked for the
// authorizer's token, and the authorizer's token and state would be
// dropped with the old config.
func (a *App) adoptAuthorizers() {
	for _, comp := range a.handles {
		if comp.Account().Kind != token.Component {
			continue
		}
		for _, appid := range comp.AuthorizersInUse() {
			a.registerAuthorizer(comp, appid)
		}
	}
}

// authorizerSet holds the authorizer handles a config registered.
type authorizerSet struct {
	mu        sync.Mutex
	handles   map[authorizerKey]*token.Handle
	tickets   map[authorizerTicketKey]*token.Handle // the authorizers' JS-SDK tickets in use
	cleanedUp bool                                  // Cleanup released them: keep no more
	// byAppID holds the same handles by the authorizer's appid ([]*token.
	// Handle, replaced whole under mu), read without a lock on every call
	// (confidential); none says that there are none, without a lookup.
	byAppID sync.Map
	none    atomic.Bool
}

// authorizerKey names an authorizer of a platform: the platform account's
// name and the authorizer's appid.
type authorizerKey struct{ account, appid string }

// authorizerTicketKey names a ticket type of an authorizer.
type authorizerTicketKey struct {
	authorizerKey
	ep token.Endpoint
}

func newAuthorizerSet() *authorizerSet {
	s := &authorizerSet{handles: make(map[authorizerKey]*token.Handle)}
	s.none.Store(true)
	return s
}

// addSameAppID files h under its appid; set.mu is held.
func (set *authorizerSet) addSameAppID(h *token.Handle) {
	appid := h.Account().AppID
	var list []*token.Handle
	if v, ok := set.byAppID.Load(appid); ok {
		list = v.([]*token.Handle)
	}
	set.byAppID.Store(appid, append(slices.Clip(list), h))
	set.none.Store(false)
}

// sameAppID returns the authorizer handles registered for appid (of any
// platform of the config).
func (set *authorizerSet) sameAppID(appid string) []*token.Handle {
	if set == nil || set.none.Load() {
		return nil
	}
	v, _ := set.byAppID.Load(appid)
	list, _ := v.([]*token.Handle)
	return list
}

// account returns the token handle of the named account, or an error that
// lists the accounts there are.
func (a *App) account(name string) (*token.Handle, error) {
	if h, ok := a.handles[name]; ok {
		return h, nil
	}
	names := slices.Sorted(maps.Keys(a.Accounts))
	if len(names) == 0 {
		return nil, fmt.Errorf("account %q is not defined: no accounts are configured in the global `wechat` option", name)
	}
	return nil, fmt.Errorf("account %q is not defined in the global `wechat` option (accounts: %s)", name, strings.Join(names, ", "))
}

// maxReplayMemory is the cap on request bytes held for replay.
func (a *App) maxReplayMemory() int64 {
	if a.MaxReplayMemory <= 0 {
		return DefaultMaxReplayMemory
	}
	return a.MaxReplayMemory
}

// ticket returns the handle of an account's ticket of type ep, or nil.
func (a *App) ticket(account string, ep token.Endpoint) *token.Handle {
	return a.tickets[account+"/"+string(ep)]
}

// confidential returns what answers to a call of account must not show:
// its secret and recent tokens, and those of every other account of the
// same appid (a stable_token and a /cgi-bin/token account of one official
// account; an account that is also a platform's authorizer, and that
// authorizer), whose values a WeChat echo could carry too.
func (a *App) confidential(account *token.Handle) []string {
	appid := account.Account().AppID
	sibs, auths := a.siblings[appid], a.authorizers.sameAppID(appid)
	if len(sibs)+len(auths) < 2 {
		return account.Confidential()
	}
	all := slices.Clip(account.Confidential())
	for _, list := range [2][]*token.Handle{sibs, auths} {
		for _, h := range list {
			if h != account {
				all = append(all, h.Confidential()...)
			}
		}
	}
	return all
}

// resolveSecret reads the named account's secret placeholder again (an
// operator may have fixed the file or variable behind it).
func (a *App) resolveSecret(name string) (string, error) {
	cfg := a.Accounts[name]
	if cfg == nil {
		return "", fmt.Errorf("account %q is not configured", name)
	}
	secret, err := caddy.NewReplacer().ReplaceOrErr(cfg.Secret, true, true)
	if err != nil {
		return "", fmt.Errorf("account %q: secret %s: %v", name, cfg.Secret, err)
	}
	return secret, nil
}

// agentID is the configured agentid of a WeCom account, or "".
func (a *App) agentID(account string) string {
	if cfg := a.Accounts[account]; cfg != nil {
		return cfg.AgentID
	}
	return ""
}

// clients returns the authority over the configured clients, or nil when
// there are none.
func (a *App) clients() *clientauth.Authority { return a.auth }

// now is the gateway's time: the wall clock, or the test clock.
func (a *App) now() time.Time { return a.tokens.manager.Clock().Now() }

// statuses returns the state of every account's token (never a token).
func (a *App) statuses() []token.Status { return a.tokens.manager.Statuses() }

// advanceClock moves the test clock by d and runs the refreshes that come
// due. It reports false, doing nothing, without the test_clock option.
func (a *App) advanceClock(ctx context.Context, d time.Duration) bool {
	if a.tokens.clock == nil {
		return false
	}
	a.tokens.clock.Advance(d)
	a.tokens.manager.RefreshDue(ctx)
	return true
}

// Interface guards
var (
	_ caddy.App          = (*App)(nil)
	_ caddy.Provisioner  = (*App)(nil)
	_ caddy.CleanerUpper = (*App)(nil)
	_ caddy.Destructor   = (*tokenService)(nil)
)
