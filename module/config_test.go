package caddywechat

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
)

// configEnv sets the environment the review configs resolve.
func configEnv(t *testing.T) {
	t.Helper()
	t.Setenv("XDG_DATA_HOME", t.TempDir())
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	t.Setenv("WX_SECRET", "supersecretvalue123")
	t.Setenv("WX_KEY", "clientkey-0123456789abcdef")
	t.Setenv("WX_TOK", "msgtoken")
	t.Setenv("WX_AES", "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG")
}

// validateCaddyfile adapts and validates a Caddyfile as `caddy validate
// --adapter caddyfile` does.
func validateCaddyfile(t *testing.T, src string) error {
	t.Helper()
	adapted, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(src), nil)
	if err != nil {
		return err
	}
	return validateJSON(t, string(adapted))
}

// validateJSON validates a JSON config as `caddy validate` does.
func validateJSON(t *testing.T, src string) error {
	t.Helper()
	var cfg caddy.Config
	if err := json.Unmarshal([]byte(src), &cfg); err != nil {
		t.Fatalf("config is not JSON: %v", err)
	}
	return caddy.Validate(&cfg)
}

func wantRefused(t *testing.T, err error, field string) {
	t.Helper()
	if err == nil {
		t.Errorf("config accepted; want an error naming %q", field)
		return
	}
	if !strings.Contains(err.Error(), field) {
		t.Errorf("error %q does not name %q", err, field)
	}
}

// mpConfig is a Caddyfile with account mp, the lines of app in the global
// wechat option after it, and site.
func mpConfig(app, site string) string {
	return `{
	wechat {
		account mp official {
			appid wx1234567890abcdef
			secret {env.WX_SECRET}
		}
` + app + `	}
}
` + site
}

// configClientsSite is a clients-mode site of account mp.
const configClientsSite = `
:8080 {
	wechat mp
}
`

const configTrustedSite = `
:8080 {
	wechat mp {
		trusted
	}
}
`

// An appid that no WeChat appid looks like (path separators, spaces, query
// characters) goes into storage keys (wechat/tokens/official/stable_token/<appid>)
// and token-endpoint queries; it must be refused, naming appid.
func TestConfigAppIDShape(t *testing.T) {
	configEnv(t)
	err := validateCaddyfile(t, `{
	wechat {
		account mp official {
			appid "../../../../tmp/evil x&y=1"
			secret {env.WX_SECRET}
		}
	}
}
`+configTrustedSite)
	wantRefused(t, err, "appid")
}

// Client paths that no call can ever match (the gateway refuses `..`, `%`
// and `;` in paths; a request path never holds `?`, `#` or a space) must
// be refused, naming paths.
func TestConfigClientPathsThatNeverMatch(t *testing.T) {
	configEnv(t)
	for _, p := range []string{"/cgi-bin/../sns/x", "/cgi-bin/menu/get?x=1", "/cgi-bin/%2e%2e/x", "/cgi-bin/a;b", "/cgi-bin/menu/get#f", "/cgi-bin/a b"} {
		t.Run(p, func(t *testing.T) {
			err := validateCaddyfile(t, mpConfig("\t\tclient a {\n\t\t\tkey {env.WX_KEY}\n\t\t\taccounts mp\n\t\t\tpaths \""+p+"\"\n\t\t}\n", configClientsSite))
			wantRefused(t, err, "paths")
		})
	}
}

// A client key equal to a third-party platform's encoding_aes_key hands the
// client the key that decrypts (and forges) the platform's pushes; like a key
// equal to the secret, it must be refused.
func TestConfigClientKeyIsAPlatformKey(t *testing.T) {
	configEnv(t)
	err := validateCaddyfile(t, `{
	wechat {
		account plat component {
			appid wx1111111111111111
			secret {env.WX_SECRET}
			token {env.WX_TOK}
			encoding_aes_key {env.WX_AES}
		}
		client a {
			key {env.WX_AES}
			accounts plat
		}
	}
}
:8080 {
	wechat plat
}
`)
	wantRefused(t, err, "key")
}

// A secret that only starts like a placeholder, a literal value after it,
// is no placeholder: the error must not repeat it.
func TestConfigSecretAfterPlaceholderNotEchoed(t *testing.T) {
	configEnv(t)
	err := validateCaddyfile(t, `{
	wechat {
		account mp official {
			appid wx1234567890abcdef
			secret "{env.WX_REVIEW_UNSET}hunter2literal}"
		}
	}
}
`+configTrustedSite)
	if err == nil {
		t.Fatal("config accepted")
	}
	if strings.Contains(err.Error(), "hunter2literal") {
		t.Errorf("error repeats the literal part of the secret: %v", err)
	}
}

// A callback route serves pushes, not API calls: kind, trusted and
// max_replay_body are refused there, not ignored.
func TestConfigCallbackTakesNoAPIOptions(t *testing.T) {
	configEnv(t)
	for _, opt := range []string{`"kind":"bogus"`, `"kind":"official"`, `"trusted":true`, `"max_replay_body":1024`} {
		err := validateJSON(t, `{"apps":{"wechat":{"accounts":{"plat":{"kind":"component","appid":"wx1111111111111111","secret":"{env.WX_SECRET}","token":"{env.WX_TOK}","encoding_aes_key":"{env.WX_AES}"}}},
"http":{"servers":{"s":{"listen":[":8080"],"routes":[{"handle":[{"handler":"wechat","account":"plat","callback":true,`+opt+`}]}]}}}}}`)
		wantRefused(t, err, "callback")
	}
}

// Durations no fetch or gateway token can live with: a 1ns fetch_timeout
// times out every token fetch; a 1ns client_token_ttl expires every gateway
// token as it is issued.
func TestConfigDurationsTooShort(t *testing.T) {
	configEnv(t)
	for _, opt := range []string{"fetch_timeout", "client_token_ttl"} {
		t.Run(opt, func(t *testing.T) {
			err := validateCaddyfile(t, mpConfig("\t\t"+opt+" 1ns\n", configTrustedSite))
			wantRefused(t, err, opt)
		})
	}
}

// A WeCom agentid is a number: anything else would end up in every
// agentConfig that jssdk_config signs.
func TestConfigAgentIDNumeric(t *testing.T) {
	configEnv(t)
	err := validateCaddyfile(t, `{
	wechat {
		account corp wecom {
			corpid ww1234567890abcdef
			secret {env.WX_SECRET}
			agent_id notanumber
		}
	}
}
:8080 {
	wechat corp {
		trusted
	}
}
`)
	wantRefused(t, err, "agent_id")
}

// The Caddyfile refuses agent_id on a non-WeCom account and token /
// encoding_aes_key on a non-component one; so does JSON (validate, the
// admin API), rather than ignore them.
func TestConfigJSONFieldsOfAnotherKind(t *testing.T) {
	configEnv(t)
	for field, extra := range map[string]string{
		"agent_id":         `"agent_id":"1000002"`,
		"token":            `"token":"{env.WX_TOK}"`,
		"encoding_aes_key": `"encoding_aes_key":"{env.WX_AES}"`,
	} {
		t.Run(field, func(t *testing.T) {
			err := validateJSON(t, `{"apps":{"wechat":{"accounts":{"mp":{"kind":"official","appid":"wx1234567890abcdef","secret":"{env.WX_SECRET}",`+extra+`}}},
"http":{"servers":{"s":{"listen":[":8080"],"routes":[{"handle":[{"handler":"wechat","account":"mp","trusted":true}]}]}}}}}`)
			wantRefused(t, err, field)
		})
	}
}

// An account name with a slash could not be addressed by the admin API
// (/wechat/accounts/{name}[/refresh|/resume] cuts the name at the first /):
// names are letters, digits, '.', '_' and '-'.
func TestConfigAccountName(t *testing.T) {
	configEnv(t)
	err := validateCaddyfile(t, `{
	wechat {
		account a/b official {
			appid wx1234567890abcdef
			secret {env.WX_SECRET}
		}
	}
}
:8080 {
	wechat a/b {
		trusted
	}
}
`)
	wantRefused(t, err, "account")
	for name, ok := range map[string]bool{"服务号": true, "mp-2.main_1": true, "a b": false, "a%2Fb": false, "": false, strings.Repeat("x", 65): false} {
		if validAccountName(name) != ok {
			t.Errorf("validAccountName(%q) = %v, want %v", name, !ok, ok)
		}
	}
}
