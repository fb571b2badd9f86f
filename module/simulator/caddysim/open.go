package caddysim

import (
	"fmt"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/wxgate/caddy-wechat/module/internal/caddyopt"
	"github.com/wxgate/caddy-wechat/module/simulator"
)

// SimulatorComponent is one simulated third-party platform of the open
// platform, with the accounts that authorise it.
type SimulatorComponent struct {
	// AppID is the component_appid. Required.
	AppID string `json:"appid"`

	// Secret is the component_appsecret. Placeholders such as
	// {env.SIM_COMPONENT_SECRET} are resolved at provisioning. Required.
	Secret string `json:"secret"`

	// Token is the platform's message verification token (3 to 32 letters
	// or digits), which signs the pushes. Placeholders are resolved.
	// Required.
	Token string `json:"token"`

	// EncodingAESKey is the platform's 43-character message encryption
	// key. Placeholders are resolved. Required.
	EncodingAESKey string `json:"encoding_aes_key"`

	// CallbackURL is where the simulator POSTs component_verify_ticket and
	// authorization events (the platform's 授权事件接收URL); it must answer
	// "success". Placeholders are resolved. Default: none (tickets are
	// issued but not delivered).
	CallbackURL string `json:"callback_url,omitempty"`

	// Authorizers are the official accounts and mini programs that can
	// authorise the platform.
	Authorizers []SimulatorAuthorizer `json:"authorizers,omitempty"`
}

// SimulatorAuthorizer is an account that can authorise a component.
type SimulatorAuthorizer struct {
	// AppID is the authorizer_appid. Required.
	AppID string `json:"appid"`

	// RefreshToken, when set, makes the authorizer start authorised with
	// this authorizer_refresh_token. Placeholders are resolved. Default:
	// it starts unauthorised (POST {control_prefix}/component/authorize
	// authorises it).
	RefreshToken string `json:"refresh_token,omitempty"`
}

// openConfig resolves the placeholders of the components into cfg.
func (s *Simulator) openConfig(repl *caddy.Replacer, cfg *simulator.Config) error {
	cfg.ComponentTicketInterval = time.Duration(s.ComponentTicketInterval)
	cfg.ComponentTicketTTL = time.Duration(s.ComponentTicketTTL)
	cfg.AuthorizerRefreshGrace = time.Duration(s.AuthorizerRefreshGrace)
	for i, c := range s.Components {
		appid := repl.ReplaceKnown(c.AppID, "")
		where := fmt.Sprintf("components[%d] (%s)", i, appid)
		if appid == "" {
			return fmt.Errorf("components[%d]: appid is empty (placeholders resolved)", i)
		}
		resolve := func(name, v string, required bool) (string, error) {
			out := repl.ReplaceKnown(v, "")
			switch {
			case out == "" && v != "":
				return "", fmt.Errorf("%s: %s %s resolved to an empty string", where, name, v)
			case out == "" && required:
				return "", fmt.Errorf("%s: %s is empty", where, name)
			}
			return out, nil
		}
		comp := simulator.Component{AppID: appid}
		var err error
		if comp.Secret, err = resolve("secret", c.Secret, true); err != nil {
			return err
		}
		if comp.Token, err = resolve("token", c.Token, true); err != nil {
			return err
		}
		if comp.EncodingAESKey, err = resolve("encoding_aes_key", c.EncodingAESKey, true); err != nil {
			return err
		}
		if comp.CallbackURL, err = resolve("callback_url", c.CallbackURL, false); err != nil {
			return err
		}
		cfg.Components = append(cfg.Components, comp)
		for j, a := range c.Authorizers {
			auth := simulator.Authorizer{ComponentAppID: appid, AppID: repl.ReplaceKnown(a.AppID, "")}
			if auth.AppID == "" {
				return fmt.Errorf("%s: authorizers[%d]: appid is empty (placeholders resolved)", where, j)
			}
			if auth.RefreshToken, err = resolve("authorizer "+auth.AppID+" refresh_token", a.RefreshToken, false); err != nil {
				return err
			}
			cfg.Authorizers = append(cfg.Authorizers, auth)
		}
	}
	return nil
}

// unmarshalComponent reads
//
//	component <appid> <secret> {
//		token            <token>
//		encoding_aes_key <key>
//		callback_url     <url>
//		authorizer       <appid> [<refresh_token>]
//	}
func (s *Simulator) unmarshalComponent(d *caddyfile.Dispenser) error {
	args := d.RemainingArgs()
	if len(args) != 2 {
		return d.Errf("component: wrong argument count, want `component <appid> <secret> { ... }`")
	}
	comp := SimulatorComponent{AppID: args[0], Secret: args[1]}
	err := readBlock(d, d.Nesting(), "component "+args[0], map[string]func(*caddyfile.Dispenser) error{
		"token":            option(&comp.Token, caddyopt.OneArg),
		"encoding_aes_key": option(&comp.EncodingAESKey, caddyopt.OneArg),
		"callback_url":     option(&comp.CallbackURL, caddyopt.OneArg),
		"authorizer": func(d *caddyfile.Dispenser) error {
			a := d.RemainingArgs()
			if len(a) < 1 || len(a) > 2 {
				return d.Errf("component %s: authorizer: wrong argument count, want `authorizer <appid> [<refresh_token>]`", args[0])
			}
			auth := SimulatorAuthorizer{AppID: a[0]}
			if len(a) == 2 {
				auth.RefreshToken = a[1]
			}
			comp.Authorizers = append(comp.Authorizers, auth)
			return nil
		},
	})
	if err != nil {
		return err
	}
	s.Components = append(s.Components, comp)
	return nil
}
