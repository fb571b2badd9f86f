// Package token runs the access-token lifecycle of WeChat accounts: fetch,
// cache, proactive refresh, compare-and-invalidate on rejection, single-flight
// refresh, backoff and the quota guard. It is plain Go with an injectable
// clock and knows nothing of Caddy; the Caddy modules are thin glue around a
// Manager.
//
// Data flows one way: a request handler asks the Manager for a token
// (Manager.Token), and reports a token WeChat rejected (Manager.Reject); the
// Manager asks its Fetcher for new tokens. Nothing here calls back into the
// handler.
package token
