package caddywechat

import (
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/wxgate/caddy-wechat/module/internal/wxapi"
)

// inspectWindow is how much of a JSON or text answer the handler holds back
// to look for a token error before it lets the answer through. WeChat's
// error answers are small; an answer longer than this is not an error and
// streams on from there.
const inspectWindow = 4 << 10

var windowPool = sync.Pool{New: func() any { b := make([]byte, 0, inspectWindow); return &b }}

// inspector is the ResponseWriter an attempt writes to. Headers go to the
// client's header map, as with reverse_proxy alone, which is what the
// client gets; the map as it was before the attempt is kept, so that
// nothing of a discarded answer (one that is replayed, or whose upstream
// failed) reaches the client, but for the informational (1xx) answers sent
// on at once. It holds back a small JSON or text answer
// until the handler has looked at its errcode. Anything else (binary media,
// large answers, non-200 statuses) passes straight through, unbuffered.
//
// It also keeps the account's secret and tokens out of every JSON or text
// answer and out of the headers, held back or streamed (WeChat echoes
// requests: rid/get answers the request URL of a failed call, with the
// token the gateway put there). Streamed, it holds back the last few bytes
// of each write, so that a value split across two writes is still found.
type inspector struct {
	inspection
	before headerSnapshot // w's headers before the attempt
}

// inspection is an inspector's state for one attempt, reset when the
// inspector goes back to its pool. (The header snapshot, over a kilobyte,
// is reset apart: only its entries in use are cleared.)
type inspection struct {
	w http.ResponseWriter
	// h is w's header map, read once: w is Caddy's chain of writers,
	// and reverse_proxy asks for the map many times per answer.
	h      http.Header
	status int
	buf    *[]byte
	// passing is set once the answer goes straight to w; discarded once
	// w's headers are back as they were before the attempt.
	passing, discarded bool
	// confidential are the values to mask; masked is set for a JSON or
	// text answer, and tail holds its last bytes while it streams.
	confidential []string
	masked       bool
	// file is set for a file WeChat serves back (fileDownload): only the
	// confidential values are masked in it, not what follows a
	// credential parameter's name, which a file may well hold.
	file bool
	// opaque is set for an answer to mask that came compressed in a way
	// the transport did not undo (encoded): it is dropped, and pass
	// answers an error in its place.
	opaque bool
	tail   []byte
	// paramAt is 1 + where in tail a credential parameter's value begins
	// whose end has not come yet; 0: none.
	paramAt int
}

var inspectorPool = sync.Pool{New: func() any { return new(inspector) }}

// newInspector returns an inspector for w, masking confidential, from the
// pool; free puts it back.
func newInspector(w http.ResponseWriter, confidential []string) *inspector {
	i := inspectorPool.Get().(*inspector)
	i.w, i.h = w, w.Header()
	i.before.take(i.h)
	i.confidential = confidential
	return i
}

// free returns the inspector and its buffer to their pools, first putting
// w's headers back if the answer was never passed on (next panicked).
// Nothing may use it afterwards.
func (i *inspector) free() {
	if !i.passing {
		i.discard()
	}
	i.release()
	i.before.reset()
	i.inspection = inspection{tail: i.tail[:0]}
	inspectorPool.Put(i)
}

// discard drops the answer: w's headers are put back as they were before
// the attempt, and nothing of it is sent. Only an answer that is not
// passing can be discarded.
func (i *inspector) discard() {
	if i.passing {
		return // sent already: nothing can be taken back
	}
	if !i.discarded {
		i.before.restore(i.h)
		i.discarded = true
	}
	i.release()
}

func (i *inspector) Header() http.Header { return i.h }

func (i *inspector) WriteHeader(status int) {
	if i.passing || i.status != 0 {
		return
	}
	h := i.h
	if status < 200 {
		// Informational answers go straight through; reverse_proxy takes
		// their headers out again.
		maskHeader(h, i.confidential)
		i.w.WriteHeader(status)
		return
	}
	i.status = status
	i.masked, i.file = maskable(h), fileDownload(status, h)
	if i.masked && encoded(h) {
		i.opaque = true
		return
	}
	if !holdBack(status, h) {
		i.startPassing()
	}
}

// encoded reports whether an answer's body is in a Content-Encoding other
// than identity. Go's transport undoes the gzip it asks for (the gateway
// takes the client's Accept-Encoding out), so WeChat's answers arrive
// plain; one that does not (deflate, br, a transport with compression off)
// could hide a token from the mask and a token error from the replay.
func encoded(h http.Header) bool {
	for _, v := range h["Content-Encoding"] {
		for c := range strings.SplitSeq(v, ",") {
			if c = strings.TrimSpace(c); c != "" && !strings.EqualFold(c, "identity") {
				return true
			}
		}
	}
	return false
}

// holdBack decides whether an answer might be a token error: HTTP 200, a
// JSON or text body (or none said), and not known to exceed the window. It
// runs on every answer, so it reads the headers without allocating.
func holdBack(status int, h http.Header) bool {
	if status != http.StatusOK {
		return false
	}
	if cl := last(h, "Content-Length"); cl != "" {
		if n, err := strconv.ParseInt(cl, 10, 64); err != nil || n > inspectWindow {
			return false
		}
	}
	if last(h, "Content-Disposition") != "" {
		return false
	}
	ct := last(h, "Content-Type")
	return ct == "" || jsonOrText(ct)
}

// last returns the last value of the header key: the upstream's, when a
// handler before the gateway set one too (reverse_proxy adds the
// upstream's headers after those already there).
func last(h http.Header, key string) string {
	if v := h[key]; len(v) > 0 {
		return v[len(v)-1]
	}
	return ""
}

// maskable reports whether an answer could echo a request: anything but
// images, audio and video (the media WeChat serves, which it never builds
// from a request's text). An answer with several Content-Types is masked
// unless all of them are media: a client may read any one of them.
func maskable(h http.Header) bool {
	for _, ct := range h["Content-Type"] {
		mt, _, _ := strings.Cut(ct, "/")
		if mt = strings.ToLower(strings.TrimSpace(mt)); mt != "image" && mt != "audio" && mt != "video" {
			return true
		}
	}
	return len(h["Content-Type"]) == 0
}

// fileDownload reports whether an answer is a file WeChat serves back
// (media/get of a WeCom file, get_material): a success with a
// Content-Disposition. Its bytes are what an app uploaded, never an echo of
// the request, and go to the client unchanged but for the confidential
// values themselves, whatever their type (a CSV or a zip may well hold
// "access_token=").
func fileDownload(status int, h http.Header) bool {
	return status/100 == 2 && last(h, "Content-Disposition") != ""
}

// jsonOrText reports whether a Content-Type is application/json or a text/
// type, whatever its parameters (WeChat sends "application/json;
// encoding=utf-8"): the media type compared case-insensitively, spaces
// trimmed, as mime.ParseMediaType reads it, without its allocations.
func jsonOrText(contentType string) bool {
	mt, _, _ := strings.Cut(contentType, ";")
	mt = strings.TrimSpace(mt)
	return strings.EqualFold(mt, "application/json") ||
		len(mt) > len("text/") && strings.EqualFold(mt[:len("text/")], "text/")
}

func (i *inspector) Write(p []byte) (int, error) {
	if i.status == 0 {
		i.WriteHeader(http.StatusOK)
	}
	if i.opaque {
		return len(p), nil
	}
	if i.passing {
		return i.stream(p)
	}
	if i.buf == nil {
		i.buf = windowPool.Get().(*[]byte)
	}
	if len(*i.buf)+len(p) > inspectWindow {
		i.startPassing()
		return i.stream(p)
	}
	*i.buf = append(*i.buf, p...)
	return len(p), nil
}

// stream writes p on to the client, masked if the answer is JSON or text:
// the confidential values, and whatever value follows a credential's name
// (another instance's token, one cut short). What could start a value or a
// name stays in tail until the next write or the end of the answer.
func (i *inspector) stream(p []byte) (int, error) {
	if !i.masked {
		return i.w.Write(p)
	}
	keep := wxapi.MaskTail(i.confidential)
	if !i.file {
		keep = max(keep, maxCredentialParam-1)
	}
	i.tail = append(i.tail, p...)
	wxapi.Mask(i.tail, i.confidential)
	open := -1
	if !i.file {
		open = wxapi.MaskParamsFrom(i.tail, credentialParams, i.paramAt-1)
	}
	out := max(len(i.tail)-keep, 0)
	if out > 0 {
		if _, err := i.w.Write(i.tail[:out]); err != nil {
			return 0, err
		}
		i.tail = append(i.tail[:0], i.tail[out:]...)
	}
	i.paramAt = 0
	if open >= 0 {
		// The value goes on in the next write; its start may be sent.
		i.paramAt = max(open-out, 0) + 1
	}
	return len(p), nil
}

// pass sends the complete answer on: status, headers, whatever was held
// back, and the tail a masked stream kept.
func (i *inspector) pass() {
	if i.opaque && !i.passing {
		i.refuseOpaque()
		return
	}
	if i.passing {
		// It streamed: reverse_proxy adds the upstream's trailers to the
		// header map after the body, and the server sends them from there.
		maskHeader(i.h, i.confidential)
	}
	if !i.passing && i.masked && i.buf != nil {
		// The whole answer is held: mask it in place, send it at once; an
		// echoed query string loses its credentials whatever their value.
		// (Never a file: holdBack holds none.)
		wxapi.Mask(*i.buf, i.confidential)
		wxapi.MaskParams(*i.buf, credentialParams)
		i.masked = false
	}
	i.startPassing()
	if len(i.tail) > 0 {
		_, _ = i.w.Write(i.tail)
		i.tail = i.tail[:0]
	}
}

// refuseOpaque answers, in place of an opaque answer, that it could not be
// inspected: nothing of it reaches the client.
func (i *inspector) refuseOpaque() {
	i.discard()
	i.passing = true
	i.h.Set("Content-Type", wxapi.ContentTypeJSON)
	i.h.Set("Cache-Control", "no-store")
	i.w.WriteHeader(http.StatusBadGateway)
	_, _ = i.w.Write(wxapi.AppendError(nil, wxapi.CodeSystemBusy,
		"wechat gateway: WeChat answered in a Content-Encoding the gateway cannot inspect for tokens; not passed on"))
}

// startPassing sends the status, headers and whatever was held back to the
// client; the rest of the answer follows unbuffered.
func (i *inspector) startPassing() {
	if i.passing {
		return
	}
	i.passing = true
	maskHeader(i.h, i.confidential)
	if i.status != 0 {
		// 0: the next handler wrote nothing; the server answers 200.
		i.w.WriteHeader(i.status)
	}
	if i.buf != nil && len(*i.buf) > 0 {
		_, _ = i.stream(*i.buf)
	}
	i.release()
}

// Flush lets streamed answers through at once; a held-back answer waits.
func (i *inspector) Flush() {
	if i.passing {
		_ = http.NewResponseController(i.w).Flush()
	}
}

// held returns the held-back answer, if the whole answer was held back.
func (i *inspector) held() (body []byte, ok bool) {
	if i.passing || i.status == 0 {
		return nil, false
	}
	if i.buf == nil {
		return nil, true
	}
	return *i.buf, true
}

// tokenError reports whether the whole answer was held back and is a
// WeChat token error (errcode 40001, 40014 or 42001), with WeChat's rid.
func (i *inspector) tokenError() (code int, rid string, ok bool) {
	held, whole := i.held()
	if !whole || !wxapi.MayBeTokenError(held) {
		return 0, "", false
	}
	code, has := wxapi.ScanErrcode(held)
	if !has || !wxapi.Refreshable(code) {
		return 0, "", false
	}
	return code, string(wxapi.ScanRid(held)), true
}

// release returns the window buffer to the pool.
func (i *inspector) release() {
	if i.buf != nil {
		*i.buf = (*i.buf)[:0]
		windowPool.Put(i.buf)
		i.buf = nil
	}
}

// credentialParams are the query parameters that carry credentials, as
// they appear in an echoed query string.
var credentialParams = []string{"access_token=", "secret=", "corpsecret=", "component_access_token="}

// maxCredentialParam is the longest of credentialParams.
var maxCredentialParam = wxapi.MaxParamName(credentialParams)

// maskHeader masks the confidential values in h's values, and the value
// of any credential parameter there (an upstream that echoes the request
// in a Location or other header).
func maskHeader(h http.Header, confidential []string) {
	for _, vals := range h {
		for j, v := range vals {
			if hasConfidential(v, confidential) || hasCredentialParam(v) {
				b := []byte(v)
				wxapi.Mask(b, confidential)
				wxapi.MaskParams(b, credentialParams)
				vals[j] = string(b)
			}
		}
	}
}

// hasConfidential reports whether v holds one of the values Mask hides.
func hasConfidential(v string, confidential []string) bool {
	for _, c := range confidential {
		if len(c) >= wxapi.MinMasked && strings.Contains(v, c) {
			return true
		}
	}
	return false
}

// hasCredentialParam reports whether v may hold one of credentialParams
// (each ends in "token=" or "secret="), without a search for each.
func hasCredentialParam(v string) bool {
	return strings.IndexByte(v, '=') >= 0 && (strings.Contains(v, "token=") || strings.Contains(v, "secret="))
}

// headerSnapshot is a header map as it was: its keys, their value slices
// and the values themselves (a handler between the gateway and the proxy,
// a `header` replace, may edit a value in place). A map of up to
// len(keys) headers and len(saved) values, the usual case, is kept without
// allocating; a larger one is copied.
type headerSnapshot struct {
	n, nv int
	keys  [16]string
	vals  [16][]string
	saved [32]string
	many  http.Header
}

// take records h, into a snapshot that is new or reset.
func (s *headerSnapshot) take(h http.Header) {
	s.n, s.nv, s.many = 0, 0, nil
	if len(h) <= len(s.keys) {
		for k, v := range h {
			if s.nv+len(v) > len(s.saved) {
				break
			}
			s.keys[s.n], s.vals[s.n] = k, v
			s.nv += copy(s.saved[s.nv:], v)
			s.n++
		}
		if s.n == len(h) {
			return
		}
	}
	*s = headerSnapshot{many: h.Clone()}
}

// reset clears the entries in use, so that a pooled inspector keeps no
// call's headers alive.
func (s *headerSnapshot) reset() {
	clear(s.keys[:s.n])
	clear(s.vals[:s.n])
	clear(s.saved[:s.nv])
	s.n, s.nv, s.many = 0, 0, nil
}

// restore puts h back as it was when the snapshot was taken.
func (s *headerSnapshot) restore(h http.Header) {
	if s.many != nil {
		clear(h)
		for k, v := range s.many {
			h[k] = v
		}
		return
	}
	for k := range h {
		if !slices.Contains(s.keys[:s.n], k) {
			delete(h, k)
		}
	}
	nv := 0
	for j := range s.n {
		for k, v := range s.vals[j] {
			if v != s.saved[nv+k] { // write back only what was edited
				s.vals[j][k] = s.saved[nv+k]
			}
		}
		nv += len(s.vals[j])
		h[s.keys[j]] = s.vals[j]
	}
}
