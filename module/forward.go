package caddywechat

import (
	"errors"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"

	"go.uber.org/zap"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/wxgate/caddy-wechat/module/internal/token"
	"github.com/wxgate/caddy-wechat/module/internal/wxapi"
)

// Stage 4 of an API call: read the body so that the call can be sent
// twice, get the account's token, inject it and send the call upstream
// through next (the reverse_proxy). The answer goes to an inspector, which
// hands it to stage 5.

// forward makes the first attempt of an authorized API call, then lets
// the replay stage decide what becomes of its answer.
func (h *Handler) forward(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler, account *token.Handle) error {
	body, stream, err := readReplayable(r, h.MaxReplayBody, h.app.maxReplayMemory())
	defer body.free()
	if err != nil {
		wxapi.WriteError(w, wxapi.CodeSystemBusy, "wechat gateway: reading the request body: "+err.Error())
		return nil
	}
	tok, err := account.Token(r.Context())
	if err != nil {
		unavailable(w, err)
		return nil
	}
	if stream != nil {
		h.logger.Debug("request body too large to replay; forwarding without retry",
			zap.String("account", account.Account().Name), zap.Int64("max_replay_body", h.MaxReplayBody))
	}
	first := newInspector(w, h.app.confidential(account))
	defer first.free()
	if err := sendUpstream(next, first, r, tokenParam(account), tok.Value, body, stream); err != nil {
		h.upstreamFailed(w, r, first, account, err)
		return nil
	}
	return h.replay(w, r, next, attempt{account: account, token: tok, body: body, stream: stream, answer: first})
}

// unavailable answers a call for which no token can be had, saying why.
func unavailable(w http.ResponseWriter, err error) {
	wxapi.WriteError(w, wxapi.CodeSystemBusy, "wechat gateway: "+err.Error())
}

// upstreamFailed answers a call whose upstream failed (reverse_proxy
// returned an error: unreachable, timed out) with a WeChat-shaped errcode
// -1 and the HTTP status Caddy would have used, and logs it. Answering
// here, rather than returning the error, keeps the caller's URI, gateway
// token or client key and all, out of Caddy's error log. answer is the
// inspector the attempt wrote to, if any; account, if known, says what to
// mask in the error.
func (h *Handler) upstreamFailed(w http.ResponseWriter, r *http.Request, answer *inspector, account *token.Handle, err error) {
	var confidential []string
	name := ""
	if account != nil {
		confidential, name = h.app.confidential(account), account.Account().Name
	}
	passing := answer != nil && answer.passing
	status := http.StatusBadGateway
	var he caddyhttp.HandlerError
	if errors.As(err, &he) && he.StatusCode >= 400 {
		status = he.StatusCode
	}
	msg := []byte(err.Error())
	wxapi.Mask(msg, confidential)
	h.logger.Error("upstream failed", zap.String("account", name), zap.String("method", r.Method),
		zap.String("path", r.URL.Path), zap.Int("status", status), zap.ByteString("error", msg))
	if passing {
		return // the answer had begun: nothing more can be said
	}
	hdr := w.Header()
	if answer != nil {
		// Whatever headers the upstream had set go, but for the
		// Proxy-Status reverse_proxy reports its refusal in (RFC 9209).
		proxyStatus := hdr["Proxy-Status"]
		answer.discard()
		if proxyStatus != nil {
			hdr["Proxy-Status"] = proxyStatus
			maskHeader(http.Header{"Proxy-Status": proxyStatus}, confidential)
		}
	}
	body := wxapi.AppendError(nil, wxapi.CodeSystemBusy, "wechat gateway: the WeChat API could not be reached ("+http.StatusText(status)+")")
	hdr.Set("Content-Type", wxapi.ContentTypeJSON)
	hdr.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// sendUpstream passes next a copy of r for one attempt: the client's
// access_token removed, tok injected, and the body set from memory (body)
// or streamed (stream). r itself stays as the client sent it: the access
// log and Caddy's placeholders read it, during the call too ({uri} in a
// header_up, forward_auth's X-Forwarded-Uri), and they must not see the
// real token. The copy and its URL are one allocation, pooled when the call
// has no body (see upstreamRequest); reverse_proxy copies the request again
// before it changes anything, so the header map is shared, its
// Accept-Encoding, Range and If-Range taken out for the call and put back
// when next returns, or panics.
func sendUpstream(next caddyhttp.Handler, w http.ResponseWriter, r *http.Request, param, tok string, body *heldBody, stream io.Reader) error {
	pooled := body == nil && stream == nil && len(r.Trailer) == 0
	var out *upstreamRequest
	if pooled {
		out = upstreamRequests.Get().(*upstreamRequest)
	} else {
		out = new(upstreamRequest)
	}
	out.req, out.url = *r, *r.URL
	out.req.URL = &out.url
	// RequestURI is what Caddy's debug log shows of the upstream request:
	// keep the client's, without any token the client sent.
	redact := tokenParams
	if strings.HasPrefix(r.URL.Path, userCredentialPrefix) {
		redact = snsRedacted // a platform's /sns/component/ calls
	}
	query, uri := wxapi.Rewrite(r.URL, param, tok, redact...)
	out.url.RawQuery = query
	out.url.ForceQuery = false
	if uri != "" {
		out.req.RequestURI = uri
	}
	// The answer is inspected for token errors and masked: it must come
	// uncompressed, and whole but for media downloads (a range of an echo
	// could cut a token in two and so past the mask).
	var held heldHeaders
	defer held.restore(r.Header)
	held.remove(r.Header, "Accept-Encoding")
	if !strings.Contains(r.URL.Path, "/media/") {
		held.remove(r.Header, "Range")
		held.remove(r.Header, "If-Range")
	}
	switch {
	case stream != nil:
		out.req.Body = io.NopCloser(stream)
	case body == nil:
		out.req.Body = http.NoBody
		out.req.ContentLength = 0
	default:
		out.req.Body = io.NopCloser(body.reader())
		out.req.ContentLength = body.size
		out.req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(body.reader()), nil }
	}
	err := next.ServeHTTP(w, &out.req)
	if pooled && out.bodiless() {
		out.free() // not after a panic: who knows what next left running
	}
	return err
}

// tokenParams are the parameters a token is injected in; snsRedacted adds
// the user's credentials of /sns/ calls (userCredentials), for the debug
// log's URI.
var (
	tokenParams = []string{"access_token", "component_access_token"}
	snsRedacted = slices.Concat([]string{"component_access_token"}, userCredentials)
)

// upstreamRequest is the request of one attempt with its own URL, in one
// allocation. That of a call with no body and no trailers (most GETs) is
// pooled: reverse_proxy keeps nothing of it once it has returned. A call
// with a body gets its own, never reused: reverse_proxy keeps a pointer to
// it in the body it sends upstream (to copy the request's trailers at the
// body's end), and its transport may still read that body after next
// returned. (reverse_proxy drops that body when ContentLength is 0, so a
// bodiless call leaves no such pointer; TestPooledRequestLeftByReverseProxy
// checks it, with Caddy's own handler.) A handler between the gateway and
// reverse_proxy may give the request a body (`request_body { set }`): then
// it is not put back either.
type upstreamRequest struct {
	req http.Request
	url url.URL
}

// bodiless reports whether the request still has the empty body and no
// trailers it was sent to next with, so that reverse_proxy kept no pointer
// to it.
func (out *upstreamRequest) bodiless() bool {
	return out.req.Body == http.NoBody && out.req.ContentLength == 0 && len(out.req.Trailer) == 0
}

var upstreamRequests = sync.Pool{New: func() any { return new(upstreamRequest) }}

// free zeroes a pooled request, so that the pool keeps no call's data (its
// real token least of all) alive, and gives it back.
func (out *upstreamRequest) free() {
	*out = upstreamRequest{}
	upstreamRequests.Put(out)
}

// heldHeaders are request headers taken out for an attempt, to be put
// back afterwards.
type heldHeaders struct {
	n    int
	keys [3]string
	vals [3][]string
}

// remove takes the header key out of h, if it is there, keeping its values.
func (held *heldHeaders) remove(h http.Header, key string) {
	if v, ok := h[key]; ok {
		held.keys[held.n], held.vals[held.n] = key, v
		held.n++
		delete(h, key)
	}
}

// restore puts the removed headers back into h.
func (held *heldHeaders) restore(h http.Header) {
	for i := range held.n {
		h[held.keys[i]] = held.vals[i]
	}
}

// tokenParam is the query parameter an account's token goes in: a third-
// party platform's component_access_token, else access_token.
func tokenParam(account *token.Handle) string {
	if account.Account().Kind == token.Component {
		return "component_access_token"
	}
	return "access_token"
}
