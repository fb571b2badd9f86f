package caddywechat

import (
	"strconv"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/dustin/go-humanize"
)

func init() {
	httpcaddyfile.RegisterGlobalOption("wechat", parseGlobalOption)
	httpcaddyfile.RegisterHandlerDirective("wechat", parseHandlerDirective)
	httpcaddyfile.RegisterDirectiveOrder("wechat", httpcaddyfile.Before, "reverse_proxy")
}

// parseGlobalOption sets up the `wechat` app from the global option:
//
//	{
//		wechat {
//			account <name> official|wecom {
//				appid|corpid   <id>
//				secret         {env.NAME}|{file./path}
//				token_endpoint stable_token|token|gettoken
//				api_base       <url>
//				refresh_margin <duration>
//				daily_budget   <calls>
//			}
//			client <name> {
//				key      {env.NAME}|{file./path}   # repeatable: several valid at once
//				accounts <account...>
//				paths    <path|prefix*...>
//				raw_token
//			}
//			client_token_ttl <duration>
//			refresh_cooldown <duration>
//			fetch_timeout    <duration>
//			test_clock
//		}
//	}
func parseGlobalOption(d *caddyfile.Dispenser, existing any) (any, error) {
	if existing != nil {
		return nil, d.Err("wechat: the global option may appear only once; put every account in it")
	}
	app := new(App)
	if err := app.UnmarshalCaddyfile(d); err != nil {
		return nil, err
	}
	return httpcaddyfile.App{Name: "wechat", Value: caddyconfig.JSON(app, nil)}, nil
}

// UnmarshalCaddyfile reads the `wechat` global option into a.
func (a *App) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // the option name
	if d.NextArg() {
		return d.ArgErr()
	}
	for d.NextBlock(0) {
		switch d.Val() {
		case "account":
			var name, kind string
			if !d.Args(&name, &kind) {
				return d.Errf("account: want `account <name> official|wecom { ... }`")
			}
			if d.NextArg() {
				return d.ArgErr()
			}
			if kind != "official" && kind != "wecom" {
				return d.Errf("account %s: kind %q is not one of official, wecom", name, kind)
			}
			if _, dup := a.Accounts[name]; dup {
				return d.Errf("account %s: defined twice", name)
			}
			acct := &Account{Kind: kind}
			if err := acct.unmarshalBlock(d, name); err != nil {
				return err
			}
			if a.Accounts == nil {
				a.Accounts = make(map[string]*Account)
			}
			a.Accounts[name] = acct
		case "client":
			var name string
			if !d.Args(&name) {
				return d.Errf("client: want `client <name> { ... }`")
			}
			if d.NextArg() {
				return d.ArgErr()
			}
			if _, dup := a.Clients[name]; dup {
				return d.Errf("client %s: defined twice", name)
			}
			c := new(Client)
			if err := c.unmarshalBlock(d, name); err != nil {
				return err
			}
			if a.Clients == nil {
				a.Clients = make(map[string]*Client)
			}
			a.Clients[name] = c
		case "client_token_ttl":
			dur, err := durationArg(d)
			if err != nil {
				return err
			}
			a.ClientTokenTTL = dur
		case "refresh_cooldown":
			dur, err := durationArg(d)
			if err != nil {
				return err
			}
			a.RefreshCooldown = dur
		case "fetch_timeout":
			dur, err := durationArg(d)
			if err != nil {
				return err
			}
			a.FetchTimeout = dur
		case "test_clock":
			if d.NextArg() {
				return d.ArgErr()
			}
			a.TestClock = true
		default:
			return d.Errf("wechat: unknown subdirective %q", d.Val())
		}
	}
	return nil
}

func (a *Account) unmarshalBlock(d *caddyfile.Dispenser, name string) error {
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		opt := d.Val()
		var val string
		if !d.AllArgs(&val) {
			return d.Errf("account %s: %s takes exactly one value", name, opt)
		}
		switch opt {
		case "appid", "corpid":
			a.AppID = val
		case "secret":
			a.Secret = val
		case "token_endpoint":
			a.TokenEndpoint = val
		case "api_base":
			a.APIBase = val
		case "refresh_margin":
			dur, err := caddy.ParseDuration(val)
			if err != nil {
				return d.Errf("account %s: refresh_margin %q: %v", name, val, err)
			}
			a.RefreshMargin = caddy.Duration(dur)
		case "daily_budget":
			n, err := strconv.Atoi(val)
			if err != nil || n < 0 {
				return d.Errf("account %s: daily_budget %q is not a whole number of calls", name, val)
			}
			a.DailyBudget = n
		default:
			return d.Errf("account %s: unknown subdirective %q", name, opt)
		}
	}
	return nil
}

func (c *Client) unmarshalBlock(d *caddyfile.Dispenser, name string) error {
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		switch opt := d.Val(); opt {
		case "key":
			var key string
			if !d.AllArgs(&key) {
				return d.Errf("client %s: key takes exactly one value (repeat the line for several keys)", name)
			}
			c.Keys = append(c.Keys, key)
		case "accounts":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return d.Errf("client %s: accounts needs at least one account name", name)
			}
			c.Accounts = append(c.Accounts, args...)
		case "paths":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return d.Errf("client %s: paths needs at least one path", name)
			}
			c.Paths = append(c.Paths, args...)
		case "raw_token":
			if d.NextArg() {
				return d.ArgErr()
			}
			c.RawToken = true
		default:
			return d.Errf("client %s: unknown subdirective %q", name, opt)
		}
	}
	return nil
}

// parseHandlerDirective sets up the handler from
//
//	wechat [<account>] {
//		trusted
//		max_replay_body <size>
//	}
func parseHandlerDirective(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	handler := new(Handler)
	return handler, handler.UnmarshalCaddyfile(h.Dispenser)
}

// UnmarshalCaddyfile reads the `wechat` directive into h.
func (h *Handler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // the directive name
	if args := d.RemainingArgs(); len(args) > 1 {
		return d.Errf("wechat: want `wechat [<account>]`, naming at most one account of the global wechat option")
	} else if len(args) == 1 {
		h.Account = args[0]
	}
	for d.NextBlock(0) {
		switch d.Val() {
		case "trusted":
			if d.NextArg() {
				return d.ArgErr()
			}
			h.Trusted = true
		case "max_replay_body":
			var val string
			if !d.AllArgs(&val) {
				return d.ArgErr()
			}
			size, err := humanize.ParseBytes(val)
			if err != nil {
				return d.Errf("max_replay_body %q: %v", val, err)
			}
			h.MaxReplayBody = int64(size)
		default:
			return d.Errf("wechat: unknown subdirective %q", d.Val())
		}
	}
	return nil
}

func durationArg(d *caddyfile.Dispenser) (caddy.Duration, error) {
	opt := d.Val()
	var val string
	if !d.AllArgs(&val) {
		return 0, d.Errf("%s takes exactly one duration", opt)
	}
	dur, err := caddy.ParseDuration(val)
	if err != nil {
		return 0, d.Errf("%s %q: %v", opt, val, err)
	}
	return caddy.Duration(dur), nil
}

// Interface guards
var (
	_ caddyfile.Unmarshaler = (*App)(nil)
	_ caddyfile.Unmarshaler = (*Handler)(nil)
)
