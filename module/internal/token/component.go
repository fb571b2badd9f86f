package token

import (
	"context"
	"errors"
	"time"

	"go.uber.org/zap"

	"github.com/wxgate/caddy-wechat/module/internal/wxapi"
)

// A third-party platform's component_access_token needs the
// component_verify_ticket that WeChat pushes to the platform's callback URL
// every 10 minutes. The callback hands it to the Manager, which keeps it in
// memory and in the Store: in a cluster, only the instance that got the
// push has it otherwise.

// VerifyTicket is a component_verify_ticket, when WeChat issued it (the
// push's CreateTime), and when it arrived. Rejected marks a ticket
// api_component_token refused (61005, 61006): it is kept, so that an older
// one cannot come back, but not used.
type VerifyTicket struct {
	Ticket   string    `json:"ticket"`
	Issued   time.Time `json:"issued"`
	Received time.Time `json:"received"`
	Rejected bool      `json:"rejected,omitempty"`
}

// supersedes reports whether t is newer news than old: issued later, the
// same ticket now known to be rejected, or another ticket of the same
// second (WeChat's CreateTime counts seconds) that is not refused where
// old is, or else was received later.
func (t *VerifyTicket) supersedes(old *VerifyTicket) bool {
	switch {
	case old == nil || t.Issued.After(old.Issued):
		return true
	case !t.Issued.Equal(old.Issued):
		return false
	case t.Ticket == old.Ticket:
		return t.Rejected && !old.Rejected
	case t.Rejected != old.Rejected:
		return !t.Rejected
	}
	return t.Received.After(old.Received)
}

// VerifyTicketTTL is how long WeChat accepts a component_verify_ticket.
const VerifyTicketTTL = 12 * time.Hour

// errNoVerifyTicket says a platform's token cannot be asked for yet.
var errNoVerifyTicket = &FetchError{Endpoint: ComponentToken.Path(),
	Err: errors.New("no component_verify_ticket has arrived yet: WeChat pushes one to the platform's callback URL every 10 minutes")}

// errRefusedVerifyTicket says the only ticket held was refused by WeChat.
var errRefusedVerifyTicket = &FetchError{Endpoint: ComponentToken.Path(),
	Err: errors.New("WeChat refused the last component_verify_ticket (61005/61006); waiting for its next push to the platform's callback URL")}

func verifyTicketKey(a *Account) string { return storePrefix + a.Key() + "/verify_ticket.json" }

// refusedTicketKey is where the last ticket WeChat refused is recorded,
// apart from the ticket itself: a refusal written over the ticket's record
// could replace a newer push another instance wrote meanwhile.
func refusedTicketKey(a *Account) string {
	return storePrefix + a.Key() + "/verify_ticket_refused.json"
}

// refusedTicket names a refused ticket in the Store.
type refusedTicket struct {
	Ticket string    `json:"ticket"`
	Issued time.Time `json:"issued"`
}

// SetVerifyTicket records the component_verify_ticket WeChat pushed for a
// component account, issued at issued, and shares it through the Store. A
// ticket issued before the one held is ignored: a replayed push cannot
// bring an old ticket back.
func (h *Handle) SetVerifyTicket(ctx context.Context, ticket string, issued time.Time) error {
	m, e := h.m, h.e
	a := e.acct.Load()
	if a.Kind != Component {
		return errors.New("account " + a.Name + " is not a third-party platform")
	}
	vt := &VerifyTicket{Ticket: ticket, Issued: issued, Received: m.opts.Clock.Now()}
	// An older push is stale, the same push again a replay. Another ticket
	// of the same second is the later push: WeChat's CreateTime counts
	// seconds, and an emulator on a clock that stands still pushes more
	// than one a second.
	if old := m.currentVerifyTicket(ctx, e, a); old != nil &&
		(issued.Before(old.Issued) || issued.Equal(old.Issued) && ticket == old.Ticket) {
		return nil
	}
	e.verifyTicket.Store(vt)
	e.mu.Lock()
	if !e.tripped {
		// A refresh waiting out a backoff for want of a ticket may go now.
		e.retryAt = time.Time{}
	}
	e.mu.Unlock()
	return m.shareVerifyTicket(ctx, a, vt)
}

// shareVerifyTicket writes vt to the Store, if there is one.
func (m *Manager) shareVerifyTicket(ctx context.Context, a *Account, vt *VerifyTicket) error {
	return m.storeShared(ctx, verifyTicketKey(a), vt)
}

// rejectVerifyTicket marks vt rejected, here unless a newer ticket has
// replaced it meanwhile (compare-and-invalidate), and in the Store in a
// record of its own, which marks the ticket record refused only while that
// still holds vt: the next refresh then waits for WeChat's next push
// instead of spending calls on a ticket WeChat refuses.
func (m *Manager) rejectVerifyTicket(ctx context.Context, e *entry, a *Account, vt *VerifyTicket) {
	r := *vt
	r.Rejected = true
	if !e.verifyTicket.CompareAndSwap(vt, &r) {
		return
	}
	m.lg().Warn("WeChat refused the component_verify_ticket; waiting for the next push to the callback",
		zap.String("account", a.Name), zap.Time("issued", vt.Issued))
	if m.sharedStore() == nil {
		return
	}
	if err := m.storeShared(ctx, refusedTicketKey(a), refusedTicket{Ticket: vt.Ticket, Issued: vt.Issued}); err != nil {
		m.lg().Warn("could not share a refused component_verify_ticket", zap.String("account", a.Name), zap.Error(err))
	}
	// A ticket another instance took meanwhile (later, or another of the
	// same second) is taken here too.
	if stored := m.storedVerifyTicket(ctx, a); stored != nil && stored.supersedes(&r) {
		e.verifyTicket.CompareAndSwap(&r, stored)
	}
}

// currentVerifyTicket returns the newest ticket held here or in the Store.
func (m *Manager) currentVerifyTicket(ctx context.Context, e *entry, a *Account) *VerifyTicket {
	vt := e.verifyTicket.Load()
	if stored := m.storedVerifyTicket(ctx, a); stored != nil && stored.supersedes(vt) {
		vt = stored
		e.verifyTicket.Store(vt)
	}
	return vt
}

// storedVerifyTicket returns the ticket in the Store, or nil: no Store, no
// ticket or no answer.
func (m *Manager) storedVerifyTicket(ctx context.Context, a *Account) *VerifyTicket {
	var stored VerifyTicket
	if !m.loadShared(ctx, verifyTicketKey(a), &stored) || stored.Ticket == "" {
		return nil
	}
	var refused refusedTicket
	if m.loadShared(ctx, refusedTicketKey(a), &refused) && refused.Ticket == stored.Ticket && refused.Issued.Equal(stored.Issued) {
		stored.Rejected = true
	}
	return &stored
}

// fetchComponentToken asks api_component_token for a component token with
// vt, the newest verify ticket, which call found usable.
func (m *Manager) fetchComponentToken(ctx context.Context, e *entry, a *Account, vt *VerifyTicket) (Fetched, error) {
	with := *a
	with.VerifyTicket = vt.Ticket
	f, err := m.opts.Fetcher.Fetch(ctx, &with, false)
	var fe *FetchError
	if errors.As(err, &fe) && (fe.Errcode == wxapi.CodeVerifyTicketExpired || fe.Errcode == wxapi.CodeVerifyTicketInvalid) {
		m.rejectVerifyTicket(ctx, e, a, vt)
	}
	return f, err
}

// VerifyTicketStatus reports the verify ticket a component account holds:
// when it arrived, and whether it is within its 12 hours. Never the ticket.
func (h *Handle) VerifyTicketStatus() (received time.Time, fresh bool) {
	vt := h.e.verifyTicket.Load()
	if vt == nil || vt.Rejected {
		return time.Time{}, false
	}
	return vt.Received, h.m.opts.Clock.Now().Sub(vt.Received) < VerifyTicketTTL
}
