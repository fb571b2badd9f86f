package main

import (
	"fmt"
	"math"
	"net/http"
	"time"
)

// dayResult is section 5 for one account.
type dayResult struct {
	endpoint      string
	fetches       int64 // token-endpoint calls over the day
	issued        int64 // distinct tokens WeChat minted for it
	minimum       int64 // the physical minimum: ceil(day / token lifetime)
	calls, failed int
}

const (
	simDay   = 24 * time.Hour
	tokenTTL = 2 * time.Hour // the simulator's token_ttl (WeChat's 7200 s)
)

// runDay runs a simulated day of steady traffic: every simulated minute
// (five with -quick), one call per account, with the gateway's and the
// simulator's clocks moved together, for a stable_token, a /cgi-bin/token
// and a WeCom account that start the day without a token. It counts each
// account's token-endpoint calls in the simulator against the physical
// minimum, ceil(24 h / 2 h) = 12.
func (b *bench) runDay() error {
	step := time.Minute
	if b.opts.quick {
		step = 5 * time.Minute
	}
	accounts := []struct {
		endpoint, name, label, path string
	}{
		{"stable_token", "day-stable", appDayStable, userInfoPath},
		{"token", "day-token", appDayToken, userInfoPath},
		{"gettoken (WeCom)", "day-wecom", corpDay + "/" + agentDay, "/cgi-bin/user/get?userid=zhangsan"},
	}
	before, err := b.simc.counters()
	if err != nil {
		return err
	}
	results := make([]dayResult, len(accounts))
	minimum := int64(math.Ceil(float64(simDay) / float64(tokenTTL)))
	logf("5. a simulated day in %s steps", step)
	for elapsed := time.Duration(0); elapsed < simDay; elapsed += step {
		if elapsed > 0 {
			if err := b.advanceBoth(step); err != nil {
				return err
			}
		}
		for i, a := range accounts {
			results[i].calls++
			code, body, err := get(b.gw2URL(a.path), http.Header{accountHeader: []string{a.name}})
			if err != nil || code != http.StatusOK {
				results[i].failed++
				continue
			}
			if errcode, isJSON := errcodeOf(body); !isJSON || errcode != 0 {
				results[i].failed++
			}
		}
	}
	after, err := b.simc.counters()
	if err != nil {
		return err
	}
	for i, a := range accounts {
		r := &results[i]
		r.endpoint = a.endpoint
		r.minimum = minimum
		r.fetches = tokenCalls(after.Tokens[a.label]) - tokenCalls(before.Tokens[a.label])
		r.issued = tokensIssued(after.Tokens[a.label]) - tokensIssued(before.Tokens[a.label])
		logf("5. %s: %d token calls (%d tokens) in a day, minimum %d; %d of %d calls failed",
			a.endpoint, r.fetches, r.issued, r.minimum, r.failed, r.calls)
	}
	if rej := after.AppTokenRejections - before.AppTokenRejections; rej != 0 {
		b.res.warnings = append(b.res.warnings, fmt.Sprintf("the day: the simulator refused %d tokens (each a call replayed after a refresh)", rej))
	}
	b.res.day = results
	b.res.dayStep = step
	return nil
}
