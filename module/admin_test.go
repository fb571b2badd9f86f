package caddywechat

import (
	"bytes"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/spf13/cobra"

	"github.com/wxgate/caddy-wechat/module/internal/token"
)

// TestDecodeOptional: an admin call's body is optional, but what is sent
// must be what the call takes: a misspelt if_generation would make a
// refresh unconditional, so it is refused, as are an oversized body and
// anything after the object.
func TestDecodeOptional(t *testing.T) {
	for _, c := range []struct {
		name, body string
		status     int // 0: accepted
	}{
		{"none", "", 0},
		{"blank", " \n", 0},
		{"the field", `{"if_generation":3}`, 0},
		{"misspelt", `{"ifGeneration":3}`, http.StatusBadRequest},
		{"wrong type", `{"if_generation":"3"}`, http.StatusBadRequest},
		{"two objects", `{"if_generation":3}{"if_generation":4}`, http.StatusBadRequest},
		{"a brace after it", `{"if_generation":3}}`, http.StatusBadRequest},
		{"a bracket after it", `{"if_generation":3}]`, http.StatusBadRequest},
		{"white space after it", "{\"if_generation\":3}\n ", 0},
		{"oversized", `{"if_generation":3}` + strings.Repeat(" ", maxAdminBody), http.StatusRequestEntityTooLarge},
	} {
		var req struct {
			IfGeneration *uint64 `json:"if_generation"`
		}
		err := decodeOptional(httptest.NewRequest("POST", "/wechat/accounts/mp/refresh", strings.NewReader(c.body)), &req)
		var ae caddy.APIError
		switch {
		case c.status == 0 && err != nil:
			t.Errorf("%s: %v", c.name, err)
		case c.status != 0 && (!errors.As(err, &ae) || ae.HTTPStatus != c.status):
			t.Errorf("%s: %v, want HTTP %d", c.name, err, c.status)
		case c.name == "the field" && (req.IfGeneration == nil || *req.IfGeneration != 3):
			t.Errorf("%s: decoded %+v", c.name, req)
		}
	}
}

// TestStatusShowsWhyAndNextAttempt: `caddy wechat status` says why an
// account has no token, or failed to refresh one, and when it tries next,
// as the README's troubleshooting promises.
func TestStatusShowsWhyAndNextAttempt(t *testing.T) {
	now := time.Date(2025, 3, 1, 10, 0, 0, 0, time.UTC)
	busy := "api.weixin.qq.com/cgi-bin/stable_token answered errcode -1 (system busy): system error"
	for _, c := range []struct {
		st   token.Status
		want []string
	}{
		{token.Status{Name: "mp", LastError: busy, RetryAt: now.Add(8 * time.Second)}, []string{"no token: " + busy, "next attempt in 8s"}},
		{token.Status{Name: "mp", HasToken: true, Expires: now.Add(time.Hour), LastError: busy, RetryAt: now.Add(time.Minute)},
			[]string{"ok, refreshing failed: " + busy, "next attempt in 1m0s"}},
		{token.Status{Name: "mp", Stopped: true, LastError: "errcode 40164: invalid ip", RetryAt: now.Add(2 * time.Minute)},
			[]string{"stopped: errcode 40164: invalid ip", "next attempt in 2m0s"}},
		{token.Status{Name: "mp", HasToken: true, Expires: now.Add(time.Hour)}, []string{"ok\n"}},
	} {
		var out bytes.Buffer
		printStatus(&out, now, []*accountState{{Status: c.st}}, false)
		for _, w := range c.want {
			if !strings.Contains(out.String(), w) {
				t.Errorf("status of %+v:\n%s\nwant %q in it", c.st, out.String(), w)
			}
		}
	}
}

// cliCmd is a command with the flags of `caddy wechat`, pointed at addr.
func cliCmd(addr string) *cobra.Command {
	c := &cobra.Command{}
	c.Flags().String("address", addr, "")
	c.Flags().String("config", "", "")
	c.Flags().String("adapter", "", "")
	c.Flags().Int64("if-generation", -1, "")
	return c
}

// TestCLIWrongAddress: `caddy wechat status` and `refresh` pointed at
// something other than Caddy's admin API (answering 200 with JSON) say so,
// rather than print an empty row and succeed.
func TestCLIWrongAddress(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"status":"ok"}`))
	}))
	defer srv.Close()
	var out bytes.Buffer
	if err := cmdRefresh(cliCmd(strings.TrimPrefix(srv.URL, "http://")), "mp", &out); err == nil {
		t.Errorf("refresh: no error; printed\n%s", out.String())
	}
	if err := cmdStatus(cliCmd(strings.TrimPrefix(srv.URL, "http://")), &out); err == nil {
		t.Errorf("status: no error; printed\n%s", out.String())
	}
}
