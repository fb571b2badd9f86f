// Package caddywechat holds the Caddy modules of caddy-wechat, a WeChat API
// gateway: the `wechat` app (accounts and their tokens), the
// `http.handlers.wechat` handler (token injection, refresh-once-and-replay),
// the `http.handlers.wechat_simulator` handler (a local stand-in for the
// WeChat API) and the `admin.api.wechat` admin endpoints.
//
// The modules are thin glue: the token lifecycle lives in the token package
// and knows nothing of Caddy, the simulator in the simulator package.
package caddywechat
