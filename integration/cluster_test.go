package integration

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wxgate/caddy-wechat/module/simulator"
)

// clusterCaddyfile is one instance of a cluster sharing Redis storage.
// syncInterval is how often a gateway compares the token it uses with the
// shared storage.
const syncInterval = time.Minute

const clusterCaddyfile = `{
	admin {ADMIN}
	storage redis {
		address {REDIS}
		key_prefix caddy-wechat-test
	}
	wechat {
` + mpAccount + `		test_clock
	}
}

` + trustedMPSite

// clusterEnv is a simulator, a redis-server and n gateways sharing it.
type clusterEnv struct {
	t     *testing.T
	sim   *simulator.Simulator
	tap   *wiretap
	redis *redisServer
	gws   []*gateway
}

// newCluster starts a cluster of n gateways, each of which has made one
// call.
func newCluster(t *testing.T, endpoint string, n int) *clusterEnv {
	t.Helper()
	sim, err := simulator.New(simulator.Config{Accounts: []simulator.Account{
		{Kind: simulator.KindOfficial, AppID: mpAppID, Secret: mpSecret},
	}})
	if err != nil {
		t.Fatal(err)
	}
	c := &clusterEnv{t: t, sim: sim, tap: newWiretap(sim), redis: startRedis(t)}
	srv := httptest.NewServer(c.tap)
	t.Cleanup(srv.Close)
	cfg := strings.NewReplacer("{ENDPOINT}", endpoint, "{REDIS}", c.redis.Addr()).Replace(clusterCaddyfile)
	for range n {
		g := startGateway(t, cfg, strings.TrimPrefix(srv.URL, "http://"), "WX_MP_SECRET="+mpSecret)
		c.gws = append(c.gws, g)
		t.Cleanup(func() {
			g.stop()
			assertNoLeaks(t, "a gateway's log", g.logs(), []string{mpSecret}, c.tap.allTokens())
		})
	}
	c.callAll() // each gateway now holds the token
	return c
}

// advance moves the simulator's clock and every running gateway's.
func (c *clusterEnv) advance(d time.Duration) {
	c.t.Helper()
	c.sim.Clock().Advance(d)
	for _, g := range c.gws {
		select {
		case <-g.done:
			continue // killed
		default:
		}
		g.advance(d)
	}
}

func (c *clusterEnv) tokenCalls() int {
	return c.tap.count("/cgi-bin/stable_token") + c.tap.count("/cgi-bin/token")
}

// call makes one user/info call through g and checks it worked.
func (c *clusterEnv) call(g *gateway) {
	c.t.Helper()
	status, body := get(c.t, g.URL(userInfoPath+"?openid=o6_bmjrPTlm6_2sgVt7hMZOPfL2M"))
	if status != http.StatusOK || errcodeOf(body) != 0 {
		c.t.Fatalf("user/info through %s: %d %s", g.URL(""), status, body)
	}
}

// callAll makes one call through each gateway.
func (c *clusterEnv) callAll() {
	c.t.Helper()
	for _, g := range c.gws {
		c.call(g)
	}
}

// invalidate moves past the refresh cooldown and has WeChat invalidate the
// account's tokens.
func (c *clusterEnv) invalidate() {
	c.t.Helper()
	c.advance(time.Minute)
	if _, err := c.sim.InvalidateTokens(mpAppID); err != nil {
		c.t.Fatal(err)
	}
}

func forEachEndpoint(t *testing.T, f func(t *testing.T, endpoint string)) {
	for _, ep := range []string{"stable_token", "token"} {
		t.Run(ep, func(t *testing.T) { f(t, ep) })
	}
}

func TestClusterSharesOneToken(t *testing.T) {
	forEachEndpoint(t, func(t *testing.T, endpoint string) {
		c := newCluster(t, endpoint, 3) // each has made a call
		if got := c.tokenCalls(); got != 1 {
			t.Fatalf("%d token calls for 3 instances; want 1", got)
		}
	})
}

func TestClusterStormAcrossInvalidation(t *testing.T) {
	forEachEndpoint(t, func(t *testing.T, endpoint string) {
		c := newCluster(t, endpoint, 3)
		c.invalidate()
		failed := getStorm(900, func(i int) string {
			return c.gws[i%len(c.gws)].URL(userInfoPath + "?openid=o6_bmjrPTlm6_2sgVt7hMZOPfL2M")
		}, answersUser)
		if failed != 0 {
			t.Fatalf("%d of 900 requests failed", failed)
		}
		if got := c.tokenCalls(); got != 2 {
			t.Fatalf("%d token calls; want 2 (the first fetch and one refresh for the cluster)", got)
		}
	})
}

func TestClusterDayAtPhysicalMinimum(t *testing.T) {
	forEachEndpoint(t, func(t *testing.T, endpoint string) {
		c := newCluster(t, endpoint, 3)
		const step = 2 * time.Minute
		for elapsed := time.Duration(0); elapsed < 24*time.Hour; elapsed += step {
			c.callAll()
			c.advance(step)
		}
		// The default refresh_margin: 5m for /cgi-bin/token, 4m for
		// stable_token.
		margin := 5 * time.Minute
		if endpoint == "stable_token" {
			margin = 4 * time.Minute
		}
		min := int(24*time.Hour/(2*time.Hour-margin)) + 1
		if got := c.tokenCalls(); got > min+1 {
			t.Fatalf("%d token calls in a day on 3 instances; the physical minimum is %d", got, min)
		}
		if rej := c.sim.Counters().AppTokenRejections; rej != 0 {
			t.Fatalf("WeChat rejected %d calls for their token during the day", rej)
		}
		t.Logf("%s: %d token calls in a simulated day on 3 instances (physical minimum %d)", endpoint, c.tokenCalls(), min)
	})
}

func TestClusterRidesOutRedisRestart(t *testing.T) {
	forEachEndpoint(t, func(t *testing.T, endpoint string) {
		c := newCluster(t, endpoint, 3)
		c.redis.stop()
		// While the token is valid: no failed request and no fetch, even
		// past the refresh margin.
		for range 5 {
			c.callAll()
			c.advance(20 * time.Minute)
		}
		if got := c.tokenCalls(); got != 1 {
			t.Fatalf("%d token calls with storage down and a valid token; want 1", got)
		}
		// The token runs out with storage still down: each instance fetches
		// on its own and keeps serving.
		c.advance(20 * time.Minute)
		c.callAll()
		c.redis.start()
		// A go-redis client that failed to dial many times in a row stops
		// dialling and probes the server once a second, and until a probe
		// gets through every storage call fails at once, whatever the
		// clocks say. Wait in real time for each instance's probe (an
		// instance that did not fail that often dials when it next needs
		// storage, and keeps this waiting only until the timeout).
		start := time.Now()
		probed := c.redis.awaitClients(len(c.gws), 10*time.Second)
		t.Logf("instances probed the restarted Redis: %v, after %v", probed, time.Since(start).Round(time.Millisecond))
		// Storage is back: within two sync intervals they converge on one
		// token, and it is the newest.
		c.advance(syncInterval)
		c.advance(syncInterval)
		var tokens []string
		for _, g := range c.gws {
			c.call(g)
			tokens = append(tokens, c.tap.lastSent())
		}
		if tokens[0] != tokens[1] || tokens[1] != tokens[2] {
			for _, g := range c.gws {
				t.Log(g.logs())
			}
			t.Fatalf("instances did not converge on one token")
		}
		if rej := c.sim.Counters().AppTokenRejections; endpoint == "stable_token" && rej != 0 {
			t.Fatalf("%d calls rejected for their token", rej)
		}
	})
}

func TestClusterLockHolderKilled(t *testing.T) {
	forEachEndpoint(t, func(t *testing.T, endpoint string) {
		c := newCluster(t, endpoint, 2)
		c.invalidate()
		path := "/cgi-bin/" + endpoint
		if _, err := c.sim.InjectFault(simulator.Fault{Path: path, Latency: time.Minute, Count: 1}); err != nil {
			t.Fatal(err)
		}
		before := c.tokenCalls()
		holder, other := c.gws[0], c.gws[1]
		go func() { _, _ = http.Get(holder.URL(userInfoPath + "?openid=o1")) }()
		// Wait for the holder's fetch to reach WeChat: it holds the lock now.
		for c.tokenCalls() == before {
			time.Sleep(5 * time.Millisecond) // polling for an event
		}
		holder.kill()
		start := time.Now()
		c.call(other)
		if got := c.tokenCalls(); got != before+2 {
			t.Fatalf("%d token calls after the holder died; want %d", got, before+2)
		}
		t.Logf("the survivor completed the refresh %v after the holder died (the Redis lock lapses after 5 s)", time.Since(start).Round(time.Millisecond))
	})
}

func TestRestartReusesStoredTokens(t *testing.T) {
	e := newEnv(t, "token")
	e.call()
	e.gw.stop()
	e.gw.start()
	e.call()
	if got := e.tokenCalls(); got != 1 {
		t.Fatalf("%d token calls across a restart; want 1", got)
	}
	if !bytes.Contains([]byte(e.gw.logs()), []byte("adopted the token")) {
		t.Fatalf("the restarted gateway did not say it adopted the stored token")
	}
}

func TestCorruptStoredRecordIsIgnored(t *testing.T) {
	for name, garbage := range map[string]string{
		"not json": "\x00\x01garbage",
		"foreign":  `{"v":1,"kind":"official","appid":"wxSOMEONEELSE","endpoint":"token","access_token":"FOREIGN","fetched":"2026-01-01T00:00:00Z","expires":"2026-01-01T02:00:00Z","generation":7}`,
	} {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, "token")
			dir := filepath.Join(e.gw.dir, "data", "caddy", "wechat", "tokens", "official", "token")
			if err := os.MkdirAll(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, mpAppID+".json"), []byte(garbage), 0o600); err != nil {
				t.Fatal(err)
			}
			e.call()
			if e.tokenCalls() != 1 || e.tap.lastSent() == "FOREIGN" {
				t.Fatalf("%d token calls, sent %q", e.tokenCalls(), e.tap.lastSent())
			}
			if !strings.Contains(e.gw.logs(), "ignoring the stored token record") {
				t.Fatal("no warning about the bad record")
			}
		})
	}
}
