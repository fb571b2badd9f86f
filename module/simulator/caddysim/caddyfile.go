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
// /cgi-bin/menu/get answers 46003 until a client creates a menu.
func (s *Simulator) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // the directive name
	if d.NextArg() {
		return d.Errf("wechat_simulator takes no arguments, only a block; got %q", d.Val())
	}
	for d.NextBlock(0) {
		opt := d.Val()
		var err error
		switch opt {
		case "official", "wecom":
			err = s.unmarshalSimAccount(d, opt)
		case "token_ttl":
			s.TokenTTL, err = caddyopt.Duration(d)
		case "overlap":
			s.Overlap, err = caddyopt.DurationOrOff(d)
		case "force_refresh_interval":
			s.ForceRefreshInterval, err = caddyopt.DurationOrOff(d)
		case "stable_force_grace":
			s.StableForceGrace, err = caddyopt.DurationOrOff(d)
		case "stable_rotation":
			s.StableRotation, err = caddyopt.Duration(d)
		case "wecom_early_invalidation":
			s.WeComEarlyInvalidation, err = caddyopt.DurationOrOff(d)
		case "daily_token_quota":
			s.DailyTokenQuota, err = simQuota(d)
		case "stable_daily_quota":
			s.StableDailyQuota, err = simQuota(d)
		case "force_refresh_limit":
			s.ForceRefreshDailyLimit, err = simQuota(d)
		case "large_media_size":
			s.LargeMediaSize, err = caddyopt.Size(d)
		case "media_store_limit":
			s.MediaStoreLimit, err = caddyopt.Size(d)
		case "control_prefix":
			s.ControlPrefix, err = caddyopt.OneArg(d)
		case "name":
			s.Name, err = caddyopt.OneArg(d)
		case "enforce_api_quota":
			s.EnforceAPIQuota, err = true, caddyopt.NoArg(d)
		case "frozen":
			s.Frozen, err = true, caddyopt.NoArg(d)
		default:
			return d.Errf("wechat_simulator: unknown subdirective %q", opt)
		}
		if err != nil {
			return err
		}
	}
	return nil
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
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		switch d.Val() {
		case "daily_token_quota":
			n, err := simQuota(d)
			if err != nil {
				return err
			}
			acct.DailyTokenQuota = n
		case "menu":
			if kind != simulator.KindOfficial {
				return d.Errf("%s %s: menu: only official accounts have menus", kind, args[0])
			}
			menu, err := caddyopt.OneArg(d)
			if err != nil {
				return err
			}
			acct.Menu = menu
		default:
			return d.Errf("%s %s: unknown subdirective %q", kind, args[0], d.Val())
		}
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
