package caddywechat

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/wxgate/caddy-wechat/module/internal/clientauth"
	"github.com/wxgate/caddy-wechat/module/internal/token"
	"github.com/wxgate/caddy-wechat/module/internal/wxapi"
)

func init() {
	caddy.RegisterModule(Handler{})
}

// DefaultMaxReplayBody is the default of Handler.MaxReplayBody: room for a
// 20 MB WeCom file upload and its multipart framing.
const DefaultMaxReplayBody = 24 << 20

// Handler injects an account's access token into calls to the WeChat API
// and replays a call once, with a fresh token, when WeChat answers that the
// token is no longer good (errcode 40001, 40014 or 42001). It sits in front
// of `reverse_proxy` to the WeChat host.
//
// It runs in one of two modes:
//   - clients (the default): callers authenticate as a client of the
//     `wechat` app. Their SDK fetches a token from the usual token endpoint
//     (/cgi-bin/token, /cgi-bin/stable_token, /cgi-bin/gettoken) with the
//     client's key in place of the secret; the handler answers it with a
//     gateway token and, on every later call, checks that token, the
//     client's accounts and paths, and swaps in the real token.
//   - trusted: for sites Caddy already restricts (remote_ip, mTLS). No keys;
//     any token the caller sends is ignored and replaced, and the token
//     endpoints answer a placeholder token so that SDKs work unchanged.
//
// It acts on the paths that take ?access_token= (/cgi-bin/, /wxa/,
// /datacube/ and the other families of the WeChat API). The calls that
// carry the AppSecret (/sns/jscode2session, /sns/oauth2/access_token,
// /cgi-bin/clear_quota/v2) get the real secret in place of the client's
// key; other /sns/ calls carry the user's own token and pass through
// without any app credential. On an account's site, third-party paths
// (/cgi-bin/component/, /cgi-bin/service/) pass through untouched on a
// trusted site and are refused (48001) in clients mode; a platform's own
// site (an account of kind component) serves them with its tokens. A
// path it acts on that ends in a slash is refused (errcode 40066;
// WeChat's never do, and a matcher for the path without it would not see
// it), but for the token endpoints. Use Caddy matchers to narrow it
// further. The token endpoints are never forwarded.
type Handler struct {
	// Account is the name of the account (in the `wechat` app) this site
	// serves. Required in trusted mode. In clients mode it may be left out:
	// the account then comes from each caller's gateway token, so one site
	// serves every account of every client; when it is set, tokens for other
	// accounts are refused. Default: none.
	Account string `json:"account,omitempty"`

	// Kind is the kind of account the site's upstream serves: `official`
	// (api.weixin.qq.com), `wecom` (qyapi.weixin.qq.com), or `any` for an
	// upstream that serves both. Gateway tokens and token-endpoint calls
	// for accounts of another kind are refused before anything goes
	// upstream: a token sent to the wrong host is always rejected, and must
	// not make the gateway refresh it. Default: the kind of Account;
	// required on a site without one.
	Kind string `json:"kind,omitempty"`

	// Callback makes the route the callback URL of a third-party
	// platform (Account, of kind `component`): it takes the pushes WeChat
	// sends there (the component_verify_ticket every 10 minutes), checks
	// their signature, decrypts them and answers `success`. It serves
	// nothing else. Default: false.
	Callback bool `json:"callback,omitempty"`

	// Trusted turns client authentication off: anyone who reaches the site
	// acts as Account. Only for sites that Caddy itself restricts (a
	// remote_ip matcher, mTLS client authentication). Default: false.
	Trusted bool `json:"trusted,omitempty"`

	// MaxReplayBody is the largest request body, in bytes, held in memory so
	// that the call can be replayed after a token refresh. A larger body is
	// streamed to WeChat and its call is not replayed. Default: 24 MiB
	// (25165824), which covers WeCom's 20 MB file uploads.
	MaxReplayBody int64 `json:"max_replay_body,omitempty"`

	app    *App
	fixed  *token.Handle // the handle of Account, if set
	stuck  *stuckPaths
	calls  *lastCall
	logger *zap.Logger
}

// CaddyModule returns the Caddy module information.
func (Handler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.wechat",
		New: func() caddy.Module { return new(Handler) },
	}
}

// Provision finds the handler's account and clients in the `wechat` app.
func (h *Handler) Provision(ctx caddy.Context) error {
	h.logger = ctx.Logger()
	h.stuck = new(stuckPaths)
	h.calls = new(lastCall)
	if h.Callback && (h.Trusted || h.Kind != "" || h.MaxReplayBody != 0) {
		return errors.New("callback: a push route takes no trusted, kind or max_replay_body: it serves WeChat's pushes, not API calls")
	}
	if h.MaxReplayBody < 0 {
		return errors.New("max_replay_body must not be negative")
	}
	if h.MaxReplayBody == 0 {
		h.MaxReplayBody = DefaultMaxReplayBody
	}
	appIface, err := ctx.App("wechat")
	if err != nil {
		return fmt.Errorf("loading the wechat app: %v", err)
	}
	h.app = appIface.(*App)
	if h.Callback {
		if h.Account == "" || h.app.codecs[h.Account].AppID == "" {
			return errors.New("callback: name the third-party platform (an account of kind component) whose pushes this route takes: `wechat <account> { callback }`")
		}
		h.fixed, _ = h.app.account(h.Account)
		return nil
	}
	if h.Trusted && h.Account == "" {
		return errors.New("account: a trusted site serves one account; name it (`wechat <account> { trusted }`)")
	}
	switch h.Kind {
	case "", string(token.Official), string(token.WeCom), kindAny:
	default:
		return fmt.Errorf("kind %q is not one of official, wecom, any", h.Kind)
	}
	if h.Account != "" {
		if h.fixed, err = h.app.account(h.Account); err != nil {
			return err
		}
		acctKind := string(h.fixed.Account().Kind)
		if h.Kind != "" && h.Kind != kindAny && h.Kind != acctKind {
			return fmt.Errorf("kind %s: account %q is a %s account", h.Kind, h.Account, acctKind)
		}
		h.Kind = acctKind
	}
	if !h.Trusted && h.app.clients() == nil {
		return errors.New("no clients are configured in the global `wechat` option: add `client` blocks, or mark this site `trusted` if Caddy already restricts who reaches it (remote_ip, mTLS)")
	}
	if h.Kind == "" && h.Account == "" {
		return errors.New("kind: a site that serves every account must say which kind its upstream serves: `kind official` (api.weixin.qq.com), `kind wecom` (qyapi.weixin.qq.com), or `kind any` if it really serves both")
	}
	return nil
}

// ServeHTTP runs a call through the stages of the gateway, each in the
// file named after it: classify the path (classify.go), authorize the
// caller (authorize.go), answer the token endpoints (tokenendpoint.go),
// inject the token and forward (forward.go), inspect the answer and replay
// once on a rejected token (replay.go).
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	if h.Callback {
		h.serveCallback(w, r)
		return nil
	}
	class, why := classify(r.URL)
	if h.fixed != nil && h.fixed.Account().Kind == token.Component && class != pathInvalid {
		return h.serveComponent(w, r, next, class)
	}
	if class != pathInvalid && !allowedMethod(r.Method) {
		wxapi.WriteError(w, wxapi.CodeRequireGET, "wechat gateway: method "+r.Method+" is not accepted: WeChat's APIs take GET or POST")
		return nil
	}
	switch class {
	case pathInvalid:
		wxapi.WriteError(w, wxapi.CodeInvalidURL, "wechat gateway: invalid url: "+why)
		return nil
	case pathUserCredential:
		return h.serveUserCredentialCall(w, r, next)
	case pathAppSecret:
		return h.serveAppSecretCall(w, r, next)
	case pathOther:
		if h.Trusted {
			if err := next.ServeHTTP(w, r); err != nil {
				h.upstreamFailed(w, r, nil, nil, err)
			}
			return nil
		}
		wxapi.WriteError(w, wxapi.CodeAPIUnauthorized, "wechat gateway: api unauthorized: "+r.URL.Path+" is not an API this gateway serves to clients")
		return nil
	case pathTokenEndpoint:
		h.serveTokenEndpoint(w, r)
		return nil
	case pathRawToken:
		h.serveRawToken(w, r)
		return nil
	}
	account, refusal := h.authorize(r)
	if refusal != nil {
		writeRefusal(w, refusal)
		return nil
	}
	switch class {
	case pathTicket:
		h.serveTicket(w, r, account)
		return nil
	case pathJSSDKConfig:
		h.serveJSSDKConfig(w, r, account)
		return nil
	}
	return h.forward(w, r, next, account)
}

// logText returns a value a caller sent, fit for a log line: at most 64
// bytes, printable ASCII.
func logText(s string) string {
	if len(s) > 64 {
		s = s[:64] + "…"
	}
	return strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f {
			return '?'
		}
		return r
	}, s)
}

// loggedAppID is an appid or corpid a caller sent, fit for a log line:
// itself if it looks like one ("wx" or "ww" and 16 letters or digits) or
// is too short to be a client key, else only its length. An SDK set up
// with appid and key swapped sends the client key there, and a key must
// not reach the logs.
func loggedAppID(s string) string {
	if len(s) < clientauth.MinKeyLength || len(s) == 18 && (strings.HasPrefix(s, "wx") || strings.HasPrefix(s, "ww")) && !strings.ContainsFunc(s, func(r rune) bool {
		return !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9')
	}) {
		return logText(s)
	}
	return fmt.Sprintf("(not an appid: %d characters)", len(s))
}

// loggedReason is a refusal's message for a log line, without the appid
// the caller sent unless loggedAppID shows it.
func loggedReason(msg, appid string) string {
	if shown := loggedAppID(appid); shown != logText(appid) {
		return strings.ReplaceAll(msg, appid, shown)
	}
	return msg
}

// allowedMethod reports whether the gateway forwards a method: WeChat's
// APIs take GET and POST (HEAD, a GET without its body, too). Another
// method (TRACE echoes the request) is refused.
func allowedMethod(m string) bool {
	return m == http.MethodGet || m == http.MethodPost || m == http.MethodHead
}

// Interface guards
var (
	_ caddy.Provisioner           = (*Handler)(nil)
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
	_ http.Flusher                = (*inspector)(nil)
)
