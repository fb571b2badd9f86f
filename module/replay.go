package caddywechat

import (
	"context"
	"io"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/wxgate/caddy-wechat/module/internal/token"
	"github.com/wxgate/caddy-wechat/module/internal/wxapi"
)

// Stage 5 of an API call: look at the answer (the inspector held back a
// small JSON or text one), and if WeChat rejected the token (40001, 40014,
// 42001), report it, which refreshes it once for every caller, and replay
// the call with the fresh token. Anything else goes to the client as it
// came.

// attempt is the first attempt of a call, as the replay stage gets it.
type attempt struct {
	account *token.Handle
	token   *token.Token
	body    *heldBody // the request body, held for a replay
	stream  io.Reader // set instead of body when it was too large to hold
	answer  *inspector
}

// replay passes the first attempt's answer on, or replays the call once
// if WeChat rejected its token.
func (h *Handler) replay(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler, first attempt) error {
	code, rid, rejected := first.answer.tokenError()
	if !rejected {
		first.answer.pass()
		return nil
	}
	ctx := r.Context()
	acct := first.account.Account()
	m := processMetrics()
	m.rejections.WithLabelValues(accountLabel(acct), strconv.Itoa(code)).Inc()
	replayed := "none"
	defer func() { m.replays.WithLabelValues(accountLabel(acct), replayed).Inc() }()
	path := r.URL.Path
	now := h.app.now()
	if stuck := h.stuck.has(acct.Name, path, now); stuck || first.stream != nil {
		// Pass the answer on: a path where a fresh token failed too wants
		// another kind of token (a path is stuck only when a fresh token
		// stood, alive, and was refused: reporting its token on every call
		// would, for a /cgi-bin/token account, replace a good token every
		// cooldown), and a body that streamed cannot be sent again. A
		// streamed call to a path not stuck still reports the token, so
		// that the next calls get a fresh one.
		if !stuck {
			h.reportStreamed(ctx, first, code, rid, path, now)
		}
		first.answer.pass()
		return nil
	}
	fresh, err := first.account.Reject(ctx, first.token, code)
	switch {
	case err != nil:
		h.logger.Warn("access_token rejected and no new one could be had",
			zap.String("account", acct.Name), zap.String("appid", acct.AppID), zap.Int("errcode", code), zap.String("rid", rid), zap.Error(err))
		first.answer.pass()
		return nil
	case fresh == nil: // the rejected token was just fetched: not its age; pass the answer on
		first.answer.pass()
		return nil
	}
	h.logger.Info("access_token rejected; replaying with a fresh token",
		zap.String("account", acct.Name), zap.String("appid", acct.AppID), zap.String("path", path), zap.Int("errcode", code), zap.String("rid", rid),
		zap.Uint64("generation", fresh.Generation))
	first.answer.discard()
	second := newInspector(w, h.app.confidential(first.account))
	defer second.free()
	if err := sendUpstream(next, second, r, tokenParam(first.account), fresh.Value, first.body, nil); err != nil {
		h.upstreamFailed(w, r, second, first.account, err)
		return nil
	}
	replayed = "ok"
	if code, rid, rejected := second.tokenError(); rejected {
		replayed = "rejected"
		m.rejections.WithLabelValues(accountLabel(acct), strconv.Itoa(code)).Inc()
		if h.wrongKind(ctx, first.account, fresh, code) {
			h.markStuck(acct, path, code, rid, h.app.now())
		} else {
			h.logger.Info("the fresh access_token was refused too, having been replaced meanwhile; the next call gets the new one",
				zap.String("account", acct.Name), zap.String("appid", acct.AppID), zap.String("path", path), zap.Int("errcode", code),
				zap.String("rid", rid))
		}
	}
	second.pass()
	return nil
}

// reportStreamed reports the rejected token of a call whose body streamed,
// which cannot be replayed to try the fresh token on its path. The next
// streamed call there tells instead: a refusal of the very token this
// path's last report brought, soon after, says the path wants another kind
// of token, as a refused replay does (wrongKind), and so does a report
// that hands the refused token back unchanged. Either leaves the path
// alone (stuck) rather than report again: with refresh_cooldown off, a
// client streaming bodies to such a path would otherwise spend a
// token-endpoint call on every call.
func (h *Handler) reportStreamed(ctx context.Context, first attempt, code int, rid, path string, now time.Time) {
	acct := first.account.Account()
	if !h.stuck.broughtBy(acct.Name, path, first.token.Generation, now) {
		fresh, err := first.account.Reject(ctx, first.token, code)
		switch {
		case err != nil || fresh == nil:
			return
		case fresh.Value != first.token.Value:
			h.stuck.brought(acct.Name, path, fresh.Generation, now)
			return
		}
		// Handed back unchanged: the refused token stands.
	}
	h.markStuck(acct, path, code, rid, now)
}

// markStuck leaves (account, path) alone for stuckFor: a fresh token was
// refused there too, so the path wants another kind of token.
func (h *Handler) markStuck(acct *token.Account, path string, code int, rid string, now time.Time) {
	h.stuck.add(acct.Name, path, now)
	h.logger.Warn("a fresh access_token was refused too: this path wants another kind of token; not refreshing for it for a while",
		zap.String("account", acct.Name), zap.String("appid", acct.AppID), zap.String("path", path), zap.Int("errcode", code),
		zap.String("rid", rid), zap.Duration("for", stuckFor))
}

// wrongKind reports whether WeChat's refusal (code) of fresh, the token a
// replay was sent with, says the path wants another kind of token rather
// than that fresh died in flight (another system rotated the token between
// the refresh and the replay). 40014 says so. For a 40001 or 42001 of a
// stable_token or gettoken token, the token is reported (a normal-mode
// call hands a live token back unchanged), and it is the path's fault only
// if it stands: handed back unchanged, or too fresh to replace; a token
// that cannot be had at all leaves the path alone. Every call of the other
// endpoints makes a new token, so asking would replace a good one, and with
// refresh_cooldown off spend a call per call: the path is at fault unless
// the token was replaced meanwhile.
func (h *Handler) wrongKind(ctx context.Context, account *token.Handle, fresh *token.Token, code int) bool {
	if code == wxapi.CodeInvalidToken {
		return true
	}
	switch account.Account().Endpoint {
	case token.StableToken, token.GetToken:
		next, err := account.Reject(ctx, fresh, code)
		return err == nil && (next == nil || next.Value == fresh.Value)
	}
	gen, ok := account.Generation()
	return !ok || gen == fresh.Generation
}

// stuckFor is how long a path where a fresh token was refused too is left
// alone: its token errors are passed on with no refresh and no replay.
const stuckFor = 10 * time.Minute

// maxStuck bounds the paths remembered; past it the memory starts afresh.
const maxStuck = 1024

// stuckPaths remembers (account, path) pairs where WeChat refused a token
// the gateway had just fetched: a refresh cannot fix those (40014 for a token
// of the wrong kind), and refreshing on every call would burn the quota.
type stuckPaths struct {
	n     atomic.Int32 // entries: lets the common case skip the lock
	mu    sync.Mutex
	until map[[2]string]time.Time
	// fresh holds, for a path a streamed call reported a token on, the
	// generation the report brought and when (see reportStreamed).
	fresh map[[2]string]broughtToken
}

// broughtToken is the token a report on a path brought, and when.
type broughtToken struct {
	generation uint64
	at         time.Time
}

// brought records that a report on (account, path) brought the token of
// generation gen.
func (s *stuckPaths) brought(account, path string, gen uint64, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fresh == nil || len(s.fresh) >= maxStuck {
		s.fresh = make(map[[2]string]broughtToken)
	}
	s.fresh[[2]string{account, path}] = broughtToken{gen, now}
}

// broughtBy reports whether the token of generation gen is the one the
// last report on (account, path) brought, less than stuckFor ago.
func (s *stuckPaths) broughtBy(account, path string, gen uint64, now time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.fresh[[2]string{account, path}]
	return ok && b.generation == gen && now.Sub(b.at) < stuckFor
}

func (s *stuckPaths) add(account, path string, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.until == nil || len(s.until) >= maxStuck {
		s.until = make(map[[2]string]time.Time)
	}
	s.until[[2]string{account, path}] = now.Add(stuckFor)
	s.n.Store(int32(len(s.until)))
}

func (s *stuckPaths) has(account, path string, now time.Time) bool {
	if s.n.Load() == 0 {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	until, ok := s.until[[2]string{account, path}]
	if ok && !now.Before(until) {
		delete(s.until, [2]string{account, path})
		s.n.Store(int32(len(s.until)))
		return false
	}
	return ok
}
