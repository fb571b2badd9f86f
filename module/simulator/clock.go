package simulator

import (
	"sync"
	"sync/atomic"
	"time"
)

// shanghai is the zone WeChat counts its days in (China Standard Time,
// UTC+8, no daylight saving). A fixed zone avoids depending on tzdata.
var shanghai = time.FixedZone("CST", 8*60*60)

// Clock is the simulator's notion of time. Every expiry, quota day and
// force-refresh spacing is measured on it, so tests move time with Advance or
// Set instead of sleeping.
//
// A running clock (the default) is the real time plus an offset: Advance adds
// to the offset, so a quick start driven by hand still feels like time passing.
// A frozen clock stands still until Advance or Set moves it, which makes
// tests deterministic. The zero Clock is not usable: use NewClock.
//
// Clock is safe for concurrent use; Now is lock-free.
type Clock struct {
	mu    sync.Mutex // serialises writers
	state atomic.Pointer[clockState]
	real  func() time.Time // the real time source, time.Now unless a test replaces it
	// moved, when set, runs after every Advance, Set, Freeze and Unfreeze
	// (outside the lock): the simulator's open platform pushes the tickets
	// that fell due.
	moved atomic.Pointer[func()]
}

type clockState struct {
	frozen bool
	at     time.Time     // the frozen instant
	offset time.Duration // added to the real time while running
}

// NewClock returns a running clock that reads the real time.
func NewClock() *Clock {
	c := &Clock{real: time.Now}
	c.state.Store(&clockState{})
	return c
}

// Now returns the current simulated time.
func (c *Clock) Now() time.Time {
	st := c.state.Load()
	if st.frozen {
		return st.at
	}
	return c.real().Add(st.offset)
}

// Advance moves the clock by d (which may be negative). On a running clock it
// adds d to the offset; on a frozen clock it moves the frozen instant.
func (c *Clock) Advance(d time.Duration) {
	defer c.notify()
	c.update(func(st *clockState) {
		if st.frozen {
			st.at = st.at.Add(d)
		} else {
			st.offset += d
		}
	})
}

// Set moves the clock to t. A running clock keeps running from t.
func (c *Clock) Set(t time.Time) {
	defer c.notify()
	c.update(func(st *clockState) {
		if st.frozen {
			st.at = t.Round(0)
		} else {
			st.offset = t.Sub(c.real())
		}
	})
}

// Freeze stops the clock at its current time. It is a no-op on a frozen clock.
func (c *Clock) Freeze() {
	defer c.notify()
	c.update(func(st *clockState) {
		if !st.frozen {
			st.at = c.real().Add(st.offset).Round(0)
			st.frozen = true
		}
	})
}

// Unfreeze lets a frozen clock run again from its frozen instant. It is a
// no-op on a running clock.
func (c *Clock) Unfreeze() {
	defer c.notify()
	c.update(func(st *clockState) {
		if st.frozen {
			st.offset = st.at.Sub(c.real())
			st.frozen = false
		}
	})
}

// update changes a copy of the state and publishes it, one writer at a
// time; readers see the old state or the new one, never a mix.
func (c *Clock) update(change func(st *clockState)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	st := *c.state.Load()
	change(&st)
	c.state.Store(&st)
}

// notify runs the moved hook, if any.
func (c *Clock) notify() {
	if f := c.moved.Load(); f != nil {
		(*f)()
	}
}

// Frozen reports whether the clock is frozen.
func (c *Clock) Frozen() bool { return c.state.Load().frozen }

// Offset returns how far the clock is ahead of the real time (negative when
// behind).
func (c *Clock) Offset() time.Duration {
	st := c.state.Load()
	if st.frozen {
		return st.at.Sub(c.real())
	}
	return st.offset
}

// dayNumber numbers the WeChat day containing t: days roll over at midnight
// Asia/Shanghai (UTC+8).
func dayNumber(t time.Time) int64 {
	return floorDiv(t.Unix()+8*3600, 86400)
}

// monthNumber numbers the calendar month containing t in Asia/Shanghai.
func monthNumber(t time.Time) int64 {
	y, m, _ := t.In(shanghai).Date()
	return int64(y)*12 + int64(m) - 1
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}
