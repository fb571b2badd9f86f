package token

import (
	"context"
	"time"

	"go.uber.org/zap"
)

// RefreshDue refreshes, in the background, every token in use that is
// within its account's margin of expiry, and waits until those refreshes
// are done or ctx ends. It returns how many it started. A token counts as in
// use when it was asked for during its lifetime; an idle account's token is
// left to expire and fetched again at its next use.
func (m *Manager) RefreshDue(ctx context.Context) int {
	now := m.opts.Clock.Now()
	m.mu.RLock()
	entries := make([]*entry, 0, len(m.entries))
	for _, e := range m.entries {
		entries = append(entries, e)
	}
	m.mu.RUnlock()

	var flights []*flight
	storeDown := false
	for _, e := range entries {
		cur := e.cur.Load()
		if cur == nil {
			continue
		}
		if lastUsed := time.Unix(e.lastUsed.Load(), 0); lastUsed.Before(cur.Fetched.Add(-time.Second)) {
			continue // not asked for since it was fetched
		}
		e.mu.Lock()
		syncDue := e.flight == nil && !now.Before(e.nextSync)
		if syncDue {
			e.nextSync = now.Add(m.opts.SyncInterval)
		}
		e.mu.Unlock()
		if syncDue && !storeDown {
			// One unreachable storage call is enough for this pass: the
			// rest would each wait out their timeout and hold back the
			// refreshes below.
			storeDown = !m.sync(ctx, e)
			if cur = e.cur.Load(); cur == nil {
				continue
			}
		}
		e.mu.Lock()
		if e.flight == nil && !now.Before(e.nextProactive) && !now.Before(e.retryAt) {
			a := e.acct.Load()
			m.lg().Debug("refreshing access_token before expiry", zap.String("account", a.Name), zap.String("appid", a.AppID),
				zap.Duration("remaining", cur.Expires.Sub(now)))
			flights = append(flights, m.startLocked(e, true))
		}
		e.mu.Unlock()
	}
	for _, f := range flights {
		select {
		case <-f.done:
		case <-ctx.Done():
			return len(flights)
		}
	}
	return len(flights)
}

// Run calls RefreshDue every tick (default 1 s of wall time) until ctx
// ends.
func (m *Manager) Run(ctx context.Context, tick time.Duration) {
	if tick <= 0 {
		tick = DefaultTick
	}
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			m.RefreshDue(ctx)
		}
	}
}

// Status is what the Manager can tell of an account without revealing its
// token or secret.
type Status struct {
	Name        string    `json:"name"`
	Parent      string    `json:"parent,omitempty"` // a ticket's account
	Key         string    `json:"key"`
	Kind        Kind      `json:"kind"`
	AppID       string    `json:"appid"`
	Endpoint    Endpoint  `json:"token_endpoint"`
	HasToken    bool      `json:"has_token"`
	Generation  uint64    `json:"generation,omitempty"`
	Fetched     time.Time `json:"fetched,omitzero"`
	Expires     time.Time `json:"expires,omitzero"`
	NextRefresh time.Time `json:"next_refresh,omitzero"`
	CallsToday  int       `json:"token_calls_today"`
	DailyBudget int       `json:"daily_budget"`
	TotalCalls  uint64    `json:"token_calls_total"`
	ForcesToday int       `json:"force_refreshes_today"`
	Stopped     bool      `json:"refresh_stopped"`
	LastError   string    `json:"last_error,omitempty"`
	RetryAt     time.Time `json:"retry_at,omitzero"`
}

// Statuses returns the status of every account, in no particular order.
func (m *Manager) Statuses() []Status {
	now := m.opts.Clock.Now()
	m.mu.RLock()
	defer m.mu.RUnlock()
	out := make([]Status, 0, len(m.entries))
	for _, e := range m.entries {
		a := e.acct.Load()
		e.mu.Lock()
		s := Status{
			Name: a.Name, Key: e.key, Kind: a.Kind, AppID: a.AppID, Endpoint: a.Endpoint,
			DailyBudget: a.DailyBudget, TotalCalls: e.fetches, Stopped: e.tripped,
		}
		if a.Parent != nil {
			s.Parent = a.Parent.Account().Name
		}
		if e.day == quotaDay(now) {
			s.CallsToday = e.calls
		}
		if e.forceDay == quotaDay(now) {
			s.ForcesToday = e.forces
		}
		if cur := e.cur.Load(); cur != nil && m.usable(cur, now) {
			s.HasToken, s.Generation, s.Fetched, s.Expires, s.NextRefresh = true, cur.Generation, cur.Fetched, cur.Expires, e.nextProactive
		}
		if e.lastErr != nil {
			s.LastError = e.lastErr.Reason
			s.RetryAt = e.retryAt
		}
		e.mu.Unlock()
		out = append(out, s)
	}
	return out
}
