package simulator

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wxgate/caddy-wechat/module/internal/wxapi"
)

// Simulator is an in-process WeChat API: an http.Handler serving the
// official account / mini program paths of api.weixin.qq.com, the WeCom
// paths of qyapi.weixin.qq.com and the control API under
// Config.ControlPrefix, all on one listener.
//
// A Simulator is safe for concurrent use.
type Simulator struct {
	reconf  sync.Mutex // serialises Reconfigure
	current atomic.Pointer[settings]
	clock   *Clock
	tokens  *tokenIndex
	media   *mediaStore
	faults  *faultTable
	stats   *statsTable
	tickets *ticketStore
	rids    *ridLog
	routes  map[string]*routeEntry
	open    *openRuntime // the open platform (third-party platforms)
}

// New validates cfg, applies its defaults and returns a Simulator.
// Validation errors name the offending field, e.g.
// "simulator: Config.Accounts[1].Secret: empty (account wx123)".
func New(cfg Config) (*Simulator, error) {
	cfg, err := cfg.normalize()
	if err != nil {
		return nil, err
	}
	s := &Simulator{
		clock:   NewClock(),
		tokens:  newTokenIndex(),
		faults:  newFaultTable(),
		stats:   newStatsTable(),
		tickets: newTicketStore(),
		rids:    newRidLog(),
		open:    newOpenRuntime(),
	}
	if cfg.Frozen {
		s.clock.Freeze()
	}
	if !cfg.Start.IsZero() {
		s.clock.Set(cfg.Start)
	}
	s.routes = buildRoutes()
	s.media = newMediaStore(cfg.MediaStoreLimit)
	s.current.Store(buildSettings(cfg, nil, len(s.routes)))
	s.startOpen()
	return s, nil
}

// Reconfigure applies a new configuration while keeping the state: accounts
// whose kind, appid, secret and agentid did not change keep their tokens,
// quotas, counters and menu (unless their Menu changed: the new Menu then
// replaces it); removed accounts' tokens stop working; the clock keeps its
// time and is frozen or unfrozen only if Config.Frozen changed (Config.Start
// is ignored). On error nothing changes.
func (s *Simulator) Reconfigure(cfg Config) error {
	cfg, err := cfg.normalize()
	if err != nil {
		return err
	}
	s.reconf.Lock()
	defer s.reconf.Unlock()
	prev := s.current.Load()
	if cfg.Frozen != prev.cfg.Frozen {
		if cfg.Frozen {
			s.clock.Freeze()
		} else {
			s.clock.Unfreeze()
		}
	}
	s.media.setLimit(cfg.MediaStoreLimit)
	next := buildSettings(cfg, prev, len(s.routes))
	s.current.Store(next)
	s.reconfigureOpen(prev, next)
	return nil
}

// Clock returns the simulator's clock.
func (s *Simulator) Clock() *Clock { return s.clock }

// ControlPrefix returns the path prefix of the control API.
func (s *Simulator) ControlPrefix() string { return s.current.Load().cfg.ControlPrefix }

// InvalidateTokens makes every currently valid token of the accounts that id
// names (an appid; a corpid, meaning all its apps; an account Label; or an
// open-platform authorizer appid) invalid at once, in every family
// (/cgi-bin/token, stable_token, gettoken, user tokens and authorizer
// tokens), as an external force refresh would. The invalidated tokens answer
// 40001 (MP) or 40014 (WeCom); the next token call issues a new token. A
// component_appid invalidates the component's component_access_tokens
// instead. It returns how many tokens it invalidated.
func (s *Simulator) InvalidateTokens(id string) (int, error) {
	current := s.current.Load()
	accts := current.findAccounts(id)
	if len(accts) == 0 {
		if n, ok := s.invalidateComponentTokens(current, id); ok {
			return n, nil
		}
		return 0, errors.New("simulator: InvalidateTokens: no account " + quoteID(id))
	}
	set := make(map[*account]bool, len(accts))
	for _, a := range accts {
		set[a] = true
	}
	n := s.tokens.revoke(s.clock.Now().UnixNano(), func(t *token) bool { return set[t.acct] })
	for _, a := range accts {
		a.counts.invalidated.Add(1)
	}
	return n, nil
}

func quoteID(id string) string {
	if len(id) > 64 || !isPlainID(id) {
		return "(malformed id)"
	}
	return `"` + id + `"`
}

// ServeHTTP answers one request like WeChat would.
func (s *Simulator) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	set := s.current.Load()
	path := r.URL.Path
	if p := set.cfg.ControlPrefix; strings.HasPrefix(path, p) && (len(path) == len(p) || path[len(p)] == '/') {
		s.serveControl(w, r, set)
		return
	}
	c := callPool.Get().(*call)
	defer c.release()
	now := s.clock.Now()
	*c = call{s: s, w: w, r: r, set: set, now: now, nowNs: now.UnixNano(), status: http.StatusOK}

	rt := s.routes[path]
	maxBody := int64(unknownPathMaxBody)
	if rt != nil {
		c.route = rt
		c.stats = rt.stats
		maxBody = rt.maxBody
		c.wecom = rt.family == pathWeCom
	} else {
		c.stats = s.stats.dynamic(path)
	}
	if rt == nil || rt.family == pathShared {
		c.wecom = isQyHost(r.Host)
	}
	c.readBody(maxBody)

	if s.faults.count.Load() > 0 {
		if f, ok := s.faults.take(path); ok {
			if rt != nil && rt.auth {
				s.checkToken(c) // only to record which token was sent
			}
			if s.applyFault(c, f) {
				s.finish(c)
				if c.hijack {
					dropConnection(w)
				}
				return
			}
			c.tokenChecked, c.tokenValid, c.recAcct, c.tok, c.acct = false, false, nil, nil, nil
		}
	}
	switch {
	case rt == nil:
		c.notFound()
	case rt.auth:
		if code := s.checkToken(c); code != wxapi.CodeOK {
			c.appTokenRejected = true
			c.fail(code)
		} else if c.methodAllowed() && c.withinQuota() {
			rt.handle(s, c)
		}
	default:
		if c.methodAllowed() {
			rt.handle(s, c)
		}
	}
	s.finish(c)
}

// isQyHost reports whether host is a WeCom API host (qyapi.*).
func isQyHost(host string) bool {
	return strings.HasPrefix(strings.ToLower(host), "qyapi.")
}

// checkToken resolves ?access_token= for the call's route. It returns 0 and
// sets c.tok and c.acct when the token is valid there, or the errcode to
// answer: 41001 missing, 42001 expired, 40001 (MP) / 40014 (WeCom) unknown,
// superseded, revoked or of the wrong family. On shared paths it switches
// the answer style to the token's own kind.
func (s *Simulator) checkToken(c *call) int {
	c.tokenChecked = true
	v, _ := queryValue(c.r.URL.RawQuery, "access_token")
	if v == "" {
		return wxapi.CodeTokenMissing
	}
	t := s.tokens.get(v)
	if t == nil || t.acct.removed.Load() {
		return c.invalidTokenCode()
	}
	c.recAcct = t.acct
	switch c.route.family {
	case pathShared:
		if t.fam != famUser {
			c.wecom = t.fam == famWeCom
		}
	}
	if !familyFits(t.fam, c.wecom) {
		return c.invalidTokenCode()
	}
	switch t.state(c.nowNs) {
	case tokenExpired:
		return wxapi.CodeTokenExpired
	case tokenInvalid:
		return c.invalidTokenCode()
	}
	c.tok, c.acct, c.tokenValid = t, t.acct, true
	return wxapi.CodeOK
}

func familyFits(f family, wecomPath bool) bool {
	if wecomPath {
		return f == famWeCom
	}
	return f == famToken || f == famStable || f == famAuthorizer
}

// finish records the call in the counters.
func (s *Simulator) finish(c *call) {
	s.stats.record(c)
	if c.rid != "" {
		s.rids.add(c)
	}
	if c.appTokenRejected {
		s.stats.appTokenRejections.Add(1)
	}
}

// pathFamily is the service a path belongs to.
type pathFamily uint8

const (
	pathMP     pathFamily = iota + 1 // api.weixin.qq.com only
	pathWeCom                        // qyapi.weixin.qq.com only
	pathShared                       // both: answers follow the token's kind
	pathSNS                          // user OAuth (/sns/)
)

// Accepted request methods of a route.
const (
	allowGET = 1 << iota
	allowPOST
	allowBoth = allowGET | allowPOST
)

// Body size caps. Uploads get the WeCom file limit plus room for the
// multipart framing; JSON APIs get far more than any real body needs.
const (
	jsonMaxBody        = 1 << 20
	uploadMaxBody      = wecomFileLimit + 1<<20
	unknownPathMaxBody = 1 << 20
)

// route describes one WeChat path.
type route struct {
	path    string
	family  pathFamily
	auth    bool  // requires a valid app ?access_token=
	methods uint8 // allowGET / allowPOST
	maxBody int64
	// secretBody marks bodies carrying a secret: their hash is not recorded.
	secretBody bool
	// dailyLimit is the daily quota reported by openapi/quota/get (0: none).
	dailyLimit int
	handle     func(*Simulator, *call)
}

// routeEntry is a route with its per-Simulator counters.
type routeEntry struct {
	*route
	index int
	stats *pathStats
}

func buildRoutes() map[string]*routeEntry {
	all := append(append(append(tokenRoutes(), officialRoutes()...), wecomRoutes()...), openRoutes()...)
	m := make(map[string]*routeEntry, len(all))
	for i, rt := range all {
		if rt.maxBody == 0 {
			rt.maxBody = jsonMaxBody
		}
		m[rt.path] = &routeEntry{route: rt, index: i, stats: newPathStats(rt.path)}
	}
	return m
}

// call is the state of one request; pooled to keep the hot path free of
// allocations.
type call struct {
	s     *Simulator
	w     http.ResponseWriter
	r     *http.Request
	set   *settings
	now   time.Time
	nowNs int64
	route *routeEntry
	stats *pathStats
	wecom bool // answer in WeCom style

	tok  *token   // the valid token of an auth route
	acct *account // its account

	body          []byte
	bodyRead      int64
	bodyTruncated bool

	tokenChecked     bool
	tokenValid       bool
	recAcct          *account // the account named by the request, for the record
	owner            string   // a component appid the request belongs to (record, rid/get), when no account
	appTokenRejected bool
	fault            bool
	dropped          bool   // no answer was written
	hijack           bool   // the connection must be closed
	code             int    // errcode answered (0: success)
	rid              string // the rid of an error answer, for rid/get
	answer           []byte // the body of an answer with a rid
	status           int    // HTTP status answered
}

var callPool = sync.Pool{New: func() any { return new(call) }}

func (c *call) release() {
	*c = call{}
	callPool.Put(c)
}

func (c *call) day() int64 { return dayNumber(c.now) }

// readBody reads at most max bytes of the request body into c.body; a longer
// body sets c.bodyTruncated and is not read further.
func (c *call) readBody(max int64) {
	body := c.r.Body
	if body == nil || body == http.NoBody || c.r.ContentLength == 0 {
		return
	}
	size := int64(512)
	if cl := c.r.ContentLength; cl > 0 {
		size = min(cl, max) + 1
	}
	buf := bytes.NewBuffer(make([]byte, 0, size))
	n, _ := buf.ReadFrom(io.LimitReader(body, max+1))
	if n > max {
		c.bodyTruncated = true
		n = max
	}
	c.bodyRead = n
	c.body = buf.Bytes()[:n]
}

func (c *call) methodAllowed() bool {
	m := c.route.methods
	switch c.r.Method {
	case http.MethodGet, http.MethodHead:
		if m&allowGET != 0 {
			return true
		}
	case http.MethodPost:
		if m&allowPOST != 0 {
			return true
		}
	}
	if m&allowPOST != 0 {
		c.fail(wxapi.CodeRequirePOST)
	} else {
		c.fail(wxapi.CodeRequireGET)
	}
	return false
}

// withinQuota counts the call against the account's daily quota of the
// path; with Config.EnforceAPIQuota it answers 45009 past the quota.
func (c *call) withinQuota() bool {
	limit := c.route.dailyLimit
	if limit == 0 {
		return true
	}
	u := &c.acct.usage[c.route.index]
	day := c.day()
	if c.set.cfg.EnforceAPIQuota && u.get(day) >= limit {
		c.fail(wxapi.CodeDailyQuota)
		return false
	}
	u.inc(day)
	return true
}

func (c *call) invalidTokenCode() int {
	if c.wecom {
		return wxapi.CodeInvalidToken
	}
	return wxapi.CodeInvalidCredential
}

// write answers status with body. The header value is a fresh slice: a
// later handler (a Caddy header rule) may edit it in place.
func (c *call) write(status int, contentType string, body []byte) {
	h := c.w.Header()
	h["Content-Type"] = []string{contentType}
	c.status = status
	if c.rid != "" {
		c.answer = body
	}
	c.w.WriteHeader(status)
	_, _ = c.w.Write(body)
}

// json answers an HTTP 200 JSON body carrying errcode code (0 on success).
func (c *call) json(code int, body []byte) {
	c.code = code
	c.write(http.StatusOK, jsonContentType, body)
}

// ok answers v as JSON, a success.
func (c *call) ok(v any) { c.json(wxapi.CodeOK, marshal(v)) }

// fail answers the business error code with its usual text.
func (c *call) fail(code int) { c.failText(code, errText(code, c.wecom)) }

// failText answers the business error code with text (the errmsg suffix is
// appended).
func (c *call) failText(code int, text string) {
	msg, id := errmsg(code, text, c.wecom, c.now, c.r)
	c.rid = id
	c.json(code, marshal(errorBody{Errcode: code, Errmsg: msg}))
}

// notFound answers an unknown path like the real front end: HTTP 404 with a
// small HTML body.
func (c *call) notFound() {
	c.code = 0
	c.write(http.StatusNotFound, "text/html", notFoundBody)
}

var notFoundBody = []byte("<html>\r\n<head><title>404 Not Found</title></head>\r\n<body>\r\n<center><h1>404 Not Found</h1></center>\r\n</body>\r\n</html>\r\n")

// query returns the value of a query parameter.
func (c *call) query(key string) string {
	v, _ := queryValue(c.r.URL.RawQuery, key)
	return v
}

// bodyHash returns the SHA-256 of the body read.
func (c *call) bodyHash() [32]byte { return sha256.Sum256(c.body) }
