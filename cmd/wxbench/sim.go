package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"time"

	"github.com/wxgate/caddy-wechat/module/simulator"
)

// simClient drives the simulator process through its control API (under
// /_sim): its clock, token invalidation and counters.
type simClient struct {
	base string // http://127.0.0.1:port
}

// advance moves the simulator's clock forward by d.
func (s simClient) advance(d time.Duration) error {
	return postJSON(s.base+"/_sim/clock/advance", map[string]string{"by": d.String()}, nil)
}

// invalidate revokes every valid token of appid at once, as an external
// refresh would: they answer 40001 from then on.
func (s simClient) invalidate(appid string) error {
	return postJSON(s.base+"/_sim/tokens/invalidate", map[string]string{"appid": appid}, nil)
}

// delay makes the next count calls of path answer after latency (real
// time), as WeChat's round trip from a server in China would.
func (s simClient) delay(path string, latency time.Duration, count int) error {
	return postJSON(s.base+"/_sim/faults", map[string]any{"path": path, "latency": latency.String(), "count": count}, nil)
}

// clearFaults removes every fault.
func (s simClient) clearFaults() error {
	req, err := http.NewRequest(http.MethodDelete, s.base+"/_sim/faults", nil)
	if err != nil {
		return err
	}
	resp, err := control.Do(req)
	if err != nil {
		return err
	}
	return decodeAnswer(s.base+"/_sim/faults", resp, nil)
}

// counters returns what the simulator saw: tokens issued per account,
// calls and rejections per path.
func (s simClient) counters() (simulator.Counters, error) {
	var c simulator.Counters
	err := getJSON(s.base+"/_sim/counters", &c)
	return c, err
}

// stableToken fetches a token the way an app does (POST
// /cgi-bin/stable_token): the baseline's requests carry it.
func (s simClient) stableToken(appid, secret string) (string, error) {
	var ans struct {
		AccessToken string `json:"access_token"`
		Errcode     int    `json:"errcode"`
		Errmsg      string `json:"errmsg"`
	}
	err := postJSON(s.base+"/cgi-bin/stable_token",
		map[string]any{"grant_type": "client_credential", "appid": appid, "secret": secret}, &ans)
	if err == nil && ans.AccessToken == "" {
		err = fmt.Errorf("stable_token: errcode %d %s", ans.Errcode, ans.Errmsg)
	}
	return ans.AccessToken, err
}

// tokenCalls is the number of token-endpoint calls an account made, of
// every kind: what spends its daily quota.
func tokenCalls(c simulator.TokenCounts) int64 { return c.Token + c.StableToken + c.GetToken }

// tokensIssued is the number of distinct tokens minted for an account.
func tokensIssued(c simulator.TokenCounts) int64 {
	return c.Token + c.StableIssued + c.GetTokenIssued
}

// multipartBody builds a media/upload body whose field "media" is a file
// of size bytes named name, and returns it with its content type.
func multipartBody(name string, size int) ([]byte, string, error) {
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	part, err := mw.CreateFormFile("media", name)
	if err != nil {
		return nil, "", err
	}
	// Content that does not compress: a repeated 1 KiB block of a PRNG.
	block := make([]byte, 1024)
	x := uint64(0x9E3779B97F4A7C15)
	for i := range block {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		block[i] = byte(x)
	}
	for left := size; left > 0; left -= len(block) {
		_, _ = part.Write(block[:min(left, len(block))])
	}
	if err := mw.Close(); err != nil {
		return nil, "", err
	}
	return buf.Bytes(), mw.FormDataContentType(), nil
}

// upload posts a media file through url (a gateway or a baseline
// media/upload URL) and returns its media_id.
func upload(url string, body []byte, contentType string) (string, error) {
	resp, err := control.Post(url, contentType, bytes.NewReader(body))
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var ans struct {
		MediaID string `json:"media_id"`
		Errcode int    `json:"errcode"`
	}
	if err := json.Unmarshal(b, &ans); err != nil || ans.MediaID == "" {
		return "", fmt.Errorf("media/upload: %d %s", resp.StatusCode, bytes.TrimSpace(b))
	}
	return ans.MediaID, nil
}

// errcodeOf returns the top-level errcode of a JSON answer (0 without one)
// and whether the answer was JSON at all.
func errcodeOf(b []byte) (int, bool) {
	var v struct {
		Errcode int `json:"errcode"`
	}
	err := json.Unmarshal(b, &v)
	return v.Errcode, err == nil
}

// get fetches url and returns its status and body.
func get(url string, header http.Header) (int, []byte, error) {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return 0, nil, err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := control.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}
