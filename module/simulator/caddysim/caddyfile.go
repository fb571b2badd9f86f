package caddysim

import (
	"strconv"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/wxgate/caddy-wechat/module/internal/caddyopt"
	"github.com/wxgate/caddy-wechat/module/simulator"
)

func init() {
	httpcaddyfile.RegisterHandlerDirective("wechat_simulator", parseSimulatorDirective)
	httpcaddyfile.RegisterDirectiveOrder("wechat_simulator", httpcaddyfile.Before, "respond")
}

// parseSimulatorDirective sets up the handler from the `wechat_simulator`
// directive.
func parseSimulatorDirective(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	s := new(Simulator)
	return s, s.UnmarshalCaddyfile(h.Dispenser)
}

// UnmarshalCaddyfile reads the directive:
//
//	wechat_simulator [<matcher>] {
//		official <appid> <secret> [{
//			daily_token_quota <n>
//			menu              <json>
//		}]
//		wecom    <corpid> <secret> [<agentid>] [{ daily_token_quota <n> }]
//		component <appid> <secret> {
//			token            <token>
//			encoding_aes_key <key>
//			callback_url     <url>
//			authorizer       <appid> [<refresh_token>]
//		}
//		component_ticket_interval <duration>|off
//		component_ticket_ttl      <duration>
//		authorizer_refresh_grace  <duration>|off
//		token_ttl                <duration>
//		overlap                  <duration>|off
//		daily_token_quota        <n>
//		stable_daily_quota       <n>
//		force_refresh_limit      <n>
//		force_refresh_interval   <duration>|off
//		stable_force_grace       <duration>|off
//		stable_rotation          <duration>
//		wecom_early_invalidation <duration>|off
//		control_prefix           <path>
//		large_media_size         <size>
//		media_store_limit        <size>
//		enforce_api_quota
//		frozen
//		name                     <name>
//	}
//
// Sizes are bytes or humanized sizes (64MiB, 10MB); quotas accept -1 for
// unlimited; overlap, force_refresh_interval, stable_force_grace and
// wecom_early_invalidation accept off for none. menu (official accounts only) is the menu the account starts
// with, in the shape /cgi-bin/menu/create takes: a JSON document as one
// token (in backquotes or a heredoc), or a placeholder such as
// {file.examples/demo-menu.json} resolved at provisioning. Without it
// /cgi-bin/menu/get answers 46003 until a client creates a menu. component
// declares a third-party platform of the open platform (repeat authorizer
// for each account that can authorise it); its secret, token, key, URL and
// refresh tokens may be placeholders. component_ticket_interval and
// authorizer_refresh_grace accept off.
func (s *Simulator) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // the directive name
	if d.NextArg() {
		return d.Errf("wechat_simulator takes no arguments, only a block; got %q", d.Val())
	}
	return readBlock(d, 0, "wechat_simulator", s.subdirectives())
}

// readBlock reads the block at nesting with the reader of each
// subdirective in options; an unknown one is an error of what.
func readBlock(d *caddyfile.Dispenser, nesting int, what string, options map[string]func(*caddyfile.Dispenser) error) error {
	for d.NextBlock(nesting) {
		read, ok := options[d.Val()]
		if !ok {
			return d.Errf("%s: unknown subdirective %q", what, d.Val())
		}
		if err := read(d); err != nil {
			return err
		}
	}
	return nil
}

// subdirectives maps each subdirective of wechat_simulator to the function
// that reads its arguments into s.
func (s *Simulator) subdirectives() map[string]func(*caddyfile.Dispenser) error {
	return map[string]func(*caddyfile.Dispenser) error{
		simulator.KindOfficial:     s.accountReader(simulator.KindOfficial),
		simulator.KindWeCom:        s.accountReader(simulator.KindWeCom),
		"token_ttl":                option(&s.TokenTTL, caddyopt.Duration),
		"overlap":                  option(&s.Overlap, caddyopt.DurationOrOff),
		"force_refresh_interval":   option(&s.ForceRefreshInterval, caddyopt.DurationOrOff),
		"stable_force_grace":       option(&s.StableForceGrace, caddyopt.DurationOrOff),
		"stable_rotation":          option(&s.StableRotation, caddyopt.Duration),
		"wecom_early_invalidation": option(&s.WeComEarlyInvalidation, caddyopt.DurationOrOff),
		"daily_token_quota":        option(&s.DailyTokenQuota, simQuota),
		"stable_daily_quota":       option(&s.StableDailyQuota, simQuota),
		"force_refresh_limit":      option(&s.ForceRefreshDailyLimit, simQuota),
		"large_media_size":         option(&s.LargeMediaSize, caddyopt.Size),
		"media_store_limit":        option(&s.MediaStoreLimit, caddyopt.Size),
		"control_prefix":           option(&s.ControlPrefix, caddyopt.OneArg),
		"name":                     option(&s.Name, caddyopt.OneArg),
		"enforce_api_quota":        flag(&s.EnforceAPIQuota),
		"frozen":                   flag(&s.Frozen),

		// The open platform.
		"component":                 s.unmarshalComponent,
		"component_ticket_interval": option(&s.ComponentTicketInterval, caddyopt.DurationOrOff),
		"component_ticket_ttl":      option(&s.ComponentTicketTTL, caddyopt.Duration),
		"authorizer_refresh_grace":  option(&s.AuthorizerRefreshGrace, caddyopt.DurationOrOff),
	}
}

// option returns a reader of a subdirective that parses its value into dst.
func option[T any](dst *T, parse func(*caddyfile.Dispenser) (T, error)) func(*caddyfile.Dispenser) error {
	return func(d *caddyfile.Dispenser) (err error) {
		*dst, err = parse(d)
		return err
	}
}

// flag returns a reader of a subdirective without arguments that sets dst.
func flag(dst *bool) func(*caddyfile.Dispenser) error {
	return func(d *caddyfile.Dispenser) error {
		*dst = true
		return caddyopt.NoArg(d)
	}
}

// accountReader returns the reader of the account subdirective of kind.
func (s *Simulator) accountReader(kind string) func(*caddyfile.Dispenser) error {
	return func(d *caddyfile.Dispenser) error { return s.unmarshalSimAccount(d, kind) }
}

// unmarshalSimAccount reads `official <appid> <secret>` or
// `wecom <corpid> <secret> [<agentid>]` and its optional block.
func (s *Simulator) unmarshalSimAccount(d *caddyfile.Dispenser, kind string) error {
	args := d.RemainingArgs()
	want := "official <appid> <secret>"
	if kind == simulator.KindWeCom {
		want = "wecom <corpid> <secret> [<agentid>]"
	}
	if len(args) < 2 || len(args) > 3 || (kind == simulator.KindOfficial && len(args) == 3) {
		return d.Errf("%s: wrong argument count, want `%s`", kind, want)
	}
	acct := SimulatorAccount{Kind: kind, AppID: args[0], Secret: args[1]}
	if len(args) == 3 {
		if _, err := strconv.ParseUint(args[2], 10, 63); err != nil {
			return d.Errf("wecom %s: agentid %q is not a number", args[0], args[2])
		}
		acct.AgentID = args[2]
	}
	err := readBlock(d, d.Nesting(), kind+" "+args[0], map[string]func(*caddyfile.Dispenser) error{
		"daily_token_quota": option(&acct.DailyTokenQuota, simQuota),
		"menu": func(d *caddyfile.Dispenser) error {
			if kind != simulator.KindOfficial {
				return d.Errf("%s %s: menu: only official accounts have menus", kind, args[0])
			}
			return option(&acct.Menu, caddyopt.OneArg)(d)
		},
	})
	if err != nil {
		return err
	}
	s.Accounts = append(s.Accounts, acct)
	return nil
}

func simQuota(d *caddyfile.Dispenser) (int, error) {
	opt := d.Val()
	val, err := caddyopt.OneArg(d)
	if err != nil {
		return 0, err
	}
	n, err := strconv.Atoi(val)
	if err != nil || n < -1 || n == 0 {
		return 0, d.Errf("%s: %q is not a positive number of calls (or -1 for unlimited)", opt, val)
	}
	return n, nil
}

// Interface guard
var _ caddyfile.Unmarshaler = (*Simulator)(nil)
