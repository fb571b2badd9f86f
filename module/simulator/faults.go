package simulator

import (
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wxgate/caddy-wechat/module/internal/wxapi"
)

// Fault is an injected misbehaviour of one path. Several effects may be
// combined; they apply in this order: Latency, then Drop, or else the
// answer: Status and/or Errcode, Garbage or Sticky40014. A Fault with only
// Latency delays the normal answer.
//
// Faults on the same path queue up: a request consumes the oldest one.
// Faults on "*" apply to any path without a fault of its own (never to the
// control API).
type Fault struct {
	// Path is the exact request path ("/cgi-bin/token") or "*".
	Path string
	// Errcode, when not 0, is answered as {"errcode":Errcode,"errmsg":...}
	// with a realistic errmsg for the path's service (any int works, -1
	// included; token endpoints too).
	Errcode int
	// Errmsg replaces the usual errmsg text of Errcode (the rid / hint
	// suffix is still appended).
	Errmsg string
	// Count is how many requests the fault applies to; 0 means until it is
	// cleared.
	Count int
	// Latency delays the answer (a real-time timer, cut short when the
	// client goes away).
	Latency time.Duration
	// Drop closes the connection without answering.
	Drop bool
	// Garbage answers a body that is not JSON (with the JSON content type).
	Garbage bool
	// Status is the HTTP status to answer (400-599); with no Errcode or
	// Garbage the body is a small HTML error page.
	Status int
	// Sticky40014 answers 40014 "invalid access_token" whatever token is
	// sent: a token problem no refresh fixes.
	Sticky40014 bool
}

// FaultState is an installed fault as Faults reports it.
type FaultState struct {
	ID int
	Fault
	// Used is how many requests it applied to so far; Remaining how many are
	// left (-1: until cleared).
	Used, Remaining int
}

func (f Fault) validate() error {
	switch {
	case f.Path != "*" && !strings.HasPrefix(f.Path, "/"):
		return fmt.Errorf("simulator: Fault.Path: %q must start with / or be *", f.Path)
	case f.Count < 0:
		return fmt.Errorf("simulator: Fault.Count: must not be negative, got %d", f.Count)
	case f.Latency < 0:
		return fmt.Errorf("simulator: Fault.Latency: must not be negative, got %v", f.Latency)
	case f.Status != 0 && (f.Status < 400 || f.Status > 599):
		return fmt.Errorf("simulator: Fault.Status: %d is not an HTTP error status (400-599)", f.Status)
	case f.Drop && (f.Errcode != 0 || f.Garbage || f.Status != 0 || f.Sticky40014):
		return errors.New("simulator: Fault.Drop: cannot be combined with an answer (Errcode, Garbage, Status, Sticky40014)")
	case f.Garbage && (f.Errcode != 0 || f.Sticky40014):
		return errors.New("simulator: Fault.Garbage: cannot be combined with Errcode or Sticky40014")
	case f.Sticky40014 && f.Errcode != 0 && f.Errcode != wxapi.CodeInvalidToken:
		return errors.New("simulator: Fault.Sticky40014: cannot be combined with another Errcode")
	case f.Errcode == 0 && f.Latency == 0 && !f.Drop && !f.Garbage && f.Status == 0 && !f.Sticky40014:
		return errors.New("simulator: Fault: no effect (set Errcode, Latency, Drop, Garbage, Status or Sticky40014)")
	case len(f.Errmsg) > 1024:
		return errors.New("simulator: Fault.Errmsg: longer than 1024 bytes")
	}
	return nil
}

// faultTable holds the installed faults. count lets the request path skip
// the lock when there are none.
type faultTable struct {
	count  atomic.Int32
	mu     sync.Mutex
	nextID int
	byPath map[string][]*FaultState
}

func newFaultTable() *faultTable { return &faultTable{byPath: make(map[string][]*FaultState)} }

// InjectFault installs f and returns its id.
func (s *Simulator) InjectFault(f Fault) (int, error) {
	if err := f.validate(); err != nil {
		return 0, err
	}
	ft := s.faults
	ft.mu.Lock()
	defer ft.mu.Unlock()
	ft.nextID++
	st := &FaultState{ID: ft.nextID, Fault: f, Remaining: f.Count}
	if f.Count == 0 {
		st.Remaining = -1
	}
	ft.byPath[f.Path] = append(ft.byPath[f.Path], st)
	ft.count.Add(1)
	return st.ID, nil
}

// ClearFaults removes the faults of path, or all faults when path is "", and
// returns how many it removed.
func (s *Simulator) ClearFaults(path string) int {
	ft := s.faults
	ft.mu.Lock()
	defer ft.mu.Unlock()
	n := 0
	for p, list := range ft.byPath {
		if path == "" || p == path {
			n += len(list)
			delete(ft.byPath, p)
		}
	}
	ft.count.Add(int32(-n))
	return n
}

// Faults returns the installed faults, oldest first.
func (s *Simulator) Faults() []FaultState {
	ft := s.faults
	ft.mu.Lock()
	defer ft.mu.Unlock()
	var out []FaultState
	for _, list := range ft.byPath {
		for _, st := range list {
			out = append(out, *st)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// take consumes one use of the first fault of path (or of "*").
func (ft *faultTable) take(path string) (Fault, bool) {
	ft.mu.Lock()
	defer ft.mu.Unlock()
	key := path
	list := ft.byPath[key]
	if len(list) == 0 {
		key = "*"
		list = ft.byPath[key]
		if len(list) == 0 {
			return Fault{}, false
		}
	}
	st := list[0]
	st.Used++
	if st.Remaining > 0 {
		st.Remaining--
		if st.Remaining == 0 {
			if len(list) == 1 {
				delete(ft.byPath, key)
			} else {
				ft.byPath[key] = list[1:]
			}
			ft.count.Add(-1)
		}
	}
	return st.Fault, true
}

// garbageBody is what a broken proxy might return: the start of a JSON
// answer cut short, then binary noise.
var garbageBody = []byte("{\"errcode\":0,\"errm\x00\xff\xfe<html>upstream sent garbage")

// applyFault applies f to the call. It returns false when the fault only
// delayed the request, which then gets its normal answer.
func (s *Simulator) applyFault(c *call, f Fault) bool {
	if f.Latency > 0 {
		timer := time.NewTimer(f.Latency)
		select {
		case <-timer.C:
			c.now = s.clock.Now()
			c.nowNs = c.now.UnixNano()
		case <-c.r.Context().Done():
			timer.Stop()
			c.fault, c.dropped, c.status = true, true, 0
			return true
		}
	}
	switch {
	case f.Drop:
		// ServeHTTP closes the connection once the call is recorded.
		c.fault, c.dropped, c.hijack, c.status = true, true, true, 0
	case f.Garbage:
		c.fault = true
		c.code = 0
		c.write(statusOr(f.Status), jsonContentType, garbageBody)
	case f.Errcode != 0 || f.Sticky40014:
		c.fault = true
		code := f.Errcode
		if f.Sticky40014 {
			code = wxapi.CodeInvalidToken
		}
		text := f.Errmsg
		if text == "" {
			text = errText(code, c.wecom)
		}
		c.code = code
		msg, id := errmsg(code, text, c.wecom, c.now, c.r)
		c.rid = id
		c.write(statusOr(f.Status), jsonContentType, marshal(errorBody{Errcode: code, Errmsg: msg}))
	case f.Status != 0:
		c.fault = true
		c.code = 0
		text := http.StatusText(f.Status)
		body := fmt.Sprintf("<html>\r\n<head><title>%d %s</title></head>\r\n<body>\r\n<center><h1>%d %s</h1></center>\r\n</body>\r\n</html>\r\n", f.Status, text, f.Status, text)
		c.write(f.Status, "text/html", []byte(body))
	default:
		return false
	}
	return true
}

func statusOr(status int) int {
	if status == 0 {
		return http.StatusOK
	}
	return status
}

// dropConnection closes the client connection without an answer. When the
// connection cannot be hijacked (HTTP/2, a recorder) it aborts the handler
// the way net/http documents, which resets the stream.
func dropConnection(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	_ = conn.Close()
}
