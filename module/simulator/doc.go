// Package simulator is an in-process, faithful stand-in for the WeChat APIs
// that caddy-wechat fronts: one http.Handler serving the official account /
// mini program paths of api.weixin.qq.com, the WeCom paths of
// qyapi.weixin.qq.com and a control API, on a single listener. It follows
// WeChat's documented behaviour (see README.md beside it) and has no Caddy
// dependency; the Caddy module http.handlers.wechat_simulator (package
// caddysim) wraps it.
//
// # Tokens
//
//   - GET /cgi-bin/token issues a new token on every call; the previous one
//     works for Config.Overlap (5 min) more, then answers 40001. Tokens
//     answer 42001 once Config.TokenTTL (7200 s) has passed. Successful
//     calls count against Config.DailyTokenQuota (2000 a day, days rolling
//     over at midnight UTC+8); past it: 45009.
//   - POST /cgi-bin/stable_token returns the current token with its
//     remaining lifetime and rotates in the last 5 minutes; force_refresh
//     issues a new token (20 a day, 30 s apart; past those limits it is
//     answered like normal mode). Stable tokens and /cgi-bin/token tokens
//     never affect each other. GET answers 43002.
//   - GET qyapi /cgi-bin/gettoken keeps one token per app (corpid,
//     corpsecret), the same while valid.
//   - /sns/oauth2/access_token issues user tokens, which only /sns/userinfo
//     accepts; there any other token answers 40001.
//
// A token works only on the paths of its own service: a WeCom token on an
// MP path answers 40001, an MP token on a WeCom path 40014. The media paths
// both services share answer in the style of the token's service, or of the
// Host header (qyapi.* is WeCom) when the token is unknown. A missing token
// answers 41001.
//
// # Open platform
//
// Config.Components are third-party platforms, Config.Authorizers the
// accounts that authorise them. Every Config.ComponentTicketInterval (10
// min) of the simulator's clock a new component_verify_ticket (valid
// Config.ComponentTicketTTL, 12 h) is pushed to the component's CallbackURL
// as WeChat pushes it: encrypted with msgcrypt in an <xml><AppId/><Encrypt/>
// envelope, with signature, timestamp, nonce, encrypt_type=aes and
// msg_signature in the query; the callback must answer "success" (an
// undelivered ticket is pushed again a minute later). Pushes happen when
// the clock moves (Advance, Set, the control API: synchronously, so a test
// sees them when the call returns), on a real-time timer while the clock
// runs, and on demand (PushComponentTicket). The first push is due at once.
//
//   - POST /cgi-bin/component/api_component_token issues a new
//     component_access_token per call (the previous one works for
//     Config.Overlap more); 61005 expired ticket, 61006 unknown ticket,
//     61011 unknown component, 40125 wrong secret, 45009 past
//     Config.DailyTokenQuota. POST /cgi-bin/component/clear_quota/v2
//     resets that count with the platform's appsecret and no token (or,
//     given appid, an authorizer's quotas), 10 times a month.
//   - api_create_preauthcode, api_query_auth and api_authorizer_token take
//     ?component_access_token= (41001 missing, 40001 unknown or superseded,
//     42001 expired). Authorize (control: component/authorize) makes an
//     authorization code and pushes an authorized event; api_query_auth
//     exchanges the code (once, within an hour: 61009, 61010) for the
//     authorizer's tokens. api_authorizer_token rotates the refresh token
//     on every call, the previous one working for
//     Config.AuthorizerRefreshGrace (5 min) more, then 61023; an unknown
//     authorizer answers 61003. Unauthorize revokes the refresh tokens
//     (61023) and access tokens (40001) and pushes an unauthorized event.
//   - Authorizer access tokens work on the official-account business paths
//     as tokens of their appid (sharing the Account of that appid when there
//     is one). Component tokens never work as access tokens (40001), nor
//     access tokens as component tokens; /cgi-bin/token and stable_token
//     answer 61024 for a component_appid.
//
// # Answers
//
// Business errors are HTTP 200 JSON {"errcode":N,"errmsg":"..."} with
// Content-Type "application/json; encoding=utf-8"; MP errmsg texts end in
// " rid: xxxxxxxx-xxxxxxxx-xxxxxxxx", WeCom texts in ", hint: [...], from ip:
// ..., more info at https://open.work.weixin.qq.com/devtool/query?e=N".
// Malformed JSON bodies answer 47001, empty ones 44002. Unknown paths
// answer HTTP 404 with a small HTML page, like the real front end.
//
// # Tests
//
// Time comes from a Clock that tests freeze (Config.Frozen) and move
// (Clock.Advance, Clock.Set, or the control API): nothing needs to sleep.
// Faults (InjectFault) make the next requests of a path answer an errcode,
// wait, drop the connection, answer garbage or an HTTP error, or answer
// 40014 whatever the token. Counters reports tokens issued per account and
// calls, rejections and the last request per path, never a token or a
// secret. The control API exposes all of this over HTTP.
//
// # Control API
//
// The control API lives under Config.ControlPrefix (default "/_sim"), takes
// and returns JSON, and is neither counted nor subject to faults. Errors
// answer a 4xx status with {"error":"..."}; unknown control paths answer 404,
// wrong methods 405. Request bodies are decoded strictly (unknown fields are
// errors).
//
//	GET    {prefix}/counters           -> Counters
//	POST   {prefix}/counters/reset     -> {"ok":true}
//	GET    {prefix}/clock              -> ClockState
//	POST   {prefix}/clock/advance      {"by":"2h"} -> ClockState
//	POST   {prefix}/clock/set          {"time":"2025-01-01T00:00:00+08:00"} or {"unix":1735660800},
//	                                   optionally "frozen":true|false -> ClockState
//	GET    {prefix}/faults             -> {"faults":[fault...]}
//	POST   {prefix}/faults             fault -> {"id":1,"fault":fault}
//	DELETE {prefix}/faults[?path=/p]   -> {"cleared":n}
//	POST   {prefix}/tokens/invalidate  {"appid":"wx..."} -> {"invalidated":n}
//	POST   {prefix}/component/ticket   [{"component_appid":"wx..."}] -> {"pushes":[PushResult...]}
//	POST   {prefix}/component/authorize   {"component_appid","authorizer_appid","pre_auth_code"} -> AuthorizeResult
//	POST   {prefix}/component/unauthorize {"component_appid","authorizer_appid"} -> UnauthorizeResult
//	GET    {prefix}/media/{media_id}   -> the media bytes (where MP video_url points)
//
// ClockState is {"now":RFC 3339 in UTC+8,"unix":seconds,"day":"2006-01-02",
// "frozen":bool,"offset":"1h0m0s"}. A fault is {"path","errcode","errmsg",
// "count","latency","drop","garbage","status","sticky40014"} as in Fault, with
// latency a Go duration string ("250ms") or a number of milliseconds; listed
// faults add "id", "used" and "remaining" (-1: until cleared). The appid of
// tokens/invalidate may be an appid, a corpid (all its apps), an account
// Label ("corpid/agentid"), an authorizer appid or a component_appid (its
// component tokens). In the component calls component_appid may be left
// out when it is implied (one component; an authorizer of one component);
// unknown components and authorizers answer 404, calls the state refuses
// (a used pre_auth_code, unauthorising twice) 409.
package simulator
