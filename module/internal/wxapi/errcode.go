package wxapi

// Error codes the gateway reacts to. WeChat answers business errors with
// HTTP 200 and a JSON body {"errcode":N,"errmsg":"..."}; the gateway keys on
// errcode alone, never on errmsg, whose texts change.
const (
	CodeSystemBusy        = -1    // system error, retry later
	CodeOK                = 0     // success (WeCom, some MP answers)
	CodeInvalidCredential = 40001 // invalid credential: bad secret (token endpoint) or token not latest (elsewhere)
	CodeInvalidGrantType  = 40002 // bad grant_type
	CodeInvalidAppID      = 40013 // invalid appid / corpid
	CodeInvalidToken      = 40014 // invalid access_token
	CodeInvalidSecret     = 40091 // WeCom: secret invalid
	CodeInvalidAppSecret  = 40125 // invalid appsecret
	CodeIPNotAllowed      = 40164 // caller IP not whitelisted
	CodeSecretFrozen      = 40243 // AppSecret frozen
	CodeTokenMissing      = 41001 // access_token missing
	CodeSecretMissing     = 41004 // secret missing
	CodeTokenExpired      = 42001 // access_token expired
	CodeRequirePOST       = 43002 // GET where POST is required
	CodeDataFormat        = 47001 // data format error (bad JSON)
	CodeAPIUnauthorized   = 48001 // api unauthorized
	CodeDailyQuota        = 45009 // daily quota reached / WeCom frequency limit
	CodeMinuteQuota       = 45011 // minute quota reached
	CodeConcurrency       = 45033 // WeCom concurrency limit
	CodeForbidden         = 50004 // forbidden
	CodeFrozen            = 50007 // account frozen
	CodeIPNotAllowedNew   = 61004 // caller IP not whitelisted (newer code)
	CodeComponentToken    = 61024 // third-party appid must use the component token
	CodeWeComIPUntrusted  = 60020 // WeCom: IP not trusted
	CodeAdminConfirmIP    = 89503 // an admin must confirm this IP
	CodeAdminPendingIP    = 89506 // admin confirmation pending
	CodeAdminRejectedIP   = 89507 // admin rejected this IP
)

// Refreshable reports whether an answer from a business endpoint means the
// access token itself is no longer good, so that a refresh and one replay
// may fix it: 40001, 40014 and 42001, as WxJava, wechatpy and EasyWeChat use.
// It is never true for answers from the token endpoints or /sns/ paths;
// callers decide that from the path.
func Refreshable(code int) bool {
	return code == CodeInvalidCredential || code == CodeInvalidToken || code == CodeTokenExpired
}

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
		CodeAdminConfirmIP, CodeAdminPendingIP, CodeAdminRejectedIP, CodeRequirePOST:
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
	case CodeAdminConfirmIP, CodeAdminPendingIP, CodeAdminRejectedIP:
		return "an administrator must confirm this gateway's IP"
	}
	return ""
}
