package simulator

import (
	"sync"
	"sync/atomic"
)

// account is the live state of one configured Account.
type account struct {
	Account
	label string
	wecom bool
	// removed is set when a Reconfigure dropped the account: its tokens then
	// answer like unknown tokens.
	removed atomic.Bool
	// tokenQuota is the effective daily quota of /cgi-bin/token or gettoken
	// (-1: unlimited).
	tokenQuota atomic.Int64

	counts accountCounts

	// Daily counters, changed under mu.
	tokenDay  dayCounter // successful /cgi-bin/token or gettoken calls
	stableDay dayCounter // successful stable_token calls
	forceDay  dayCounter // performed force refreshes
	// usage counts today's calls per business route (indexed by route.index),
	// reported by /cgi-bin/openapi/quota/get.
	usage []dayCounter
	// menu is the /cgi-bin/menu/get answer, nil when there is no menu
	// (none seeded by Account.Menu, or deleted).
	menu atomic.Pointer[[]byte]

	mu         sync.Mutex    // guards the fields below
	tokenCur   *token        // latest /cgi-bin/token token
	stableCur  *token        // current stable token
	stablePrev *token        // stable token rotated out, still valid until it expires
	wecomCur   *token        // current gettoken token
	lastForce  int64         // unix nanoseconds of the last force refresh, 0: none
	clears     monthlyClears // clear_quota calls this month
	// logins counts mini-program logins per openid in loginMinute.
	logins      map[string]int
	loginMinute int64
	usedCodes   map[string]int64
}

// accountCounts are the per-account counters of Counters.
type accountCounts struct {
	token        atomic.Int64
	stable       atomic.Int64
	stableNew    atomic.Int64
	gettoken     atomic.Int64
	wecomNew     atomic.Int64
	force        atomic.Int64
	forceRefused atomic.Int64
	user         atomic.Int64
	sessions     atomic.Int64
	invalidated  atomic.Int64
}

func (c *accountCounts) reset() {
	for _, n := range []*atomic.Int64{&c.token, &c.stable, &c.stableNew, &c.gettoken, &c.wecomNew,
		&c.force, &c.forceRefused, &c.user, &c.sessions, &c.invalidated} {
		n.Store(0)
	}
}

func newAccount(a Account, routes int) *account {
	acct := &account{
		Account: a,
		label:   a.Label(),
		wecom:   a.Kind == KindWeCom,
		usage:   make([]dayCounter, routes),
	}
	acct.seedMenu()
	return acct
}

// seedMenu makes Account.Menu the current menu (none when it is empty).
// The configuration was validated: the menu is known to be good.
func (a *account) seedMenu() {
	body, err := seededMenu(a.Menu)
	if err != nil || body == nil {
		a.menu.Store(nil)
		return
	}
	a.menu.Store(&body)
}

// settings is an immutable snapshot of the configuration and the account
// maps; Reconfigure swaps it atomically.
type settings struct {
	cfg      Config
	accounts []*account            // in configuration order
	byAppID  map[string]*account   // official accounts by appid
	byCorp   map[string][]*account // WeCom apps by corpid
	byLabel  map[string]*account
	open     *openSettings // the third-party platforms; nil when none
}

// sameIdentity reports whether a and b are the same account (state can be
// carried over a reconfiguration).
func sameIdentity(a, b Account) bool {
	return a.Kind == b.Kind && a.AppID == b.AppID && a.Secret == b.Secret && a.AgentID == b.AgentID
}

func buildSettings(cfg Config, previous *settings, routes int) *settings {
	st := &settings{
		cfg:     cfg,
		byAppID: make(map[string]*account),
		byCorp:  make(map[string][]*account),
		byLabel: make(map[string]*account),
	}
	for _, a := range cfg.Accounts {
		var acct *account
		if previous != nil {
			if old := previous.byLabel[a.Label()]; old != nil && sameIdentity(old.Account, a) {
				acct = old
				acct.Account.DailyTokenQuota = a.DailyTokenQuota
				if acct.Account.Menu != a.Menu {
					acct.Account.Menu = a.Menu
					acct.seedMenu()
				}
			}
		}
		if acct == nil {
			acct = newAccount(a, routes)
		}
		q := cfg.DailyTokenQuota
		if a.DailyTokenQuota != 0 {
			q = orDefaultInt(a.DailyTokenQuota, cfg.DailyTokenQuota)
		}
		acct.tokenQuota.Store(int64(q))
		st.accounts = append(st.accounts, acct)
		st.byLabel[acct.label] = acct
		if acct.wecom {
			st.byCorp[a.AppID] = append(st.byCorp[a.AppID], acct)
		} else {
			st.byAppID[a.AppID] = acct
		}
	}
	if previous != nil {
		for _, old := range previous.accounts {
			if st.byLabel[old.label] != old {
				old.removed.Store(true)
			}
		}
	}
	st.open = buildOpenSettings(cfg, st, previous, routes)
	return st
}

// findAccounts returns the accounts an appid, corpid or label names.
func (st *settings) findAccounts(id string) []*account {
	if a := st.byAppID[id]; a != nil {
		return []*account{a}
	}
	if apps := st.byCorp[id]; len(apps) > 0 {
		return apps
	}
	if a := st.byLabel[id]; a != nil {
		return []*account{a}
	}
	if a := st.hiddenAccount(id); a != nil {
		return []*account{a}
	}
	return nil
}
