package clientauth

// Error is a refusal, with the WeChat errcode an SDK understands and a
// message for people. It never holds a key or a token.
type Error struct {
	Code int
	Msg  string
}

func (e *Error) Error() string { return e.Msg }

// Refusals carry WeChat's codes (see wxapi), so that SDKs react as they
// would to WeChat: 40001 (wxapi.CodeInvalidCredential) is a bad credential,
// which an SDK reports; 42001 (CodeTokenExpired) an expired gateway token,
// for which an SDK fetches a new one and retries; 41001 (CodeTokenMissing)
// a missing token; 40013 (CodeInvalidAppID) an appid the client may not use;
// 48001 (CodeAPIUnauthorized) an API it may not call; 40002
// (CodeInvalidGrantType) a malformed token request.

// Refuse returns a refusal whose message says it comes from the gateway.
func Refuse(code int, msg string) *Error { return &Error{Code: code, Msg: "wechat gateway: " + msg} }
