package caddywechat

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/wxgate/caddy-wechat/module/internal/token"
)

func init() {
	caddy.RegisterModule(Admin{})
}

// Admin is the `admin.api.wechat` admin module. It serves, on Caddy's admin
// endpoint:
//
//	GET  /wechat/accounts  the state of every account's token: whether there
//	                       is one, its generation, expiry and next refresh,
//	                       token calls today against the budget, and why
//	                       refreshing stopped, if it did; the same for each
//	                       of its JS-SDK tickets (endpoint: its type) and,
//	                       for a third-party platform, of the authorizers
//	                       it holds a token for. Never a token, ticket or
//	                       secret.
//	GET  /wechat/accounts/{name}
//	                       one account's state, as above.
//	POST /wechat/accounts/{name}/refresh  {"if_generation":N} (optional):
//	                       fetches a new token now, unless the current
//	                       token's generation is no longer N (so that many
//	                       operators or scripts pressing it at once make one
//	                       fetch); stable_token uses force_refresh. The
//	                       budget and the platform's limits apply.
//	POST /wechat/accounts/{name}/resume   clears a stopped refresh after
//	                       the cause was fixed (the secret's placeholder is
//	                       read again), and fetches a token at once.
//	POST /wechat/clock     {"advance":"2h"}: moves the gateway's clock and
//	                       runs the refreshes that come due, then answers
//	                       like GET /wechat/accounts. Only with the app's
//	                       test_clock option.
type Admin struct{}

// CaddyModule returns the Caddy module information.
func (Admin) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "admin.api.wechat",
		New: func() caddy.Module { return new(Admin) },
	}
}

// Routes returns the admin routes.
func (a Admin) Routes() []caddy.AdminRoute {
	return []caddy.AdminRoute{
		{Pattern: "/wechat/accounts", Handler: caddy.AdminHandlerFunc(a.accounts)},
		{Pattern: "/wechat/accounts/", Handler: caddy.AdminHandlerFunc(a.account)},
		{Pattern: "/wechat/clock", Handler: caddy.AdminHandlerFunc(a.clock)},
	}
}

// running returns the wechat app of the running config.
func running() (*App, error) {
	app, err := caddy.ActiveContext().AppIfConfigured("wechat")
	if err != nil || app == nil {
		return nil, caddy.APIError{HTTPStatus: http.StatusNotFound, Err: fmt.Errorf("the wechat app is not configured")}
	}
	return app.(*App), nil
}

func (a Admin) accounts(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodGet {
		return caddy.APIError{HTTPStatus: http.StatusMethodNotAllowed, Err: fmt.Errorf("method not allowed")}
	}
	app, err := running()
	if err != nil {
		return err
	}
	return writeStatuses(w, app)
}

func (Admin) clock(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodPost {
		return caddy.APIError{HTTPStatus: http.StatusMethodNotAllowed, Err: fmt.Errorf("method not allowed")}
	}
	app, err := running()
	if err != nil {
		return err
	}
	var req struct {
		Advance string `json:"advance"`
	}
	if err := decodeOptional(r, &req); err != nil {
		return err
	}
	d, err := caddy.ParseDuration(req.Advance)
	if err != nil || d < 0 {
		return caddy.APIError{HTTPStatus: http.StatusBadRequest, Err: fmt.Errorf("body: want {\"advance\":\"<duration>\"}, not negative (0 runs the refreshes due), not %q", logText(req.Advance))}
	}
	if !app.advanceClock(r.Context(), d) {
		return caddy.APIError{HTTPStatus: http.StatusForbidden, Err: fmt.Errorf("the clock moves only with the wechat app's test_clock option")}
	}
	app.logger.Info("test clock advanced through the admin API", zap.Duration("by", d), zap.String("remote_addr", r.RemoteAddr))
	return writeStatuses(w, app)
}

// accountState is an account's token state, with its tickets' and, for a
// third-party platform, its authorizers' in use.
type accountState struct {
	token.Status
	Tickets     []token.Status `json:"tickets,omitempty"`
	Authorizers []token.Status `json:"authorizers,omitempty"`
}

func writeStatuses(w http.ResponseWriter, app *App) error {
	w.Header().Set("Content-Type", "application/json")
	return json.NewEncoder(w).Encode(struct {
		Now      time.Time       `json:"now"`
		Accounts []*accountState `json:"accounts"`
	}{app.now(), accountStates(app)})
}

// accountStates are the accounts' states, by name, with their tickets'.
func accountStates(app *App) []*accountState {
	list := app.statuses()
	slices.SortFunc(list, func(a, b token.Status) int { return strings.Compare(a.Name, b.Name) })
	var accounts []*accountState
	byName := make(map[string]*accountState)
	for _, st := range list {
		if st.Parent == "" {
			as := &accountState{Status: st}
			accounts = append(accounts, as)
			byName[st.Name] = as
		}
	}
	for _, st := range list {
		switch as := byName[st.Parent]; {
		case as == nil:
		case st.Endpoint == token.AuthorizerToken:
			as.Authorizers = append(as.Authorizers, st)
		default:
			as.Tickets = append(as.Tickets, st)
		}
	}
	return accounts
}

// account serves /wechat/accounts/{name}[/refresh|/resume].
func (Admin) account(w http.ResponseWriter, r *http.Request) error {
	rest := strings.TrimPrefix(r.URL.Path, "/wechat/accounts/")
	name, action, _ := strings.Cut(rest, "/")
	app, err := running()
	if err != nil {
		return err
	}
	h, err := app.account(name)
	if err != nil {
		return caddy.APIError{HTTPStatus: http.StatusNotFound, Err: err}
	}
	switch {
	case action == "" && r.Method == http.MethodGet:
		return writeAccount(w, app, name)
	case action == "refresh" && r.Method == http.MethodPost:
		var req struct {
			IfGeneration *uint64 `json:"if_generation"`
		}
		if err := decodeOptional(r, &req); err != nil {
			return err
		}
		_, refreshed, err := h.Refresh(r.Context(), req.IfGeneration)
		app.logger.Info("token refresh asked through the admin API", zap.String("account", name),
			zap.String("remote_addr", r.RemoteAddr), zap.Bool("refreshed", refreshed), zap.Error(err))
		if err != nil {
			return caddy.APIError{HTTPStatus: http.StatusServiceUnavailable, Err: err}
		}
		return writeAccount(w, app, name)
	case action == "resume" && r.Method == http.MethodPost:
		secret, err := app.resolveSecret(name)
		if err != nil {
			return caddy.APIError{HTTPStatus: http.StatusBadRequest, Err: err}
		}
		_, err = h.Resume(r.Context(), secret)
		for _, ep := range ticketTypes[h.Account().Kind] {
			if th := app.ticket(name, ep); th != nil {
				th.ClearStop()
			}
		}
		app.logger.Info("token refresh resumed through the admin API", zap.String("account", name),
			zap.String("remote_addr", r.RemoteAddr), zap.Error(err))
		if err != nil {
			return caddy.APIError{HTTPStatus: http.StatusServiceUnavailable, Err: err}
		}
		return writeAccount(w, app, name)
	case action == "" || action == "refresh" || action == "resume":
		return caddy.APIError{HTTPStatus: http.StatusMethodNotAllowed, Err: fmt.Errorf("method not allowed")}
	}
	return caddy.APIError{HTTPStatus: http.StatusNotFound, Err: fmt.Errorf("no such action %q: use refresh or resume", action)}
}

// decodeOptional decodes an optional JSON body into v.
func decodeOptional(r *http.Request, v any) error {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxAdminBody+1))
	switch {
	case err != nil:
		return caddy.APIError{HTTPStatus: http.StatusBadRequest, Err: fmt.Errorf("reading the body: %v", err)}
	case len(body) > maxAdminBody:
		return caddy.APIError{HTTPStatus: http.StatusRequestEntityTooLarge, Err: fmt.Errorf("body: over %d bytes", maxAdminBody)}
	case len(strings.TrimSpace(string(body))) == 0:
		return nil
	}
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.DisallowUnknownFields() // a misspelt if_generation must not make the refresh unconditional
	if err := dec.Decode(v); err != nil {
		return caddy.APIError{HTTPStatus: http.StatusBadRequest, Err: fmt.Errorf("body: %v", err)}
	}
	if err := dec.Decode(new(json.RawMessage)); err != io.EOF {
		return caddy.APIError{HTTPStatus: http.StatusBadRequest, Err: fmt.Errorf("body: one JSON object, nothing after it")}
	}
	return nil
}

// maxAdminBody bounds the body of an admin API call.
const maxAdminBody = 4096

// writeAccount answers one account's state.
func writeAccount(w http.ResponseWriter, app *App, name string) error {
	for _, as := range accountStates(app) {
		if as.Name == name {
			w.Header().Set("Content-Type", "application/json")
			return json.NewEncoder(w).Encode(as)
		}
	}
	return caddy.APIError{HTTPStatus: http.StatusNotFound, Err: fmt.Errorf("account %q has no state", name)}
}

// Interface guards
var _ caddy.AdminRouter = Admin{}
