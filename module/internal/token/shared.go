package token

import (
	"context"
	"errors"

	"go.uber.org/zap"
)

// lockWaitFactor: Lock may take this many StoreTimeouts, because it waits
// while another instance holds the lock for its own fetch.
const lockWaitFactor = 3

// obtain returns a new token for e. Without a Store it fetches one. With a
// Store it follows the cluster protocol: lock the account, re-read the
// stored record, adopt it if another instance already refreshed, otherwise
// fetch, store {token, expiry, generation} and unlock.
func (m *Manager) obtain(ctx context.Context, e *entry, a *Account, proactive bool) (*Token, error) {
	s := m.sharedStore()
	if s == nil {
		fctx, cancel := context.WithTimeout(ctx, m.timeout())
		defer cancel()
		return m.fetch(fctx, e, a, nil)
	}
	// Each Store call has its own deadline, shorter than the refresh's: a
	// Store that hangs (a network partition, a hung mount) must leave time
	// for the fetch that follows without it.
	unlock, err := m.lock(ctx, s, a)
	if err != nil {
		return m.alone(e, a, proactive, err)
	}
	defer unlock()
	sctx, cancel := context.WithTimeout(ctx, m.opts.StoreTimeout)
	stored, err := loadRecord(sctx, s, a, m.opts.Clock.Now())
	cancel()
	var bad *badRecordError
	switch {
	case err == nil:
		if m.adoptable(e, a, stored, proactive) {
			m.lg().Info("adopted the token another instance refreshed", zap.String("account", a.Name),
				zap.String("appid", a.AppID), zap.Uint64("generation", stored.Generation))
			return stored, nil
		}
	case errors.Is(err, errStoreMissing):
		stored = nil
	case errors.As(err, &bad):
		m.lg().Warn(bad.Error(), zap.String("account", a.Name), zap.String("key", recordKey(a)))
		stored = nil
	default:
		return m.alone(e, a, proactive, err)
	}
	fctx, cancel := context.WithTimeout(ctx, m.timeout())
	defer cancel()
	tok, err := m.fetch(fctx, e, a, stored)
	if err != nil {
		return nil, err
	}
	sctx, cancel = context.WithTimeout(context.Background(), m.opts.StoreTimeout)
	defer cancel()
	if err := saveRecord(sctx, s, a, tok); err != nil {
		m.lg().Warn("could not share the new token through storage; other instances fetch their own until it is back",
			zap.String("account", a.Name), zap.Error(err))
	}
	return tok, nil
}

// lock takes a's lock in s, waiting up to lockWaitFactor StoreTimeouts,
// and returns the call that releases it; a release that fails is logged
// (the lock lapses on its own).
func (m *Manager) lock(ctx context.Context, s Store, a *Account) (unlock func(), err error) {
	name := lockName(a)
	lctx, cancel := context.WithTimeout(ctx, lockWaitFactor*m.opts.StoreTimeout)
	err = s.Lock(lctx, name)
	cancel()
	if err != nil {
		return nil, err
	}
	return func() {
		uctx, cancel := context.WithTimeout(context.Background(), m.opts.StoreTimeout)
		defer cancel()
		if err := s.Unlock(uctx, name); err != nil {
			m.lg().Warn("could not release the token lock; it lapses on its own", zap.String("account", a.Name), zap.Error(err))
		}
	}, nil
}

// adoptable reports whether a stored token can replace e's: still valid,
// not the token that was rejected, and, for a background refresh, not due
// for a refresh itself.
func (m *Manager) adoptable(e *entry, a *Account, stored *Token, proactive bool) bool {
	now := m.opts.Clock.Now()
	if !m.usable(stored, now) {
		return false
	}
	e.mu.Lock()
	rejected, manual := e.rejected, e.manual
	e.mu.Unlock()
	if rejected != nil && stored.Value == rejected.Value {
		return false
	}
	if cur := e.cur.Load(); manual && cur != nil && stored.Generation <= cur.Generation {
		return false // an operator asked for a new token, not the one in hand
	}
	return !proactive || now.Before(refreshAt(a, stored))
}

// alone decides what to do when the Store cannot be reached. A background
// refresh waits (with backoff) while the token in hand has more than two
// expiry skews (1 min by default) to live; otherwise, and for a token that
// is missing or was rejected, the instance fetches on its own: serving
// beats holding exactly one token while storage is down, and instances
// converge on the newest token once it is back (see sync).
//
// The fetch gets a fresh FetchTimeout: the Store may have used up the
// refresh's.
func (m *Manager) alone(e *entry, a *Account, proactive bool, cause error) (*Token, error) {
	now := m.opts.Clock.Now()
	if cur := e.cur.Load(); proactive && cur != nil && now.Before(cur.Expires.Add(-2*m.opts.ExpirySkew)) {
		return nil, &storeError{err: cause}
	}
	m.lg().Warn("token storage unreachable; fetching a token without it", zap.String("account", a.Name),
		zap.String("appid", a.AppID), zap.Error(cause))
	ctx, cancel := context.WithTimeout(context.Background(), m.timeout())
	defer cancel()
	return m.fetch(ctx, e, a, nil)
}

// storeError is a refresh postponed because the Store cannot be reached.
type storeError struct{ err error }

func (e *storeError) Error() string { return "token storage unreachable: " + e.err.Error() }
func (e *storeError) Unwrap() error { return e.err }

// sync compares e's token with the Store: it adopts a newer stored token,
// and stores its own when it is the newer one (fetched while the Store was
// unreachable), so that every instance converges on the newest token. It
// reports false when the Store could not be reached.
func (m *Manager) sync(ctx context.Context, e *entry) bool {
	s := m.sharedStore()
	cur := e.cur.Load()
	if s == nil || cur == nil {
		return true
	}
	a := e.acct.Load()
	// The whole comparison, a lock wait included.
	ctx, cancel := context.WithTimeout(ctx, lockWaitFactor*m.opts.StoreTimeout)
	defer cancel()
	stored, err := loadRecord(ctx, s, a, m.opts.Clock.Now())
	var bad *badRecordError
	switch {
	case err == nil && stored.Value == cur.Value:
		return true
	case err == nil && m.adoptNewer(e, a, cur, stored):
		return true
	case err == nil, errors.Is(err, errStoreMissing), errors.As(err, &bad):
		// Ours is newer, or storage holds nothing usable: share ours.
		// (Some storage modules report an unreachable server as a missing
		// key; the lock then fails.)
		if err := s.Lock(ctx, lockName(a)); err != nil {
			m.lg().Warn("token storage unreachable; comparing the token with it later", zap.String("account", a.Name), zap.Error(err))
			return false
		}
		defer func() {
			uctx, cancel := context.WithTimeout(context.Background(), m.opts.StoreTimeout)
			defer cancel()
			_ = s.Unlock(uctx, lockName(a))
		}()
		again, err := loadRecord(ctx, s, a, m.opts.Clock.Now())
		if err == nil && (again.Value == cur.Value || m.adoptNewer(e, a, cur, again) || again.Generation > cur.Generation) {
			return true // never write an older generation over a newer one
		}
		if err := saveRecord(ctx, s, a, cur); err != nil {
			return false
		}
		m.lg().Info("shared this instance's token through storage", zap.String("account", a.Name), zap.Uint64("generation", cur.Generation))
		return true
	default:
		m.lg().Warn("token storage unreachable; comparing the token with it later", zap.String("account", a.Name), zap.Error(err))
		return false
	}
}

// adoptNewer makes stored e's token if it was fetched after cur and can be
// used, and reports whether it did.
func (m *Manager) adoptNewer(e *entry, a *Account, cur, stored *Token) bool {
	newer := stored.Generation > cur.Generation ||
		(stored.Generation == cur.Generation && stored.Fetched.After(cur.Fetched))
	if !newer || !m.adoptable(e, a, stored, false) {
		return false
	}
	e.mu.Lock()
	adopted := e.cur.CompareAndSwap(cur, stored)
	if adopted {
		e.nextProactive = refreshAt(a, stored)
		e.remember(stored.Value)
	}
	e.mu.Unlock()
	if adopted {
		m.lg().Info("adopted a newer token from storage", zap.String("account", a.Name), zap.Uint64("generation", stored.Generation))
	}
	return adopted
}
