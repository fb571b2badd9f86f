package wxapi

import (
	"strings"
	"unsafe"
)

// MinMasked is the shortest value Mask hides: shorter ones would hide
// innocent text (WeChat's tokens and secrets are far longer).
const MinMasked = 16

// Mask overwrites, in place, every occurrence in b of each value with
// asterisks of the same length, so that a Content-Length stays right and
// JSON stays valid. Values shorter than MinMasked are skipped.
func Mask(b []byte, values []string) {
	for _, v := range values {
		if len(v) < MinMasked {
			continue
		}
		for rest := b; ; {
			// A read-only string view of rest, to search without a copy.
			i := strings.Index(unsafe.String(unsafe.SliceData(rest), len(rest)), v)
			if i < 0 {
				break
			}
			for j := range len(v) {
				rest[i+j] = '*'
			}
			rest = rest[i+len(v):]
		}
	}
}

// MaskTail is how many bytes a stream must hold back, after masking what
// it has, so that a value split across two writes is still found: one less
// than the longest value.
func MaskTail(values []string) int {
	n := 0
	for _, v := range values {
		if len(v) >= MinMasked && len(v)-1 > n {
			n = len(v) - 1
		}
	}
	return n
}

// MaskParams overwrites, in place, the value of every name=value in b (up
// to the next '&', '"', '\', white space or the end) with asterisks: what
// an echoed query string holds after the names of credentials, whatever
// its value, even cut short.
func MaskParams(b []byte, names []string) { MaskParamsFrom(b, names, -1) }

// MaskParamsFrom is MaskParams for an answer that comes in pieces, b being
// what has come and is not yet sent: from, when not negative, is where in
// b a value begins whose name was in a piece already sent. It returns
// where in b the value that runs to its end begins (more of it may come),
// or -1.
func MaskParamsFrom(b []byte, names []string, from int) (open int) {
	open, start := -1, 0
	if from >= 0 {
		if start = maskValue(b, from); start == len(b) {
			return from
		}
	}
	rest := b[start:]
	if strings.IndexByte(unsafe.String(unsafe.SliceData(rest), len(rest)), '=') < 0 {
		return open // no parameter at all: the common case, a JSON answer
	}
	for _, name := range names {
		for at := start; ; {
			i := strings.Index(unsafe.String(unsafe.SliceData(b[at:]), len(b)-at), name)
			if i < 0 {
				break
			}
			value := at + i + len(name)
			if at = maskValue(b, value); at == len(b) && value > open {
				open = value
			}
		}
	}
	return open
}

// maskValue overwrites b from i up to the end of a parameter's value, and
// returns where it ends.
func maskValue(b []byte, i int) int {
	for ; i < len(b); i++ {
		c := b[i]
		if c == '&' || c == '"' || c == '\\' || c <= ' ' {
			break
		}
		b[i] = '*'
	}
	return i
}

// MaxParamName is the length of the longest of names: a stream that holds
// back one byte less keeps any name cut by the end of a piece.
func MaxParamName(names []string) int {
	n := 0
	for _, name := range names {
		n = max(n, len(name))
	}
	return n
}
