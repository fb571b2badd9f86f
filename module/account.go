package caddywechat

import (
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/caddyserver/caddy/v2"

	"github.com/wxgate/caddy-wechat/module/internal/msgcrypt"
	"github.com/wxgate/caddy-wechat/module/internal/token"
)

// Account is one WeChat credential the gateway holds tokens for.
type Account struct {
	// Kind is `official` (an official account or a mini program), `wecom`
	// (one WeCom application: a corpid and that application's secret) or
	// `component` (a third-party platform: its component_appid and
	// component_appsecret). Required.
	Kind string `json:"kind"`

	// AppID is the official account's appid, or the WeCom corpid. Required.
	AppID string `json:"appid"`

	// Secret is the AppSecret, or the WeCom application's secret. It must be
	// a placeholder, {env.NAME} or {file./path}, so that the secret never
	// stands in the config (which the admin API serves); it is resolved when
	// the config loads. Required.
	Secret string `json:"secret"`

	// TokenEndpoint is where tokens come from: `stable_token` (POST
	// /cgi-bin/stable_token, isolated from systems that still call
	// /cgi-bin/token for the same appid) or `token` (GET /cgi-bin/token,
	// where every fetch invalidates the previous token after about 5
	// minutes) for official accounts; WeCom always uses `gettoken`.
	// Default: stable_token for official, gettoken for wecom.
	TokenEndpoint string `json:"token_endpoint,omitempty"`

	// APIBase is the base URL the gateway fetches tokens from. Default:
	// https://api.weixin.qq.com for official, https://qyapi.weixin.qq.com for
	// wecom. Point it at the bundled simulator for offline use.
	APIBase string `json:"api_base,omitempty"`

	// RefreshMargin is how long before expiry a token in use is refreshed in
	// the background, so that no request waits for it. Default: 4m for
	// stable_token (inside the platform's last-300-s rotation window), 5m
	// for token. WeCom tokens are refreshed when they expire, whatever the
	// margin: gettoken hands out the same token until then.
	RefreshMargin caddy.Duration `json:"refresh_margin,omitempty"`

	// Token is a third-party platform's message token, which signs the
	// pushes WeChat sends to its callback. A placeholder, like Secret.
	// Required for `component`.
	Token string `json:"token,omitempty"`

	// EncodingAESKey is a third-party platform's 43-character message
	// encryption key. A placeholder, like Secret. Required for `component`.
	EncodingAESKey string `json:"encoding_aes_key,omitempty"`

	// AgentID is the agentid of a WeCom application. It is optional: the
	// gateway's /wechat-gateway/jssdk_config puts it in the agentConfig it
	// signs, for pages that call wx.agentConfig. Default: none.
	AgentID string `json:"agent_id,omitempty"`

	// DailyBudget caps the token-endpoint calls the gateway makes for this
	// account per WeChat day (midnight to midnight, UTC+8), below the
	// platform's 2000 so that a fault never exhausts the quota other systems
	// share. Default: 1000.
	DailyBudget int `json:"daily_budget,omitempty"`
}

// isPlaceholder reports whether s is a single {env.…} or {file.…}
// placeholder: anything else in braces may be the value itself, which an
// error must not repeat.
func isPlaceholder(s string) bool {
	return (strings.HasPrefix(s, "{env.") || strings.HasPrefix(s, "{file.")) && s[len(s)-1] == '}' &&
		strings.Count(s, "{") == 1 && strings.Count(s, "}") == 1
}

// checkFields refuses what the config of an account of another kind has:
// the Caddyfile cannot say it, JSON can.
func (a Account) checkFields(name string) error {
	switch {
	case a.AgentID != "" && a.Kind != string(token.WeCom):
		return fmt.Errorf("account %q: agent_id: only WeCom applications have an agentid", name)
	case a.AgentID != "" && strings.Trim(a.AgentID, "0123456789") != "":
		return fmt.Errorf("account %q: agent_id must be the application's numeric agentid, such as 1000002", name)
	case (a.Token != "" || a.EncodingAESKey != "") && a.Kind != string(token.Component):
		return fmt.Errorf("account %q: token and encoding_aes_key: only third-party platforms (kind component) have them", name)
	}
	return nil
}

// validAccountName reports whether name can name an account: in admin API
// paths (/wechat/accounts/<name>/refresh), ticket names (<name>/jsapi),
// metrics labels, logs and shell commands. Letters of any script (a
// 服务号 is a fine name), digits, '.', '_' and '-'; up to 64 bytes.
func validAccountName(name string) bool {
	if name == "" || len(name) > 64 || !utf8.ValidString(name) {
		return false
	}
	for _, r := range name {
		if !unicode.IsLetter(r) && !unicode.IsDigit(r) && r != '.' && r != '_' && r != '-' {
			return false
		}
	}
	return true
}

// resolve turns the config into a token.Account, resolving the secret's
// placeholder. Errors name the account and the field.
func (a Account) resolve(name string, repl *caddy.Replacer) (token.Account, error) {
	if !validAccountName(name) {
		return token.Account{}, fmt.Errorf("account %q: a name is letters (of any script), digits, '.', '_' or '-', up to 64 bytes", name)
	}
	if a.Kind == "" {
		return token.Account{}, fmt.Errorf("account %q: kind is required (official, wecom or component)", name)
	}
	if err := a.checkFields(name); err != nil {
		return token.Account{}, err
	}
	if a.Secret == "" {
		return token.Account{}, fmt.Errorf("account %q: secret is required", name)
	}
	if !isPlaceholder(a.Secret) {
		return token.Account{}, fmt.Errorf("account %q: secret must be a placeholder such as {env.WECHAT_SECRET} or {file./run/secrets/wechat}, never the secret itself: the config is served by the admin API", name)
	}
	secret, err := repl.ReplaceOrErr(a.Secret, true, true)
	if err != nil {
		return token.Account{}, fmt.Errorf("account %q: secret %s: %v (is the variable set, the file readable and not empty?)", name, a.Secret, err)
	}
	return token.Account{
		Name:        name,
		Kind:        token.Kind(a.Kind),
		AppID:       a.AppID,
		Secret:      secret,
		Endpoint:    token.Endpoint(a.TokenEndpoint),
		BaseURL:     a.APIBase,
		Margin:      time.Duration(a.RefreshMargin),
		DailyBudget: a.DailyBudget,
	}, nil
}

// callbackCodec resolves a component account's message token and
// EncodingAESKey, which check and decrypt the pushes to its callback.
func (a Account) callbackCodec(name string, repl *caddy.Replacer) (msgcrypt.Codec, error) {
	var c msgcrypt.Codec
	for _, f := range []struct {
		field, value string
		into         *string
	}{{"token", a.Token, &c.Token}, {"encoding_aes_key", a.EncodingAESKey, &c.EncodingAESKey}} {
		if f.value == "" {
			return c, fmt.Errorf("account %q: %s is required for a third-party platform", name, f.field)
		}
		if !isPlaceholder(f.value) {
			return c, fmt.Errorf("account %q: %s must be a placeholder such as {env.WECHAT_COMPONENT_%s}, never the value itself", name, f.field, strings.ToUpper(f.field))
		}
		v, err := repl.ReplaceOrErr(f.value, true, true)
		if err != nil {
			return c, fmt.Errorf("account %q: %s %s: %v", name, f.field, f.value, err)
		}
		*f.into = v
	}
	if err := msgcrypt.CheckKey(c.EncodingAESKey); err != nil {
		return c, fmt.Errorf("account %q: encoding_aes_key: %v", name, err)
	}
	c.AppID = a.AppID
	return c, nil
}
