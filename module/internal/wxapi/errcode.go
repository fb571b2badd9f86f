package wxapi

import "slices"

// WeChat's error codes, declared once for the gateway and the simulator.
// WeChat answers business errors with HTTP 200 and a JSON body
// {"errcode":N,"errmsg":"..."}; code keys on errcode alone, never on
// errmsg, whose texts change. The gateway answers its own refusals with
// these codes too, so that SDKs react as they would to WeChat.
const (
	CodeSystemBusy            = -1     // system error, retry later
	CodeOK                    = 0      // success (WeCom, some MP answers)
	CodeInvalidCredential     = 40001  // invalid credential: bad secret (token endpoint) or token not latest (elsewhere)
	CodeInvalidGrantType      = 40002  // bad grant_type; the gateway's "bad request"
	CodeInvalidOpenID         = 40003  // invalid openid (WeCom: userid)
	CodeInvalidMediaType      = 40004  // invalid media type
	CodeInvalidFileType       = 40005  // invalid file type
	CodeInvalidMediaSize      = 40006  // invalid media size
	CodeInvalidMediaID        = 40007  // invalid media_id
	CodeInvalidMsgType        = 40008  // invalid message type
	CodeInvalidImageSize      = 40009  // invalid image size
	CodeInvalidVoiceSize      = 40010  // invalid voice size
	CodeInvalidVideoSize      = 40011  // invalid video size
	CodeInvalidThumbSize      = 40012  // invalid thumb size
	CodeInvalidAppID          = 40013  // invalid appid / corpid
	CodeInvalidToken          = 40014  // invalid access_token
	CodeInvalidButtonSize     = 40016  // menu: invalid button count
	CodeInvalidButtonType     = 40017  // menu: invalid button type
	CodeInvalidButtonName     = 40018  // menu: invalid button name size
	CodeInvalidSubButton      = 40023  // menu: invalid sub-button count
	CodeInvalidSubType        = 40024  // menu: invalid sub-button type
	CodeInvalidSubName        = 40025  // menu: invalid sub-button name size
	CodeInvalidCode           = 40029  // invalid js_code / OAuth code
	CodeInvalidURL            = 40066  // invalid url
	CodeInvalidSecret         = 40091  // WeCom: secret invalid
	CodeInvalidArgs           = 40097  // invalid args
	CodeInvalidAppSecret      = 40125  // invalid appsecret
	CodeCodeUsed              = 40163  // code already used
	CodeIPNotAllowed          = 40164  // caller IP not whitelisted
	CodeInvalidScene          = 40169  // invalid wxacode scene
	CodeSecretFrozen          = 40243  // AppSecret frozen
	CodeTokenMissing          = 41001  // access_token missing
	CodeAppIDMissing          = 41002  // appid missing
	CodeSecretMissing         = 41004  // secret missing
	CodeMediaMissing          = 41005  // media data missing
	CodeMediaIDMissing        = 41006  // media_id missing
	CodeCodeMissing           = 41008  // code missing
	CodeOpenIDMissing         = 41009  // openid missing
	CodeAgentIDMissing        = 41011  // WeCom: agentid missing
	CodeInvalidPage           = 41030  // invalid wxacode page
	CodeTokenExpired          = 42001  // access_token expired
	CodeRequireGET            = 43001  // POST where GET is required
	CodeRequirePOST           = 43002  // GET where POST is required
	CodeEmptyPost             = 44002  // empty POST body
	CodeEmptyContent          = 44004  // empty content
	CodeDailyQuota            = 45009  // daily quota reached / WeCom frequency limit
	CodeMinuteQuota           = 45011  // minute quota reached
	CodeConcurrency           = 45033  // WeCom concurrency limit
	CodeMenuNotExist          = 46003  // no menu
	CodeDataFormat            = 47001  // data format error (bad JSON)
	CodeAPIUnauthorized       = 48001  // api unauthorized
	CodeAPIForbidden          = 48002  // api forbidden
	CodeClearQuotaLimit       = 48006  // clear_quota used up for the month
	CodeForbidden             = 50004  // forbidden
	CodeFrozen                = 50007  // account frozen
	CodeWeComIPUntrusted      = 60020  // WeCom: IP not trusted
	CodeUserIDNotFound        = 60111  // WeCom: userid not found
	CodeComponentUnauthorized = 61003  // open platform: the authorizer has not authorised this component
	CodeIPNotAllowedNew       = 61004  // caller IP not whitelisted (newer code)
	CodeVerifyTicketExpired   = 61005  // open platform: component_verify_ticket expired
	CodeVerifyTicketInvalid   = 61006  // open platform: component_verify_ticket invalid
	CodeAuthCodeInvalid       = 61009  // open platform: authorization_code invalid (unknown or used)
	CodeAuthCodeExpired       = 61010  // open platform: authorization_code expired
	CodeInvalidComponent      = 61011  // open platform: unknown component_appid
	CodeRefreshTokenRevoked   = 61023  // open platform: authorizer_refresh_token invalid or revoked
	CodeComponentToken        = 61024  // third-party appid must use the component token
	CodeRidNotFound           = 76001  // rid/get: no such rid
	CodeRidInvalid            = 76002  // rid/get: empty or malformed rid
	CodeRidForbidden          = 76003  // rid/get: the rid is another account's
	CodeCgiPathNotFound       = 76021  // cgi path not found
	CodeUsersInvalid          = 81013  // WeCom: every user invalid
	CodeAdminConfirmIP        = 89503  // an admin must confirm this IP
	CodeAdminRejectedIP       = 89506  // an admin rejected this IP (retry after 24 h)
	CodeAdminRejectedIP1h     = 89507  // an admin rejected this IP (retry after 1 h)
	CodeAgentMismatch         = 301002 // WeCom: token of another agent
)

// Refreshable reports whether an answer from a business endpoint means the
// access token itself is no longer good, so that a refresh and one replay
// may fix it: 40001, 40014 and 42001, as WxJava, wechatpy and EasyWeChat use.
// It is never true for answers from the token endpoints or /sns/ paths;
// callers decide that from the path.
func Refreshable(code int) bool {
	return slices.Contains(refreshableCodes[:], code)
}

// refreshableCodes are the codes Refreshable accepts.
var refreshableCodes = [...]int{CodeInvalidCredential, CodeInvalidToken, CodeTokenExpired}

// TokenErrorClass sorts an errcode answered by a token endpoint.
type TokenErrorClass int

const (
	// Transient errors (system busy, minute or concurrency limits) pass on
	// their own: retry with backoff.
	Transient TokenErrorClass = iota
	// Configuration errors (bad appid or secret, IP not whitelisted, frozen
	// secret, admin confirmation) need a person: stop refreshing, say so,
	// and probe again rarely.
	Configuration
	// Quota errors (45009) last until the platform's counter resets or
	// someone clears it.
	Quota
)

// ClassifyTokenError tells what an errcode from a token endpoint means for
// the refresh loop.
func ClassifyTokenError(code int) TokenErrorClass {
	switch code {
	case CodeDailyQuota:
		return Quota
	case CodeInvalidCredential, CodeInvalidGrantType, CodeInvalidAppID, CodeInvalidSecret,
		CodeInvalidAppSecret, CodeIPNotAllowed, CodeSecretFrozen, CodeSecretMissing,
		CodeForbidden, CodeFrozen, CodeIPNotAllowedNew, CodeComponentToken, CodeWeComIPUntrusted,
		CodeAdminConfirmIP, CodeAdminRejectedIP, CodeAdminRejectedIP1h, CodeRequirePOST,
		CodeComponentUnauthorized, CodeInvalidComponent, CodeRefreshTokenRevoked:
		return Configuration
	default:
		return Transient
	}
}

// Describe gives a short English explanation of an errcode the gateway may
// report, for logs and gateway errors; "" when it has none.
func Describe(code int) string {
	switch code {
	case CodeSystemBusy:
		return "WeChat system busy"
	case CodeInvalidCredential:
		return "invalid credential (wrong secret, or token not latest)"
	case CodeInvalidGrantType:
		return "invalid grant_type"
	case CodeInvalidAppID:
		return "invalid appid or corpid"
	case CodeInvalidToken:
		return "invalid access_token"
	case CodeInvalidSecret, CodeInvalidAppSecret:
		return "invalid secret"
	case CodeIPNotAllowed, CodeIPNotAllowedNew, CodeWeComIPUntrusted:
		return "this gateway's IP is not whitelisted for the account"
	case CodeSecretFrozen:
		return "the secret is frozen"
	case CodeTokenMissing:
		return "access_token missing"
	case CodeSecretMissing:
		return "secret missing"
	case CodeTokenExpired:
		return "access_token expired"
	case CodeRequirePOST:
		return "POST required"
	case CodeDailyQuota:
		return "daily API quota reached"
	case CodeMinuteQuota:
		return "minute API quota reached"
	case CodeConcurrency:
		return "too many concurrent calls"
	case CodeForbidden, CodeFrozen:
		return "the account is forbidden or frozen"
	case CodeComponentToken:
		return "a third-party platform appid must use the component token"
	case CodeVerifyTicketExpired, CodeVerifyTicketInvalid:
		return "the component_verify_ticket was refused; waiting for WeChat's next push"
	case CodeInvalidComponent:
		return "unknown component_appid"
	case CodeRefreshTokenRevoked:
		return "the authorizer_refresh_token is revoked: the business must authorise the platform again"
	case CodeAdminConfirmIP, CodeAdminRejectedIP, CodeAdminRejectedIP1h:
		return "an administrator must confirm this gateway's IP"
	}
	return ""
}
