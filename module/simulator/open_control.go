package simulator

import (
	"bytes"
	"errors"
	"io"
	"net/http"
)

// decodeOptionalControl is decodeControl for bodies that may be empty
// (taken as {}).
func decodeOptionalControl(w http.ResponseWriter, r *http.Request, v any) bool {
	body, err := io.ReadAll(io.LimitReader(r.Body, controlMaxBody+1))
	if err != nil {
		controlError(w, http.StatusBadRequest, "cannot read the body: "+err.Error())
		return false
	}
	if len(bytes.TrimSpace(body)) == 0 {
		body = []byte("{}")
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	return decodeControl(w, r, v)
}

// answerOpenControl answers res, or err: 404 for an unknown component or
// authorizer, 409 otherwise (a state that does not allow the call).
func answerOpenControl(w http.ResponseWriter, res any, err error) {
	if err == nil {
		controlJSON(w, http.StatusOK, res)
		return
	}
	status := http.StatusConflict
	if errors.Is(err, errNotFound) {
		status = http.StatusNotFound
	}
	controlError(w, status, err.Error())
}

// controlPushTicket serves POST {prefix}/component/ticket
// [{"component_appid":"..."}]: push a ticket now.
func (s *Simulator) controlPushTicket(w http.ResponseWriter, r *http.Request) {
	var req struct {
		ComponentAppID string `json:"component_appid"`
	}
	if decodeOptionalControl(w, r, &req) {
		res, err := s.PushComponentTicket(req.ComponentAppID)
		answerOpenControl(w, map[string][]PushResult{"pushes": res}, err)
	}
}

// authorizerControl names an authorizer in the body of a control call; the
// component may be left out when the authorizer belongs to one only.
type authorizerControl struct {
	ComponentAppID  string `json:"component_appid"`
	AuthorizerAppID string `json:"authorizer_appid"`
}

// decodeAuthorizerControl strictly decodes the body into req, whose
// authorizer who is, and requires the authorizer_appid.
func decodeAuthorizerControl(w http.ResponseWriter, r *http.Request, req any, who *authorizerControl) bool {
	if !decodeControl(w, r, req) {
		return false
	}
	if who.AuthorizerAppID == "" {
		controlError(w, http.StatusBadRequest, `"authorizer_appid" is required`)
		return false
	}
	return true
}

// controlAuthorize serves POST {prefix}/component/authorize
// {"component_appid","authorizer_appid","pre_auth_code"}.
func (s *Simulator) controlAuthorize(w http.ResponseWriter, r *http.Request) {
	var req struct {
		authorizerControl
		PreAuthCode string `json:"pre_auth_code"`
	}
	if decodeAuthorizerControl(w, r, &req, &req.authorizerControl) {
		res, err := s.Authorize(req.ComponentAppID, req.AuthorizerAppID, req.PreAuthCode)
		answerOpenControl(w, res, err)
	}
}

// controlUnauthorize serves POST {prefix}/component/unauthorize
// {"component_appid","authorizer_appid"}.
func (s *Simulator) controlUnauthorize(w http.ResponseWriter, r *http.Request) {
	var req authorizerControl
	if decodeAuthorizerControl(w, r, &req, &req) {
		res, err := s.Unauthorize(req.ComponentAppID, req.AuthorizerAppID)
		answerOpenControl(w, res, err)
	}
}
