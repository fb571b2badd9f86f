package caddywechat

import (
	"net/http"
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

// inspector is the ResponseWriter the first attempt writes to. It keeps its
// own header map, so that nothing of a discarded answer reaches the client,
// and holds back a small JSON or text answer until the handler has looked at
// its errcode. Anything else (binary media, large answers, non-200 statuses)
// passes straight through, unbuffered.
type inspector struct {
	w      http.ResponseWriter
	header http.Header
	status int
	buf    *[]byte
	// passing is set once the answer goes straight to w.
	passing bool
}

var inspectorPool = sync.Pool{New: func() any { return &inspector{header: make(http.Header)} }}

// newInspector returns an inspector for w from the pool; free puts it back.
func newInspector(w http.ResponseWriter) *inspector {
	i := inspectorPool.Get().(*inspector)
	i.w = w
	return i
}

// free returns the inspector and its buffer to their pools. Nothing may use
// it afterwards.
func (i *inspector) free() {
	i.release()
	clear(i.header)
	*i = inspector{header: i.header}
	inspectorPool.Put(i)
}

func (i *inspector) Header() http.Header {
	if i.passing {
		return i.w.Header()
	}
	return i.header
}

func (i *inspector) WriteHeader(status int) {
	if i.passing || i.status != 0 {
		return
	}
	if status < 200 { // informational answers go straight through
		h := i.w.Header()
		copyHeader(h, i.header)
		i.w.WriteHeader(status)
		for k := range i.header { // their headers are not the final answer's
			h.Del(k)
		}
		clear(i.header)
		return
	}
	i.status = status
	if !holdBack(status, i.header) {
		i.pass()
	}
}

// holdBack decides whether an answer might be a token error: HTTP 200, a
// JSON or text body (or none said), and not known to exceed the window. It
// runs on every answer, so it reads the headers without allocating.
func holdBack(status int, h http.Header) bool {
	if status != http.StatusOK {
		return false
	}
	if cl := h.Get("Content-Length"); cl != "" {
		if n, err := strconv.ParseInt(cl, 10, 64); err != nil || n > inspectWindow {
			return false
		}
	}
	if h.Get("Content-Disposition") != "" {
		return false
	}
	ct := h.Get("Content-Type")
	return ct == "" || jsonOrText(ct)
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
	if i.passing {
		return i.w.Write(p)
	}
	if i.buf == nil {
		i.buf = windowPool.Get().(*[]byte)
	}
	if len(*i.buf)+len(p) > inspectWindow {
		i.pass()
		return i.w.Write(p)
	}
	*i.buf = append(*i.buf, p...)
	return len(p), nil
}

// pass sends the status, headers and whatever was held back to the client;
// the rest of the answer follows unbuffered.
func (i *inspector) pass() {
	if i.passing {
		return
	}
	i.passing = true
	copyHeader(i.w.Header(), i.header)
	i.w.WriteHeader(i.status)
	if i.buf != nil && len(*i.buf) > 0 {
		_, _ = i.w.Write(*i.buf)
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
	if !whole {
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

func copyHeader(dst, src http.Header) {
	for k, v := range src {
		dst[k] = v
	}
}
