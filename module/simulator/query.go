package simulator

import (
	"net/url"
	"strings"
)

// queryValue returns the first value of key in a raw query string without
// parsing the whole query (no allocation unless the value is escaped). ok is
// false when the key is absent or its value is badly escaped.
func queryValue(raw, key string) (value string, ok bool) {
	for raw != "" {
		var part string
		part, raw, _ = strings.Cut(raw, "&")
		if part == "" || strings.Contains(part, ";") {
			continue // skipped by url.ParseQuery too
		}
		k, v, _ := strings.Cut(part, "=")
		if name, ok := queryUnescape(k); !ok || name != key {
			continue
		}
		if value, ok := queryUnescape(v); ok {
			return value, true
		}
		return "", false
	}
	return "", false
}

// sensitiveParams are the query parameters whose values are never shown:
// secrets, tokens and a user's one-time login codes (OAuth's code, a mini
// program's js_code).
var sensitiveParams = map[string]bool{
	"access_token": true, "secret": true, "corpsecret": true, "appsecret": true,
	"component_access_token": true, "component_appsecret": true, "suite_access_token": true,
	"provider_access_token": true, "authorizer_access_token": true, "refresh_token": true,
	"authorizer_refresh_token": true, "provider_secret": true, "suite_secret": true,
	"code": true, "js_code": true, "auth_code": true, "pre_auth_code": true,
}

// redactQuery replaces the values of sensitive parameters in a raw query.
// A key it cannot decode is redacted too.
func redactQuery(raw string) string {
	if raw == "" {
		return ""
	}
	parts := strings.Split(raw, "&")
	for i, part := range parts {
		k, _, hasValue := strings.Cut(part, "=")
		if !hasValue {
			continue
		}
		name, ok := queryUnescape(k)
		if !ok || sensitiveParams[strings.ToLower(name)] {
			parts[i] = k + "=REDACTED"
		}
	}
	return strings.Join(parts, "&")
}

// queryUnescape decodes a key or value of a raw query, without allocating
// when it has nothing to decode; ok is false when it is badly escaped.
func queryUnescape(s string) (string, bool) {
	if !strings.ContainsAny(s, "%+") {
		return s, true
	}
	decoded, err := url.QueryUnescape(s)
	return decoded, err == nil
}
