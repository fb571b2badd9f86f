package simulator

import (
	"testing"
	"time"
)

func TestClockRunningAdvanceAndSet(t *testing.T) {
	c := NewClock()
	real := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	c.real = func() time.Time { return real }
	if got := c.Now(); !got.Equal(real) {
		t.Fatalf("Now = %v, want %v", got, real)
	}
	c.Advance(2 * time.Hour)
	real = real.Add(time.Minute) // real time passes too
	if got, want := c.Now(), real.Add(2*time.Hour); !got.Equal(want) {
		t.Fatalf("after Advance: %v, want %v", got, want)
	}
	if c.Offset() != 2*time.Hour {
		t.Fatalf("Offset = %v", c.Offset())
	}
	target := time.Date(2030, 6, 1, 12, 0, 0, 0, time.UTC)
	c.Set(target)
	real = real.Add(time.Second)
	if got, want := c.Now(), target.Add(time.Second); !got.Equal(want) {
		t.Fatalf("after Set: %v, want %v (a running clock keeps running)", got, want)
	}
}

func TestClockFrozen(t *testing.T) {
	c := NewClock()
	real := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	c.real = func() time.Time { return real }
	c.Freeze()
	if !c.Frozen() {
		t.Fatal("not frozen")
	}
	real = real.Add(time.Hour)
	if got := c.Now(); !got.Equal(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)) {
		t.Fatalf("frozen clock moved to %v", got)
	}
	c.Advance(90 * time.Second)
	if got := c.Now(); !got.Equal(time.Date(2025, 1, 1, 0, 1, 30, 0, time.UTC)) {
		t.Fatalf("Advance on frozen clock: %v", got)
	}
	c.Set(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	if got := c.Now(); !got.Equal(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)) {
		t.Fatalf("Set on frozen clock: %v", got)
	}
	c.Unfreeze()
	real = real.Add(time.Minute)
	if got, want := c.Now(), time.Date(2026, 1, 1, 0, 1, 0, 0, time.UTC); !got.Equal(want) {
		t.Fatalf("after Unfreeze: %v, want %v", got, want)
	}
}

func TestDayNumberRollsOverAtShanghaiMidnight(t *testing.T) {
	before := time.Date(2025, 3, 1, 15, 59, 59, 0, time.UTC) // 23:59:59 in Shanghai
	after := before.Add(time.Second)
	if dayNumber(before)+1 != dayNumber(after) {
		t.Fatalf("day did not roll over at 16:00 UTC: %d %d", dayNumber(before), dayNumber(after))
	}
	if dayNumber(after) != dayNumber(after.Add(23*time.Hour+59*time.Minute)) {
		t.Fatal("day rolled over too early")
	}
	if monthNumber(time.Date(2025, 3, 31, 15, 59, 0, 0, time.UTC)) == monthNumber(time.Date(2025, 3, 31, 16, 0, 0, 0, time.UTC)) {
		t.Fatal("month did not roll over at Shanghai midnight")
	}
}
