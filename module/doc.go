// Package caddywechat holds the Caddy modules of caddy-wechat, a WeChat API
// gateway: the `wechat` app (accounts, clients and their tokens), the
// `http.handlers.wechat` handler (token injection, refresh-once-and-replay)
// and the `admin.api.wechat` admin endpoints, with their Caddyfile syntax.
// Build it into Caddy with
//
//	xcaddy build --with github.com/wxgate/caddy-wechat/module
//
// The modules are thin glue: the token lifecycle lives in internal/token
// and knows nothing of Caddy. The WeChat simulator, for tests and offline
// use, is a separate module (package simulator/caddysim), so that a
// production build does not carry it.
package caddywechat
