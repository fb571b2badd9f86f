package caddywechat

import (
	"encoding/json"
	"io"
	"net/http"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/wxgate/caddy-wechat/module/internal/clientauth"
	"github.com/wxgate/caddy-wechat/module/internal/token"
	"github.com/wxgate/caddy-wechat/module/internal/wxapi"
)

// componentClearQuotaV2Path resets a platform's quotas, or an authorizer's,
// with the platform's AppSecret in its JSON body and no token: the way out
// when the token endpoint's own quota is spent.
const componentClearQuotaV2Path = "/cgi-bin/component/clear_quota/v2"

// serveComponentClearQuotaV2 answers component/clear_quota/v2 on a
// platform's site. The caller never holds the platform's secret: in
// clients mode an admin client sends its key as appsecret (or its gateway
// token as component_access_token, the key then not needed); the gateway
// puts the real secret and the platform's component_appid in the body and
// sends no token, so that the call works while no token can be had.
func (h *Handler) serveComponentClearQuotaV2(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	platform := h.fixed.Account()
	if r.Method != http.MethodPost {
		wxapi.WriteError(w, wxapi.CodeRequirePOST, "require POST method")
		return nil
	}
	raw, err := io.ReadAll(io.LimitReader(r.Body, maxFormBody+1))
	if err != nil || len(raw) > maxFormBody {
		wxapi.WriteError(w, wxapi.CodeInvalidArgs, "invalid args: unreadable or oversized body")
		return nil
	}
	var body map[string]json.RawMessage
	if json.Unmarshal(trimJSON(raw), &body) != nil || body == nil {
		wxapi.WriteError(w, wxapi.CodeDataFormat, "data format error: the body must be a JSON object")
		return nil
	}
	// Only the documented members go upstream: whatever else a client
	// put in the body (its key under another name, a gateway token) stays
	// here.
	fields, bad := stringMembers(body, "component_appid", "appid", "appsecret")
	if bad != "" {
		wxapi.WriteError(w, wxapi.CodeDataFormat, "data format error: "+bad+" must be a string")
		return nil
	}
	if appid := fields["appid"]; appid != "" && !token.ValidAppID(appid) {
		wxapi.WriteError(w, wxapi.CodeInvalidAppID, "invalid appid: "+loggedAppID(appid)+" is not an appid")
		return nil
	}
	if appid := fields["component_appid"]; appid != "" && appid != platform.AppID {
		wxapi.WriteError(w, wxapi.CodeInvalidComponent, "wechat gateway: this site serves component "+platform.AppID+", not "+loggedAppID(appid))
		return nil
	}
	var claims *clientauth.Claims
	if !h.Trusted {
		var refusal *clientauth.Error
		if claims, refusal = h.clearQuotaCaller(r, fields["appsecret"]); refusal != nil {
			countCall(clientName(claims), h.Account, refusal.Code)
			writeRefusal(w, refusal)
			return nil
		}
	}
	countCall(clientName(claims), h.Account, 0)
	upstream := [][2]string{{"appsecret", platform.Secret}, {"component_appid", platform.AppID}}
	if appid := fields["appid"]; appid != "" {
		upstream = append(upstream, [2]string{"appid", appid})
	}
	sent := jsonSecretFirst(upstream, nil)
	out := upstreamCopy(r, wxapi.WithoutParams(r.URL.RawQuery, append(tokenParams, appCredentialParams...)...))
	out.RequestURI = out.URL.RequestURI()
	out.Header.Set("Content-Type", "application/json")
	setBody(out, sent)
	h.sendOnce(w, r, next, out, h.fixed)
	return nil
}

// clearQuotaCaller authenticates a clients-mode component/clear_quota/v2:
// by the platform's gateway token when the query has one, else by the
// client key sent as appsecret; either way the client must be granted the
// path and admin.
func (h *Handler) clearQuotaCaller(r *http.Request, key string) (*clientauth.Claims, *clientauth.Error) {
	if _, n := wxapi.QueryParam(r.URL.RawQuery, "component_access_token"); n > 0 {
		return h.platformCaller(r, true)
	}
	if key == "" {
		return nil, clientauth.Refuse(wxapi.CodeSecretMissing, "appsecret missing: send the client key where the SDK sends the platform's AppSecret")
	}
	auth := h.app.clients()
	claims, refusal := auth.AuthenticateFor(h.Account, string(token.Component), h.fixed.Account().AppID, key)
	if refusal == nil {
		refusal = auth.MayCall(claims, componentClearQuotaV2Path)
	}
	if refusal == nil {
		refusal = auth.MayAdmin(claims)
	}
	if refusal == nil {
		refusal = checkPlatformQuery(r.URL.RawQuery, "component_access_token", true, claims)
	}
	if refusal != nil {
		h.logger.Info("component clear_quota/v2 refused", zap.Int("errcode", refusal.Code), zap.String("reason", refusal.Msg))
	}
	return claims, refusal
}
