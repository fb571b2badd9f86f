package token

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"slices"
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
	// Component is a third-party platform (open platform): its
	// component_appid and component_appsecret (api.weixin.qq.com).
	Component Kind = "component"
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
	// ComponentToken is a third-party platform's POST
	// /cgi-bin/component/api_component_token: every call issues a new
	// token, with the component_verify_ticket WeChat last pushed.
	ComponentToken Endpoint = "component_token"
	// AuthorizerToken is a third-party platform's POST
	// /cgi-bin/component/api_authorizer_token, which mints an authorizer's
	// token from its refresh token: an account of this endpoint is an
	// authorizer of its Parent, a component account.
	AuthorizerToken Endpoint = "authorizer_token"

	// The JS-SDK ticket endpoints, called with the account's token: an
	// account of one of these endpoints is a ticket of its Parent.

	// JSAPITicket is an official account's jsapi_ticket (GET
	// /cgi-bin/ticket/getticket?type=jsapi).
	JSAPITicket Endpoint = "jsapi"
	// CardTicket is an official account's wx_card ticket (type=wx_card).
	CardTicket Endpoint = "wx_card"
	// CorpTicket is a WeCom corp's jsapi_ticket (GET
	// /cgi-bin/get_jsapi_ticket), for wx.config.
	CorpTicket Endpoint = "corp_jsapi"
	// AgentTicket is a WeCom app's ticket for wx.agentConfig (GET
	// /cgi-bin/ticket/get?type=agent_config).
	AgentTicket Endpoint = "agent_config"
)

// Ticket reports whether e is a JS-SDK ticket endpoint.
func (e Endpoint) Ticket() bool {
	return e == JSAPITicket || e == CardTicket || e == CorpTicket || e == AgentTicket
}

// untilExpiry reports whether e hands out the same value until it expires
// (gettoken; the tickets, so far as WeChat says): such a value is used up to
// its expiry and refreshed then, since asking sooner brings it back.
func (e Endpoint) untilExpiry() bool { return e == GetToken || e.Ticket() }

// ticketKind is the account kind a ticket endpoint belongs to.
func (e Endpoint) ticketKind() Kind {
	if e == CorpTicket || e == AgentTicket {
		return WeCom
	}
	return Official
}

// Path returns the endpoint's URL path.
func (e Endpoint) Path() string {
	switch e {
	case StableToken:
		return "/cgi-bin/stable_token"
	case ClientCredential:
		return "/cgi-bin/token"
	case GetToken:
		return "/cgi-bin/gettoken"
	case ComponentToken:
		return "/cgi-bin/component/api_component_token"
	case AuthorizerToken:
		return "/cgi-bin/component/api_authorizer_token"
	case JSAPITicket, CardTicket:
		return "/cgi-bin/ticket/getticket"
	case CorpTicket:
		return "/cgi-bin/get_jsapi_ticket"
	case AgentTicket:
		return "/cgi-bin/ticket/get"
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

	// MaxMargin bounds refresh_margin: a margin near a token's 2 h life
	// would refresh every few seconds and spend the day's budget.
	MaxMargin = time.Hour
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
	// Kind is Official, WeCom or Component.
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
	// VerifyTicket is, for a ComponentToken fetch, the
	// component_verify_ticket it sends: the Manager sets it per call.
	VerifyTicket string
	// Parent, for a ticket Endpoint, is the account whose token fetches the
	// ticket. Kind, AppID, Secret and BaseURL then default to the parent's.
	// For AuthorizerToken, it is the component account; AppID is the
	// authorizer's, and Kind is Official.
	Parent *Handle
}

// kinds are, by kind, the token endpoints an account may use (the first
// is the default), what an error says of another, and the default BaseURL.
var kinds = map[Kind]struct {
	endpoints     []Endpoint
	otherEndpoint string
	baseURL       string
}{
	Official:  {[]Endpoint{StableToken, ClientCredential}, " is not one of stable_token, token", DefaultOfficialBaseURL},
	Component: {[]Endpoint{ComponentToken}, ": third-party platforms use component_token", DefaultOfficialBaseURL},
	WeCom:     {[]Endpoint{GetToken}, ": WeCom accounts use gettoken", DefaultWeComBaseURL},
}

// withDefaults returns a copy of a with defaults filled in, or an error
// naming the first bad field.
func (a Account) withDefaults() (Account, error) {
	if a.Name == "" {
		return a, errors.New("account: name is required")
	}
	if a.Endpoint.Ticket() || a.Endpoint == AuthorizerToken {
		return a.childDefaults()
	}
	if a.Parent != nil {
		return a, fmt.Errorf("account %q: only a ticket or an authorizer has a parent account", a.Name)
	}
	k, ok := kinds[a.Kind]
	if !ok {
		return a, fmt.Errorf("account %q: kind %q is not one of official, wecom, component", a.Name, a.Kind)
	}
	if a.Endpoint == "" {
		a.Endpoint = k.endpoints[0]
	}
	if !slices.Contains(k.endpoints, a.Endpoint) {
		return a, fmt.Errorf("account %q: token_endpoint %q%s", a.Name, a.Endpoint, k.otherEndpoint)
	}
	if a.BaseURL == "" {
		a.BaseURL = k.baseURL
	}
	if u, err := url.Parse(a.BaseURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return a, fmt.Errorf("account %q: api_base %q is not an http:// or https:// URL with a host and no query (such as https://api.weixin.qq.com)", a.Name, a.BaseURL)
	}
	if a.AppID == "" {
		return a, fmt.Errorf("account %q: appid is required", a.Name)
	}
	if !ValidAppID(a.AppID) {
		return a, fmt.Errorf("account %q: appid (or corpid) is not one: WeChat's are up to 64 letters, digits, '_' or '-', such as wx1234567890abcdef", a.Name)
	}
	if a.Secret == "" {
		return a, fmt.Errorf("account %q: secret is required", a.Name)
	}
	if a.Margin < 0 || a.Margin >= MaxMargin {
		return a, fmt.Errorf("account %q: refresh_margin must be at least 0 and less than %v: it is how long before a token expires (WeChat's live 2h) that a new one is fetched, not how often", a.Name, MaxMargin)
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

// childDefaults fills a ticket or authorizer account in from its parent.
func (a Account) childDefaults() (Account, error) {
	if a.Parent == nil {
		return a, fmt.Errorf("account %q: a %s account needs the account whose token fetches it", a.Name, a.Endpoint)
	}
	p := a.Parent.Account()
	if a.Endpoint == AuthorizerToken {
		if p.Kind != Component || p.Endpoint != ComponentToken {
			return a, fmt.Errorf("account %q: an authorizer needs a component account, and %q is %s", a.Name, p.Name, p.Kind)
		}
		if !ValidAppID(a.AppID) {
			return a, fmt.Errorf("account %q: the authorizer's appid %q is not an appid", a.Name, a.AppID)
		}
		a.Kind, a.Secret = Official, p.Secret
	} else {
		if p.Kind != a.Endpoint.ticketKind() {
			return a, fmt.Errorf("account %q: a %s ticket is for %s accounts, and %q is %s", a.Name, a.Endpoint, a.Endpoint.ticketKind(), p.Name, p.Kind)
		}
		a.Kind, a.AppID, a.Secret = p.Kind, p.AppID, p.Secret
	}
	if a.BaseURL == "" {
		a.BaseURL = p.BaseURL
	}
	if a.Margin < 0 || a.DailyBudget < 0 {
		return a, fmt.Errorf("account %q: refresh_margin and daily_budget must not be negative", a.Name)
	}
	if a.Margin == 0 {
		a.Margin = DefaultMargin
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
	if a.Endpoint == AuthorizerToken {
		return authorizerKey(a.Parent.Account().AppID, a.AppID)
	}
	switch a.Kind {
	case WeCom:
		sum := sha256.Sum256([]byte(a.AppID + "\x00" + a.Secret))
		key := "wecom/" + a.AppID + "/" + hex.EncodeToString(sum[:8])
		if a.Endpoint.Ticket() {
			key += "/" + string(a.Endpoint)
		}
		return key
	case Component:
		return "component/" + a.AppID
	default:
		return "official/" + string(a.Endpoint) + "/" + a.AppID
	}
}
