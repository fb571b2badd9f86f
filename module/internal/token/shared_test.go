package token

import (
	"context"
	"errors"
	"io/fs"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

// memStore is a Store in memory whose Lock really excludes, and which can
// be taken down.
type memStore struct {
	mu    sync.Mutex
	data  map[string][]byte
	locks map[string]chan struct{}
	down  atomic.Bool
	// waiting, if set, is told the name of each lock a caller finds held
	// and waits for.
	waiting chan string
}

func newMemStore() *memStore {
	return &memStore{data: make(map[string][]byte), locks: make(map[string]chan struct{})}
}

var errDown = errors.New("connection refused")

func (s *memStore) Lock(ctx context.Context, name string) error {
	for {
		if s.down.Load() {
			return errDown
		}
		s.mu.Lock()
		held, ok := s.locks[name]
		if !ok {
			s.locks[name] = make(chan struct{})
			s.mu.Unlock()
			return nil
		}
		s.mu.Unlock()
		if s.waiting != nil {
			select {
			case s.waiting <- name:
			default:
			}
		}
		select {
		case <-held:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (s *memStore) Unlock(ctx context.Context, name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if held, ok := s.locks[name]; ok {
		close(held)
		delete(s.locks, name)
	}
	return nil
}

func (s *memStore) Store(ctx context.Context, key string, value []byte) error {
	if s.down.Load() {
		return errDown
	}
	if err := ctx.Err(); err != nil {
		return err // as a Store over the network does
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.data[key] = append([]byte(nil), value...)
	return nil
}

func (s *memStore) Load(ctx context.Context, key string) ([]byte, error) {
	if s.down.Load() {
		return nil, errDown
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.data[key]
	if !ok {
		return nil, fs.ErrNotExist
	}
	return v, nil
}

var testAccount = Account{Name: "mp", Kind: Official, AppID: "wx1", Secret: "s3cret", Endpoint: ClientCredential}

// cluster is n Managers sharing one fetcher, store and clock.
func cluster(t *testing.T, n int, store Store) ([]*Manager, []*Handle, *fakeFetcher, *ManualClock) {
	t.Helper()
	f := &fakeFetcher{}
	clock := NewFrozenClock(t0)
	var ms []*Manager
	var hs []*Handle
	for range n {
		m := NewManager(Options{Clock: clock, Fetcher: f, Store: store, Rand: func() float64 { return 0.5 }})
		h, err := m.Register(testAccount)
		if err != nil {
			t.Fatal(err)
		}
		ms, hs = append(ms, m), append(hs, h)
	}
	return ms, hs, f, clock
}

func TestSharedStoreOneFetchForTheCluster(t *testing.T) {
	_, hs, f, _ := cluster(t, 3, newMemStore())
	for _, h := range hs {
		if tok := mustToken(t, h); tok.Value != "tok-1" {
			t.Fatalf("instance got %s", tok.Value)
		}
	}
	if f.count() != 1 {
		t.Fatalf("%d fetches for 3 instances; want 1", f.count())
	}
}

func TestRestartReusesStoredToken(t *testing.T) {
	store := newMemStore()
	_, hs, f, clock := cluster(t, 1, store)
	mustToken(t, hs[0])
	clock.Advance(30 * time.Minute)
	m2 := NewManager(Options{Clock: clock, Fetcher: f, Store: store})
	h2, _ := m2.Register(testAccount)
	if tok := mustToken(t, h2); tok.Value != "tok-1" || f.count() != 1 {
		t.Fatalf("after restart: %s, %d fetches", tok.Value, f.count())
	}
}

func TestClusterStormAcrossInvalidation(t *testing.T) {
	_, hs, f, clock := cluster(t, 3, newMemStore())
	old := mustToken(t, hs[0])
	for _, h := range hs[1:] {
		mustToken(t, h)
	}
	clock.Advance(time.Minute)
	wait := storm(300*len(hs), func(i int) bool {
		tok, err := hs[i%len(hs)].Reject(context.Background(), old, 40001)
		return err == nil && tok != nil && tok.Value == "tok-2"
	})
	if bad := wait(); bad != 0 || f.count() != 2 {
		t.Fatalf("%d failed, %d fetches; want 0 and 2", bad, f.count())
	}
}

func TestProactiveRefreshOncePerCluster(t *testing.T) {
	ms, hs, f, clock := cluster(t, 3, newMemStore())
	runDay(t, clock, 30*time.Second, ms, hs)
	min := int(24*time.Hour/(2*time.Hour-DefaultMargin)) + 1
	if got := f.count(); got > min+1 {
		t.Fatalf("%d fetches in a day across 3 instances; the physical minimum is %d", got, min)
	}
}

func TestStoreDownKeepsServingThenConverges(t *testing.T) {
	store := newMemStore()
	ms, hs, f, clock := cluster(t, 2, store)
	ctx := context.Background()
	first := mustToken(t, hs[0])
	mustToken(t, hs[1])
	store.down.Store(true)

	// Background refresh: postponed while the token has time left.
	clock.Advance(2*time.Hour - DefaultMargin)
	ms[0].RefreshDue(ctx)
	if tok := mustToken(t, hs[0]); tok.Value != first.Value || f.count() != 1 {
		t.Fatalf("refreshed without storage while the token was good: %d fetches", f.count())
	}
	// Rejected: fetch alone.
	tok, err := hs[0].Reject(ctx, first, 40001)
	if err != nil || tok.Value != "tok-2" {
		t.Fatalf("reject with storage down: %v %v", tok, err)
	}
	// Storage back: instance 0 shares its newer token, instance 1 adopts it.
	store.down.Store(false)
	clock.Advance(DefaultSyncInterval)
	ms[0].RefreshDue(ctx)
	clock.Advance(DefaultSyncInterval)
	ms[1].RefreshDue(ctx)
	if a, b := mustToken(t, hs[0]), mustToken(t, hs[1]); a.Value != "tok-2" || b.Value != "tok-2" {
		t.Fatalf("did not converge: %s and %s", a.Value, b.Value)
	}
	if f.count() != 2 {
		t.Fatalf("%d fetches; want 2", f.count())
	}
}

func TestCorruptOrForeignRecordsAreIgnored(t *testing.T) {
	for name, raw := range map[string]string{
		"garbage":  "\x00\x01not json",
		"foreign":  `{"v":1,"kind":"official","appid":"wxOTHER","endpoint":"token","access_token":"T","fetched":"2026-11-21T10:00:00Z","expires":"2026-11-21T12:00:00Z","generation":9}`,
		"no token": `{"v":1,"kind":"official","appid":"wx1","endpoint":"token","access_token":"","fetched":"2026-11-21T10:00:00Z","expires":"2026-11-21T12:00:00Z"}`,
		"version":  `{"v":7,"kind":"official","appid":"wx1","endpoint":"token","access_token":"T","fetched":"2026-11-21T10:00:00Z","expires":"2026-11-21T12:00:00Z"}`,
	} {
		t.Run(name, func(t *testing.T) {
			store := newMemStore()
			a, _ := testAccount.withDefaults()
			store.data[recordKey(&a)] = []byte(raw)
			core, logs := observer.New(zap.WarnLevel)
			m := NewManager(Options{Clock: NewFrozenClock(t0), Fetcher: &fakeFetcher{}, Store: store, Logger: zap.New(core)})
			h, _ := m.Register(testAccount)
			if tok := mustToken(t, h); tok.Value != "tok-1" {
				t.Fatalf("served %q from a bad record", tok.Value)
			}
			if logs.FilterMessageSnippet("ignoring the stored token record").Len() != 1 {
				t.Fatalf("no warning about the bad record")
			}
			if rec, err := loadRecord(context.Background(), store, &a, t0); err != nil || rec.Value != "tok-1" {
				t.Fatalf("the bad record was not replaced: %v", err)
			}
		})
	}
}

func TestStoredRecordHoldsNoSecret(t *testing.T) {
	store := newMemStore()
	_, hs, _, _ := cluster(t, 1, store)
	mustToken(t, hs[0])
	for k, v := range store.data {
		if strings.Contains(string(v), "s3cret") || strings.Contains(k, "s3cret") {
			t.Fatalf("secret stored under %s", k)
		}
	}
}
