package token

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wxgate/caddy-wechat/module/internal/wxapi"
)

// ticketRecorder is a Fetcher that remembers the verify tickets it sent.
type ticketRecorder struct {
	fakeFetcher
	mu      sync.Mutex
	tickets []string
}

func (f *ticketRecorder) Fetch(ctx context.Context, a *Account, force bool) (Fetched, error) {
	f.mu.Lock()
	f.tickets = append(f.tickets, a.VerifyTicket)
	f.mu.Unlock()
	return f.fakeFetcher.Fetch(ctx, a, force)
}

func TestComponentTokenNeedsTheVerifyTicket(t *testing.T) {
	f := &ticketRecorder{}
	store := newMemStore()
	m := NewManager(Options{Clock: NewFrozenClock(t0), Fetcher: f, Store: store})
	comp := Account{Name: "platform", Kind: Component, AppID: "wxcomp", Secret: "compsecret"}
	h, err := m.Register(comp)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Release()
	if _, err := h.Token(context.Background()); err == nil {
		t.Fatal("a component token without a verify ticket")
	}
	if f.count() != 0 {
		t.Fatalf("%d calls without a ticket; want none", f.count())
	}
	// The ticket reaches another instance of the cluster through the
	// Store; that one fetches the token with it.
	other := NewManager(Options{Clock: NewFrozenClock(t0), Fetcher: f, Store: store})
	oh, err := other.Register(comp)
	if err != nil {
		t.Fatal(err)
	}
	defer oh.Release()
	if err := oh.SetVerifyTicket(context.Background(), "ticket@1", t0); err != nil {
		t.Fatal(err)
	}
	h.e.mu.Lock()
	h.e.clearGuard()
	h.e.mu.Unlock()
	tok, err := h.Token(context.Background())
	if err != nil || tok == nil {
		t.Fatalf("component token with a stored ticket: %v", err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.tickets) != 1 || f.tickets[0] != "ticket@1" {
		t.Errorf("tickets sent %q, want the pushed one", f.tickets)
	}
	if recv, fresh := h.VerifyTicketStatus(); recv.IsZero() || !fresh {
		t.Errorf("ticket status %v %v", recv, fresh)
	}
}

func TestRefusedVerifyTicketWaitsForTheNextPush(t *testing.T) {
	clock := NewFrozenClock(t0)
	refuse := true
	f := &ticketRecorder{}
	f.fail = func() error {
		if refuse {
			return &FetchError{Endpoint: ComponentToken.Path(), Errcode: wxapi.CodeVerifyTicketExpired}
		}
		return nil
	}
	store := newMemStore()
	comp := Account{Name: "platform", Kind: Component, AppID: "wxcomp", Secret: "compsecret"}
	register := func() *Handle {
		m := NewManager(Options{Clock: clock, Fetcher: f, Store: store})
		h, err := m.Register(comp)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(h.Release)
		return h
	}
	h, other := register(), register()
	ctx := context.Background()
	if err := h.SetVerifyTicket(ctx, "ticket@1", t0); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Token(ctx); err == nil {
		t.Fatal("a token from a refused ticket")
	}
	// Past every backoff, neither this instance nor another one asks
	// again with the refused ticket, or counts a call against its budget.
	for range 6 {
		clock.Advance(10 * time.Minute)
		for _, x := range []*Handle{h, other} {
			if _, err := x.Token(ctx); err == nil || !strings.Contains(err.Error(), "refused") {
				t.Fatalf("a refused ticket: err %v", err)
			}
		}
	}
	if f.count() != 1 {
		t.Fatalf("%d calls with one refused ticket; want 1", f.count())
	}
	for i, x := range []*Handle{h, other} {
		x.e.mu.Lock()
		calls := x.e.calls
		x.e.mu.Unlock()
		if want := 1 - i; calls != want {
			t.Errorf("instance %d counted %d calls against its budget; want %d", i, calls, want)
		}
	}
	if _, fresh := other.VerifyTicketStatus(); fresh {
		t.Error("a refused ticket reported fresh")
	}
	// A replay of the refused push does not bring it back either.
	if err := other.SetVerifyTicket(ctx, "ticket@1", t0); err != nil {
		t.Fatal(err)
	}
	if _, err := other.Token(ctx); err == nil || f.count() != 1 {
		t.Fatalf("replayed refused ticket: err %v, %d calls", err, f.count())
	}
	// The instance the next push reaches uses it at once, without waiting
	// out its backoff; the other one gets the token through the Store when
	// its own backoff ends.
	refuse = false
	if err := other.SetVerifyTicket(ctx, "ticket@2", t0.Add(10*time.Minute)); err != nil {
		t.Fatal(err)
	}
	if _, err := other.Token(ctx); err != nil {
		t.Fatalf("token after a new push: %v", err)
	}
	clock.Advance(DefaultBackoffMax + time.Minute)
	if _, err := h.Token(ctx); err != nil || f.count() != 2 {
		t.Fatalf("shared token after a new push: err %v, %d calls; want 2", err, f.count())
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if want := []string{"ticket@1", "ticket@2"}; len(f.tickets) != 2 || f.tickets[1] != want[1] {
		t.Errorf("tickets sent %q, want %q", f.tickets, want)
	}
}

// TestVerifyTicketOfTheSameSecond: a push is taken unless it is older than
// the ticket held, or the same push again; another ticket of the same
// second is the later push.
func TestVerifyTicketOfTheSameSecond(t *testing.T) {
	m := NewManager(Options{Clock: NewFrozenClock(t0), Fetcher: &fakeFetcher{}})
	h, err := m.Register(Account{Name: "platform", Kind: Component, AppID: "wxcomp", Secret: "compsecret"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Release)
	ctx := context.Background()
	for i, c := range []struct {
		ticket string
		issued time.Time
		want   string
	}{
		{"ticket@1", t0, "ticket@1"},
		{"ticket@2", t0, "ticket@2"},
		{"ticket@1", t0.Add(-time.Second), "ticket@2"},
		{"ticket@2", t0, "ticket@2"},
		{"ticket@3", t0.Add(time.Second), "ticket@3"},
	} {
		if err := h.SetVerifyTicket(ctx, c.ticket, c.issued); err != nil {
			t.Fatal(err)
		}
		if got := m.currentVerifyTicket(ctx, h.e, h.e.acct.Load()); got == nil || got.Ticket != c.want {
			t.Fatalf("push %d (%s): holding %+v, want %s", i+1, c.ticket, got, c.want)
		}
	}
}

// TestVerifyTicketOfTheSameSecondAcrossInstances: another ticket of the
// same second that one instance took reaches the others through the
// Store, and a refusal of the older one on an instance that had not seen
// it yet does not overwrite it there.
func TestVerifyTicketOfTheSameSecondAcrossInstances(t *testing.T) {
	for _, gap := range []time.Duration{100 * time.Millisecond, 0} {
		clock := NewFrozenClock(t0)
		store := newMemStore()
		x, y := platformInstance(t, clock, store), platformInstance(t, clock, store)
		ctx := context.Background()
		held := func(h *Handle) *VerifyTicket { return h.m.currentVerifyTicket(ctx, h.e, h.e.acct.Load()) }
		if err := x.SetVerifyTicket(ctx, "ticket@1", t0); err != nil {
			t.Fatal(err)
		}
		if got := held(y); got == nil || got.Ticket != "ticket@1" {
			t.Fatalf("y holds %+v", got)
		}
		clock.Advance(gap)
		if err := y.SetVerifyTicket(ctx, "ticket@2", t0); err != nil {
			t.Fatal(err)
		}
		old := x.e.verifyTicket.Load()
		if got := held(x); gap > 0 && got.Ticket != "ticket@2" {
			t.Errorf("x holds %s after y took ticket@2 of the same second, received later", got.Ticket)
		}
		// WeChat refuses ticket@1 on x, which used it before it saw ticket@2.
		x.e.verifyTicket.Store(old)
		x.m.rejectVerifyTicket(ctx, x.e, x.e.acct.Load(), old)
		var stored VerifyTicket
		if raw, err := store.Load(ctx, verifyTicketKey(x.Account())); err != nil || json.Unmarshal(raw, &stored) != nil || stored.Ticket != "ticket@2" || stored.Rejected {
			t.Fatalf("gap %v: the Store holds %+v (%v) after x's refusal of ticket@1, want ticket@2", gap, stored, err)
		}
		if got := held(x); got.Ticket != "ticket@2" || got.Rejected {
			t.Fatalf("gap %v: x holds %+v after its refusal of ticket@1, want ticket@2", gap, got)
		}
	}
}

// hookStore runs onLoad once, after the first Load of a verify ticket.
type hookStore struct {
	*memStore
	onLoad func()
}

func (s *hookStore) Load(ctx context.Context, key string) ([]byte, error) {
	raw, err := s.memStore.Load(ctx, key)
	if f := s.onLoad; f != nil && strings.HasSuffix(key, "verify_ticket.json") {
		s.onLoad = nil
		f()
	}
	return raw, err
}

// TestRefusalKeepsANewerPush: a push another instance writes while this
// one records WeChat's refusal of the older ticket stays, usable, for
// every instance.
func TestRefusalKeepsANewerPush(t *testing.T) {
	clock := NewFrozenClock(t0)
	store := &hookStore{memStore: newMemStore()}
	x, y, z := platformInstance(t, clock, store), platformInstance(t, clock, store), platformInstance(t, clock, store)
	ctx := context.Background()
	if err := x.SetVerifyTicket(ctx, "ticket@1", t0); err != nil {
		t.Fatal(err)
	}
	clock.Advance(10 * time.Minute)
	vt := x.e.verifyTicket.Load()
	store.onLoad = func() { // y takes the next push while x records the refusal
		if err := y.SetVerifyTicket(ctx, "ticket@2", t0.Add(10*time.Minute)); err != nil {
			t.Error(err)
		}
	}
	x.m.rejectVerifyTicket(ctx, x.e, x.e.acct.Load(), vt)
	for i, h := range []*Handle{x, y, z} {
		if got := h.m.currentVerifyTicket(ctx, h.e, h.e.acct.Load()); got == nil || got.Ticket != "ticket@2" || got.Rejected {
			t.Errorf("instance %d holds %+v, want ticket@2, usable", i, got)
		}
	}
}

// platformInstance is one instance of the platform "platform", sharing
// store with the others.
func platformInstance(t *testing.T, clock Clock, store Store) *Handle {
	t.Helper()
	h, err := NewManager(Options{Clock: clock, Fetcher: &fakeFetcher{}, Store: store}).Register(
		Account{Name: "platform", Kind: Component, AppID: "wxcomp", Secret: "compsecret"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Release)
	return h
}
