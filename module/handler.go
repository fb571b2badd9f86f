package caddywechat

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

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
// /datacube/ and the other families of the WeChat API) and passes every
// other request on untouched: /sns/ (user OAuth tokens), /cgi-bin/component/
// and /cgi-bin/service/ (third-party tokens) in particular. Use Caddy
// matchers to narrow it further. The token endpoints are never forwarded.
type Handler struct {
	// Account is the name of the account (in the `wechat` app) this site
	// serves. Required in trusted mode. In clients mode it may be left out:
	// the account then comes from each caller's gateway token, so one site
	// serves every account of every client; when it is set, tokens for other
	// accounts are refused. Default: none.
	Account string `json:"account,omitempty"`

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
	if h.Trusted && h.Account == "" {
		return errors.New("account: a trusted site serves one account; name it (`wechat <account> { trusted }`)")
	}
	if h.Account != "" {
		if h.fixed, err = h.app.handle(h.Account); err != nil {
			return err
		}
	}
	if !h.Trusted && h.app.auth == nil {
		return errors.New("no clients are configured in the global `wechat` option: add `client` blocks, or mark this site `trusted` if Caddy already restricts who reaches it (remote_ip, mTLS)")
	}
	return nil
}

// ServeHTTP injects the token, forwards the call to next (the
// reverse_proxy), and replays it once if WeChat rejects the token.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	if reason := unsafePath(r.URL); reason != "" {
		wxapi.WriteError(w, wxapi.CodeInvalidURL, "wechat gateway: invalid url: "+reason)
		return nil
	}
	path := r.URL.Path
	switch {
	case path == RawTokenPath:
		h.serveRawToken(w, r)
		return nil
	case hasAnyPrefix(path, neverTokenPaths) || !hasAnyPrefix(path, defaultTokenPaths):
		if h.Trusted || strings.HasPrefix(path, "/sns/") {
			// Calls that carry a credential of their own (a user's OAuth
			// token under /sns/): the gateway adds nothing to them.
			return next.ServeHTTP(w, r)
		}
		wxapi.WriteError(w, wxapi.CodeAPIUnauthorized, "wechat gateway: api unauthorized: "+path+" is not an API this gateway serves to clients")
		return nil
	case isTokenEndpoint(path):
		h.serveTokenEndpoint(w, r)
		return nil
	}
	account, refusal := h.authorize(r)
	if refusal != nil {
		wxapi.WriteError(w, refusal.Code, refusal.Msg)
		return nil
	}
	body, stream, err := readReplayable(r, h.MaxReplayBody)
	if err != nil {
		wxapi.WriteError(w, wxapi.CodeSystemBusy, "wechat gateway: reading the request body: "+err.Error())
		return nil
	}
	ctx := r.Context()
	tok, err := account.Token(ctx)
	if err != nil {
		h.unavailable(w, err)
		return nil
	}
	acct := account.Account()
	replayable := stream == nil && !h.stuck.has(acct.Name, path, h.app.tokens.manager.Clock().Now())
	if stream != nil {
		h.logger.Debug("request body too large to replay; forwarding without retry",
			zap.String("account", acct.Name), zap.Int64("max_replay_body", h.MaxReplayBody))
	}

	first := newInspector(w)
	defer first.free()
	if err := next.ServeHTTP(first, upstreamRequest(r, tok.Value, body, stream)); err != nil {
		return err
	}
	code, rid, rejected := first.tokenError()
	if !rejected {
		first.pass()
		return nil
	}
	if !replayable {
		// Pass the answer on; a body that streamed cannot be sent again, and
		// a path where a fresh token failed too wants another kind of token.
		// A streamed call still reports the token, so the next calls get a
		// fresh one.
		if stream != nil {
			_, _ = account.Reject(ctx, tok, code)
		}
		first.pass()
		return nil
	}
	fresh, err := account.Reject(ctx, tok, code)
	switch {
	case err != nil:
		h.logger.Warn("access_token rejected and no new one could be had",
			zap.String("account", acct.Name), zap.String("appid", acct.AppID), zap.Int("errcode", code), zap.String("rid", rid), zap.Error(err))
		first.pass()
		return nil
	case fresh == nil: // the rejected token was just fetched: not its age; pass the answer on
		first.pass()
		return nil
	}
	h.logger.Info("access_token rejected; replaying with a fresh token",
		zap.String("account", acct.Name), zap.String("appid", acct.AppID), zap.String("path", path), zap.Int("errcode", code), zap.String("rid", rid),
		zap.Uint64("generation", fresh.Generation))
	first.release()
	second := newInspector(w)
	defer second.free()
	if err := next.ServeHTTP(second, upstreamRequest(r, fresh.Value, body, nil)); err != nil {
		return err
	}
	if code, rid, rejected := second.tokenError(); rejected {
		h.stuck.add(acct.Name, path, h.app.tokens.manager.Clock().Now())
		h.logger.Warn("a fresh access_token was refused too: this path wants another kind of token; not refreshing for it for a while",
			zap.String("account", acct.Name), zap.String("appid", acct.AppID), zap.String("path", path), zap.Int("errcode", code),
			zap.String("rid", rid), zap.Duration("for", stuckFor))
	}
	second.pass()
	return nil
}

// unavailable answers a call for which no token can be had, saying why.
func (h *Handler) unavailable(w http.ResponseWriter, err error) {
	wxapi.WriteError(w, wxapi.CodeSystemBusy, "wechat gateway: "+err.Error())
}

// readReplayable reads the request body into memory if it is no larger
// than limit. Otherwise it returns, as stream, a reader that yields what was
// read and then the rest: such a call cannot be replayed.
func readReplayable(r *http.Request, limit int64) (body []byte, stream io.Reader, err error) {
	if r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0 {
		return nil, nil, nil
	}
	if r.ContentLength > limit {
		return nil, r.Body, nil
	}
	var buf bytes.Buffer
	if r.ContentLength > 0 {
		buf.Grow(int(r.ContentLength))
	}
	n, err := io.Copy(&buf, io.LimitReader(r.Body, limit+1))
	if err != nil {
		return nil, nil, err
	}
	if n > limit {
		return nil, io.MultiReader(&buf, r.Body), nil
	}
	return buf.Bytes(), nil, nil
}

// upstreamRequest clones r for one attempt: the client's access_token
// removed, tok injected, and the body set from memory (body) or streamed
// (stream). r itself, which the access log and placeholders read, is left
// as the client sent it.
func upstreamRequest(r *http.Request, tok string, body []byte, stream io.Reader) *http.Request {
	// A shallow copy with its own URL: reverse_proxy clones the request
	// again before it changes anything, so only what this handler changes
	// needs a copy of its own.
	out := new(http.Request)
	*out = *r
	u := *r.URL
	u.RawQuery = withToken(r.URL.RawQuery, tok)
	u.ForceQuery = false
	out.URL = &u
	// RequestURI is what Caddy's debug log shows of the upstream request:
	// keep the client's, without any token the client sent.
	out.RequestURI = redactedURI(r)
	// The answer is inspected for token errors: it must come uncompressed.
	if _, ok := r.Header["Accept-Encoding"]; ok {
		out.Header = r.Header.Clone()
		out.Header.Del("Accept-Encoding")
	}
	switch {
	case stream != nil:
		out.Body = io.NopCloser(stream)
	case body == nil:
		out.Body = http.NoBody
		out.ContentLength = 0
	default:
		out.Body = io.NopCloser(bytes.NewReader(body))
		out.ContentLength = int64(len(body))
		out.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	}
	return out
}

// Interface guards
var (
	_ caddy.Provisioner           = (*Handler)(nil)
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
	_ http.Flusher                = (*inspector)(nil)
)
