package clientauth

// Error is a refusal, with the WeChat errcode an SDK understands and a
// message for people. It never holds a key or a token.
type Error struct {
	Code int
	Msg  string
}

func (e *Error) Error() string { return e.Msg }

// The refusals. Their codes are WeChat's, so that SDKs react as they would
// to WeChat: 40001 is a bad credential (an SDK reports it), 42001 an expired
// token (an SDK fetches a new one and retries), 41001 a missing token,
// 40013 an appid the client may not use, 48001 an API it may not call.
const (
	CodeBadCredential     = 40001
	CodeExpired           = 42001
	CodeMissing           = 41001
	CodeAccountNotAllowed = 40013
	CodePathNotAllowed    = 48001
	CodeBadRequest        = 40002
)

func refuse(code int, msg string) *Error { return &Error{Code: code, Msg: "wechat gateway: " + msg} }
