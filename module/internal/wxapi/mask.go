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
func MaskParams(b []byte, names []string) {
	if strings.IndexByte(unsafe.String(unsafe.SliceData(b), len(b)), '=') < 0 {
		return // no parameter at all: the common case, a JSON answer
	}
	for _, name := range names {
		for rest := b; ; {
			i := strings.Index(unsafe.String(unsafe.SliceData(rest), len(rest)), name)
			if i < 0 {
				break
			}
			j := i + len(name)
			for ; j < len(rest); j++ {
				c := rest[j]
				if c == '&' || c == '"' || c == '\\' || c <= ' ' {
					break
				}
				rest[j] = '*'
			}
			rest = rest[j:]
		}
	}
}
