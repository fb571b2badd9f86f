package token

import (
	"sync"
	"sync/atomic"
	"time"
)

// Clock tells the time. The Manager reads time only through its Clock, so
// tests can move it (ManualClock) instead of sleeping.
type Clock interface {
	Now() time.Time
}

// SystemClock is the wall clock.
type SystemClock struct{}

// Now returns time.Now().
func (SystemClock) Now() time.Time { return time.Now() }

// ManualClock is a Clock that runs with the wall clock plus an offset that
// Advance adds to, or stands still once frozen. The zero value runs with the
// wall clock. It is safe for concurrent use, and Now takes no lock: every
// call through the gateway reads the clock, from every core at once.
type ManualClock struct {
	mu    sync.Mutex // serialises Advance
	state atomic.Pointer[manualState]
}

// manualState is a ManualClock's setting; Advance replaces it whole.
type manualState struct {
	offset time.Duration // added to the wall clock while running
	frozen bool
	at     time.Time // the frozen instant
}

// NewFrozenClock returns a ManualClock standing still at t.
func NewFrozenClock(t time.Time) *ManualClock {
	c := new(ManualClock)
	c.state.Store(&manualState{frozen: true, at: t})
	return c
}

// Now returns the clock's time.
func (c *ManualClock) Now() time.Time {
	s := c.state.Load()
	switch {
	case s == nil:
		return time.Now()
	case s.frozen:
		return s.at
	}
	return time.Now().Add(s.offset)
}

// Advance moves the clock forward by d.
func (c *ManualClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var next manualState
	if s := c.state.Load(); s != nil {
		next = *s
	}
	if next.frozen {
		next.at = next.at.Add(d)
	} else {
		next.offset += d
	}
	c.state.Store(&next)
}

// shanghai is WeChat's time zone: daily quotas reset at its midnight.
var shanghai = time.FixedZone("CST", 8*60*60)

// quotaDay numbers the WeChat quota day (midnight to midnight, UTC+8) of t.
func quotaDay(t time.Time) int64 {
	_, offset := t.In(shanghai).Zone()
	return (t.Unix() + int64(offset)) / 86400
}

// nextQuotaDay returns the start of the quota day after the one of t.
func nextQuotaDay(t time.Time) time.Time {
	return time.Unix((quotaDay(t)+1)*86400-8*60*60, 0)
}
