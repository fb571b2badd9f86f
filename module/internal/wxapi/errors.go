package wxapi

import (
	"encoding/json"
	"net/http"
	"strconv"
)

// ContentTypeJSON is the Content-Type WeChat sends with JSON answers.
const ContentTypeJSON = "application/json; encoding=utf-8"

// WriteError answers w with a WeChat-shaped error: HTTP 200 (as WeChat does,
// so that SDKs read the body and surface errmsg) and the JSON body
// {"errcode":code,"errmsg":msg}. msg must not hold a token or a secret.
func WriteError(w http.ResponseWriter, code int, msg string) {
	body := AppendError(make([]byte, 0, 64+len(msg)), code, msg)
	h := w.Header()
	h.Set("Content-Type", ContentTypeJSON)
	h.Set("Content-Length", strconv.Itoa(len(body)))
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body)
}

// AppendError appends {"errcode":code,"errmsg":msg} to dst. msg is
// escaped as a JSON string (invalid UTF-8 becomes U+FFFD), so the body stays
// valid JSON whatever a client put in the request it echoes.
func AppendError(dst []byte, code int, msg string) []byte {
	dst = append(dst, `{"errcode":`...)
	dst = strconv.AppendInt(dst, int64(code), 10)
	dst = append(dst, `,"errmsg":`...)
	quoted, _ := json.Marshal(msg)
	dst = append(dst, quoted...)
	return append(dst, '}')
}
