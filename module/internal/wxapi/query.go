package wxapi

import (
	"net/url"
	"strings"
)

// The gateway reads and rewrites query strings on every call. These
// functions work on the raw query, without parsing it into a map: reading
// allocates only when a component is percent-encoded, a rewrite allocates
// its result once, and they agree with each other on what a parameter's
// name is (its unescaped key), so that a client cannot hide a parameter
// from one of them by encoding it.

// QueryParam returns the first value of the parameter name in the raw query
// (unescaped) and how many times the parameter appears.
func QueryParam(raw, name string) (value string, n int) {
	for rest := raw; rest != ""; {
		var key, val string
		key, val, rest = NextParam(rest)
		if key != name {
			continue
		}
		if n == 0 {
			value = unescape(val)
		}
		n++
	}
	return value, n
}

// NextParam splits the first component off a raw query: its name,
// unescaped as QueryParam matches names, its value as sent, and the rest
// of the query. Walking a query with it reads it once, however many
// parameters the caller looks for.
func NextParam(raw string) (name, value, rest string) {
	part, rest, _ := strings.Cut(raw, "&")
	key, value, _ := strings.Cut(part, "=")
	return unescape(key), value, rest
}

// Unescape decodes a query value as QueryParam does.
func Unescape(value string) string { return unescape(value) }

// WithToken returns the raw query with every access_token parameter
// removed and access_token=tok put first: where WeChat echoes a query
// (rid/get) cut to a length, what the client controls comes after the
// token and cannot push part of it out of sight. tok must be URL-safe, as
// WeChat's tokens are (the token package refuses any other).
func WithToken(raw, tok string) string { return WithParam(raw, "access_token", tok) }

// WithParam is WithToken for a token parameter called name (a third-party
// platform's component_access_token).
func WithParam(raw, name, tok string) string {
	if !hasEscape(raw) && !hasEmptyPart(raw) {
		// The usual calls: nothing escaped, so the parameter is there in
		// no other spelling; every other component stays as it is.
		i := strings.Index(raw, name)
		if i < 0 {
			return prepend(name, tok, raw)
		}
		if before, after, ok := cutParam(raw, i, name); ok {
			if before == "" {
				return name + "=" + tok + after
			}
			return name + "=" + tok + "&" + before + after
		}
	}
	return rewriteParams(raw, name, tok)
}

// Rewrite returns what a call sends upstream and what it logs: u's query
// as WithParam(u.RawQuery, name, tok) gives it, and u's path and query with
// the value of every parameter called one of redact replaced by REDACTED,
// as RedactURI gives it, or "" when there is none to redact; name must be
// one of redact. The usual call (nothing escaped, name there at most once
// and the other names nowhere) gets both in one allocation.
func Rewrite(u *url.URL, name, tok string, redact ...string) (query, uri string) {
	raw := u.RawQuery
	if !hasEscape(raw) && !hasEmptyPart(raw) && !containsOther(raw, name, redact) {
		i := strings.Index(raw, name)
		if i < 0 { // no token sent: nothing to redact
			return prepend(name, tok, raw), ""
		}
		if before, after, ok := cutParam(raw, i, name); ok {
			path := u.EscapedPath()
			var b strings.Builder
			b.Grow(len(name) + 2 + len(tok) + len(before) + len(after) + len(path) + 1 + i + len(name) + len("=REDACTED") + len(after))
			b.WriteString(name)
			b.WriteByte('=')
			b.WriteString(tok)
			if before != "" {
				b.WriteByte('&')
				b.WriteString(before)
			}
			b.WriteString(after)
			n := b.Len()
			b.WriteString(path)
			b.WriteByte('?')
			b.WriteString(raw[:i+len(name)])
			b.WriteString("=REDACTED")
			b.WriteString(after)
			s := b.String()
			return s[:n], s[n:]
		}
	}
	query = WithParam(raw, name, tok)
	uri, _ = RedactURI(u, redact...)
	return query, uri
}

// prepend returns the raw query with name=tok put first.
func prepend(name, tok, raw string) string {
	if raw == "" {
		return name + "=" + tok
	}
	return name + "=" + tok + "&" + raw
}

// containsOther reports whether raw contains one of names other than name.
func containsOther(raw, name string, names []string) bool {
	for _, n := range names {
		if n != name && strings.Contains(raw, n) {
			return true
		}
	}
	return false
}

// rewriteParams is WithParam for any query: each component read, and
// compared with name unescaped.
func rewriteParams(raw, name, tok string) string {
	// The exact length first: the parameters dropped (a client's gateway
	// token is long) would otherwise be allocated for on every call.
	n := len(name) + len("=") + len(tok)
	for rest := raw; rest != ""; {
		var part string
		part, rest, _ = strings.Cut(rest, "&")
		if part != "" && !IsParam(part, name) {
			n += len("&") + len(part)
		}
	}
	var b strings.Builder
	b.Grow(n)
	b.WriteString(name)
	b.WriteByte('=')
	b.WriteString(tok)
	for rest := raw; rest != ""; {
		var part string
		part, rest, _ = strings.Cut(rest, "&")
		if part == "" || IsParam(part, name) {
			continue
		}
		b.WriteByte('&')
		b.WriteString(part)
	}
	return b.String()
}

// cutParam cuts the component at raw[i:] out of raw, if it is the only
// place name appears and a whole key there: before is what came before it,
// less its '&', after what follows it, from its '&'.
func cutParam(raw string, i int, name string) (before, after string, ok bool) {
	end := i + len(name)
	if (i > 0 && raw[i-1] != '&') || (end < len(raw) && raw[end] != '=' && raw[end] != '&') ||
		strings.Contains(raw[end:], name) {
		return "", "", false
	}
	if j := strings.IndexByte(raw[end:], '&'); j >= 0 {
		after = raw[end+j:]
	}
	if i > 0 {
		before = raw[:i-1]
	}
	return before, after, true
}

// hasEmptyPart reports whether a raw query has an empty component (a
// leading, trailing or doubled '&'): WithParam drops them, and the
// shortcuts leave such queries to the component-by-component paths.
func hasEmptyPart(raw string) bool {
	return raw != "" && (raw[0] == '&' || raw[len(raw)-1] == '&' || strings.Contains(raw, "&&"))
}

// CleanQuery says why a raw query is refused, or "": every component must
// be key=value or key with valid percent escapes, no ';' (which some
// servers take for '&', so that a parameter hidden behind it would reach
// WeChat unchecked), and keys that unescape to letters, digits, '_', '.'
// or '-' only.
func CleanQuery(raw string) string {
	if strings.IndexByte(raw, ';') >= 0 {
		return "';' in the query"
	}
	escaped := strings.IndexByte(raw, '%') >= 0
	for rest := raw; rest != ""; {
		var part string
		part, rest, _ = strings.Cut(rest, "&")
		key, val, _ := strings.Cut(part, "=")
		if escaped && (!validEscapes(key) || !validEscapes(val)) {
			return "bad percent escape in the query"
		}
		for _, c := range []byte(unescape(key)) {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == '-') {
				return "unexpected character in a query parameter name"
			}
		}
	}
	return ""
}

// validEscapes reports whether every '%' in s starts a two-digit hex escape.
func validEscapes(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && (i+2 >= len(s) || !ishex(s[i+1]) || !ishex(s[i+2])) {
			return false
		}
	}
	return true
}

// RedactParams returns the raw query with the value of every parameter
// called one of names replaced by REDACTED, or raw itself when it has
// none. It reads the query once, whatever the number of names.
func RedactParams(raw string, names ...string) string {
	if !mayHaveParam(raw, names) {
		return raw
	}
	return redact("", raw, names)
}

// RedactURI returns u's path and query with the value of every parameter
// called one of names replaced by REDACTED, built in one allocation; ok is
// false, and nothing is built, when the query has none of them.
func RedactURI(u *url.URL, names ...string) (uri string, ok bool) {
	if !mayHaveParam(u.RawQuery, names) {
		return "", false
	}
	return redact(u.EscapedPath()+"?", u.RawQuery, names), true
}

// mayHaveParam reports whether raw may have a parameter called one of
// names: one of them appears in it, or something is escaped.
func mayHaveParam(raw string, names []string) bool {
	return hasEscape(raw) || containsAny(raw, names)
}

// redact is RedactParams with prefix put before the query.
func redact(prefix, raw string, names []string) string {
	if !hasEscape(raw) && !hasEmptyPart(raw) {
		if uri, ok := redactOnce(prefix, raw, names); ok {
			return uri
		}
	}
	return redactParts(prefix, raw, names)
}

// redactOnce is redact for the usual query: nothing escaped, no empty
// component, one of names once as a whole key and the others nowhere. ok
// is false for any other query.
func redactOnce(prefix, raw string, names []string) (uri string, ok bool) {
	at, name := -1, ""
	for _, n := range names {
		if i := strings.Index(raw, n); i >= 0 {
			if at >= 0 {
				return "", false
			}
			at, name = i, n
		}
	}
	if at < 0 {
		return "", false
	}
	_, after, ok := cutParam(raw, at, name)
	if !ok {
		return "", false
	}
	return prefix + raw[:at+len(name)] + "=REDACTED" + after, true
}

// redactParts is redact for any query: each component read, and its key
// compared with names unescaped.
func redactParts(prefix, raw string, names []string) string {
	n := len(prefix) + len(raw) // the exact length: less each value redacted, plus REDACTED
	for rest := raw; rest != ""; {
		var part string
		part, rest, _ = strings.Cut(rest, "&")
		if key, val, _ := strings.Cut(part, "="); isOneOf(key, names) {
			n += len("REDACTED") - len(val)
			if len(key) == len(part) {
				n++ // the '=' a bare key gets
			}
		}
	}
	var b strings.Builder
	b.Grow(n)
	b.WriteString(prefix)
	for rest, sep := raw, ""; rest != ""; sep = "&" {
		var part string
		part, rest, _ = strings.Cut(rest, "&")
		b.WriteString(sep)
		key, _, _ := strings.Cut(part, "=")
		if isOneOf(key, names) {
			b.WriteString(key)
			b.WriteString("=REDACTED")
			continue
		}
		b.WriteString(part)
	}
	return b.String()
}

// containsAny reports whether s contains one of subs.
func containsAny(s string, subs []string) bool {
	for _, sub := range subs {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}

// isOneOf reports whether a raw query key, once unescaped, is one of names.
func isOneOf(key string, names []string) bool {
	for _, name := range names {
		if keyIs(key, name) {
			return true
		}
	}
	return false
}

// IsParam reports whether a raw query component (key=value) is the
// parameter name, however the key is encoded.
func IsParam(part, name string) bool {
	key, _, _ := strings.Cut(part, "=")
	return keyIs(key, name)
}

// keyIs reports whether a raw query key, once unescaped, is name.
func keyIs(key, name string) bool {
	return key == name || (hasEscape(key) && unescape(key) == name)
}

// hasEscape reports whether a query component has a '%' or '+' to decode
// (two vectorised byte searches: faster than strings.ContainsAny, which
// builds a set on every call).
func hasEscape(s string) bool {
	return strings.IndexByte(s, '%') >= 0 || strings.IndexByte(s, '+') >= 0
}

// unescape decodes a query component; an invalid escape is kept as it is.
func unescape(s string) string {
	if !hasEscape(s) {
		return s
	}
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		switch {
		case s[i] == '+':
			b = append(b, ' ')
		case s[i] == '%' && i+2 < len(s) && ishex(s[i+1]) && ishex(s[i+2]):
			b = append(b, unhex(s[i+1])<<4|unhex(s[i+2]))
			i += 2
		default:
			b = append(b, s[i])
		}
	}
	return string(b)
}

func ishex(c byte) bool {
	return ('0' <= c && c <= '9') || ('a' <= c && c <= 'f') || ('A' <= c && c <= 'F')
}

func unhex(c byte) byte {
	switch {
	case '0' <= c && c <= '9':
		return c - '0'
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10
	default:
		return c - 'A' + 10
	}
}

// WithoutParams returns the raw query without the parameters names,
// however their keys are encoded.
func WithoutParams(raw string, names ...string) string {
	var b strings.Builder
	for rest := raw; rest != ""; {
		var part string
		part, rest, _ = strings.Cut(rest, "&")
		drop := part == ""
		for _, name := range names {
			drop = drop || IsParam(part, name)
		}
		if drop {
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('&')
		}
		b.WriteString(part)
	}
	return b.String()
}
