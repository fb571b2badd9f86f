package token

import (
	"sync"
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
// wall clock. It is safe for concurrent use.
type ManualClock struct {
	mu     sync.RWMutex
	offset time.Duration
	frozen bool
	at     time.Time
}

// NewFrozenClock returns a ManualClock standing still at t.
func NewFrozenClock(t time.Time) *ManualClock {
	return &ManualClock{frozen: true, at: t}
}

// Now returns the clock's time.
func (c *ManualClock) Now() time.Time {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.frozen {
		return c.at
	}
	return time.Now().Add(c.offset)
}

// Advance moves the clock forward by d.
func (c *ManualClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.frozen {
		c.at = c.at.Add(d)
	} else {
		c.offset += d
	}
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
