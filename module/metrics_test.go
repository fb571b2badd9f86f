package caddywechat

import (
	"fmt"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// counted reads a counter's value.
func counted(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

func TestCountCallAllocationFree(t *testing.T) {
	countCall("shop", "mp", 0)
	if n := testing.AllocsPerRun(100, func() { countCall("shop", "mp", 0) }); n != 0 {
		t.Errorf("countCall allocates %v times per call", n)
	}
	var l lastCall
	l.count("shop", "mp", 0)
	if n := testing.AllocsPerRun(100, func() { l.count("shop", "mp", 0) }); n != 0 {
		t.Errorf("a handler's count of its usual series allocates %v times per call", n)
	}
}

// TestLastCallCountsEachSeries: calls counted through a handler's last
// series land in their own series, however the keys alternate.
func TestLastCallCountsEachSeries(t *testing.T) {
	keys := []callKey{{"lc-a", "mp", 0}, {"lc-b", "mp", 0}, {"lc-a", "mp", 40001}, {"lc-a", "mp", 0}}
	before := make(map[callKey]float64)
	for _, k := range keys {
		before[k] = counted(t, callSeries(k))
	}
	var l lastCall
	for _, k := range keys {
		l.count(k.client, k.account, k.code)
	}
	want := map[callKey]float64{keys[0]: 2, keys[1]: 1, keys[2]: 1}
	for k, n := range want {
		if got := counted(t, callSeries(k)) - before[k]; got != n {
			t.Errorf("series %+v counted %v calls, want %v", k, got, n)
		}
	}
}

// TestAuthorizerTicketSeriesBounded: an authorizer's JS-SDK ticket counts
// as its platform's in the metrics, and has no ticket_remaining_seconds
// series of its own: the series stay as many as the config's accounts,
// however many customers authorise the platform.
func TestAuthorizerTicketSeriesBounded(t *testing.T) {
	app := platformApp(t)
	plat := platformAppSite(app, "platform")
	authTok := authorizerToken(t, plat, authB)
	rec := servePlatform(t, plat, httptest.NewRequest("GET", "/cgi-bin/ticket/getticket?type=jsapi&access_token="+authTok, nil), nil)
	wantErrcode(t, rec, 0)

	auth := app.authorizer(t.Context(), app.handles["platform"], authB)
	th := app.authorizerTicket(app.handles["platform"], auth, "jsapi")
	if th == nil {
		t.Fatal("no authorizer ticket handle")
	}
	if got := accountLabel(th.Account()); got != "platform" {
		t.Errorf("ticket_fetches_total / refresh_duration_seconds account label of an authorizer's ticket = %q, want %q", got, "platform")
	}
	reg := prometheus.NewRegistry()
	if err := reg.Register(stateCollector{app}); err != nil {
		t.Fatal(err)
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != "caddy_wechat_ticket_remaining_seconds" {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "account" && l.GetValue() != "platform" && l.GetValue() != "mp" {
					t.Errorf("caddy_wechat_ticket_remaining_seconds{account=%q}: a series per authorizer, not bounded by the config", l.GetValue())
				}
			}
		}
	}
}

// TestMetricsScrapeDuringProvision: on a reload Caddy serves the admin
// /metrics from the new config's registry before the apps provision; the
// app's collector, which reads what Provision builds (the accounts'
// handles), is registered last, so a scrape then reads nothing being
// written. (Run with -race to see a race; without it, a concurrent map
// read and write can still crash it.)
func TestMetricsScrapeDuringProvision(t *testing.T) {
	configEnv(t)
	if err := caddy.Load([]byte(`{"admin":{"disabled":true,"config":{"persist":false}}}`), true); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = caddy.Stop() }()
	accounts := func() map[string]*Account {
		m := map[string]*Account{}
		for i := range 200 {
			m[fmt.Sprintf("mp%03d", i)] = &Account{Kind: "official", AppID: fmt.Sprintf("wx%016d", i), Secret: "{env.WX_SECRET}"}
		}
		return m
	}
	// The running config.
	ctx1, cancel1 := caddy.NewContext(caddy.ActiveContext())
	defer cancel1()
	running := &App{Accounts: accounts()}
	if err := running.Provision(ctx1); err != nil {
		t.Fatal(err)
	}
	defer running.Cleanup()

	// The reload: its registry is scraped while it provisions.
	ctx2, cancel2 := caddy.NewContext(caddy.ActiveContext())
	defer cancel2()
	reg := ctx2.GetMetricsRegistry()
	var stop atomic.Bool
	started := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		close(started)
		for !stop.Load() {
			_, _ = reg.Gather()
		}
	}()
	<-started
	next := &App{Accounts: accounts()}
	err := next.Provision(ctx2)
	stop.Store(true)
	<-done
	if err != nil {
		t.Fatal(err)
	}
	_ = next.Cleanup()
}
