package caddywechat

import (
	"bytes"
	"io"
	"net/http"

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
	body, stream, err := readReplayable(r, h.MaxReplayBody)
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
	first := newInspector(w)
	defer first.free()
	if err := next.ServeHTTP(first, upstreamRequest(r, tok.Value, body, stream)); err != nil {
		return err
	}
	return h.replay(w, r, next, attempt{account: account, token: tok, body: body, stream: stream, answer: first})
}

// unavailable answers a call for which no token can be had, saying why.
func unavailable(w http.ResponseWriter, err error) {
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
	u.RawQuery = wxapi.WithToken(r.URL.RawQuery, tok)
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

// redactedURI returns the request's URI with the values of any
// access_token parameters the client sent replaced by REDACTED.
func redactedURI(r *http.Request) string {
	q := wxapi.RedactParam(r.URL.RawQuery, "access_token")
	if q == r.URL.RawQuery {
		return r.RequestURI
	}
	return r.URL.EscapedPath() + "?" + q
}
