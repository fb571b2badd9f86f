package simulator

import (
	"crypto/sha256"
	"encoding/hex"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wxgate/caddy-wechat/module/internal/wxapi"
)

// Counters is a snapshot of what the simulator saw, for tests to assert on.
// It never contains a token or a secret.
type Counters struct {
	// Time is the simulator clock when the snapshot was taken.
	Time time.Time `json:"time"`
	// Tokens holds the token counters of every configured account, keyed by
	// Account.Label.
	Tokens map[string]TokenCounts `json:"tokens"`
	// Paths holds the counters of every path called since the last reset
	// (unknown paths included; past 1024 distinct unknown paths they share
	// the key "(other)").
	Paths map[string]PathCounts `json:"paths"`
	// Calls is the number of WeChat requests (control API excluded).
	Calls int64 `json:"calls"`
	// AppTokenRejections is the number of requests whose app access token
	// was refused (41001, 40001, 40014, 42001) by a token-checked path.
	// /sns/ answers and injected faults are not counted.
	AppTokenRejections int64 `json:"app_token_rejections"`
	// Components holds the open-platform counters of every configured
	// third-party platform, keyed by component_appid.
	Components map[string]ComponentCounts `json:"components,omitempty"`
	// ComponentTokenRejections is the number of component API calls whose
	// component_access_token was refused (41001, 40001, 42001).
	ComponentTokenRejections int64 `json:"component_token_rejections,omitempty"`
}

// TokenCounts are the token counters of one account.
type TokenCounts struct {
	// Kind is the account kind, KindOfficial or KindWeCom.
	Kind string `json:"kind"`
	// Token counts successful /cgi-bin/token answers (each a new token).
	Token int64 `json:"token"`
	// StableToken counts successful stable_token answers; StableIssued the
	// distinct stable tokens minted (first token, rotations, forces).
	StableToken  int64 `json:"stable_token"`
	StableIssued int64 `json:"stable_issued"`
	// GetToken counts successful gettoken answers; GetTokenIssued the
	// distinct WeCom tokens minted.
	GetToken       int64 `json:"gettoken"`
	GetTokenIssued int64 `json:"gettoken_issued"`
	// ForceRefresh counts performed stable_token force refreshes;
	// ForceRefreshRefused those answered in normal mode because of the
	// daily limit or the spacing.
	ForceRefresh        int64 `json:"force_refresh"`
	ForceRefreshRefused int64 `json:"force_refresh_refused"`
	// UserTokens counts user tokens issued by /sns/oauth2/access_token.
	UserTokens int64 `json:"user_tokens"`
	// Sessions counts mini-program logins /sns/jscode2session answered;
	// like UserTokens, each one proves the caller sent the real secret.
	Sessions int64 `json:"sessions"`
	// Tickets counts the JS-SDK ticket calls answered, by type: jsapi and
	// wx_card (official), jsapi (the corp's, WeCom) and agent_config.
	Tickets map[string]int64 `json:"tickets,omitempty"`
	// Invalidations counts InvalidateTokens calls naming the account.
	Invalidations int64 `json:"invalidations"`
}

// PathCounts are the counters of one path.
type PathCounts struct {
	// Calls counts every request.
	Calls int64 `json:"calls"`
	// OK counts successful answers (errcode 0 or none, HTTP 200/206).
	OK int64 `json:"ok"`
	// Rejected counts answers per errcode (injected ones included).
	Rejected map[int]int64 `json:"rejected,omitempty"`
	// AppTokenRejections counts answers refusing the app access token
	// (41001, 40001, 40014, 42001 from the token check).
	AppTokenRejections int64 `json:"app_token_rejections"`
	// Faults counts requests an injected fault answered, delayed only
	// excluded.
	Faults int64 `json:"faults"`
	// HTTPErrors counts answers with an HTTP status of 400 or more.
	HTTPErrors int64 `json:"http_errors"`
	// Last is the last request seen.
	Last *RequestRecord `json:"last,omitempty"`
}

// RequestRecord describes one request without its secrets.
type RequestRecord struct {
	// Time is the simulator clock when the request arrived.
	Time time.Time `json:"time"`
	// Method is the HTTP method.
	Method string `json:"method"`
	// Host is the Host header (qyapi.* selects the WeCom style where the
	// token does not).
	Host string `json:"host"`
	// Query is the raw query string with the values of access_token,
	// secret, corpsecret, appsecret and the like replaced by "REDACTED".
	Query string `json:"query"`
	// BodySHA256 is the hex SHA-256 of the body read; empty when the body
	// carries a secret (stable_token, clear_quota/v2), then BodyRedacted.
	BodySHA256   string `json:"body_sha256,omitempty"`
	BodyRedacted bool   `json:"body_redacted,omitempty"`
	// ContentLength is the request's Content-Length (-1: unknown); BodyBytes
	// the bytes read, BodyTruncated set when the body passed the path's
	// limit and was not read further.
	ContentLength int64 `json:"content_length"`
	BodyBytes     int64 `json:"body_bytes"`
	BodyTruncated bool  `json:"body_truncated,omitempty"`
	// TokenChecked tells whether the path takes an access token;
	// TokenValid whether the one sent was valid there.
	TokenChecked bool `json:"token_checked"`
	TokenValid   bool `json:"token_valid"`
	// Account is the Label of the account the token or credentials
	// resolved to, even when they were refused ("" when unknown).
	Account string `json:"account,omitempty"`
	// Errcode is the errcode answered (0: success or none); Status the HTTP
	// status (0: the connection was dropped).
	Errcode int `json:"errcode"`
	Status  int `json:"status"`
	// Fault tells an injected fault answered; Dropped that no answer was
	// written (a dropped connection, or the client left during a latency).
	Fault   bool `json:"fault,omitempty"`
	Dropped bool `json:"dropped,omitempty"`
}

// pathStats are the live counters of one path.
type pathStats struct {
	path           string
	calls          atomic.Int64
	ok             atomic.Int64
	tokenRejection atomic.Int64
	faults         atomic.Int64
	httpErrors     atomic.Int64

	mu       sync.Mutex // guards rejected and last
	rejected map[int]int64
	last     lastRecord
}

// lastRecord is RequestRecord before redaction and hashing; storing it
// allocates nothing.
type lastRecord struct {
	set           bool
	at            time.Time
	method, host  string
	rawQuery      string
	hash          [32]byte
	redacted      bool
	contentLength int64
	bodyBytes     int64
	truncated     bool
	tokenChecked  bool
	tokenValid    bool
	account       string
	code, status  int
	fault         bool
	dropped       bool
}

func newPathStats(path string) *pathStats { return &pathStats{path: path} }

func (ps *pathStats) reset() {
	ps.calls.Store(0)
	ps.ok.Store(0)
	ps.tokenRejection.Store(0)
	ps.faults.Store(0)
	ps.httpErrors.Store(0)
	ps.mu.Lock()
	ps.rejected = nil
	ps.last = lastRecord{}
	ps.mu.Unlock()
}

var emptySHA256 = sha256.Sum256(nil)

// maxDynamicPaths bounds the distinct unknown paths counted separately.
const maxDynamicPaths = 1024

// statsTable holds the counters of unknown paths and the totals.
type statsTable struct {
	appTokenRejections atomic.Int64
	mu                 sync.Mutex
	dynamicPaths       map[string]*pathStats
}

func newStatsTable() *statsTable { return &statsTable{dynamicPaths: make(map[string]*pathStats)} }

// dynamic returns the counters of a path without a route.
func (st *statsTable) dynamic(path string) *pathStats {
	st.mu.Lock()
	defer st.mu.Unlock()
	ps := st.dynamicPaths[path]
	if ps == nil {
		if len(st.dynamicPaths) >= maxDynamicPaths {
			path = "(other)"
			if ps = st.dynamicPaths[path]; ps != nil {
				return ps
			}
		}
		ps = newPathStats(path)
		st.dynamicPaths[path] = ps
	}
	return ps
}

// record counts a finished call.
func (st *statsTable) record(c *call) {
	ps := c.stats
	ps.calls.Add(1)
	switch {
	case c.code != wxapi.CodeOK:
	case c.fault, c.dropped:
	case c.status == 200 || c.status == 206:
		ps.ok.Add(1)
	}
	if c.fault {
		ps.faults.Add(1)
	}
	if c.status >= 400 {
		ps.httpErrors.Add(1)
	}
	if c.appTokenRejected {
		ps.tokenRejection.Add(1)
	}
	rec := lastRecord{
		set:           true,
		at:            c.now,
		method:        c.r.Method,
		host:          c.r.Host,
		rawQuery:      c.r.URL.RawQuery,
		hash:          emptySHA256,
		contentLength: c.r.ContentLength,
		bodyBytes:     c.bodyRead,
		truncated:     c.bodyTruncated,
		tokenChecked:  c.tokenChecked,
		tokenValid:    c.tokenValid,
		code:          c.code,
		status:        c.status,
		fault:         c.fault,
		dropped:       c.dropped,
	}
	if c.recAcct != nil {
		rec.account = c.recAcct.label
	} else if c.owner != "" {
		rec.account = c.owner
	}
	if c.route != nil && c.route.secretBody && c.bodyRead > 0 {
		rec.redacted = true
	} else if len(c.body) > 0 {
		rec.hash = c.bodyHash()
	}
	ps.mu.Lock()
	if c.code != wxapi.CodeOK {
		if ps.rejected == nil {
			ps.rejected = make(map[int]int64)
		}
		ps.rejected[c.code]++
	}
	ps.last = rec
	ps.mu.Unlock()
}

func (ps *pathStats) snapshot() PathCounts {
	pc := PathCounts{
		Calls:              ps.calls.Load(),
		OK:                 ps.ok.Load(),
		AppTokenRejections: ps.tokenRejection.Load(),
		Faults:             ps.faults.Load(),
		HTTPErrors:         ps.httpErrors.Load(),
	}
	ps.mu.Lock()
	if len(ps.rejected) > 0 {
		pc.Rejected = make(map[int]int64, len(ps.rejected))
		for k, v := range ps.rejected {
			pc.Rejected[k] = v
		}
	}
	last := ps.last
	ps.mu.Unlock()
	if last.set {
		r := &RequestRecord{
			Time:          last.at.In(shanghai),
			Method:        last.method,
			Host:          last.host,
			Query:         redactQuery(last.rawQuery),
			BodyRedacted:  last.redacted,
			ContentLength: last.contentLength,
			BodyBytes:     last.bodyBytes,
			BodyTruncated: last.truncated,
			TokenChecked:  last.tokenChecked,
			TokenValid:    last.tokenValid,
			Account:       last.account,
			Errcode:       last.code,
			Status:        last.status,
			Fault:         last.fault,
			Dropped:       last.dropped,
		}
		if !last.redacted {
			r.BodySHA256 = hex.EncodeToString(last.hash[:])
		}
		pc.Last = r
	}
	return pc
}

// Counters returns a snapshot of the counters.
func (s *Simulator) Counters() Counters {
	set := s.current.Load()
	out := Counters{
		Time:               s.clock.Now().In(shanghai),
		Tokens:             make(map[string]TokenCounts, len(set.accounts)),
		Paths:              make(map[string]PathCounts),
		AppTokenRejections: s.stats.appTokenRejections.Load(),
	}
	for _, a := range set.accounts {
		n := &a.counts
		out.Tokens[a.label] = TokenCounts{
			Kind:                a.Kind,
			Token:               n.token.Load(),
			StableToken:         n.stable.Load(),
			StableIssued:        n.stableNew.Load(),
			GetToken:            n.gettoken.Load(),
			GetTokenIssued:      n.wecomNew.Load(),
			ForceRefresh:        n.force.Load(),
			ForceRefreshRefused: n.forceRefused.Load(),
			UserTokens:          n.user.Load(),
			Sessions:            n.sessions.Load(),
			Tickets:             s.tickets.counts(a.label),
			Invalidations:       n.invalidated.Load(),
		}
	}
	add := func(ps *pathStats) {
		if pc := ps.snapshot(); pc.Calls > 0 {
			out.Paths[ps.path] = pc
			out.Calls += pc.Calls
		}
	}
	for _, rt := range s.routes {
		add(rt.stats)
	}
	s.stats.mu.Lock()
	dyn := make([]*pathStats, 0, len(s.stats.dynamicPaths))
	for _, ps := range s.stats.dynamicPaths {
		dyn = append(dyn, ps)
	}
	s.stats.mu.Unlock()
	for _, ps := range dyn {
		add(ps)
	}
	s.openCounters(set, &out)
	return out
}

// ResetCounters zeroes every counter and forgets the last requests. Tokens,
// quotas, media and faults are left alone.
func (s *Simulator) ResetCounters() {
	for _, rt := range s.routes {
		rt.stats.reset()
	}
	s.stats.mu.Lock()
	s.stats.dynamicPaths = make(map[string]*pathStats)
	s.stats.mu.Unlock()
	s.stats.appTokenRejections.Store(0)
	for _, a := range s.current.Load().accounts {
		a.counts.reset()
	}
	s.tickets.mu.Lock()
	clear(s.tickets.calls)
	s.tickets.mu.Unlock()
	s.resetOpenCounters()
}
