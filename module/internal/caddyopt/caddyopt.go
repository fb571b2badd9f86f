// Package caddyopt reads the option values of caddy-wechat's Caddyfile
// directives, with one set of rules for every module: errors name the
// option, durations are never negative, and `off` is the one way to turn
// off a duration that has a default.
package caddyopt

import (
	"errors"
	"strconv"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/dustin/go-humanize"
)

// Off is the value of a duration option that is turned off: in JSON any
// negative duration means off, and the Caddyfile spells it `off`. Zero, or
// leaving the option out, always means its default.
const Off caddy.Duration = -1

// NoArg checks that the current option has no argument.
func NoArg(d *caddyfile.Dispenser) error {
	opt := d.Val()
	if d.NextArg() {
		return d.Errf("%s takes no argument, got %q", opt, d.Val())
	}
	return nil
}

// OneArg returns the one argument of the current option.
func OneArg(d *caddyfile.Dispenser) (string, error) {
	opt := d.Val()
	var val string
	if !d.AllArgs(&val) {
		return "", d.Errf("%s: wrong argument count, want exactly one value", opt)
	}
	return val, nil
}

// Duration reads a duration that cannot be turned off: a Go or Caddy
// duration (90s, 2h, 1d), not negative.
func Duration(d *caddyfile.Dispenser) (caddy.Duration, error) {
	return duration(d, false)
}

// DurationOrOff reads a duration, or `off` (returned as Off). A literal 0
// is refused, because it would read as "none" but mean the default.
func DurationOrOff(d *caddyfile.Dispenser) (caddy.Duration, error) {
	return duration(d, true)
}

// duration reads a duration, or `off` if the option may be turned off; its
// errors mention `off` only then.
func duration(d *caddyfile.Dispenser, offAllowed bool) (caddy.Duration, error) {
	opt := d.Val()
	val, err := OneArg(d)
	if err != nil {
		return 0, err
	}
	orOff := ""
	if offAllowed {
		orOff = " (write off to turn it off)"
	}
	if val == "off" {
		if offAllowed {
			return Off, nil
		}
		return 0, d.Errf("%s cannot be turned off; give a duration", opt)
	}
	dur, err := caddy.ParseDuration(val)
	switch {
	case err != nil:
		return 0, d.Errf("%s: bad duration %q: %v", opt, val, err)
	case dur < 0:
		return 0, d.Errf("%s: duration %q must not be negative%s", opt, val, orOff)
	case dur == 0:
		return 0, d.Errf("%s: duration 0 is ambiguous: leave the option out for its default%s", opt, orOff)
	}
	return caddy.Duration(dur), nil
}

// Count reads a whole number of at least min.
func Count(d *caddyfile.Dispenser, min int) (int, error) {
	opt := d.Val()
	val, err := OneArg(d)
	if err != nil {
		return 0, err
	}
	n, err := strconv.Atoi(val)
	if err != nil || n < min {
		return 0, d.Errf("%s: %q is not a whole number of at least %d", opt, val, min)
	}
	return n, nil
}

// Size reads a size in bytes (25165824) or humanized (24MiB, 10MB),
// between 1 byte and 1 TiB.
func Size(d *caddyfile.Dispenser) (int64, error) {
	opt := d.Val()
	val, err := OneArg(d)
	if err != nil {
		return 0, err
	}
	n, err := humanize.ParseBytes(val)
	if err == nil && (n == 0 || n > 1<<40) {
		err = errors.New("must be between 1 byte and 1TiB")
	}
	if err != nil {
		return 0, d.Errf("%s: bad size %q (bytes, or like 64MiB): %v", opt, val, err)
	}
	return int64(n), nil
}

// Once remembers which options of a block were given, so that an option
// that takes one value is refused when it comes again, rather than the
// last one silently winning. Options that add to a list (a client's key,
// accounts and paths) are not checked.
type Once map[string]bool

// Take refuses the current option if the block gave it before. key is the
// option as the block knows it: two spellings of one option (appid and
// corpid) share a key, and the error names both.
func (o Once) Take(d *caddyfile.Dispenser, key string) error {
	if o[key] {
		if opt := d.Val(); opt != key {
			return d.Errf("%s: given twice in one block (%s and %s are one option); give it once", opt, key, opt)
		}
		return d.Errf("%s: given twice in one block; give it once", key)
	}
	o[key] = true
	return nil
}
