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
