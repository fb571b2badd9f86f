package main

import (
	"fmt"
	"net/http"
	"time"
)

// stormResult is section 4 for one account and one N.
type stormResult struct {
	endpoint string // stable_token or token
	n        int
	fetches  int64 // token-endpoint calls during the storm
	rejected int64 // calls the simulator refused for their (revoked) token
	burst    burstResult
}

// stormRTT is how long the simulator takes to answer the storm's first N
// business calls: WeChat's round trip from a server in China rather than
// loopback's 0.1 ms, so that the calls are in flight together when their
// token is refused instead of one after the other.
const stormRTT = 100 * time.Millisecond

// stormSizes are the N of section 4.
func (b *bench) stormSizes() []int {
	if b.opts.quick {
		return []int{100, 1000}
	}
	return []int{100, 1000, 5000}
}

// runStorms revokes the gateway's token in the simulator and fires N
// concurrent requests at the gateway right after, for a stable_token and
// a /cgi-bin/token account: each storm should cost exactly one token
// fetch and fail no request. The N keep-alive connections are opened by
// a warm-up burst first, so that the storm measures the token path rather
// than N TCP handshakes at once.
func (b *bench) runStorms() error {
	accounts := []struct {
		endpoint, appid, url string
		header               http.Header
	}{
		{"stable_token", appMP, b.gw.url(userInfoPath), nil},
		{"token", appMPT, b.gw2URL(userInfoPath), accountHeaderOf("mpt")},
	}
	ok := okJSON(`"openid"`)
	for _, a := range accounts {
		for _, n := range b.stormSizes() {
			br := newBurster(n)
			// The account holds a token, and n connections are open.
			warm := br.fire(repeatTarget(n, a.url, a.header), ok)
			if warm.failed > 0 {
				br.close()
				return fmt.Errorf("warm-up of the %s storm (N=%d): %d of %d failed: %s", a.endpoint, n, warm.failed, warm.sent, warm.firstFailure)
			}
			// Past the gateway's refresh_cooldown (30 s): a token that old
			// which WeChat refuses is replaced.
			if err := b.advanceBoth(time.Minute); err != nil {
				br.close()
				return err
			}
			before, err := b.simc.counters()
			if err != nil {
				br.close()
				return err
			}
			if err := b.simc.invalidate(a.appid); err != nil {
				br.close()
				return err
			}
			if err := b.simc.delay("/cgi-bin/user/info", stormRTT, n); err != nil {
				br.close()
				return err
			}
			res := br.fire(repeatTarget(n, a.url, a.header), ok)
			br.close()
			if err := b.simc.clearFaults(); err != nil {
				return err
			}
			after, err := b.simc.counters()
			if err != nil {
				return err
			}
			s := stormResult{endpoint: a.endpoint, n: n, burst: res,
				fetches:  tokenCalls(after.Tokens[a.appid]) - tokenCalls(before.Tokens[a.appid]),
				rejected: after.AppTokenRejections - before.AppTokenRejections}
			logf("4. storm, %s, N=%d: %d fetch(es), %d failed, %d refused upstream, p99 %s",
				a.endpoint, n, s.fetches, res.failed, s.rejected, fmtDur(res.percentile(99)))
			if res.failed > 0 {
				b.res.warnings = append(b.res.warnings, fmt.Sprintf("storm %s N=%d: first failure: %s", a.endpoint, n, res.firstFailure))
			}
			b.res.storms = append(b.res.storms, s)
		}
	}
	return nil
}
