package token

import (
	"context"
	"sync"
	"testing"
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
