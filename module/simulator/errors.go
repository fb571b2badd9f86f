package simulator

import (
	"encoding/hex"
	"encoding/json"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"time"
)

// Error codes answered by the simulator. Business errors are HTTP 200 JSON
// {"errcode":N,"errmsg":"..."}, like the real service.
const (
	codeSystemBusy        = -1
	codeOK                = 0
	codeInvalidCredential = 40001
	codeInvalidGrantType  = 40002
	codeInvalidOpenID     = 40003
	codeInvalidMediaType  = 40004
	codeInvalidFileType   = 40005
	codeInvalidMediaSize  = 40006
	codeInvalidMediaID    = 40007
	codeInvalidMsgType    = 40008
	codeInvalidImageSize  = 40009
	codeInvalidVoiceSize  = 40010
	codeInvalidVideoSize  = 40011
	codeInvalidThumbSize  = 40012
	codeInvalidAppID      = 40013
	codeInvalidToken      = 40014
	codeInvalidButtonSize = 40016
	codeInvalidButtonType = 40017
	codeInvalidButtonName = 40018
	codeInvalidSubButton  = 40023
	codeInvalidCode       = 40029
	codeInvalidArgs       = 40097
	codeInvalidAppSecret  = 40125
	codeCodeUsed          = 40163
	codeIPNotWhitelisted  = 40164
	codeInvalidScene      = 40169
	codeTokenMissing      = 41001
	codeAppIDMissing      = 41002
	codeSecretMissing     = 41004
	codeMediaMissing      = 41005
	codeMediaIDMissing    = 41006
	codeCodeMissing       = 41008
	codeOpenIDMissing     = 41009
	codeAgentIDMissing    = 41011
	codeInvalidPage       = 41030
	codeTokenExpired      = 42001
	codeRequireGET        = 43001
	codeRequirePOST       = 43002
	codeEmptyPost         = 44002
	codeEmptyContent      = 44004
	codeDailyQuota        = 45009
	codeMinuteQuota       = 45011
	codeConcurrency       = 45033
	codeMenuNotExist      = 46003
	codeDataFormat        = 47001
	codeAPIUnauthorized   = 48001
	codeAPIForbidden      = 48002
	codeClearQuotaLimit   = 48006
	codeIPNotTrusted      = 60020
	codeUserIDNotFound    = 60111
	codeIPNotAllowed      = 61004
	codeUsersInvalid      = 81013
	codeCgiPathNotFound   = 76021
	codeIPConfirm         = 89503
	codeAgentMismatch     = 301002
)

// mpMessages are the errmsg texts of api.weixin.qq.com, before " rid: ...".
var mpMessages = map[int]string{
	codeSystemBusy:        "system error",
	codeInvalidCredential: "invalid credential, access_token is invalid or not latest",
	codeInvalidGrantType:  "invalid grant_type",
	codeInvalidOpenID:     "invalid openid",
	codeInvalidMediaType:  "invalid media type",
	codeInvalidFileType:   "invalid file type",
	codeInvalidMediaSize:  "invalid media size",
	codeInvalidMediaID:    "invalid media_id",
	codeInvalidMsgType:    "invalid message type",
	codeInvalidImageSize:  "invalid image size",
	codeInvalidVoiceSize:  "invalid voice size",
	codeInvalidVideoSize:  "invalid video size",
	codeInvalidThumbSize:  "invalid thumb size",
	codeInvalidAppID:      "invalid appid",
	codeInvalidToken:      "invalid access_token",
	codeInvalidButtonSize: "invalid button size",
	codeInvalidButtonType: "invalid button type",
	codeInvalidButtonName: "invalid button name size",
	codeInvalidSubButton:  "invalid sub button size",
	codeSubButtonTyp:      "invalid sub button type",
	codeSubButtonNam:      "invalid sub button name size",
	codeInvalidCode:       "invalid code",
	codeInvalidArgs:       "invalid args",
	codeInvalidAppSecret:  "invalid appsecret",
	codeCodeUsed:          "code been used",
	codeIPNotWhitelisted:  "invalid ip, not in whitelist",
	codeInvalidScene:      "invalid length for scene, or the data is not json string",
	codeTokenMissing:      "access_token missing",
	codeAppIDMissing:      "appid missing",
	codeSecretMissing:     "appsecret missing",
	codeMediaMissing:      "media data missing",
	codeMediaIDMissing:    "media_id missing",
	codeCodeMissing:       "missing code",
	codeOpenIDMissing:     "missing openid",
	codeInvalidPage:       "invalid page",
	codeTokenExpired:      "access_token expired",
	codeRequireGET:        "require GET method",
	codeRequirePOST:       "require POST method",
	codeEmptyPost:         "empty post data",
	codeEmptyContent:      "empty content",
	codeDailyQuota:        "reach max api daily quota limit",
	codeMinuteQuota:       "api minute-quota reach limit, must slower, retry next minute",
	codeConcurrency:       "api concurrent out of limit",
	codeMenuNotExist:      "menu no exist",
	codeDataFormat:        "data format error",
	codeAPIUnauthorized:   "api unauthorized",
	codeAPIForbidden:      "api forbidden",
	codeClearQuotaLimit:   "forbid to clear quota because of reaching the limit",
	40243:                 "AppSecret is frozen",
	50004:                 "forbidden to call this api",
	50007:                 "account frozen",
	codeIPNotAllowed:      "access clientip is not registered",
	61024:                 "must use component token for component api",
	codeCgiPathNotFound:   "cgi_path not found, please check",
	codeIPConfirm:         "waiting for admin to confirm the ip",
	89506:                 "ip rejected by admin, retry after 24 hours",
	89507:                 "ip rejected by admin, retry after 1 hour",
}

// wecomMessages are the errmsg texts of qyapi.weixin.qq.com, before
// ", hint: [...]".
var wecomMessages = map[int]string{
	codeSystemBusy:        "system busy",
	codeInvalidCredential: "invalid secret",
	codeInvalidOpenID:     "invalid userid",
	codeInvalidMediaType:  "invalid media type",
	codeInvalidFileType:   "invalid file type",
	codeInvalidMediaSize:  "invalid file size",
	codeInvalidMediaID:    "invalid media_id",
	codeInvalidMsgType:    "invalid message type",
	codeInvalidImageSize:  "invalid image size",
	codeInvalidVoiceSize:  "invalid voice size",
	codeInvalidVideoSize:  "invalid video size",
	codeInvalidAppID:      "invalid corpid",
	codeInvalidToken:      "invalid access_token",
	codeInvalidArgs:       "invalid args",
	40091:                 "secret is invalid",
	codeTokenMissing:      "access_token missing",
	codeAppIDMissing:      "corpid missing",
	codeSecretMissing:     "corpsecret missing",
	codeMediaMissing:      "media data missing",
	codeMediaIDMissing:    "media_id missing",
	codeOpenIDMissing:     "missing userid",
	codeAgentIDMissing:    "missing agentid",
	codeTokenExpired:      "access_token expired",
	codeRequireGET:        "require GET method",
	codeRequirePOST:       "require POST method",
	codeEmptyPost:         "empty post data",
	codeEmptyContent:      "empty content",
	codeDailyQuota:        "api freq out of limit",
	codeMinuteQuota:       "api minute-quota reach limit",
	codeConcurrency:       "api concurrent out of limit",
	codeDataFormat:        "Warning: wrong json format. ",
	codeAPIForbidden:      "api forbidden",
	codeIPNotTrusted:      "not allow to access from your ip",
	codeUserIDNotFound:    "userid not found",
	codeUsersInvalid:      "all touser & toparty & totag invalid",
	codeAgentMismatch:     "not allow operate another agent with this accesstoken.",
}

// errText returns the errmsg text of code in the given style.
func errText(code int, wecom bool) string {
	if wecom {
		if s, ok := wecomMessages[code]; ok {
			return s
		}
	} else if s, ok := mpMessages[code]; ok {
		return s
	}
	return "unknown error"
}

// errmsg builds a realistic errmsg: MP texts end in " rid: a-b-c", WeCom
// texts in ", hint: [...], from ip: ..., more info at ...?e=CODE".
func errmsg(code int, text string, wecom bool, now time.Time, r *http.Request) string {
	if wecom {
		var hint [16]byte
		fillRandom(hint[:])
		b := make([]byte, 0, len(text)+160)
		b = append(b, text...)
		b = append(b, ", hint: ["...)
		b = strconv.AppendInt(b, now.Unix(), 10)
		b = append(b, '_')
		b = strconv.AppendInt(b, int64(rand.IntN(64)), 10)
		b = append(b, '_')
		b = hex.AppendEncode(b, hint[:])
		b = append(b, "], from ip: "...)
		b = append(b, clientIP(r)...)
		b = append(b, ", more info at https://open.work.weixin.qq.com/devtool/query?e="...)
		b = strconv.AppendInt(b, int64(code), 10)
		return string(b)
	}
	return text + " rid: " + rid(now)
}

// rid returns a request id shaped like WeChat's: eight hex digits of the
// time, then two groups of eight random hex digits.
func rid(now time.Time) string {
	var b [26]byte
	const digits = "0123456789abcdef"
	t := uint32(now.Unix())
	r := rand.Uint64()
	for i := 7; i >= 0; i-- {
		b[i] = digits[t&0xf]
		t >>= 4
	}
	b[8], b[17] = '-', '-'
	for i := 25; i >= 18; i-- {
		b[i] = digits[r&0xf]
		r >>= 4
	}
	for i := 16; i >= 9; i-- {
		b[i] = digits[r&0xf]
		r >>= 4
	}
	return string(b[:])
}

func fillRandom(b []byte) {
	for i := 0; i < len(b); i += 8 {
		v := rand.Uint64()
		for j := i; j < len(b) && j < i+8; j++ {
			b[j] = byte(v)
			v >>= 8
		}
	}
}

// clientIP is the caller's address as WeCom reports it in "from ip".
func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	if net.ParseIP(host) == nil {
		return "0.0.0.0"
	}
	return host
}

// jsonContentType is the Content-Type of every JSON answer, as the real
// service spells it.
const jsonContentType = "application/json; encoding=utf-8"

// errorBody is the JSON of a business error.
type errorBody struct {
	Errcode int    `json:"errcode"`
	Errmsg  string `json:"errmsg"`
}

// marshal encodes v; every value the simulator encodes is marshalable.
func marshal(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		// Only a programming error gets here: answer what WeChat answers
		// when it breaks.
		return []byte(`{"errcode":-1,"errmsg":"system error"}`)
	}
	return b
}
