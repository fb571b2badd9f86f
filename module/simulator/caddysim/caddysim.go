package caddysim

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/wxgate/caddy-wechat/module/simulator"
)

func init() {
	caddy.RegisterModule(Simulator{})
}

// Simulator is the `http.handlers.wechat_simulator` handler: a local,
// faithful stand-in for api.weixin.qq.com and qyapi.weixin.qq.com (tokens,
// business APIs, media, quotas, injectable faults, a controllable clock) plus
// its control API, for offline development and tests. It answers every
// request itself and never calls the next handler.
//
// Its state (tokens, quotas, media, counters, faults and the clock) lives in
// a process-wide simulator named Name, so it survives `caddy reload`: a
// reload applies the new settings to the running simulator. Every instance
// with the same Name shares one simulator, configured by the last one
// provisioned.
type Simulator struct {
	// Name identifies the simulator state across reloads. Default "default".
	Name string `json:"name,omitempty"`

	// Accounts are the simulated accounts. None is valid: token calls then
	// answer 40013 (unknown appid).
	Accounts []SimulatorAccount `json:"accounts,omitempty"`

	// TokenTTL is the lifetime of every access token (expires_in). Default
	// 2h (7200 s).
	TokenTTL caddy.Duration `json:"token_ttl,omitempty"`

	// Overlap is how long a /cgi-bin/token token keeps working after the
	// next call replaced it. Default 5m; negative (`off`) means none.
	Overlap caddy.Duration `json:"overlap,omitempty"`

	// DailyTokenQuota is the number of /cgi-bin/token calls per official
	// account, and gettoken calls per WeCom app, allowed per day (midnight
	// UTC+8); past it they answer 45009. Default 2000; -1 means unlimited.
	DailyTokenQuota int `json:"daily_token_quota,omitempty"`

	// StableDailyQuota is the number of stable_token calls per account per
	// day. Default 500000; -1 means unlimited.
	StableDailyQuota int `json:"stable_daily_quota,omitempty"`

	// ForceRefreshDailyLimit is the number of stable_token force refreshes
	// per account per day. Default 20; -1 means unlimited.
	ForceRefreshDailyLimit int `json:"force_refresh_daily_limit,omitempty"`

	// ForceRefreshInterval is the minimum spacing of two force refreshes.
	// Default 30s; negative (`off`) means none.
	ForceRefreshInterval caddy.Duration `json:"force_refresh_interval,omitempty"`

	// StableForceGrace is how long the previous stable token keeps working
	// after a force refresh. Default 5m; negative (`off`) means it dies at
	// once.
	StableForceGrace caddy.Duration `json:"stable_force_grace,omitempty"`

	// StableRotation is the window before expiry in which stable_token hands
	// out the next token. Default 5m (half of token_ttl when that is
	// shorter).
	StableRotation caddy.Duration `json:"stable_rotation,omitempty"`

	// WeComEarlyInvalidation, when positive, makes WeCom tokens stop
	// working (42001) this long after they were issued, before the
	// expires_in they announced. Default: off (0 or negative).
	WeComEarlyInvalidation caddy.Duration `json:"wecom_early_invalidation,omitempty"`

	// ControlPrefix is the path prefix of the control API. Default "/_sim".
	ControlPrefix string `json:"control_prefix,omitempty"`

	// LargeMediaSize is the size in bytes of the generated media id "large".
	// Default 64 MiB.
	LargeMediaSize int64 `json:"large_media_size,omitempty"`

	// MediaStoreLimit caps the bytes of uploaded media kept in memory.
	// Default 256 MiB.
	MediaStoreLimit int64 `json:"media_store_limit,omitempty"`

	// EnforceAPIQuota makes business paths answer 45009 past their daily
	// quota. Default false (quotas are only reported).
	EnforceAPIQuota bool `json:"enforce_api_quota,omitempty"`

	// Frozen starts the clock frozen: simulated time only moves through the
	// control API. Default false (the clock runs).
	Frozen bool `json:"frozen,omitempty"`

	// Components are the simulated third-party platforms of the open
	// platform, with their authorizers. Default none.
	Components []SimulatorComponent `json:"components,omitempty"`

	// ComponentTicketInterval is how often a component_verify_ticket is
	// pushed to every component's callback_url. Default 10m; negative
	// (`off`) means only on demand (POST {control_prefix}/component/ticket).
	ComponentTicketInterval caddy.Duration `json:"component_ticket_interval,omitempty"`

	// ComponentTicketTTL is how long a pushed ticket is accepted. Default
	// 12h.
	ComponentTicketTTL caddy.Duration `json:"component_ticket_ttl,omitempty"`

	// AuthorizerRefreshGrace is how long the previous
	// authorizer_refresh_token works after a rotation. Default 5m; negative
	// (`off`) means none.
	AuthorizerRefreshGrace caddy.Duration `json:"authorizer_refresh_grace,omitempty"`

	sim     *simulator.Simulator
	poolKey string // set once a pool reference is held
	logger  *zap.Logger
}

// SimulatorAccount is one simulated account.
type SimulatorAccount struct {
	// Kind is `official` (an official account or mini program; the default)
	// or `wecom` (one WeCom app).
	Kind string `json:"kind,omitempty"`

	// AppID is the appid, or the corpid of a WeCom app. Required.
	AppID string `json:"appid"`

	// Secret is the AppSecret or the WeCom app's secret. Placeholders such
	// as {env.SIM_SECRET} are resolved at provisioning. Required.
	Secret string `json:"secret"`

	// AgentID is the WeCom app's agentid. Optional; required to tell apart
	// several apps of one corp.
	AgentID string `json:"agent_id,omitempty"`

	// DailyTokenQuota overrides the simulator's daily_token_quota for this
	// account (200 imitates a test account). Default: the simulator's.
	DailyTokenQuota int `json:"daily_token_quota,omitempty"`

	// Menu is the custom menu an official account starts with: a JSON
	// document in the shape /cgi-bin/menu/create takes ({"button":[...]}),
	// served by /cgi-bin/menu/get until a client replaces or deletes it.
	// A value that is not itself JSON is resolved as placeholders at
	// provisioning, so {file.examples/demo-menu.json} reads a file. It is
	// checked like menu/create checks a menu. A reload that changes it
	// replaces the current menu. Default: none (menu/get answers 46003).
	Menu string `json:"menu,omitempty"`
}

// simulatorEntry is a simulator held in simulatorPool.
type simulatorEntry struct{ sim *simulator.Simulator }

// Destruct implements caddy.Destructor: it stops the simulator's ticket
// timer; the simulator holds no other resources beyond memory.
func (e *simulatorEntry) Destruct() error { return e.sim.Close() }

// simulatorPool keeps simulators by name across config reloads.
var simulatorPool = caddy.NewUsagePool()

// defaultSimulatorName is the Name of an unnamed simulator.
const defaultSimulatorName = "default"

// CaddyModule returns the Caddy module information.
func (Simulator) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.wechat_simulator",
		New: func() caddy.Module { return new(Simulator) },
	}
}

// Provision resolves the placeholders of the account credentials and
// menus, then creates the named simulator or reconfigures the one that
// survived a reload.
func (s *Simulator) Provision(ctx caddy.Context) error {
	s.logger = ctx.Logger()
	name := s.Name
	if name == "" {
		name = defaultSimulatorName
	}
	cfg, err := s.simulatorConfig(caddy.NewReplacer())
	if err != nil {
		return fmt.Errorf("wechat_simulator %s: %w", name, err)
	}
	val, loaded, err := simulatorPool.LoadOrNew(name, func() (caddy.Destructor, error) {
		sim, err := simulator.New(cfg)
		if err != nil {
			return nil, err
		}
		return &simulatorEntry{sim: sim}, nil
	})
	if err != nil {
		return fmt.Errorf("wechat_simulator %s: %w", name, err)
	}
	s.poolKey = name // Cleanup releases the reference from here on
	s.sim = val.(*simulatorEntry).sim
	if loaded {
		if err := s.sim.Reconfigure(cfg); err != nil {
			return fmt.Errorf("wechat_simulator %s: %w", name, err)
		}
	}
	s.logger.Info("wechat simulator ready",
		zap.String("name", name),
		zap.Int("accounts", len(cfg.Accounts)),
		zap.String("control_prefix", s.sim.ControlPrefix()),
		zap.Bool("kept_state", loaded))
	return nil
}

// simulatorConfig builds the simulator configuration, resolving the
// placeholders of appids, secrets and menus with repl.
func (s *Simulator) simulatorConfig(repl *caddy.Replacer) (simulator.Config, error) {
	cfg := simulator.Config{
		TokenTTL:               time.Duration(s.TokenTTL),
		DailyTokenQuota:        s.DailyTokenQuota,
		StableDailyQuota:       s.StableDailyQuota,
		ForceRefreshDailyLimit: s.ForceRefreshDailyLimit,
		StableRotation:         time.Duration(s.StableRotation),
		WeComEarlyInvalidation: max(0, time.Duration(s.WeComEarlyInvalidation)), // off is its default
		ControlPrefix:          s.ControlPrefix,
		LargeMediaSize:         s.LargeMediaSize,
		MediaStoreLimit:        s.MediaStoreLimit,
		EnforceAPIQuota:        s.EnforceAPIQuota,
		Frozen:                 s.Frozen,
		Overlap:                time.Duration(s.Overlap),
		ForceRefreshInterval:   time.Duration(s.ForceRefreshInterval),
		StableForceGrace:       time.Duration(s.StableForceGrace),
	}
	for i, a := range s.Accounts {
		kind := a.Kind
		if kind == "" {
			kind = simulator.KindOfficial
		}
		appid := repl.ReplaceKnown(a.AppID, "")
		secret := repl.ReplaceKnown(a.Secret, "")
		where := fmt.Sprintf("accounts[%d] (%s %s)", i, kind, appid)
		switch {
		case appid == "":
			return cfg, fmt.Errorf("accounts[%d]: appid is empty (placeholders resolved)", i)
		case secret == "" && a.Secret != "":
			return cfg, fmt.Errorf("%s: secret %s resolved to an empty string", where, a.Secret)
		case secret == "":
			return cfg, fmt.Errorf("%s: secret is empty", where)
		}
		menu, err := resolveSimMenu(repl, a.Menu)
		if err != nil {
			return cfg, fmt.Errorf("%s: %w", where, err)
		}
		cfg.Accounts = append(cfg.Accounts, simulator.Account{
			Kind:            kind,
			AppID:           appid,
			Secret:          secret,
			AgentID:         a.AgentID,
			DailyTokenQuota: a.DailyTokenQuota,
			Menu:            menu,
		})
	}
	if err := s.openConfig(repl, &cfg); err != nil {
		return cfg, err
	}
	if err := cfg.Validate(); err != nil {
		return cfg, err
	}
	return cfg, nil
}

// resolveSimMenu returns the menu document of an account: menu itself when
// it is already JSON (its braces are not placeholders), else menu with its
// placeholders resolved, such as {file.menu.json} or {env.SIM_MENU}.
func resolveSimMenu(repl *caddy.Replacer, menu string) (string, error) {
	trimmed := strings.TrimSpace(menu)
	if trimmed == "" || json.Valid([]byte(trimmed)) {
		return trimmed, nil
	}
	resolved := strings.TrimSpace(repl.ReplaceKnown(menu, ""))
	if resolved == "" {
		return "", fmt.Errorf("menu %s resolved to an empty string", menu)
	}
	return resolved, nil
}

// ServeHTTP answers the request like WeChat would. It is terminal: next is
// never called.
func (s *Simulator) ServeHTTP(w http.ResponseWriter, r *http.Request, _ caddyhttp.Handler) error {
	s.sim.ServeHTTP(w, r)
	return nil
}

// Cleanup releases this instance's reference to the named simulator; the
// simulator is dropped when no loaded config uses it any more.
func (s *Simulator) Cleanup() error {
	if s.poolKey == "" {
		return nil
	}
	key := s.poolKey
	s.poolKey = ""
	_, err := simulatorPool.Delete(key)
	return err
}

// Interface guards
var (
	_ caddy.Module                = (*Simulator)(nil)
	_ caddy.Provisioner           = (*Simulator)(nil)
	_ caddy.CleanerUpper          = (*Simulator)(nil)
	_ caddyhttp.MiddlewareHandler = (*Simulator)(nil)
	_ caddy.Destructor            = (*simulatorEntry)(nil)
)
