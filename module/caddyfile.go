package caddywechat

import (
	"fmt"

	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/wxgate/caddy-wechat/module/internal/caddyopt"
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
//			account <name> official|wecom|component {
//				appid|corpid   <id>
//				secret         {env.NAME}|{file./path}
//				token_endpoint stable_token|token|gettoken
//				api_base       <url>
//				refresh_margin <duration>
//				daily_budget   <calls>
//				agent_id       <agentid>               # wecom only
//				token          {env.NAME}|{file./path} # component only: the message token
//				encoding_aes_key {env.NAME}|{file./path} # component only
//			}
//			client <name> {
//				key      {env.NAME}|{file./path}   # repeatable: several valid at once
//				accounts <account...>
//				paths    <path|prefix*...>
//				raw_token
//				admin
//			}
//			client_token_ttl  <duration>
//			refresh_cooldown  <duration>|off
//			fetch_timeout     <duration>
//			max_replay_memory <size>
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
	var err error
	once := caddyopt.Once{}
	for d.NextBlock(0) {
		opt := d.Val()
		if opt != "account" && opt != "client" { // those name their blocks
			if err := once.Take(d, opt); err != nil {
				return fmt.Errorf("wechat global option: %w", err)
			}
		}
		switch opt {
		case "account":
			var name, kind string
			if !d.Args(&name, &kind) {
				return d.Errf("account: want `account <name> official|wecom|component { ... }`")
			}
			if d.NextArg() {
				return d.ArgErr()
			}
			if kind != "official" && kind != "wecom" && kind != "component" {
				return d.Errf("account %s: kind %q is not one of official, wecom, component", name, kind)
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
			if a.ClientTokenTTL, err = caddyopt.Duration(d); err != nil {
				return err
			}
		case "refresh_cooldown":
			if a.RefreshCooldown, err = caddyopt.DurationOrOff(d); err != nil {
				return err
			}
		case "fetch_timeout":
			if a.FetchTimeout, err = caddyopt.Duration(d); err != nil {
				return err
			}
		case "max_replay_memory":
			if a.MaxReplayMemory, err = caddyopt.Size(d); err != nil {
				return err
			}
		case "test_clock":
			if err := caddyopt.NoArg(d); err != nil {
				return err
			}
			a.TestClock = true
		default:
			return d.Errf("wechat: unknown subdirective %q", d.Val())
		}
	}
	return nil
}

func (a *Account) unmarshalBlock(d *caddyfile.Dispenser, name string) error {
	once := caddyopt.Once{}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		var err error
		opt := d.Val()
		key := opt
		if opt == "corpid" {
			key = "appid" // one option, two spellings
		}
		if err := once.Take(d, key); err != nil {
			return fmt.Errorf("account %s: %w", name, err)
		}
		switch opt {
		case "appid", "corpid":
			a.AppID, err = caddyopt.OneArg(d)
		case "secret":
			a.Secret, err = caddyopt.OneArg(d)
		case "token_endpoint":
			a.TokenEndpoint, err = caddyopt.OneArg(d)
		case "api_base":
			a.APIBase, err = caddyopt.OneArg(d)
		case "refresh_margin":
			a.RefreshMargin, err = caddyopt.Duration(d)
		case "daily_budget":
			a.DailyBudget, err = caddyopt.Count(d, 1)
		case "token", "encoding_aes_key":
			if a.Kind != "component" {
				err = d.Errf("%s: only third-party platforms (component) have one", opt)
				break
			}
			var v string
			if v, err = caddyopt.OneArg(d); opt == "token" {
				a.Token = v
			} else {
				a.EncodingAESKey = v
			}
		case "agent_id":
			if a.Kind != "wecom" {
				err = d.Errf("agent_id: only WeCom applications have an agentid")
				break
			}
			a.AgentID, err = caddyopt.OneArg(d)
		default:
			err = d.Errf("unknown subdirective %q", opt)
		}
		if err != nil {
			return fmt.Errorf("account %s: %w", name, err)
		}
	}
	return nil
}

func (c *Client) unmarshalBlock(d *caddyfile.Dispenser, name string) error {
	once := caddyopt.Once{}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		opt := d.Val()
		if opt == "raw_token" || opt == "admin" { // key, accounts and paths add up
			if err := once.Take(d, opt); err != nil {
				return fmt.Errorf("client %s: %w", name, err)
			}
		}
		switch opt {
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
			if err := caddyopt.NoArg(d); err != nil {
				return err
			}
			c.RawToken = true
		case "admin":
			if err := caddyopt.NoArg(d); err != nil {
				return err
			}
			c.Admin = true
		default:
			return d.Errf("client %s: unknown subdirective %q", name, opt)
		}
	}
	return nil
}

// parseHandlerDirective sets up the handler from
//
//	wechat [<account>] {
//		kind            official|wecom|any
//		trusted
//		callback        # a component account's push URL
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
	once := caddyopt.Once{}
	for d.NextBlock(0) {
		if err := once.Take(d, d.Val()); err != nil {
			return fmt.Errorf("wechat directive: %w", err)
		}
		switch d.Val() {
		case "trusted":
			if err := caddyopt.NoArg(d); err != nil {
				return err
			}
			h.Trusted = true
		case "kind":
			kind, err := caddyopt.OneArg(d)
			if err != nil {
				return err
			}
			if kind != "official" && kind != "wecom" && kind != kindAny {
				return d.Errf("kind %q is not one of official, wecom, any", kind)
			}
			h.Kind = kind
		case "callback":
			if err := caddyopt.NoArg(d); err != nil {
				return err
			}
			h.Callback = true
		case "max_replay_body":
			size, err := caddyopt.Size(d)
			if err != nil {
				return err
			}
			h.MaxReplayBody = size
		default:
			return d.Errf("wechat: unknown subdirective %q", d.Val())
		}
	}
	return nil
}

// Interface guards
var (
	_ caddyfile.Unmarshaler = (*App)(nil)
	_ caddyfile.Unmarshaler = (*Handler)(nil)
)
