package token

import (
	"context"
	"sync"
	"testing"
)

// TestRefreshIsCompareAndRefresh: ten refreshes of one generation at once
// make one fetch, also with a Store holding the current token.
func TestRefreshIsCompareAndRefresh(t *testing.T) {
	for _, withStore := range []bool{false, true} {
		f := &fakeFetcher{}
		m, h, _ := newTestManager(t, f, Account{Name: "mp", Kind: Official, AppID: "wx1", Secret: "s3cret", Endpoint: ClientCredential})
		if withStore {
			m.SetStore(newMemStore())
		}
		tok := mustToken(t, h)
		var wg sync.WaitGroup
		for range 10 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				gen := tok.Generation
				if _, _, err := h.Refresh(context.Background(), &gen); err != nil {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
		if f.count() != 2 {
			t.Errorf("store %v: %d fetches, want 2 (the first, one refresh)", withStore, f.count())
		}
		if cur := mustToken(t, h); cur.Generation != tok.Generation+1 {
			t.Errorf("store %v: generation %d, want %d", withStore, cur.Generation, tok.Generation+1)
		}
	}
}

// TestResumeClearsTheGuard: a tripped guard is cleared and a token fetched
// at once, with the secret given.
func TestResumeClearsTheGuard(t *testing.T) {
	f := &fakeFetcher{}
	_, h, _ := newTestManager(t, f, Account{})
	f.fail = func() error { return &FetchError{Errcode: 40125, Errmsg: "invalid appsecret"} }
	if _, err := h.Token(context.Background()); err == nil {
		t.Fatal("a wrong secret gave a token")
	}
	if _, err := h.Token(context.Background()); err == nil {
		t.Fatal("the guard did not trip")
	}
	calls := f.count()
	f.mu.Lock()
	f.fail = nil
	f.mu.Unlock()
	tok, err := h.Resume(context.Background(), "fixed-secret")
	if err != nil || tok == nil || f.count() != calls+1 {
		t.Fatalf("resume: %v, %v (%d calls)", tok, err, f.count()-calls)
	}
	if h.Account().Secret != "fixed-secret" {
		t.Error("the fixed secret was not applied")
	}
}

// TestResumePastTheBudgetIsBounded: with the day's budget spent, each
// Resume grants one call more, MaxResumeProbes a day in all, whatever
// refreshes follow; the day's count stays the true one.
func TestResumePastTheBudgetIsBounded(t *testing.T) {
	f := &fakeFetcher{}
	m, h, _ := newTestManager(t, f, Account{Name: "mp", Kind: Official, AppID: "wx1", Secret: "s3cret", Endpoint: ClientCredential, DailyBudget: 2})
	for range 5 {
		_, _, _ = h.Refresh(context.Background(), nil)
	}
	if f.count() != 2 {
		t.Fatalf("%d calls with a budget of 2", f.count())
	}
	for range 20 {
		_, _ = h.Resume(context.Background(), "")
		_, _, _ = h.Refresh(context.Background(), nil)
	}
	if f.count() != 2+MaxResumeProbes {
		t.Errorf("%d calls after 20 resumes and refreshes, want %d", f.count(), 2+MaxResumeProbes)
	}
	if st := m.Statuses(); len(st) != 1 || st[0].CallsToday != f.count() {
		t.Errorf("status: %+v, want %d calls today", st, f.count())
	}
}
