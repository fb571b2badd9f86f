package caddyopt

import (
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

// option returns a dispenser on the option of a one-line block, its name
// read.
func option(t *testing.T, line string) *caddyfile.Dispenser {
	t.Helper()
	d := caddyfile.NewTestDispenser(line)
	if !d.Next() {
		t.Fatalf("%q: no option", line)
	}
	return d
}

func TestDurations(t *testing.T) {
	for line, want := range map[string]caddy.Duration{
		"refresh_cooldown 90s": caddy.Duration(90e9),
		"refresh_cooldown 1d":  caddy.Duration(24 * 3600e9),
		"refresh_cooldown off": Off,
	} {
		if got, err := DurationOrOff(option(t, line)); err != nil || got != want {
			t.Errorf("DurationOrOff(%q) = %v, %v; want %v", line, got, err, want)
		}
	}
	for line, msg := range map[string]string{
		"refresh_cooldown 0":     "duration 0 is ambiguous: leave the option out for its default (write off to turn it off)",
		"refresh_cooldown -5s":   "must not be negative (write off to turn it off)",
		"refresh_cooldown soon":  "bad duration",
		"refresh_cooldown":       "want exactly one value",
		"refresh_cooldown 1s 2s": "want exactly one value",
		"fetch_timeout off":      "fetch_timeout cannot be turned off",
		"fetch_timeout 0":        "leave the option out for its default",
		"fetch_timeout -1s":      "must not be negative",
	} {
		var err error
		if strings.HasPrefix(line, "fetch_timeout") {
			_, err = Duration(option(t, line))
		} else {
			_, err = DurationOrOff(option(t, line))
		}
		if err == nil || !strings.Contains(err.Error(), msg) {
			t.Errorf("%q: error %v, want one saying %q", line, err, msg)
		}
		// Only an option that can be turned off is said to be.
		if err != nil && strings.HasPrefix(line, "fetch_timeout") && strings.Contains(err.Error(), "write off") {
			t.Errorf("%q: error %v suggests off", line, err)
		}
	}
}

func TestCountAndSize(t *testing.T) {
	if n, err := Count(option(t, "daily_budget 7"), 1); err != nil || n != 7 {
		t.Errorf("Count = %d, %v", n, err)
	}
	if _, err := Count(option(t, "daily_budget 0"), 1); err == nil || !strings.Contains(err.Error(), "daily_budget") {
		t.Errorf("Count of 0: %v", err)
	}
	if n, err := Size(option(t, "max_replay_body 24MiB")); err != nil || n != 24<<20 {
		t.Errorf("Size = %d, %v", n, err)
	}
	for _, line := range []string{"max_replay_body 0", "max_replay_body 2TiB", "max_replay_body lots"} {
		if _, err := Size(option(t, line)); err == nil || !strings.Contains(err.Error(), "max_replay_body") {
			t.Errorf("Size(%q): %v", line, err)
		}
	}
}

// TestOnce: an option comes once per block; two spellings of one option
// share a key, and the error names both.
func TestOnce(t *testing.T) {
	d := caddyfile.NewTestDispenser("block {\n\tsecret a\n\tappid wx1\n\tsecret b\n\tcorpid ww2\n}")
	d.Next()
	once := Once{}
	var errs []string
	for d.NextBlock(0) {
		key := d.Val()
		if key == "corpid" {
			key = "appid"
		}
		if err := once.Take(d, key); err != nil {
			errs = append(errs, err.Error())
		}
		d.RemainingArgs()
	}
	if len(errs) != 2 || !strings.Contains(errs[0], "secret: given twice") ||
		!strings.Contains(errs[1], "corpid: given twice in one block (appid and corpid are one option)") {
		t.Errorf("errors %q", errs)
	}
}
