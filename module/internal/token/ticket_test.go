package token

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/wxgate/caddy-wechat/module/internal/wxapi"
)

// ticketPlatform is a platformFetcher that also serves tickets the way the
// simulator does (the same ticket until it expires), checking the token.
type ticketPlatform struct {
	*platformFetcher
	mu       sync.Mutex
	tickets  int // ticket-endpoint calls
	minted   int
	value    string
	expires  time.Time
	rejectOn string // a token value the ticket endpoint refuses with 40001
	fresh    bool   // a new ticket on every call, not the same until it expires
}

func (f *ticketPlatform) FetchTicket(_ context.Context, a *Account, accessToken string) (Fetched, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.tickets++
	if accessToken == f.rejectOn {
		return Fetched{}, &FetchError{Endpoint: a.Endpoint.Path(), Errcode: wxapi.CodeInvalidCredential, Errmsg: "invalid credential"}
	}
	now := f.clock.Now()
	if f.value == "" || !now.Before(f.expires) || f.fresh {
		f.minted++
		f.value = fmt.Sprintf("ticket-%d-0123456789", f.minted)
		f.expires = now.Add(2 * time.Hour)
	}
	return Fetched{Value: f.value, ExpiresIn: f.expires.Sub(now).Truncate(time.Second)}, nil
}

func (f *ticketPlatform) ticketCalls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.tickets
}

func newTicketManager(t *testing.T) (*Manager, *Handle, *Handle, *ManualClock, *ticketPlatform) {
	t.Helper()
	clock := NewFrozenClock(t0)
	f := &ticketPlatform{platformFetcher: &platformFetcher{clock: clock}}
	m, parent, ticket := ticketInstance(t, clock, f, nil)
	return m, parent, ticket, clock, f
}

// ticketInstance is a manager with the official account mp and its jsapi
// ticket, fetched from f, sharing store (nil: none) with other instances.
func ticketInstance(t *testing.T, clock Clock, f *ticketPlatform, store Store) (*Manager, *Handle, *Handle) {
	t.Helper()
	m := NewManager(Options{Clock: clock, Fetcher: f, Store: store, Rand: func() float64 { return 0.5 }})
	parent, err := m.Register(Account{Name: "mp", Kind: Official, AppID: "wx1", Secret: "s"})
	if err != nil {
		t.Fatal(err)
	}
	ticket, err := m.Register(Account{Name: "mp/jsapi", Endpoint: JSAPITicket, Parent: parent})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ticket.Release(); parent.Release() })
	return m, parent, ticket
}

func TestTicketStormIsOneFetch(t *testing.T) {
	_, _, ticket, _, f := newTicketManager(t)
	wait := storm(1000, func(int) bool {
		tok, err := ticket.Token(context.Background())
		return err == nil && tok.Value == "ticket-1-0123456789"
	})
	if bad := wait(); bad != 0 {
		t.Fatalf("%d callers got an error or another ticket", bad)
	}
	if n := f.ticketCalls(); n != 1 {
		t.Errorf("%d ticket fetches, want 1", n)
	}
	if calls, _ := f.counts(); calls != 1 {
		t.Errorf("%d token fetches, want 1", calls)
	}
}

// TestTicketFetchRefreshesARejectedToken: a ticket call answered 40001
// reports the token, which is replaced once, and the ticket call is made
// again with the new token.
func TestTicketFetchRefreshesARejectedToken(t *testing.T) {
	_, parent, ticket, clock, f := newTicketManager(t)
	tok := mustToken(t, parent)
	clock.Advance(time.Minute) // past the cooldown
	f.mu.Lock()
	f.rejectOn = tok.Value
	f.mu.Unlock()
	f.platformFetcher.mu.Lock()
	f.platformFetcher.value = "" // WeChat revoked it: the next stable_token call mints anew
	f.platformFetcher.mu.Unlock()
	got, err := ticket.Token(context.Background())
	if err != nil || got == nil {
		t.Fatalf("ticket after a rejected token: %v", err)
	}
	if n := f.ticketCalls(); n != 2 {
		t.Errorf("%d ticket calls, want 2 (rejected, then with the new token)", n)
	}
	if cur := mustToken(t, parent); cur.Value == tok.Value {
		t.Error("the rejected token is still current")
	}
}

// TestTicketDayAtMostThirteenFetches: a ticket in use all day, with the
// background refresh running, is fetched at most 13 times and always
// served.
func TestTicketDayAtMostThirteenFetches(t *testing.T) {
	m, _, ticket, clock, f := newTicketManager(t)
	for elapsed := time.Duration(0); elapsed < 24*time.Hour; elapsed += 10 * time.Second {
		tok, err := ticket.Token(context.Background())
		if err != nil || !clock.Now().Before(tok.Expires) {
			t.Fatalf("at %v: %v %v", elapsed, tok, err)
		}
		m.RefreshDue(context.Background())
		clock.Advance(10 * time.Second)
	}
	if n := f.ticketCalls(); n > 13 {
		t.Errorf("%d ticket fetches in a day, want at most 13", n)
	}
}

// TestTicketsHandedOutWithTimeToCache: an endpoint that hands out a new
// ticket when asked has it asked TicketMargin before the ticket expires, so
// that every ticket handed out has more than the 25 minutes SDKs take off
// before caching it; one that hands back the same ticket until it expires
// is asked early once, then no more (TestTicketDayAtMostThirteenFetches).
func TestTicketsHandedOutWithTimeToCache(t *testing.T) {
	m, _, ticket, clock, f := newTicketManager(t)
	f.mu.Lock()
	f.fresh = true
	f.mu.Unlock()
	for elapsed := time.Duration(0); elapsed < 24*time.Hour; elapsed += 10 * time.Second {
		tok, err := ticket.Token(context.Background())
		if err != nil {
			t.Fatalf("at %v: %v", elapsed, err)
		}
		if left := tok.Expires.Sub(clock.Now()); left <= 25*time.Minute {
			t.Fatalf("at %v: a ticket with %v left handed out", elapsed, left)
		}
		m.RefreshDue(context.Background())
		clock.Advance(10 * time.Second)
	}
	if n := f.ticketCalls(); n > 17 {
		t.Errorf("%d ticket fetches in a day, want at most 17 (one each 1h30)", n)
	}
}

func TestTicketNeedsAParentOfItsKind(t *testing.T) {
	m, parent, _, _, _ := newTicketManager(t)
	if _, err := m.Register(Account{Name: "x", Endpoint: AgentTicket, Parent: parent}); err == nil {
		t.Error("an agent_config ticket of an official account was accepted")
	}
	if _, err := m.Register(Account{Name: "y", Endpoint: JSAPITicket}); err == nil {
		t.Error("a ticket without a parent was accepted")
	}
}

// TestTicketDayInACluster: two instances sharing a Store, a ticket in use
// on both all day: the endpoint that hands its ticket back until it
// expires is asked early once for the cluster, not once a lifetime by each
// instance that adopted the other's ticket from the Store.
func TestTicketDayInACluster(t *testing.T) {
	clock := NewFrozenClock(t0)
	f := &ticketPlatform{platformFetcher: &platformFetcher{clock: clock}}
	store := newMemStore()
	var ms []*Manager
	var tickets []*Handle
	for range 2 {
		m, _, ticket := ticketInstance(t, clock, f, store)
		ms, tickets = append(ms, m), append(tickets, ticket)
	}
	for elapsed := time.Duration(0); elapsed < 24*time.Hour; elapsed += 10 * time.Second {
		for i, m := range ms {
			if _, err := tickets[i].Token(context.Background()); err != nil {
				t.Fatalf("instance %d at %v: %v", i, elapsed, err)
			}
			m.RefreshDue(context.Background())
		}
		clock.Advance(10 * time.Second)
	}
	if n := f.ticketCalls(); n > 14 {
		t.Errorf("%d ticket fetches in a day for the cluster, want at most 14", n)
	}
}
