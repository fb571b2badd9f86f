package caddywechat

import (
	"context"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/wxgate/caddy-wechat/module/internal/msgcrypt"
)

// A third-party platform's callback: WeChat POSTs it an encrypted,
// signed XML message every 10 minutes with the component_verify_ticket,
// and when a business authorises the platform or withdraws. The route
// checks the signature, decrypts the message, checks it is for the
// platform, refuses a replay, and answers `success`.

// pushReplayWindow is how far a push's timestamp may be from now, and
// about how long a push is remembered: the same push again within it is a
// replay, and an older push is refused for its timestamp.
const pushReplayWindow = 5 * time.Minute

// authorizeTimeout bounds the api_query_auth exchange an `authorized`
// push waits for: WeChat waits 5 s for its answer.
const authorizeTimeout = 4 * time.Second

// maxPush bounds the body of a push read before its signature is checked.
const maxPush = 64 << 10

// pushLog remembers recent pushes by platform, and by nonce and timestamp
// or by signature.
type pushLog struct {
	mu   sync.Mutex
	seen map[pushKey]time.Time
}

// pushKey names a push: its platform, and "n" with nonce and timestamp or
// "s" with its signature.
type pushKey struct{ account, by, value string }

// first reports whether this is the first time a push is seen within the
// window, by any of its keys, and remembers them.
func (l *pushLog) first(now time.Time, keys ...pushKey) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.seen == nil {
		l.seen = make(map[pushKey]time.Time)
	}
	for _, key := range keys {
		if at, ok := l.seen[key]; ok && now.Sub(at) < 2*pushReplayWindow {
			return false
		}
	}
	if len(l.seen) > 10000 {
		for k, at := range l.seen {
			if now.Sub(at) >= 2*pushReplayWindow {
				delete(l.seen, k)
			}
		}
	}
	for _, key := range keys {
		l.seen[key] = now
	}
	return true
}

// forget drops keys, so that WeChat's retry of a push the gateway could
// not complete is taken.
func (l *pushLog) forget(keys ...pushKey) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, key := range keys {
		delete(l.seen, key)
	}
}

// serveCallback takes one push to the platform's callback.
func (h *Handler) serveCallback(w http.ResponseWriter, r *http.Request) {
	refuse := func(status int, why string, err error) {
		// Never the payload: only what was wrong, cut short (a parse
		// error may quote what an unauthenticated sender wrote).
		fields := []zap.Field{zap.String("account", h.Account), zap.String("reason", why), zap.String("remote_addr", r.RemoteAddr)}
		if err != nil {
			fields = append(fields, zap.String("error", logText(err.Error())))
		}
		h.logger.Warn("third-party platform push refused", fields...)
		http.Error(w, why, status)
	}
	if r.Method != http.MethodPost {
		refuse(http.StatusMethodNotAllowed, "the callback takes POST", nil)
		return
	}
	q := r.URL.Query()
	sig, ts, nonce := q.Get("msg_signature"), q.Get("timestamp"), q.Get("nonce")
	if sig == "" || ts == "" || nonce == "" {
		refuse(http.StatusBadRequest, "msg_signature, timestamp and nonce are required", nil)
		return
	}
	// WeChat's pushes are a few KiB: nothing larger is read before the
	// signature is checked.
	body, err := io.ReadAll(io.LimitReader(r.Body, maxPush+1))
	if err != nil || len(body) > maxPush {
		refuse(http.StatusBadRequest, "unreadable or oversized body", err)
		return
	}
	codec := h.app.codecs[h.Account]
	msg, _, err := codec.Open(body, sig, ts, nonce)
	if err != nil {
		refuse(http.StatusBadRequest, "the push does not check out (signature, encryption or appid)", err)
		return
	}
	// The signature covers nonce and timestamp joined without a separator:
	// only the canonical spelling of the timestamp is taken, and replays
	// are known by their signature too, so that moving digits between the
	// two cannot make an old push look new.
	if at, err := strconv.ParseInt(ts, 10, 64); err != nil || strconv.FormatInt(at, 10) != ts ||
		h.app.now().Sub(time.Unix(at, 0)).Abs() > pushReplayWindow {
		refuse(http.StatusBadRequest, "the push's timestamp is not within 5 minutes of now", err)
		return
	}
	keys := []pushKey{{h.Account, "n", nonce + "\x00" + ts}, {h.Account, "s", strings.ToLower(sig)}}
	if !h.app.tokens.pushes.first(h.app.now(), keys...) {
		refuse(http.StatusBadRequest, "a replayed push (the same nonce and timestamp, or signature)", nil)
		return
	}
	ev, err := msgcrypt.ParseComponentEvent(msg)
	if err != nil {
		refuse(http.StatusBadRequest, "not a third-party platform event", err)
		return
	}
	if platform := h.fixed.Account().AppID; ev.AppID != platform {
		// Sealed with this platform's key, but for another platform (one
		// token and key shared between platforms): not this one's ticket.
		refuse(http.StatusBadRequest, "an event for another platform ("+logText(ev.AppID)+")", nil)
		return
	}
	switch ev.InfoType {
	case msgcrypt.InfoTypeVerifyTicket:
		if err := h.fixed.SetVerifyTicket(r.Context(), ev.ComponentVerifyTicket, time.Unix(ev.CreateTime, 0)); err != nil {
			h.logger.Warn("could not share the component_verify_ticket through storage; this instance holds it",
				zap.String("account", h.Account), zap.Error(err))
		}
		h.logger.Debug("component_verify_ticket received", zap.String("account", h.Account))
	case msgcrypt.InfoTypeAuthorized, msgcrypt.InfoTypeUpdateAuthorized:
		// The code is exchanged before WeChat is told `success`: should
		// the exchange fail, WeChat pushes the event again.
		ctx, cancel := context.WithTimeout(r.Context(), authorizeTimeout)
		auth, err := h.fixed.Authorize(ctx, ev.AuthorizationCode, time.Unix(ev.CreateTime, 0))
		cancel()
		if err != nil {
			h.app.tokens.pushes.forget(keys...)
			h.logger.Error("could not exchange an authorizer's authorization code; WeChat will push it again",
				zap.String("account", h.Account), zap.String("authorizer_appid", logText(ev.AuthorizerAppID)), zap.Error(err))
			http.Error(w, "the authorization could not be completed now", http.StatusServiceUnavailable)
			return
		}
		if appid := auth.AppID; appid != ev.AuthorizerAppID {
			h.logger.Warn("api_query_auth named another authorizer than the push", zap.String("account", h.Account),
				zap.String("pushed", logText(ev.AuthorizerAppID)), zap.String("authorizer_appid", appid))
		}
	case msgcrypt.InfoTypeUnauthorized:
		if err := h.fixed.Unauthorize(r.Context(), ev.AuthorizerAppID, time.Unix(ev.CreateTime, 0)); err != nil {
			h.logger.Warn("withdrawal not applied", zap.String("account", h.Account),
				zap.String("authorizer_appid", logText(ev.AuthorizerAppID)), zap.Error(err))
		}
	default:
		h.logger.Info("third-party platform event received", zap.String("account", h.Account),
			zap.String("info_type", logText(ev.InfoType)), zap.String("authorizer_appid", logText(ev.AuthorizerAppID)))
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = io.WriteString(w, "success")
}
