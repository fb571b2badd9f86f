package caddywechat

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"

	"github.com/wxgate/caddy-wechat/module/internal/token"
)

func init() {
	caddycmd.RegisterCommand(caddycmd.Command{
		Name:  "wechat",
		Usage: "status|refresh <account> [--if-generation <n>] [--address <interface>] [--config <path> [--adapter <name>]]",
		Short: "Shows and refreshes the tokens of a running WeChat gateway",
		Long: `
Talks to the admin API of a running Caddy with the wechat app, as caddy
reload does: the address comes from --address, else from --config, else
the default (localhost:2019).

  caddy wechat status             every account's token and tickets: generation,
                                  time left, next refresh, calls today against the
                                  budget, and why refreshing stopped, if it did
  caddy wechat refresh <account>  fetches a new token now (with --if-generation n,
                                  only if the current one is still generation n)

No token or secret is ever shown.
`,
		CobraFunc: func(cmd *cobra.Command) {
			cmd.PersistentFlags().String("address", "", "Address of the admin API, if not the default")
			cmd.PersistentFlags().StringP("config", "c", "", "Configuration file to read the admin address from, if --address is not used")
			cmd.PersistentFlags().StringP("adapter", "a", "", "Name of the config adapter to apply (with --config)")
			status := &cobra.Command{
				Use:   "status",
				Short: "Prints every account's token state",
				Args:  cobra.NoArgs,
				RunE:  func(c *cobra.Command, _ []string) error { return cmdStatus(c, os.Stdout) },
			}
			refresh := &cobra.Command{
				Use:   "refresh <account>",
				Short: "Fetches a new token for an account now",
				Args:  cobra.ExactArgs(1),
				RunE:  func(c *cobra.Command, args []string) error { return cmdRefresh(c, args[0], os.Stdout) },
			}
			refresh.Flags().Int64("if-generation", -1, "Refresh only if the current token is still this generation")
			cmd.AddCommand(status, refresh)
		},
	})
}

// adminRequest calls the admin API that the command's flags point at.
func adminRequest(c *cobra.Command, method, uri string, body io.Reader) ([]byte, error) {
	address, _ := c.Flags().GetString("address")
	config, _ := c.Flags().GetString("config")
	adapter, _ := c.Flags().GetString("adapter")
	addr, err := caddycmd.DetermineAdminAPIAddress(address, nil, config, adapter)
	if err != nil {
		return nil, err
	}
	resp, err := caddycmd.AdminAPIRequest(addr, method, uri, nil, body)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode >= 300 {
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(raw, &e) == nil && e.Error != "" {
			return nil, fmt.Errorf("%s: %s", resp.Status, e.Error)
		}
		return nil, fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(raw)))
	}
	return raw, nil
}

func cmdStatus(c *cobra.Command, out io.Writer) error {
	raw, err := adminRequest(c, http.MethodGet, "/wechat/accounts", nil)
	if err != nil {
		return err
	}
	var st struct {
		Now      time.Time       `json:"now"`
		Accounts []*accountState `json:"accounts"`
	}
	if err := json.Unmarshal(raw, &st); err != nil {
		return fmt.Errorf("reading the admin API's answer: %v", err)
	}
	if st.Now.IsZero() {
		return fmt.Errorf("the admin API answered no accounts' state: is the address Caddy's admin endpoint, with the wechat app loaded?")
	}
	printStatus(out, st.Now, st.Accounts, isTerminal(out))
	return nil
}

func cmdRefresh(c *cobra.Command, account string, out io.Writer) error {
	body := "{}"
	if gen, _ := c.Flags().GetInt64("if-generation"); gen >= 0 {
		body = `{"if_generation":` + strconv.FormatInt(gen, 10) + `}`
	}
	raw, err := adminRequest(c, http.MethodPost, "/wechat/accounts/"+url.PathEscape(account)+"/refresh", strings.NewReader(body))
	if err != nil {
		return err
	}
	var as accountState
	if err := json.Unmarshal(raw, &as); err != nil {
		return fmt.Errorf("reading the admin API's answer: %v", err)
	}
	if as.Name != account {
		return fmt.Errorf("the admin API answered no state of account %q: is the address Caddy's admin endpoint, with the wechat app loaded?", account)
	}
	printStatus(out, time.Now(), []*accountState{&as}, isTerminal(out))
	return nil
}

// isTerminal reports whether out is a terminal that takes colour.
func isTerminal(out io.Writer) bool {
	f, ok := out.(*os.File)
	if !ok || os.Getenv("NO_COLOR") != "" {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// printStatus prints accounts as a table: a row per account, and one per
// ticket under it. With colour, a working token is green, a stopped
// refresh red, no token yellow.
func printStatus(out io.Writer, now time.Time, accounts []*accountState, colour bool) {
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ACCOUNT\tKIND\tENDPOINT\tGENERATION\tLEFT\tNEXT REFRESH\tCALLS TODAY\tSTATE")
	row := func(name string, st token.Status) {
		state, paint := "ok", "\x1b[32m"
		switch {
		case st.Stopped:
			state, paint = "stopped: "+st.LastError, "\x1b[31m"
		case !st.HasToken:
			state, paint = "no token", "\x1b[33m"
			if st.LastError != "" {
				state += ": " + st.LastError
			}
		case st.LastError != "":
			state, paint = "ok, refreshing failed: "+st.LastError, "\x1b[33m"
		}
		if st.LastError != "" && st.RetryAt.After(now) {
			state += " (next attempt in " + st.RetryAt.Sub(now).Round(time.Second).String() + ")"
		}
		if colour {
			state = paint + state + "\x1b[0m"
		}
		left, next := "-", "-"
		if st.HasToken {
			left = st.Expires.Sub(now).Round(time.Second).String()
			if !st.NextRefresh.IsZero() {
				next = st.NextRefresh.Sub(now).Round(time.Second).String()
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%d/%d\t%s\n", name, st.Kind, st.Endpoint, st.Generation, left, next, st.CallsToday, st.DailyBudget, state)
	}
	for _, as := range accounts {
		row(as.Name, as.Status)
		for _, t := range as.Tickets {
			row("  ticket", t)
		}
		for _, a := range as.Authorizers {
			row("  authorizer "+a.AppID, a)
		}
	}
	_ = tw.Flush()
}
