package simulator

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// controlMaxBody bounds control request bodies.
const controlMaxBody = 64 << 10

func (s *Simulator) serveControl(w http.ResponseWriter, r *http.Request, set *settings) {
	sub := strings.TrimPrefix(r.URL.Path, set.cfg.ControlPrefix)
	if id, ok := strings.CutPrefix(sub, "/media/"); ok {
		if allow(w, r, http.MethodGet) {
			s.serveRawMedia(w, r, set, id)
		}
		return
	}
	rt, ok := controlRoutes[sub]
	if !ok {
		controlError(w, http.StatusNotFound, "unknown control path "+strconv.Quote(sub))
		return
	}
	if allow(w, r, rt.methods...) {
		rt.serve(s, w, r)
	}
}

// controlRoute is a path of the control API: the methods it allows (405
// otherwise) and what serves them.
type controlRoute struct {
	methods []string
	serve   func(s *Simulator, w http.ResponseWriter, r *http.Request)
}

var (
	controlGET  = []string{http.MethodGet}
	controlPOST = []string{http.MethodPost}
)

// controlRoutes are the paths of the control API below the prefix, but
// for media/{id}.
var controlRoutes = map[string]controlRoute{
	"/counters": {controlGET, func(s *Simulator, w http.ResponseWriter, _ *http.Request) {
		controlJSON(w, http.StatusOK, s.Counters())
	}},
	"/counters/reset": {controlPOST, func(s *Simulator, w http.ResponseWriter, _ *http.Request) {
		s.ResetCounters()
		controlJSON(w, http.StatusOK, map[string]bool{"ok": true})
	}},
	"/clock": {controlGET, func(s *Simulator, w http.ResponseWriter, _ *http.Request) {
		controlJSON(w, http.StatusOK, s.clockState())
	}},
	"/clock/advance":         {controlPOST, (*Simulator).controlAdvance},
	"/clock/set":             {controlPOST, (*Simulator).controlSetClock},
	"/faults":                {[]string{http.MethodGet, http.MethodPost, http.MethodDelete}, (*Simulator).controlFaults},
	"/tokens/invalidate":     {controlPOST, (*Simulator).controlInvalidate},
	"/component/ticket":      {controlPOST, (*Simulator).controlPushTicket},
	"/component/authorize":   {controlPOST, (*Simulator).controlAuthorize},
	"/component/unauthorize": {controlPOST, (*Simulator).controlUnauthorize},
}

// allow answers 405 unless r uses one of methods.
func allow(w http.ResponseWriter, r *http.Request, methods ...string) bool {
	for _, m := range methods {
		if r.Method == m {
			return true
		}
	}
	w.Header().Set("Allow", strings.Join(methods, ", "))
	controlError(w, http.StatusMethodNotAllowed, "method "+r.Method+" not allowed, use "+strings.Join(methods, " or "))
	return false
}

func controlJSON(w http.ResponseWriter, status int, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		status = http.StatusInternalServerError
		buf.Reset()
		buf.WriteString(`{"error":"cannot encode the answer"}` + "\n")
	}
	w.Header().Set("Content-Type", jsonContentType)
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

func controlError(w http.ResponseWriter, status int, msg string) {
	controlJSON(w, status, map[string]string{"error": msg})
}

// decodeControl strictly decodes a control request body into v.
func decodeControl(w http.ResponseWriter, r *http.Request, v any) bool {
	body, err := io.ReadAll(io.LimitReader(r.Body, controlMaxBody+1))
	switch {
	case err != nil:
		controlError(w, http.StatusBadRequest, "cannot read the body: "+err.Error())
		return false
	case len(body) > controlMaxBody:
		controlError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("body over %d bytes", controlMaxBody))
		return false
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		controlError(w, http.StatusBadRequest, "bad JSON body: "+err.Error())
		return false
	}
	if dec.More() {
		controlError(w, http.StatusBadRequest, "bad JSON body: data after the object")
		return false
	}
	return true
}

// ClockState is the control API's view of the clock.
type ClockState struct {
	// Now is the simulated time in Asia/Shanghai (UTC+8).
	Now time.Time `json:"now"`
	// Unix is Now in Unix seconds.
	Unix int64 `json:"unix"`
	// Day is the WeChat quota day of Now.
	Day string `json:"day"`
	// Frozen tells whether the clock stands still.
	Frozen bool `json:"frozen"`
	// Offset is how far the clock is ahead of the real time, a Go duration.
	Offset string `json:"offset"`
}

func (s *Simulator) clockState() ClockState {
	now := s.clock.Now().In(shanghai)
	return ClockState{
		Now:    now,
		Unix:   now.Unix(),
		Day:    now.Format(time.DateOnly),
		Frozen: s.clock.Frozen(),
		Offset: s.clock.Offset().Round(time.Millisecond).String(),
	}
}

func (s *Simulator) controlAdvance(w http.ResponseWriter, r *http.Request) {
	var req struct {
		By string `json:"by"`
	}
	if !decodeControl(w, r, &req) {
		return
	}
	d, err := time.ParseDuration(req.By)
	if err != nil {
		controlError(w, http.StatusBadRequest, `"by": want a Go duration like "2h" or "90s": `+err.Error())
		return
	}
	s.clock.Advance(d)
	controlJSON(w, http.StatusOK, s.clockState())
}

func (s *Simulator) controlSetClock(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Time   string `json:"time"`
		Unix   *int64 `json:"unix"`
		Frozen *bool  `json:"frozen"`
	}
	if !decodeControl(w, r, &req) {
		return
	}
	var target time.Time
	switch {
	case req.Time != "" && req.Unix != nil:
		controlError(w, http.StatusBadRequest, `give "time" or "unix", not both`)
		return
	case req.Time != "":
		t, err := time.Parse(time.RFC3339Nano, req.Time)
		if err != nil {
			controlError(w, http.StatusBadRequest, `"time": want RFC 3339 like "2025-01-01T00:00:00+08:00": `+err.Error())
			return
		}
		target = t
	case req.Unix != nil:
		target = time.Unix(*req.Unix, 0)
	case req.Frozen == nil:
		controlError(w, http.StatusBadRequest, `give "time", "unix" or "frozen"`)
		return
	}
	if req.Frozen != nil && *req.Frozen {
		s.clock.Freeze()
	}
	if !target.IsZero() {
		s.clock.Set(target)
	}
	if req.Frozen != nil && !*req.Frozen {
		s.clock.Unfreeze()
	}
	controlJSON(w, http.StatusOK, s.clockState())
}

// jsonDuration is a duration written as a Go duration string; a JSON
// number is read as milliseconds.
type jsonDuration time.Duration

func (d jsonDuration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

func (d *jsonDuration) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		v, err := time.ParseDuration(s)
		if err != nil {
			return err
		}
		*d = jsonDuration(v)
		return nil
	}
	var ms float64
	if err := json.Unmarshal(b, &ms); err != nil {
		return errors.New("want a duration string like \"500ms\" or a number of milliseconds")
	}
	*d = jsonDuration(time.Duration(ms * float64(time.Millisecond)))
	return nil
}

// faultJSON is a Fault on the wire.
type faultJSON struct {
	ID          int          `json:"id,omitempty"`
	Path        string       `json:"path"`
	Errcode     int          `json:"errcode,omitempty"`
	Errmsg      string       `json:"errmsg,omitempty"`
	Count       int          `json:"count,omitempty"`
	Latency     jsonDuration `json:"latency,omitempty"`
	Drop        bool         `json:"drop,omitempty"`
	Garbage     bool         `json:"garbage,omitempty"`
	Status      int          `json:"status,omitempty"`
	Sticky40014 bool         `json:"sticky40014,omitempty"`
	Used        *int         `json:"used,omitempty"`
	Remaining   *int         `json:"remaining,omitempty"`
}

func (f faultJSON) fault() Fault {
	return Fault{Path: f.Path, Errcode: f.Errcode, Errmsg: f.Errmsg, Count: f.Count, Latency: time.Duration(f.Latency),
		Drop: f.Drop, Garbage: f.Garbage, Status: f.Status, Sticky40014: f.Sticky40014}
}

func toFaultJSON(st FaultState) faultJSON {
	f := st.Fault
	return faultJSON{ID: st.ID, Path: f.Path, Errcode: f.Errcode, Errmsg: f.Errmsg, Count: f.Count,
		Latency: jsonDuration(f.Latency), Drop: f.Drop, Garbage: f.Garbage, Status: f.Status,
		Sticky40014: f.Sticky40014, Used: &st.Used, Remaining: &st.Remaining}
}

func (s *Simulator) controlFaults(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet:
		list := []faultJSON{}
		for _, st := range s.Faults() {
			list = append(list, toFaultJSON(st))
		}
		controlJSON(w, http.StatusOK, map[string]any{"faults": list})
	case http.MethodDelete:
		path := r.URL.Query().Get("path")
		controlJSON(w, http.StatusOK, map[string]int{"cleared": s.ClearFaults(path)})
	case http.MethodPost:
		var req faultJSON
		if !decodeControl(w, r, &req) {
			return
		}
		if req.ID != 0 || req.Used != nil || req.Remaining != nil {
			controlError(w, http.StatusBadRequest, `"id", "used" and "remaining" are set by the simulator`)
			return
		}
		f := req.fault()
		id, err := s.InjectFault(f)
		if err != nil {
			controlError(w, http.StatusBadRequest, err.Error())
			return
		}
		st := FaultState{ID: id, Fault: f, Remaining: f.Count}
		if f.Count == 0 {
			st.Remaining = -1
		}
		controlJSON(w, http.StatusOK, map[string]any{"id": id, "fault": toFaultJSON(st)})
	}
}

func (s *Simulator) controlInvalidate(w http.ResponseWriter, r *http.Request) {
	var req struct {
		AppID string `json:"appid"`
	}
	if !decodeControl(w, r, &req) {
		return
	}
	if req.AppID == "" {
		controlError(w, http.StatusBadRequest, `"appid" is required (an appid, a corpid or an account label)`)
		return
	}
	n, err := s.InvalidateTokens(req.AppID)
	if err != nil {
		controlError(w, http.StatusNotFound, err.Error())
		return
	}
	controlJSON(w, http.StatusOK, map[string]int{"invalidated": n})
}

// serveRawMedia serves any stored media by id, without a token: it is where
// the video_url of MP videos points.
func (s *Simulator) serveRawMedia(w http.ResponseWriter, r *http.Request, set *settings, id string) {
	if id == LargeMediaID {
		w.Header().Set("Content-Type", "image/jpeg")
		http.ServeContent(w, r, "", time.Time{}, LargeMedia(set.cfg.LargeMediaSize))
		return
	}
	m := s.media.get(id)
	if m == nil || s.clock.Now().UnixNano()-m.created >= int64(mediaLifetime) {
		controlError(w, http.StatusNotFound, "no media "+strconv.Quote(id))
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(m.data))
}
