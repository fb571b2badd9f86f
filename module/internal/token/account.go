package token

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"time"
)

// Kind is the kind of a WeChat account.
type Kind string

const (
	// Official is an official account or a mini program (api.weixin.qq.com).
	Official Kind = "official"
	// WeCom is one WeCom (企业微信) application: a corpid and that
	// application's secret (qyapi.weixin.qq.com).
	WeCom Kind = "wecom"
)

// Endpoint is the token endpoint an account fetches its tokens from.
type Endpoint string

const (
	// StableToken is POST /cgi-bin/stable_token, the default for official
	// accounts: isolated from /cgi-bin/token, so the gateway does not
	// invalidate the tokens of other systems nor they its own.
	StableToken Endpoint = "stable_token"
	// ClientCredential is GET /cgi-bin/token: every call issues a new token
	// and invalidates the previous one after about 5 minutes.
	ClientCredential Endpoint = "token"
	// GetToken is WeCom's GET /cgi-bin/gettoken.
	GetToken Endpoint = "gettoken"
)

// Path returns the endpoint's URL path.
func (e Endpoint) Path() string {
	switch e {
	case StableToken:
		return "/cgi-bin/stable_token"
	case ClientCredential:
		return "/cgi-bin/token"
	case GetToken:
		return "/cgi-bin/gettoken"
	}
	return ""
}

// Defaults of an Account's optional fields.
const (
	DefaultOfficialBaseURL = "https://api.weixin.qq.com"
	DefaultWeComBaseURL    = "https://qyapi.weixin.qq.com"
	// DefaultStableMargin is how long before expiry a stable_token account
	// refreshes: inside the platform's last-300-s rotation window (where a
	// normal-mode call returns the next token) with a minute to spare.
	DefaultStableMargin = 4 * time.Minute
	// DefaultMargin is how long before expiry a /cgi-bin/token account
	// refreshes: room for several retries (backoff 1 s to 2 min) should
	// WeChat fail, while a token still serves 1 h 55 min, so that a day
	// takes 13 fetches, one over the physical minimum of 12.
	DefaultMargin = 5 * time.Minute
	// DefaultDailyBudget is how many token-endpoint calls an account may
	// make per WeChat day (midnight to midnight, UTC+8): half the platform's
	// 2000 for /cgi-bin/token, so a runaway never exhausts the quota that
	// other systems share.
	DefaultDailyBudget = 1000
)

// Account is one WeChat credential whose tokens the Manager keeps.
type Account struct {
	// Name is what the configuration calls the account; it appears in logs
	// and errors.
	Name string
	// Kind is Official or WeCom.
	Kind Kind
	// AppID is the appid of an official account, or the corpid of WeCom.
	AppID string
	// Secret is the AppSecret, or the WeCom application's secret. It is sent
	// to the token endpoint only, never logged or stored.
	Secret string
	// Endpoint is the token endpoint. Default: StableToken for Official,
	// GetToken for WeCom.
	Endpoint Endpoint
	// BaseURL is where the token endpoint lives. Default:
	// https://api.weixin.qq.com (Official), https://qyapi.weixin.qq.com (WeCom).
	BaseURL string
	// Margin is how long before its expiry a token in use is refreshed in
	// the background. Default: DefaultStableMargin for StableToken,
	// DefaultMargin otherwise. WeCom (GetToken) tokens are refreshed when
	// they expire, whatever the margin: gettoken hands out the same token
	// until then.
	Margin time.Duration
	// DailyBudget caps the token-endpoint calls per WeChat day. Default:
	// DefaultDailyBudget.
	DailyBudget int
}

// withDefaults returns a copy of a with defaults filled in, or an error
// naming the first bad field.
func (a Account) withDefaults() (Account, error) {
	if a.Name == "" {
		return a, errors.New("account: name is required")
	}
	switch a.Kind {
	case Official:
		if a.Endpoint == "" {
			a.Endpoint = StableToken
		}
		if a.Endpoint != StableToken && a.Endpoint != ClientCredential {
			return a, fmt.Errorf("account %q: token_endpoint %q is not one of stable_token, token", a.Name, a.Endpoint)
		}
		if a.BaseURL == "" {
			a.BaseURL = DefaultOfficialBaseURL
		}
	case WeCom:
		if a.Endpoint == "" {
			a.Endpoint = GetToken
		}
		if a.Endpoint != GetToken {
			return a, fmt.Errorf("account %q: token_endpoint %q: WeCom accounts use gettoken", a.Name, a.Endpoint)
		}
		if a.BaseURL == "" {
			a.BaseURL = DefaultWeComBaseURL
		}
	default:
		return a, fmt.Errorf("account %q: kind %q is not one of official, wecom", a.Name, a.Kind)
	}
	if a.AppID == "" {
		return a, fmt.Errorf("account %q: appid is required", a.Name)
	}
	if a.Secret == "" {
		return a, fmt.Errorf("account %q: secret is required", a.Name)
	}
	if a.Margin < 0 {
		return a, fmt.Errorf("account %q: refresh_margin must not be negative", a.Name)
	}
	if a.Margin == 0 {
		a.Margin = DefaultMargin
		if a.Endpoint == StableToken {
			a.Margin = DefaultStableMargin
		}
	}
	if a.DailyBudget < 0 {
		return a, fmt.Errorf("account %q: daily_budget must not be negative", a.Name)
	}
	if a.DailyBudget == 0 {
		a.DailyBudget = DefaultDailyBudget
	}
	return a, nil
}

// Key identifies the token an account holds: its kind, token family and
// appid, and for WeCom a digest of the secret, because every WeCom
// application has its own token under the same corpid. It holds no secret
// and is safe to log and to use as a storage key.
func (a *Account) Key() string {
	switch a.Kind {
	case WeCom:
		sum := sha256.Sum256([]byte(a.AppID + "\x00" + a.Secret))
		return "wecom/" + a.AppID + "/" + hex.EncodeToString(sum[:8])
	default:
		return "official/" + string(a.Endpoint) + "/" + a.AppID
	}
}
