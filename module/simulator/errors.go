package simulator

import (
	"encoding/hex"
	"encoding/json"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/wxgate/caddy-wechat/module/internal/wxapi"
)

// mpMessages are the errmsg texts of api.weixin.qq.com, before " rid: ...".
var mpMessages = map[int]string{
	wxapi.CodeSystemBusy:            "system error",
	wxapi.CodeInvalidCredential:     "invalid credential, access_token is invalid or not latest",
	wxapi.CodeInvalidGrantType:      "invalid grant_type",
	wxapi.CodeInvalidOpenID:         "invalid openid",
	wxapi.CodeInvalidMediaType:      "invalid media type",
	wxapi.CodeInvalidFileType:       "invalid file type",
	wxapi.CodeInvalidMediaSize:      "invalid media size",
	wxapi.CodeInvalidMediaID:        "invalid media_id",
	wxapi.CodeInvalidMsgType:        "invalid message type",
	wxapi.CodeInvalidImageSize:      "invalid image size",
	wxapi.CodeInvalidVoiceSize:      "invalid voice size",
	wxapi.CodeInvalidVideoSize:      "invalid video size",
	wxapi.CodeInvalidThumbSize:      "invalid thumb size",
	wxapi.CodeInvalidAppID:          "invalid appid",
	wxapi.CodeInvalidToken:          "invalid access_token",
	wxapi.CodeInvalidButtonSize:     "invalid button size",
	wxapi.CodeInvalidButtonType:     "invalid button type",
	wxapi.CodeInvalidButtonName:     "invalid button name size",
	wxapi.CodeInvalidSubButton:      "invalid sub button size",
	wxapi.CodeInvalidSubType:        "invalid sub button type",
	wxapi.CodeInvalidSubName:        "invalid sub button name size",
	wxapi.CodeInvalidCode:           "invalid code",
	wxapi.CodeInvalidArgs:           "invalid args",
	wxapi.CodeInvalidAppSecret:      "invalid appsecret",
	wxapi.CodeCodeUsed:              "code been used",
	wxapi.CodeIPNotAllowed:          "invalid ip, not in whitelist",
	wxapi.CodeInvalidScene:          "invalid length for scene, or the data is not json string",
	wxapi.CodeTokenMissing:          "access_token missing",
	wxapi.CodeAppIDMissing:          "appid missing",
	wxapi.CodeSecretMissing:         "appsecret missing",
	wxapi.CodeMediaMissing:          "media data missing",
	wxapi.CodeMediaIDMissing:        "media_id missing",
	wxapi.CodeCodeMissing:           "missing code",
	wxapi.CodeOpenIDMissing:         "missing openid",
	wxapi.CodeInvalidPage:           "invalid page",
	wxapi.CodeTokenExpired:          "access_token expired",
	wxapi.CodeRequireGET:            "require GET method",
	wxapi.CodeRequirePOST:           "require POST method",
	wxapi.CodeEmptyPost:             "empty post data",
	wxapi.CodeEmptyContent:          "empty content",
	wxapi.CodeDailyQuota:            "reach max api daily quota limit",
	wxapi.CodeMinuteQuota:           "api minute-quota reach limit, must slower, retry next minute",
	wxapi.CodeConcurrency:           "api concurrent out of limit",
	wxapi.CodeMenuNotExist:          "menu no exist",
	wxapi.CodeDataFormat:            "data format error",
	wxapi.CodeAPIUnauthorized:       "api unauthorized",
	wxapi.CodeAPIForbidden:          "api forbidden",
	wxapi.CodeClearQuotaLimit:       "forbid to clear quota because of reaching the limit",
	wxapi.CodeSecretFrozen:          "AppSecret is frozen",
	wxapi.CodeForbidden:             "forbidden to call this api",
	wxapi.CodeFrozen:                "account frozen",
	wxapi.CodeIPNotAllowedNew:       "access clientip is not registered",
	wxapi.CodeComponentToken:        "must use component token for component api",
	wxapi.CodeComponentUnauthorized: "component is not authorized by this account",
	wxapi.CodeVerifyTicketExpired:   "component ticket is expired",
	wxapi.CodeVerifyTicketInvalid:   "component ticket is invalid",
	wxapi.CodeAuthCodeInvalid:       "code is invalid",
	wxapi.CodeAuthCodeExpired:       "code is expired",
	wxapi.CodeInvalidComponent:      "invalid component",
	wxapi.CodeRefreshTokenRevoked:   "refresh_token is invalid",
	wxapi.CodeRidNotFound:           "rid not found",
	wxapi.CodeRidInvalid:            "rid is empty or invalid",
	wxapi.CodeRidForbidden:          "this rid does not belong to the account",
	wxapi.CodeCgiPathNotFound:       "cgi_path not found, please check",
	wxapi.CodeAdminConfirmIP:        "waiting for admin to confirm the ip",
	wxapi.CodeAdminRejectedIP:       "ip rejected by admin, retry after 24 hours",
	wxapi.CodeAdminRejectedIP1h:     "ip rejected by admin, retry after 1 hour",
}

// wecomMessages are the errmsg texts of qyapi.weixin.qq.com, before
// ", hint: [...]".
var wecomMessages = map[int]string{
	wxapi.CodeSystemBusy:        "system busy",
	wxapi.CodeInvalidCredential: "invalid secret",
	wxapi.CodeInvalidOpenID:     "invalid userid",
	wxapi.CodeInvalidMediaType:  "invalid media type",
	wxapi.CodeInvalidFileType:   "invalid file type",
	wxapi.CodeInvalidMediaSize:  "invalid file size",
	wxapi.CodeInvalidMediaID:    "invalid media_id",
	wxapi.CodeInvalidMsgType:    "invalid message type",
	wxapi.CodeInvalidImageSize:  "invalid image size",
	wxapi.CodeInvalidVoiceSize:  "invalid voice size",
	wxapi.CodeInvalidVideoSize:  "invalid video size",
	wxapi.CodeInvalidAppID:      "invalid corpid",
	wxapi.CodeInvalidToken:      "invalid access_token",
	wxapi.CodeInvalidArgs:       "invalid args",
	wxapi.CodeInvalidSecret:     "secret is invalid",
	wxapi.CodeTokenMissing:      "access_token missing",
	wxapi.CodeAppIDMissing:      "corpid missing",
	wxapi.CodeSecretMissing:     "corpsecret missing",
	wxapi.CodeMediaMissing:      "media data missing",
	wxapi.CodeMediaIDMissing:    "media_id missing",
	wxapi.CodeOpenIDMissing:     "missing userid",
	wxapi.CodeAgentIDMissing:    "missing agentid",
	wxapi.CodeTokenExpired:      "access_token expired",
	wxapi.CodeRequireGET:        "require GET method",
	wxapi.CodeRequirePOST:       "require POST method",
	wxapi.CodeEmptyPost:         "empty post data",
	wxapi.CodeEmptyContent:      "empty content",
	wxapi.CodeDailyQuota:        "api freq out of limit",
	wxapi.CodeMinuteQuota:       "api minute-quota reach limit",
	wxapi.CodeConcurrency:       "api concurrent out of limit",
	wxapi.CodeDataFormat:        "Warning: wrong json format. ",
	wxapi.CodeAPIForbidden:      "api forbidden",
	wxapi.CodeWeComIPUntrusted:  "not allow to access from your ip",
	wxapi.CodeUserIDNotFound:    "userid not found",
	wxapi.CodeUsersInvalid:      "all touser & toparty & totag invalid",
	wxapi.CodeAgentMismatch:     "not allow operate another agent with this accesstoken.",
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
func errmsg(code int, text string, wecom bool, now time.Time, r *http.Request) (msg, id string) {
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
		return string(b), ""
	}
	id = rid(now)
	return text + " rid: " + id, id
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
