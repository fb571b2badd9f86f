package simulator

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wxgate/caddy-wechat/module/internal/msgcrypt"
)

// Lifetimes of the open platform's codes, as WeChat announces them.
const (
	preAuthCodeLifetime = 600 * time.Second // api_create_preauthcode expires_in
	authCodeLifetime    = time.Hour         // AuthorizationCodeExpiredTime - CreateTime
	// pushRetry is how soon a ticket push that was not answered "success"
	// is retried (never later than the interval), so that a callback that
	// starts after the simulator gets its first ticket soon.
	pushRetry = time.Minute
	// pushTimeout is how long a push waits for the callback's answer, as
	// WeChat does (5 s).
	pushTimeout = 5 * time.Second
)

// Component is one simulated third-party platform (第三方平台).
type Component struct {
	// AppID is the component_appid. Required; letters, digits, '_' or '-';
	// it must not also be an Account.
	AppID string
	// Secret is the component_appsecret. Required. Never exposed in
	// counters, errors or answers.
	Secret string
	// Token is the message verification token of the platform (消息校验
	// Token), which signs pushes (msg_signature): 3 to 32 letters or
	// digits, as WeChat requires. Required.
	Token string
	// EncodingAESKey is the platform's 43-character message encryption key.
	// Required.
	EncodingAESKey string
	// CallbackURL is the platform's authorization event URL (授权事件接收
	// URL), where the simulator POSTs component_verify_ticket and
	// authorization events; it must answer "success". Optional: without it
	// tickets are still issued (PushComponentTicket returns them) but
	// nothing is delivered.
	CallbackURL string
}

// Authorizer is an official account or mini program that can authorise a
// Component. Its authorizer access tokens work on the business paths as the
// access tokens of its appid: when an Account has the same appid they share
// its menu, media and quotas.
type Authorizer struct {
	// ComponentAppID is the Component it authorises. Required.
	ComponentAppID string
	// AppID is the authorizer_appid. Required; not a WeCom corpid nor a
	// component_appid.
	AppID string
	// RefreshToken, when set, makes the authorizer start authorised with
	// this authorizer_refresh_token, as if it had authorised the platform
	// before the simulator started (so a gateway can be configured with a
	// fixed refresh token). Empty: it starts unauthorised, and the control
	// API or Authorize authorises it. A Reconfigure that changes it sets
	// the new value as the current refresh token.
	RefreshToken string
}

// normalizeOpen applies the open-platform defaults and validates
// Components and Authorizers (Accounts are already checked).
func (c *Config) normalizeOpen() error {
	c.ComponentTicketInterval = orDefault(c.ComponentTicketInterval, DefaultComponentTicketInterval)
	c.AuthorizerRefreshGrace = orDefault(c.AuthorizerRefreshGrace, DefaultAuthorizerRefreshGrace)
	switch {
	case c.ComponentTicketTTL < 0:
		return fmt.Errorf("simulator: Config.ComponentTicketTTL: must not be negative, got %v", c.ComponentTicketTTL)
	case c.ComponentTicketTTL == 0:
		c.ComponentTicketTTL = DefaultComponentTicketTTL
	}
	c.Components = append([]Component(nil), c.Components...)
	c.Authorizers = append([]Authorizer(nil), c.Authorizers...)

	accountIDs := make(map[string]string, len(c.Accounts))
	for _, a := range c.Accounts {
		accountIDs[a.AppID] = a.Kind
	}
	comps := make(map[string]int, len(c.Components))
	for i, comp := range c.Components {
		field := func(name string) string { return fmt.Sprintf("simulator: Config.Components[%d].%s", i, name) }
		switch {
		case comp.AppID == "":
			return fmt.Errorf("%s: empty", field("AppID"))
		case !isPlainID(comp.AppID):
			return fmt.Errorf("%s: %q must be letters, digits, '_' or '-'", field("AppID"), comp.AppID)
		case accountIDs[comp.AppID] != "":
			return fmt.Errorf("%s: %q is also an account", field("AppID"), comp.AppID)
		case comp.Secret == "":
			return fmt.Errorf("%s: empty (component %s)", field("Secret"), comp.AppID)
		case strings.ContainsAny(comp.Secret, " \t\r\n"):
			return fmt.Errorf("%s: contains white space (component %s)", field("Secret"), comp.AppID)
		case !isMessageToken(comp.Token):
			return fmt.Errorf("%s: must be 3 to 32 letters or digits (component %s)", field("Token"), comp.AppID)
		case msgcrypt.CheckKey(comp.EncodingAESKey) != nil:
			return fmt.Errorf("%s: must be 43 base64 characters (component %s)", field("EncodingAESKey"), comp.AppID)
		}
		if j, dup := comps[comp.AppID]; dup {
			return fmt.Errorf("%s: %q is also Components[%d]", field("AppID"), comp.AppID, j)
		}
		comps[comp.AppID] = i
		if comp.CallbackURL != "" {
			u, err := url.Parse(comp.CallbackURL)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Fragment != "" {
				return fmt.Errorf("%s: %q is not an absolute http(s) URL (component %s)", field("CallbackURL"), comp.CallbackURL, comp.AppID)
			}
		}
	}
	auths := make(map[[2]string]int, len(c.Authorizers))
	for i, a := range c.Authorizers {
		field := func(name string) string { return fmt.Sprintf("simulator: Config.Authorizers[%d].%s", i, name) }
		_, known := comps[a.ComponentAppID]
		_, isComp := comps[a.AppID]
		switch {
		case a.ComponentAppID == "":
			return fmt.Errorf("%s: empty", field("ComponentAppID"))
		case !known:
			return fmt.Errorf("%s: %q is not a Components[].AppID", field("ComponentAppID"), a.ComponentAppID)
		case a.AppID == "":
			return fmt.Errorf("%s: empty", field("AppID"))
		case !isPlainID(a.AppID):
			return fmt.Errorf("%s: %q must be letters, digits, '_' or '-'", field("AppID"), a.AppID)
		case accountIDs[a.AppID] == KindWeCom:
			return fmt.Errorf("%s: %q is a WeCom corpid; authorizers are official accounts or mini programs", field("AppID"), a.AppID)
		case isComp:
			return fmt.Errorf("%s: %q is a component_appid", field("AppID"), a.AppID)
		case len(a.RefreshToken) > 512 || strings.ContainsAny(a.RefreshToken, " \t\r\n"):
			return fmt.Errorf("%s: must be at most 512 characters without white space (authorizer %s)", field("RefreshToken"), a.AppID)
		}
		key := [2]string{a.ComponentAppID, a.AppID}
		if j, dup := auths[key]; dup {
			return fmt.Errorf("%s: %q already authorises %s in Authorizers[%d]", field("AppID"), a.AppID, a.ComponentAppID, j)
		}
		auths[key] = i
	}
	return nil
}

// isMessageToken reports whether s is a valid message token: 3 to 32
// letters or digits.
func isMessageToken(s string) bool {
	if len(s) < 3 || len(s) > 32 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// openSettings is the immutable open-platform part of settings.
type openSettings struct {
	comps  []*compEntry          // in configuration order
	byComp map[string]*compEntry // by component_appid
	auths  map[[2]string]*authEntry
	byApp  map[string][]*authEntry // authorizers by authorizer appid
	hidden map[string]*account     // authorizer accounts that are not Accounts, by appid
}

// compEntry is a configured Component and its state.
type compEntry struct {
	cfg   Component
	st    *componentState
	auths []*authEntry // in configuration order
}

// authEntry is a configured Authorizer, its state and the account its
// tokens act for.
type authEntry struct {
	cfg  Authorizer
	st   *authorizerState
	comp *compEntry
	acct *account
}

// componentState is the live state of a Component, kept over a
// Reconfigure that keeps its appid and secret.
type componentState struct {
	appid   string
	removed atomic.Bool
	counts  componentCounts

	mu       sync.Mutex
	tickets  map[string]int64 // component_verify_ticket -> pushed at (unix ns)
	nextPush int64            // when the next ticket is due (unix ns); 0: at once
	lastPush int64            // when the last ticket was issued (unix ns)
	tokenCur *token           // latest component_access_token
	tokenDay dayCounter       // successful api_component_token calls today
	clears   monthlyClears    // component clear_quota calls this month
	preAuth  map[string]int64 // pre_auth_code -> expiry (unix ns)
	codes    map[string]authCode
}

// authCode is an authorization_code waiting for api_query_auth.
type authCode struct {
	auth    *authorizerState
	expires int64
}

// authorizerState is the live state of an Authorizer.
type authorizerState struct {
	appid   string
	removed atomic.Bool
	counts  authorizerCounts

	mu          sync.Mutex
	authorized  bool
	refreshCur  string
	refreshPrev string // the rotated-out refresh token, valid until prevUntil
	prevUntil   int64
	tokenCur    *token // latest authorizer access token
	seeded      string // the Authorizer.RefreshToken last applied
}

type componentCounts struct {
	token              atomic.Int64
	preAuth            atomic.Int64
	ticketPushes       atomic.Int64
	ticketPushFailures atomic.Int64
	eventPushes        atomic.Int64
	eventPushFailures  atomic.Int64
}

func (c *componentCounts) reset() {
	for _, n := range []*atomic.Int64{&c.token, &c.preAuth, &c.ticketPushes, &c.ticketPushFailures, &c.eventPushes, &c.eventPushFailures} {
		n.Store(0)
	}
}

type authorizerCounts struct {
	queryAuth       atomic.Int64
	token           atomic.Int64
	refreshRejected atomic.Int64
}

func (c *authorizerCounts) reset() {
	c.queryAuth.Store(0)
	c.token.Store(0)
	c.refreshRejected.Store(0)
}

// buildOpenSettings builds the open-platform settings of st (whose accounts
// are built), carrying the state of previous over: a component keeps its
// state when its appid and secret did not change, an authorizer when its
// component kept its state, an authorizer account that is not an Account
// when it is still needed. What is not carried over is marked removed
// (reconfigureOpen revokes its tokens).
func buildOpenSettings(cfg Config, st *settings, previous *settings, routes int) *openSettings {
	var prev *openSettings
	if previous != nil {
		prev = previous.open
	}
	if len(cfg.Components) == 0 {
		if prev != nil {
			prev.markRemoved(nil)
		}
		return nil
	}
	o := &openSettings{
		byComp: make(map[string]*compEntry, len(cfg.Components)),
		auths:  make(map[[2]string]*authEntry, len(cfg.Authorizers)),
		byApp:  make(map[string][]*authEntry),
		hidden: make(map[string]*account),
	}
	for _, comp := range cfg.Components {
		e := &compEntry{cfg: comp}
		if prev != nil {
			if old := prev.byComp[comp.AppID]; old != nil && old.cfg.Secret == comp.Secret {
				e.st = old.st
			}
		}
		if e.st == nil {
			e.st = &componentState{appid: comp.AppID}
		}
		o.comps = append(o.comps, e)
		o.byComp[comp.AppID] = e
	}
	for _, a := range cfg.Authorizers {
		comp := o.byComp[a.ComponentAppID]
		e := &authEntry{cfg: a, comp: comp}
		key := [2]string{a.ComponentAppID, a.AppID}
		if prev != nil {
			if old := prev.auths[key]; old != nil && old.comp.st == comp.st {
				e.st = old.st
			}
		}
		if e.st == nil {
			e.st = &authorizerState{appid: a.AppID}
		}
		e.st.mu.Lock()
		if a.RefreshToken != "" && a.RefreshToken != e.st.seeded {
			e.st.authorized, e.st.refreshCur, e.st.refreshPrev, e.st.prevUntil = true, a.RefreshToken, "", 0
			e.st.seeded = a.RefreshToken
		}
		e.st.mu.Unlock()
		e.acct = st.byAppID[a.AppID]
		if e.acct == nil {
			e.acct = o.hidden[a.AppID]
		}
		if e.acct == nil && prev != nil {
			if old := prev.hidden[a.AppID]; old != nil {
				e.acct = old
				o.hidden[a.AppID] = old
			}
		}
		if e.acct == nil {
			e.acct = newAccount(Account{Kind: KindOfficial, AppID: a.AppID}, routes)
			e.acct.tokenQuota.Store(-1)
			o.hidden[a.AppID] = e.acct
		}
		comp.auths = append(comp.auths, e)
		o.auths[key] = e
		o.byApp[a.AppID] = append(o.byApp[a.AppID], e)
	}
	if prev != nil {
		prev.markRemoved(o)
	}
	return o
}

// markRemoved marks the components, authorizers and hidden accounts of o
// that next (nil: nothing) does not keep.
func (o *openSettings) markRemoved(next *openSettings) {
	kept := func(st *componentState) bool {
		if next == nil {
			return false
		}
		e := next.byComp[st.appid]
		return e != nil && e.st == st
	}
	for _, e := range o.comps {
		if !kept(e.st) {
			e.st.removed.Store(true)
		}
	}
	for key, e := range o.auths {
		if next == nil || next.auths[key] == nil || next.auths[key].st != e.st {
			e.st.removed.Store(true)
		}
	}
	for id, a := range o.hidden {
		if next == nil || next.hidden[id] != a {
			a.removed.Store(true)
		}
	}
}

// isComponent reports whether appid is a configured component_appid.
func (st *settings) isComponent(appid string) bool {
	return st.open != nil && st.open.byComp[appid] != nil
}

// hiddenAccount returns the account of an authorizer that is not an
// Account, or nil.
func (st *settings) hiddenAccount(appid string) *account {
	if st.open == nil {
		return nil
	}
	return st.open.hidden[appid]
}

// openRuntime is the Simulator's open-platform machinery: component tokens
// (kept apart from access tokens, so they never work as one), the ticket
// timer and the HTTP client of the pushes.
type openRuntime struct {
	tokens          *tokenIndex
	tokenRejections atomic.Int64
	client          *http.Client

	timerMu sync.Mutex
	timer   *time.Timer
	closed  bool
}

// ComponentCounts are the open-platform counters of one component.
type ComponentCounts struct {
	// ComponentToken counts successful api_component_token answers (each a
	// new component_access_token).
	ComponentToken int64 `json:"component_token"`
	// PreAuthCodes counts pre_auth_codes issued.
	PreAuthCodes int64 `json:"pre_auth_codes"`
	// TicketPushes counts component_verify_ticket pushes the callback
	// answered "success"; TicketPushFailures the others (no callback URL,
	// unreachable, another answer).
	TicketPushes       int64 `json:"ticket_pushes"`
	TicketPushFailures int64 `json:"ticket_push_failures"`
	// EventPushes and EventPushFailures count the authorized,
	// updateauthorized and unauthorized pushes likewise.
	EventPushes       int64 `json:"event_pushes"`
	EventPushFailures int64 `json:"event_push_failures"`
	// Authorizers holds the counters of the component's authorizers, keyed
	// by authorizer appid.
	Authorizers map[string]AuthorizerCounts `json:"authorizers"`
}

// AuthorizerCounts are the counters of one authorizer of a component.
type AuthorizerCounts struct {
	// Authorized tells whether the authorizer currently authorises the
	// component.
	Authorized bool `json:"authorized"`
	// QueryAuth counts successful api_query_auth answers; AuthorizerToken
	// successful api_authorizer_token answers. Each issued a new access
	// token and refresh token.
	QueryAuth       int64 `json:"query_auth"`
	AuthorizerToken int64 `json:"authorizer_token"`
	// RefreshRejected counts api_authorizer_token calls answered 61023.
	RefreshRejected int64 `json:"refresh_rejected"`
}

// openCounters adds the open-platform counters to out.
func (s *Simulator) openCounters(set *settings, out *Counters) {
	out.ComponentTokenRejections = s.open.tokenRejections.Load()
	if set.open == nil {
		return
	}
	out.Components = make(map[string]ComponentCounts, len(set.open.comps))
	for _, e := range set.open.comps {
		n := &e.st.counts
		cc := ComponentCounts{
			ComponentToken:     n.token.Load(),
			PreAuthCodes:       n.preAuth.Load(),
			TicketPushes:       n.ticketPushes.Load(),
			TicketPushFailures: n.ticketPushFailures.Load(),
			EventPushes:        n.eventPushes.Load(),
			EventPushFailures:  n.eventPushFailures.Load(),
			Authorizers:        make(map[string]AuthorizerCounts, len(e.auths)),
		}
		for _, a := range e.auths {
			a.st.mu.Lock()
			authorized := a.st.authorized
			a.st.mu.Unlock()
			cc.Authorizers[a.cfg.AppID] = AuthorizerCounts{
				Authorized:      authorized,
				QueryAuth:       a.st.counts.queryAuth.Load(),
				AuthorizerToken: a.st.counts.token.Load(),
				RefreshRejected: a.st.counts.refreshRejected.Load(),
			}
		}
		out.Components[e.cfg.AppID] = cc
	}
}

func (s *Simulator) resetOpenCounters() {
	s.open.tokenRejections.Store(0)
	set := s.current.Load()
	if set.open == nil {
		return
	}
	for _, e := range set.open.comps {
		e.st.counts.reset()
		for _, a := range e.auths {
			a.st.counts.reset()
		}
	}
}

// invalidateComponentTokens revokes the valid component tokens of the
// component id names; ok is false when id is not a component.
func (s *Simulator) invalidateComponentTokens(set *settings, id string) (n int, ok bool) {
	if set.open == nil || set.open.byComp[id] == nil {
		return 0, false
	}
	st := set.open.byComp[id].st
	return s.open.tokens.revoke(s.clock.Now().UnixNano(), func(t *token) bool { return t.comp == st }), true
}
