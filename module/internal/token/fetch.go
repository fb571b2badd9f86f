package token

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/wxgate/caddy-wechat/module/internal/wxapi"
)

// Fetched is a token as a token endpoint answered it.
type Fetched struct {
	// Value is the access token.
	Value string
	// ExpiresIn is the lifetime the endpoint gave (for stable_token,
	// gettoken and the tickets the remaining lifetime of the current
	// value). 0 means none, or under a second: the Manager takes it only
	// for the value it already holds from an endpoint that hands one out
	// until it expires.
	ExpiresIn time.Duration
}

// Fetcher asks a token endpoint for a token. force asks stable_token for
// force_refresh=true and is false for every other endpoint.
type Fetcher interface {
	Fetch(ctx context.Context, a *Account, force bool) (Fetched, error)
}

// TicketFetcher asks a JS-SDK ticket endpoint for a ticket, with the
// account's access token. The Manager's Fetcher implements it to serve
// ticket accounts.
type TicketFetcher interface {
	FetchTicket(ctx context.Context, a *Account, accessToken string) (Fetched, error)
}

// FetchError is a failed token-endpoint call. It never holds the secret:
// the request URL (which carries it for /cgi-bin/token and gettoken) is
// reduced to host and path.
type FetchError struct {
	// Endpoint is host and path of the token endpoint.
	Endpoint string
	// Errcode is WeChat's errcode, 0 when the failure was not a WeChat
	// answer (network, HTTP status, garbage).
	Errcode int
	// Errmsg is WeChat's errmsg, without its request id.
	Errmsg string
	// RequestID is the rid (or WeCom hint) WeChat gave the call. It is
	// logged, never shown to clients: with it, WeChat's rid lookup returns
	// the call, secret included.
	RequestID string
	// Err is the transport or decoding failure, when Errcode is 0.
	Err error
}

func (e *FetchError) Error() string {
	if e.Errcode != 0 {
		desc := wxapi.Describe(e.Errcode)
		if desc != "" {
			desc = " (" + desc + ")"
		}
		return fmt.Sprintf("%s answered errcode %d%s: %s", e.Endpoint, e.Errcode, desc, e.Errmsg)
	}
	return fmt.Sprintf("%s: %v", e.Endpoint, e.Err)
}

func (e *FetchError) Unwrap() error { return e.Err }

// maxTokenAnswer bounds how much of a token endpoint's answer is read.
const maxTokenAnswer = 64 << 10

// HTTPFetcher calls the real token endpoints over HTTP.
type HTTPFetcher struct {
	// Client does the calls. Default: a client with a 10 s timeout.
	Client *http.Client
}

// defaultClient follows no redirect: a redirected stable_token call would
// send its body, secret included, wherever the redirect points. It has no
// timeout of its own: every fetch runs under Options.FetchTimeout.
var defaultClient = &http.Client{
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

// Fetch calls a's token endpoint.
func (f *HTTPFetcher) Fetch(ctx context.Context, a *Account, force bool) (Fetched, error) {
	u, where, err := endpointURL(a)
	if err != nil {
		return Fetched{}, err
	}
	var body []byte // nil for a GET
	switch a.Endpoint {
	case StableToken:
		body, _ = json.Marshal(map[string]any{
			"grant_type": "client_credential", "appid": a.AppID, "secret": a.Secret, "force_refresh": force,
		})
	case ClientCredential:
		u.RawQuery = url.Values{"grant_type": {"client_credential"}, "appid": {a.AppID}, "secret": {a.Secret}}.Encode()
	case GetToken:
		u.RawQuery = url.Values{"corpid": {a.AppID}, "corpsecret": {a.Secret}}.Encode()
	case ComponentToken:
		body, _ = json.Marshal(map[string]string{
			"component_appid": a.AppID, "component_appsecret": a.Secret, "component_verify_ticket": a.VerifyTicket,
		})
	default:
		return Fetched{}, &FetchError{Endpoint: where, Err: fmt.Errorf("unknown token endpoint %q", a.Endpoint)}
	}
	raw, err := f.do(ctx, u, body, where)
	if err != nil {
		return Fetched{}, err
	}
	return parseTokenAnswer(where, raw)
}

// FetchTicket calls a's ticket endpoint with accessToken.
func (f *HTTPFetcher) FetchTicket(ctx context.Context, a *Account, accessToken string) (Fetched, error) {
	u, where, err := endpointURL(a)
	if err != nil {
		return Fetched{}, err
	}
	q := url.Values{"access_token": {accessToken}}
	switch a.Endpoint {
	case JSAPITicket, CardTicket, AgentTicket:
		q.Set("type", string(a.Endpoint))
	}
	u.RawQuery = q.Encode()
	raw, err := f.do(ctx, u, nil, where)
	if err != nil {
		return Fetched{}, err
	}
	ans, err := decodeAnswer(where, "ticket", raw)
	if err != nil {
		return Fetched{}, err
	}
	if !plausibleToken(ans.Ticket) || ans.ExpiresIn < 0 {
		return Fetched{}, &FetchError{Endpoint: where, Err: fmt.Errorf("answer holds no usable ticket (%d chars, expires_in %d)", len(ans.Ticket), ans.ExpiresIn)}
	}
	return Fetched{Value: ans.Ticket, ExpiresIn: time.Duration(ans.ExpiresIn) * time.Second}, nil
}

// FetchAuthorizerToken calls api_authorizer_token for authorizer a.
func (f *HTTPFetcher) FetchAuthorizerToken(ctx context.Context, a *Account, componentToken, refreshToken string) (Fetched, string, error) {
	comp := a.Parent.Account()
	body, _ := json.Marshal(map[string]string{
		"component_appid": comp.AppID, "authorizer_appid": a.AppID, "authorizer_refresh_token": refreshToken,
	})
	raw, where, err := f.componentCall(ctx, comp, AuthorizerToken.Path(), componentToken, body)
	if err != nil {
		return Fetched{}, "", err
	}
	var ans struct {
		AuthorizerToken string  `json:"authorizer_access_token"`
		ExpiresIn       seconds `json:"expires_in"`
		RefreshToken    string  `json:"authorizer_refresh_token"`
	}
	if _, err := decodeAnswer(where, "token", raw); err != nil {
		return Fetched{}, "", err
	}
	if json.Unmarshal(raw, &ans) != nil || !plausibleToken(ans.AuthorizerToken) || ans.ExpiresIn <= 0 {
		return Fetched{}, "", &FetchError{Endpoint: where, Err: fmt.Errorf("answer holds no usable authorizer_access_token (%d chars, expires_in %d)", len(ans.AuthorizerToken), ans.ExpiresIn)}
	}
	if ans.RefreshToken != "" && !plausibleToken(ans.RefreshToken) {
		ans.RefreshToken = ""
	}
	return Fetched{Value: ans.AuthorizerToken, ExpiresIn: time.Duration(ans.ExpiresIn) * time.Second}, ans.RefreshToken, nil
}

// QueryAuth calls api_query_auth for component comp with an authorization
// code.
func (f *HTTPFetcher) QueryAuth(ctx context.Context, comp *Account, componentToken, code string) (Authorization, string, error) {
	body, _ := json.Marshal(map[string]string{"component_appid": comp.AppID, "authorization_code": code})
	raw, where, err := f.componentCall(ctx, comp, "/cgi-bin/component/api_query_auth", componentToken, body)
	if err != nil {
		return Authorization{}, "", err
	}
	if _, err := decodeAnswer(where, "authorization", raw); err != nil {
		return Authorization{}, "", err
	}
	var ans struct {
		Info struct {
			AppID        string          `json:"authorizer_appid"`
			RefreshToken string          `json:"authorizer_refresh_token"`
			FuncInfo     json.RawMessage `json:"func_info"`
		} `json:"authorization_info"`
	}
	if json.Unmarshal(raw, &ans) != nil || !plausibleToken(ans.Info.AppID) || !plausibleToken(ans.Info.RefreshToken) {
		return Authorization{}, "", &FetchError{Endpoint: where, Err: errors.New("answer holds no authorizer appid and refresh token")}
	}
	return Authorization{AppID: ans.Info.AppID, FuncInfo: ans.Info.FuncInfo}, ans.Info.RefreshToken, nil
}

// componentCall POSTs body to path under comp's base URL with the
// component token.
func (f *HTTPFetcher) componentCall(ctx context.Context, comp *Account, path, componentToken string, body []byte) ([]byte, string, error) {
	u, err := url.Parse(comp.BaseURL)
	if err != nil || u.Host == "" {
		return nil, path, &FetchError{Endpoint: path, Err: errors.New("bad base URL")}
	}
	u.Path = strings.TrimSuffix(u.Path, "/") + path
	u.RawQuery = url.Values{"component_access_token": {componentToken}}.Encode()
	where := u.Host + u.Path
	raw, err := f.do(ctx, u, body, where)
	return raw, where, err
}

// endpointURL returns the URL of a's endpoint (token or ticket) and its
// host and path, which errors name as the endpoint.
func endpointURL(a *Account) (u *url.URL, where string, err error) {
	u, err = url.Parse(a.BaseURL)
	if err != nil || u.Host == "" {
		return nil, "", &FetchError{Endpoint: a.Endpoint.Path(), Err: errors.New("bad base URL")}
	}
	u.Path = strings.TrimSuffix(u.Path, "/") + a.Endpoint.Path()
	return u, u.Host + u.Path, nil
}

// do sends a GET of u, or a POST of jsonBody when it is not nil, and
// returns the body of its HTTP 200 answer. Its errors never hold the
// request URL, which may carry a secret or a token.
func (f *HTTPFetcher) do(ctx context.Context, u *url.URL, jsonBody []byte, where string) ([]byte, error) {
	method, body := http.MethodGet, io.Reader(nil)
	if jsonBody != nil {
		method, body = http.MethodPost, bytes.NewReader(jsonBody)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), body)
	if err != nil {
		return nil, &FetchError{Endpoint: where, Err: stripURL(err)}
	}
	if jsonBody != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	client := f.Client
	if client == nil {
		client = defaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, &FetchError{Endpoint: where, Err: stripURL(err)}
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxTokenAnswer))
	if err != nil {
		return nil, &FetchError{Endpoint: where, Err: stripURL(err)}
	}
	if resp.StatusCode != http.StatusOK {
		return nil, &FetchError{Endpoint: where, Err: fmt.Errorf("HTTP status %d", resp.StatusCode)}
	}
	return raw, nil
}

// endpointAnswer is the JSON answer of a token endpoint (access_token) or
// a ticket endpoint (ticket).
type endpointAnswer struct {
	Errcode     int    `json:"errcode"`
	Errmsg      string `json:"errmsg"`
	AccessToken string `json:"access_token"`
	// ComponentToken is api_component_token's name for it.
	ComponentToken string  `json:"component_access_token"`
	Ticket         string  `json:"ticket"`
	ExpiresIn      seconds `json:"expires_in"`
}

// seconds is a lifetime as an endpoint writes it, in seconds. WeChat sends
// an integer; a number with a fraction or an exponent, or a number in
// quotes, is read too (rounded down, at most 2^31 s), so that such an
// answer is not thrown away whole. null leaves it 0.
type seconds int64

func (s *seconds) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		return nil
	}
	if len(b) >= 2 && b[0] == '"' && b[len(b)-1] == '"' {
		b = b[1 : len(b)-1]
		// A decimal number, as JSON writes one: not "Inf", "NaN" or hex.
		if len(b) == 0 || strings.Trim(string(b), "0123456789.eE+-") != "" {
			return errors.New("expires_in is not a number")
		}
	}
	f, err := strconv.ParseFloat(string(b), 64)
	if err != nil && !errors.Is(err, strconv.ErrRange) || math.IsNaN(f) {
		return errors.New("expires_in is not a number")
	}
	*s = seconds(math.Floor(min(max(f, -1), 1<<31))) // out of range: ±Inf, clamped
	return nil
}

// decodeAnswer decodes raw, the answer of a token or ticket endpoint
// (what). An answer with an errcode is a FetchError. Nothing of the body
// goes into an error: a body that fails to parse may still hold a token.
func decodeAnswer(where, what string, raw []byte) (endpointAnswer, error) {
	var ans endpointAnswer
	if err := json.Unmarshal(raw, &ans); err != nil {
		return ans, &FetchError{Endpoint: where, Err: fmt.Errorf("answer is not %s JSON (%d bytes)", what, len(raw))}
	}
	if ans.Errcode != 0 {
		msg, rid := wxapi.SplitRequestID(ans.Errmsg)
		return ans, &FetchError{Endpoint: where, Errcode: ans.Errcode, Errmsg: msg, RequestID: rid}
	}
	return ans, nil
}

// parseTokenAnswer reads a token endpoint's JSON answer.
func parseTokenAnswer(where string, raw []byte) (Fetched, error) {
	ans, err := decodeAnswer(where, "token", raw)
	if err != nil {
		return Fetched{}, err
	}
	if ans.AccessToken == "" {
		ans.AccessToken = ans.ComponentToken
	}
	if !plausibleToken(ans.AccessToken) {
		return Fetched{}, &FetchError{Endpoint: where, Err: fmt.Errorf("answer holds no usable access_token (%d chars)", len(ans.AccessToken))}
	}
	if ans.ExpiresIn < 0 {
		return Fetched{}, &FetchError{Endpoint: where, Err: fmt.Errorf("answer has expires_in %d", ans.ExpiresIn)}
	}
	// expires_in 0 (or none) is for the Manager to judge: the last second
	// of a token gettoken hands back, or no lifetime at all.
	return Fetched{Value: ans.AccessToken, ExpiresIn: time.Duration(ans.ExpiresIn) * time.Second}, nil
}

// plausibleToken accepts what can travel in a query string unescaped: up to
// 512 printable ASCII characters without space, '&', '#' or '%'.
func plausibleToken(s string) bool {
	if s == "" || len(s) > 512 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || c == '&' || c == '#' || c == '%' || c == '"' {
			return false
		}
	}
	return true
}

// stripURL drops the *url.Error layer, whose message holds the request URL
// and with it the secret.
func stripURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		if ue.Timeout() {
			return fmt.Errorf("timeout: %w", ue.Err)
		}
		return ue.Err
	}
	return err
}
