package token

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"
	"slices"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/wxgate/caddy-wechat/module/internal/wxapi"
)

// A third-party platform acts for the businesses that authorised it. Each
// of them (an authorizer) has an authorizer_access_token, which the
// platform mints from api_authorizer_token with its component token and
// the authorizer's authorizer_refresh_token. The refresh token comes once,
// from api_query_auth when the business authorises the platform, and is
// renewed by api_authorizer_token; losing it means asking the business to
// authorise again. So it lives in the Store, next to the component's
// tokens, and a new one is stored before the call that brought it returns.
//
// An authorizer's token is an account of its own (Endpoint
// AuthorizerToken, Parent the component), registered when first used; its
// token follows the lifecycle of every other, and is refreshed in the
// background only while in use.

// AuthorizerFetcher calls the open platform's endpoints for authorizers
// with the component's token. The Manager's Fetcher implements it to serve
// component accounts' authorizers.
type AuthorizerFetcher interface {
	// FetchAuthorizerToken calls api_authorizer_token for authorizer a
	// with its refresh token; it returns the new token and the refresh
	// token that now stands ("" when the answer names none).
	FetchAuthorizerToken(ctx context.Context, a *Account, componentToken, refreshToken string) (Fetched, string, error)
	// QueryAuth calls api_query_auth for component comp: it exchanges an
	// authorization code for the authorizer's appid, its refresh token and
	// the API families it granted.
	QueryAuth(ctx context.Context, comp *Account, componentToken, code string) (auth Authorization, refreshToken string, err error)
}

// Authorization is what api_query_auth tells of an authorizer, but its
// tokens.
type Authorization struct {
	// AppID is the authorizer_appid.
	AppID string
	// FuncInfo is the func_info array, as WeChat sent it (the API families
	// the authorizer granted), or nil.
	FuncInfo json.RawMessage
}

// authorizerRecord is what the Store keeps of an authorizer: its refresh
// token, or that it withdrew (Revoked, no refresh token).
type authorizerRecord struct {
	RefreshToken string    `json:"refresh_token,omitempty"`
	Revoked      bool      `json:"revoked,omitempty"`
	Updated      time.Time `json:"updated"`
	// Authorized is when WeChat issued the push of the authorisation the
	// refresh token comes from (its CreateTime, WeChat's clock), also when
	// the platform's page exchanged the code first, or when the gateway
	// exchanged a code the platform's call brought (its clock), until the
	// push dates it: a withdrawal issued before it is older news.
	Authorized time.Time `json:"authorized,omitzero"`
}

// errNotAuthorized says an authorizer has no refresh token here: it never
// authorised the platform, or withdrew.
func errNotAuthorized(a *Account) error {
	return &FetchError{Endpoint: AuthorizerToken.Path(), Err: fmt.Errorf(
		"authorizer %s has not authorised the platform (no authorizer_refresh_token is held; it withdrew or was never authorised)", a.AppID)}
}

// ValidAppID accepts what an appid looks like: 1 to 64 letters, digits,
// '_' or '-'. An authorizer's appid becomes part of a storage key, so no
// other appid is taken.
func ValidAppID(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// authorizerKey is the Key of authorizer appid's account under component
// compAppID.
func authorizerKey(compAppID, appid string) string { return "authorizer/" + compAppID + "/" + appid }

// authorizerStoreKey is where the Store keeps authorizer appid's record.
func authorizerStoreKey(comp *Account, appid string) string {
	return storePrefix + comp.Key() + "/authorizers/" + appid + ".json"
}

// Authorize exchanges an authorization code (from an `authorized` or
// `updateauthorized` push, or the platform's authorization page) for the
// authorizer's refresh token, which it keeps, and returns the authorizer's
// appid and what it granted. issued is when WeChat issued the push that
// brought the code (zero if none did). It is called on a component
// account's Handle.
func (h *Handle) Authorize(ctx context.Context, code string, issued time.Time) (Authorization, error) {
	return h.authorize(ctx, code, issued, issued)
}

// AuthorizeByPage is Authorize for a code the platform's own call brought
// (api_query_auth, after its authorization page), at now: a code exchanged
// here for the first time dates the authorisation now; one exchanged
// before, sent again, changes no date (its push dates it).
func (h *Handle) AuthorizeByPage(ctx context.Context, code string, now time.Time) (Authorization, error) {
	return h.authorize(ctx, code, time.Time{}, now)
}

// authorize exchanges code: issued dates an exchange remembered from
// before, exchanged a new one.
func (h *Handle) authorize(ctx context.Context, code string, issued, exchanged time.Time) (Authorization, error) {
	m, comp := h.m, h.Account()
	if comp.Kind != Component || comp.Endpoint != ComponentToken {
		return Authorization{}, errors.New("account " + comp.Name + " is not a third-party platform")
	}
	af, ok := m.opts.Fetcher.(AuthorizerFetcher)
	if !ok {
		return Authorization{}, errors.New("the fetcher cannot call the open platform's authorizer endpoints")
	}
	// The same code comes twice when the platform's authorization page
	// redirects with it and WeChat pushes it too: the second exchange is
	// answered from the first, wherever in the cluster it happened.
	if auth, ok := m.exchanged(ctx, h.e, comp, code); ok {
		// The push of a code the platform's page already exchanged dates
		// the authorisation, if it is later: a withdrawal issued before it
		// is older news.
		if !issued.IsZero() && ValidAppID(auth.AppID) {
			m.underAuthorizerLock(ctx, h, auth.AppID, func(ctx context.Context) {
				if cur := m.refreshToken(ctx, h.e, comp, auth.AppID); cur != nil && cur.RefreshToken != "" && issued.After(cur.Authorized) {
					rec := *cur
					rec.Authorized, rec.Updated = issued, time.Time{}
					_ = m.keepRefreshToken(ctx, h.e, comp, auth.AppID, rec)
				}
			})
		}
		return auth, nil
	}
	var auth Authorization
	var refresh string
	err := m.withParentToken(ctx, h, func(tok string) error {
		var err error
		auth, refresh, err = af.QueryAuth(ctx, comp, tok, code)
		return err
	})
	if err != nil {
		return Authorization{}, err
	}
	appid := auth.AppID
	if !ValidAppID(appid) {
		return Authorization{}, errors.New("the open platform named no usable authorizer appid")
	}
	m.underAuthorizerLock(ctx, h, appid, func(ctx context.Context) {
		_ = m.keepRefreshToken(ctx, h.e, comp, appid, authorizerRecord{RefreshToken: refresh, Authorized: exchanged})
	})
	m.rememberExchange(ctx, h.e, comp, code, auth)
	// An authorizer refreshing had stopped for want of authorisation
	// resumes now.
	m.mu.RLock()
	e := m.entries[authorizerKey(comp.AppID, appid)]
	m.mu.RUnlock()
	if e != nil {
		e.mu.Lock()
		e.clearGuard()
		e.mu.Unlock()
	}
	m.lg().Info("authorizer authorised the platform; its refresh token is kept",
		zap.String("account", comp.Name), zap.String("authorizer_appid", appid))
	return auth, nil
}

// authCodeLifetime is how long WeChat accepts an authorization code, and
// so how long an exchange is remembered.
const authCodeLifetime = time.Hour

// exchange is a remembered api_query_auth exchange.
type exchange struct {
	Auth    Authorization `json:"auth"`
	Expires time.Time     `json:"expires"`
}

// exchangeKey names an exchange by a digest of its code, which is a
// credential while it lives.
func exchangeKey(comp *Account, code string) string {
	sum := sha256.Sum256([]byte(code))
	return storePrefix + comp.Key() + "/codes/" + hex.EncodeToString(sum[:16]) + ".json"
}

// exchanged returns the remembered exchange of code, if any.
func (m *Manager) exchanged(ctx context.Context, ce *entry, comp *Account, code string) (Authorization, bool) {
	now := m.opts.Clock.Now()
	key := exchangeKey(comp, code)
	if v, ok := ce.exchanges.Load(key); ok && now.Before(v.(*exchange).Expires) {
		return v.(*exchange).Auth, true
	}
	var x exchange
	if !m.loadShared(ctx, key, &x) || !now.Before(x.Expires) {
		return Authorization{}, false
	}
	return x.Auth, true
}

// rememberExchange keeps an exchange for the life of its code, here and in
// the Store; expired ones are dropped from memory as new ones come.
func (m *Manager) rememberExchange(ctx context.Context, ce *entry, comp *Account, code string, auth Authorization) {
	now := m.opts.Clock.Now()
	x := &exchange{Auth: auth, Expires: now.Add(authCodeLifetime)}
	ce.exchanges.Range(func(k, v any) bool {
		if !now.Before(v.(*exchange).Expires) {
			ce.exchanges.Delete(k)
		}
		return true
	})
	key := exchangeKey(comp, code)
	ce.exchanges.Store(key, x)
	_ = m.storeShared(ctx, key, x)
}

// Unauthorize drops what is kept of an authorizer that withdrew its
// authorisation at issued (the push's CreateTime): its refresh token, here
// and in the Store. A withdrawal older than the authorisation held (a push
// delayed or retried past a new authorisation) changes nothing. Its token,
// if registered, fails from its next refresh.
func (h *Handle) Unauthorize(ctx context.Context, appid string, issued time.Time) error {
	m, comp := h.m, h.Account()
	if comp.Kind != Component {
		return errors.New("account " + comp.Name + " is not a third-party platform")
	}
	if !ValidAppID(appid) {
		return errors.New("the open platform named no usable authorizer appid")
	}
	m.underAuthorizerLock(ctx, h, appid, func(ctx context.Context) {
		if cur := m.refreshToken(ctx, h.e, comp, appid); cur != nil && cur.RefreshToken != "" && cur.Authorized.After(issued) {
			m.lg().Info("a withdrawal older than the authorizer's authorisation ignored",
				zap.String("account", comp.Name), zap.String("authorizer_appid", appid), zap.Time("issued", issued))
			return
		}
		m.lg().Warn("authorizer withdrew its authorisation; its refresh token is dropped",
			zap.String("account", comp.Name), zap.String("authorizer_appid", appid))
		_ = m.keepRefreshToken(ctx, h.e, comp, appid, authorizerRecord{Revoked: true})
	})
	return nil
}

// underAuthorizerLock runs write, which reads and writes the record of
// authorizer appid of component comp, under the storage lock the
// authorizer's token refresh holds while it rotates the refresh token, and
// under the authorizer's in-process mutex: an authorisation, a withdrawal
// and a rotation never overwrite one another, anywhere in the cluster.
// Without a Store, or when the lock cannot be had in time, write runs
// under the mutex alone (logged), as a refresh runs alone then. The wait
// and write have their own deadlines, not ctx's: a request that gave up
// waiting (WeChat's push, answered `success` or not) must not leave the
// authorisation unwritten.
func (m *Manager) underAuthorizerLock(ctx context.Context, comp *Handle, appid string, write func(context.Context)) {
	ctx = context.WithoutCancel(ctx)
	if s := m.sharedStore(); s != nil {
		a := authorizerAccount(comp, appid)
		if unlock, err := m.lock(ctx, s, &a); err != nil {
			m.lg().Warn("could not take the authorizer's lock; writing its record without it",
				zap.String("account", comp.Account().Name), zap.String("authorizer_appid", appid), zap.Error(err))
		} else {
			defer unlock()
		}
	}
	mu := comp.e.authorizerStripe(appid)
	mu.Lock()
	defer mu.Unlock()
	write(ctx)
}

// authorizerStripe is the mutex of authorizer appid's stripe.
func (e *entry) authorizerStripe(appid string) *sync.Mutex {
	h := fnv.New32a()
	_, _ = h.Write([]byte(appid))
	return &e.authorizerMu[h.Sum32()%uint32(len(e.authorizerMu))]
}

// Authorizer registers authorizer appid of this component account: the
// Handle's Token is the authorizer_access_token. Pair it with a Release.
func (h *Handle) Authorizer(appid string) (*Handle, error) {
	return h.m.Register(authorizerAccount(h, appid))
}

// AuthorizersInUse returns, sorted, the appids of this component's
// authorizers that are registered (by any config still running), hold a
// usable token (one an answer could still carry) and are authorised as far
// as this instance knows (a withdrawal it took drops them; it reads no
// Store). A config that replaces another registers them again before the
// old one lets go (see the wechat App's Start), so that reloads keep their
// tokens and the masking of answers covers them from the first call.
func (h *Handle) AuthorizersInUse() []string {
	m, prefix := h.m, authorizerKey(h.Account().AppID, "")
	now := m.opts.Clock.Now()
	m.mu.RLock()
	defer m.mu.RUnlock()
	var out []string
	for key, e := range m.entries {
		if !strings.HasPrefix(key, prefix) {
			continue
		}
		appid := e.acct.Load().AppID
		v, ok := h.e.authorizers.Load(appid)
		if rec, _ := v.(*authorizerRecord); !ok || rec.Revoked || rec.RefreshToken == "" {
			continue
		}
		if t := e.cur.Load(); t != nil && m.usable(t, now) {
			out = append(out, appid)
		}
	}
	slices.Sort(out)
	return out
}

// authorizerAccount is the account of authorizer appid of component comp.
func authorizerAccount(comp *Handle, appid string) Account {
	return Account{Name: comp.Account().Name + "/" + appid, Endpoint: AuthorizerToken, AppID: appid, Parent: comp}
}

// Authorized reports whether the component holds a refresh token for
// authorizer appid.
func (h *Handle) Authorized(ctx context.Context, appid string) bool {
	rec := h.m.refreshToken(ctx, h.e, h.Account(), appid)
	return rec != nil && rec.RefreshToken != ""
}

// keepRefreshToken records rec for authorizer appid of component comp
// (entry ce), in memory and in the Store. A Store that fails is logged and
// leaves the record here, newer than the Store's, to be written again at
// the next read (see refreshToken); only an appid that is none is an
// error.
func (m *Manager) keepRefreshToken(ctx context.Context, ce *entry, comp *Account, appid string, rec authorizerRecord) error {
	if !ValidAppID(appid) {
		return errors.New("the open platform named no usable authorizer appid")
	}
	if rec.Updated.IsZero() {
		rec.Updated = m.opts.Clock.Now()
	}
	ce.authorizers.Store(appid, &rec)
	_ = m.storeAuthorizer(ctx, comp, appid, &rec)
	return nil
}

// storeAuthorizer writes rec to the Store, if there is one.
func (m *Manager) storeAuthorizer(ctx context.Context, comp *Account, appid string, rec *authorizerRecord) error {
	if err := m.storeShared(ctx, authorizerStoreKey(comp, appid), rec); err != nil {
		m.lg().Error("could not store an authorizer's refresh token; this instance holds it and writes it again at its next use",
			zap.String("account", comp.Name), zap.String("authorizer_appid", appid), zap.Error(err))
		return err
	}
	return nil
}

// refreshToken returns what is known of authorizer appid: the newer of the
// Store's record (the cluster's) and this instance's. A record held here
// that is newer than the Store's (a write that failed) is written again.
func (m *Manager) refreshToken(ctx context.Context, ce *entry, comp *Account, appid string) *authorizerRecord {
	if !ValidAppID(appid) {
		return nil
	}
	var mine *authorizerRecord
	if v, ok := ce.authorizers.Load(appid); ok {
		mine = v.(*authorizerRecord)
	}
	s := m.sharedStore()
	if s == nil {
		return mine
	}
	sctx, cancel := context.WithTimeout(ctx, m.opts.StoreTimeout)
	raw, err := s.Load(sctx, authorizerStoreKey(comp, appid))
	cancel()
	var stored authorizerRecord
	switch {
	case err == nil && json.Unmarshal(raw, &stored) == nil && (mine == nil || !mine.Updated.After(stored.Updated)):
		// The Store's is as new: it replaces the one read here, unless a
		// write here replaced that meanwhile.
		if mine == nil {
			if v, loaded := ce.authorizers.LoadOrStore(appid, &stored); loaded {
				return v.(*authorizerRecord)
			}
		} else if !ce.authorizers.CompareAndSwap(appid, mine, &stored) {
			v, _ := ce.authorizers.Load(appid)
			return v.(*authorizerRecord)
		}
		return &stored
	case mine != nil && (err == nil || errors.Is(err, fs.ErrNotExist)):
		_ = m.storeAuthorizer(ctx, comp, appid, mine)
	}
	return mine
}

// replaceRefreshToken records rec for authorizer appid unless the refresh
// token it replaces (was) is no longer the current one: an authorisation
// or a withdrawal that came meanwhile stands. The authorisation's time
// carries over.
func (m *Manager) replaceRefreshToken(ctx context.Context, ce *entry, comp *Account, appid, was string, rec authorizerRecord) {
	// The refresh calling this holds the authorizer's storage lock.
	mu := ce.authorizerStripe(appid)
	mu.Lock()
	defer mu.Unlock()
	cur := m.refreshToken(ctx, ce, comp, appid)
	if cur != nil && cur.RefreshToken != was {
		m.lg().Info("authorizer's refresh token changed during a refresh; keeping the newer one",
			zap.String("account", comp.Name), zap.String("authorizer_appid", appid))
		return
	}
	if cur != nil && !rec.Revoked {
		rec.Authorized = cur.Authorized
	}
	_ = m.keepRefreshToken(ctx, ce, comp, appid, rec)
}

// fetchAuthorizerToken mints authorizer a's token from its refresh token,
// and keeps the refresh token the answer brings before returning. A
// revoked refresh token (61023) marks the authorizer unauthorised.
func (m *Manager) fetchAuthorizerToken(ctx context.Context, a *Account, rec *authorizerRecord) (Fetched, error) {
	af, ok := m.opts.Fetcher.(AuthorizerFetcher)
	if !ok {
		return Fetched{}, &FetchError{Endpoint: a.Endpoint.Path(), Err: errors.New("the fetcher cannot fetch authorizer tokens")}
	}
	parent := a.Parent
	comp := parent.Account()
	var got Fetched
	var refresh string
	err := m.withParentToken(ctx, parent, func(tok string) error {
		var err error
		got, refresh, err = af.FetchAuthorizerToken(ctx, a, tok, rec.RefreshToken)
		return err
	})
	var fe *FetchError
	switch {
	case errors.As(err, &fe) && fe.Errcode == wxapi.CodeRefreshTokenRevoked:
		m.lg().Error("WeChat revoked the authorizer's refresh token (61023): the business must authorise the platform again",
			zap.String("account", comp.Name), zap.String("authorizer_appid", a.AppID))
		m.replaceRefreshToken(ctx, parent.e, comp, a.AppID, rec.RefreshToken, authorizerRecord{Revoked: true})
	case err == nil && refresh != "" && refresh != rec.RefreshToken:
		// Kept before the token is handed out: the old refresh token
		// works only a little longer.
		m.replaceRefreshToken(ctx, parent.e, comp, a.AppID, rec.RefreshToken, authorizerRecord{RefreshToken: refresh})
	}
	return got, err
}
