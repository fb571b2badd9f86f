package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"strconv"

	vegeta "github.com/tsenart/vegeta/v12/lib"
)

// accountsResult is section 6.
type accountsResult struct {
	accounts int
	// zero is the gateway with no account, configured the same otherwise;
	// configured is the one with every account before any token, and
	// tokens the same once every account holds a token. All after a GC.
	zeroRSS, configuredRSS, tokensRSS    int64
	zeroHeap, configuredHeap, tokensHeap uint64
	holding                              int // accounts holding a token at the end
}

func (a accountsResult) rssPerAccount() int64 {
	return (a.tokensRSS - a.zeroRSS) / int64(a.accounts)
}

func (a accountsResult) heapPerAccount() int64 {
	return (int64(a.tokensHeap) - int64(a.zeroHeap)) / int64(a.accounts)
}

func (a accountsResult) tokenHeapPerAccount() int64 {
	return (int64(a.tokensHeap) - int64(a.configuredHeap)) / int64(a.accounts)
}

// accountCount is N of section 6.
func (b *bench) accountCount() int {
	if b.opts.quick {
		return 1000
	}
	return 10_000
}

// runAccounts measures the gateway's memory with 10,000 accounts, each
// with its own route (a header matcher and a wechat handler, ahead of one
// shared reverse_proxy), after every account fetched its token, against
// the same gateway with no account that served the same requests. The
// simulator runs as its own process with the same 10,000 accounts.
func (b *bench) runAccounts() error {
	n := b.accountCount()
	if b.secret == "" {
		b.secret = randomSecret()
		b.probeTrusted()
	}
	env := []string{"WXB_SECRET=" + b.secret}
	names := make([]string, n)
	appids := make([]string, n)
	for i := range names {
		names[i] = accountName(i)
		appids[i] = fmt.Sprintf("wxa%015d", i)
	}
	ports, err := freePorts(4)
	if err != nil {
		return err
	}
	simAdmin, simPort, gwAdmin, gwPort := ports[0], ports[1], ports[2], ports[3]
	upstream := "127.0.0.1:" + strconv.Itoa(simPort)

	simAccounts := make([]map[string]string, n)
	for i := range simAccounts {
		simAccounts[i] = map[string]string{"kind": "official", "appid": appids[i], "secret": "{env.WXB_SECRET}"}
	}
	simCfg := caddyJSON(simAdmin, simPort, []any{
		map[string]any{"handle": []any{map[string]any{"handler": "wechat_simulator", "accounts": simAccounts}}},
	}, nil)
	logf("6. %d accounts: starting a simulator with them", n)
	sim, err := b.startCaddy("simulator-accounts", simCfg, "json", simAdmin, simPort, env)
	if err != nil {
		return err
	}
	defer sim.stop()

	proxy := map[string]any{"handler": "reverse_proxy", "upstreams": []any{map[string]string{"dial": upstream}}}
	targets := make([]vegeta.Target, n)
	for i, name := range names {
		targets[i] = vegeta.Target{Method: http.MethodGet, URL: fmt.Sprintf("http://127.0.0.1:%d%s", gwPort, userInfoPath),
			Header: accountHeaderOf(name)}
	}
	res := &accountsResult{accounts: n}

	// The gateway with no account: the same site, requests and storage.
	zeroCfg := caddyJSON(gwAdmin, gwPort, []any{map[string]any{"handle": []any{proxy}}}, map[string]any{})
	zero, err := b.startCaddy("gateway-0-accounts", zeroCfg, "json", gwAdmin, gwPort, env)
	if err != nil {
		return err
	}
	br := newBurster(32)
	// Without a token the simulator answers 41001: the traffic, not the
	// answer, is what matters here.
	br.fire(targets, func(int, []byte) bool { return true })
	br.close()
	var heap memStats
	heap, res.zeroRSS, err = zero.settledMemory()
	if err != nil {
		return err
	}
	res.zeroHeap = heap.HeapInuse
	zero.stop()

	accounts := make(map[string]any, n)
	// One route per account, grouped a hundred to a subroute by the
	// header's prefix, so that a call is matched in about 200 steps rather
	// than 10,000: the warm-up then measures token fetches, not a linear
	// scan of the routes.
	var routes []any
	var group []any
	for i, name := range names {
		accounts[name] = map[string]any{"kind": "official", "appid": appids[i], "secret": "{env.WXB_SECRET}",
			"api_base": "http://" + upstream}
		handler := map[string]any{"handler": "wechat", "account": name}
		if b.trusted {
			handler["trusted"] = true
		}
		group = append(group, map[string]any{
			"match":  []any{map[string]any{"header": map[string][]string{accountHeader: {name}}}},
			"handle": []any{handler},
		})
		if len(group) == accountsPerGroup || i == n-1 {
			routes = append(routes, map[string]any{
				"match":  []any{map[string]any{"header": map[string][]string{accountHeader: {groupPrefix(i) + "*"}}}},
				"handle": []any{map[string]any{"handler": "subroute", "routes": group}},
			})
			group = nil
		}
	}
	routes = append(routes, map[string]any{"handle": []any{proxy}})
	fullCfg := caddyJSON(gwAdmin, gwPort, routes, map[string]any{"accounts": accounts})
	logf("6. starting a gateway with %d accounts", n)
	full, err := b.startCaddy("gateway-accounts", fullCfg, "json", gwAdmin, gwPort, env)
	if err != nil {
		return err
	}
	defer full.stop()
	heap, res.configuredRSS, err = full.settledMemory()
	if err != nil {
		return err
	}
	res.configuredHeap = heap.HeapInuse

	logf("6. one call per account, so that each fetches its token")
	br = newBurster(32)
	warm := br.fire(targets, okJSON(`"openid"`))
	br.close()
	if warm.failed > 0 {
		return fmt.Errorf("%d of %d calls failed: %s", warm.failed, warm.sent, warm.firstFailure)
	}
	status, err := full.gatewayAccounts()
	if err != nil {
		return err
	}
	for _, s := range status {
		if s.HasToken {
			res.holding++
		}
	}
	heap, res.tokensRSS, err = full.settledMemory()
	if err != nil {
		return err
	}
	res.tokensHeap = heap.HeapInuse
	if b.opts.profile != "" {
		path := filepath.Join(b.opts.profile, "gateway-accounts.heap.pprof")
		if err := full.heapProfile(path); err != nil {
			return err
		}
		logf("saved %s", path)
	}
	logf("6. %d accounts holding tokens: RSS %s (no account: %s), %d B RSS and %d B heap per account",
		res.holding, mib(res.tokensRSS), mib(res.zeroRSS), res.rssPerAccount(), res.heapPerAccount())
	b.res.accounts = res
	return nil
}

// accountsPerGroup is how many account routes share a subroute.
const accountsPerGroup = 100

// accountName is the name of account i: a00000 to a09999.
func accountName(i int) string { return fmt.Sprintf("a%05d", i) }

// groupPrefix is the name prefix shared by account i's group.
func groupPrefix(i int) string { return accountName(i)[:4] }

// caddyJSON is a Caddy JSON config: an admin listener, one HTTP server
// with routes on port, and the wechat app when wechat is not nil.
func caddyJSON(adminPort, port int, routes []any, wechat map[string]any) string {
	apps := map[string]any{
		"http": map[string]any{"servers": map[string]any{"srv": map[string]any{
			"listen": []string{"127.0.0.1:" + strconv.Itoa(port)},
			"routes": routes,
		}}},
	}
	if wechat != nil {
		apps["wechat"] = wechat
	}
	cfg := map[string]any{
		"admin": map[string]any{"listen": "127.0.0.1:" + strconv.Itoa(adminPort)},
		"apps":  apps,
	}
	b, _ := json.MarshalIndent(cfg, "", "\t")
	return string(b)
}
