package caddywechat

import (
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/wxgate/caddy-wechat/module/internal/clientauth"
)

// Client is an app allowed to call the gateway (in the handler's default
// clients mode). It authenticates with one of its keys, which its WeChat SDK
// sends where it would send the AppSecret (or corpsecret); the real secret
// stays in the gateway.
type Client struct {
	// Keys authenticate the client. Each must be a placeholder
	// ({env.NAME} or {file./path}) resolving to at least 16 bytes.
	// Several may be valid at once: to rotate, add the new key, move the app
	// to it, then remove the old one, which revokes every gateway token
	// issued with it. Required.
	Keys []string `json:"keys"`

	// Accounts are the names of the accounts the client may use; a
	// third-party platform (kind component) with all its authorizers. At
	// most one WeCom app per corpid (gettoken names only the corpid).
	// Required.
	Accounts []string `json:"accounts"`

	// Paths, if set, are the only API paths the client may call: exact
	// paths or prefixes ending in `*` (/cgi-bin/user/*). Default: every path.
	Paths []string `json:"paths,omitempty"`

	// RawToken allows the client to read the account's real access token
	// from GET /wechat-gateway/raw_token, for the rare app that must sign
	// or call with it itself (JS-SDK signing elsewhere, another tool). Every
	// read is logged. Default: false.
	RawToken bool `json:"raw_token,omitempty"`

	// Admin allows the client calls that act on the whole account for
	// every client: the quota resets /cgi-bin/clear_quota (and its /v2,
	// which the gateway completes with the AppSecret), a platform's
	// /cgi-bin/component/clear_quota (and /v2) and
	// /cgi-bin/openapi/quota/clear. Default: false.
	Admin bool `json:"admin,omitempty"`
}

// provisionClients resolves client keys and builds the authority that
// issues and verifies gateway tokens.
func (a *App) provisionClients(repl *caddy.Replacer) error {
	if len(a.Clients) == 0 {
		return nil
	}
	var accounts []clientauth.Account
	for name, h := range a.handles {
		acct := h.Account()
		accounts = append(accounts, clientauth.Account{Name: name, Kind: string(acct.Kind), AppID: acct.AppID})
	}
	var clients []clientauth.Client
	for _, name := range slices.Sorted(maps.Keys(a.Clients)) {
		cfg := a.Clients[name]
		if cfg == nil {
			return fmt.Errorf("client %q: empty definition", name)
		}
		c := clientauth.Client{Name: name, Accounts: cfg.Accounts, Paths: cfg.Paths, RawToken: cfg.RawToken, Admin: cfg.Admin}
		for i, k := range cfg.Keys {
			if !isPlaceholder(k) {
				return fmt.Errorf("client %q: key %d must be a placeholder such as {env.SHOP_KEY} or {file./run/secrets/shop-key}, never the key itself: the config is served by the admin API", name, i+1)
			}
			key, err := repl.ReplaceOrErr(k, true, true)
			if err != nil {
				return fmt.Errorf("client %q: key %s: %v (is the variable set, the file readable and not empty?)", name, k, err)
			}
			for acctName, h := range a.handles {
				if key == h.Account().Secret {
					return fmt.Errorf("client %q: key %d is the secret of account %q; give the client a key of its own, so that the secret stays in the gateway", name, i+1, acctName)
				}
			}
			for acctName, codec := range a.codecs {
				if key == codec.Token || key == codec.EncodingAESKey {
					return fmt.Errorf("client %q: key %d is the message token or encoding_aes_key of platform %q, which sign and decrypt its pushes; give the client a key of its own", name, i+1, acctName)
				}
			}
			c.Keys = append(c.Keys, key)
		}
		clients = append(clients, c)
	}
	clock := a.tokens.manager.Clock()
	auth, err := clientauth.New(clients, accounts, time.Duration(a.ClientTokenTTL), clock.Now)
	if err != nil {
		return err
	}
	a.auth = auth
	return nil
}
