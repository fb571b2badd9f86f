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

// openControlError answers err: 404 for an unknown component or
// authorizer, 409 otherwise (a state that does not allow the call).
func openControlError(w http.ResponseWriter, err error) {
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
	if !decodeOptionalControl(w, r, &req) {
		return
	}
	res, err := s.PushComponentTicket(req.ComponentAppID)
	if err != nil {
		openControlError(w, err)
		return
	}
	controlJSON(w, http.StatusOK, map[string][]PushResult{"pushes": res})
}

// controlAuthorize serves POST {prefix}/component/authorize
// {"component_appid","authorizer_appid","pre_auth_code"}.
func (s *Simulator) controlAuthorize(w http.ResponseWriter, r *http.Request) {
	var req struct {
		ComponentAppID  string `json:"component_appid"`
		AuthorizerAppID string `json:"authorizer_appid"`
		PreAuthCode     string `json:"pre_auth_code"`
	}
	if !decodeControl(w, r, &req) {
		return
	}
	if req.AuthorizerAppID == "" {
		controlError(w, http.StatusBadRequest, `"authorizer_appid" is required`)
		return
	}
	res, err := s.Authorize(req.ComponentAppID, req.AuthorizerAppID, req.PreAuthCode)
	if err != nil {
		openControlError(w, err)
		return
	}
	controlJSON(w, http.StatusOK, res)
}

// controlUnauthorize serves POST {prefix}/component/unauthorize
// {"component_appid","authorizer_appid"}.
func (s *Simulator) controlUnauthorize(w http.ResponseWriter, r *http.Request) {
	var req struct {
		ComponentAppID  string `json:"component_appid"`
		AuthorizerAppID string `json:"authorizer_appid"`
	}
	if !decodeControl(w, r, &req) {
		return
	}
	if req.AuthorizerAppID == "" {
		controlError(w, http.StatusBadRequest, `"authorizer_appid" is required`)
		return
	}
	res, err := s.Unauthorize(req.ComponentAppID, req.AuthorizerAppID)
	if err != nil {
		openControlError(w, err)
		return
	}
	controlJSON(w, http.StatusOK, res)
}
