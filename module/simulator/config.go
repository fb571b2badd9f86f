package simulator

import (
	"fmt"
	"strings"
	"time"
)

// Account kinds.
const (
	// KindOfficial is an official account or mini program, served on
	// api.weixin.qq.com paths (/cgi-bin/token, /cgi-bin/stable_token, ...).
	KindOfficial = "official"
	// KindWeCom is a WeCom (企业微信) app, served on qyapi.weixin.qq.com paths
	// (/cgi-bin/gettoken, ...).
	KindWeCom = "wecom"
)

// Defaults applied by New to zero Config fields.
const (
	DefaultTokenTTL               = 7200 * time.Second
	DefaultOverlap                = 5 * time.Minute
	DefaultDailyTokenQuota        = 2000
	DefaultStableDailyQuota       = 500000
	DefaultForceRefreshDailyLimit = 20
	DefaultForceRefreshInterval   = 30 * time.Second
	DefaultStableForceGrace       = 5 * time.Minute
	DefaultStableRotation         = 5 * time.Minute
	DefaultControlPrefix          = "/_sim"
	DefaultLargeMediaSize         = 64 << 20
	DefaultMediaStoreLimit        = 256 << 20
	// Open platform (third-party platforms).
	DefaultComponentTicketInterval = 10 * time.Minute
	DefaultComponentTicketTTL      = 12 * time.Hour
	DefaultAuthorizerRefreshGrace  = 5 * time.Minute
)

// Account is one simulated WeChat account.
type Account struct {
	// Kind is KindOfficial (the default when empty) or KindWeCom.
	Kind string
	// AppID is the appid of an official account or mini program, or the
	// corpid of a WeCom app. Required.
	AppID string
	// Secret is the AppSecret (official) or the app's corpsecret (WeCom).
	// Required. It is never exposed in counters, errors or answers.
	Secret string
	// AgentID is the WeCom app's agentid (digits). Optional, but required to
	// tell apart several apps of the same corp. Must be empty for official
	// accounts. When set, /cgi-bin/message/send checks the body's agentid.
	AgentID string
	// DailyTokenQuota overrides Config.DailyTokenQuota for this account
	// (for example 200 for a test account). 0 keeps the Config value;
	// negative means unlimited.
	DailyTokenQuota int
	// Menu is the custom menu the account starts with: a JSON document in
	// the shape POST /cgi-bin/menu/create takes ({"button":[...]}), which
	// GET /cgi-bin/menu/get then serves until a client replaces it
	// (menu/create) or deletes it (menu/delete). New and Reconfigure check
	// it like menu/create does (1 to 3 buttons, names, types, sub buttons)
	// and also refuse unknown fields and trailing data. Only official
	// accounts have menus. A Reconfigure that changes Menu replaces the
	// account's current menu (removes it when Menu became empty); one that
	// keeps it leaves whatever the clients made of it. Default "": no menu,
	// menu/get answers 46003 "menu no exist" as for a new account.
	Menu string
}

// Label names the account in counters and the control API: the appid of an
// official account, the corpid of a WeCom app, or "corpid/agentid" when the
// WeCom app has an AgentID.
func (a Account) Label() string {
	if a.Kind == KindWeCom && a.AgentID != "" {
		return a.AppID + "/" + a.AgentID
	}
	return a.AppID
}

// Config configures a Simulator. The zero Config is valid: every zero field
// takes the default named in its comment. For the durations and quotas whose
// zero value means "default", a negative value means "none" (no overlap, no
// grace, unlimited quota, no spacing).
type Config struct {
	// Accounts are the simulated accounts. None is valid: every token call
	// then answers 40013 (unknown appid / corpid).
	Accounts []Account

	// TokenTTL is the lifetime of every access token, reported as expires_in
	// (whole seconds). Default 7200 s.
	TokenTTL time.Duration
	// Overlap is how long a /cgi-bin/token token keeps working after the
	// next call issued its successor; after it the old token answers 40001.
	// The open platform's component_access_token and authorizer access
	// tokens rotate with the same overlap. Default 5 min; negative: the old
	// token dies at once.
	Overlap time.Duration
	// DailyTokenQuota is the number of successful /cgi-bin/token calls (per
	// official account) and /cgi-bin/gettoken calls (per WeCom app) allowed
	// per day; past it they answer 45009. Default 2000; negative: unlimited.
	DailyTokenQuota int
	// StableDailyQuota is the number of successful /cgi-bin/stable_token calls
	// per account per day; past it they answer 45009. Default 500000;
	// negative: unlimited.
	StableDailyQuota int
	// ForceRefreshDailyLimit is the number of stable_token force refreshes
	// per account per day. Default 20; negative: unlimited.
	ForceRefreshDailyLimit int
	// ForceRefreshInterval is the minimum spacing of two stable_token force
	// refreshes of an account. Default 30 s; negative: no spacing.
	ForceRefreshInterval time.Duration
	// StableForceGrace is how long the previous stable token keeps working
	// after a force refresh ([unverified] in the reference). Default 5 min;
	// negative: it is invalidated at once.
	StableForceGrace time.Duration
	// StableRotation is the window before expiry in which a normal-mode
	// stable_token call rotates to the next token (the previous one keeps
	// working until it expires). Default 5 min, or half of TokenTTL when
	// that is shorter; when set it must be shorter than TokenTTL.
	StableRotation time.Duration
	// WeComEarlyInvalidation, when positive, makes every WeCom token stop
	// working this long after it was issued, although gettoken announced
	// the full TokenTTL: it then answers 42001 and gettoken issues a new
	// one. Default 0: off.
	WeComEarlyInvalidation time.Duration

	// ControlPrefix is the path prefix of the control API. Default "/_sim".
	ControlPrefix string
	// LargeMediaSize is the size in bytes of the well-known media id
	// LargeMediaID, generated on the fly. Default 64 MiB.
	LargeMediaSize int64
	// MediaStoreLimit caps the bytes of uploaded media kept in memory; the
	// oldest uploads are forgotten first. Default 256 MiB.
	MediaStoreLimit int64
	// EnforceAPIQuota makes business paths answer 45009 once an account
	// used its daily quota of that path (the daily_limit reported by
	// /cgi-bin/openapi/quota/get). Default false: quotas are only reported.
	EnforceAPIQuota bool

	// Components are the simulated third-party platforms of the open
	// platform (component API on api.weixin.qq.com). Default none.
	Components []Component
	// Authorizers are the official accounts and mini programs authorised
	// (or authorisable) to the Components. Default none.
	Authorizers []Authorizer
	// ComponentTicketInterval is how often, on the simulator's clock, a
	// component_verify_ticket is pushed to every Component's CallbackURL.
	// Default 10 min; negative: only on demand (PushComponentTicket).
	ComponentTicketInterval time.Duration
	// ComponentTicketTTL is how long a pushed component_verify_ticket is
	// accepted by api_component_token; past it the ticket answers 61005.
	// Default 12 h.
	ComponentTicketTTL time.Duration
	// AuthorizerRefreshGrace is how long the previous
	// authorizer_refresh_token keeps working after api_authorizer_token
	// rotated it; after it it answers 61023. Default 5 min; negative: it
	// dies at once.
	AuthorizerRefreshGrace time.Duration

	// Frozen starts the clock frozen (tests). Default false: the clock runs
	// with the real time.
	Frozen bool
	// Start is the initial clock time. Default: the real current time.
	Start time.Time
}

// Validate reports the first problem of c, naming the field, or nil when New
// would accept it.
func (c Config) Validate() error {
	_, err := c.normalize()
	return err
}

// normalize validates c and returns a copy with the defaults applied.
func (c Config) normalize() (Config, error) {
	if c.TokenTTL < 0 {
		return c, fmt.Errorf("simulator: Config.TokenTTL: must not be negative, got %v", c.TokenTTL)
	}
	if c.TokenTTL == 0 {
		c.TokenTTL = DefaultTokenTTL
	}
	if c.TokenTTL < time.Second {
		return c, fmt.Errorf("simulator: Config.TokenTTL: must be at least 1s, got %v", c.TokenTTL)
	}
	c.Overlap = orDefault(c.Overlap, DefaultOverlap)
	c.ForceRefreshInterval = orDefault(c.ForceRefreshInterval, DefaultForceRefreshInterval)
	c.StableForceGrace = orDefault(c.StableForceGrace, DefaultStableForceGrace)
	c.DailyTokenQuota = orDefaultInt(c.DailyTokenQuota, DefaultDailyTokenQuota)
	c.StableDailyQuota = orDefaultInt(c.StableDailyQuota, DefaultStableDailyQuota)
	c.ForceRefreshDailyLimit = orDefaultInt(c.ForceRefreshDailyLimit, DefaultForceRefreshDailyLimit)

	switch {
	case c.StableRotation < 0:
		return c, fmt.Errorf("simulator: Config.StableRotation: must not be negative, got %v", c.StableRotation)
	case c.StableRotation == 0:
		c.StableRotation = min(DefaultStableRotation, c.TokenTTL/2)
	case c.StableRotation >= c.TokenTTL:
		return c, fmt.Errorf("simulator: Config.StableRotation: must be shorter than TokenTTL (%v), got %v", c.TokenTTL, c.StableRotation)
	}
	if c.WeComEarlyInvalidation < 0 {
		return c, fmt.Errorf("simulator: Config.WeComEarlyInvalidation: must not be negative, got %v", c.WeComEarlyInvalidation)
	}

	if c.ControlPrefix == "" {
		c.ControlPrefix = DefaultControlPrefix
	}
	if err := checkControlPrefix(c.ControlPrefix); err != nil {
		return c, err
	}
	switch {
	case c.LargeMediaSize < 0:
		return c, fmt.Errorf("simulator: Config.LargeMediaSize: must not be negative, got %d", c.LargeMediaSize)
	case c.LargeMediaSize == 0:
		c.LargeMediaSize = DefaultLargeMediaSize
	}
	switch {
	case c.MediaStoreLimit < 0:
		return c, fmt.Errorf("simulator: Config.MediaStoreLimit: must not be negative, got %d", c.MediaStoreLimit)
	case c.MediaStoreLimit == 0:
		c.MediaStoreLimit = DefaultMediaStoreLimit
	}

	c.Accounts = append([]Account(nil), c.Accounts...)
	if err := checkAccounts(c.Accounts); err != nil {
		return c, err
	}
	if err := c.normalizeOpen(); err != nil {
		return c, err
	}
	return c, nil
}

func orDefault(d, def time.Duration) time.Duration {
	switch {
	case d == 0:
		return def
	case d < 0:
		return 0
	}
	return d
}

func orDefaultInt(n, def int) int {
	switch {
	case n == 0:
		return def
	case n < 0:
		return -1
	}
	return n
}

func checkControlPrefix(p string) error {
	bad := func(why string) error {
		return fmt.Errorf("simulator: Config.ControlPrefix: %q %s", p, why)
	}
	switch {
	case !strings.HasPrefix(p, "/"):
		return bad("must start with /")
	case len(p) < 2:
		return bad("must not be the root")
	case strings.HasSuffix(p, "/"):
		return bad("must not end with /")
	case strings.ContainsAny(p, "?#% \t\r\n"):
		return bad("must be a plain path")
	}
	for _, reserved := range []string{"/cgi-bin", "/sns", "/wxa"} {
		if p == reserved || strings.HasPrefix(p, reserved+"/") {
			return bad("collides with the WeChat paths under " + reserved)
		}
	}
	return nil
}

func checkAccounts(accounts []Account) error {
	labels := make(map[string]int, len(accounts))
	wecomApps := make(map[[2]string]int)
	for i := range accounts {
		a := &accounts[i]
		field := func(name string) string { return fmt.Sprintf("simulator: Config.Accounts[%d].%s", i, name) }
		switch a.Kind {
		case "":
			a.Kind = KindOfficial
		case KindOfficial, KindWeCom:
		default:
			return fmt.Errorf("%s: %q is not %q or %q", field("Kind"), a.Kind, KindOfficial, KindWeCom)
		}
		switch {
		case a.AppID == "":
			return fmt.Errorf("%s: empty", field("AppID"))
		case !isPlainID(a.AppID):
			return fmt.Errorf("%s: %q must be letters, digits, '_' or '-'", field("AppID"), a.AppID)
		case a.Secret == "":
			return fmt.Errorf("%s: empty (account %s)", field("Secret"), a.AppID)
		case strings.ContainsAny(a.Secret, " \t\r\n"):
			return fmt.Errorf("%s: contains white space (account %s)", field("Secret"), a.AppID)
		}
		if a.AgentID != "" {
			if a.Kind != KindWeCom {
				return fmt.Errorf("%s: only WeCom apps have an agentid (account %s)", field("AgentID"), a.AppID)
			}
			if !isDigits(a.AgentID) {
				return fmt.Errorf("%s: %q must be digits", field("AgentID"), a.AgentID)
			}
		}
		if a.Menu != "" {
			if a.Kind != KindOfficial {
				return fmt.Errorf("%s: only official accounts have menus (account %s)", field("Menu"), a.AppID)
			}
			if _, err := seededMenu(a.Menu); err != nil {
				return fmt.Errorf("%s: %w (account %s)", field("Menu"), err, a.AppID)
			}
		}
		if a.Kind == KindWeCom {
			key := [2]string{a.AppID, a.Secret}
			if j, dup := wecomApps[key]; dup {
				return fmt.Errorf("%s: same corpid and secret as Accounts[%d]", field("Secret"), j)
			}
			wecomApps[key] = i
		}
		label := a.Label()
		if j, dup := labels[label]; dup {
			if a.Kind == KindWeCom && accounts[j].Kind == KindWeCom {
				return fmt.Errorf("%s: required to tell apart the apps of corp %s (Accounts[%d] and [%d])", field("AgentID"), a.AppID, j, i)
			}
			return fmt.Errorf("%s: %q is also Accounts[%d]", field("AppID"), a.AppID, j)
		}
		labels[label] = i
	}
	return nil
}

func isPlainID(s string) bool {
	if len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

func isDigits(s string) bool {
	if s == "" || len(s) > 18 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
