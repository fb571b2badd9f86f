package token

import (
	"context"
	"errors"
	"time"

	"go.uber.org/zap"

	"github.com/wxgate/caddy-wechat/module/internal/wxapi"
)

// Observer is told what the Manager does, for metrics. Its methods must be
// quick and must not call back into the Manager.
type Observer interface {
	// EndpointCall reports one token- or ticket-endpoint call (or one the
	// daily budget refused): result is "ok", "transient", "config",
	// "quota" or "budget".
	EndpointCall(a *Account, result string, took time.Duration)
	// Refreshed reports a refresh, storage steps included.
	Refreshed(a *Account, ok bool, took time.Duration)
}

// noObserver observes nothing.
type noObserver struct{}

func (noObserver) EndpointCall(*Account, string, time.Duration) {}
func (noObserver) Refreshed(*Account, bool, time.Duration)      {}

// callResult sorts the outcome of a token-endpoint call for an Observer.
func callResult(err error) string {
	var fe *FetchError
	var be *budgetError
	switch {
	case err == nil:
		return "ok"
	case errors.As(err, &be):
		return "budget"
	case errors.As(err, &fe) && fe.Errcode != 0:
		switch wxapi.ClassifyTokenError(fe.Errcode) {
		case wxapi.Configuration:
			return "config"
		case wxapi.Quota:
			return "quota"
		}
	}
	return "transient"
}

// Generation returns the generation of the account's current token, and
// false when it has none.
func (h *Handle) Generation() (uint64, bool) {
	if t := h.e.cur.Load(); t != nil {
		return t.Generation, true
	}
	return 0, false
}

// Refresh is an operator's refresh: it fetches a new token now (for
// stable_token with force_refresh, within the platform's limits), unless
// ifGeneration is set and the current token's generation is no longer
// *ifGeneration, and joins a refresh already under way: so that operators
// or scripts pressing it at once make one fetch. The daily budget applies.
// refreshed reports whether this call made or joined a refresh.
func (h *Handle) Refresh(ctx context.Context, ifGeneration *uint64) (tok *Token, refreshed bool, err error) {
	m, e := h.m, h.e
	now := m.opts.Clock.Now()
	e.mu.Lock()
	cur := e.cur.Load()
	if ifGeneration != nil && (cur == nil || cur.Generation != *ifGeneration) {
		e.mu.Unlock()
		return cur, false, nil
	}
	f := e.flight
	if f == nil {
		if err := m.blocked(e, now); err != nil {
			e.mu.Unlock()
			return nil, false, err
		}
		e.manual = true
		f = m.startLocked(e, false)
	}
	e.mu.Unlock()
	select {
	case <-f.done:
		return f.tok, true, f.err
	case <-ctx.Done():
		return nil, true, ctx.Err()
	}
}

// MaxResumeProbes is how many token-endpoint calls past an account's daily
// budget operators may grant it a day, one per Resume: past them the
// budget stands until the next WeChat day (or a config with a larger one).
const MaxResumeProbes = 3

// Resume clears a stopped refresh (a configuration or quota error, or the
// budget) after an operator fixed its cause, applying secret if it is not
// empty and differs (a placeholder re-read), and refreshes at once. With
// the day's budget spent it grants one call past it, at most
// MaxResumeProbes a day.
func (h *Handle) Resume(ctx context.Context, secret string) (*Token, error) {
	m, e := h.m, h.e
	e.mu.Lock()
	a := e.acct.Load()
	if secret != "" && secret != a.Secret {
		changed := *a
		changed.Secret = secret
		e.acct.Store(&changed)
		h.acct.Store(&changed)
		if p := e.confidential.Load(); p != nil {
			vals := append([]string{secret}, (*p)[1:]...)
			e.confidential.Store(&vals)
		}
		a = &changed
	}
	e.clearGuard()
	if e.day == quotaDay(m.opts.Clock.Now()) && e.calls >= a.DailyBudget+e.probes && e.probes < MaxResumeProbes {
		e.probes++ // one probe past the budget, asked for by a person
	}
	f := e.flight
	if f == nil {
		f = m.startLocked(e, false)
	}
	e.mu.Unlock()
	m.lg().Info("refreshing resumed by an operator", zap.String("account", a.Name), zap.String("appid", a.AppID))
	select {
	case <-f.done:
		return f.tok, f.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// ClearStop forgets a stopped refresh and its backoff, without fetching:
// the next use asks again (a ticket, after an operator resumed its account).
func (h *Handle) ClearStop() {
	h.e.mu.Lock()
	defer h.e.mu.Unlock()
	h.e.clearGuard()
}
