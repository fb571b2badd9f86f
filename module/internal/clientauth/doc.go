// Package clientauth authenticates the apps that call the gateway. Each
// client has keys, which it uses where its WeChat SDK expects the AppSecret,
// and a list of accounts (and optionally API paths) it may use. The gateway
// answers the SDK's token call with a gateway token: a signed, expiring
// statement "client C may use account A until T", MACed with the client's
// key, so that every instance of a cluster verifies it without a shared
// session store, and removing a key from the config revokes every token
// issued with it.
//
// It is plain Go with an injectable clock and knows nothing of Caddy.
package clientauth
