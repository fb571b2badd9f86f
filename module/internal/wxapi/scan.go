package wxapi

import (
	"bytes"
	"strconv"
	"strings"
)

// ScanErrcode returns the integer value of the top-level "errcode" member of
// the JSON object in b, without unmarshalling and without allocating. ok is
// false when b is not a JSON object, when it has no top-level errcode (an
// "errcode" nested deeper or inside a string does not count), or when the
// value is not an integer. A quoted integer ("40001") is accepted too.
func ScanErrcode(b []byte) (code int, ok bool) {
	v, ok := ScanMember(b, "errcode")
	if !ok {
		return 0, false
	}
	if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
		v = v[1 : len(v)-1]
	}
	return parseInt(v)
}

// refreshableDigits are the Refreshable errcodes as an answer spells them.
var refreshableDigits = func() (d [len(refreshableCodes)][]byte) {
	for i, code := range refreshableCodes {
		d[i] = strconv.AppendInt(nil, int64(code), 10)
	}
	return d
}()

// MayBeTokenError reports whether b can be a token error: whether the
// digits of a Refreshable errcode appear in it at all, number or string. A
// quick test before ScanErrcode, which walks every member of an answer
// that has no errcode: most answers have none of these digits.
func MayBeTokenError(b []byte) bool {
	for _, d := range refreshableDigits {
		if bytes.Contains(b, d) {
			return true
		}
	}
	return false
}

// ScanRid returns the request id WeChat appends to an error's errmsg
// (" rid: 6650a1b2-1c2d3e4f-5a6b7c8d"), or nil. The result aliases b.
func ScanRid(b []byte) []byte {
	msg, ok := ScanMember(b, "errmsg")
	if !ok {
		return nil
	}
	i := bytes.Index(msg, []byte("rid: "))
	if i < 0 {
		return nil
	}
	rid := msg[i+len("rid: "):]
	end := 0
	for end < len(rid) && isRidByte(rid[end]) {
		end++
	}
	return rid[:end]
}

func isRidByte(c byte) bool {
	return c == '-' || (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
}

// ScanMember returns the raw bytes of the value of the top-level member
// named key in the JSON object in b (a string value keeps its quotes). It
// does not allocate; the result aliases b. ok is false when b is not a JSON
// object or holds no such member before its end (a truncated object counts
// as far as it goes).
func ScanMember(b []byte, key string) (value []byte, ok bool) {
	i := skipSpace(b, 0)
	if i+3 <= len(b) && b[i] == 0xEF && b[i+1] == 0xBB && b[i+2] == 0xBF { // UTF-8 BOM
		i = skipSpace(b, i+3)
	}
	if i >= len(b) || b[i] != '{' {
		return nil, false
	}
	i++
	for {
		i = skipSpace(b, i)
		if i >= len(b) || b[i] != '"' {
			return nil, false // '}' (end of object) or malformed
		}
		end := skipString(b, i)
		if end < 0 {
			return nil, false
		}
		name := b[i+1 : end-1]
		i = skipSpace(b, end)
		if i >= len(b) || b[i] != ':' {
			return nil, false
		}
		i = skipSpace(b, i+1)
		valEnd := skipValue(b, i)
		if valEnd < 0 {
			return nil, false
		}
		if string(name) == key { // no allocation: the compiler compares in place
			return b[i:valEnd], true
		}
		i = skipSpace(b, valEnd)
		if i >= len(b) || b[i] != ',' {
			return nil, false
		}
		i++
	}
}

func skipSpace(b []byte, i int) int {
	for i < len(b) {
		switch b[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// skipString returns the index just past the string starting at b[i] == '"',
// or -1 when it does not end within b.
func skipString(b []byte, i int) int {
	for j := i + 1; j < len(b); j++ {
		switch b[j] {
		case '\\':
			j++
		case '"':
			return j + 1
		}
	}
	return -1
}

// skipValue returns the index just past the JSON value starting at b[i], or
// -1 when it is malformed or does not end within b.
func skipValue(b []byte, i int) int {
	if i >= len(b) {
		return -1
	}
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for j := i; j < len(b); j++ {
			switch b[j] {
			case '"':
				end := skipString(b, j)
				if end < 0 {
					return -1
				}
				j = end - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return j + 1
				}
			}
		}
		return -1
	default: // number, true, false, null
		j := i
		for j < len(b) {
			switch b[j] {
			case ',', '}', ']', ' ', '\t', '\n', '\r':
				if j == i {
					return -1
				}
				return j
			}
			j++
		}
		return -1 // a scalar must be followed by something inside an object
	}
}

func parseInt(v []byte) (int, bool) {
	if len(v) == 0 || len(v) > 11 {
		return 0, false
	}
	neg := v[0] == '-'
	if neg {
		v = v[1:]
		if len(v) == 0 {
			return 0, false
		}
	}
	n := 0
	for _, c := range v {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	if neg {
		n = -n
	}
	return n, true
}

// SplitRequestID splits an errmsg into its text and the request id WeChat
// appends to it (" rid: a-b-c", ", rid: a-b-c", WeCom's ", hint: [...]"),
// which lets whoever holds the id read the logged request, parameters and
// all. The text keeps everything else.
func SplitRequestID(errmsg string) (text, id string) {
	for _, marker := range []string{"rid: ", "hint: ["} {
		i := strings.Index(errmsg, marker)
		if i < 0 {
			continue
		}
		start := i + len(marker)
		end := start
		for end < len(errmsg) && isRidByte(errmsg[end]) {
			end++
		}
		id = errmsg[start:end]
		if marker == "hint: [" && end < len(errmsg) && errmsg[end] == ']' {
			end++
		}
		head := strings.TrimRight(errmsg[:i], " ,")
		errmsg = head + errmsg[end:]
	}
	return errmsg, id
}
