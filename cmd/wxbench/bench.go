package main

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The accounts of the main run. The gateway holds tokens for the mp*
// and day-* accounts; the baseline's app fetches its own token for
// base, so that the two never share a token.
const (
	appMP        = "wxb00000000000mp01" // gateway, stable_token: throughput, media, stable storm
	appMPT       = "wxb00000000000mp02" // gateway, /cgi-bin/token: token storm
	appBase      = "wxb0000000000base1" // the baseline's app
	appDayStable = "wxb0000000000day01" // the day, stable_token
	appDayToken  = "wxb0000000000day02" // the day, /cgi-bin/token
	corpDay      = "wwb0000000000day03" // the day, WeCom gettoken
	agentDay     = "1000002"
)

// idleUpstreamConns is the reverse_proxy's keepalive_idle_conns_per_host,
// for the baseline and the gateway alike: above the largest concurrency
// of the throughput runs.
const idleUpstreamConns = 1024

// userInfoPath is the small JSON call: a token-checked GET that always
// works and answers about 300 bytes.
const userInfoPath = "/cgi-bin/user/info?openid=o6_bmjrPTlm6_2sgVt7hMZOPfL2M&lang=zh_CN"

// accountHeader selects the account on the gateway's second site.
const accountHeader = "X-Wechat-Account"

// bench is one run: the processes and what they measured.
type bench struct {
	opts options
	root string
	tmp  string
	bin  string
	wrk  *wrkRunner
	res  results

	secret  string
	trusted bool // the gateway takes the handler's `trusted` option

	mu        sync.Mutex
	procs     []*proc
	sim       *proc
	simc      simClient
	base, gw  *proc
	gwPort2   int
	gwPort3   int // the clients-mode site
	noopPort  int // the baseline's site with a no-op handler before reverse_proxy
	plainPort int // reverse_proxy alone in the gateway's process
	baseToken string
	gwToken   string // the gateway token of the clients-mode site's client
}

// runSection runs one section, starting the processes it needs.
func (b *bench) runSection(name string) error {
	switch name {
	case "gobench":
		return b.runGoBench()
	case "accounts":
		b.stopMain() // its own processes: measured alone
		return b.runAccounts()
	}
	if err := b.startMain(); err != nil {
		return err
	}
	run, ok := map[string]func() error{
		"json":      b.runJSON,
		"download":  b.runDownload,
		"upload":    b.runUpload,
		"storm":     b.runStorms,
		"day":       b.runDay,
		"dashboard": b.runDashboard,
	}[name]
	if !ok {
		return fmt.Errorf("unknown section")
	}
	return run()
}

// track remembers a process so that stopAll ends it.
func (b *bench) track(p *proc) *proc {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.procs = append(b.procs, p)
	return p
}

// startCaddy runs the gateway binary as process name (see startCaddy) in
// b's folder and tracks it.
func (b *bench) startCaddy(name, config, adapter string, adminPort, port int, env []string) (*proc, error) {
	p, err := startCaddy(b.bin, b.tmp, name, config, adapter, adminPort, port, env)
	if err != nil {
		return nil, err
	}
	return b.track(p), nil
}

// turn is one process's part of a round of runs: the process, the URL it
// is loaded with, where the measure goes and, for runs that watch the RSS,
// where the process's idle and peak RSS go.
type turn struct {
	p          *proc
	url        string
	m          *measure
	idle, peak *int64
}

// inTurn returns the baseline's and the gateway's runs in the order of
// round: the baseline first in even rounds, the gateway first in odd ones,
// so that neither always runs on the other's leftovers.
func inTurn(round int, base, gw turn) [2]turn {
	if round%2 == 1 {
		return [2]turn{gw, base}
	}
	return [2]turn{base, gw}
}

// stopAll ends every process wxbench started.
func (b *bench) stopAll() {
	b.mu.Lock()
	procs := b.procs
	b.procs = nil
	b.mu.Unlock()
	for _, p := range procs {
		p.stop()
	}
}

// stopMain ends the simulator, baseline and gateway of the main run.
func (b *bench) stopMain() {
	for _, p := range []*proc{b.gw, b.base, b.sim} {
		p.stop()
	}
	b.gw, b.base, b.sim = nil, nil, nil
}

// randomSecret returns a fresh secret for the run's accounts. It reaches
// Caddy only through {env.WXB_SECRET}: the gateway refuses literal secrets.
func randomSecret() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// trustedBlock is what follows `wechat <account>` in a Caddyfile: the
// `trusted` option when the gateway has client authentication (its sites
// then need it to serve callers that carry no credentials), nothing on
// gateways from before it.
func (b *bench) trustedBlock() string {
	if b.trusted {
		return " {\n\t\ttrusted\n\t}"
	}
	return ""
}

// probeTrusted finds out whether the gateway being measured has the
// handler's `trusted` option.
func (b *bench) probeTrusted() {
	probe := "{\n\twechat {\n\t\taccount a official {\n\t\t\tappid wx0\n\t\t\tsecret {env.WXB_PROBE_SECRET}\n\t\t}\n\t}\n}\n" +
		":1 {\n\twechat a {\n\t\ttrusted\n\t}\n\treverse_proxy 127.0.0.1:2\n}\n"
	b.trusted = adapts(b.bin, b.tmp, probe)
}

// startMain starts the simulator, the baseline and the gateway, once.
func (b *bench) startMain() error {
	if b.gw != nil {
		return nil
	}
	b.secret = randomSecret()
	b.probeTrusted()
	clientKey := randomSecret()
	env := []string{"WXB_SECRET=" + b.secret, "WXB_KEY=" + clientKey}
	ports, err := freePorts(10)
	if err != nil {
		return err
	}
	simAdmin, simPort, baseAdmin, basePort, gwAdmin, gwPort, gwPort2 := ports[0], ports[1], ports[2], ports[3], ports[4], ports[5], ports[6]
	gwPort3, noopPort, plainPort := ports[7], ports[8], ports[9]
	upstream := "127.0.0.1:" + strconv.Itoa(simPort)
	// The same reverse_proxy for the baseline and the gateway: Caddy's
	// HTTP transport with room for an idle upstream connection per client
	// connection. Caddy keeps 32 by default; past that, under 64 or more
	// concurrent calls, every few calls closes a connection and dials a new
	// one, which fills the machine with sockets in TIME_WAIT and makes the
	// throughput of the same target vary from run to run.
	proxyTo := func(indent string) string {
		return "reverse_proxy " + upstream + " {\n" + indent + "\ttransport http {\n" + indent +
			"\t\tkeepalive_idle_conns_per_host " + strconv.Itoa(idleUpstreamConns) + "\n" + indent + "\t}\n" + indent + "}"
	}

	simCfg := fmt.Sprintf(`{
	admin 127.0.0.1:%d
}

:%d {
	bind 127.0.0.1
	wechat_simulator {
		official %s {env.WXB_SECRET}
		official %s {env.WXB_SECRET}
		official %s {env.WXB_SECRET}
		official %s {env.WXB_SECRET}
		official %s {env.WXB_SECRET}
		wecom %s {env.WXB_SECRET} %s
		large_media_size 64MiB
	}
}
`, simAdmin, simPort, appMP, appMPT, appBase, appDayStable, appDayToken, corpDay, agentDay)
	logf("starting the simulator, the baseline and the gateway (handler option trusted: %v)", b.trusted)
	if b.sim, err = b.startCaddy("simulator", simCfg, "caddyfile", simAdmin, simPort, env); err != nil {
		return err
	}
	b.simc = simClient{base: "http://" + upstream}

	baseCfg := fmt.Sprintf(`{
	admin 127.0.0.1:%d
}

:%d {
	bind 127.0.0.1
	%s
}

# The same, behind a handler that does next to nothing: what being a
# middleware in a Caddy route costs, which any handler pays.
:%d {
	bind 127.0.0.1
	vars noop 1
	%s
}
`, baseAdmin, basePort, proxyTo("\t"), noopPort, proxyTo("\t"))
	if b.base, err = b.startCaddy("baseline", baseCfg, "caddyfile", baseAdmin, basePort, nil); err != nil {
		return err
	}
	b.noopPort = noopPort

	t := b.trustedBlock()
	account := func(name, kind, idKey, id, endpoint string) string {
		s := fmt.Sprintf("\t\taccount %s %s {\n\t\t\t%s %s\n\t\t\tsecret {env.WXB_SECRET}\n\t\t\tapi_base http://%s\n", name, kind, idKey, id, upstream)
		if endpoint != "" {
			s += "\t\t\ttoken_endpoint " + endpoint + "\n"
		}
		return s + "\t\t}\n"
	}
	site := func(name string) string {
		return fmt.Sprintf("\t@%s header %s %s\n\thandle @%s {\n\t\twechat %s%s\n\t\t%s\n\t}\n",
			name, accountHeader, name, name, name, strings.ReplaceAll(t, "\n", "\n\t"), proxyTo("\t\t"))
	}
	clients := ""
	if b.trusted {
		clients = "\t\tclient bench {\n\t\t\tkey {env.WXB_KEY}\n\t\t\taccounts mp\n\t\t}\n"
	}
	gwCfg := fmt.Sprintf(`{
	admin 127.0.0.1:%d
	wechat {
%s%s%s%s%s%s		test_clock
	}
}

# The measured site: the same as the baseline's, plus the wechat handler.
:%d {
	bind 127.0.0.1
	wechat mp%s
	%s
}
%s
# The baseline's site in this process: reverse_proxy alone, the app
# sending its own token. Against it, the measured sites show what the
# wechat handler costs with no difference of process.
:%d {
	bind 127.0.0.1
	%s
}

# The storm and day accounts, chosen by a header.
:%d {
	bind 127.0.0.1
%s%s%s%s}
`, gwAdmin,
		account("mp", "official", "appid", appMP, ""),
		account("mpt", "official", "appid", appMPT, "token"),
		account("day-stable", "official", "appid", appDayStable, ""),
		account("day-token", "official", "appid", appDayToken, "token"),
		account("day-wecom", "wecom", "corpid", corpDay, ""),
		clients,
		gwPort, t, proxyTo("\t"), b.clientsSite(gwPort3, proxyTo("\t")), plainPort, proxyTo("\t"),
		gwPort2, site("mpt"), site("day-stable"), site("day-token"), site("day-wecom"))
	if b.gw, err = b.startCaddy("gateway", gwCfg, "caddyfile", gwAdmin, gwPort, env); err != nil {
		return err
	}
	b.gwPort2, b.plainPort = gwPort2, plainPort
	if b.trusted {
		b.gwPort3 = gwPort3
		if b.gwToken, err = b.clientToken(clientKey); err != nil {
			return err
		}
	}

	// The baseline's app handles its token itself: one stable_token call.
	if b.baseToken, err = b.simc.stableToken(appBase, b.secret); err != nil {
		return err
	}
	// Both answer the small JSON call, and the gateway holds its token.
	for _, u := range []string{b.base.url(userInfoPath + "&access_token=" + b.baseToken), b.gw.url(userInfoPath)} {
		code, body, err := get(u, nil)
		if err != nil {
			return err
		}
		if !okJSON(`"openid"`)(code, body) {
			return fmt.Errorf("GET %s: %d %s", strings.Split(u, "access_token=")[0], code, body)
		}
	}
	return nil
}

// clientsSite is the gateway's clients-mode site, on gateways that have
// clients (the same as the trusted one, less `trusted`).
func (b *bench) clientsSite(port int, proxy string) string {
	if !b.trusted {
		return ""
	}
	return fmt.Sprintf("\n# The same call in clients mode: a gateway token on every call.\n:%d {\n\tbind 127.0.0.1\n\twechat mp\n\t%s\n}\n", port, proxy)
}

// clientToken fetches a gateway token from the clients-mode site, as an
// SDK does with its client key.
func (b *bench) clientToken(key string) (string, error) {
	var ans struct {
		Errcode     int    `json:"errcode"`
		AccessToken string `json:"access_token"`
	}
	u := fmt.Sprintf("http://127.0.0.1:%d/cgi-bin/token?grant_type=client_credential&appid=%s&secret=%s", b.gwPort3, appMP, url.QueryEscape(key))
	if err := getJSON(u, &ans); err != nil {
		return "", err
	}
	if ans.AccessToken == "" {
		return "", fmt.Errorf("the clients-mode site issued no gateway token (errcode %d)", ans.Errcode)
	}
	return ans.AccessToken, nil
}

// gw3URL is the URL of path on the gateway's clients-mode site.
func (b *bench) gw3URL(path string) string {
	return fmt.Sprintf("http://127.0.0.1:%d%s", b.gwPort3, path)
}

// gw2URL is the URL of path on the gateway's second site; the account
// header picks the account.
func (b *bench) gw2URL(path string) string {
	return fmt.Sprintf("http://127.0.0.1:%d%s", b.gwPort2, path)
}

func accountHeaderOf(name string) http.Header {
	return http.Header{accountHeader: []string{name}}
}

// advanceBoth moves the simulator's and the gateway's clocks together,
// the simulator's first, so that the refreshes the gateway starts see
// WeChat's time.
func (b *bench) advanceBoth(d time.Duration) error {
	if err := b.simc.advance(d); err != nil {
		return err
	}
	return b.gw.advanceGatewayClock(d)
}
