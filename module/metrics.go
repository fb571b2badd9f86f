package caddywechat

import (
	"errors"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wxgate/caddy-wechat/module/internal/token"
)

// The gateway's metrics, in Caddy's registry (the admin endpoint's
// /metrics, next to Caddy's own), prefixed caddy_wechat_. Their labels are
// limited to account, client, endpoint, errcode and result: never a token,
// a secret or a path with a query.
//
// Counters and the histogram live for the process, so that they keep
// counting across config reloads; each config registers them in its
// registry. The gauges are read from the token manager when scraped.

const metricsNamespace, metricsSubsystem = "caddy", "wechat"

type gatewayMetrics struct {
	tokenCalls     *prometheus.CounterVec   // account, endpoint, result
	ticketFetches  *prometheus.CounterVec   // account, endpoint (the ticket type), result
	refreshSeconds *prometheus.HistogramVec // account
	rejections     *prometheus.CounterVec   // account, errcode
	replays        *prometheus.CounterVec   // account, result
	calls          *prometheus.CounterVec   // client, account, result, errcode
}

var (
	metricsOnce sync.Once
	metrics     *gatewayMetrics
)

func newCounter(name, help string, labels ...string) *prometheus.CounterVec {
	return prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: metricsNamespace, Subsystem: metricsSubsystem, Name: name, Help: help}, labels)
}

// processMetrics returns the process's metrics, creating them once.
func processMetrics() *gatewayMetrics {
	metricsOnce.Do(func() {
		metrics = &gatewayMetrics{
			tokenCalls: newCounter("token_calls_total",
				"Token-endpoint calls, by account, endpoint (stable_token, token, gettoken) and result (ok, transient, config, quota, budget).",
				"account", "endpoint", "result"),
			ticketFetches: newCounter("ticket_fetches_total",
				"JS-SDK ticket calls, by account, endpoint (the ticket type: jsapi, wx_card, corp_jsapi, agent_config) and result.",
				"account", "endpoint", "result"),
			refreshSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
				Namespace: metricsNamespace, Subsystem: metricsSubsystem, Name: "refresh_duration_seconds",
				Help:    "How long token and ticket refreshes took, storage included, by account.",
				Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
			}, []string{"account"}),
			rejections: newCounter("token_rejections_total",
				"Answers in which WeChat rejected the account's token, by account and errcode (40001, 40014, 42001).",
				"account", "errcode"),
			replays: newCounter("replays_total",
				"Calls replayed after a rejection, by account and result (ok; rejected: refused again; none: passed on unreplayed).",
				"account", "result"),
			calls: newCounter("calls_total",
				"Calls through the gateway, by client (empty on trusted sites), account, result (passed, refused) and the refusal's errcode.",
				"client", "account", "result", "errcode"),
		}
	})
	return metrics
}

// collectors are the process's metric collectors.
func (m *gatewayMetrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.tokenCalls, m.ticketFetches, m.refreshSeconds, m.rejections, m.replays, m.calls}
}

// register registers the process's collectors and c in reg; a collector
// already there (an earlier config's) is fine.
func registerMetrics(reg *prometheus.Registry, c prometheus.Collector) error {
	if reg == nil {
		return nil
	}
	for _, col := range append(processMetrics().collectors(), c) {
		if err := reg.Register(col); err != nil {
			var are prometheus.AlreadyRegisteredError
			if !errors.As(err, &are) {
				return err
			}
		}
	}
	return nil
}

// metricsObserver passes the token manager's calls and refreshes to the
// metrics.
type metricsObserver struct{}

// accountLabel is the account an Account's metrics count for: a ticket's
// and an authorizer's is its parent's (a platform's authorizers are as many
// as its customers: one series each would grow without a bound in the
// config).
func accountLabel(a *token.Account) string {
	for a.Parent != nil { // an authorizer's ticket: its authorizer's platform
		a = a.Parent.Account()
	}
	return a.Name
}

func (metricsObserver) EndpointCall(a *token.Account, result string, _ time.Duration) {
	m := processMetrics()
	if a.Endpoint.Ticket() {
		m.ticketFetches.WithLabelValues(accountLabel(a), string(a.Endpoint), result).Inc()
		return
	}
	m.tokenCalls.WithLabelValues(accountLabel(a), string(a.Endpoint), result).Inc()
}

func (metricsObserver) Refreshed(a *token.Account, _ bool, took time.Duration) {
	processMetrics().refreshSeconds.WithLabelValues(accountLabel(a)).Observe(took.Seconds())
}

// callKey names one series of the calls counter.
type callKey struct {
	client, account string
	code            int
}

// callCounters caches the calls counter's series: resolving labels on
// every call would cost more than the rest of the gateway's work.
var callCounters sync.Map // callKey -> prometheus.Counter

// countCall counts a call through the gateway: passed when code is 0, else
// refused with that errcode.
func countCall(client, account string, code int) {
	callSeries(callKey{client, account, code}).Inc()
}

// callSeries returns the calls counter's series for key.
func callSeries(key callKey) prometheus.Counter {
	if c, ok := callCounters.Load(key); ok {
		return c.(prometheus.Counter)
	}
	result, errcode := "passed", ""
	if key.code != 0 {
		result, errcode = "refused", strconv.Itoa(key.code)
	}
	c := processMetrics().calls.WithLabelValues(key.client, key.account, result, errcode)
	callCounters.Store(key, c)
	return c
}

// lastCall remembers the calls series a handler counted into last: a site
// mostly sees one client (none on a trusted site) and one account, so the
// next call counts into it without hashing its labels.
type lastCall struct {
	last atomic.Pointer[lastCallSeries]
}

type lastCallSeries struct {
	key    callKey
	series prometheus.Counter
}

// count is countCall through the remembered series. Only passed calls are
// remembered: refusals mixed in (a client without a token) must not make
// every call miss.
func (l *lastCall) count(client, account string, code int) {
	key := callKey{client, account, code}
	if s := l.last.Load(); s != nil && s.key == key {
		s.series.Inc()
		return
	}
	c := callSeries(key)
	if code == 0 {
		l.last.Store(&lastCallSeries{key: key, series: c})
	}
	c.Inc()
}

// stateCollector exports the state of an App's accounts when scraped:
// token lifetime and generation, the day's budget, a tripped guard, and
// the tickets' lifetime.
type stateCollector struct{ app *App }

var (
	descRemaining = prometheus.NewDesc("caddy_wechat_token_remaining_seconds",
		"Seconds the account's current token has left (0: none).", []string{"account"}, nil)
	descGeneration = prometheus.NewDesc("caddy_wechat_token_generation",
		"Generation of the account's current token: how many tokens it has had.", []string{"account"}, nil)
	descBudgetUsed = prometheus.NewDesc("caddy_wechat_budget_used",
		"Token-endpoint calls this WeChat day, against the account's daily_budget.", []string{"account"}, nil)
	descBudgetLimit = prometheus.NewDesc("caddy_wechat_budget_limit",
		"The account's daily_budget of token-endpoint calls.", []string{"account"}, nil)
	descGuard = prometheus.NewDesc("caddy_wechat_guard_tripped",
		"1 while refreshing is stopped by a configuration or quota error, or the budget.", []string{"account"}, nil)
	descTicketRemaining = prometheus.NewDesc("caddy_wechat_ticket_remaining_seconds",
		"Seconds the account's cached JS-SDK ticket has left, by ticket type (0: none).", []string{"account", "endpoint"}, nil)
	descAuthorizers = prometheus.NewDesc("caddy_wechat_authorizer_tokens",
		"Authorizers of the third-party platform whose token this instance holds.", []string{"account"}, nil)
)

func (c stateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descRemaining, descGeneration, descBudgetUsed, descBudgetLimit, descGuard, descTicketRemaining, descAuthorizers} {
		ch <- d
	}
}

func (c stateCollector) Collect(ch chan<- prometheus.Metric) {
	now := c.app.now()
	authorizers := make(map[string]int) // per platform: one series each, however many authorizers
	for _, st := range c.app.statuses() {
		left := 0.0
		if st.HasToken {
			left = max(st.Expires.Sub(now).Seconds(), 0)
		}
		if st.Endpoint == token.AuthorizerToken {
			n := authorizers[st.Parent]
			if left > 0 {
				n++
			}
			authorizers[st.Parent] = n
			continue
		}
		if st.Parent != "" {
			// A ticket of a configured account; an authorizer's tickets
			// are as many as the platform's customers: no series of their
			// own.
			if c.app.handles[st.Parent] != nil {
				ch <- prometheus.MustNewConstMetric(descTicketRemaining, prometheus.GaugeValue, left, st.Parent, string(st.Endpoint))
			}
			continue
		}
		guard := 0.0
		if st.Stopped {
			guard = 1
		}
		ch <- prometheus.MustNewConstMetric(descRemaining, prometheus.GaugeValue, left, st.Name)
		ch <- prometheus.MustNewConstMetric(descGeneration, prometheus.GaugeValue, float64(st.Generation), st.Name)
		ch <- prometheus.MustNewConstMetric(descBudgetUsed, prometheus.GaugeValue, float64(st.CallsToday), st.Name)
		ch <- prometheus.MustNewConstMetric(descBudgetLimit, prometheus.GaugeValue, float64(st.DailyBudget), st.Name)
		ch <- prometheus.MustNewConstMetric(descGuard, prometheus.GaugeValue, guard, st.Name)
	}
	for platform, n := range authorizers {
		ch <- prometheus.MustNewConstMetric(descAuthorizers, prometheus.GaugeValue, float64(n), platform)
	}
}
