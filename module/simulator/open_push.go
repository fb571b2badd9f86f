package simulator

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/wxgate/caddy-wechat/module/internal/msgcrypt"
)

// PushResult is the outcome of one push to a component's CallbackURL.
type PushResult struct {
	// ComponentAppID is the component pushed to; InfoType the event
	// (component_verify_ticket, authorized, updateauthorized,
	// unauthorized); AuthorizerAppID the authorizer of an authorization
	// event.
	ComponentAppID  string `json:"component_appid"`
	InfoType        string `json:"info_type"`
	AuthorizerAppID string `json:"authorizer_appid,omitempty"`
	// Ticket is the component_verify_ticket of a ticket push: it is valid
	// whether or not the push was delivered.
	Ticket string `json:"ticket,omitempty"`
	// Delivered tells the callback answered HTTP 200 "success"; Status is
	// its HTTP status (0: no answer), Error what went wrong otherwise.
	Delivered bool   `json:"delivered"`
	Status    int    `json:"status,omitempty"`
	Error     string `json:"error,omitempty"`
}

func newOpenRuntime() *openRuntime {
	return &openRuntime{
		tokens: newTokenIndex(),
		client: &http.Client{
			Timeout:       pushTimeout,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}
}

// startOpen hooks the open platform to the clock: every move pushes the
// tickets that fell due, and while the clock runs a timer does.
func (s *Simulator) startOpen() {
	moved := func() {
		s.open.timerMu.Lock()
		closed := s.open.closed
		s.open.timerMu.Unlock()
		if !closed {
			s.pushDueTickets()
			s.armTicketTimer()
		}
	}
	s.clock.moved.Store(&moved)
	s.armTicketTimer()
}

// reconfigureOpen applies a Reconfigure to the open platform: the tokens of
// removed authorizers stop working (those of removed components and
// accounts already answer as unknown), and the timer follows the new
// schedule.
func (s *Simulator) reconfigureOpen(prev, next *settings) {
	if prev.open != nil {
		s.tokens.revoke(s.clock.Now().UnixNano(), func(t *token) bool { return t.auth != nil && t.auth.removed.Load() })
	}
	s.armTicketTimer()
}

// Close stops the background work of the simulator: the timer that pushes
// component_verify_tickets while the clock runs, and the pushes on clock
// moves. The simulator keeps answering requests, and PushComponentTicket,
// Authorize and Unauthorize still push. Close is idempotent and always
// returns nil.
func (s *Simulator) Close() error {
	o := s.open
	o.timerMu.Lock()
	defer o.timerMu.Unlock()
	o.closed = true
	if o.timer != nil {
		o.timer.Stop()
		o.timer = nil
	}
	return nil
}

// armTicketTimer (re)arms the real-time timer of the next ticket push; only
// a running clock needs it (a frozen one moves only through Advance and Set,
// which push themselves).
func (s *Simulator) armTicketTimer() {
	o := s.open
	o.timerMu.Lock()
	defer o.timerMu.Unlock()
	if o.timer != nil {
		o.timer.Stop()
		o.timer = nil
	}
	set := s.current.Load()
	if o.closed || s.clock.Frozen() || set.open == nil || set.cfg.ComponentTicketInterval <= 0 {
		return
	}
	next := int64(math.MaxInt64)
	for _, e := range set.open.comps {
		e.st.mu.Lock()
		next = min(next, e.st.nextPush)
		e.st.mu.Unlock()
	}
	d := max(time.Duration(next-s.clock.Now().UnixNano()), 0)
	o.timer = time.AfterFunc(d, func() {
		s.pushDueTickets()
		s.armTicketTimer()
	})
}

// pushDueTickets pushes a new ticket to every component whose push is due
// (one push, however many intervals passed), and waits for the answers.
func (s *Simulator) pushDueTickets() {
	set := s.current.Load()
	interval := set.cfg.ComponentTicketInterval
	if set.open == nil || interval <= 0 {
		return
	}
	now := s.clock.Now()
	ns := now.UnixNano()
	type due struct {
		e      *compEntry
		ticket string
	}
	var pushes []due
	for _, e := range set.open.comps {
		e.st.mu.Lock()
		if ns >= e.st.nextPush || ns < e.st.lastPush {
			pushes = append(pushes, due{e, e.st.issueTicket(ns, set)})
		}
		e.st.mu.Unlock()
	}
	for _, p := range pushes {
		s.deliverTicket(set, p.e, p.ticket, now)
	}
}

// ticketRetention is how long an expired ticket is remembered (to answer
// 61005 rather than 61006); ticketLimit bounds the tickets kept.
const (
	ticketRetention = 24 * time.Hour
	ticketLimit     = 1024
)

// issueTicket makes a new component_verify_ticket, valid from now, and
// schedules the next push. st.mu is held.
func (st *componentState) issueTicket(now int64, set *settings) string {
	if st.tickets == nil {
		st.tickets = make(map[string]int64)
	}
	if len(st.tickets) >= ticketLimit/2 {
		cutoff := now - int64(set.cfg.ComponentTicketTTL+ticketRetention)
		for k, at := range st.tickets {
			if at < cutoff {
				delete(st.tickets, k)
			}
		}
		for len(st.tickets) >= ticketLimit {
			oldest, at := "", int64(math.MaxInt64)
			for k, v := range st.tickets {
				if v < at {
					oldest, at = k, v
				}
			}
			delete(st.tickets, oldest)
		}
	}
	ticket := randomString(ticketPrefix, len(ticketPrefix)+86)
	st.tickets[ticket] = now
	st.lastPush = now
	st.nextPush = now + int64(set.cfg.ComponentTicketInterval)
	return ticket
}

// deliverTicket pushes ticket to e's callback and counts the outcome; an
// undelivered ticket is pushed again after pushRetry.
func (s *Simulator) deliverTicket(set *settings, e *compEntry, ticket string, now time.Time) PushResult {
	res := s.push(e, msgcrypt.ComponentEvent{
		AppID:                 e.cfg.AppID,
		CreateTime:            now.Unix(),
		InfoType:              msgcrypt.InfoTypeVerifyTicket,
		ComponentVerifyTicket: ticket,
	}, now)
	res.Ticket = ticket
	if res.Delivered {
		e.st.counts.ticketPushes.Add(1)
		return res
	}
	e.st.counts.ticketPushFailures.Add(1)
	if interval := set.cfg.ComponentTicketInterval; interval > 0 {
		ns := now.UnixNano()
		e.st.mu.Lock()
		if e.st.lastPush == ns {
			e.st.nextPush = min(e.st.nextPush, ns+int64(min(pushRetry, interval)))
		}
		e.st.mu.Unlock()
	}
	return res
}

// push POSTs ev to e's CallbackURL as WeChat does: encrypted in an
// <xml><AppId/><Encrypt/></xml> envelope, with signature, timestamp, nonce,
// encrypt_type=aes and msg_signature in the query. The callback must
// answer HTTP 200 "success".
func (s *Simulator) push(e *compEntry, ev msgcrypt.ComponentEvent, now time.Time) PushResult {
	res := PushResult{ComponentAppID: e.cfg.AppID, InfoType: ev.InfoType, AuthorizerAppID: ev.AuthorizerAppID}
	if e.cfg.CallbackURL == "" {
		res.Error = "no callback URL configured"
		return res
	}
	timestamp := strconv.FormatInt(now.Unix(), 10)
	nonce := randomDigits(10)
	codec := msgcrypt.Codec{Token: e.cfg.Token, EncodingAESKey: e.cfg.EncodingAESKey, AppID: e.cfg.AppID}
	env, msgSig, err := codec.Seal(ev.Marshal(), timestamp, nonce)
	if err != nil {
		res.Error = err.Error()
		return res
	}
	u, err := url.Parse(e.cfg.CallbackURL)
	if err != nil {
		res.Error = "bad callback URL"
		return res
	}
	q := u.Query()
	q.Set("signature", msgcrypt.SignatureOf(e.cfg.Token, timestamp, nonce))
	q.Set("timestamp", timestamp)
	q.Set("nonce", nonce)
	q.Set("encrypt_type", "aes")
	q.Set("msg_signature", msgSig)
	u.RawQuery = q.Encode()
	req, err := http.NewRequest(http.MethodPost, u.String(), bytes.NewReader(env.Marshal()))
	if err != nil {
		res.Error = err.Error()
		return res
	}
	req.Header.Set("Content-Type", "text/xml")
	req.Header.Set("User-Agent", "Mozilla/4.0")
	resp, err := s.open.client.Do(req)
	if err != nil {
		res.Error = err.Error()
		return res
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
	res.Status = resp.StatusCode
	if resp.StatusCode == http.StatusOK && string(bytes.TrimSpace(body)) == "success" {
		res.Delivered = true
	} else {
		res.Error = fmt.Sprintf(`callback answered %d %q, want 200 "success"`, resp.StatusCode, truncateText(body, 64))
	}
	return res
}

func truncateText(b []byte, n int) string {
	if len(b) > n {
		return string(b[:n]) + "..."
	}
	return string(b)
}

// randomDigits returns n random decimal digits (WeChat's nonces).
func randomDigits(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // never fails
	for i := range b {
		b[i] = '0' + b[i]%10
	}
	return string(b)
}

// errNotFound marks the errors of PushComponentTicket, Authorize and
// Unauthorize that name an unknown component or authorizer.
var errNotFound = errors.New("not found")

// PushComponentTicket issues a new component_verify_ticket to the component
// appid names (every component when appid is ""), pushes it to its
// CallbackURL at once and returns the outcomes. The next scheduled push
// comes Config.ComponentTicketInterval later. The ticket is valid whether or
// not it was delivered.
func (s *Simulator) PushComponentTicket(appid string) ([]PushResult, error) {
	set := s.current.Load()
	var comps []*compEntry
	switch {
	case set.open == nil:
		return nil, fmt.Errorf("simulator: PushComponentTicket: no components configured: %w", errNotFound)
	case appid == "":
		comps = set.open.comps
	default:
		e := set.open.byComp[appid]
		if e == nil {
			return nil, fmt.Errorf("simulator: PushComponentTicket: no component %s: %w", quoteID(appid), errNotFound)
		}
		comps = []*compEntry{e}
	}
	now := s.clock.Now()
	out := make([]PushResult, 0, len(comps))
	for _, e := range comps {
		e.st.mu.Lock()
		ticket := e.st.issueTicket(now.UnixNano(), set)
		e.st.mu.Unlock()
		out = append(out, s.deliverTicket(set, e, ticket, now))
	}
	s.armTicketTimer()
	return out, nil
}

// findAuthorizer returns the authorizer authorizerAppID of the component
// componentAppID; componentAppID may be "" when the authorizer belongs to
// one component only.
func (set *settings) findAuthorizer(componentAppID, authorizerAppID string) (*authEntry, error) {
	if set.open == nil {
		return nil, fmt.Errorf("no components configured: %w", errNotFound)
	}
	if componentAppID != "" {
		if set.open.byComp[componentAppID] == nil {
			return nil, fmt.Errorf("no component %s: %w", quoteID(componentAppID), errNotFound)
		}
		a := set.open.auths[[2]string{componentAppID, authorizerAppID}]
		if a == nil {
			return nil, fmt.Errorf("no authorizer %s of component %s: %w", quoteID(authorizerAppID), componentAppID, errNotFound)
		}
		return a, nil
	}
	switch list := set.open.byApp[authorizerAppID]; len(list) {
	case 0:
		return nil, fmt.Errorf("no authorizer %s: %w", quoteID(authorizerAppID), errNotFound)
	case 1:
		return list[0], nil
	default:
		return nil, fmt.Errorf("authorizer %s authorises %d components: name the component_appid", authorizerAppID, len(list))
	}
}

// AuthorizeResult is the outcome of Authorize.
type AuthorizeResult struct {
	ComponentAppID  string `json:"component_appid"`
	AuthorizerAppID string `json:"authorizer_appid"`
	// AuthorizationCode is the code api_query_auth exchanges, valid for
	// ExpiresIn seconds, once.
	AuthorizationCode string `json:"authorization_code"`
	ExpiresIn         int    `json:"expires_in"`
	// PreAuthCode is the pre_auth_code the authorization used.
	PreAuthCode string `json:"pre_auth_code"`
	// Push is the outcome of the authorized (or updateauthorized) push.
	Push PushResult `json:"push"`
}

// Authorize simulates the administrator of authorizerAppID authorising the
// component (componentAppID may be "" when the authorizer belongs to one
// component only) on WeChat's authorization page: it creates an
// authorization_code and pushes an authorized event (updateauthorized when
// the authorizer already authorised) to the component's callback. The
// authorizer's tokens come from api_query_auth with the code. preAuthCode,
// when not empty, must be an unexpired pre_auth_code of the component,
// which it consumes; when empty one is made up.
func (s *Simulator) Authorize(componentAppID, authorizerAppID, preAuthCode string) (AuthorizeResult, error) {
	set := s.current.Load()
	a, err := set.findAuthorizer(componentAppID, authorizerAppID)
	if err != nil {
		return AuthorizeResult{}, fmt.Errorf("simulator: Authorize: %w", err)
	}
	now := s.clock.Now()
	ns := now.UnixNano()
	cs := a.comp.st
	cs.mu.Lock()
	if preAuthCode != "" {
		exp, ok := cs.preAuth[preAuthCode]
		if !ok || exp <= ns {
			cs.mu.Unlock()
			return AuthorizeResult{}, errors.New("simulator: Authorize: the pre_auth_code is unknown, used or expired")
		}
		delete(cs.preAuth, preAuthCode)
	} else {
		preAuthCode = randomString(preAuthCodePrefix, len(preAuthCodePrefix)+64)
	}
	if cs.codes == nil {
		cs.codes = make(map[string]authCode)
	}
	pruneCodes(cs.codes, ns, func(ac authCode) int64 { return ac.expires })
	code := randomString(authCodePrefix, len(authCodePrefix)+86)
	expires := now.Add(authCodeLifetime)
	cs.codes[code] = authCode{auth: a.st, expires: expires.UnixNano()}
	cs.mu.Unlock()

	a.st.mu.Lock()
	info := msgcrypt.InfoTypeAuthorized
	if a.st.authorized {
		info = msgcrypt.InfoTypeUpdateAuthorized
	}
	a.st.authorized = true
	a.st.mu.Unlock()

	res := AuthorizeResult{
		ComponentAppID:    a.comp.cfg.AppID,
		AuthorizerAppID:   a.cfg.AppID,
		AuthorizationCode: code,
		ExpiresIn:         int(authCodeLifetime / time.Second),
		PreAuthCode:       preAuthCode,
	}
	res.Push = s.pushEvent(a.comp, msgcrypt.ComponentEvent{
		AppID:                        a.comp.cfg.AppID,
		CreateTime:                   now.Unix(),
		InfoType:                     info,
		AuthorizerAppID:              a.cfg.AppID,
		AuthorizationCode:            code,
		AuthorizationCodeExpiredTime: expires.Unix(),
		PreAuthCode:                  preAuthCode,
	}, now)
	return res, nil
}

// UnauthorizeResult is the outcome of Unauthorize.
type UnauthorizeResult struct {
	ComponentAppID  string `json:"component_appid"`
	AuthorizerAppID string `json:"authorizer_appid"`
	// RevokedTokens is how many valid authorizer access tokens stopped
	// working.
	RevokedTokens int `json:"revoked_tokens"`
	// Push is the outcome of the unauthorized push.
	Push PushResult `json:"push"`
}

// Unauthorize simulates the administrator of authorizerAppID cancelling the
// authorization of the component (componentAppID may be "" when the
// authorizer belongs to one component only): its refresh tokens answer
// 61023 from now on, its access tokens 40001, its pending authorization
// codes 61009, and an unauthorized event is pushed to the component's
// callback. It is an error when the authorizer is not authorised.
func (s *Simulator) Unauthorize(componentAppID, authorizerAppID string) (UnauthorizeResult, error) {
	set := s.current.Load()
	a, err := set.findAuthorizer(componentAppID, authorizerAppID)
	if err != nil {
		return UnauthorizeResult{}, fmt.Errorf("simulator: Unauthorize: %w", err)
	}
	now := s.clock.Now()
	ns := now.UnixNano()
	a.st.mu.Lock()
	if !a.st.authorized {
		a.st.mu.Unlock()
		return UnauthorizeResult{}, fmt.Errorf("simulator: Unauthorize: %s does not authorise %s", a.cfg.AppID, a.comp.cfg.AppID)
	}
	a.st.authorized = false
	a.st.refreshCur, a.st.refreshPrev, a.st.prevUntil, a.st.tokenCur = "", "", 0, nil
	a.st.mu.Unlock()
	n := s.tokens.revoke(ns, func(t *token) bool { return t.auth == a.st })

	cs := a.comp.st
	cs.mu.Lock()
	for k, ac := range cs.codes {
		if ac.auth == a.st {
			delete(cs.codes, k)
		}
	}
	cs.mu.Unlock()

	res := UnauthorizeResult{ComponentAppID: a.comp.cfg.AppID, AuthorizerAppID: a.cfg.AppID, RevokedTokens: n}
	res.Push = s.pushEvent(a.comp, msgcrypt.ComponentEvent{
		AppID:           a.comp.cfg.AppID,
		CreateTime:      now.Unix(),
		InfoType:        msgcrypt.InfoTypeUnauthorized,
		AuthorizerAppID: a.cfg.AppID,
	}, now)
	return res, nil
}

// pushEvent pushes an authorization event and counts the outcome.
func (s *Simulator) pushEvent(e *compEntry, ev msgcrypt.ComponentEvent, now time.Time) PushResult {
	res := s.push(e, ev, now)
	if res.Delivered {
		e.st.counts.eventPushes.Add(1)
	} else {
		e.st.counts.eventPushFailures.Add(1)
	}
	return res
}
